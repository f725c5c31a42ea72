//! An open token with one R/W session, as a PKCS#11 client holds it.

use std::sync::Arc;

use vault_core::session::SessionRef;
use vault_core::slots::{Registry, TokenEntry};
use vault_core::token::{Token, UserType};

use crate::error::{Error, Result};

/// An open token and its session. Dropping it closes the session (and so logs out).
pub struct TokenSession {
    pub entry: TokenEntry,
    pub token: Arc<Token>,
    pub sid: SessionRef,
}

impl TokenSession {
    /// Opens the token of `entry` with one R/W session.
    pub fn open(registry: &Registry, entry: &TokenEntry) -> Result<TokenSession> {
        let token = registry.open(entry)?;
        TokenSession::with(entry, token)
    }

    /// A new R/W session on an already opened `token`.
    pub fn with(entry: &TokenEntry, token: Arc<Token>) -> Result<TokenSession> {
        let sid = token.open_session(true)?;
        Ok(TokenSession {
            entry: entry.clone(),
            token,
            sid,
        })
    }

    /// Logs in as `who`. A refusal is [`Error::Login`] with the tries the token
    /// has left after it, so the caller can say how close the PIN is to locking.
    pub fn login(&self, who: UserType, pin: &str) -> Result<()> {
        self.token
            .login(who, pin.as_bytes())
            .map_err(|error| login_error(&self.token, who, error))
    }
}

impl Drop for TokenSession {
    fn drop(&mut self) {
        let _ = self.token.close_session(&self.sid);
    }
}

/// A refused login with the tries left (read back from the token).
fn login_error(token: &Token, who: UserType, error: vault_core::Error) -> Error {
    let tries_left = token.info().ok().map(|i| {
        let s = if who == UserType::User {
            i.user_pin
        } else {
            i.so_pin
        };
        s.max_tries.saturating_sub(s.failures)
    });
    Error::Login {
        who,
        error,
        tries_left,
    }
}
