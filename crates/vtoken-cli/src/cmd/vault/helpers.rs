//! The vault commands' helpers: entry lookup, field editing, listing, and the
//! clipboard with automatic clearing.

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use vault_core::token::{Token, UserType};
use vault_core::vault::{Entry, Kind, VaultMode, VaultStatus, BANKS};
use zeroize::Zeroizing;

use crate::args::UserPin;
use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::output::{outln, print_json, printable};
use crate::pin;

use super::FieldArgs;

// ---------------------------------------------------------------------- helpers

/// How the core starts its complaints about an entry's content.
const ENTRY: &str = "vault entry: ";

pub(super) fn cerr(e: vault_core::Error) -> CliError {
    use vault_core::Error as E;
    match e {
        E::FunctionRejected => CliError::new(
            "not confirmed: the user refused, the prompt timed out, or the token's prompt \
             agent cannot ask (see `vtoken prompt show`; the SO sets it with `vtoken prompt \
             set`), or the picture check was not passed; nothing was written or revealed",
        ),
        E::NotConfirmed(n) => CliError::new(format!("{n}; nothing was written or revealed")),
        E::UserNotLoggedIn => CliError::new("not logged in (give the user PIN)"),
        // The core says what is wrong with the entry in PKCS#11's words (a template
        // error); the user needs the entry's words and where the fields are listed.
        E::TemplateInconsistent(m) if m.starts_with(ENTRY) => CliError::new(format!(
            "{}; each kind's fields: `vtoken vault add --help`",
            &m[ENTRY.len()..]
        )),
        e => CliError::from(e),
    }
}

pub(super) fn open_user(ctx: &Ctx, user: &UserPin) -> Result<Open> {
    let p = pin::user(user)?;
    let open = ctx.open()?;
    open.login(UserType::User, &p)?;
    Ok(open)
}

/// The id of the entry named by `sel`: an id, else an exact title.
pub(super) fn resolve(token: &Token, sel: &str) -> Result<u64> {
    let list = token.vault_list().map_err(cerr)?;
    if let Ok(id) = sel.parse::<u64>() {
        if list.iter().any(|(i, _)| *i == id) {
            return Ok(id);
        }
    }
    let hits: Vec<u64> = list
        .iter()
        .filter(|(_, s)| s.title == sel)
        .map(|(i, _)| *i)
        .collect();
    match hits.len() {
        1 => Ok(hits[0]),
        0 => bail!("no vault entry with id or title \"{sel}\" (see `vtoken vault list`)"),
        _ => bail!(
            "several vault entries are titled \"{sel}\" (ids {}): give the id",
            hits.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(super) fn split_kv(s: &str) -> Result<(&str, &str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => bail!("\"{s}\": expected NAME=VALUE"),
    }
}

/// A secret asked for without echo when stdin is a terminal.
pub(super) fn ask_secret(what: &str, flag: &str) -> Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        bail!("no {what} given and stdin is not a terminal: use {flag}");
    }
    let v = rpassword::prompt_password(format!("Enter {what}: "))
        .map(Zeroizing::new)
        .map_err(|e| CliError::new(format!("cannot read the {what}: {e}")))?;
    if v.is_empty() {
        bail!("empty {what}");
    }
    Ok(v)
}

pub(super) fn bank_name(f: &FieldArgs) -> Result<Option<String>> {
    if let Some(b) = &f.bank_other {
        return Ok(Some(b.clone()));
    }
    match &f.bank {
        None => Ok(None),
        Some(b) => match BANKS.iter().find(|x| x.eq_ignore_ascii_case(b)) {
            Some(x) => Ok(Some(x.to_string())),
            None => bail!(
                "\"{b}\" is not in the preset bank list (see `vtoken vault banks`); use \
                 --bank-other \"{b}\" for another bank"
            ),
        },
    }
}

/// Applies the field flags to `e`. `new`: prompt for missing preset secrets.
pub(super) fn apply_fields(e: &mut Entry, f: &FieldArgs, new: bool) -> Result<()> {
    if let Some(u) = &f.url {
        e.url = u.clone();
    }
    if let Some(b) = bank_name(f)? {
        e.set("bank", &b, false);
    }
    let plain = [
        ("username", &f.username),
        ("address", &f.address),
        ("server", &f.server),
        ("notes", &f.notes),
    ];
    for (name, v) in plain {
        if let Some(v) = v {
            e.set(name, v, false);
        }
    }
    let secret = [
        ("password", &f.password),
        ("card_number", &f.card_number),
        ("card_pin", &f.card_pin),
    ];
    for (name, v) in secret {
        if let Some(v) = v {
            e.set(name, v, true);
        }
    }
    for kv in &f.fields {
        let (k, v) = split_kv(kv)?;
        e.set(k, v, false);
    }
    for kv in &f.secret_fields {
        let (k, v) = split_kv(kv)?;
        e.set(k, v, true);
    }
    if new {
        // Ask for the preset secrets still missing (the required ones, and a
        // website's password) when a terminal is there to ask on.
        for &(name, secret, required) in e.kind.preset() {
            let wanted = required || (e.kind == Kind::Website && name == "password");
            if secret && wanted && e.field(name).is_none() {
                let flag = format!("--{}", name.replace('_', "-"));
                if !required && !std::io::stdin().is_terminal() {
                    continue;
                }
                let v = ask_secret(&name.replace('_', " "), &flag)?;
                e.set(name, &v, true);
            }
        }
    }
    Ok(())
}

pub(super) fn when(t: u64) -> String {
    vault_core::vault::csv::iso8601(t)
}

pub(super) fn print_status(s: &VaultStatus, json: bool) -> Result<()> {
    if json {
        return print_json(s);
    }
    let mode = match s.mode {
        VaultMode::Available => "available",
        VaultMode::Optional => "optional",
    };
    outln!("state:      {}", s.state.as_str());
    outln!("mode:       {mode}");
    outln!("activated:  {}", if s.activated { "yes" } else { "no" });
    outln!("enabled:    {}", if s.enabled { "yes" } else { "no" });
    if !s.activated {
        outln!(
            "activation: {} of {} wrong codes{}",
            s.activation_failures,
            s.activation_max_tries,
            if s.activation_locked {
                " — LOCKED (only re-initializing the token helps)"
            } else {
                ""
            }
        );
    }
    outln!(
        "usable:     {}",
        if s.usable {
            "yes"
        } else if !s.activated {
            "no — run `vtoken vault activate`, then `vtoken vault enable`"
        } else {
            "no — run `vtoken vault enable`"
        }
    );
    Ok(())
}

pub(super) fn print_list(
    list: &[(u64, vault_core::vault::EntrySummary)],
    json: bool,
) -> Result<()> {
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": id, "kind": s.kind, "title": s.title, "url": s.url,
                    "username": s.username, "modified": s.modified,
                })
            })
            .collect();
        return print_json(&v);
    }
    if list.is_empty() {
        outln!("no vault entries");
        return Ok(());
    }
    outln!(
        "{:>5}  {:<15} {:<28} {:<20} URL",
        "ID",
        "KIND",
        "TITLE",
        "USER"
    );
    for (id, s) in list {
        outln!(
            "{:>5}  {:<15} {:<28} {:<20} {}",
            id,
            s.kind.as_str(),
            printable(&s.title),
            printable(&s.username),
            printable(&s.url)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------- clipboard

pub(super) struct Clipboard {
    copy: Vec<&'static str>,
    paste: &'static str,
    clear: &'static str,
}

pub(super) fn clipboard() -> Option<Clipboard> {
    let has = |n: &str| vault_core::prompt::find_in_path(n).is_some();
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    if set("WAYLAND_DISPLAY") && has("wl-copy") && has("wl-paste") {
        return Some(Clipboard {
            copy: vec!["wl-copy"],
            paste: "wl-paste -n",
            clear: "wl-copy --clear",
        });
    }
    if set("DISPLAY") {
        if has("xclip") {
            return Some(Clipboard {
                copy: vec!["xclip", "-selection", "clipboard"],
                paste: "xclip -o -selection clipboard",
                clear: "printf '' | xclip -selection clipboard",
            });
        }
        if has("xsel") {
            return Some(Clipboard {
                copy: vec!["xsel", "--clipboard", "--input"],
                paste: "xsel --clipboard --output",
                clear: "xsel --clipboard --delete",
            });
        }
    }
    None
}

pub(super) fn pipe_to(argv: &[&str], data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::new(format!("cannot run {}: {e}", argv[0])))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(data)?;
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("{} failed ({st})", argv[0]);
    }
    Ok(())
}

/// Copies `value` to the clipboard and leaves a detached child that clears it after
/// `seconds`, unless something else was copied meanwhile (as `pass -c` does).
pub(super) fn clip(value: &[u8], seconds: u64) -> Result<()> {
    let cb = clipboard().ok_or_else(|| {
        CliError::new(
            "no clipboard: needs a Wayland (wl-copy, wl-paste) or X11 (xclip or xsel) session; \
             print the value instead (without -c)",
        )
    })?;
    pipe_to(&cb.copy, value)?;
    // The secret travels on the child's stdin, never in its arguments.
    let script = format!(
        "IFS= read -r s; sleep \"$1\"; cur=$({paste} 2>/dev/null); \
         if [ \"$cur\" = \"$s\" ]; then {clear} >/dev/null 2>&1; fi",
        paste = cb.paste,
        clear = cb.clear
    );
    let mut cmd = match vault_core::prompt::find_in_path("setsid") {
        Some(s) => {
            let mut c = Command::new(s);
            c.arg("sh");
            c
        }
        None => Command::new("sh"),
    };
    let mut child = cmd
        .args(["-c", &script, "vtoken-clip", &seconds.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start the clipboard clearer: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        use std::io::Write;
        i.write_all(value)?;
        i.write_all(b"\n")?;
    }
    // Not waited for: it outlives this process.
    drop(child);
    Ok(())
}

pub(super) fn read_spki(path: &Path) -> Result<Vec<u8>> {
    use spki::der::{Decode, DecodePem, Encode};
    let bytes = crate::output::read_in(path)?;
    let info = match std::str::from_utf8(&bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN"))
    {
        Some(text) => spki::SubjectPublicKeyInfoOwned::from_pem(text.as_bytes()),
        None => spki::SubjectPublicKeyInfoOwned::from_der(&bytes),
    }
    .map_err(|e| {
        CliError::new(format!(
            "{}: not a public key (PEM \"PUBLIC KEY\" or DER SubjectPublicKeyInfo): {e}",
            path.display()
        ))
    })?;
    info.to_der()
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

pub(super) fn key_by_label(token: &Token, label: &str) -> Result<u64> {
    use cryptoki_sys::*;
    let mut t = vault_core::Attributes::new();
    t.set(CKA_LABEL, label.as_bytes().to_vec());
    t.set_ulong(CKA_KEY_TYPE, CKK_RSA);
    let ids = token.search(&t)?;
    // Prefer the public key; a private key object carries the public part too.
    let by_class = |c| {
        ids.iter().copied().find(|id| {
            token
                .attributes(*id)
                .map(|a| a.class() == Some(c))
                .unwrap_or(false)
        })
    };
    by_class(CKO_PUBLIC_KEY)
        .or_else(|| by_class(CKO_PRIVATE_KEY))
        .ok_or_else(|| CliError::new(format!("no RSA key labelled \"{label}\" on the token")))
}
