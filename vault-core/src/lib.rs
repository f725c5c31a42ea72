//! # vault-core — the vtoken virtual token
//!
//! A software secure token: PIN state machine (SPEC T2), PKCS#11 objects with full
//! attribute semantics (T3), mechanisms (T4) and an encrypted, crash-safe,
//! multi-process token store (one SQLite file per token, records under AES-256-GCM).
//!
//! The PKCS#11 module (`pkcs11-module/`), the `vtoken` CLI and Rust programs all
//! drive the token through this crate. It contains no `unsafe` code.
//!
//! Where things live:
//! - [`attr`]: attributes in PKCS#11 encoding;
//! - [`mechanism`]: the cryptography (with the asymmetric backend seam);
//! - [`error`]: the one error enum, each variant one `CKR_*`.
#![forbid(unsafe_code)]

pub mod attr;
pub mod config;
pub mod error;
pub mod ext;
pub mod mechanism;
pub mod object;
pub mod prompt;
pub mod sealed;
pub mod session;
pub mod slots;
pub mod store;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod token;
pub mod vendor;

pub use ext::{gate, identity, otp, vault, wallet};

/// The extensions a token opens with: the one place the kernel's registry meets
/// [`ext`] (the kernel modules never name it).
pub(crate) fn extensions() -> token::hooks::Hooks {
    ext::hooks()
}

pub use attr::Attributes;
/// Re-export of the PKCS#11 constants and types the API uses.
pub use cryptoki_sys as pkcs11;
pub use error::{Error, Result};
