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

/// The length range of new PINs (the configuration's PIN policy), set once the
/// configuration is read; a new PIN outside it is asked again.
static NEW_PIN_LEN: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// Records the PIN length range new PINs are checked against at the prompt.
pub fn set_new_pin_len(min: usize, max: usize) {
    let _ = NEW_PIN_LEN.set((min, max));
}

/// Whether a person can be asked: stdin is the terminal, or (as ssh and gpg do)
/// stdin is a pipe or file (`echo data | vtoken sign -i - …`) while the session
/// has a terminal — the prompt then goes to and is read from `/dev/tty`. Only
/// when stderr is that terminal: a process whose diagnostics go elsewhere (a
/// script, a test) is not watched by anyone who could answer, and must not wait.
pub fn can_prompt() -> bool {
    if std::io::stdin().is_terminal() {
        return true;
    }
    std::io::stderr().is_terminal()
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok()
}

fn prompt_text(role: Role, what: &str, confirm: bool) -> Result<Pin> {
    prompt_flags(what, role.flag(), confirm)
}

/// Asks for a PIN described as `what`; without a terminal the error names
/// `flags`, the options that give it ("--from-pin, VTOKEN_FROM_PIN or ...").
pub fn prompt_named_with(what: &str, flags: &str) -> Result<Pin> {
    prompt_flags(what, flags, false)
}

fn prompt_flags(what: &str, flags: &str, confirm: bool) -> Result<Pin> {
    if !can_prompt() {
        bail!("no {what} given and no terminal to ask on: use {flags}");
    }
    // rpassword reads from /dev/tty, not stdin, so a piped stdin stays the data.
    let read = |label: &str| -> Result<Pin> {
        rpassword::prompt_password(label)
            .map(Zeroizing::new)
            .map_err(|e| crate::error::CliError::new(format!("cannot read the {what}: {e}")))
    };
    if !confirm {
        let first = read(&format!("Enter {what}: "))?;
        if first.is_empty() {
            bail!("empty {what}");
        }
        return Ok(first);
    }
    // A new PIN: a typo (too short, too long, the two entries differ) is asked
    // again, three rounds at most, rather than ending the command.
    for _ in 0..3 {
        let first = read(&format!("Enter {what}: "))?;
        if let Some(&(min, max)) = NEW_PIN_LEN.get() {
            if first.len() < min || first.len() > max {
                eprintln!(
                    "a PIN has {min} to {max} characters (this one has {}); try again",
                    first.len()
                );
                continue;
            }
        } else if first.is_empty() {
            eprintln!("the {what} is empty; try again");
            continue;
        }
        let second = read(&format!("Repeat {what}: "))?;
        if *first == *second {
            return Ok(first);
        }
        eprintln!("the two entries differ; try again");
    }
    bail!("no {what} set after three tries")
}
