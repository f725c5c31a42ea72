//! The PIN typed on the token's prompt: PKCS#11's protected authentication path.
//!
//! With `[prompt] login = "agent"` ([`crate::config::LoginInput::Agent`]) and a
//! token whose prompt agent can take input (not `deny`), the token advertises
//! `CKF_PROTECTED_AUTHENTICATION_PATH` and `C_Login` accepts a NULL PIN (PKCS#11
//! 3.0 §5.6, `C_Login`: "the pPin parameter to C_Login should be NULL_PTR"; the
//! token then authenticates the user its own way). Here its own way is the trusted
//! prompt (SPEC V6, ¶0065/¶0081: data typed on the token, so the client never holds
//! it): the agent of the token's prompt policy asks for the PIN, the answer is
//! zeroized after use, and the login goes through [`Token::login`] like a typed
//! PIN (a wrong PIN is counted; the lock, the gate and the PIN rules apply).
//!
//! The setting is off by default, so clients that type the PIN see no change. The
//! agent is token policy (changed only with the SO PIN), so the setting does not
//! let a caller choose who answers; it only lets the token ask.

use zeroize::Zeroizing;

use crate::config::LoginInput;
use crate::error::{Error, Result};
use crate::prompt::{Ask, AskReply};
use crate::token::{Token, UserType};

impl Token {
    /// Whether this token offers the protected authentication path: `[prompt]
    /// login = "agent"` and an agent that can ask (not `deny`).
    pub fn protected_login(&self) -> bool {
        self.prompt_settings().login == LoginInput::Agent && self.prompt_agent().name() != "deny"
    }

    /// The PIN of `who`, asked through the token's prompt agent for `C_Login` with
    /// a NULL PIN. `context` is a `CKU_CONTEXT_SPECIFIC` re-authentication (the
    /// user must be logged in already); otherwise nobody may be.
    ///
    /// `ArgumentsBad` when the token offers no protected path (a NULL PIN is then
    /// a bad argument, as before); `FunctionRejected` when the user refused or let
    /// the prompt time out, or the agent could not ask: no PIN was tried, so no
    /// counter moved.
    pub fn pin_from_prompt(&self, who: UserType, context: bool) -> Result<Zeroizing<String>> {
        if !self.protected_login() {
            return Err(Error::ArgumentsBad(
                "NULL PIN: this token has no protected authentication path \
                 ([prompt] login = \"agent\" and a prompt agent other than deny)"
                    .into(),
            ));
        }
        // Refuse what C_Login would refuse before bothering the user: a token the
        // gate locked (SPEC C5), a login already made.
        self.ensure_unblocked()?;
        match (self.logged_in(), context) {
            (None, true) => return Err(Error::UserNotLoggedIn),
            (Some(u), false) if u == who => return Err(Error::UserAlreadyLoggedIn),
            (Some(_), false) => return Err(Error::UserAnotherAlreadyLoggedIn),
            _ => {}
        }
        let label = match who {
            UserType::User => "User PIN",
            UserType::So => "SO PIN",
        };
        let agent = self.prompt_agent();
        let name = self.label().unwrap_or_default();
        let q = Ask {
            title: format!("Log in to token '{name}'"),
            description: format!(
                "An application asks to log in to the token '{name}' (serial {}). \
                 Type the {label} here; the application never sees it.",
                self.serial()
            ),
            label: label.into(),
            secret: true,
        };
        match agent.ask(&q) {
            Ok(AskReply::Text(pin)) => {
                tracing::info!(serial = %self.serial(), agent = agent.name(), "PIN taken on the prompt");
                Ok(pin)
            }
            Ok(a) => {
                tracing::warn!(serial = %self.serial(), agent = agent.name(), answer = ?a,
                               "login on the prompt not given");
                Err(Error::FunctionRejected)
            }
            Err(e) => {
                tracing::warn!(serial = %self.serial(), agent = agent.name(), error = %e,
                               "the prompt agent cannot ask for the PIN");
                Err(Error::FunctionRejected)
            }
        }
    }
}
