//! Feature extensions: each plugs into the token kernel ([`crate::token`],
//! [`crate::session`]) through the hooks of [`crate::token::hooks`]; none is named
//! by the kernel.
//!
//! - [`vault`]: the password vault (SPEC V1–V4, V10);
//! - [`gate`]: the picture-verification gate (C1–C6);
//! - [`otp`]: OTP credentials (V9);
//! - [`identity`]: the identity key pair, its certificate chain, attestation and the backup requests (V7, V11);
//! - [`rks`]: remote key download, device and station side (K1–K5).
//! - [`wallet`]: the e-wallet: load, card transfer, payments (W1–W7).

pub mod gate;
pub mod identity;
pub mod otp;
pub mod rks;
pub mod sealed_unwrap;
pub mod vault;
pub mod wallet;

use std::sync::Arc;

use crate::token::hooks::Hooks;

/// The hooks every token opens with (see `crate::extensions`).
pub(crate) fn hooks() -> Hooks {
    Hooks::new(
        vec![Arc::new(vault::VaultHook)],
        Arc::new(gate::GateHook::default()),
        vec![
            Arc::new(vault::VaultHook),
            Arc::new(identity::IdentityHook),
            Arc::new(wallet::WalletHook),
        ],
    )
    .with_unwrap(vec![Arc::new(sealed_unwrap::SealedEnvelopeUnwrap)])
}
