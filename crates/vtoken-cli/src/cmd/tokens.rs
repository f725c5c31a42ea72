//! `vtoken list` and `vtoken info`: the tokens and one token's information.

use cryptoki_sys::*;
use serde_json::{json, Value};
use vault_core::token::{PinStatus, TokenInfo};

use clap::Args;
use vault_core::token::UserType;

use crate::args::UserPin;
use crate::context::Ctx;
use crate::error::Result;
use crate::output::{outln, print_json};

/// Names of the `CKF_*` token flags set in `flags`.
pub fn flag_names(flags: u64) -> Vec<&'static str> {
    const NAMES: &[(CK_FLAGS, &str)] = &[
        (CKF_RNG, "RNG"),
        (CKF_WRITE_PROTECTED, "WRITE_PROTECTED"),
        (CKF_LOGIN_REQUIRED, "LOGIN_REQUIRED"),
        (CKF_USER_PIN_INITIALIZED, "USER_PIN_INITIALIZED"),
        (CKF_RESTORE_KEY_NOT_NEEDED, "RESTORE_KEY_NOT_NEEDED"),
        (CKF_CLOCK_ON_TOKEN, "CLOCK_ON_TOKEN"),
        (
            CKF_PROTECTED_AUTHENTICATION_PATH,
            "PROTECTED_AUTHENTICATION_PATH",
        ),
        (CKF_DUAL_CRYPTO_OPERATIONS, "DUAL_CRYPTO_OPERATIONS"),
        (CKF_TOKEN_INITIALIZED, "TOKEN_INITIALIZED"),
        (CKF_SECONDARY_AUTHENTICATION, "SECONDARY_AUTHENTICATION"),
        (CKF_USER_PIN_COUNT_LOW, "USER_PIN_COUNT_LOW"),
        (CKF_USER_PIN_FINAL_TRY, "USER_PIN_FINAL_TRY"),
        (CKF_USER_PIN_LOCKED, "USER_PIN_LOCKED"),
        (CKF_USER_PIN_TO_BE_CHANGED, "USER_PIN_TO_BE_CHANGED"),
        (CKF_SO_PIN_COUNT_LOW, "SO_PIN_COUNT_LOW"),
        (CKF_SO_PIN_FINAL_TRY, "SO_PIN_FINAL_TRY"),
        (CKF_SO_PIN_LOCKED, "SO_PIN_LOCKED"),
        (CKF_SO_PIN_TO_BE_CHANGED, "SO_PIN_TO_BE_CHANGED"),
        (CKF_ERROR_STATE, "ERROR_STATE"),
    ];
    NAMES
        .iter()
        .filter(|(f, _)| flags & *f != 0)
        .map(|(_, n)| *n)
        .collect()
}

fn pin_state(s: &PinStatus) -> String {
    if s.locked {
        return format!("LOCKED ({} of {} tries failed)", s.failures, s.max_tries);
    }
    let mut t = format!("ok, {} of {} tries failed", s.failures, s.max_tries);
    if s.final_try {
        t.push_str(", final try");
    }
    if s.to_be_changed {
        t.push_str(", must be changed");
    }
    t
}

fn list_entry(info: &TokenInfo, slot_id: u64) -> Value {
    json!({
        "slot_id": slot_id,
        "serial": info.serial,
        "label": info.label,
        "path": info.path,
        "token_initialized": true,
        "user_pin_initialized": info.user_pin_initialized,
        "user_pin_locked": info.user_pin.locked,
        "so_pin_locked": info.so_pin.locked,
        "user_pin_failures": info.user_pin.failures,
        "so_pin_failures": info.so_pin.failures,
        "user_pin_to_be_changed": info.user_pin.to_be_changed,
        "objects": {
            "public": info.public_objects,
            "private": info.private_objects,
        },
    })
}

/// `vtoken list`: every token, then the free slot (with --json too: its entry has
/// `"free": true`).
pub fn list(ctx: &Ctx, json: bool) -> Result<()> {
    let mut out = Vec::new();
    let mut text = Vec::new();
    for entry in ctx.registry.tokens()? {
        let info = match ctx.registry.open(&entry).and_then(|t| t.info()) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("warning: cannot read {}: {e}", entry.path.display());
                continue;
            }
        };
        out.push(list_entry(&info, entry.slot_id));
        let user = if info.user_pin_initialized {
            pin_state(&info.user_pin)
        } else {
            "not set".to_string()
        };
        text.push(format!(
            "Slot {} (0x{:x}): token \"{}\"\n  serial:  {}\n  file:    {}\n  user PIN: {}\n  SO PIN:   {}\n  objects: {} public, {} private",
            entry.slot_id,
            entry.slot_id,
            info.label,
            info.serial,
            info.path.display(),
            user,
            pin_state(&info.so_pin),
            info.public_objects,
            info.private_objects,
        ));
    }
    for (path, e) in ctx.registry.problems().unwrap_or_default() {
        eprintln!(
            "warning: skipping unreadable token file {}: {e}",
            path.display()
        );
    }
    // The free slot, under the ID PKCS#11 applications see it (the module reserves
    // the next token's serial and names the slot after it).
    let free_id = ctx
        .registry
        .free_serial()
        .map(|s| vault_core::slots::slot_id_for_serial(&s))
        .unwrap_or(vault_core::slots::FREE_SLOT_ID);
    if json {
        out.push(json!({
            "slot_id": free_id,
            "free": true,
            "token_initialized": false,
            "token_dir": ctx.config().token_dir,
        }));
        return print_json(&Value::Array(out));
    }
    for t in &text {
        outln!("{t}");
    }
    outln!(
        "Free slot {free_id} (0x{free_id:x}): `vtoken init --label LABEL` creates a new token in {}",
        ctx.config().token_dir.display()
    );
    Ok(())
}

/// `vtoken info --help`.
pub const INFO_HELP: &str = "\
State (SPEC C6, after CN102609656A Fig. 5), the `state` field of --json:
  initial       no user login in this process (the key just plugged in)
  pin-verified  the user PIN was verified (only with --login: each vtoken command is
                its own process, and a login lasts as long as the process)
  locked        the picture gate locked the token after too many failed pictures:
                every operation fails until `vtoken reattach` (SO PIN)
  pin-locked    the user PIN is locked after too many wrong PINs: `vtoken pin unlock`
The PKCS#11 module reports the same: the PIN flags in C_GetTokenInfo's flags, the
state in its utcTime field (blank-padded; the token sets no CKF_CLOCK_ON_TOKEN, so
that field carries no time), and a gate-locked token answers CKR_DEVICE_REMOVED.
Every change of state is logged (`token state`, with the new state; no PINs).

Examples:
  vtoken info
  vtoken --json info | jq -r .state
  vtoken info --login --pin-file pin.txt     # verifies the PIN: state pin-verified";

/// `vtoken info` options.
#[derive(Debug, Args, Clone, Default)]
pub struct InfoArgs {
    /// Verify the user PIN first (a counted login, as any), so the state shows
    /// `pin-verified`; a wrong PIN is reported and uses a try.
    #[arg(long)]
    pub login: bool,
    #[command(flatten)]
    pub pin: UserPin,
}

/// `vtoken info`.
pub fn info(ctx: &Ctx, json: bool, args: &InfoArgs) -> Result<()> {
    let entry = ctx.entry()?;
    let token = ctx.registry.open(&entry)?;
    if args.login {
        let pin = crate::pin::user(&args.pin)?;
        crate::context::login(&token, UserType::User, &pin)?;
    }
    let info = token.info()?;
    let names = flag_names(info.flags);
    // The vault's state (SPEC V4): absent, activated, enabled or disabled.
    let vault = token.vault_status().ok().map(|s| s.state.as_str());
    if json {
        let mut v = serde_json::to_value(&info)
            .map_err(|e| crate::error::CliError::new(format!("JSON: {e}")))?;
        if let Value::Object(m) = &mut v {
            m.insert("slot_id".into(), json!(entry.slot_id));
            m.insert("flag_names".into(), json!(names));
            m.insert("vault".into(), json!(vault));
        }
        return print_json(&v);
    }
    outln!("Slot {} (0x{:x})", entry.slot_id, entry.slot_id);
    outln!("  label:          {}", info.label);
    outln!("  manufacturer:   {}", info.manufacturer);
    outln!("  model:          {}", info.model);
    outln!("  serial:         {}", info.serial);
    outln!("  file:           {}", info.path.display());
    outln!("  flags:          0x{:x} {}", info.flags, names.join(" "));
    outln!(
        "  user PIN:       {}",
        if info.user_pin_initialized {
            pin_state(&info.user_pin)
        } else {
            "not set".into()
        }
    );
    outln!("  SO PIN:         {}", pin_state(&info.so_pin));
    outln!(
        "  PIN length:     {}..{} bytes",
        info.min_pin_len,
        info.max_pin_len
    );
    outln!(
        "  objects:        {} public, {} private",
        info.public_objects,
        info.private_objects
    );
    outln!("  read-only:      {}", info.read_only);
    outln!("  state:          {}", info.state);
    outln!("  vault:          {}", vault.unwrap_or("unknown"));
    if info.gate == vault_core::gate::GateState::Locked {
        outln!("  LOCKED by the picture-verification gate: this machine may be compromised;");
        outln!("  check it, then run `vtoken reattach` (needs the SO PIN).");
    }
    Ok(())
}
