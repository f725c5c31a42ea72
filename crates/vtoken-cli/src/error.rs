//! The CLI's error: one message line for stderr and an exit status.

use std::fmt;

/// A failure to report as `error: …` with exit status 1.
#[derive(Debug)]
pub struct CliError {
    /// The message (one line, no "error:" prefix).
    pub message: String,
}

/// Result alias of the CLI.
pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<vault_core::Error> for CliError {
    fn from(e: vault_core::Error) -> Self {
        CliError {
            message: describe(&e),
        }
    }
}

/// A token error in the CLI's words: what to do next where there is something to do.
pub fn describe(e: &vault_core::Error) -> String {
    use vault_core::Error as E;
    match e {
        E::UserNotLoggedIn => "not logged in (give the user PIN)".to_string(),
        E::UserPinNotInitialized => {
            "the user PIN is not set on this token (set one with `vtoken pin unlock`)".into()
        }
        // The core's words for PKCS#11 callers ("invalid arguments: …", "4..=64")
        // in plain words for a person.
        E::ArgumentsBad(m) => m.clone(),
        E::PinLenRange { min, max } => {
            format!("a PIN has {min} to {max} characters; choose one of that length")
        }
        _ => e.to_string(),
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

/// Returns early with an [`CliError`] built from a format string.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::CliError::new(format!($($arg)*)))
    };
}
pub(crate) use bail;
