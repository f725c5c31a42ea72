//! # otp-core
//!
//! One-time passwords for vtoken: the codes of the token's OTP credentials (`vtoken
//! otp`, X5) and the dynamic passwords derived from vault entries (SPEC V9):
//!
//! * [`hotp`] — HMAC-based one-time passwords, RFC 4226, with dynamic
//!   truncation and 6 to 10 zero-padded digits;
//! * [`totp`] — time-based one-time passwords, RFC 6238, with SHA-1, SHA-256
//!   or SHA-512 ([`Algorithm`]);
//! * [`verify_hotp`] / [`verify_totp`] — verification within a look-ahead or
//!   clock-skew window, with constant-time code comparison;
//! * [`base32`] — RFC 4648 base32 (tolerant decoding, unpadded encoding);
//! * [`OtpUri`] — `otpauth://` URIs in the Google Key URI format (rules in
//!   [`uri`]);
//! * [`dynamic_password`] — "V9" dynamic passwords derived from a vault entry
//!   via [`seed_from_entry`] (mapping and moving factor in [`dynamic`]).
//!
//! ```
//! use otp_core::{hotp, totp, verify_totp, Algorithm, OtpUri};
//!
//! // RFC 4226 Appendix D.
//! assert_eq!(hotp(b"12345678901234567890", 1, 6, Algorithm::Sha1)?, "287082");
//!
//! // RFC 6238 Appendix B.
//! let code = totp(b"12345678901234567890", 1111111109, 30, 0, 8, Algorithm::Sha1)?;
//! assert_eq!(code, "07081804");
//! assert_eq!(
//!     verify_totp(b"12345678901234567890", &code, 1111111139, 30, 0, 1, 8, Algorithm::Sha1),
//!     Some(-1)
//! );
//!
//! let uri = OtpUri::parse("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example")?;
//! assert_eq!(uri.name(), "Example:alice@google.com");
//! let _current = uri.code(1_700_000_000)?;
//! # Ok::<(), otp_core::Error>(())
//! ```
//!
//! The crate contains no `unsafe` code. Secrets held by [`OtpUri`] are zeroized
//! on drop; temporary key material is zeroized where practical.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod base32;
pub mod dynamic;
mod error;
mod otp;
pub mod uri;

pub use dynamic::{
    dynamic_password, moving_factor, seed_from_entry, verify_dynamic_password, DynamicMatch,
    DynamicWindow, DYNAMIC_ALGORITHM,
};
pub use error::{Error, Result};
pub use otp::{
    hotp, time_step, totp, verify_hotp, verify_totp, Algorithm, DEFAULT_DIGITS, DEFAULT_PERIOD,
    MAX_DIGITS, MIN_DIGITS,
};
pub use uri::{OtpKind, OtpUri};
