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
//!
//! A picture challenge ([`Prompt::captcha`], the gate, SPEC C2–C4) is drawn with
//! half blocks ([`super::picture`]), as large as the terminal allows, in 24-bit
//! colour where the terminal has it ([`PICTURE_ENV`]), under the title, the description and the time left; the line typed is
//! the answer. An empty line or `r` asks for a new picture ([`CaptchaReply::Refresh`]),
//! `q` or `n` refuses, end of input refuses, and no line within the challenge's
//! lifetime is [`CaptchaReply::TimedOut`].
//!
//! Typed input ([`Prompt::ask`], SPEC V6) is one line after the label; a secret is
//! read with the terminal's echo off (`stty -echo` on the device, restored after the
//! line, a timeout or an error). An empty line is an empty value (an optional field
//! left out); end of input (Ctrl-D) refuses; no line within the timeout is
//! [`AskReply::TimedOut`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use zeroize::Zeroizing;

use super::picture::{self, Style};
use super::{display_safe, Answer, Ask, AskReply, Captcha, CaptchaReply, Prompt, Request};
use crate::error::{Error, PromptError, Result};

/// The default device: the controlling terminal.
pub const DEFAULT_DEVICE: &str = "/dev/tty";

/// Width of a picture, in columns, when the terminal's size is unknown (fits an
/// 80-column terminal).
pub const PICTURE_COLS: u16 = 76;

/// Environment variable choosing how pictures are drawn: `colour` (or `color`) for
/// 24-bit colour, `mono` for plain half blocks; unset (or anything else): colour
/// when `COLORTERM` says the terminal has 24-bit colour (`truecolor`, `24bit`), else
/// plain half blocks.
pub const PICTURE_ENV: &str = "VTOKEN_PROMPT_PICTURE";

/// Lines the captcha prompt needs besides the picture (title, description, question).
const TEXT_ROWS: u16 = 9;

/// The size of terminal `dev` (columns, rows), if `stty size` can tell (use it with
/// [`picture_cols`] to size a picture for a terminal).
pub fn terminal_size(dev: &Path) -> Option<(u16, u16)> {
    let input = std::fs::File::open(dev).ok()?;
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(input)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (rows, cols) = (it.next()??, it.next()??);
    (out.status.success() && cols > 0 && rows > 0).then_some((cols, rows))
}

/// How many columns a `w`×`h` pixel picture may take on a terminal of `size`:
/// the width less one column, and few enough rows to leave the question on screen.
pub fn picture_cols(size: Option<(u16, u16)>, w: u32, h: u32) -> u16 {
    let Some((cols, rows)) = size else {
        return PICTURE_COLS;
    };
    let by_width = cols.saturating_sub(1).max(16);
    // Rows taken at c columns: about c * h / w / 2.
    let max_rows = u32::from(rows.saturating_sub(TEXT_ROWS).max(6));
    let by_height = (max_rows * 2 * w.max(1) / h.max(1)).min(u32::from(u16::MAX)) as u16;
    by_width.min(by_height).max(16)
}

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
    PromptError::Io {
        agent: "tty prompt".into(),
        context: format!(
            "cannot open terminal {} (no terminal here? the SO can set another agent with \
             `vtoken prompt set`)",
            dev.display()
        ),
        source: e,
    }
    .into()
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
        .map_err(|e| PromptError::io("tty prompt", "cannot start reader", e))?;
    Ok(rx)
}

/// Whether a typed line means yes.
pub fn is_yes(line: &str) -> bool {
    let l = line.trim();
    l.eq_ignore_ascii_case("y") || l.eq_ignore_ascii_case("yes")
}

/// What a typed line means for a picture challenge (`line` as read, with its
/// newline; empty at end of input).
pub fn captcha_reply(line: &str) -> CaptchaReply {
    if line.is_empty() {
        return CaptchaReply::Refused;
    }
    let l = line.trim();
    if l.is_empty() || l.eq_ignore_ascii_case("r") {
        CaptchaReply::Refresh
    } else if l.eq_ignore_ascii_case("q") || l.eq_ignore_ascii_case("n") {
        CaptchaReply::Refused
    } else {
        CaptchaReply::Answer(zeroize::Zeroizing::new(l.to_string()))
    }
}

fn picture_style() -> Style {
    let v = std::env::var(PICTURE_ENV).unwrap_or_default();
    if v.eq_ignore_ascii_case("colour") || v.eq_ignore_ascii_case("color") {
        return Style::Colour;
    }
    if v.eq_ignore_ascii_case("mono") {
        return Style::Mono;
    }
    match std::env::var("COLORTERM") {
        Ok(c) if c.eq_ignore_ascii_case("truecolor") || c.eq_ignore_ascii_case("24bit") => {
            Style::Colour
        }
        _ => Style::Mono,
    }
}

impl Tty {
    /// Opens the device for writing and gets a line reader for it: one still
    /// blocked from an earlier, timed-out prompt is reused; anything typed before
    /// this question is dropped.
    fn open(&self, map: &mut HashMap<PathBuf, LineRx>) -> Result<(std::fs::File, LineRx)> {
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.device)
            .map_err(|e| open_err(&self.device, e))?;
        let rx = match map.remove(&self.device) {
            Some(rx) => match rx.try_recv() {
                Err(TryRecvError::Empty) => rx,
                Ok(_) | Err(TryRecvError::Disconnected) => spawn_reader(&self.device)?,
            },
            None => spawn_reader(&self.device)?,
        };
        Ok((out, rx))
    }
}

/// Switches the echo of terminal `dev` on or off (`stty echo` / `stty -echo`).
fn set_echo(dev: &Path, on: bool) -> Result<()> {
    let input = std::fs::File::open(dev).map_err(|e| open_err(dev, e))?;
    let st = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(input)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| PromptError::io("tty prompt", "running stty", e))?;
    if st.success() {
        Ok(())
    } else {
        Err(PromptError::protocol(
            "tty prompt",
            format!("stty could not switch the echo of {}", dev.display()),
        )
        .into())
    }
}

/// Restores the terminal's echo when dropped (after a secret was read).
struct EchoOff<'a>(&'a Path);

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Err(e) = set_echo(self.0, true) {
            tracing::warn!(error = %e, "could not switch the terminal echo back on");
        }
    }
}

impl Prompt for Tty {
    fn confirm(&self, req: &Request) -> Result<Answer> {
        let mut map = readers().lock().unwrap_or_else(|e| e.into_inner());
        let (mut out, rx) = self.open(&mut map)?;
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
            .map_err(|e| PromptError::io("tty prompt", self.device.display().to_string(), e))?;
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
            Ok(Err(e)) => Err(PromptError::io(
                "tty prompt",
                format!("reading {}", self.device.display()),
                e,
            )
            .into()),
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.write_all(b"\n(timed out: not confirmed)\n");
                map.insert(self.device.clone(), rx);
                Ok(Answer::TimedOut)
            }
            Err(RecvTimeoutError::Disconnected) => Err(PromptError::protocol(
                "tty prompt",
                format!("reader for {} stopped", self.device.display()),
            )
            .into()),
        }
    }

    fn name(&self) -> &str {
        "tty"
    }

    fn ask(&self, q: &Ask) -> Result<AskReply> {
        let mut map = readers().lock().unwrap_or_else(|e| e.into_inner());
        let (mut out, rx) = self.open(&mut map)?;
        let mut text = format!("\n{}\n", display_safe(&q.title));
        if !q.description.is_empty() {
            text.push_str(&display_safe(&q.description));
            if !q.description.ends_with('\n') {
                text.push('\n');
            }
        }
        let hint = if q.secret { " (not shown)" } else { "" };
        text.push_str(&format!("{}{hint}: ", display_safe(&q.label)));
        // Echo off before the label appears, so nothing typed after it is shown.
        let echo = if q.secret {
            set_echo(&self.device, false)?;
            Some(EchoOff(&self.device))
        } else {
            None
        };
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| PromptError::io("tty prompt", self.device.display().to_string(), e))?;
        let r = rx.recv_timeout(self.timeout);
        drop(echo);
        match r {
            Ok(Ok(line)) => {
                let mut line = Zeroizing::new(line);
                if line.is_empty() {
                    let _ = out.write_all(b"\n(refused)\n");
                    return Ok(AskReply::Refused);
                }
                if q.secret {
                    // The Enter typed was not echoed either.
                    let _ = out.write_all(b"\n");
                }
                while line.ends_with('\n') || line.ends_with('\r') {
                    line.pop();
                }
                Ok(AskReply::Text(line))
            }
            Ok(Err(e)) => Err(PromptError::io(
                "tty prompt",
                format!("reading {}", self.device.display()),
                e,
            )
            .into()),
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.write_all(b"\n(timed out: nothing taken)\n");
                map.insert(self.device.clone(), rx);
                Ok(AskReply::TimedOut)
            }
            Err(RecvTimeoutError::Disconnected) => Err(PromptError::protocol(
                "tty prompt",
                format!("reader for {} stopped", self.device.display()),
            )
            .into()),
        }
    }

    fn captcha(&self, challenge: &Captcha<'_>) -> Result<CaptchaReply> {
        let (w, h) = picture::png_size(challenge.png)?;
        let mut map = readers().lock().unwrap_or_else(|e| e.into_inner());
        let (mut out, rx) = self.open(&mut map)?;
        let cols = picture_cols(terminal_size(&self.device), w, h);
        let pic = picture::render(challenge.png, cols, picture_style())?;
        let mut text = format!("\n{}\n", display_safe(&challenge.title));
        if !challenge.description.is_empty() {
            text.push_str(&display_safe(&challenge.description));
            if !challenge.description.ends_with('\n') {
                text.push('\n');
            }
        }
        text.push('\n');
        text.push_str(&pic);
        let secs = challenge.lifetime.as_secs_f64().round() as u64;
        text.push_str(&format!(
            "\n\nType the characters in the picture within {secs} second{} \
             (Enter alone or r: new picture, q: give up): ",
            if secs == 1 { "" } else { "s" }
        ));
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| PromptError::io("tty prompt", self.device.display().to_string(), e))?;
        match rx.recv_timeout(challenge.lifetime) {
            Ok(Ok(line)) => {
                let line = zeroize::Zeroizing::new(line);
                if line.is_empty() {
                    let _ = out.write_all(b"\n");
                }
                Ok(captcha_reply(&line))
            }
            Ok(Err(e)) => Err(PromptError::io(
                "tty prompt",
                format!("reading {}", self.device.display()),
                e,
            )
            .into()),
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.write_all(b"\n(timed out: the picture expired)\n");
                map.insert(self.device.clone(), rx);
                Ok(CaptchaReply::TimedOut)
            }
            Err(RecvTimeoutError::Disconnected) => Err(PromptError::protocol(
                "tty prompt",
                format!("reader for {} stopped", self.device.display()),
            )
            .into()),
        }
    }
}
