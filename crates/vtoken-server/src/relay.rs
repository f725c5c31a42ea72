//! The relay (E6): authenticates the issuing stations agreed with it (their operator
//! certificates, seed 001: "the local device and the relay agree in advance to trust
//! each other"), forwards the API to the CA under its own credential (the CA knows the
//! relay as a registered operator and applies the relay's policy); with `--verify` it
//! also checks each request's signature and serial range and refuses bad ones without
//! contacting the CA.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use vtoken_pki::api::{self, BatchItem, BatchRequest, BatchResponse};
use vtoken_pki::auth::{fingerprint, Authenticated, Credential, MAX_SKEW_SECS};
use vtoken_pki::{client, verify_csr, Error, SerialRange};

use crate::http::{batch_entry, batch_item, Backend, Caller, Refusal};

/// Nonces of recent requests, and (time, nonce) in arrival order for forgetting them.
pub type SeenNonces = (HashSet<String>, Vec<(u64, String)>);

/// A relay in front of the CA at `upstream`.
pub struct Relay {
    /// CA base URL, e.g. `http://127.0.0.1:8440`.
    pub upstream: String,
    /// When set, requests are checked here first (signature and this range).
    pub verify: Option<SerialRange>,
    /// The stations it serves: certificate fingerprint → name.
    pub stations: HashMap<String, String>,
    /// The relay's own operator credential at the CA.
    pub credential: Credential,
    /// Nonces seen within the time window (replay protection), with their time.
    pub seen: Mutex<SeenNonces>,
}

impl Relay {
    /// The relay with its stations' certificates (DER, with names) and its credential.
    pub fn new(
        upstream: String,
        verify: Option<SerialRange>,
        stations: Vec<(String, Vec<u8>)>,
        credential: Credential,
    ) -> Relay {
        Relay {
            upstream,
            verify,
            stations: stations
                .into_iter()
                .map(|(name, der)| (fingerprint(&der), name))
                .collect(),
            credential,
            seen: Mutex::new((HashSet::new(), Vec::new())),
        }
    }

    /// The credential to forward one caller's request with: the relay's own, asking
    /// for the profile the station asked for.
    fn forward_as(&self, caller: &Caller) -> Credential {
        let mut c = self.credential.clone();
        c.profile = caller.profile;
        c
    }
}

/// Map a client error from the CA into what the relay answers.
fn upstream_err(e: Error) -> Refusal {
    match e {
        Error::Http { status, message } => Refusal { status, message },
        Error::InvalidSerial(s) => Refusal::bad_request(format!("invalid token serial {s:?}")),
        other => Refusal {
            status: 502,
            message: format!("CA unreachable or answered badly: {other}"),
        },
    }
}

impl Relay {
    /// With `--verify` (E6): the request's signature and its serial's range, checked
    /// here so a bad request never reaches the CA.
    fn check(&self, csr: &[u8]) -> Result<(), Refusal> {
        let Some(range) = &self.verify else {
            return Ok(());
        };
        let info = verify_csr(csr)
            .map_err(|e| Refusal::bad_request(format!("request refused by the relay: {e}")))?;
        if !range.contains(&info.serial) {
            return Err(Refusal {
                status: 403,
                message: format!(
                    "token serial {} is outside the agreed range {range} (refused by the relay)",
                    info.serial
                ),
            });
        }
        Ok(())
    }
}

impl Backend for Relay {
    fn authenticate(&self, auth: &Authenticated) -> Result<Caller, Refusal> {
        let name = self
            .stations
            .get(&auth.fingerprint)
            .ok_or_else(|| Refusal {
                status: 403,
                message: format!(
                    "the station certificate (SHA-256 {}) is not agreed with this relay",
                    auth.fingerprint
                ),
            })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *seen;
        // Forget nonces older than twice the window: their requests fail the time check.
        let cut = order
            .iter()
            .position(|(t, _)| now.saturating_sub(*t) <= 2 * MAX_SKEW_SECS)
            .unwrap_or(order.len());
        for (_, n) in order.drain(..cut) {
            set.remove(&n);
        }
        if !set.insert(auth.nonce.clone()) {
            return Err(Refusal {
                status: 401,
                message: format!("replayed request (nonce {} already used)", auth.nonce),
            });
        }
        order.push((now, auth.nonce.clone()));
        Ok(Caller {
            name: name.clone(),
            profile: auth.profile,
        })
    }

    fn log_refusal(&self, client: &str, _body: &[u8], refusal: &Refusal) {
        tracing::warn!(%client, status = refusal.status, "refused: {}", refusal.message);
    }

    fn enroll(&self, caller: &Caller, csr_der: &[u8]) -> Result<Vec<u8>, Refusal> {
        if let Err(r) = self.check(csr_der) {
            tracing::warn!(station = %caller.name, status = r.status, "{}", r.message);
            return Err(r);
        }
        let cred = self.forward_as(caller);
        let cert = client::enroll(&self.upstream, csr_der, Some(&cred)).map_err(upstream_err)?;
        tracing::info!(station = %caller.name, "forwarded one request");
        Ok(cert)
    }

    fn enroll_batch(&self, caller: &Caller, req: BatchRequest) -> Result<BatchResponse, Refusal> {
        // Check locally, forward the good ones in one batch, merge back in order.
        let mut slots: Vec<Option<BatchItem>> = Vec::with_capacity(req.csrs.len());
        let mut forward = Vec::new();
        for b64 in req.csrs {
            let item = match batch_entry(&b64) {
                Ok(csr) => match self.check(&csr) {
                    Ok(()) => {
                        forward.push(b64);
                        None
                    }
                    Err(r) => {
                        tracing::warn!(status = r.status, "{}", r.message);
                        Some(batch_item(&csr, Err(r)))
                    }
                },
                Err(item) => Some(item),
            };
            slots.push(item);
        }
        let forwarded = if forward.is_empty() {
            Vec::new()
        } else {
            let n = forward.len();
            let cred = self.forward_as(caller);
            let resp =
                client::raw_batch(&self.upstream, &BatchRequest { csrs: forward }, Some(&cred))
                    .map_err(upstream_err)?;
            if resp.results.len() != n {
                return Err(Refusal {
                    status: 502,
                    message: format!("CA gave {} results for {n} requests", resp.results.len()),
                });
            }
            tracing::info!(station = %caller.name, requests = n, "forwarded a batch");
            resp.results
        };
        let mut forwarded = forwarded.into_iter();
        let results = slots
            .into_iter()
            .map(|slot| {
                slot.or_else(|| forwarded.next())
                    .expect("one result per forwarded request")
            })
            .collect();
        Ok(BatchResponse { results })
    }

    fn cert(&self, token_serial: &str) -> Result<Option<Vec<u8>>, Refusal> {
        client::fetch_cert(&self.upstream, token_serial).map_err(upstream_err)
    }

    fn ca_certs(&self) -> Result<Vec<Vec<u8>>, Refusal> {
        client::ca_certs(&self.upstream).map_err(upstream_err)
    }

    // Operator authorisation (E1, step 201) is the CA's: forwarded as is.
    fn operator_challenge(&self) -> Result<api::OperatorChallenge, Refusal> {
        client::operator_challenge(&self.upstream).map_err(upstream_err)
    }

    fn operator_authorise(
        &self,
        answer: &api::OperatorAnswer,
    ) -> Result<api::OperatorAuthorised, Refusal> {
        client::operator_authorise(&self.upstream, answer).map_err(upstream_err)
    }
}
