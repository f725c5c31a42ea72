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

/// Writes `bytes` to `path`, or to stdout when `path` is `None` or `-`.
pub fn write_out(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) if p != Path::new("-") => std::fs::write(p, bytes)
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
