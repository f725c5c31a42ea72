//! Remote key download with mutual authentication (seed CN103714642A, SPEC K1–K5).
//!
//! A device (a vtoken token) downloads its terminal master keys (TMK) from a remote
//! key server (RKS). This crate holds everything both sides share and nothing that
//! does I/O:
//!
//! - [`derive`]: the K3 one-way derivation DIK1 → DIK2;
//! - [`frame`]: the versioned, length-checked message framing;
//! - [`devcrypto`]: the device's primitives, pure Rust (feature `device`, what the
//!   token core uses); [`crypto`] adds the server's (feature `protocol`): the primitives the protocol names (RSA-OAEP-SHA256 to the working
//!   key, the root's RSA PKCS#1 v1.5 / SHA-256 signature over the working key,
//!   AES-256-GCM under the transport key TK);
//! - [`device`]: the device's state machine (patent steps S301, S303–S305,
//!   S311–S314, S320–S324);
//! - [`server`]: the server's protocol logic (S302, S306–S310, S317–S319, S322–S324)
//!   over a [`server::Directory`] that keeps DIK1 records, the key queue and the
//!   audit log.

#![forbid(unsafe_code)]

#[cfg(feature = "protocol")]
pub mod crypto;
pub mod derive;
#[cfg(feature = "device")]
pub mod devcrypto;
#[cfg(feature = "device")]
pub mod device;
pub mod frame;
#[cfg(feature = "protocol")]
pub mod server;
pub mod tmk;

pub use derive::{derive_dik2, DIK_LEN};

/// AT, TK1, TK2 and TK: 24 bytes each (S308, S312).
pub const AT_LEN: usize = 24;
/// The plaintext of an acknowledgement after the key's uid (S321).
pub const ACK_TEXT: &[u8] = b"stored";

/// Why a protocol step failed. The message is the one both sides show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RksError {
    /// S303: the working key's signature does not verify under the root key.
    #[error("server authentication failed: {0}")]
    ServerAuth(String),
    /// S317–S318: AT or the TK hash did not match (or the device cannot decrypt).
    #[error("device authentication failed: {0}")]
    DeviceAuth(String),
    /// S307: no DIK1 for this DSN.
    #[error("unknown device: {0}")]
    UnknownDevice(String),
    /// A message that is malformed, cut short, padded, out of order or from another
    /// session.
    #[error("bad message: {0}")]
    BadMessage(String),
    /// The peer refused (its message).
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// A local failure (storage, randomness).
    #[error("{0}")]
    Local(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, RksError>;
