//! The CLI's own picture check before a gated operation (SPEC C1–C6): when this
//! process can show the picture and read the answer, it does so before the request,
//! so the token's prompt agent is not needed.

use std::io::{BufRead, IsTerminal, Write};

use vault_core::error::GateError;
use vault_core::gate::OpClass;
use vault_core::prompt::picture;
use vault_core::{Attributes, Error};
use zeroize::Zeroizing;

use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};

/// Whether this process can show a picture and read its answer itself: standard
/// input is free and either a terminal or the only way in (the token's prompt
/// agent is `deny`).
pub fn can_answer_here(open: &Open, stdin_free: bool) -> bool {
    if !stdin_free {
        return false;
    }
    if std::io::stdin().is_terminal() {
        return true;
    }
    open.token.prompt_agent_name() == "deny"
}

/// Before a request of `class` with the key `key`: when it is gated and this
/// process can answer ([`can_answer_here`]), runs the picture check here (the pass
/// is then used by the request). Otherwise the token asks through the prompt agent.
pub fn before(
    _ctx: &Ctx,
    open: &Open,
    class: OpClass,
    key: Option<&Attributes>,
    what: &str,
    stdin_free: bool,
) -> Result<()> {
    if !open.token.gate_applies(class, key)? {
        return Ok(());
    }
    if !can_answer_here(open, stdin_free) {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() && !stdin_has_data() {
        // The agent is `deny` and stdin is /dev/null or closed: a picture drawn now
        // would cost a chance that nobody can use. Refused before any is issued.
        bail!(
            "this request needs a picture check, and nobody can see one here: stdin is not a \
             terminal and the token's prompt agent is `deny`; run it on a terminal, or have \
             the SO set an agent (`vtoken prompt set --agent tty`, desktop or pinentry). No chance \
             was used"
        );
    }
    picture_check(open, class, what)
}

/// Whether stdin can carry an answer: a pipe or a file (a script answering), not
/// `/dev/null` or a closed descriptor.
fn stdin_has_data() -> bool {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata("/dev/stdin") {
        Ok(m) => {
            let t = m.file_type();
            t.is_fifo() || t.is_file() || t.is_socket()
        }
        Err(_) => false,
    }
}

/// Shows pictures on the terminal (stderr) until one is answered right, the user
/// gives up, or the token locks.
pub fn picture_check(open: &Open, class: OpClass, what: &str) -> Result<()> {
    let stdin = std::io::stdin();
    let colour = std::io::stderr().is_terminal()
        && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false)
        && std::env::var_os("NO_COLOR").is_none();
    loop {
        let c = open.token.gate_challenge(class).map_err(gate_error)?;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "Picture check: {what}.");
        let style = if colour {
            picture::Style::Colour
        } else {
            picture::Style::Mono
        };
        // As wide as the terminal allows (a picture wider than the terminal wraps
        // into noise), never wider than the picture itself.
        let cols = match picture::png_size(&c.png) {
            Ok((w, h)) => vault_core::prompt::tty::picture_cols(
                vault_core::prompt::tty::terminal_size(std::path::Path::new("/dev/tty")),
                w,
                h,
            ),
            Err(_) => 76,
        };
        match picture::render(&c.png, cols, style) {
            Ok(s) => {
                let _ = writeln!(err, "{s}");
            }
            Err(e) => {
                let _ = writeln!(err, "(cannot draw the picture here: {e})");
            }
        }
        if let Some(path) = std::env::var_os("VTOKEN_GATE_PNG") {
            let saved = crate::output::create_private(std::path::Path::new(&path))
                .and_then(|mut f| std::io::Write::write_all(&mut f, &c.png));
            match saved {
                Ok(()) => {
                    let _ = writeln!(err, "(picture saved to {})", path.to_string_lossy());
                }
                Err(e) => {
                    let _ = writeln!(err, "(cannot save the picture: {e})");
                }
            }
        }
        let _ = write!(
            err,
            "Type the characters ({} s, {} chance{} left; Enter alone or r: new picture, q: give up): ",
            c.lifetime.as_secs_f64(),
            c.chances_left,
            if c.chances_left == 1 { "" } else { "s" }
        );
        let _ = err.flush();
        drop(err);
        let mut line = Zeroizing::new(String::new());
        let n = stdin.lock().read_line(&mut line)?;
        let answer = line.trim();
        if n == 0 || answer.eq_ignore_ascii_case("q") {
            open.token.gate_cancel(c.id).map_err(gate_error)?;
            bail!("picture check abandoned (the picture's chance is used)");
        }
        // The same keys as the token's tty agent (`r` or Enter: new picture).
        if answer.is_empty() || answer.eq_ignore_ascii_case("r") {
            continue; // a refresh: the next challenge replaces this one
        }
        match open.token.gate_answer(c.id, answer) {
            Ok(()) => return Ok(()),
            Err(Error::Gate(GateError::Rejected { reason, left })) => eprintln!(
                "Picture check failed: {reason}; {left} chance{} left.",
                if left == 1 { "" } else { "s" }
            ),
            Err(e) => return Err(gate_error(e)),
        }
    }
}

/// A gate error with what to do next.
pub fn gate_error(e: Error) -> CliError {
    e.into()
}
