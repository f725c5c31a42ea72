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
//! | `POST /api/v1/operator/challenge` | — | [`OperatorChallenge`] JSON (E1, step 201) |
//! | `POST /api/v1/operator/authorise` | [`OperatorAnswer`] JSON | [`OperatorAuthorised`] JSON |
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

/// Operator authorisation (E1, seed 001 step 201): a fresh challenge.
pub const OPERATOR_CHALLENGE: &str = "/api/v1/operator/challenge";
/// Operator authorisation: the challenge answered by the operator token's key.
pub const OPERATOR_AUTHORISE: &str = "/api/v1/operator/authorise";
/// How long a challenge can be answered, in seconds.
pub const CHALLENGE_SECS: u64 = 60;

/// `POST /api/v1/operator/challenge` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorChallenge {
    /// 32 random bytes, lower-case hex; answerable once, for [`CHALLENGE_SECS`].
    pub challenge: String,
    /// Seconds it stays answerable.
    pub expires_in: u64,
}

/// `POST /api/v1/operator/authorise` body: the operator certificate and its key's
/// signature over [`crate::auth::challenge_message`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAnswer {
    /// The challenge answered.
    pub challenge: String,
    /// The operator certificate, DER in standard base64.
    pub cert: String,
    /// The signature, standard base64.
    pub signature: String,
}

/// `POST /api/v1/operator/authorise` answer: who the CA knows the operator as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAuthorised {
    /// The operator's registered name.
    pub operator: String,
    /// The profiles it may request.
    pub profiles: Vec<String>,
}

/// Certificate server (E8, steps 310–311): the CA publishes a certificate.
pub const PUBLISH: &str = "/api/v1/publish";
/// Certificate server: the "certificate ready" notices, `?after=N`.
pub const NOTICES: &str = "/api/v1/notices";
/// Most notices in one answer.
pub const MAX_NOTICES: usize = 1000;

/// `POST /api/v1/publish` body (certificate server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// The certificate, DER in standard base64.
    pub cert: String,
}

/// `POST /api/v1/publish` answer: the notice the publication made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The notice's sequence number.
    pub notice: u64,
    pub token_serial: String,
    pub cert_serial: String,
}

/// One "certificate ready" notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Sequence number (increasing).
    pub id: u64,
    /// The token the certificate is for.
    pub token_serial: String,
    /// The certificate's serial number (hex).
    pub cert_serial: String,
}

/// `GET /api/v1/notices` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notices {
    pub notices: Vec<Notice>,
}

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
