//! `vtoken prompt …`: the token's prompt policy (which agent asks the user, which
//! operations ask). Stored in the token file; only the SO PIN changes it, so neither
//! `VTOKEN_PROMPT` nor the configuration can choose who "confirms".

use clap::Subcommand;
use serde_json::json;
use vault_core::config::PromptConfig;
use vault_core::prompt::policy::{AgentSpec, PromptPolicy};
use vault_core::token::UserType;

use crate::args::SoPin;
use crate::context::{pin_error, Ctx};
use crate::error::{bail, Result};
use crate::output::{outln, print_json};
use crate::pin;

#[derive(Debug, Subcommand)]
pub enum PromptCommand {
    /// Show the token's prompt agent and the operations that need confirmation.
    Show,
    /// Set the prompt agent and/or the confirmed operations (needs the SO PIN).
    #[command(after_help = "\
Agents:
  deny            refuse every confirmation and picture (headless tokens)
  tty             ask on the terminal (/dev/tty), or tty:/dev/pts/N
  pinentry        a GnuPG pinentry from PATH, or pinentry:/usr/bin/pinentry-gnome3
  desktop         dialogs on the desktop (zenity; yad for pictures), for browsers
                  and other programs without a terminal; needs DISPLAY or
                  WAYLAND_DISPLAY where the token is used
  command:PATH    run PATH (absolute, with optional arguments): exit 0 confirms

Operations (--confirm, comma-separated, or `none`): vault-write, vault-read,
otp-code, key-export. Options not given keep their current value.

The environment (VTOKEN_PROMPT) and the configuration ([prompt]) only give the
defaults of new tokens; they never change an existing token's policy.

Examples:
  vtoken --token work prompt set --agent pinentry --so-pin-file so-pin.txt
  vtoken --token work prompt set --agent desktop --so-pin-file so-pin.txt
  vtoken --token work prompt set --agent deny --confirm vault-write,vault-read")]
    Set {
        /// The agent: deny, tty[:DEVICE], desktop, pinentry[:PATH], command:PATH [ARGS].
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
        /// Operations that need confirmation (replaces the list; `none` clears it).
        #[arg(long, value_name = "LIST")]
        confirm: Option<String>,
        #[command(flatten)]
        so: SoPin,
    },
}

/// `vtoken prompt …`.
pub fn run(ctx: &Ctx, json: bool, cmd: &PromptCommand) -> Result<()> {
    match cmd {
        PromptCommand::Show => show(ctx, json),
        PromptCommand::Set { agent, confirm, so } => {
            if agent.is_none() && confirm.is_none() {
                bail!("nothing to set: give --agent and/or --confirm");
            }
            let entry = ctx.entry()?;
            let token = ctx.registry.open(&entry)?;
            let mut p = token.prompt_policy()?;
            if let Some(a) = agent {
                p.agent = AgentSpec::parse(a)?;
                if let AgentSpec::Command(argv) = &p.agent {
                    // A relative program would be looked up in the caller's PATH.
                    if !argv[0].starts_with('/') {
                        bail!(
                            "--agent command:PATH needs an absolute path (got {:?})",
                            argv[0]
                        );
                    }
                }
            }
            if let Some(list) = confirm {
                p.confirm = parse_ops(list);
            }
            let so_pin = pin::so(so)?;
            token
                .set_prompt_policy(so_pin.as_bytes(), p)
                .map_err(|e| pin_error(&token, UserType::So, e))?;
            drop(token);
            show(ctx, json)
        }
    }
}

fn parse_ops(list: &str) -> Vec<String> {
    let l = list.trim();
    if l.is_empty() || l.eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    l.split(',')
        .map(|o| o.trim().to_ascii_lowercase())
        .collect()
}

/// `vtoken prompt show`.
fn show(ctx: &Ctx, json: bool) -> Result<()> {
    let entry = ctx.entry()?;
    let token = ctx.registry.open(&entry)?;
    let stored = token.prompt_policy_stored()?;
    let p = stored.clone().unwrap_or_else(PromptPolicy::fallback);
    if json {
        return print_json(&json!({
            "agent": p.agent.to_string(),
            "kind": p.agent.kind(),
            "confirm": p.confirm,
            "stored": stored.is_some(),
        }));
    }
    outln!("Token '{}' ({})", entry.label, entry.serial);
    outln!("  prompt agent:  {}", p.agent);
    let all: Vec<String> = PromptConfig::OPERATIONS
        .iter()
        .map(|o| format!("{o}={}", if p.needs(o) { "ask" } else { "no" }))
        .collect();
    outln!("  confirmations: {}", all.join(", "));
    if stored.is_none() {
        outln!("  (no policy stored in this older token file: tty when a terminal is there,");
        outln!("   else deny; set one with `vtoken prompt set --so-pin ...`)");
    }
    Ok(())
}
