//! The CA server's HTTP API (E6–E8): paths and JSON messages, shared by the server,
//! the relay and [`crate::client`].
//!
//! | method, path | request | answer |
//! |---|---|---|
//! | `POST /api/v1/enroll` | DER PKCS#10, `application/pkcs10` | DER certificate, `application/pkix-cert` |
//! | `POST /api/v1/enroll-batch` | [`BatchRequest`] JSON | [`BatchResponse`] JSON |
//! | `GET /api/v1/certs/{serial}` | — | newest certificate of token `serial`, DER; 404 if none |
//! | `GET /api/v1/ca.pem` | — | CA certificate, PEM |
//! | `GET /.well-known/est/cacerts` | — | base64 certs-only PKCS#7 (RFC 7030 4.1) |
//! | `POST /.well-known/est/simpleenroll` | base64 PKCS#10 | base64 certs-only PKCS#7 (RFC 7030 4.2) |
//!
//! Every POST must be signed by a registered operator ([`crate::auth`]).
//!
//! Errors are HTTP 400 (malformed request, bad signature), 401 (no or bad operator
//! signature, replayed nonce), 403 (unknown operator, profile not allowed, serial
//! outside the agreed range), 404, 409 (the token holds a live certificate for
//! another key), 429 (rate limit), 502 (relay: CA unreachable), with an [`ErrorBody`]
//! JSON body.

use serde::{Deserialize, Serialize};

/// Single enrollment.
pub const ENROLL: &str = "/api/v1/enroll";
/// Batch enrollment.
pub const ENROLL_BATCH: &str = "/api/v1/enroll-batch";
/// Published certificates: append the token serial.
pub const CERTS: &str = "/api/v1/certs/";
/// CA certificate in PEM.
pub const CA_PEM: &str = "/api/v1/ca.pem";
/// EST CA certificates.
pub const EST_CACERTS: &str = "/.well-known/est/cacerts";
/// EST simple enrollment.
pub const EST_SIMPLEENROLL: &str = "/.well-known/est/simpleenroll";

/// EST simple re-enrollment.
pub const EST_SIMPLEREENROLL: &str = "/.well-known/est/simplereenroll";

/// Content type of a DER PKCS#10 request.
pub const CT_PKCS10: &str = "application/pkcs10";
/// Content type of a DER certificate.
pub const CT_CERT: &str = "application/pkix-cert";
/// Content type of an EST certs-only reply.
pub const CT_PKCS7_CERTS: &str = "application/pkcs7-mime; smime-type=certs-only";

/// Most requests in one batch.
pub const MAX_BATCH: usize = 1000;

/// `POST /api/v1/enroll-batch` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// DER PKCS#10 requests, standard base64.
    pub csrs: Vec<String>,
}

/// `POST /api/v1/enroll-batch` answer: one item per request, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Results in the order of [`BatchRequest::csrs`].
    pub results: Vec<BatchItem>,
}

/// The outcome for one request of a batch: `cert` or `error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// Token serial named by the request (empty when the request did not parse).
    pub serial: String,
    /// The certificate, DER in standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Why no certificate was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One-line explanation.
    pub error: String,
}
