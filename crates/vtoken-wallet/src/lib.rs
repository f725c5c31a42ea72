//! The vtoken e-wallet protocol (SPEC W1–W7, patent CN101211451A steps 301–318 and
//! G–I), shared by the token (`vault_core::wallet`), the bank
//! (`vtoken-server bank`) and the CLI (`vtoken wallet`, `vtoken card`).
//!
//! - [`amount`]: money as integer minor units with major-unit decimal text;
//! - [`msg`]: the signed messages, each carrying the user identity and a check code;
//! - [`record`]: the load state machine (exactly-once money);
//! - [`card`]: the virtual contactless card, an encrypted file with a PIN retry counter;
//! - [`keys`]: P-256 keys of SubjectPublicKeyInfos and certificates;
//! - [`seal`]: the load request encrypted to the bank (step 309, "may encrypt").

#![forbid(unsafe_code)]

pub mod amount;
pub mod card;
pub mod keys;
pub mod msg;
pub mod record;
pub mod seal;

pub use amount::Amount;
pub use msg::{Envelope, Kind};
pub use record::LoadState;

/// What can go wrong in the protocol.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not an amount or currency.
    #[error("{0}")]
    Amount(String),
    /// A message failed its check code, signature or decoding.
    #[error("message refused: {0}")]
    BadMessage(String),
    /// A message could not be encoded.
    #[error("message: {0}")]
    Message(String),
    /// A load record move that is not allowed.
    #[error("{0}")]
    State(String),
    /// A key or certificate that is not usable.
    #[error("{0}")]
    Key(String),
    /// The card refused (wrong PIN, blocked, not trusted, balance).
    #[error("card: {0}")]
    Card(String),
    /// Reading or writing a file.
    #[error("{0}")]
    Io(String),
}

/// The bank's HTTP paths (bodies and answers: a postcard [`Envelope`]; refusals:
/// JSON `{"error": "..."}` with a 4xx status).
pub mod api {
    /// GET: the bank certificate (PEM), step 301.
    pub const BANK_PEM: &str = "/wallet/v1/bank.pem";
    /// POST a signed load request (309) → a signed permit (311).
    pub const LOAD: &str = "/wallet/v1/load";
    /// POST a signed load request encrypted to the bank ([`crate::seal`]) → a
    /// signed permit, as [`LOAD`].
    pub const LOAD_SEALED: &str = "/wallet/v1/load-sealed";
    /// POST a signed receipt (314) → a signed settlement (316–318).
    pub const RECEIPT: &str = "/wallet/v1/receipt";
    /// POST a signed abort (313/315) → a signed settlement.
    pub const ABORT: &str = "/wallet/v1/abort";
    /// POST a signed purchase record → JSON verdict (W7).
    pub const PURCHASE: &str = "/wallet/v1/purchase";
}
