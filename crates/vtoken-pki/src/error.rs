//! One error type for the crate; callers (the CLI, the server) map its variants.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as data: the server maps these to HTTP statuses, the CLI to messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// DER/PEM decoding or encoding failed (malformed request or certificate).
    #[error("ASN.1 DER: {0}")]
    Der(#[from] der::Error),
    /// The input parsed but does not have the shape this crate expects.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A signature (request self-signature or certificate signature) does not verify.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// A signature or key algorithm this crate does not handle.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The subject carries no token serial (serialNumber, 2.5.4.5).
    #[error("no token serial (serialNumber attribute) in the subject")]
    NoTokenSerial,
    /// A token serial that is empty, too long or not printable.
    #[error("invalid token serial {0:?}")]
    InvalidSerial(String),
    /// A serial range that does not parse.
    #[error("invalid serial range {0:?} (expected LO-HI, 1 to 16 hex digits each, LO <= HI)")]
    InvalidRange(String),
    /// The signing callback given to [`crate::build_csr`] failed; the source is its error.
    #[error("signer: {0}")]
    Signer(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A key file or key that cannot be used.
    #[error("key: {0}")]
    Key(String),
    /// A certificate does not carry the profile (usage) a use requires.
    #[error("certificate usage: {0}")]
    WrongUsage(String),
    /// A signed API request that is not authenticated: why.
    #[error("request authentication: {0}")]
    Auth(String),
    /// Chain verification failed (which link and why).
    #[error("certificate chain: {0}")]
    Chain(String),
    /// File I/O with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server answered with an error status; `message` is its explanation.
    #[error("server refused (HTTP {status}): {message}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// The server's error text (JSON `error` field or body).
        message: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered 200 with a body this client cannot use.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
