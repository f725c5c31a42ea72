//! The vault as the kernel sees it: an object hook that owns the vault entries
//! (SPEC V1–V4) and a lifecycle hook that resets the vault with the token.

use super::{is_vault_object, reset_for_reinit};
use crate::attr::Attributes;
use crate::error::Result;
use crate::store::Header;
use crate::token::hooks::{LifecycleHook, ObjectHook, OpClass};
use crate::token::Token;

/// The vault's hooks.
pub(crate) struct VaultHook;

impl ObjectHook for VaultHook {
    fn claims(&self, attrs: &Attributes) -> bool {
        is_vault_object(attrs)
    }

    /// Vault entries exist for the user only while the vault is activated and enabled.
    fn visible(&self, t: &Token, user: bool) -> bool {
        user && t.vault_usable()
    }

    fn before_write(
        &self,
        t: &Token,
        old: Option<&Attributes>,
        new: &mut Attributes,
        verb: &str,
    ) -> Result<()> {
        t.vault_before_write(old, new, verb)
    }

    fn before_destroy(&self, t: &Token, attrs: &Attributes) -> Result<()> {
        t.vault_before_destroy(attrs)
    }

    /// A vault entry's value holds its passwords: the gate's `vault-password` class
    /// and the `vault-read` confirmation, as `vtoken vault get` has.
    fn before_value_read(&self, t: &Token, attrs: &Attributes) -> Result<()> {
        t.gate_check(
            OpClass::VaultPassword,
            Some(attrs),
            &format!("reveal vault entry \"{}\" through PKCS#11", attrs.label()),
        )?;
        t.confirm_for(
            "vault-read",
            &crate::prompt::Request {
                title: "Reveal a vault entry?".into(),
                description: format!("vault entry \"{}\" read through PKCS#11", attrs.label()),
            },
        )
    }
}

impl LifecycleHook for VaultHook {
    fn user_pin_set(&self, _: &Token) -> Result<()> {
        Ok(())
    }

    /// An optional vault goes back to its factory state (not activated).
    fn reinitialize(&self, h: &mut Header) -> Result<()> {
        reset_for_reinit(h)
    }
}
