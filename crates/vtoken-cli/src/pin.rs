//! Where PINs come from: a flag (or its environment variable), a file, or a no-echo
//! prompt on the terminal. PINs live in zeroizing buffers and are never printed.

use std::io::IsTerminal;
use std::path::Path;

use zeroize::Zeroizing;

use crate::args::{SoPin, UserPin};
use crate::error::{bail, Result};

/// A PIN held in memory that is wiped when dropped.
pub type Pin = Zeroizing<String>;

/// Which PIN is meant, for prompts and messages.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    User,
    So,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::User => "user PIN",
            Role::So => "SO PIN",
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Role::User => "--pin, VTOKEN_PIN or --pin-file",
            Role::So => "--so-pin, VTOKEN_SO_PIN or --so-pin-file",
        }
    }
}

/// The first line of a PIN file, without its line ending.
fn read_pin_file(path: &Path) -> Result<Pin> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        crate::error::CliError::new(format!("cannot read PIN file {}: {e}", path.display()))
    })?);
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("PIN file {} is empty", path.display());
    }
    Ok(Zeroizing::new(line.to_string()))
}

/// A PIN given without asking: the file (named explicitly, so it wins over an
/// inherited environment variable), else the flag/environment value.
fn given(value: &Option<String>, file: &Option<std::path::PathBuf>) -> Result<Option<Pin>> {
    if let Some(f) = file {
        return read_pin_file(f).map(Some);
    }
    Ok(value
        .as_ref()
        .filter(|v| !v.is_empty())
        .map(|v| Zeroizing::new(v.clone())))
}

/// The user PIN if given on the command line, in the environment or in a file.
pub fn user_given(p: &UserPin) -> Result<Option<Pin>> {
    given(&p.pin, &p.pin_file)
}

/// The SO PIN if given on the command line, in the environment or in a file.
pub fn so_given(p: &SoPin) -> Result<Option<Pin>> {
    given(&p.so_pin, &p.so_pin_file)
}

/// The user PIN: given, or asked for once on the terminal.
pub fn user(p: &UserPin) -> Result<Pin> {
    match user_given(p)? {
        Some(pin) => Ok(pin),
        None => prompt(Role::User, false),
    }
}

/// The SO PIN: given, or asked for once on the terminal.
pub fn so(p: &SoPin) -> Result<Pin> {
    match so_given(p)? {
        Some(pin) => Ok(pin),
        None => prompt(Role::So, false),
    }
}

/// A value given directly, else a prompt (with confirmation when `confirm`).
pub fn flag_or_prompt(
    value: &Option<String>,
    role: Role,
    what: &str,
    confirm: bool,
) -> Result<Pin> {
    if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
        return Ok(Zeroizing::new(v.clone()));
    }
    prompt_text(role, what, confirm)
}

/// Asks for a user PIN described as `what` ("source token's user PIN").
pub fn prompt_named(what: &str) -> Result<Pin> {
    prompt_text(Role::User, what, false)
}

/// Asks for a PIN on the terminal without echo.
pub fn prompt(role: Role, confirm: bool) -> Result<Pin> {
    prompt_text(role, role.name(), confirm)
}

fn prompt_text(role: Role, what: &str, confirm: bool) -> Result<Pin> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no {what} given and stdin is not a terminal: use {}",
            role.flag()
        );
    }
    let read = |label: &str| -> Result<Pin> {
        rpassword::prompt_password(label)
            .map(Zeroizing::new)
            .map_err(|e| crate::error::CliError::new(format!("cannot read the {what}: {e}")))
    };
    let first = read(&format!("Enter {what}: "))?;
    if first.is_empty() {
        bail!("empty {what}");
    }
    if confirm {
        let second = read(&format!("Repeat {what}: "))?;
        if *first != *second {
            bail!("the two {what} entries differ");
        }
    }
    Ok(first)
}
