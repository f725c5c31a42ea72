//! The station's errors. Token failures keep their `vault_core::Error` so a caller
//! can explain them in its own words; every other variant displays the complete
//! message.

use std::path::PathBuf;

use vault_core::token::UserType;
use vtoken_pki::SigAlg;

/// Result alias of the station.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a token cannot be enrolled as it is (checked before logging in, E2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the token has no user PIN yet (not initialised for issuance)")]
    NoUserPin,
    #[error("the token is read-only (its file cannot be written)")]
    ReadOnly,
    #[error("the user PIN is locked (unlock it with `vtoken pin unlock`)")]
    UserPinLocked,
}

/// A failure of the station, for one token or for the whole run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A token operation failed.
    #[error("{0}")]
    Token(#[from] vault_core::Error),
    /// A login was refused; `tries_left` is what the token reported after it.
    #[error("login failed: {error}")]
    Login {
        who: UserType,
        error: vault_core::Error,
        tries_left: Option<u32>,
    },
    /// The token is not in a state to be enrolled.
    #[error("{0}")]
    NotReady(NotReady),
    /// A token file of the token directory cannot be read (`--all`).
    #[error("unreadable token file: {0}")]
    Unreadable(vault_core::Error),
    /// A file the station needs cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The station secret cannot be read.
    #[error("cannot read the station secret {}: {source}", path.display())]
    SecretUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The station secret is shorter than [`crate::pin::MIN_SECRET`] bytes.
    #[error("the station secret in {} is shorter than {} bytes", path.display(), crate::pin::MIN_SECRET)]
    SecretTooShort { path: PathBuf },
    /// The CA certificate given or fetched is not usable; `origin` is its file or URL.
    #[error("{origin}: {reason}")]
    CaCertificate { origin: String, reason: String },
    /// The CA certificate cannot be fetched.
    #[error("cannot fetch the CA certificate from {url}: {source}")]
    CaFetch {
        url: String,
        source: vtoken_pki::Error,
    },
    /// The fetched CA certificate is not the pinned one.
    #[error(
        "the CA certificate from {url} has SHA-256 fingerprint {got}, not the \
         expected {want}: refusing to enrol"
    )]
    FingerprintMismatch {
        url: String,
        got: String,
        want: String,
    },
    /// An issued certificate failed the checks (chain, serial, key, usage).
    #[error("{0}")]
    CertificateRejected(String),
    /// A PKI operation (key algorithm, certificate parsing) failed.
    #[error("{0}")]
    Pki(#[from] vtoken_pki::Error),
    /// The PKCS#10 request cannot be built.
    #[error("building the request: {0}")]
    Request(vtoken_pki::Error),
    /// The token has no mechanism for this signature algorithm.
    #[error("no token mechanism for {0:?}")]
    NoMechanism(SigAlg),
    /// The CA or relay did not answer, or answered with an error.
    /// (Shared: one failed batch call fails each of its tokens.)
    #[error("CA: {0}")]
    Ca(std::sync::Arc<vtoken_pki::Error>),
    /// The CA refused this token's request (batch answer).
    #[error("CA refused: {0}")]
    Refused(String),
    /// A batch answer had nothing for this token.
    #[error("the CA gave no answer for this token")]
    NoAnswer,
    /// A token named for enrolment is the operator's.
    #[error("{0} is the operator token; it is never enrolled")]
    IsOperator(String),
    /// No token to enrol at all.
    #[error("no token to enrol in {}", dir.display())]
    NoTokens { dir: PathBuf },
    /// The operator token cannot be found.
    #[error("operator token: {0}")]
    OperatorToken(vault_core::Error),
    /// The operator login failed: nothing is enrolled.
    #[error("operator authentication failed on token '{label}': {source}; nothing was enrolled")]
    OperatorLogin { label: String, source: Box<Error> },
    /// The operator token holds no operator credential.
    #[error(
        "the operator token '{label}' holds no operator credential (a certificate labelled \
         {label_cred} with its key): make one with `vtoken enroll operator-request`, \
         have the CA register it (`vtoken-server ca operator add --csr`), then \
         `vtoken enroll operator-install`; nothing was enrolled",
        label_cred = crate::OPERATOR_LABEL
    )]
    NoOperatorCredential { label: String },
    /// The operator certificate certifies a key that is not on the operator token.
    #[error("the certificate certifies a key that is not on the operator token '{label}'")]
    OperatorKeyMissing { label: String },
    /// No certificate for the token on the certificate server yet (E8).
    #[error(
        "no certificate published for this token yet (run `vtoken enroll collect` again later)"
    )]
    NotPublished,
    /// Step 201 refused the operator token: not an authorised one.
    #[error("operator token '{label}' is not authorised: {reason}; nothing was enrolled")]
    OperatorNotAuthorised { label: String, reason: String },
}
