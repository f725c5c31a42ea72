//! `vtoken init`: creates a token with its SO and user PINs, the vault's factory
//! setting (SPEC V4) and, optionally, a device certificate from a local root (V7).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;
use vault_core::prompt::policy::AgentSpec;
use vault_core::slots::remove_token_file;
use vault_core::token::{check_pin_len, Token, UserType};
use vault_core::vault::VaultMode;

use crate::args::{SoPin, UserPin};
use crate::context::{login, Ctx};
use crate::error::{bail, CliError, Result};
use crate::identity;
use crate::output::{outln, print_json};
use crate::pin::{self, Role};

// `vtoken init`. A plain comment: the help text is on the `Command` variant, and
// a doc comment here would become the subcommand's about text.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Token label (at most 32 bytes).
    #[arg(long)]
    pub label: String,
    #[command(flatten)]
    pub so: SoPin,
    #[command(flatten)]
    pub user: UserPin,
    #[command(flatten)]
    pub vault: InitVault,
    #[command(flatten)]
    pub device: InitDevice,
    /// The prompt agent that confirms vault and OTP uses (token policy, as `vtoken
    /// prompt set --agent`): tty, desktop, pinentry[:PATH], deny or command:PATH [default:
    /// asked on a terminal; otherwise the configuration's default].
    #[arg(long, value_name = "AGENT")]
    pub prompt_agent: Option<String>,
}

/// `vtoken init` options for the vault.
#[derive(Debug, Args, Clone, Default)]
pub struct InitVault {
    /// The vault's factory setting (SPEC V4, ¶0083): `available` (no activation;
    /// usable after `vtoken vault enable`) or `optional` (`vtoken vault activate`
    /// with the code printed once at init, then `vtoken vault enable`).
    #[arg(long = "vault", value_enum, default_value_t = InitMode::Available)]
    pub vault: InitMode,
    /// With --vault optional: use this activation code (supplied by the issuer)
    /// instead of generating one.
    #[arg(long, value_name = "CODE", requires = "vault")]
    pub vault_code: Option<String>,
}

/// `--vault` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum InitMode {
    #[default]
    Available,
    Optional,
}

/// `vtoken init` options for the device identity.
#[derive(Debug, Args, Clone, Default)]
pub struct InitDevice {
    /// Allow non-extractable keys to travel in a backup to another authenticated
    /// vtoken (fixed at initialization; default: they stay on this token).
    #[arg(long)]
    pub allow_key_backup: bool,
    /// Certify the new token's device key with the local root in DIR (`vtoken ca init`).
    #[arg(long, value_name = "DIR")]
    pub certify_with: Option<PathBuf>,
}

/// `vtoken init`.
pub fn run(ctx: &Ctx, json: bool, args: &InitArgs) -> Result<()> {
    let InitArgs {
        label,
        so,
        user,
        vault,
        device,
        prompt_agent,
    } = args;
    let label = label.as_str();
    let policy = ctx.config().pin;
    let so_pin = match pin::so_given(so)? {
        Some(p) => p,
        None => pin::prompt(Role::So, true)?,
    };
    check_pin_len(&policy, so_pin.as_bytes())
        .map_err(|e| CliError::new(format!("SO PIN: {}", crate::error::describe(&e))))?;
    let user_pin = match pin::user_given(user)? {
        Some(p) => p,
        None => pin::prompt(Role::User, true)?,
    };
    check_pin_len(&policy, user_pin.as_bytes())
        .map_err(|e| CliError::new(format!("user PIN: {}", crate::error::describe(&e))))?;
    if label.len() > 32 {
        bail!("the token label is longer than 32 bytes");
    }
    if ctx.registry.tokens()?.iter().any(|t| t.label == label) {
        bail!("a token labelled '{label}' exists already (labels name tokens; choose another)");
    }
    let progress =
        crate::output::Progress::start("creating the token (deriving keys from the PINs)…");
    let entry = ctx.registry.create(label, so_pin.as_bytes(), None)?;
    // Set the user PIN as the SO would through PKCS#11; undo the creation on failure.
    // The vault's factory setting too (SPEC V4), while the SO is logged in.
    let set_user = || -> Result<Option<String>> {
        let token = ctx.registry.open(&entry)?;
        let sid = &token.open_session(true)?;
        let res = login(&token, UserType::So, &so_pin)
            .and_then(|_| {
                token
                    .set_key_backup_allowed(device.allow_key_backup)
                    .map_err(Into::into)
            })
            .and_then(|_| token.init_pin(user_pin.as_bytes()).map_err(Into::into))
            .and_then(|_| setup(&token, vault))
            .and_then(|code| {
                if let Some(dir) = &device.certify_with {
                    token.logout()?;
                    login(&token, UserType::User, &user_pin)?;
                    identity::certify_with(&token, dir)?;
                }
                Ok(code)
            });
        let _ = token.close_session(sid);
        res
    };
    progress.set("setting the user PIN and the device key…");
    let vault_code = match set_user() {
        Ok(c) => c,
        Err(e) => {
            let _ = remove_token_file(&entry.path);
            return Err(e);
        }
    };
    drop(progress);
    let agent = match prompt_agent {
        Some(a) => Some(a.clone()),
        None if !json && std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            Some(choose_agent()?)
        }
        None => None,
    };
    if let Some(a) = &agent {
        let set = || -> Result<()> {
            let token = ctx.registry.open(&entry)?;
            let mut p = token.prompt_policy()?;
            p.agent = AgentSpec::parse(a)?;
            token
                .set_prompt_policy(so_pin.as_bytes(), p)
                .map_err(|e| crate::context::pin_error(&token, UserType::So, e))
        };
        if let Err(e) = set() {
            let _ = remove_token_file(&entry.path);
            return Err(e);
        }
    }
    if json {
        print_json(&json!({
            "label": entry.label,
            "serial": entry.serial,
            "slot_id": entry.slot_id,
            "path": entry.path,
            "vault": init_json(vault, &vault_code),
        }))
    } else {
        outln!("Token initialized");
        outln!("  label:   {}", entry.label);
        outln!("  serial:  {}", entry.serial);
        outln!("  slot id: {} (0x{:x})", entry.slot_id, entry.slot_id);
        outln!("  file:    {}", entry.path.display());
        if let Some(a) = &agent {
            outln!("  prompt:  {a} (confirms vault and OTP uses; change with `vtoken prompt set`)");
        }
        init_text(vault, &vault_code);
        Ok(())
    }
}

/// Asks on the terminal which agent confirms vault and OTP uses on this token.
fn choose_agent() -> Result<String> {
    use std::io::{BufRead, Write};
    let has_pinentry = vault_core::prompt::find_in_path("pinentry").is_some();
    let desktop = vault_core::prompt::Desktop::from_path(std::time::Duration::from_secs(1));
    let desktop_note = if desktop.zenity.is_none() && desktop.yad.is_none() {
        " (not installed: apt-get install zenity yad)"
    } else if desktop.yad.is_none() {
        " (pictures need yad: apt-get install yad)"
    } else {
        ""
    };
    eprintln!("Who confirms vault and OTP uses on this token (its prompt agent)?");
    eprintln!("  1) terminal  — asks on the terminal the command runs in (default)");
    eprintln!(
        "  2) desktop   — a dialog on the desktop, for browsers and other programs \
         without a terminal{desktop_note}"
    );
    eprintln!(
        "  3) pinentry  — a GnuPG pinentry window or terminal dialog{}",
        if has_pinentry {
            ""
        } else {
            " (not installed: apt-get install pinentry-gnome3)"
        }
    );
    eprintln!("  4) nobody    — refuse every confirmation (headless tokens)");
    for _ in 0..3 {
        eprint!("Choice [1]: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        match line.trim() {
            "" | "1" | "terminal" | "tty" => return Ok("tty".into()),
            "2" | "desktop" => return Ok("desktop".into()),
            "3" | "pinentry" => return Ok("pinentry".into()),
            "4" | "nobody" | "deny" => return Ok("deny".into()),
            other => eprintln!("{other:?} is not 1, 2, 3 or 4"),
        }
    }
    bail!("no prompt agent chosen; give --prompt-agent tty|desktop|pinentry|deny")
}

/// Sets the vault up on a new token (the SO is logged in). Returns the activation
/// code to show once.
pub fn setup(token: &Token, v: &InitVault) -> Result<Option<String>> {
    match (v.vault, &v.vault_code) {
        (InitMode::Available, Some(_)) => bail!("--vault-code needs --vault optional"),
        (InitMode::Available, None) => Ok(token.vault_setup(VaultMode::Available)?),
        (InitMode::Optional, None) => Ok(token.vault_setup(VaultMode::Optional)?),
        (InitMode::Optional, Some(c)) => {
            token.vault_setup_with_code(VaultMode::Optional, Some(c))?;
            Ok(None)
        }
    }
}

/// What `vtoken init` reports about the vault (JSON).
pub fn init_json(v: &InitVault, code: &Option<String>) -> serde_json::Value {
    json!({
        "mode": match v.vault { InitMode::Available => "available", InitMode::Optional => "optional" },
        "activation_code": code,
        "state": match v.vault { InitMode::Available => "activated", InitMode::Optional => "absent" },
    })
}

/// What `vtoken init` prints about the vault (text).
pub fn init_text(v: &InitVault, code: &Option<String>) {
    match (v.vault, code) {
        (InitMode::Available, _) => {
            outln!("  vault:   available, not enabled (switch it on with `vtoken vault enable`)")
        }
        (InitMode::Optional, Some(c)) => {
            outln!("  vault:   optional, not activated");
            outln!();
            outln!("Vault activation code (shown only this once; keep it safe):");
            outln!("  {c}");
            outln!("Activate the vault with `vtoken vault activate`, then `vtoken vault enable`.");
        }
        (InitMode::Optional, None) => {
            outln!("  vault:   optional, not activated (activation code from the issuer)")
        }
    }
}
