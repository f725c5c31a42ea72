//! The prompt agent that asks the user, and the token's prompt policy (which
//! operations are confirmed).

use super::*;

impl Token {
    /// Installs the embedding program's own agent for this process (a Rust program
    /// that is the user's interface, e.g. a GUI). It takes precedence over the
    /// token policy's agent; the list of confirmed operations stays token policy.
    /// Neither the PKCS#11 module nor the CLI calls it: their agent is the policy's.
    pub fn set_prompt(&self, p: Arc<dyn crate::prompt::Prompt>) {
        *self.prompt.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    /// The prompt policy stored in the token file (`None`: an old file without one).
    pub fn prompt_policy_stored(&self) -> Result<Option<crate::prompt::policy::PromptPolicy>> {
        crate::prompt::policy::stored(self.store().header()?)
    }

    /// The prompt policy in force: the stored one, or the fail-closed fallback of
    /// an old file ([`crate::prompt::policy::PromptPolicy::fallback`]). A damaged
    /// record is an error.
    pub fn prompt_policy(&self) -> Result<crate::prompt::policy::PromptPolicy> {
        Ok(self
            .prompt_policy_stored()?
            .unwrap_or_else(crate::prompt::policy::PromptPolicy::fallback))
    }

    /// The SO sets the token's prompt policy (agent and confirmed operations):
    /// `so_pin` is verified and counted like a login. Does not log in.
    pub fn set_prompt_policy(
        &self,
        so_pin: &[u8],
        policy: crate::prompt::policy::PromptPolicy,
    ) -> Result<()> {
        let policy = policy.validated()?;
        self.verify_pin(UserType::So, so_pin)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        crate::prompt::policy::put(&mut h, &policy)?;
        st.write_header(&h)?;
        drop(st);
        info!(serial = %self.serial, agent = %policy.agent, confirm = ?policy.confirm,
              "prompt policy changed by the SO");
        Ok(())
    }

    /// The agent that asks the user now: the embedding program's
    /// ([`Token::set_prompt`]), else the token policy's. Only a `test-hooks` build
    /// lets `VTOKEN_PROMPT` choose instead of the policy. An agent that cannot be
    /// built, or a damaged policy, gives `deny` (fail closed, logged).
    pub(crate) fn prompt_agent(&self) -> Arc<dyn crate::prompt::Prompt> {
        if let Some(p) = self
            .prompt
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return p;
        }
        #[cfg(feature = "test-hooks")]
        match std::env::var("VTOKEN_PROMPT") {
            Ok(s) if !s.trim().is_empty() => {
                match self
                    .prompt_local
                    .with_override(&s)
                    .and_then(|c| crate::prompt::build(&c))
                {
                    Ok(p) => return p,
                    Err(e) => {
                        warn!(serial = %self.serial, error = %e, "test-hooks: VTOKEN_PROMPT unusable: deny");
                        return Arc::new(crate::prompt::Deny);
                    }
                }
            }
            _ => {}
        }
        match self
            .prompt_policy()
            .and_then(|p| p.agent(&self.prompt_local))
        {
            Ok(p) => p,
            Err(e) => {
                warn!(serial = %self.serial, error = %e, "prompt agent unavailable: every confirmation is refused");
                Arc::new(crate::prompt::Deny)
            }
        }
    }

    /// This process's `[prompt]` settings (timeout, terminal, `login`).
    pub(crate) fn prompt_settings(&self) -> &crate::config::PromptConfig {
        &self.prompt_local
    }

    /// The name of the agent that asks the user now (`deny`, `tty`, …).
    pub fn prompt_agent_name(&self) -> String {
        self.prompt_agent().name().to_string()
    }

    /// Whether operation `op` (`vault-write`, `vault-read`, `otp-code`, `key-export`)
    /// needs the user's confirmation under this token's prompt policy. A policy
    /// that cannot be read asks (fail closed).
    pub fn needs_confirmation(&self, op: &str) -> bool {
        self.prompt_policy().map(|p| p.needs(op)).unwrap_or(true)
    }

    /// [`Token::confirm`] when the token's prompt policy lists `op`, else `Ok(())`
    /// at once.
    pub fn confirm_for(&self, op: &str, req: &crate::prompt::Request) -> Result<()> {
        if self.needs_confirmation(op) {
            self.confirm(req)
        } else {
            Ok(())
        }
    }

    /// Asks the user through the prompt agent; `Ok(())` only on confirmation.
    /// Otherwise [`Error::NotConfirmed`] says which of three things happened (all
    /// `CKR_FUNCTION_REJECTED`): a refusal, a timeout, or no agent that can ask
    /// (the policy is `deny`, or the agent could not be shown). Logged.
    pub fn confirm(&self, req: &crate::prompt::Request) -> Result<()> {
        use crate::error::NotConfirmed;
        use crate::prompt::Answer;
        let agent = self.prompt_agent();
        let name = agent.name().to_string();
        match agent.confirm(req) {
            Ok(Answer::Confirmed) => {
                info!(serial = %self.serial, agent = %name, title = %req.title, "confirmed by the user");
                Ok(())
            }
            Ok(a) => {
                warn!(serial = %self.serial, agent = %name, title = %req.title, answer = ?a, "not confirmed");
                Err(match a {
                    // `deny` is no person saying no: nobody can ever confirm.
                    _ if name == "deny" => NotConfirmed::NoAgent {
                        why: "the token's prompt policy is `deny`".into(),
                    },
                    Answer::TimedOut => NotConfirmed::TimedOut {
                        agent: name,
                        secs: self.prompt_local.timeout().as_secs(),
                    },
                    _ => NotConfirmed::Refused { agent: name },
                }
                .into())
            }
            Err(e) => {
                warn!(serial = %self.serial, agent = %name, error = %e, "no prompt could be shown");
                Err(NotConfirmed::NoAgent {
                    why: format!("the {name} agent could not be shown: {e}"),
                }
                .into())
            }
        }
    }
}
