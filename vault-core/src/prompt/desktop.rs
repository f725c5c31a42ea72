//! The desktop agent: dialogs on the user's graphical session, for the programs
//! that have no terminal (Firefox signing with a gated key, an ssh agent, a
//! desktop password manager using the vault).
//!
//! The dialogs are drawn by `zenity` (preferred) or `yad`, both GTK programs from
//! Debian, run as child processes in the host process's environment (so they reach
//! the display the host runs on):
//!
//! | request                  | program | dialog                                              |
//! |--------------------------|---------|-----------------------------------------------------|
//! | [`Prompt::confirm`]      | zenity  | `--question` with Yes / No (yad: two buttons)       |
//! | [`Prompt::ask`]          | zenity  | `--entry` (`--hide-text` for a secret; yad the same)|
//! | [`Prompt::captcha`]      | yad     | `--entry` with the picture (`--image`)              |
//!
//! zenity cannot show an image next to an entry field, so a picture check needs
//! `yad`; without it the agent says it cannot show pictures
//! ([`Error::FunctionNotSupported`]: nothing was shown, the gate gives the chance
//! back). The picture is written, enlarged twice for reading, to a private
//! directory (mode 0700, the file 0600) that is removed when the dialog ends.
//!
//! Answers: OK / Yes is exit status 0 (a typed answer on standard output); Cancel,
//! No, Escape or closing the window is a refusal; the dialog's own `--timeout`
//! (zenity exit 5, yad 70) is [`Answer::TimedOut`], and a watchdog kills a dialog
//! still open [`WATCHDOG_GRACE`] after it. In a picture dialog an empty answer or
//! the "New picture" button asks for another picture.
//!
//! Needs a display: without `DISPLAY` and `WAYLAND_DISPLAY`, or when the dialog
//! cannot open the display, the agent returns `Err` (no prompt could be shown;
//! for a picture `FunctionNotSupported`, so the gate gives the chance back) and
//! nothing is asked. Descriptions are made terminal-safe ([`display_safe`]) and
//! then escaped for GTK's markup and for the backslash escapes both programs
//! expand, so a client cannot style or rewrite the dialog.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::child::{self, kill_tree, wait_until};
use super::{display_safe, Answer, Ask, AskReply, Captcha, CaptchaReply, Prompt, Request};
use crate::error::{Error, PromptError, Result};

/// Extra time the watchdog gives a dialog beyond its own timeout.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// Exit status of zenity's `--timeout`.
const ZENITY_TIMEOUT: i32 = 5;
/// Exit status of yad's `--timeout`.
const YAD_TIMEOUT: i32 = 70;
/// Exit status of the "New picture" button of the picture dialog.
const NEW_PICTURE: i32 = 2;
/// Longest answer read from a dialog, in bytes.
const ANSWER_MAX: usize = 4096;

/// Which dialog program draws a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Zenity,
    Yad,
}

/// Asks through zenity / yad dialogs on the desktop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desktop {
    /// `zenity`, when installed.
    pub zenity: Option<PathBuf>,
    /// `yad`, when installed (needed for pictures).
    pub yad: Option<PathBuf>,
    /// How long a confirmation or an entry waits for the user.
    pub timeout: Duration,
}

/// How a dialog ended.
enum Ended {
    /// It exited with this status and wrote this on standard output.
    Exited(i32, Zeroizing<Vec<u8>>),
    /// The watchdog killed it.
    Killed,
    /// It could not open the display (nothing was shown); why.
    NoDisplay(String),
}

impl Desktop {
    /// The agent with `zenity` and `yad` looked up in `PATH`.
    pub fn from_path(timeout: Duration) -> Desktop {
        Desktop {
            zenity: super::find_in_path("zenity"),
            yad: super::find_in_path("yad"),
            timeout,
        }
    }

    /// `Err` when this process has no graphical session to show a dialog on.
    pub fn check_display() -> Result<()> {
        let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
        if set("DISPLAY") || set("WAYLAND_DISPLAY") {
            return Ok(());
        }
        Err(PromptError::Unsuitable {
            agent: "desktop",
            problem: "no desktop session here (neither DISPLAY nor WAYLAND_DISPLAY is set), so \
                      no dialog can be shown; use the token from the desktop, or have the SO \
                      choose the tty agent (`vtoken prompt set --agent tty`)"
                .into(),
        }
        .into())
    }

    /// The program for confirmations and entries: zenity, else yad.
    fn dialog_tool(&self) -> Result<(&Path, Tool)> {
        if let Some(z) = &self.zenity {
            return Ok((z, Tool::Zenity));
        }
        if let Some(y) = &self.yad {
            return Ok((y, Tool::Yad));
        }
        Err(PromptError::Unsuitable {
            agent: "desktop",
            problem: "neither zenity nor yad is installed (apt-get install zenity yad)".into(),
        }
        .into())
    }

    /// Runs a dialog and waits for it until `timeout` plus [`WATCHDOG_GRACE`].
    fn run(&self, program: &Path, args: &[String], timeout: Duration) -> Result<Ended> {
        if let Err(e) = Desktop::check_display() {
            return Ok(Ended::NoDisplay(e.to_string()));
        }
        let name = format!(
            "desktop ({})",
            program.file_name().unwrap_or_default().to_string_lossy()
        );
        let mut child = child::spawn(
            std::process::Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .map_err(|e| PromptError::Start {
            agent: name.clone(),
            source: e,
        })?;
        // The pipes are read on threads, so a chatty GTK warning stream can never
        // fill a pipe and stall the dialog.
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let out = std::thread::spawn(move || {
            let mut buf = Zeroizing::new(Vec::new());
            let _ = (&mut stdout).take(ANSWER_MAX as u64).read_to_end(&mut buf);
            // Drain the rest so the dialog never blocks on a full pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
            buf
        });
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&buf).into_owned()
        });
        let deadline = Instant::now() + timeout + WATCHDOG_GRACE;
        let status = match wait_until(&mut child, deadline) {
            Ok(Some(st)) => st,
            Ok(None) => {
                kill_tree(&mut child);
                tracing::warn!(program = %program.display(), "the dialog did not close in time; killed");
                return Ok(Ended::Killed);
            }
            Err(e) => {
                kill_tree(&mut child);
                return Err(PromptError::io(name, "waiting for the dialog", e).into());
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if stderr.contains("cannot open display") {
            return Ok(Ended::NoDisplay(format!(
                "{name}: cannot open the display {:?}",
                std::env::var("DISPLAY").unwrap_or_default()
            )));
        }
        match status.code() {
            Some(c) => Ok(Ended::Exited(c, stdout)),
            None => {
                Err(PromptError::protocol(name, format!("the dialog ended by {status}")).into())
            }
        }
    }

    /// The first line a dialog printed, without its line end.
    fn first_line(out: &[u8]) -> Result<Zeroizing<String>> {
        let line = out.split(|b| *b == b'\n').next().unwrap_or_default();
        let text = std::str::from_utf8(line).map_err(|_| {
            Error::from(PromptError::protocol(
                "desktop",
                "the answer is not valid UTF-8",
            ))
        })?;
        Ok(Zeroizing::new(text.trim_end_matches('\r').to_string()))
    }

    /// "No dialog could be shown" as an error.
    fn no_display(why: String) -> Error {
        PromptError::Unsuitable {
            agent: "desktop",
            problem: why,
        }
        .into()
    }

    fn timed_out(tool: Tool, code: i32) -> bool {
        code == match tool {
            Tool::Zenity => ZENITY_TIMEOUT,
            Tool::Yad => YAD_TIMEOUT,
        }
    }
}

/// `s` as dialog text: terminal-safe, then the backslash escapes (which zenity and
/// yad expand) and GTK markup (`<`, `>`, `&`) neutralized.
pub fn dialog_text(s: &str) -> String {
    let safe = display_safe(s);
    let mut out = String::with_capacity(safe.len());
    for c in safe.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A window title: terminal-safe, on one line.
fn window_title(title: &str) -> String {
    format!("vtoken: {}", display_safe(title).replace(['\n', '\t'], " "))
}

/// Title in bold, then the description.
fn body(title: &str, description: &str) -> String {
    if description.is_empty() {
        format!("<b>{}</b>", dialog_text(title))
    } else {
        format!(
            "<b>{}</b>\n\n{}",
            dialog_text(title),
            dialog_text(description)
        )
    }
}

fn secs(d: Duration) -> String {
    d.as_secs().max(1).to_string()
}

/// A private directory (0700) holding the picture (0600), removed on drop.
struct PictureDir(PathBuf);

impl PictureDir {
    fn write(png: &[u8]) -> Result<(PictureDir, PathBuf)> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let fail = |e: std::io::Error| -> Error {
            PromptError::io("desktop", "writing the picture file", e).into()
        };
        let base = std::env::temp_dir();
        let mut made = None;
        for _ in 0..8 {
            let dir = base.join(format!(
                "vtoken-picture-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    made = Some(dir);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(fail(e)),
            }
        }
        let dir = PictureDir(made.ok_or_else(|| {
            Error::from(PromptError::protocol(
                "desktop",
                "cannot create a picture directory",
            ))
        })?);
        let file = dir.0.join("picture.png");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(fail)?;
        f.write_all(png).and_then(|_| f.sync_all()).map_err(fail)?;
        Ok((dir, file))
    }
}

impl Drop for PictureDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `png` enlarged `factor` times (nearest neighbour: the letters stay sharp).
fn enlarged(png: &[u8], factor: u32) -> Result<Vec<u8>> {
    use image::{imageops, ImageFormat, ImageReader, Limits};
    let bad = |e: image::ImageError| -> Error { PromptError::Picture(e.to_string()).into() };
    let mut r = ImageReader::with_format(std::io::Cursor::new(png), ImageFormat::Png);
    let mut limits = Limits::default();
    limits.max_image_width = Some(super::picture::MAX_SIDE);
    limits.max_image_height = Some(super::picture::MAX_SIDE);
    r.limits(limits);
    let img = r.decode().map_err(bad)?.to_rgba8();
    let big = imageops::resize(
        &img,
        img.width() * factor,
        img.height() * factor,
        imageops::FilterType::Nearest,
    );
    let mut out = Vec::new();
    big.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .map_err(bad)?;
    Ok(out)
}

impl Prompt for Desktop {
    fn confirm(&self, req: &Request) -> Result<Answer> {
        let (program, tool) = self.dialog_tool()?;
        let mut args = vec![
            format!("--title={}", window_title(&req.title)),
            format!("--text={}", body(&req.title, &req.description)),
            format!("--timeout={}", secs(self.timeout)),
            "--width=480".into(),
        ];
        match tool {
            Tool::Zenity => args.extend([
                "--question".into(),
                "--ok-label=Yes".into(),
                "--cancel-label=No".into(),
            ]),
            Tool::Yad => args.extend([
                "--image=dialog-question".into(),
                "--button=No:1".into(),
                "--button=Yes:0".into(),
            ]),
        }
        Ok(match self.run(program, &args, self.timeout)? {
            Ended::NoDisplay(why) => return Err(Desktop::no_display(why)),
            Ended::Killed => Answer::TimedOut,
            Ended::Exited(0, _) => Answer::Confirmed,
            Ended::Exited(c, _) if Desktop::timed_out(tool, c) => Answer::TimedOut,
            Ended::Exited(_, _) => Answer::Refused,
        })
    }

    fn name(&self) -> &str {
        "desktop"
    }

    fn ask(&self, q: &Ask) -> Result<AskReply> {
        let (program, tool) = self.dialog_tool()?;
        let mut args = vec![
            "--entry".to_string(),
            format!("--title={}", window_title(&q.title)),
            format!(
                "--text={}\n\n{}:",
                body(&q.title, &q.description),
                dialog_text(&q.label)
            ),
            format!("--timeout={}", secs(self.timeout)),
            "--width=480".into(),
        ];
        if q.secret {
            args.push("--hide-text".into());
        }
        if tool == Tool::Yad {
            args.extend(["--button=Refuse:1".into(), "--button=OK:0".into()]);
        }
        Ok(match self.run(program, &args, self.timeout)? {
            Ended::NoDisplay(why) => return Err(Desktop::no_display(why)),
            Ended::Killed => AskReply::TimedOut,
            Ended::Exited(0, out) => AskReply::Text(Desktop::first_line(&out)?),
            Ended::Exited(c, _) if Desktop::timed_out(tool, c) => AskReply::TimedOut,
            Ended::Exited(_, _) => AskReply::Refused,
        })
    }

    fn captcha(&self, challenge: &Captcha<'_>) -> Result<CaptchaReply> {
        // Nothing shown (no display, no yad) is `FunctionNotSupported`: the gate then
        // gives the chance back.
        if let Err(e) = Desktop::check_display() {
            tracing::warn!(error = %e, "the desktop agent cannot show a picture");
            return Err(Error::FunctionNotSupported);
        }
        let Some(yad) = &self.yad else {
            tracing::warn!(
                "the desktop agent needs yad to show a picture (zenity cannot show one next to \
                 an entry field): apt-get install yad"
            );
            return Err(Error::FunctionNotSupported);
        };
        let big = enlarged(challenge.png, 2)?;
        let (_dir, file) = PictureDir::write(&big)?;
        let lifetime = challenge.lifetime.max(Duration::from_secs(1));
        let text = format!(
            "{}\n\nType the characters in the picture within {} s \
             (empty or \"New picture\": another picture).",
            body(&challenge.title, &challenge.description),
            lifetime.as_secs_f64().round() as u64,
        );
        let args = vec![
            "--entry".to_string(),
            format!("--title={}", window_title(&challenge.title)),
            format!("--image={}", file.display()),
            format!("--text={text}"),
            format!("--timeout={}", secs(lifetime)),
            "--width=560".into(),
            "--button=Refuse:1".into(),
            format!("--button=New picture:{NEW_PICTURE}"),
            "--button=OK:0".into(),
        ];
        Ok(match self.run(yad, &args, lifetime)? {
            Ended::NoDisplay(why) => {
                tracing::warn!(error = %why, "the desktop agent cannot show a picture");
                return Err(Error::FunctionNotSupported);
            }
            Ended::Killed => CaptchaReply::TimedOut,
            Ended::Exited(0, out) => {
                let a = Desktop::first_line(&out)?;
                let a = a.trim();
                if a.is_empty() {
                    CaptchaReply::Refresh
                } else {
                    CaptchaReply::Answer(Zeroizing::new(a.to_string()))
                }
            }
            Ended::Exited(NEW_PICTURE, _) => CaptchaReply::Refresh,
            Ended::Exited(YAD_TIMEOUT, _) => CaptchaReply::TimedOut,
            Ended::Exited(_, _) => CaptchaReply::Refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialog_text_neutralizes_markup_and_escapes() {
        assert_eq!(
            dialog_text("<b>pay</b> & \\n\x1b[31m"),
            "&lt;b&gt;pay&lt;/b&gt; &amp; \\\\n\\\\x1b[31m"
        );
        assert_eq!(window_title("a\nb"), "vtoken: a b");
    }
}
