//! Choosing a token and talking to it like a PKCS#11 client: one R/W session,
//! logins with helpful messages, and a logout when done.

use std::sync::Arc;

use vault_core::config::Config;
use vault_core::session::SessionRef;
use vault_core::slots::{Registry, TokenEntry};
use vault_core::token::{Token, UserType};
use vault_core::Error;

use crate::error::{bail, describe, CliError, Result};
use crate::pin::Pin;

/// The loaded configuration and token registry.
pub struct Ctx {
    pub registry: Registry,
    /// `--token`.
    pub token: Option<String>,
}

impl Ctx {
    /// Loads `VTOKEN_CONF` (or the XDG defaults) and starts logging.
    pub fn load(token: Option<String>) -> Result<Ctx> {
        let cfg = Config::load()?;
        // The CLI reports failures itself (one `error:` line); the core's warnings
        // (e.g. "wrong PIN") are noise here unless asked for with VTOKEN_LOG or [log].
        let mut log = cfg.log.clone();
        if log.level.is_none() {
            log.level = Some("error".into());
        }
        vault_core::config::init_logging(&log);
        Ok(Ctx {
            registry: Registry::new(cfg),
            token,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.registry.config()
    }

    /// The token named by `--token`, or the only token there is.
    pub fn entry(&self) -> Result<TokenEntry> {
        if let Some(name) = &self.token {
            return Ok(self.registry.find(name)?);
        }
        let all = self.registry.tokens()?;
        match all.len() {
            1 => Ok(all.into_iter().next().expect("one token")),
            0 => bail!(
                "no token in {} (create one with `vtoken init --label LABEL`)",
                self.config().token_dir.display()
            ),
            _ => {
                let names: Vec<String> = all
                    .iter()
                    .map(|t| format!("{} ({})", t.label, t.serial))
                    .collect();
                bail!(
                    "several tokens exist, choose one with --token LABEL|SERIAL: {}",
                    names.join(", ")
                )
            }
        }
    }

    /// Opens the selected token with one R/W session.
    pub fn open(&self) -> Result<Open> {
        let entry = self.entry()?;
        let token = self.registry.open(&entry)?;
        let sid = token.open_session(true)?;
        Ok(Open { entry, token, sid })
    }
}

/// An open token with its session. Dropping it closes the session (and so logs out).
pub struct Open {
    pub entry: TokenEntry,
    pub token: Arc<Token>,
    pub sid: SessionRef,
}

impl Open {
    /// Logs in as `who`, turning PIN errors into messages that say what to do next.
    pub fn login(&self, who: UserType, pin: &Pin) -> Result<()> {
        login(&self.token, who, pin)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let _ = self.token.close_session(&self.sid);
    }
}

/// Logs in with a helpful error: tries left, or how to unlock.
pub fn login(token: &Token, who: UserType, pin: &Pin) -> Result<()> {
    check_pin_length(token, who, pin)?;
    match token.login(who, pin.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) => Err(pin_error(token, who, e)),
    }
}

/// An SO PIN of a length the token never accepts is a typo: said as a length
/// error (not "incorrect SO PIN"), and none of the SO's few tries is spent on it.
/// (A user PIN of the wrong length still goes to the token and counts, as the
/// token's PIN policy tests require of every wrong user PIN.)
pub fn check_pin_length(token: &Token, who: UserType, pin: &Pin) -> Result<()> {
    if who != UserType::So {
        return Ok(());
    }
    if let Ok(i) = token.info() {
        let n = pin.len();
        if n < i.min_pin_len || n > i.max_pin_len {
            let name = match who {
                UserType::User => "user PIN",
                UserType::So => "SO PIN",
            };
            bail!(
                "the {name} of this token has {} to {} characters; the one given has {n}",
                i.min_pin_len,
                i.max_pin_len
            );
        }
    }
    Ok(())
}

/// Explains a failed PIN check.
pub fn pin_error(token: &Token, who: UserType, e: Error) -> CliError {
    let tries_left = match e {
        Error::PinIncorrect => token.info().ok().map(|i| {
            let s = if who == UserType::User {
                i.user_pin
            } else {
                i.so_pin
            };
            s.max_tries.saturating_sub(s.failures)
        }),
        _ => None,
    };
    pin_message(who, &e, tries_left)
}

/// Explains a failed PIN check, given the tries the token has left after it.
pub fn pin_message(who: UserType, e: &Error, tries_left: Option<u32>) -> CliError {
    let name = match who {
        UserType::User => "user PIN",
        UserType::So => "SO PIN",
    };
    match e {
        Error::PinIncorrect => match tries_left {
            Some(1) => CliError::new(format!("incorrect {name} (1 try left before it locks)")),
            Some(n) => CliError::new(format!("incorrect {name} ({n} tries left)")),
            None => CliError::new(format!("incorrect {name}")),
        },
        Error::PinLocked => match who {
            UserType::User => CliError::new(
                "the user PIN is locked after too many wrong tries; unlock it with \
                 `vtoken pin unlock` (needs the SO PIN)",
            ),
            UserType::So => CliError::new(
                "the SO PIN is locked; nothing can unlock this token: delete it with \
                 `vtoken delete --token-file --force` and create a new one",
            ),
        },
        e => CliError::new(describe(e)),
    }
}

/// The start of every CLI message for a refused confirmation.
pub const NOT_CONFIRMED: &str = "not confirmed";

/// Whether a "not confirmed" message already says which of the three things
/// happened ([`vault_core::error::NotConfirmed`]: refused, timed out, no agent).
fn says_why(message: &str) -> bool {
    [
        "not confirmed: you (or",
        "not confirmed: no answer within",
        "not confirmed: no prompt agent can ask",
    ]
    .iter()
    .any(|p| message.starts_with(p))
}

/// A refused confirmation in the words of its likely cause, by the token's prompt
/// agent: `deny` means nobody can ever confirm (the fix: an agent); any other
/// agent means the person refused or did not answer in time (the fix: run again
/// and confirm). Other errors pass unchanged.
pub fn explain_rejection(ctx: &Ctx, e: CliError) -> CliError {
    if !e.message.starts_with(NOT_CONFIRMED) || says_why(&e.message) {
        return e;
    }
    let agent = ctx
        .open()
        .map(|o| o.token.prompt_agent_name())
        .unwrap_or_default();
    match agent.as_str() {
        "deny" => CliError::new(
            "not confirmed: this token has no prompt agent (its policy is `deny`), so nothing \
             can be confirmed and nothing was written or revealed; the SO chooses one with \
             `vtoken prompt set --agent tty` (or desktop, or pinentry)",
        ),
        "" => e,
        a => CliError::new(format!(
            "not confirmed: the {a} prompt was refused, timed out, or could not be shown \
             (the picture check, if any, was not passed); nothing was written or revealed — \
             run the command again and confirm on the {a} prompt"
        )),
    }
}

#[cfg(test)]
mod tests {
    use vault_core::error::NotConfirmed;

    /// Each of the three reasons is recognized, so `explain_rejection` keeps it.
    #[test]
    fn the_three_reasons_are_kept() {
        for n in [
            NotConfirmed::Refused {
                agent: "desktop".into(),
            },
            NotConfirmed::TimedOut {
                agent: "tty".into(),
                secs: 60,
            },
            NotConfirmed::NoAgent {
                why: "the token's prompt policy is `deny`".into(),
            },
        ] {
            assert!(super::says_why(&n.to_string()), "{n}");
        }
        assert!(!super::says_why("not confirmed: the use of \"github\""));
    }
}
