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
    let graphics = std::io::stderr().is_terminal();
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
        if graphics && kitty_here() {
            // The picture itself, as wide as the half blocks would be.
            let _ = writeln!(err, "{}", kitty_image(&c.png, cols));
        } else {
            match picture::render(&c.png, cols, style) {
                Ok(s) => {
                    let _ = writeln!(err, "{s}");
                }
                Err(e) => {
                    let _ = writeln!(err, "(cannot draw the picture here: {e})");
                }
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

/// Whether this terminal shows pictures with the kitty graphics protocol (kitty,
/// WezTerm, Ghostty), from what it says about itself; never inside tmux or screen,
/// which do not pass the images on. Otherwise the picture is drawn in half blocks.
fn kitty_here() -> bool {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    kitty_terminal(
        var("TERM").as_deref(),
        var("TERM_PROGRAM").as_deref(),
        var("KITTY_WINDOW_ID").is_some(),
        var("TMUX").is_some() || var("STY").is_some(),
    )
}

fn kitty_terminal(
    term: Option<&str>,
    term_program: Option<&str>,
    kitty_window: bool,
    multiplexer: bool,
) -> bool {
    if multiplexer || term.is_some_and(|t| t.starts_with("screen") || t.starts_with("tmux")) {
        return false;
    }
    kitty_window
        || matches!(term, Some("xterm-kitty" | "xterm-ghostty"))
        || matches!(term_program, Some("WezTerm" | "ghostty"))
}

/// `png` as kitty graphics protocol escapes: transmit and show (`a=T`) a PNG
/// (`f=100`) `cols` cells wide, quietly (`q=2`: the terminal sends no reply, which
/// would otherwise arrive on stdin where the answer is read), base64 in chunks of
/// at most 4096 bytes (`m=1` while more follow).
fn kitty_image(png: &[u8], cols: u16) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let chunks: Vec<&[u8]> = b64.as_bytes().chunks(4096).collect();
    let mut out = String::with_capacity(b64.len() + chunks.len() * 16 + 32);
    for (i, chunk) in chunks.iter().enumerate() {
        let more = u8::from(i + 1 < chunks.len());
        if i == 0 {
            out.push_str(&format!("\x1b_Ga=T,f=100,q=2,c={cols},m={more};"));
        } else {
            out.push_str(&format!("\x1b_Gm={more};"));
        }
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\x1b\\");
    }
    out
}

/// A gate error with what to do next.
pub fn gate_error(e: Error) -> CliError {
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kitty_is_used_only_where_the_terminal_says_so() {
        assert!(kitty_terminal(Some("xterm-kitty"), None, false, false));
        assert!(kitty_terminal(Some("xterm-256color"), None, true, false));
        assert!(kitty_terminal(
            Some("xterm-256color"),
            Some("WezTerm"),
            false,
            false
        ));
        assert!(!kitty_terminal(Some("xterm-256color"), None, false, false));
        assert!(!kitty_terminal(Some("xterm-kitty"), None, true, true));
        assert!(!kitty_terminal(Some("tmux-256color"), None, true, false));
        assert!(!kitty_terminal(None, None, false, false));
    }

    #[test]
    fn kitty_image_chunks_carry_the_png() {
        use base64::Engine;
        // Large enough for three chunks.
        let png: Vec<u8> = (0..7000u32).map(|i| (i * 7 % 251) as u8).collect();
        let s = kitty_image(&png, 40);
        let parts: Vec<&str> = s.split("\x1b\\").filter(|p| !p.is_empty()).collect();
        assert_eq!(parts.len(), 3, "{}", parts.len());
        let mut payload = String::new();
        for (i, p) in parts.iter().enumerate() {
            let p = p.strip_prefix("\x1b_G").expect("an APC graphics command");
            let (keys, data) = p.split_once(';').unwrap();
            let last = i + 1 == parts.len();
            if i == 0 {
                assert!(keys.starts_with("a=T,f=100,q=2,c=40,"), "{keys}");
            }
            assert!(keys.ends_with(if last { "m=0" } else { "m=1" }), "{keys}");
            assert!(data.len() <= 4096);
            payload.push_str(data);
        }
        let back = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap();
        assert_eq!(back, png);
    }
}
