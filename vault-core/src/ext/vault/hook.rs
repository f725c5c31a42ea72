//! The vault as the kernel sees it: an object hook that owns the vault entries
//! (SPEC V1–V4) and a lifecycle hook that resets the vault with the token.

use super::*;
use crate::token::hooks::{LifecycleHook, ObjectHook, OpClass};

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

    /// The vault's factory mode outlives re-initialization (V4); an optional vault
    /// goes back to not activated.
    fn reinitialize(&self, old: &Header, new: &mut Header) -> Result<()> {
        reset_for_reinit(old, new)
    }
}

impl Token {
    /// Checks a vault object about to be created, copied or changed through PKCS#11
    /// (`attrs` is the complete new object): the vault must be usable, the user
    /// logged in, the object private and on the token, `CKA_VALUE` a valid entry;
    /// the title becomes `CKA_LABEL`; then the user confirms.
    /// `old` is the object before a change or copy: an object cannot move into or
    /// out of the vault (`CKA_APPLICATION` is fixed), and a changed `CKA_LABEL`
    /// renames the entry.
    pub(crate) fn vault_before_write(
        &self,
        old: Option<&Attributes>,
        attrs: &mut Attributes,
        what: &str,
    ) -> Result<()> {
        self.vault_require_user()?;
        if let Some(old) = old {
            if is_vault_object(old) != is_vault_object(attrs) {
                return Err(Error::TemplateInconsistent(
                    "an object cannot move into or out of the vault (CKA_APPLICATION)".into(),
                ));
            }
        }
        if !attrs.bool_or(CKA_PRIVATE, true) || !attrs.bool_or(CKA_TOKEN, false) {
            return Err(Error::TemplateInconsistent(
                "vault entries are private token objects (CKA_PRIVATE and CKA_TOKEN true)".into(),
            ));
        }
        let mut e = entry_of(attrs)?;
        if let Some(old) = old {
            if attrs.get(CKA_LABEL) != old.get(CKA_LABEL)
                && attrs.get(CKA_VALUE) == old.get(CKA_VALUE)
            {
                e.title = attrs.label();
            }
        }
        e.normalize()?;
        let t = now();
        if e.created == 0 {
            e.created = t;
        }
        e.modified = t;
        attrs.set(CKA_LABEL, e.title.as_bytes().to_vec());
        attrs.set(CKA_VALUE, e.to_json()?.to_vec());
        self.confirm_write(format!("{what} this vault entry?"), &e, "")
    }

    /// Checks the deletion of a vault object through PKCS#11 (the user confirms).
    pub(crate) fn vault_before_destroy(&self, attrs: &Attributes) -> Result<()> {
        self.vault_require_user()?;
        let description = match entry_of(attrs) {
            Ok(e) => e.describe(),
            Err(_) => format!("Title: {}", attrs.label()),
        };
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Delete this vault entry?".into(),
                description,
            },
        )
    }
}
