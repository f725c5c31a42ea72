//! Vault entries that arrive sealed to the token (SPEC V8, the Fig. 6 client flow):
//! the data is opened inside the token, shown through the trusted prompt and stored
//! only on the user's confirmation (V5); the client never holds the plaintext.

use super::*;

impl Token {
    /// Opens `sealed` — a CMS envelope or data encrypted directly to this token's
    /// device key ([`Token::open_sealed`], both V8 delivery options) — inside the
    /// token and stores it as a vault entry, after the user confirms what the token
    /// received ([`Token::vault_add`]). The plaintext is an entry as JSON (the
    /// [`Entry`] of `CKA_VALUE`: any kind, every field, secret flags included;
    /// `title` then renames it), or, with `title`, a bare password (UTF-8) that
    /// becomes a custom entry with one secret field `password`.
    pub fn vault_add_sealed(&self, sealed: &[u8], title: Option<&str>) -> Result<u64> {
        self.vault_require_user()?;
        let plain = self.open_sealed(sealed)?;
        let mut e = match Entry::from_json(&plain) {
            Ok(e) => e,
            Err(_) => {
                let title = title.ok_or_else(|| {
                    Error::ArgumentsBad(
                        "the sealed data is not a vault entry (JSON); a bare password needs a \
                         title"
                            .into(),
                    )
                })?;
                let text = std::str::from_utf8(&plain).map_err(|_| {
                    Error::ArgumentsBad("a sealed password must be UTF-8 text".into())
                })?;
                Entry::new(Kind::Custom, title).with("password", text.trim_end_matches('\n'), true)
            }
        };
        if let Some(t) = title {
            e.title = t.to_string();
        }
        self.vault_add(&e)
    }
}
