//! The certificate authority behind the API (E7, E8): authenticates the operator of
//! each request (E1; seed 001: only pre-agreed stations and relays may ask), checks the
//! request, issues the profile its policy grants (never the usage the request asks
//! for), stores and publishes certificates.

use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use vtoken_pki::api::{
    BatchRequest, BatchResponse, OperatorAnswer, OperatorAuthorised, OperatorChallenge,
    CHALLENGE_SECS,
};
use vtoken_pki::auth::{Authenticated, MAX_SKEW_SECS};
use vtoken_pki::{verify_chain, verify_csr, CsrInfo, LocalCa, SerialRange, Usage};

use crate::db::{self, Target};
use crate::http::{batch_entry, batch_item, Backend, Caller, Refusal};
use crate::store::{Issue, Store, DB_FILE};

/// The CA: its key and certificate, its database, the serial range it serves.
pub struct Authority {
    ca: LocalCa,
    store: Store,
    range: SerialRange,
    days: u32,
    log_keep: u64,
    /// The certificate server issued certificates are published to (E8, step 310).
    pub publish_to: Option<String>,
}

impl Authority {
    /// Load the CA from `dir` (made by `ca init`) and open its database (`database`:
    /// `--database`, default `ca.db` in `dir`); the request log keeps the newest
    /// `log_keep` entries.
    pub fn open(
        dir: &Path,
        database: Option<&str>,
        range: SerialRange,
        days: u32,
        log_keep: u64,
    ) -> Result<Authority, String> {
        let ca = LocalCa::load(dir).map_err(|e| {
            format!(
                "loading the CA from {d}: {e} (create one with `vtoken-server ca init --dir {d}`)",
                d = dir.display()
            )
        })?;
        let store = open_store(dir, database)?;
        Ok(Authority {
            ca,
            store,
            range,
            days,
            log_keep,
            publish_to: None,
        })
    }

    /// The CA certificate subject (for the log).
    pub fn subject(&self) -> String {
        self.ca.subject()
    }

    /// How many certificates the CA has issued (for the log).
    pub fn issued(&self) -> u64 {
        self.store().cert_count().unwrap_or(0)
    }

    /// Which database the CA uses (for the log).
    pub fn database(&self) -> &str {
        self.store.describe()
    }

    fn store(&self) -> &Store {
        &self.store
    }

    /// 503 when the database is unreachable (nothing was changed: the client may
    /// retry), 500 for any other failure.
    fn db_err(e: db::Error) -> Refusal {
        tracing::error!("database: {e}");
        Refusal {
            status: if matches!(e, db::Error::Unavailable(_)) {
                503
            } else {
                500
            },
            message: format!("CA database: {e}"),
        }
    }

    /// The CA's decision on one request (E7): the request's own signature, then the
    /// certificate under the caller's profile, stored and published by serial (E8).
    fn decide(&self, store: &Store, caller: &Caller, csr_der: &[u8]) -> Result<Vec<u8>, Refusal> {
        let info = verify_csr(csr_der)
            .map_err(|e| Refusal::bad_request(format!("request refused: {e}")))?;
        // The profile is the operator's policy; whatever usage the request asks for
        // is ignored (authenticate() resolved it).
        let Some(profile) = caller.profile else {
            return Err(Refusal::internal("no profile resolved for the caller"));
        };
        if info.usage != profile {
            tracing::info!(
                token = %info.serial,
                asked = %info.usage,
                %profile,
                "the request asks for another usage: issuing the policy's profile"
            );
        }
        let info = CsrInfo {
            usage: profile,
            ..info
        };
        if !self.range.contains(&info.serial) {
            return Err(Refusal {
                status: 403,
                message: format!(
                    "token serial {} is outside the agreed range {}",
                    info.serial, self.range
                ),
            });
        }
        let spki_sha256 = hex::encode(Sha256::digest(&info.spki));
        let usage = info.usage.as_str();
        let outcome = store
            .issue_once(&info.serial, &spki_sha256, usage, |number| {
                let der = self
                    .ca
                    .issue_numbered(&info, self.days, number)
                    .map_err(|e| db::Error::Other(format!("issuing: {e}")))?;
                // Check our own output before storing and publishing it.
                let checked = verify_chain(&der, &[], self.ca.cert_der(), SystemTime::now())
                    .map_err(|e| {
                        db::Error::Other(format!("issued certificate does not verify: {e}"))
                    })?;
                Ok((der, checked.cert_serial))
            })
            .map_err(|e| match e {
                db::Error::Other(m) => Refusal::internal(m),
                e => Self::db_err(e),
            })?;
        match outcome {
            Issue::Existing(der) => {
                tracing::info!(token = %info.serial, "re-enrollment: returning the stored certificate");
                // Published again: a publication that failed before is made now.
                self.publish(&der);
                Ok(der)
            }
            Issue::OtherKey(old) => Err(Refusal {
                status: 409,
                message: format!(
                    "token {} already holds live certificate {old} for another key; \
                     revoke it first (vtoken-server ca revoke --serial {old})",
                    info.serial
                ),
            }),
            Issue::Issued { der, cert_serial } => {
                tracing::info!(
                    token = %info.serial,
                    cert = %cert_serial,
                    %usage,
                    operator = %caller.name,
                    "issued"
                );
                self.publish(&der);
                Ok(der)
            }
        }
    }

    /// Step 310: sends the certificate to the certificate server, whose record of it
    /// is the "certificate ready" notice. A failure is logged and does not undo the
    /// issuance: the certificate stays stored and published here, and the next
    /// request for the same token and key publishes it again.
    fn publish(&self, der: &[u8]) {
        let Some(url) = &self.publish_to else { return };
        match vtoken_pki::client::publish(url, der) {
            Ok(p) => {
                tracing::info!(token = %p.token_serial, notice = p.notice, "published to the certificate server")
            }
            Err(e) => tracing::warn!("publishing to the certificate server {url} failed: {e}"),
        }
    }
}

/// The CA database of `dir`: `--database` when given, else `dir/ca.db`.
pub fn open_store(dir: &Path, database: Option<&str>) -> Result<Store, String> {
    let target = Target::resolve(database, &dir.join(DB_FILE)).map_err(|e| e.to_string())?;
    let name = match &target {
        Target::Sqlite(p) => p.display().to_string(),
        Target::Postgres(_) => "the CA database".to_string(),
    };
    Store::open(&target).map_err(|e| format!("{name}: {e}"))
}

impl Backend for Authority {
    fn authenticate(&self, auth: &Authenticated) -> Result<Caller, Refusal> {
        let store = self.store();
        let op = store
            .operator_by_fingerprint(&auth.fingerprint)
            .map_err(Self::db_err)?
            .ok_or_else(|| Refusal {
                status: 403,
                message: format!(
                    "the operator certificate (SHA-256 {}) is not registered with this CA",
                    auth.fingerprint
                ),
            })?;
        if !store
            .fresh_nonce(&auth.nonce, MAX_SKEW_SECS)
            .map_err(Self::db_err)?
        {
            return Err(Refusal {
                status: 401,
                message: format!("replayed request (nonce {} already used)", auth.nonce),
            });
        }
        let profile = match auth.profile {
            None => op.profiles.first().copied(),
            Some(p) if op.profiles.contains(&p) => Some(p),
            Some(p) => {
                return Err(Refusal {
                    status: 403,
                    message: format!(
                        "operator {} may not request {p} certificates (allowed: {})",
                        op.name,
                        op.profiles
                            .iter()
                            .map(|u| u.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                })
            }
        };
        if profile.is_none() {
            return Err(Refusal {
                status: 403,
                message: format!("operator {} may request no profile", op.name),
            });
        }
        Ok(Caller {
            name: op.name,
            profile,
        })
    }

    fn log_refusal(&self, client: &str, body: &[u8], refusal: &Refusal) {
        // Best effort: the serial a (possibly unsigned) request names, for the log only.
        let serial = vtoken_pki::csr_token_serial(body).unwrap_or_default();
        if let Err(e) = self.store().log_request(
            &serial,
            client,
            refusal.status,
            &refusal.message,
            self.log_keep,
        ) {
            tracing::error!("database: {e}");
        }
    }

    fn enroll(&self, caller: &Caller, csr_der: &[u8]) -> Result<Vec<u8>, Refusal> {
        let store = self.store();
        let outcome = self.decide(store, caller, csr_der);
        let serial = vtoken_pki::csr_token_serial(csr_der).unwrap_or_default();
        let (status, text) = match &outcome {
            Ok(_) => (200, "issued".to_string()),
            Err(r) => {
                tracing::warn!(token = %serial, status = r.status, "{}", r.message);
                (r.status, r.message.clone())
            }
        };
        store
            .log_request(&serial, &caller.name, status, &text, self.log_keep)
            .map_err(Self::db_err)?;
        outcome
    }

    fn enroll_batch(&self, caller: &Caller, req: BatchRequest) -> Result<BatchResponse, Refusal> {
        let mut results = Vec::with_capacity(req.csrs.len());
        for b64 in &req.csrs {
            results.push(match batch_entry(b64) {
                Ok(csr) => {
                    match self.enroll(caller, &csr) {
                        // Our own failure: stop, the client reruns the batch.
                        Err(r) if r.status >= 500 => return Err(r),
                        outcome => batch_item(&csr, outcome),
                    }
                }
                Err(item) => item,
            });
        }
        Ok(BatchResponse { results })
    }

    fn ready(&self) -> Result<(), Refusal> {
        self.store().db().ping().map_err(Self::db_err)
    }

    fn pool_status(&self) -> Option<crate::ops::PoolStatus> {
        self.store().db().pool_status()
    }

    fn cert(&self, token_serial: &str) -> Result<Option<Vec<u8>>, Refusal> {
        self.store().latest(token_serial).map_err(Self::db_err)
    }

    fn ca_certs(&self) -> Result<Vec<Vec<u8>>, Refusal> {
        Ok(vec![self.ca.cert_der().to_vec()])
    }

    fn operator_challenge(&self) -> Result<OperatorChallenge, Refusal> {
        let mut c = [0u8; 32];
        vault_core::mechanism::random(&mut c)
            .map_err(|e| Refusal::internal(format!("random: {e}")))?;
        let challenge = hex::encode(c);
        self.store()
            .new_challenge(&challenge, CHALLENGE_SECS)
            .map_err(Self::db_err)?;
        Ok(OperatorChallenge {
            challenge,
            expires_in: CHALLENGE_SECS,
        })
    }

    /// E1, seed 001 step 201: the station's operator token is an authorised one —
    /// it holds an operator certificate this CA issued (chain, validity, the operator
    /// profile), not revoked, registered, and its key answered this fresh challenge.
    /// The challenge is used up first, so an answer works once whatever the verdict.
    fn operator_authorise(&self, a: &OperatorAnswer) -> Result<OperatorAuthorised, Refusal> {
        let refuse = |status: u16, message: String| {
            tracing::warn!(status, "operator authorisation refused: {message}");
            Refusal { status, message }
        };
        let store = self.store();
        if !store
            .take_challenge(a.challenge.trim(), CHALLENGE_SECS)
            .map_err(Self::db_err)?
        {
            return Err(refuse(
                401,
                "unknown, expired or already answered challenge (ask for a new one)".into(),
            ));
        }
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let cert = b64
            .decode(a.cert.trim())
            .map_err(|_| refuse(400, "the operator certificate is not base64".into()))?;
        let sig = b64
            .decode(a.signature.trim())
            .map_err(|_| refuse(400, "the signature is not base64".into()))?;
        let checked = verify_chain(&cert, &[], self.ca.cert_der(), SystemTime::now())
            .map_err(|e| refuse(403, format!("not an operator certificate of this CA: {e}")))?;
        vtoken_pki::require_usage(&cert, Usage::Operator)
            .map_err(|e| refuse(403, e.to_string()))?;
        if store
            .is_revoked(&checked.cert_serial)
            .map_err(Self::db_err)?
        {
            return Err(refuse(
                403,
                format!("operator certificate {} is revoked", checked.cert_serial),
            ));
        }
        let fp = vtoken_pki::auth::fingerprint(&cert);
        let op = store
            .operator_by_fingerprint(&fp)
            .map_err(Self::db_err)?
            .ok_or_else(|| {
                refuse(
                    403,
                    format!(
                        "the operator certificate (SHA-256 {fp}) is not registered with this CA"
                    ),
                )
            })?;
        vtoken_pki::auth::verify_challenge_answer(&cert, &a.challenge, &sig)
            .map_err(|e| refuse(401, e.to_string()))?;
        tracing::info!(operator = %op.name, cert = %checked.cert_serial, "operator authorised");
        Ok(OperatorAuthorised {
            operator: op.name,
            profiles: op.profiles.iter().map(|u| u.as_str().to_string()).collect(),
        })
    }
}
