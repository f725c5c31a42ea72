//! The pinentry agent: a GnuPG pinentry program spoken to over Assuan.
//!
//! Any pinentry works (`pinentry-curses`, `pinentry-tty`, `pinentry-gtk-2`,
//! `pinentry-qt`, ...). The conversation for a confirmation:
//!
//! ```text
//! <- OK Pleased to meet you
//! -> OPTION ttyname=/dev/pts/3      (when a terminal is known)
//! -> OPTION ttytype=xterm-256color  (from $TERM)
//! -> SETTITLE vtoken
//! -> SETDESC Store vault entry?%0Asite: example.org
//! -> SETPROMPT Confirm
//! -> SETOK _Yes / SETCANCEL _No
//! -> SETTIMEOUT 60
//! -> CONFIRM
//! <- OK                            -> Confirmed
//! <- ERR 83886179 Operation cancelled <Pinentry>   -> Refused
//! <- ERR 83886142 Timeout <Pinentry>               -> TimedOut
//! -> BYE
//! ```
//!
//! Besides pinentry's own `SETTIMEOUT`, a watchdog kills the program when it has not
//! answered `timeout + 2 s` after it started, so a hung pinentry never blocks the
//! token. An `ERR` carrying a system error (pinentry could not open the terminal,
//! say) is an `Err` ("no prompt could be shown"); any other `ERR` is a refusal.
//!
//! ## Picture challenges
//!
//! A pinentry shows text, not images; but a terminal pinentry (`GETINFO flavor` is
//! `curses` or `tty`, possibly after a graphical one's fallback: `gtk2:curses`)
//! shows a description made of half blocks as a picture. [`Prompt::captcha`] draws
//! the challenge with [`super::picture::to_half_blocks`] as wide as fits one Assuan
//! line ([`CAPTCHA_MAX_COLS`] down to [`CAPTCHA_MIN_COLS`] columns), puts it under
//! the title and description with `SETDESC`, and asks for the answer with `GETPIN`
//! (`SETTIMEOUT`: the challenge's lifetime). The PIN field is the answer; an empty
//! one asks for a new picture; cancel refuses. A graphical pinentry (proportional
//! fonts would scramble the picture), one that does not say its flavor, or a
//! picture that does not fit is `Err(FunctionNotSupported)` (nothing was shown;
//! the reason is logged at `warn`): use the `tty` or `command` agent then.
//!
//! ## Typed input
//!
//! [`Prompt::ask`] (input on the token, SPEC V6) is a `GETPIN` with the field's label
//! as `SETPROMPT`: pinentry never echoes its entry, so a non-secret field is typed
//! unseen too, and the token shows the whole entry for confirmation afterwards.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::child::{self, kill_tree, wait_until};
use super::{display_safe, Answer, Ask, AskReply, Captcha, CaptchaReply, Prompt, Request};
use crate::error::{Error, PromptError, Result};

/// Extra time the watchdog gives a pinentry beyond its own timeout.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// Longest Assuan line (the protocol's limit is 1000 bytes before the newline).
const MAX_LINE: usize = 1000;

/// libgpg-error codes (the low 16 bits of an `ERR` code).
const GPG_ERR_TIMEOUT: u32 = 62;
const GPG_ERR_CANCELED: u32 = 99;
const GPG_ERR_NOT_CONFIRMED: u32 = 114;
const GPG_ERR_SYSTEM_ERROR: u32 = 0x8000;

/// Widest picture tried in a pinentry description, in columns.
pub const CAPTCHA_MAX_COLS: u16 = 64;
/// Narrowest picture shown in a pinentry description; below it, `Err`.
pub const CAPTCHA_MIN_COLS: u16 = 32;

/// The pinentry programs tried, in order, when none is configured.
pub const DEFAULT_PROGRAMS: &[&str] = &["pinentry-curses", "pinentry-tty", "pinentry"];

/// The first of [`DEFAULT_PROGRAMS`] found in `PATH`.
pub fn default_program() -> Option<PathBuf> {
    DEFAULT_PROGRAMS.iter().find_map(|n| super::find_in_path(n))
}

/// The terminal a pinentry should use when none is configured: `$GPG_TTY`, else the
/// terminal on this process's stdin, stdout or stderr, else `/dev/tty` if it can be
/// opened. `None` without a terminal (a graphical pinentry may still work).
pub fn detect_tty() -> Option<PathBuf> {
    use std::io::IsTerminal;
    if let Some(t) = std::env::var_os("GPG_TTY").filter(|t| !t.is_empty()) {
        return Some(PathBuf::from(t));
    }
    let fds = [
        (0, std::io::stdin().is_terminal()),
        (1, std::io::stdout().is_terminal()),
        (2, std::io::stderr().is_terminal()),
    ];
    for (fd, is_tty) in fds {
        if is_tty {
            if let Ok(p) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
                if p.starts_with("/dev/") {
                    return Some(p);
                }
            }
        }
    }
    let dev = Path::new(super::tty::DEFAULT_DEVICE);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .ok()
        .map(|_| dev.to_path_buf())
}

/// Percent-escapes `s` for an Assuan command argument: `%`, CR, LF (and every
/// other control character) become `%XX`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || (c as u32) < 0x20 || c == '\u{7f}' {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes Assuan percent escapes (`%XX`, either case); a malformed escape is kept
/// as it is.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// An escaped argument cut to fit one Assuan line after `cmd `, never inside an
/// escape, with a visible mark when something was cut.
fn fit(cmd: &str, escaped: String) -> String {
    let room = MAX_LINE - cmd.len() - 1;
    if escaped.len() <= room {
        return escaped;
    }
    const MARK: &str = "%0A[... truncated]";
    let mut end = room - MARK.len();
    while !escaped.is_char_boundary(end) {
        end -= 1;
    }
    // Do not split a %XX escape.
    if let Some(p) = escaped[end.saturating_sub(2)..end].find('%') {
        end = end.saturating_sub(2) + p;
    }
    format!("{}{MARK}", &escaped[..end])
}

/// Asks through a GnuPG pinentry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinentry {
    /// The pinentry program.
    pub program: PathBuf,
    /// Passed on as `SETTIMEOUT`; the watchdog allows [`WATCHDOG_GRACE`] more.
    pub timeout: Duration,
    /// The terminal for curses/tty pinentries (`OPTION ttyname`); `None`: none sent.
    pub tty: Option<PathBuf>,
}

/// Why a conversation ended early.
enum Fail {
    /// The watchdog fired.
    Watchdog,
    /// Anything else.
    Other(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Other(e)
    }
}

/// How a command ended.
enum Status {
    Ok,
    Err { code: u32, text: String },
}

/// A running pinentry.
struct Conn {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<Zeroizing<Vec<u8>>>>,
    deadline: Instant,
    program: String,
}

impl Conn {
    fn start(p: &Pinentry) -> Result<Conn> {
        let program = p.program.display().to_string();
        let mut child = child::spawn(
            std::process::Command::new(&p.program)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .map_err(|e| PromptError::Start {
            agent: format!("pinentry {program}"),
            source: e,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("vtoken-pinentry".into())
            .spawn(move || {
                let mut r = BufReader::new(stdout);
                loop {
                    let mut line = Zeroizing::new(Vec::new());
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            while matches!(line.last(), Some(b'\n' | b'\r')) {
                                line.pop();
                            }
                            if tx.send(Ok(line)).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
            });
        let mut c = Conn {
            child,
            stdin,
            lines: rx,
            deadline: Instant::now() + p.timeout + WATCHDOG_GRACE,
            program,
        };
        if let Err(e) = spawned {
            c.kill();
            return Err(PromptError::io("pinentry", "cannot start reader", e).into());
        }
        Ok(c)
    }

    fn kill(&mut self) {
        self.stdin = None;
        kill_tree(&mut self.child);
    }

    fn err(&self, what: impl std::fmt::Display) -> Fail {
        Fail::Other(
            PromptError::protocol(format!("pinentry {}", self.program), what.to_string()).into(),
        )
    }

    /// Reads one reply: the data lines and the final status.
    fn reply(&mut self, data: &mut Zeroizing<Vec<u8>>) -> std::result::Result<Status, Fail> {
        loop {
            let wait = self.deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(wait) {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return Err(self.err(format!("read: {e}"))),
                Err(RecvTimeoutError::Timeout) => return Err(Fail::Watchdog),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.err("closed the connection unexpectedly"))
                }
            };
            let l: &[u8] = &line;
            if l == b"OK" || l.starts_with(b"OK ") {
                return Ok(Status::Ok);
            } else if l == b"ERR" || l.starts_with(b"ERR ") {
                let rest = String::from_utf8_lossy(l.get(4..).unwrap_or_default()).into_owned();
                let (code, text) = match rest.split_once(' ') {
                    Some((c, t)) => (c.parse().unwrap_or(0), t.to_string()),
                    None => (rest.parse().unwrap_or(0), String::new()),
                };
                return Ok(Status::Err { code, text });
            } else if let Some(d) = l.strip_prefix(b"D ") {
                data.extend_from_slice(&Zeroizing::new(unescape(d)));
            } else if l.starts_with(b"INQUIRE") {
                // We offer nothing to inquire about.
                self.send("CAN")?;
            }
            // "S ..." status lines and "#" comments are ignored.
        }
    }

    fn send(&mut self, line: &str) -> std::result::Result<(), Fail> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.err("connection closed"));
        };
        let r = stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.write_all(b"\n"))
            .and_then(|_| stdin.flush());
        r.map_err(|e| self.err(format!("write: {e}")))
    }

    /// Sends a command and reads its reply.
    fn command(
        &mut self,
        line: &str,
        data: &mut Zeroizing<Vec<u8>>,
    ) -> std::result::Result<Status, Fail> {
        self.send(line)?;
        self.reply(data)
    }

    /// A setting: an `ERR` (an option this pinentry does not know) is ignored.
    fn set(&mut self, cmd: &str, arg: &str) -> std::result::Result<(), Fail> {
        let line = format!("{cmd} {}", fit(cmd, escape(arg)));
        if let Status::Err { code, text } = self.command(&line, &mut Zeroizing::default())? {
            tracing::debug!(program = %self.program, cmd, code, %text, "pinentry refused a setting");
        }
        Ok(())
    }

    /// Greeting and the settings common to CONFIRM and GETPIN.
    fn setup(&mut self, p: &Pinentry, title: &str) -> std::result::Result<(), Fail> {
        match self.reply(&mut Zeroizing::default())? {
            Status::Ok => {}
            Status::Err { text, .. } => return Err(self.err(format!("bad greeting: {text}"))),
        }
        if let Some(tty) = &p.tty {
            self.set("OPTION", &format!("ttyname={}", tty.display()))?;
            if let Some(term) = std::env::var("TERM").ok().filter(|t| !t.is_empty()) {
                self.set("OPTION", &format!("ttytype={term}"))?;
            }
        }
        self.set("SETTITLE", &display_safe(title))?;
        let secs = p.timeout.as_secs().max(1);
        self.set("SETTIMEOUT", &secs.to_string())?;
        Ok(())
    }

    fn bye(mut self) {
        let _ = self.send("BYE");
        self.stdin = None;
        // Give it a moment to leave on its own (restoring the terminal), then kill.
        let soon = Instant::now() + Duration::from_millis(1500);
        if !matches!(wait_until(&mut self.child, soon), Ok(Some(_))) {
            kill_tree(&mut self.child);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

fn is_timeout(code: u32, text: &str) -> bool {
    code & 0xffff == GPG_ERR_TIMEOUT || text.to_ascii_lowercase().contains("timeout")
}

fn is_system_error(code: u32) -> bool {
    code & GPG_ERR_SYSTEM_ERROR != 0
}

impl Pinentry {
    /// A pinentry agent with no terminal set; see [`detect_tty`].
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Pinentry {
        Pinentry {
            program: program.into(),
            timeout,
            tty: None,
        }
    }

    fn confirm_inner(&self, conn: &mut Conn, req: &Request) -> std::result::Result<Answer, Fail> {
        conn.setup(self, &req.title)?;
        let desc = if req.description.is_empty() {
            display_safe(&req.title)
        } else {
            display_safe(&format!("{}\n\n{}", req.title, req.description))
        };
        conn.set("SETDESC", &desc)?;
        conn.set("SETPROMPT", "Confirm")?;
        conn.set("SETOK", "_Yes")?;
        conn.set("SETCANCEL", "_No")?;
        let status = conn.command("CONFIRM", &mut Zeroizing::default())?;
        Ok(match status {
            Status::Ok => Answer::Confirmed,
            Status::Err { code, text } if is_timeout(code, &text) => Answer::TimedOut,
            Status::Err { code, text } if is_system_error(code) => {
                return Err(conn.err(format!("cannot show a prompt: {text} (ERR {code})")))
            }
            Status::Err { code, text } => {
                if code & 0xffff != GPG_ERR_CANCELED && code & 0xffff != GPG_ERR_NOT_CONFIRMED {
                    tracing::warn!(program = %conn.program, code, %text, "pinentry error; taken as a refusal");
                }
                Answer::Refused
            }
        })
    }

    /// Asks for a PIN or passphrase with `GETPIN`. `Ok(None)` when the user cancels
    /// or the prompt times out.
    pub fn get_pin(&self, title: &str, prompt: &str) -> Result<Option<Zeroizing<String>>> {
        let mut conn = Conn::start(self)?;
        let r = (|| -> std::result::Result<Option<Zeroizing<String>>, Fail> {
            conn.setup(self, title)?;
            conn.set("SETDESC", &display_safe(title))?;
            conn.set("SETPROMPT", &display_safe(prompt))?;
            let mut data = Zeroizing::new(Vec::new());
            match conn.command("GETPIN", &mut data)? {
                Status::Ok => {
                    let s = String::from_utf8(std::mem::take(&mut *data)).map_err(|e| {
                        let mut bytes = e.into_bytes();
                        zeroize::Zeroize::zeroize(&mut bytes);
                        conn.err("the PIN is not valid UTF-8")
                    })?;
                    Ok(Some(Zeroizing::new(s)))
                }
                Status::Err { code, text } if is_system_error(code) => {
                    Err(conn.err(format!("cannot show a prompt: {text} (ERR {code})")))
                }
                Status::Err { .. } => Ok(None),
            }
        })();
        match r {
            Ok(v) => {
                conn.bye();
                Ok(v)
            }
            Err(Fail::Watchdog) => {
                conn.kill();
                Ok(None)
            }
            Err(Fail::Other(e)) => {
                conn.kill();
                Err(e)
            }
        }
    }
}

/// Whether a pinentry flavor (`GETINFO flavor`) draws on a terminal.
fn is_terminal_flavor(flavor: &str) -> bool {
    // "curses", "tty", or "<gui>:curses" when a graphical one fell back.
    matches!(flavor.rsplit(':').next(), Some("curses" | "tty"))
}

/// The `SETDESC` text for a challenge: title, description and the picture, as
/// wide as fits one Assuan line.
fn captcha_desc(challenge: &Captcha<'_>) -> Result<String> {
    let mut head = display_safe(&challenge.title);
    if !challenge.description.is_empty() {
        head.push('\n');
        head.push_str(&display_safe(&challenge.description));
    }
    let secs = challenge.lifetime.as_secs_f64().round() as u64;
    let tail = format!("Type the characters in the picture within {secs} s (empty: new picture).");
    let room = MAX_LINE - "SETDESC ".len();
    let mut cols = CAPTCHA_MAX_COLS;
    while cols >= CAPTCHA_MIN_COLS {
        let pic = super::picture::to_half_blocks(challenge.png, cols)?;
        let desc = format!("{head}\n\n{pic}\n\n{tail}");
        if escape(&desc).len() <= room {
            return Ok(desc);
        }
        cols -= 4;
    }
    Err(PromptError::Unsuitable {
        agent: "pinentry",
        problem: format!(
            "the picture does not fit a pinentry description (even {CAPTCHA_MIN_COLS} \
             columns wide); use the tty or command prompt agent for picture checks"
        ),
    }
    .into())
}

impl Pinentry {
    fn captcha_inner(
        &self,
        conn: &mut Conn,
        challenge: &Captcha<'_>,
    ) -> std::result::Result<CaptchaReply, Fail> {
        conn.setup(self, &challenge.title)?;
        let mut flavor = Zeroizing::new(Vec::new());
        let flavor = match conn.command("GETINFO flavor", &mut flavor)? {
            Status::Ok => String::from_utf8_lossy(&flavor).trim().to_string(),
            Status::Err { .. } => String::new(),
        };
        if !is_terminal_flavor(&flavor) {
            let shown = if flavor.is_empty() {
                "unknown"
            } else {
                &flavor
            };
            // Nothing was shown: "cannot show pictures" (the gate gives the chance back).
            tracing::warn!(
                program = %conn.program,
                flavor = shown,
                "this pinentry cannot show a picture (only the curses and tty pinentries \
                 draw one); use the tty or command prompt agent for picture checks"
            );
            return Err(Fail::Other(Error::FunctionNotSupported));
        }
        let desc = match captcha_desc(challenge) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(program = %conn.program, error = %e, "no picture shown");
                return Err(Fail::Other(Error::FunctionNotSupported));
            }
        };
        conn.set("SETDESC", &desc)?;
        conn.set("SETPROMPT", "Answer:")?;
        conn.set("SETOK", "_OK")?;
        conn.set("SETCANCEL", "_Refuse")?;
        let mut data = Zeroizing::new(Vec::new());
        Ok(match conn.command("GETPIN", &mut data)? {
            Status::Ok => {
                let text = std::str::from_utf8(&data)
                    .map_err(|_| conn.err("the answer is not valid UTF-8"))?
                    .trim();
                if text.is_empty() {
                    CaptchaReply::Refresh
                } else {
                    CaptchaReply::Answer(Zeroizing::new(text.to_string()))
                }
            }
            Status::Err { code, text } if is_timeout(code, &text) => CaptchaReply::TimedOut,
            Status::Err { code, text } if is_system_error(code) => {
                return Err(conn.err(format!("cannot show a prompt: {text} (ERR {code})")))
            }
            Status::Err { code, text } => {
                if code & 0xffff != GPG_ERR_CANCELED {
                    tracing::warn!(program = %conn.program, code, %text, "pinentry error; taken as a refusal");
                }
                CaptchaReply::Refused
            }
        })
    }
}

impl Pinentry {
    fn ask_inner(&self, conn: &mut Conn, q: &Ask) -> std::result::Result<AskReply, Fail> {
        conn.setup(self, &q.title)?;
        let desc = if q.description.is_empty() {
            display_safe(&q.title)
        } else {
            display_safe(&format!("{}\n\n{}", q.title, q.description))
        };
        conn.set("SETDESC", &desc)?;
        conn.set("SETPROMPT", &format!("{}:", display_safe(&q.label)))?;
        conn.set("SETOK", "_OK")?;
        conn.set("SETCANCEL", "_Refuse")?;
        let mut data = Zeroizing::new(Vec::new());
        Ok(match conn.command("GETPIN", &mut data)? {
            Status::Ok => {
                let text = std::str::from_utf8(&data)
                    .map_err(|_| conn.err("the value is not valid UTF-8"))?;
                AskReply::Text(Zeroizing::new(text.to_string()))
            }
            Status::Err { code, text } if is_timeout(code, &text) => AskReply::TimedOut,
            Status::Err { code, text } if is_system_error(code) => {
                return Err(conn.err(format!("cannot show a prompt: {text} (ERR {code})")))
            }
            Status::Err { .. } => AskReply::Refused,
        })
    }
}

impl Prompt for Pinentry {
    fn confirm(&self, req: &Request) -> Result<Answer> {
        let mut conn = Conn::start(self)?;
        match self.confirm_inner(&mut conn, req) {
            Ok(a) => {
                conn.bye();
                Ok(a)
            }
            Err(Fail::Watchdog) => {
                tracing::warn!(program = %conn.program, "pinentry did not answer in time; killed");
                conn.kill();
                Ok(Answer::TimedOut)
            }
            Err(Fail::Other(e)) => {
                conn.kill();
                Err(e)
            }
        }
    }

    fn name(&self) -> &str {
        "pinentry"
    }

    fn ask(&self, q: &Ask) -> Result<AskReply> {
        let mut conn = Conn::start(self)?;
        match self.ask_inner(&mut conn, q) {
            Ok(r) => {
                conn.bye();
                Ok(r)
            }
            Err(Fail::Watchdog) => {
                conn.kill();
                Ok(AskReply::TimedOut)
            }
            Err(Fail::Other(e)) => {
                conn.kill();
                Err(e)
            }
        }
    }

    fn captcha(&self, challenge: &Captcha<'_>) -> Result<CaptchaReply> {
        // The challenge's lifetime is the timeout (SETTIMEOUT and the watchdog).
        let p = Pinentry {
            timeout: challenge.lifetime.max(Duration::from_secs(1)),
            ..self.clone()
        };
        // A picture that cannot be decoded fails before a pinentry starts.
        super::picture::to_half_blocks(challenge.png, CAPTCHA_MIN_COLS)?;
        let mut conn = Conn::start(&p)?;
        match p.captcha_inner(&mut conn, challenge) {
            Ok(r) => {
                conn.bye();
                Ok(r)
            }
            Err(Fail::Watchdog) => {
                tracing::warn!(program = %conn.program, "pinentry did not answer in time; killed");
                conn.kill();
                Ok(CaptchaReply::TimedOut)
            }
            Err(Fail::Other(e)) => {
                conn.kill();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_roundtrip() {
        assert_eq!(escape("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(unescape(b"50%25 a%0d%0Ab"), b"50% a\r\nb");
        assert_eq!(unescape(b"bad %zz end%"), b"bad %zz end%");
        assert_eq!(unescape(b"%4"), b"%4");
        let s = "äö %% x\n";
        assert_eq!(unescape(escape(s).as_bytes()), s.as_bytes());
    }

    #[test]
    fn fit_cuts_long_lines() {
        let long = escape(&"%".repeat(600));
        let f = fit("SETDESC", long);
        assert!(f.len() + "SETDESC ".len() <= MAX_LINE);
        assert!(f.ends_with("[... truncated]"));
        let body = f.strip_suffix("%0A[... truncated]").unwrap();
        assert_eq!(body.len() % 3, 0, "no escape split: {body}");
    }
}
