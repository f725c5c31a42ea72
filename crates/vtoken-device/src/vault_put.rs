//! The remote management client's store flow of the seed patent's Fig. 6 (SPEC
//! V4–V8) as one call: storage-enable request → the token's state reply →
//! random + certificate request → PIN on the token → the client verifies the
//! device (V7) → the data travels sealed to that device (V8) → the token opens it
//! inside, shows it as received (V5) → the user confirms → stored.

use std::time::SystemTime;

use vault_core::token::{Token, UserType};
use vault_core::vault::{Entry, VaultPhase};
use zeroize::Zeroizing;

use crate::{attest, new_nonce, rejected, unhex, verify_attestation, Error, Result};

/// Stores `entry` on `token` through the Fig. 6 flow and returns the new entry's
/// id. `root_der` is the root the client trusts for device certificates;
/// `channel` carries the sealed envelope from the client to the token (identity
/// for a local token; a test puts an attacker there). Refused before anything is
/// sealed when the vault is not enabled (S201/S202), the PIN is wrong, or the
/// device does not prove itself against `root_der`; refused by the token when the
/// envelope was changed on its way or the user does not confirm what is shown.
pub fn put_sealed(
    token: &Token,
    pin: &[u8],
    root_der: &[u8],
    entry: &Entry,
    now: SystemTime,
    channel: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Result<u64> {
    // Storage-enable request and the token's reply.
    let state = token.vault_status()?.state;
    if state != VaultPhase::Enabled {
        return rejected(format!(
            "the token's vault is {}: activate and enable it first \
             (vtoken vault activate / vtoken vault enable)",
            state.as_str()
        ));
    }
    // The client's random; the PIN on the token; the token's signed answer with
    // its certificate, checked by the client (V7).
    let nonce = new_nonce()?;
    if token.logged_in() != Some(UserType::User) {
        token.login(UserType::User, pin)?;
    }
    let att = attest(token, &nonce)?;
    verify_attestation(&att, root_der, &nonce, now)?;
    let leaf = unhex("certificate", &att.chain[0])?;
    // Sealed to the verified device only (V8).
    let json = Zeroizing::new(
        serde_json::to_vec(entry).map_err(|e| Error::Rejected(format!("vault entry: {e}")))?,
    );
    let envelope = vault_core::sealed::seal(&leaf, &json)?;
    let received = channel(envelope);
    // Opened, shown and confirmed inside the token.
    Ok(token.vault_add_sealed(&received, None)?)
}
