//! User presence: the trusted prompt (SPEC V5, V6; DESIGN.md "User presence").
//!
//! A hardware token has a screen and a confirm button; vtoken has a prompt agent.
//! Before a protected write (a vault entry, say) the token describes it to the user
//! through the agent and waits: a refusal, a timeout or an agent that cannot be
//! shown all mean "no", and nothing is written (`CKR_FUNCTION_REJECTED`).
//!
//! Agents (configured in `[prompt]`): a GnuPG pinentry (Assuan), a direct `/dev/tty`
//! prompt, a command (for scripted tests), or `deny` (the headless default).

use crate::error::Result;

/// A request shown to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// One line: what is asked ("Store vault entry?").
    pub title: String,
    /// What will happen, secrets already masked. May span lines.
    pub description: String,
}

/// The user's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The user confirmed.
    Confirmed,
    /// The user refused.
    Refused,
    /// Nobody answered in time.
    TimedOut,
}

/// A prompt agent.
pub trait Prompt: Send + Sync {
    /// Shows `req` and waits for confirmation. `Err` when no prompt can be shown
    /// (the caller treats that as a refusal and logs why).
    fn confirm(&self, req: &Request) -> Result<Answer>;

    /// A short name for logs (`pinentry`, `tty`, `command`, `deny`).
    fn name(&self) -> &str;
}

/// The agent that refuses everything (fail closed).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deny;

impl Prompt for Deny {
    fn confirm(&self, _req: &Request) -> Result<Answer> {
        Ok(Answer::Refused)
    }
    fn name(&self) -> &str {
        "deny"
    }
}
