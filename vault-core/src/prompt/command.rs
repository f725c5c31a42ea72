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
//! answer is [`Answer::TimedOut`].

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::child::{self, kill_tree, wait_until};
use super::{Answer, Prompt, Request};
use crate::error::{Error, Result};

/// Environment variable carrying the request's title.
pub const TITLE_ENV: &str = "VTOKEN_PROMPT_TITLE";
/// Environment variable carrying the request's description.
pub const DESCRIPTION_ENV: &str = "VTOKEN_PROMPT_DESCRIPTION";

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

impl Prompt for Command {
    fn confirm(&self, req: &Request) -> Result<Answer> {
        let mut child = child::spawn(
            std::process::Command::new(&self.program)
                .args(&self.args)
                .env(TITLE_ENV, env_value(&req.title))
                .env(DESCRIPTION_ENV, env_value(&req.description))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .map_err(|e| {
            Error::General(format!(
                "prompt command {}: cannot start: {e}",
                self.program
            ))
        })?;
        let deadline = Instant::now() + self.timeout;
        if let Some(mut stdin) = child.stdin.take() {
            // A writer thread: a program that never reads its input cannot block us
            // (and one that exits early only gives the thread an EPIPE).
            let text = format!("{}\n", req.description);
            std::thread::spawn(move || {
                let _ = stdin.write_all(text.as_bytes());
            });
        }
        let status = match wait_until(&mut child, deadline) {
            Ok(Some(st)) => st,
            Ok(None) => {
                kill_tree(&mut child);
                tracing::warn!(program = %self.program, timeout = ?self.timeout, "prompt command timed out; killed");
                return Ok(Answer::TimedOut);
            }
            Err(e) => {
                kill_tree(&mut child);
                return Err(Error::General(format!(
                    "prompt command {}: wait failed: {e}",
                    self.program
                )));
            }
        };
        match status.code() {
            Some(0) => Ok(Answer::Confirmed),
            Some(1) => Ok(Answer::Refused),
            Some(c) => Err(Error::General(format!(
                "prompt command {} exited with status {c} (0 confirms, 1 refuses)",
                self.program
            ))),
            None => Err(Error::General(format!(
                "prompt command {} was killed by a signal ({status})",
                self.program
            ))),
        }
    }

    fn name(&self) -> &str {
        "command"
    }
}
