//! The relay (E6): forwards the API to the CA; with `--verify` it checks each request's
//! signature and serial range first and refuses bad ones without contacting the CA.

use vtoken_pki::api::{BatchItem, BatchRequest, BatchResponse};
use vtoken_pki::{client, verify_csr, Error, SerialRange};

use crate::http::{batch_entry, batch_item, Backend, Refusal};

/// A relay in front of the CA at `upstream`.
pub struct Relay {
    /// CA base URL, e.g. `http://127.0.0.1:8440`.
    pub upstream: String,
    /// When set, requests are checked here first (signature and this range).
    pub verify: Option<SerialRange>,
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
    fn enroll(&self, csr_der: &[u8]) -> Result<Vec<u8>, Refusal> {
        if let Err(r) = self.check(csr_der) {
            tracing::warn!(status = r.status, "{}", r.message);
            return Err(r);
        }
        let cert = client::enroll(&self.upstream, csr_der).map_err(upstream_err)?;
        tracing::info!("forwarded one request");
        Ok(cert)
    }

    fn enroll_batch(&self, req: BatchRequest) -> Result<BatchResponse, Refusal> {
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
            let resp = client::raw_batch(&self.upstream, &BatchRequest { csrs: forward })
                .map_err(upstream_err)?;
            if resp.results.len() != n {
                return Err(Refusal {
                    status: 502,
                    message: format!("CA gave {} results for {n} requests", resp.results.len()),
                });
            }
            tracing::info!(requests = n, "forwarded a batch");
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
}
