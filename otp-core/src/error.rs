//! The error type shared by every fallible operation in this crate.

use thiserror::Error;

/// Convenient alias for `Result<T, otp_core::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong when generating codes, decoding base32 or
/// handling `otpauth://` URIs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested code length is outside the supported range `6..=10`.
    #[error("invalid number of digits {0}: must be between 6 and 10")]
    InvalidDigits(u32),

    /// A TOTP (or dynamic password) time step of zero seconds was requested.
    #[error("invalid period: the time step must be at least 1 second")]
    InvalidPeriod,

    /// The Unix time lies before the TOTP epoch `T0`, so no time step exists.
    #[error("time {time} lies before the TOTP epoch T0 = {t0}")]
    TimeBeforeEpoch {
        /// The Unix time that was passed in.
        time: u64,
        /// The configured epoch.
        t0: u64,
    },

    /// The shared secret (HMAC key) is empty.
    #[error("the shared secret is empty")]
    EmptySecret,

    /// The input is not valid RFC 4648 base32.
    #[error("invalid base32: {0}")]
    InvalidBase32(String),

    /// The `otpauth://` URI is structurally malformed (scheme, label, percent
    /// encoding, duplicated parameter, ...).
    #[error("invalid otpauth URI: {0}")]
    InvalidUri(String),

    /// The URI type is neither `totp` nor `hotp`.
    #[error("unknown OTP type {0:?}: expected \"totp\" or \"hotp\"")]
    UnknownOtpType(String),

    /// The URI has no (or an empty) `secret` parameter.
    #[error("the otpauth URI has no secret parameter")]
    MissingSecret,

    /// An `hotp` URI has no `counter` parameter.
    #[error("an hotp otpauth URI requires a counter parameter")]
    MissingCounter,

    /// The label has no account name.
    #[error("the otpauth URI label has no account name")]
    MissingAccount,

    /// The `algorithm` parameter names an unsupported hash.
    #[error("unsupported algorithm {0:?}: expected SHA1, SHA256 or SHA512")]
    UnsupportedAlgorithm(String),

    /// A parameter value could not be interpreted.
    #[error("invalid value {value:?} for parameter {name:?}")]
    InvalidParameter {
        /// Parameter name as it appeared in the URI.
        name: String,
        /// The offending (percent-decoded) value.
        value: String,
    },

    /// The issuer prefix of the label and the `issuer` parameter disagree.
    #[error("issuer mismatch: label says {label:?} but the issuer parameter says {parameter:?}")]
    IssuerMismatch {
        /// Issuer taken from the `issuer:account` label.
        label: String,
        /// Issuer taken from the `issuer=` parameter.
        parameter: String,
    },

    /// A dynamic password was requested with neither a time nor a counter.
    #[error("a dynamic password needs a moving factor: a time, a counter, or both")]
    MissingMovingFactor,

    /// A dynamic password was requested for an empty vault entry.
    #[error("the vault entry is empty, so it cannot seed a dynamic password")]
    EmptyEntry,
}
