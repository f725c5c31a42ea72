//! The tty agent: a `Confirm? [y/N]` question on the terminal device itself.
//!
//! It opens the device (default `/dev/tty`, the controlling terminal) rather than
//! using standard input and output, so it works inside programs whose stdio are
//! pipes (a PKCS#11 module loaded by `ssh`, `vtoken ... | jq`). `y` or `yes`
//! (any case) confirms; anything else, or end of input, refuses; no line within the
//! timeout is [`Answer::TimedOut`]. No terminal is an error.
//!
//! A line typed before the question appears (type-ahead) is discarded. The line is
//! read by a helper thread; after a timeout that thread stays blocked until the
//! next line is typed, and the next prompt on the same device reuses it instead of
//! starting a second reader (so there is at most one per device).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{display_safe, Answer, Prompt, Request};
use crate::error::{Error, Result};

/// The default device: the controlling terminal.
pub const DEFAULT_DEVICE: &str = "/dev/tty";

/// Asks on a terminal device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tty {
    /// The terminal to open (default [`DEFAULT_DEVICE`]).
    pub device: PathBuf,
    /// How long to wait for the answer.
    pub timeout: Duration,
}

impl Tty {
    /// The agent on `/dev/tty`.
    pub fn new(timeout: Duration) -> Tty {
        Tty {
            device: PathBuf::from(DEFAULT_DEVICE),
            timeout,
        }
    }
}

type LineRx = Receiver<std::io::Result<String>>;

/// One pending line reader per device; the lock also keeps two prompts from
/// interleaving on one terminal.
fn readers() -> &'static Mutex<HashMap<PathBuf, LineRx>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, LineRx>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

fn open_err(dev: &Path, e: std::io::Error) -> Error {
    Error::General(format!(
        "tty prompt: cannot open terminal {}: {e} (no terminal here? set [prompt] agent \
         or VTOKEN_PROMPT)",
        dev.display()
    ))
}

fn spawn_reader(dev: &Path) -> Result<LineRx> {
    let f = std::fs::File::open(dev).map_err(|e| open_err(dev, e))?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("vtoken-tty-prompt".into())
        .spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(f).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        })
        .map_err(|e| Error::General(format!("tty prompt: cannot start reader: {e}")))?;
    Ok(rx)
}

/// Whether a typed line means yes.
pub fn is_yes(line: &str) -> bool {
    let l = line.trim();
    l.eq_ignore_ascii_case("y") || l.eq_ignore_ascii_case("yes")
}

impl Prompt for Tty {
    fn confirm(&self, req: &Request) -> Result<Answer> {
        let mut map = readers().lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.device)
            .map_err(|e| open_err(&self.device, e))?;
        // Reuse a reader still blocked from an earlier, timed-out prompt; drop
        // anything typed before this question.
        let rx = match map.remove(&self.device) {
            Some(rx) => match rx.try_recv() {
                Err(TryRecvError::Empty) => rx,
                Ok(_) | Err(TryRecvError::Disconnected) => spawn_reader(&self.device)?,
            },
            None => spawn_reader(&self.device)?,
        };
        let mut text = format!("\n{}\n", display_safe(&req.title));
        if !req.description.is_empty() {
            text.push_str(&display_safe(&req.description));
            if !req.description.ends_with('\n') {
                text.push('\n');
            }
        }
        text.push_str("Confirm? [y/N] ");
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Error::General(format!("tty prompt: {}: {e}", self.device.display())))?;
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(line)) => {
                if line.is_empty() {
                    // End of input: finish the prompt line.
                    let _ = out.write_all(b"\n");
                }
                Ok(if is_yes(&line) {
                    Answer::Confirmed
                } else {
                    Answer::Refused
                })
            }
            Ok(Err(e)) => Err(Error::General(format!(
                "tty prompt: reading {}: {e}",
                self.device.display()
            ))),
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.write_all(b"\n(timed out: not confirmed)\n");
                map.insert(self.device.clone(), rx);
                Ok(Answer::TimedOut)
            }
            Err(RecvTimeoutError::Disconnected) => Err(Error::General(format!(
                "tty prompt: reader for {} stopped",
                self.device.display()
            ))),
        }
    }

    fn name(&self) -> &str {
        "tty"
    }
}
