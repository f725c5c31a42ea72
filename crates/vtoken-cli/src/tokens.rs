//! Token-level commands: `init`, `list`, `info`, `pin change|unlock`, and deleting a
//! token file.

use cryptoki_sys::*;
use serde_json::{json, Value};
use vault_core::slots::{remove_token_file, slot_id_for_serial};
use vault_core::token::{check_pin_len, PinStatus, TokenInfo, UserType};

use crate::cli::{PinCommand, SoPin, UserPin};
use crate::context::{login, pin_error, Ctx};
use crate::error::{bail, Result};
use crate::output::{outln, print_json};
use crate::pin::{self, Role};

/// `vtoken init`.
pub fn init(
    ctx: &Ctx,
    json: bool,
    label: &str,
    so: &SoPin,
    user: &UserPin,
    vault: &crate::vault::InitVault,
    device: &crate::device::InitDevice,
) -> Result<()> {
    let policy = ctx.config().pin;
    let so_pin = match pin::so_given(so)? {
        Some(p) => p,
        None => pin::prompt(Role::So, true)?,
    };
    check_pin_len(&policy, so_pin.as_bytes())
        .map_err(|e| crate::error::CliError::new(format!("SO PIN: {e}")))?;
    let user_pin = match pin::user_given(user)? {
        Some(p) => p,
        None => pin::prompt(Role::User, true)?,
    };
    check_pin_len(&policy, user_pin.as_bytes())
        .map_err(|e| crate::error::CliError::new(format!("user PIN: {e}")))?;
    if label.len() > 32 {
        bail!("the token label is longer than 32 bytes");
    }
    if ctx.registry.tokens()?.iter().any(|t| t.label == label) {
        bail!("a token labelled '{label}' exists already (labels name tokens; choose another)");
    }
    let entry = ctx.registry.create(label, so_pin.as_bytes(), None)?;
    // Set the user PIN as the SO would through PKCS#11; undo the creation on failure.
    // The vault's factory setting too (SPEC V4), while the SO is logged in.
    let set_user = || -> Result<Option<String>> {
        let token = ctx.registry.open(&entry)?;
        let sid = token.open_session(true)?;
        let res = login(&token, UserType::So, &so_pin)
            .and_then(|_| {
                token
                    .set_key_backup_allowed(device.allow_key_backup)
                    .map_err(Into::into)
            })
            .and_then(|_| token.init_pin(user_pin.as_bytes()).map_err(Into::into))
            .and_then(|_| crate::vault::setup(&token, vault))
            .and_then(|code| {
                if let Some(dir) = &device.certify_with {
                    token.logout()?;
                    login(&token, UserType::User, &user_pin)?;
                    crate::device::certify_with(&token, dir)?;
                }
                Ok(code)
            });
        let _ = token.close_session(sid);
        res
    };
    let vault_code = match set_user() {
        Ok(c) => c,
        Err(e) => {
            let _ = remove_token_file(&entry.path);
            return Err(e);
        }
    };
    if json {
        print_json(&json!({
            "label": entry.label,
            "serial": entry.serial,
            "slot_id": entry.slot_id,
            "path": entry.path,
            "vault": crate::vault::init_json(vault, &vault_code),
        }))
    } else {
        outln!("Token initialized");
        outln!("  label:   {}", entry.label);
        outln!("  serial:  {}", entry.serial);
        outln!("  slot id: {} (0x{:x})", entry.slot_id, entry.slot_id);
        outln!("  file:    {}", entry.path.display());
        crate::vault::init_text(vault, &vault_code);
        Ok(())
    }
}

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

/// `vtoken list`.
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
    if json {
        return print_json(&Value::Array(out));
    }
    for t in &text {
        outln!("{t}");
    }
    outln!(
        "Free slot: `vtoken init --label LABEL` creates a new token in {}",
        ctx.config().token_dir.display()
    );
    Ok(())
}

/// `vtoken info`.
pub fn info(ctx: &Ctx, json: bool) -> Result<()> {
    let entry = ctx.entry()?;
    let token = ctx.registry.open(&entry)?;
    let info = token.info()?;
    let names = flag_names(info.flags);
    if json {
        let mut v = serde_json::to_value(&info)
            .map_err(|e| crate::error::CliError::new(format!("JSON: {e}")))?;
        if let Value::Object(m) = &mut v {
            m.insert("slot_id".into(), json!(entry.slot_id));
            m.insert("flag_names".into(), json!(names));
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
    outln!("  state:          {}", info.gate);
    if info.gate == vault_core::gate::GateState::Locked {
        outln!("  LOCKED by the picture-verification gate: this machine may be compromised;");
        outln!("  check it, then run `vtoken reattach` (needs the user PIN).");
    }
    Ok(())
}

/// `vtoken pin …`.
pub fn pin(ctx: &Ctx, cmd: &PinCommand) -> Result<()> {
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
            let new =
                pin::flag_or_prompt(new_pin, role, &format!("new {}", role_name(role)), true)?;
            token
                .change_pin(who, old.as_bytes(), new.as_bytes())
                .map_err(|e| pin_error(&token, who, e))?;
            eprintln!("{} changed", role_name(role));
        }
        PinCommand::Unlock { so, new_pin } => {
            let so_pin = pin::so(so)?;
            let new = pin::flag_or_prompt(new_pin, Role::User, "new user PIN", true)?;
            token
                .unlock_user(so_pin.as_bytes(), new.as_bytes())
                .map_err(|e| pin_error(&token, UserType::So, e))?;
            eprintln!("user PIN reset and unlocked");
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

/// `vtoken delete --token-file`: removes the selected token's file.
pub fn delete_token(ctx: &Ctx, json: bool, force: bool) -> Result<()> {
    let entry = ctx.entry()?;
    if !force {
        bail!(
            "refusing to delete token '{}' ({}) and all its keys without --force",
            entry.label,
            entry.serial
        );
    }
    ctx.registry.delete(&entry)?;
    if json {
        print_json(
            &json!({"deleted": {"serial": entry.serial, "label": entry.label, "path": entry.path}}),
        )
    } else {
        outln!(
            "Deleted token '{}' (serial {}, slot {}): {}",
            entry.label,
            entry.serial,
            slot_id_for_serial(&entry.serial),
            entry.path.display()
        );
        Ok(())
    }
}
