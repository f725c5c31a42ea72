//! `vtoken pin change|unlock`: the user and SO PINs.

use clap::Subcommand;
use vault_core::token::UserType;

use crate::args::SoPin;
use crate::context::{pin_error, Ctx};
use crate::error::Result;
use crate::pin::{self, Role};

#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Change the user PIN (or, with --so, the SO PIN), knowing the old one.
    #[command(after_help = "\
The old PIN comes from --old-pin, else VTOKEN_PIN / VTOKEN_SO_PIN, else a prompt; the
new PIN from --new-pin, else a prompt (asked twice).

Examples:
  vtoken pin change --old-pin 123456 --new-pin 567890
  vtoken pin change --so --old-pin 12345678 --new-pin 87654321")]
    Change {
        /// Change the SO PIN instead of the user PIN.
        #[arg(long)]
        so: bool,
        /// The current PIN.
        #[arg(long, value_name = "PIN")]
        old_pin: Option<String>,
        /// The new PIN.
        #[arg(long, value_name = "PIN")]
        new_pin: Option<String>,
    },
    /// Reset and unlock the user PIN with the SO PIN (after too many wrong tries).
    #[command(after_help = "\
Examples:
  vtoken pin unlock --so-pin 12345678 --new-pin 654321
If the SO PIN itself is locked, nothing can unlock the token: delete it with
`vtoken delete --token-file --force` and create a new one.")]
    Unlock {
        #[command(flatten)]
        so: SoPin,
        /// The new user PIN.
        #[arg(long, value_name = "PIN")]
        new_pin: Option<String>,
    },
}

/// `vtoken pin …`.
pub fn run(ctx: &Ctx, json: bool, cmd: &PinCommand) -> Result<()> {
    let entry = ctx.entry()?;
    let token = ctx.registry.open(&entry)?;
    match cmd {
        PinCommand::Change {
            so,
            old_pin,
            new_pin,
        } => {
            let (who, role) = if *so {
                (UserType::So, Role::So)
            } else {
                (UserType::User, Role::User)
            };
            let old = match old_pin.as_ref().filter(|p| !p.is_empty()) {
                Some(p) => zeroize::Zeroizing::new(p.clone()),
                None => {
                    let env = if *so { "VTOKEN_SO_PIN" } else { "VTOKEN_PIN" };
                    let from_env = std::env::var(env).ok().filter(|v| !v.is_empty());
                    match from_env {
                        Some(v) => zeroize::Zeroizing::new(v),
                        None => pin::flag_or_prompt(
                            &None,
                            role,
                            &format!("current {}", role_name(role)),
                            false,
                        )?,
                    }
                }
            };
            crate::context::check_pin_length(&token, who, &old)?;
            let new =
                pin::flag_or_prompt(new_pin, role, &format!("new {}", role_name(role)), true)?;
            token
                .change_pin(who, old.as_bytes(), new.as_bytes())
                .map_err(|e| pin_error(&token, who, e))?;
            if json {
                crate::output::print_json(&serde_json::json!({ "changed": role_name(role) }))?;
            } else {
                eprintln!("{} changed", role_name(role));
            }
        }
        PinCommand::Unlock { so, new_pin } => {
            let so_pin = pin::so(so)?;
            crate::context::check_pin_length(&token, UserType::So, &so_pin)?;
            let new = pin::flag_or_prompt(new_pin, Role::User, "new user PIN", true)?;
            token
                .unlock_user(so_pin.as_bytes(), new.as_bytes())
                .map_err(|e| pin_error(&token, UserType::So, e))?;
            if json {
                crate::output::print_json(&serde_json::json!({ "unlocked": "user PIN" }))?;
            } else {
                eprintln!("user PIN reset and unlocked");
            }
        }
    }
    Ok(())
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::User => "user PIN",
        Role::So => "SO PIN",
    }
}
