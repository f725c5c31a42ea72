//! The command agent: an external program decides (scripts, tests, custom dialogs).
//!
//! The program runs with `VTOKEN_PROMPT_TITLE` and `VTOKEN_PROMPT_DESCRIPTION` in its
//! environment and the description (plus a newline) on its standard input. The
//! environment copies are cut to [`ENV_MAX`] bytes (the kernel limits one variable
//! to 128 KiB); standard input always carries the whole description. Its
//! standard output is discarded (the token may live in a process whose stdout
//! matters); standard error is inherited. Exit status 0 confirms, 1 refuses; any
//! other status, a signal or a failure to start is an error. A program still
//! running after the timeout is killed, with the processes it started, and the
//! answer is [`Answer::TimedOut`]. `VTOKEN_PROMPT_KIND` is `confirm`.
//!
//! ## Picture challenges
//!
//! For [`Prompt::captcha`] (the gate, SPEC C2–C4) the picture is written to a
//! private temporary file (mode 0600, removed afterwards) and the program runs with
//! `VTOKEN_PROMPT_KIND=captcha`, `VTOKEN_PROMPT_TITLE`, `VTOKEN_PROMPT_DESCRIPTION`,
//! `VTOKEN_PROMPT_IMAGE` (the PNG's path) and `VTOKEN_PROMPT_LIFETIME_SECS`, and the
//! description on its standard input. Its standard output is read: exit status 0
//! with the answer on the first line is [`CaptchaReply::Answer`], 2 asks for a new
//! picture ([`CaptchaReply::Refresh`]), 1 refuses; any other status is an error. The
//! program has the challenge's lifetime; after it, it is killed as above and the
//! reply is [`CaptchaReply::TimedOut`].
//!
//! ## Typed input
//!
//! For [`Prompt::ask`] (input on the token, SPEC V6) the program runs with
//! `VTOKEN_PROMPT_KIND=ask`, the title and description as above,
//! `VTOKEN_PROMPT_LABEL` (the field asked for) and `VTOKEN_PROMPT_SECRET` (`1` for a
//! password or PIN). Exit status 0 with the value on the first line of standard
//! output answers (an empty line leaves an optional field out); 1 refuses; the
//! timeout as for a confirmation.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::child::{self, kill_tree, wait_until};
use super::{Answer, Ask, AskReply, Captcha, CaptchaReply, Prompt, Request};
use crate::error::{Error, PromptError, Result};

/// Environment variable carrying the request's title.
pub const TITLE_ENV: &str = "VTOKEN_PROMPT_TITLE";
/// Environment variable carrying the request's description.
pub const DESCRIPTION_ENV: &str = "VTOKEN_PROMPT_DESCRIPTION";
/// Environment variable telling what is asked: `confirm` or `captcha`.
pub const KIND_ENV: &str = "VTOKEN_PROMPT_KIND";
/// Environment variable carrying the path of a picture challenge's PNG.
pub const IMAGE_ENV: &str = "VTOKEN_PROMPT_IMAGE";
/// Environment variable carrying a picture challenge's lifetime, in whole seconds.
pub const LIFETIME_ENV: &str = "VTOKEN_PROMPT_LIFETIME_SECS";
/// Environment variable carrying the label of a typed value (`ask`).
pub const LABEL_ENV: &str = "VTOKEN_PROMPT_LABEL";
/// Environment variable telling whether a typed value is secret (`1`) or not (`0`).
pub const SECRET_ENV: &str = "VTOKEN_PROMPT_SECRET";

/// Longest answer line read from a captcha program, in bytes.
const ANSWER_MAX: usize = 1024;

/// Longest value put in [`TITLE_ENV`] / [`DESCRIPTION_ENV`], in bytes.
pub const ENV_MAX: usize = 32 * 1024;

fn env_value(s: &str) -> &str {
    if s.len() <= ENV_MAX {
        return s;
    }
    let mut end = ENV_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Runs a program and takes its exit status as the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long the program may take.
    pub timeout: Duration,
}

impl Command {
    /// A command agent for `program` with no arguments.
    pub fn new(program: impl Into<String>, timeout: Duration) -> Command {
        Command {
            program: program.into(),
            args: Vec::new(),
            timeout,
        }
    }
}

/// The program's standard input: `text` in an unlinked private temporary file.
///
/// Not a pipe: a program that exits without reading its input would make our write
/// raise SIGPIPE, which kills a C host process (pkcs11-tool, Firefox) that keeps the
/// default disposition. Reading a regular file never signals anyone.
fn stdin_file(text: &str) -> Result<Stdio> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let fail =
        |e: std::io::Error| -> Error { PromptError::io("prompt command", "stdin file", e).into() };
    let dir = std::env::temp_dir();
    for _ in 0..8 {
        let path = dir.join(format!(
            "vtoken-prompt-{}-{:016x}.txt",
            std::process::id(),
            rand::random::<u64>()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = std::fs::remove_file(&path);
                f.write_all(text.as_bytes()).map_err(fail)?;
                f.seek(SeekFrom::Start(0)).map_err(fail)?;
                return Ok(Stdio::from(f));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(fail(e)),
        }
    }
    Err(PromptError::protocol("prompt command", "cannot create a stdin file").into())
}

/// A private temporary file holding a challenge picture, removed on drop.
struct TempPng(PathBuf);

impl TempPng {
    fn write(png: &[u8]) -> Result<TempPng> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir();
        let mut last = None;
        for _ in 0..8 {
            let name = format!(
                "vtoken-captcha-{}-{:016x}.png",
                std::process::id(),
                rand::random::<u64>()
            );
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    let t = TempPng(path);
                    f.write_all(png).and_then(|_| f.sync_all()).map_err(|e| {
                        Error::from(PromptError::io(
                            "prompt command",
                            format!("writing {}", t.0.display()),
                            e,
                        ))
                    })?;
                    return Ok(t);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(PromptError::io(
                        "prompt command",
                        format!("cannot create a picture file in {}", dir.display()),
                        e,
                    )
                    .into())
                }
            }
        }
        Err(PromptError::io(
            "prompt command",
            format!("cannot create a picture file in {}", dir.display()),
            last.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()),
        )
        .into())
    }
}

impl Drop for TempPng {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How a run ended.
enum Run {
    Exited(ExitStatus),
    /// The agent exited but the host process collected its status first: a host
    /// whose SIGCHLD handler calls `waitpid(-1)` (OpenSSH's `ssh` does) reaps every
    /// child, the module's included, and our own wait then fails with `ECHILD`.
    /// The exit status is lost; what the agent wrote on stdout is not.
    Reaped,
    TimedOut,
}

/// `ECHILD` (Linux and the BSDs): the process has no such child (any more).
const ECHILD: i32 = 10;

impl Command {
    /// Starts the program with `env` and `stdin_text` on its standard input, and
    /// waits for it until `timeout` (killing it then).
    fn run(
        &self,
        env: &[(&str, &str)],
        stdin_text: String,
        stdout: Stdio,
        timeout: Duration,
        on_start: impl FnOnce(&mut Child),
    ) -> Result<Run> {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(stdin_file(&stdin_text)?)
            .stdout(stdout)
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = child::spawn(&mut cmd).map_err(|e| {
            Error::from(PromptError::Start {
                agent: format!("prompt command {}", self.program),
                source: e,
            })
        })?;
        let deadline = Instant::now() + timeout;
        on_start(&mut child);
        match wait_until(&mut child, deadline) {
            Ok(Some(st)) => Ok(Run::Exited(st)),
            Ok(None) => {
                kill_tree(&mut child);
                tracing::warn!(program = %self.program, ?timeout, "prompt command timed out; killed");
                Ok(Run::TimedOut)
            }
            // Not killed: the pid is no longer ours and may already be reused.
            Err(e) if e.raw_os_error() == Some(ECHILD) => {
                tracing::debug!(program = %self.program, "prompt command reaped by the host process");
                Ok(Run::Reaped)
            }
            Err(e) => {
                kill_tree(&mut child);
                Err(
                    PromptError::io(format!("prompt command {}", self.program), "wait failed", e)
                        .into(),
                )
            }
        }
    }
}

/// Reads the first line of `r` (at most [`ANSWER_MAX`] bytes, newline and CR
/// removed), then drains the rest so the writer never blocks on a full pipe.
fn first_line(r: impl Read) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut r = BufReader::new(r);
    let mut line = Zeroizing::new(Vec::new());
    (&mut r)
        .take(ANSWER_MAX as u64)
        .read_until(b'\n', &mut line)?;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

impl Prompt for Command {
    fn confirm(&self, req: &Request) -> Result<Answer> {
        let env = [
            (KIND_ENV, "confirm"),
            (TITLE_ENV, env_value(&req.title)),
            (DESCRIPTION_ENV, env_value(&req.description)),
        ];
        let status = match self.run(
            &env,
            format!("{}\n", req.description),
            Stdio::null(),
            self.timeout,
            |_| {},
        )? {
            Run::Exited(st) => st,
            // A confirmation is its exit status: unknown, so refused (fail closed).
            Run::Reaped => {
                return Err(Error::from(PromptError::protocol(
                    format!("prompt command {}", self.program),
                    "its exit status was collected by the host process (a SIGCHLD \
                     handler), so its answer is unknown",
                )))
            }
            Run::TimedOut => return Ok(Answer::TimedOut),
        };
        match status.code() {
            Some(0) => Ok(Answer::Confirmed),
            Some(1) => Ok(Answer::Refused),
            Some(c) => Err(Error::from(PromptError::protocol(
                format!("prompt command {}", self.program),
                format!("exited with status {c} (0 confirms, 1 refuses)"),
            ))),
            None => Err(Error::from(PromptError::protocol(
                format!("prompt command {}", self.program),
                format!("was killed by a signal ({status})"),
            ))),
        }
    }

    fn name(&self) -> &str {
        "command"
    }

    fn captcha(&self, challenge: &Captcha<'_>) -> Result<CaptchaReply> {
        let file = TempPng::write(challenge.png)?;
        let image = file.0.to_string_lossy().into_owned();
        let lifetime = challenge.lifetime.as_secs().max(1).to_string();
        let env = [
            (KIND_ENV, "captcha"),
            (TITLE_ENV, env_value(&challenge.title)),
            (DESCRIPTION_ENV, env_value(&challenge.description)),
            (IMAGE_ENV, image.as_str()),
            (LIFETIME_ENV, lifetime.as_str()),
        ];
        let (run, rx) = self.run_reading(&env, &challenge.description, challenge.lifetime);
        drop(file);
        let answer = || self.answer_line(&rx).map(CaptchaReply::Answer);
        let status = match run? {
            Run::Exited(st) => st,
            // The status is lost: the answer line decides. The gate checks it
            // like any other (a wrong one is a failed check); none is a refusal.
            Run::Reaped => {
                return match answer()? {
                    CaptchaReply::Answer(a) if a.is_empty() => Ok(CaptchaReply::Refused),
                    r => Ok(r),
                }
            }
            Run::TimedOut => return Ok(CaptchaReply::TimedOut),
        };
        match status.code() {
            Some(0) => answer(),
            Some(1) => Ok(CaptchaReply::Refused),
            Some(2) => Ok(CaptchaReply::Refresh),
            Some(c) => Err(Error::from(PromptError::protocol(
                format!("prompt command {}", self.program),
                format!(
                    "exited with status {c} (0 answers, 1 refuses, 2 asks \
                 for a new picture)"
                ),
            ))),
            None => Err(Error::from(PromptError::protocol(
                format!("prompt command {}", self.program),
                format!("was killed by a signal ({status})"),
            ))),
        }
    }

    fn ask(&self, q: &Ask) -> Result<AskReply> {
        let env = [
            (KIND_ENV, "ask"),
            (TITLE_ENV, env_value(&q.title)),
            (DESCRIPTION_ENV, env_value(&q.description)),
            (LABEL_ENV, env_value(&q.label)),
            (SECRET_ENV, if q.secret { "1" } else { "0" }),
        ];
        let (run, rx) = self.run_reading(&env, &q.description, self.timeout);
        let status = match run? {
            Run::Exited(st) => st,
            // The status is lost; the typed value cannot be told from "refused"
            // with certainty, so nothing is taken (fail closed).
            Run::Reaped => {
                return Err(Error::from(PromptError::protocol(
                    format!("prompt command {}", self.program),
                    "its exit status was collected by the host process (a SIGCHLD \
                     handler), so its answer is unknown",
                )))
            }
            Run::TimedOut => return Ok(AskReply::TimedOut),
        };
        match status.code() {
            Some(0) => self.answer_line(&rx).map(AskReply::Text),
            Some(1) => Ok(AskReply::Refused),
            Some(c) => Err(Error::from(PromptError::protocol(
                format!("prompt command {}", self.program),
                format!("exited with status {c} (0 answers, 1 refuses)"),
            ))),
            None => Err(Error::from(PromptError::protocol(
                format!("prompt command {}", self.program),
                format!("was killed by a signal ({status})"),
            ))),
        }
    }
}

type LineRx = mpsc::Receiver<std::io::Result<Zeroizing<Vec<u8>>>>;

impl Command {
    /// Runs the program with its standard output piped, a thread reading the
    /// first line of it into the returned channel.
    fn run_reading(
        &self,
        env: &[(&str, &str)],
        description: &str,
        timeout: Duration,
    ) -> (Result<Run>, LineRx) {
        let (tx, rx) = mpsc::channel();
        let run = self.run(
            env,
            format!("{description}\n"),
            Stdio::piped(),
            timeout,
            |child| {
                if let Some(out) = child.stdout.take() {
                    std::thread::spawn(move || {
                        let mut out = out;
                        let r = first_line(&mut out);
                        let _ = tx.send(r);
                        let _ = std::io::copy(&mut out, &mut std::io::sink());
                    });
                }
            },
        );
        (run, rx)
    }

    /// The answer line the program wrote (trimmed; empty when it wrote none).
    fn answer_line(&self, rx: &LineRx) -> Result<Zeroizing<String>> {
        // The line was written before the exit; a grandchild still holding the
        // pipe open must not keep us waiting long.
        let line = match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                return Err(PromptError::io(
                    format!("prompt command {}", self.program),
                    "reading its answer",
                    e,
                )
                .into())
            }
            Err(_) => Zeroizing::new(Vec::new()),
        };
        let text = std::str::from_utf8(&line).map_err(|_| {
            Error::from(PromptError::protocol(
                format!("prompt command {}", self.program),
                "the answer is not valid UTF-8",
            ))
        })?;
        Ok(Zeroizing::new(text.trim().to_string()))
    }
}
