//! User presence: the trusted prompt (SPEC V5, V6; DESIGN.md "User presence").
//!
//! A hardware token has a screen and a confirm button; vtoken has a prompt agent.
//! Before a protected write (a vault entry, say) the token describes it to the user
//! through the agent and waits: a refusal, a timeout or an agent that cannot be
//! shown all mean "no", and nothing is written (`CKR_FUNCTION_REJECTED`).
//!
//! Which agent asks, and which operations ask, is token policy stored in the token
//! file and changed only with the SO PIN ([`policy`]); `[prompt]` and
//! `VTOKEN_PROMPT` give the defaults of new tokens. Agents: a GnuPG pinentry (Assuan), a direct `/dev/tty`
//! prompt, a command (for scripted tests), or `deny` (the headless default).
//!
//! | agent      | type                   | what the user sees / does                          |
//! |------------|------------------------|----------------------------------------------------|
//! | `deny`     | [`Deny`]               | nothing: every request is refused                   |
//! | `pinentry` | [`pinentry::Pinentry`] | a GnuPG pinentry dialog (curses, tty, gtk, qt)      |
//! | `tty`      | [`tty::Tty`]           | `Confirm? [y/N]` on the terminal device             |
//! | `command`  | [`command::Command`]   | whatever the program does; exit 0 confirms, 1 refuses |
//! | `desktop`  | [`desktop::Desktop`]   | a zenity / yad dialog on the graphical session      |
//!
//! Besides confirming, an agent takes typed input ([`Prompt::ask`], SPEC V6): the
//! tty agent reads a line from the terminal (without echo for secrets), pinentry
//! asks with `GETPIN` (its entry never echoes), the command agent prints the value
//! on its standard output; `deny` refuses.
//!
//! With `[prompt] login = "agent"` the PIN itself is typed on the agent: `C_Login`
//! with a NULL PIN, PKCS#11's protected authentication path
//! ([`crate::token::Token::pin_from_prompt`]).
//!
//! ## Configuration
//!
//! ```toml
//! [prompt]
//! agent = "pinentry"                     # deny (default) | pinentry | tty | command | desktop
//! program = "/usr/bin/pinentry-curses"   # default: first of pinentry-curses, pinentry-tty, pinentry in PATH
//! command = "/usr/local/bin/ask-user -q" # command agent: split on whitespace, or an array
//! timeout_secs = 60                      # unanswered: TimedOut (a refusal)
//! tty = "/dev/pts/3"                     # default: $GPG_TTY, else this process's terminal
//! confirm = ["vault-write"]              # vault-write, vault-read, otp-code, key-export
//! login = "agent"                        # client (default) | agent: C_Login(NULL) asks the agent
//! ```
//!
//! ## `VTOKEN_PROMPT`: the default agent of a new token
//!
//! `VTOKEN_PROMPT` (when set and not empty) replaces the agent chosen in the file when
//! a token is created ([`policy::PromptPolicy::defaults_from`]); it never changes an
//! existing token's agent (only a `test-hooks` build honours it at use time). The
//! same syntax names agents in `vtoken prompt set --agent`:
//!
//! - `VTOKEN_PROMPT=deny`
//! - `VTOKEN_PROMPT=tty` or `tty:/dev/pts/3`
//! - `VTOKEN_PROMPT=pinentry` or `pinentry:/usr/bin/pinentry-tty`
//! - `VTOKEN_PROMPT=command:/path/to/script arg1 arg2` (split on whitespace)
//! - `VTOKEN_PROMPT=desktop`
//!
//! [`from_config`] applies it; [`build`] takes a configuration as it is.
//!
//! What the agents show is made safe for a terminal first ([`display_safe`]): control
//! characters (ANSI escapes, carriage returns) and bidirectional overrides in a
//! description are shown as `\x..` escapes, so a client cannot repaint the prompt.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{PromptAgent, PromptConfig};
use crate::error::{Error, Result};

mod child;
pub mod command;
pub mod desktop;
pub mod picture;
pub mod pinentry;
pub mod policy;
pub mod tty;

pub use command::Command;
pub use desktop::Desktop;
pub use pinentry::Pinentry;
pub use tty::Tty;

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

/// A picture challenge for the user (the gate, SPEC C1–C6).
#[derive(Clone, Debug)]
pub struct Captcha<'a> {
    /// One line: what is asked ("Picture check for signing with key 'k1'").
    pub title: String,
    /// What the request is, and how many chances are left.
    pub description: String,
    /// The challenge picture (PNG). The answer is never given to the agent.
    pub png: &'a [u8],
    /// How long the user has (monotonic clock; the token enforces it too).
    pub lifetime: std::time::Duration,
}

/// The user's reply to a picture challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum CaptchaReply {
    /// The text the user read from the picture.
    Answer(zeroize::Zeroizing<String>),
    /// The user asked for another picture (uses a chance, SPEC C5).
    Refresh,
    /// The user refused.
    Refused,
    /// Nobody answered in time.
    TimedOut,
}

/// A text entry asked on the trusted prompt (SPEC V6, ¶0065, ¶0081: data typed on
/// the token itself, so the client never holds it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// One line: what the entry is for ("New vault entry (website)").
    pub title: String,
    /// What is asked, and what has been entered so far (no secrets).
    pub description: String,
    /// The field's label ("Password").
    pub label: String,
    /// Typed without echo (a password, a PIN).
    pub secret: bool,
}

/// The user's reply to an [`Ask`].
#[derive(Debug, PartialEq, Eq)]
pub enum AskReply {
    /// The text typed (possibly empty: an optional field left out).
    Text(zeroize::Zeroizing<String>),
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

    /// Shows a picture challenge (SPEC C2–C4) and returns what the user typed, or
    /// that they asked for a new picture, refused, or let it time out. Agents that
    /// cannot show a picture return `Err` (the gated call is then rejected).
    fn captcha(&self, challenge: &Captcha<'_>) -> Result<CaptchaReply> {
        let _ = challenge;
        Err(Error::FunctionNotSupported)
    }

    /// Asks the user to type a value (SPEC V6): a field of a vault entry, or the
    /// PIN. Agents that cannot take text return `Err` (the caller then refuses the
    /// whole input and says why).
    fn ask(&self, q: &Ask) -> Result<AskReply> {
        let _ = q;
        Err(crate::error::PromptError::Unsuitable {
            agent: "prompt",
            problem: format!(
                "the {} agent cannot take typed input; use the tty, desktop, pinentry or \
                 command agent (`vtoken prompt set --agent tty`)",
                self.name()
            ),
        }
        .into())
    }
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
    fn ask(&self, _q: &Ask) -> Result<AskReply> {
        Ok(AskReply::Refused)
    }
}

/// The agent `cfg` describes, after applying the `VTOKEN_PROMPT` override (see the
/// module docs).
pub fn from_config(cfg: &PromptConfig) -> Result<Arc<dyn Prompt>> {
    build(&cfg.effective()?)
}

/// The agent `cfg` describes, ignoring `VTOKEN_PROMPT`.
pub fn build(cfg: &PromptConfig) -> Result<Arc<dyn Prompt>> {
    let timeout = cfg.timeout();
    Ok(match cfg.agent {
        PromptAgent::Deny => Arc::new(Deny),
        PromptAgent::Desktop => Arc::new(Desktop::from_path(timeout)),
        PromptAgent::Tty => Arc::new(Tty {
            device: cfg
                .tty
                .clone()
                .unwrap_or_else(|| PathBuf::from(tty::DEFAULT_DEVICE)),
            timeout,
        }),
        PromptAgent::Command => {
            let (program, args) = cfg.command.split_first().ok_or_else(|| {
                Error::config("prompt.command", "the command agent needs a command")
            })?;
            Arc::new(Command {
                program: program.clone(),
                args: args.to_vec(),
                timeout,
            })
        }
        PromptAgent::Pinentry => {
            let program = match &cfg.program {
                Some(p) => {
                    let found = if p.components().count() > 1 {
                        p.is_file().then(|| p.clone())
                    } else {
                        find_in_path(&p.to_string_lossy())
                    };
                    found.ok_or_else(|| {
                        Error::config("prompt.program", format!("{} not found", p.display()))
                    })?
                }
                None => pinentry::default_program().ok_or_else(|| {
                    Error::config(
                        "prompt.program",
                        "no pinentry found in PATH (tried pinentry-curses, pinentry-tty, \
                         pinentry); install one or set [prompt] program",
                    )
                })?,
            };
            let mut p = Pinentry::new(program, timeout);
            p.tty = cfg.tty.clone().or_else(pinentry::detect_tty);
            Arc::new(p)
        }
    })
}

/// `name` resolved through `PATH` (the first executable file found).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `s` made safe to print on a terminal: newlines and tabs stay, every other control
/// character (ESC, CR, C1 controls such as CSI) and the bidirectional overrides are
/// written as `\x..` / `\u{..}` escapes.
pub fn display_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}
