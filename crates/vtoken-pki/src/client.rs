//! Blocking HTTP client for the CA server and the relay (E6, E8, E10), used by the
//! `vtoken enroll` command and by the relay itself.
//!
//! `base_url` is the server root, e.g. `http://127.0.0.1:8440` or, when the server
//! runs with `--tls-cert`/`--tls-key`, `https://ca.example.org:8440` (no trailing
//! path). HTTPS server certificates are checked against the Mozilla roots, or only
//! against the roots given to [`trust_tls_roots`] once that is called (a private CA).
//! Integrity does not rest on the transport: requests are self-signed and signed by the
//! operator's credential ([`crate::auth`]), and the station
//! checks each certificate against a CA certificate it got out of band
//! ([`crate::verify_chain`], E9) — do not trust [`ca_certs`] fetched over plain HTTP
//! as the root.

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::api::{self, BatchRequest, BatchResponse, ErrorBody};
use crate::auth::Credential;
use crate::{csr_token_serial, pkcs7, Error, Result};

/// Largest answer body read (a batch of certificates fits easily).
const MAX_BODY: u64 = 64 << 20;

/// The TLS client configuration set by [`trust_tls_roots`], if any.
static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Trust only the certificates in `pem` (one or more PEM `CERTIFICATE` blocks) as
/// roots for HTTPS server certificates, for the rest of the process. Returns how many
/// were read. Call it before the first request; a second call is an error.
pub fn trust_tls_roots(pem: &[u8]) -> Result<usize> {
    use der::Encode;
    let certs = crate::load_pem_chain(pem)
        .map_err(|e| Error::Transport(format!("TLS roots: not PEM certificates: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        let der = c
            .to_der()
            .map_err(|e| Error::Transport(format!("TLS roots: {e}")))?;
        roots
            .add(der.into())
            .map_err(|e| Error::Transport(format!("TLS roots: unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Transport("TLS roots: no certificate found".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Transport(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    TLS.set(Arc::new(config))
        .map_err(|_| Error::Transport("TLS roots are already set".into()))?;
    Ok(certs.len())
}

fn agent() -> ureq::Agent {
    let mut b = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(300));
    if let Some(tls) = TLS.get() {
        b = b.tls_config(tls.clone());
    }
    b.build()
}

fn url(base_url: &str, path: &str) -> String {
    format!("{}{path}", base_url.trim_end_matches('/'))
}

fn read_body(resp: ureq::Response) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .map_err(|e| Error::Transport(format!("reading the answer: {e}")))?;
    Ok(body)
}

/// POST `body` to `path`, signed by `auth` when given (see [`crate::auth`]).
fn post(
    base_url: &str,
    path: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    auth: Option<&Credential>,
) -> Result<Vec<u8>> {
    let mut req = agent()
        .post(&url(base_url, path))
        .set("Content-Type", content_type);
    for (k, v) in extra {
        req = req.set(k, v);
    }
    if let Some(cred) = auth {
        for (k, v) in cred.headers("POST", path, body)? {
            req = req.set(k, &v);
        }
    }
    answer(req.send_bytes(body))
}

/// Turn a ureq outcome into the body or an [`Error::Http`] / [`Error::Transport`].
fn answer(r: std::result::Result<ureq::Response, ureq::Error>) -> Result<Vec<u8>> {
    match r {
        Ok(resp) => read_body(resp),
        Err(ureq::Error::Status(status, resp)) => {
            let body = read_body(resp).unwrap_or_default();
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
            Err(Error::Http { status, message })
        }
        Err(e) => Err(Error::Transport(e.to_string())),
    }
}

/// One batch result: the token serial and its DER certificate or the refusal message.
pub type BatchOutcome = (String, std::result::Result<Vec<u8>, String>);

/// Send one DER PKCS#10 request, signed by the operator credential `auth` (the CA
/// refuses unsigned requests with 401); returns the DER certificate (E6, E8).
pub fn enroll(base_url: &str, csr_der: &[u8], auth: Option<&Credential>) -> Result<Vec<u8>> {
    post(base_url, api::ENROLL, api::CT_PKCS10, &[], csr_der, auth)
}

/// Send a batch of DER requests in one call; returns one `(token serial, outcome)` per
/// request, in request order. The serial is read from each request locally, so results
/// match back to tokens even when the CA refuses a request (E10).
pub fn enroll_batch(
    base_url: &str,
    csrs: Vec<Vec<u8>>,
    auth: Option<&Credential>,
) -> Result<Vec<BatchOutcome>> {
    let body = raw_batch(
        base_url,
        &BatchRequest {
            csrs: csrs.iter().map(|c| STANDARD.encode(c)).collect(),
        },
        auth,
    )?;
    if body.results.len() != csrs.len() {
        return Err(Error::Protocol(format!(
            "{} results for {} requests",
            body.results.len(),
            csrs.len()
        )));
    }
    Ok(csrs
        .iter()
        .zip(body.results)
        .map(|(csr, item)| {
            let serial = csr_token_serial(csr).unwrap_or(item.serial);
            let outcome = match (item.cert, item.error) {
                (Some(b64), _) => STANDARD
                    .decode(b64)
                    .map_err(|e| format!("bad base64 certificate from the server: {e}")),
                (None, Some(err)) => Err(err),
                (None, None) => Err("the server gave neither a certificate nor an error".into()),
            };
            (serial, outcome)
        })
        .collect())
}

/// The batch call with the JSON messages as they are (the relay forwards these).
pub fn raw_batch(
    base_url: &str,
    req: &BatchRequest,
    auth: Option<&Credential>,
) -> Result<BatchResponse> {
    let body = serde_json::to_string(req).map_err(|e| Error::Protocol(e.to_string()))?;
    let answer = post(
        base_url,
        api::ENROLL_BATCH,
        "application/json",
        &[],
        body.as_bytes(),
        auth,
    )?;
    serde_json::from_slice(&answer)
        .map_err(|e| Error::Protocol(format!("batch answer is not valid JSON: {e}")))
}

/// The newest certificate the CA published for token `serial` (E8), or `None` (404).
pub fn fetch_cert(base_url: &str, serial: &str) -> Result<Option<Vec<u8>>> {
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::InvalidSerial(serial.to_string()));
    }
    match answer(
        agent()
            .get(&url(base_url, &format!("{}{serial}", api::CERTS)))
            .call(),
    ) {
        Ok(der) => Ok(Some(der)),
        Err(Error::Http { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A fresh operator-authorisation challenge from the CA (E1, step 201).
pub fn operator_challenge(base_url: &str) -> Result<api::OperatorChallenge> {
    let body = answer(
        agent()
            .post(&url(base_url, api::OPERATOR_CHALLENGE))
            .send_bytes(&[]),
    )?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("challenge answer is not valid JSON: {e}")))
}

/// Sends the operator token's answer to a challenge; the CA's verdict.
pub fn operator_authorise(
    base_url: &str,
    answer_body: &api::OperatorAnswer,
) -> Result<api::OperatorAuthorised> {
    let json = serde_json::to_vec(answer_body)
        .map_err(|e| Error::Protocol(format!("encoding the answer: {e}")))?;
    let body = answer(
        agent()
            .post(&url(base_url, api::OPERATOR_AUTHORISE))
            .set("Content-Type", "application/json")
            .send_bytes(&json),
    )?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("authorisation answer is not valid JSON: {e}")))
}

/// Publishes a certificate to the certificate server at `base_url` (E8, step 310).
pub fn publish(base_url: &str, cert_der: &[u8]) -> Result<api::Published> {
    use base64::Engine;
    let json = serde_json::to_vec(&api::Publish {
        cert: base64::engine::general_purpose::STANDARD.encode(cert_der),
    })
    .map_err(|e| Error::Protocol(format!("encoding: {e}")))?;
    let body = answer(
        agent()
            .post(&url(base_url, api::PUBLISH))
            .set("Content-Type", "application/json")
            .send_bytes(&json),
    )?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("publish answer is not valid JSON: {e}")))
}

/// The "certificate ready" notices after number `after` (E8, step 310).
pub fn notices(base_url: &str, after: u64) -> Result<Vec<api::Notice>> {
    let body = answer(
        agent()
            .get(&url(base_url, &format!("{}?after={after}", api::NOTICES)))
            .call(),
    )?;
    serde_json::from_slice::<api::Notices>(&body)
        .map(|n| n.notices)
        .map_err(|e| Error::Protocol(format!("notices are not valid JSON: {e}")))
}

/// The CA certificates (DER), from the EST `cacerts` endpoint.
pub fn ca_certs(base_url: &str) -> Result<Vec<Vec<u8>>> {
    let body = answer(agent().get(&url(base_url, api::EST_CACERTS)).call())?;
    let certs = pkcs7::parse_certs_only(&pkcs7::base64_decode(&body)?)?;
    if certs.is_empty() {
        return Err(Error::Protocol("cacerts holds no certificate".into()));
    }
    Ok(certs)
}

/// EST simple enrollment (RFC 7030 4.2): base64 request in, certificates out.
pub fn est_simpleenroll(
    base_url: &str,
    csr_der: &[u8],
    auth: Option<&Credential>,
) -> Result<Vec<Vec<u8>>> {
    let body = post(
        base_url,
        api::EST_SIMPLEENROLL,
        api::CT_PKCS10,
        &[("Content-Transfer-Encoding", "base64")],
        pkcs7::base64_lines(csr_der).as_bytes(),
        auth,
    )?;
    pkcs7::parse_certs_only(&pkcs7::base64_decode(&body)?)
}
