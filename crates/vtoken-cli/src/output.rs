//! Writing results: JSON on stdout, binary or text to a file or stdout.

use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;

use crate::error::{CliError, Result};

/// `println!` that ignores a closed stdout (`vtoken list | head` must not panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use outln;

/// Prints `v` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::new(format!("JSON: {e}")))?;
    outln!("{s}");
    Ok(())
}

/// `s` as it may go to a terminal: control characters (C0 including ESC, DEL, C1)
/// and the bidirectional-text controls become `\x1b`, `\u{9b}`, … escapes, so text
/// from a token or an imported file (a vault title, URL or user name) cannot move
/// the cursor, rewrite the screen or reorder what is shown. Other text is
/// unchanged (and not copied).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() // C0, DEL and C1
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Creates (or truncates) `path` for writing: a new file is readable by its owner
/// only (`-o` files may hold secrets), and an existing regular file is set to 0600.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let f = o.open(path)?;
        if f.metadata()?.is_file() {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(f)
    }
    #[cfg(not(unix))]
    o.open(path)
}

/// Writes `bytes` to `path` (created 0600, see [`create_private`]), or to stdout
/// when `path` is `None` or `-`.
pub fn write_out(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) if p != Path::new("-") => create_private(p)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", p.display()))),
        _ => {
            let mut out = std::io::stdout().lock();
            match out.write_all(bytes).and_then(|_| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

/// Reads `path`, or stdin when it is `-`.
pub fn read_in(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        return Ok(v);
    }
    std::fs::read(path).map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))
}

/// A spinner on stderr while a long step runs (KDF, key generation, a backup, a
/// batch), drawn only when stderr is a terminal: scripts and logs get nothing.
/// Cleared when dropped.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// Starts the spinner with `message` (on a terminal).
    pub fn start(message: &str) -> Progress {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// Changes the message.
    pub fn set(&self, message: &str) {
        if let Some(b) = &self.0 {
            b.set_message(message.to_string());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}
