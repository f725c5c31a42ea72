//! The certificate authority behind the API (E7, E8): checks each request, issues,
//! stores and publishes certificates.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use vtoken_pki::api::{BatchRequest, BatchResponse};
use vtoken_pki::{verify_chain, verify_csr, LocalCa, SerialRange};

use crate::http::{batch_entry, batch_item, Backend, Refusal};
use crate::store::{IssuedCert, Store, DB_FILE};

/// The CA: its key and certificate, its database, the serial range it serves.
pub struct Authority {
    ca: LocalCa,
    store: Mutex<Store>,
    range: SerialRange,
    days: u32,
}

impl Authority {
    /// Load the CA from `dir` (made by `ca init`) and open its database.
    pub fn open(dir: &Path, range: SerialRange, days: u32) -> Result<Authority, String> {
        let ca = LocalCa::load(dir).map_err(|e| {
            format!(
                "loading the CA from {d}: {e} (create one with `vtoken-server ca init --dir {d}`)",
                d = dir.display()
            )
        })?;
        let db = dir.join(DB_FILE);
        let store = Store::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
        Ok(Authority {
            ca,
            store: Mutex::new(store),
            range,
            days,
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

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock leaves no half-written state (SQLite commits
        // are atomic), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db_err(e: rusqlite::Error) -> Refusal {
        tracing::error!("database: {e}");
        Refusal::internal(format!("CA database: {e}"))
    }

    fn decide(&self, store: &Store, csr_der: &[u8]) -> Result<Vec<u8>, Refusal> {
        let info = verify_csr(csr_der)
            .map_err(|e| Refusal::bad_request(format!("request refused: {e}")))?;
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
        if let Some(der) = store
            .find(&info.serial, &spki_sha256, usage)
            .map_err(Self::db_err)?
        {
            tracing::info!(token = %info.serial, "re-enrollment: returning the stored certificate");
            return Ok(der);
        }
        let der = self
            .ca
            .issue(&info, self.days)
            .map_err(|e| Refusal::internal(format!("issuing: {e}")))?;
        // Check our own output before publishing it.
        let checked = verify_chain(&der, &[], self.ca.cert_der(), SystemTime::now())
            .map_err(|e| Refusal::internal(format!("issued certificate does not verify: {e}")))?;
        store
            .insert(&IssuedCert {
                cert_serial: checked.cert_serial.clone(),
                token_serial: info.serial.clone(),
                spki_sha256,
                usage: usage.to_string(),
                der: der.clone(),
            })
            .map_err(Self::db_err)?;
        tracing::info!(token = %info.serial, cert = %checked.cert_serial, %usage, "issued");
        Ok(der)
    }
}

impl Backend for Authority {
    fn enroll(&self, csr_der: &[u8]) -> Result<Vec<u8>, Refusal> {
        let store = self.store();
        let outcome = self.decide(&store, csr_der);
        let serial = vtoken_pki::csr_token_serial(csr_der).unwrap_or_default();
        let (status, text) = match &outcome {
            Ok(_) => (200, "issued".to_string()),
            Err(r) => {
                tracing::warn!(token = %serial, status = r.status, "{}", r.message);
                (r.status, r.message.clone())
            }
        };
        store
            .log_request(&serial, status, &text)
            .map_err(Self::db_err)?;
        outcome
    }

    fn enroll_batch(&self, req: BatchRequest) -> Result<BatchResponse, Refusal> {
        let mut results = Vec::with_capacity(req.csrs.len());
        for b64 in &req.csrs {
            results.push(match batch_entry(b64) {
                Ok(csr) => {
                    match self.enroll(&csr) {
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

    fn cert(&self, token_serial: &str) -> Result<Option<Vec<u8>>, Refusal> {
        self.store().latest(token_serial).map_err(Self::db_err)
    }

    fn ca_certs(&self) -> Result<Vec<Vec<u8>>, Refusal> {
        Ok(vec![self.ca.cert_der().to_vec()])
    }
}
