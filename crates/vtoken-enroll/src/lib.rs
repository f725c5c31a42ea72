//! The issuing station (SPEC E1–E5, E9, E10): enrols vtoken tokens with a CA.
//!
//! The operator logs in to an operator token ([`operator`], E1). For each token the
//! station checks it is present and usable with a preset PIN or a PIN derived from its
//! serial ([`pin`], E2), finds a free key pair — a private key whose `CKA_ID` no
//! certificate carries — or generates one (E3), reads the serial (E4), builds a
//! PKCS#10 request signed inside the token (E5), sends it to the CA or a relay,
//! verifies the certificate with the CA certificate ([`trust`]) and writes it into the
//! token whose serial it carries, under the key's `CKA_ID` so NSS pairs them (E9).
//! Many tokens go one after another or as one batch whose certificates are matched
//! back by serial (E10); see [`station`].
//!
//! Invariants: a failing token is reported in its [`Outcome`] and never stops or
//! touches the others; nothing is written to a token unless its certificate verified,
//! and the certificate object is created in one step. Private keys never leave the
//! tokens: requests and the operator's signatures are made inside them.
//!
//! The library neither prompts nor prints: the caller resolves PINs, shows progress
//! through [`Progress`] and renders [`Outcome`]s and [`Error`]s.

pub mod error;
mod keys;
pub mod operator;
pub mod pin;
mod session;
pub mod station;
pub mod trust;

pub use error::{Error, NotReady, Result};
pub use operator::{Operator, OPERATOR_LABEL};
pub use pin::{derive_pin, read_secret, Pin, PinSource};
pub use session::TokenSession;
pub use station::{
    select_tokens, KeyType, Mode, Outcome, Progress, Selection, Station, StationConfig, Status,
};
pub use trust::Trust;
