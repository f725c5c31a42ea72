//! The token lists, the user picks (SPEC V10, ¶0098): on a password request without
//! an entry named, the token shows its entry list through the trusted prompt agent
//! and the user chooses the account there, not on the client.

use super::*;
use crate::prompt::{Answer, Request};

impl Token {
    /// Shows the vault's entries through the prompt agent and returns the id of the
    /// one the user picks (user logged in). Every agent can only confirm or refuse,
    /// so the token walks the list: each request shows the whole numbered list with
    /// one entry marked, and the user confirms the marked one or refuses to move on.
    /// A timeout or an agent failure ends the walk at once; refusing every entry, or
    /// an empty vault, picks nothing. All of these are errors
    /// ([`Error::FunctionRejected`] after a prompt), so no password leaves.
    pub fn vault_pick(&self, purpose: &str) -> Result<u64> {
        let list = self.vault_list()?;
        if list.is_empty() {
            return Err(Error::ArgumentsBad(
                "the vault has no entries to pick from".into(),
            ));
        }
        let n = list.len();
        let agent = self.prompt_agent();
        for (i, (id, chosen)) in list.iter().enumerate() {
            let mut description = format!("{purpose}: pick the account.\n");
            for (j, (_, s)) in list.iter().enumerate() {
                let mark = if i == j { "→" } else { " " };
                let user = if s.username.is_empty() {
                    String::new()
                } else {
                    format!(", {}", s.username)
                };
                description.push_str(&format!(
                    "{mark} {}. {} ({}{user})\n",
                    j + 1,
                    s.title,
                    s.kind
                ));
            }
            description.push_str("Confirm to use the marked entry; refuse to see the next one.");
            let req = Request {
                title: format!("Use \"{}\"? ({} of {n})", chosen.title, i + 1),
                description,
            };
            match agent.confirm(&req) {
                Ok(Answer::Confirmed) => {
                    info!(serial = %self.serial(), id, agent = agent.name(), "vault entry picked by the user");
                    return Ok(*id);
                }
                Ok(Answer::Refused) => continue,
                Ok(a) => {
                    warn!(serial = %self.serial(), agent = agent.name(), answer = ?a, "vault pick not answered");
                    return Err(Error::FunctionRejected);
                }
                Err(e) => {
                    warn!(serial = %self.serial(), agent = agent.name(), error = %e, "no prompt could be shown");
                    return Err(Error::FunctionRejected);
                }
            }
        }
        warn!(serial = %self.serial(), "no vault entry picked");
        Err(Error::FunctionRejected)
    }
}
