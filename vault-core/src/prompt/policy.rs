//! The token's prompt policy: which agent asks the user, and which operations ask.
//!
//! A confirmation or a picture check is only worth something if the caller cannot
//! choose who answers it. So the agent and the list of confirmed operations are
//! **token policy**, kept in the token header (`ext["prompt"]`, postcard, sealed
//! with the header like the gate policy), set when the token is created and changed
//! only with the SO PIN ([`crate::token::Token::set_prompt_policy`], `vtoken prompt
//! set`). The caller's environment (`VTOKEN_PROMPT`) and configuration (`[prompt]`)
//! give only the defaults a *new* token starts with; at use time they choose
//! nothing but the timeout and the terminal pinentry draws on.
//!
//! Only a build with the cargo feature `test-hooks` (never enabled by
//! configuration) still lets `VTOKEN_PROMPT` pick the agent at use time, for the
//! tests that drive the gate and the vault through scripted agents.
//!
//! A token file without a stored policy (made before the policy existed) fails
//! closed: the agent is `tty` when this process has a terminal, else `deny`, and
//! the default operations ([`PromptConfig::default`]`.confirm`) are confirmed.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{tty, Deny, Prompt};
use crate::config::{PromptAgent, PromptConfig};
use crate::error::{Error, Part, Result};
use crate::store::Header;

/// The header extension key of the prompt policy.
pub const EXT_KEY: &str = "prompt";

/// The agent a token's policy names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentSpec {
    /// Every confirmation refused, no picture shown.
    Deny,
    /// `Confirm? [y/N]` on a terminal device (`None`: the process's `/dev/tty`).
    Tty(Option<PathBuf>),
    /// A GnuPG pinentry (`None`: the first of pinentry-curses, pinentry-tty,
    /// pinentry in `PATH`).
    Pinentry(Option<PathBuf>),
    /// A program and its arguments: exit 0 confirms.
    Command(Vec<String>),
    /// Dialogs on the graphical session (zenity / yad). Last, so the postcard
    /// indices of the older variants stay what stored policies hold.
    Desktop,
}

impl AgentSpec {
    /// Parses `deny`, `tty`, `tty:/dev/pts/3`, `pinentry`, `pinentry:PATH`,
    /// `command:PATH [ARGS]`, `desktop`.
    pub fn parse(spec: &str) -> Result<AgentSpec> {
        let c = PromptConfig::default()
            .with_override(spec)
            .map_err(|e| Error::ArgumentsBad(e.to_string().replace("VTOKEN_PROMPT: ", "agent ")))?;
        Ok(AgentSpec::of_config(&c))
    }

    /// The agent a configuration (already with its `VTOKEN_PROMPT` override) names.
    pub fn of_config(c: &PromptConfig) -> AgentSpec {
        match c.agent {
            PromptAgent::Deny => AgentSpec::Deny,
            PromptAgent::Tty => AgentSpec::Tty(c.tty.clone()),
            PromptAgent::Pinentry => AgentSpec::Pinentry(c.program.clone()),
            PromptAgent::Command => AgentSpec::Command(c.command.clone()),
            PromptAgent::Desktop => AgentSpec::Desktop,
        }
    }

    /// The kind: `deny`, `tty`, `pinentry`, `command` or `desktop`.
    pub fn kind(&self) -> &'static str {
        match self {
            AgentSpec::Deny => "deny",
            AgentSpec::Tty(_) => "tty",
            AgentSpec::Pinentry(_) => "pinentry",
            AgentSpec::Command(_) => "command",
            AgentSpec::Desktop => "desktop",
        }
    }
}

impl std::fmt::Display for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentSpec::Deny => f.write_str("deny"),
            AgentSpec::Tty(None) => f.write_str("tty"),
            AgentSpec::Tty(Some(d)) => write!(f, "tty:{}", d.display()),
            AgentSpec::Pinentry(None) => f.write_str("pinentry"),
            AgentSpec::Pinentry(Some(p)) => write!(f, "pinentry:{}", p.display()),
            AgentSpec::Command(argv) => write!(f, "command:{}", argv.join(" ")),
            AgentSpec::Desktop => f.write_str("desktop"),
        }
    }
}

/// The prompt policy a token carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptPolicy {
    /// Who asks the user.
    pub agent: AgentSpec,
    /// Operations that need the user's confirmation ([`PromptConfig::OPERATIONS`]).
    pub confirm: Vec<String>,
}

impl PromptPolicy {
    /// The defaults a new token gets from the caller's configuration and
    /// `VTOKEN_PROMPT`.
    pub fn defaults_from(cfg: &PromptConfig) -> Result<PromptPolicy> {
        let c = cfg.effective()?;
        PromptPolicy {
            agent: AgentSpec::of_config(&c),
            confirm: c.confirm.clone(),
        }
        .validated()
    }

    /// What a token without a stored policy uses (fail closed): `tty` when this
    /// process has a terminal, else `deny`; the default confirmations.
    pub fn fallback() -> PromptPolicy {
        let has_tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(tty::DEFAULT_DEVICE)
            .is_ok();
        PromptPolicy {
            agent: if has_tty {
                AgentSpec::Tty(None)
            } else {
                AgentSpec::Deny
            },
            confirm: PromptConfig::default().confirm,
        }
    }

    /// The policy checked (known operations, a command to run) and normalized.
    pub fn validated(mut self) -> Result<PromptPolicy> {
        if let Some(bad) = self
            .confirm
            .iter()
            .find(|op| !PromptConfig::OPERATIONS.contains(&op.as_str()))
        {
            return Err(Error::ArgumentsBad(format!(
                "prompt policy: unknown operation \"{bad}\" to confirm (known: {})",
                PromptConfig::OPERATIONS.join(", ")
            )));
        }
        self.confirm.sort();
        self.confirm.dedup();
        if let AgentSpec::Command(argv) = &self.agent {
            if argv.is_empty() {
                return Err(Error::ArgumentsBad(
                    "prompt policy: the command agent needs a program (command:/path/to/program)"
                        .into(),
                ));
            }
        }
        Ok(self)
    }

    /// Whether operation `op` needs the user's confirmation.
    pub fn needs(&self, op: &str) -> bool {
        self.confirm.iter().any(|o| o == op)
    }

    /// The agent this policy names, built with the caller's timeout (and, for
    /// pinentry, the caller's terminal).
    pub fn agent(&self, local: &PromptConfig) -> Result<Arc<dyn Prompt>> {
        let mut c = local.clone();
        match &self.agent {
            AgentSpec::Deny => return Ok(Arc::new(Deny)),
            AgentSpec::Tty(device) => {
                c.agent = PromptAgent::Tty;
                c.tty = device.clone();
            }
            AgentSpec::Pinentry(program) => {
                c.agent = PromptAgent::Pinentry;
                c.program = program.clone();
            }
            AgentSpec::Command(argv) => {
                c.agent = PromptAgent::Command;
                c.command = argv.clone();
            }
            AgentSpec::Desktop => c.agent = PromptAgent::Desktop,
        }
        super::build(&c)
    }
}

/// The policy stored in `h` (`None`: an old file without one). A damaged record is
/// an error (the caller fails closed).
pub(crate) fn stored(h: &Header) -> Result<Option<PromptPolicy>> {
    match h.ext.get(EXT_KEY) {
        None => Ok(None),
        Some(b) => postcard::from_bytes(b)
            .map(Some)
            .map_err(|e| Error::corrupt(Part::PromptPolicy, format!("damaged: {e}"))),
    }
}

/// Puts `p` into `h` (the caller writes the header).
pub(crate) fn put(h: &mut Header, p: &PromptPolicy) -> Result<()> {
    let b = postcard::to_allocvec(p).map_err(|e| Error::General(format!("prompt policy: {e}")))?;
    h.ext.insert(EXT_KEY.to_string(), b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Store;
    use crate::token::Token;

    const SO: &[u8] = b"12345678";

    /// A token file whose header extension is replaced by `ext` (`None`: removed).
    fn token_with(ext: Option<&[u8]>) -> (tempfile::TempDir, std::sync::Arc<Token>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::for_dir(dir.path().join("tokens"));
        std::fs::create_dir_all(&cfg.token_dir).unwrap();
        let path = cfg.token_dir.join("t.vtoken");
        Token::create(&path, "t", SO, &cfg).unwrap();
        {
            let mut st = Store::open(&path).unwrap();
            let mut h = st.header().unwrap().clone();
            assert!(
                h.ext.contains_key(EXT_KEY),
                "a new token carries its policy"
            );
            match ext {
                None => h.ext.remove(EXT_KEY),
                Some(b) => h.ext.insert(EXT_KEY.into(), b.to_vec()),
            };
            st.write_header(&h).unwrap();
        }
        let t = Token::open(&path, &cfg).unwrap();
        (dir, t)
    }

    /// An old file without a policy fails closed: the default confirmations, and
    /// `tty` only when there is a terminal (else `deny`).
    #[test]
    fn old_file_without_policy_fails_closed() {
        let (_d, t) = token_with(None);
        assert_eq!(t.prompt_policy_stored().unwrap(), None);
        let p = t.prompt_policy().unwrap();
        assert_eq!(p, PromptPolicy::fallback());
        assert!(matches!(p.agent, AgentSpec::Deny | AgentSpec::Tty(None)));
        assert!(t.needs_confirmation("vault-write"));
        assert!(!t.needs_confirmation("vault-read"));
    }

    /// A damaged policy: every operation asks, and the agent is `deny`.
    #[test]
    fn damaged_policy_asks_everything_and_denies() {
        let (_d, t) = token_with(Some(&[0xff, 0xff, 0xff]));
        assert!(t.prompt_policy().is_err());
        for op in PromptConfig::OPERATIONS {
            assert!(t.needs_confirmation(op), "{op}");
        }
        assert_eq!(t.prompt_agent_name(), "deny");
    }

    #[test]
    fn agent_specs_parse_and_print() {
        for s in [
            "deny",
            "tty",
            "tty:/dev/pts/3",
            "pinentry",
            "pinentry:/usr/bin/pinentry-tty",
            "command:/usr/local/bin/ask -q",
            "desktop",
        ] {
            assert_eq!(AgentSpec::parse(s).unwrap().to_string(), s);
        }
        assert!(AgentSpec::parse("telepathy").is_err());
        assert!(AgentSpec::parse("command:").is_err());
        assert!(PromptPolicy {
            agent: AgentSpec::Deny,
            confirm: vec!["teleport".into()],
        }
        .validated()
        .is_err());
    }
}
