//! Picture challenges through the prompt agents (the gate's delivery, SPEC C2–C4):
//! the half-block drawing of a PNG, the command agent with real scripts, and the
//! pinentry agent against a fake pinentry speaking Assuan. The tty agent on a real
//! terminal is driven in `tests/tests/gate_clients.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::{GrayImage, Luma, Rgb, RgbImage};
use vault_core::error::PromptError;
use vault_core::prompt::picture::{self, to_colour_blocks, to_half_blocks};
use vault_core::prompt::{tty, Captcha, CaptchaReply, Command, Pinentry, Prompt};
use vault_core::Error;

fn png_of(img: impl Into<image::DynamicImage>) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.into()
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A white `w`×`h` picture with black pixels where `ink(x, y)`.
fn picture_with(w: u32, h: u32, ink: impl Fn(u32, u32) -> bool) -> Vec<u8> {
    png_of(GrayImage::from_fn(w, h, |x, y| {
        Luma([if ink(x, y) { 0 } else { 255 }])
    }))
}

fn lines(s: &str) -> Vec<Vec<char>> {
    s.split('\n').map(|l| l.chars().collect()).collect()
}

// ---------------------------------------------------------------- drawing

#[test]
fn black_rectangle_on_white_as_half_blocks() {
    // 20x10 pixels: rows 2..=6 and columns 4..12 black.
    let png = picture_with(20, 10, |x, y| (4..12).contains(&x) && (2..=6).contains(&y));
    let s = to_half_blocks(&png, 40).unwrap();
    assert!(!s.contains('\x1b'), "no escapes: {s:?}");
    let l = lines(&s);
    assert_eq!(l.len(), 5, "two pixel rows per line:\n{s}");
    assert!(l.iter().all(|r| r.len() == 20), "every line 20 wide:\n{s}");
    for (row, line) in l.iter().enumerate() {
        for (x, &c) in line.iter().enumerate() {
            let inside = (4..12).contains(&x);
            let want = match (row, inside) {
                (1 | 2, true) => '█', // pixel rows 2-3 and 4-5
                (3, true) => '▀',     // pixel row 6 only
                _ => ' ',
            };
            assert_eq!(c, want, "row {row} column {x}:\n{s}");
        }
    }
}

#[test]
fn bottom_half_and_odd_height() {
    // 6x5 pixels (odd: padded with a paper row); ink on pixel rows 1 and 4.
    let png = picture_with(6, 5, |x, y| x < 3 && (y == 1 || y == 4));
    let s = to_half_blocks(&png, 40).unwrap();
    assert_eq!(s, "▄▄▄   \n      \n▀▀▀   ");
}

#[test]
fn big_pictures_are_shrunk_to_fit() {
    // 200x70 with a black left half: 50 columns, 70*50/200 = 17.5 -> 18 pixel rows
    // -> 9 lines.
    let png = picture_with(200, 70, |x, _| x < 100);
    let s = to_half_blocks(&png, 50).unwrap();
    let l = lines(&s);
    assert_eq!(l.len(), 9, "{s}");
    for line in &l {
        assert_eq!(line.len(), 50);
        assert!(line[..25].iter().all(|&c| c == '█'), "{s}");
        assert!(line[25..].iter().all(|&c| c == ' '), "{s}");
    }
    assert_eq!(picture::fitted_size(200, 70, 50), (50, 18));
    // Never enlarged.
    let small = picture_with(8, 4, |_, _| false);
    assert_eq!(lines(&to_half_blocks(&small, 100).unwrap())[0].len(), 8);
}

#[test]
fn light_ink_on_dark_paper_and_colours() {
    // Light text on a dark background: the minority (light) is drawn as ink.
    let png = png_of(RgbImage::from_fn(10, 4, |x, _| {
        if x == 0 {
            Rgb([250, 250, 250])
        } else {
            Rgb([10, 10, 40])
        }
    }));
    assert_eq!(to_half_blocks(&png, 40).unwrap(), "█         \n█         ");
    // Blank: no ink at all.
    let blank = picture_with(10, 4, |_, _| false);
    assert_eq!(to_half_blocks(&blank, 40).unwrap().trim(), "");
    // The colour variant: one ▀ per column, 24-bit escapes, reset per line.
    let c = to_colour_blocks(&png, 40).unwrap();
    assert_eq!(c.lines().count(), 2);
    assert_eq!(c.matches('▀').count(), 20);
    assert!(c.contains("\x1b[38;2;250;250;250m"), "{c:?}");
    assert!(c.lines().all(|l| l.ends_with("\x1b[0m")));
    // Not a PNG.
    assert!(to_half_blocks(b"\x89PNG\r\n\x1a\nnope", 40).is_err());
}

#[test]
fn tty_reply_and_picture_width() {
    use tty::captcha_reply;
    assert_eq!(
        captcha_reply(" k7px3m \n"),
        CaptchaReply::Answer("k7px3m".to_string().into())
    );
    assert_eq!(captcha_reply("\n"), CaptchaReply::Refresh);
    assert_eq!(captcha_reply("R\n"), CaptchaReply::Refresh);
    assert_eq!(captcha_reply("q\n"), CaptchaReply::Refused);
    assert_eq!(captcha_reply("N\n"), CaptchaReply::Refused);
    assert_eq!(captcha_reply(""), CaptchaReply::Refused, "end of input");
    // Unknown size: fits 80 columns; known: the width less one, unless too tall.
    assert_eq!(tty::picture_cols(None, 200, 70), tty::PICTURE_COLS);
    assert_eq!(tty::picture_cols(Some((100, 50)), 200, 70), 99);
    // 30 rows leave 21 for the picture: 21 * 2 * 200 / 70 = 120 columns.
    assert_eq!(tty::picture_cols(Some((200, 30)), 200, 70), 120);
}

#[test]
fn tty_without_a_terminal_is_an_error() {
    let t = tty::Tty {
        device: PathBuf::from("/nonexistent/tty"),
        timeout: Duration::from_secs(1),
    };
    let png = picture_with(10, 4, |_, _| false);
    assert!(t.captcha(&challenge(&png, 5)).is_err());
}

// ---------------------------------------------------------------- command agent

fn challenge(png: &[u8], secs: u64) -> Captcha<'_> {
    Captcha {
        title: "Picture check: sign (key \"k1\")".into(),
        description: "Type the characters shown in the picture.\n3 chances left".into(),
        png,
        lifetime: Duration::from_secs(secs),
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn command(p: &Path) -> Command {
    // The agent's own timeout is not the challenge's: the lifetime counts.
    Command::new(p.to_str().unwrap(), Duration::from_secs(60))
}

#[test]
fn command_answer_from_stdout_and_the_picture_file() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().display().to_string();
    let png = picture_with(20, 10, |x, _| x < 5);
    let s = script(
        d.path(),
        "answer.sh",
        &format!(
            "printf '%s' \"$VTOKEN_PROMPT_IMAGE\" > {dir}/path\n\
             cp \"$VTOKEN_PROMPT_IMAGE\" {dir}/copy.png\n\
             stat -c %a \"$VTOKEN_PROMPT_IMAGE\" > {dir}/mode\n\
             printf '%s|%s|%s|%s' \"$VTOKEN_PROMPT_KIND\" \"$VTOKEN_PROMPT_TITLE\" \
               \"$VTOKEN_PROMPT_DESCRIPTION\" \"$VTOKEN_PROMPT_LIFETIME_SECS\" > {dir}/env\n\
             cat > {dir}/stdin\n\
             echo ' K7PX3M '\n\
             echo 'second line ignored'\n\
             exit 0"
        ),
    );
    let c = challenge(&png, 5);
    let r = command(&s).captcha(&c).unwrap();
    assert_eq!(r, CaptchaReply::Answer("K7PX3M".to_string().into()));
    let path = std::fs::read_to_string(d.path().join("path")).unwrap();
    assert!(path.ends_with(".png"), "{path}");
    assert!(!Path::new(&path).exists(), "{path} removed afterwards");
    assert_eq!(std::fs::read(d.path().join("copy.png")).unwrap(), png);
    assert_eq!(
        std::fs::read_to_string(d.path().join("mode"))
            .unwrap()
            .trim(),
        "600"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("env")).unwrap(),
        format!("captcha|{}|{}|5", c.title, c.description)
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("stdin")).unwrap(),
        format!("{}\n", c.description)
    );
}

#[test]
fn command_exit_status_refresh_refuse_error() {
    let d = tempfile::tempdir().unwrap();
    let png = picture_with(10, 4, |_, _| false);
    let c = challenge(&png, 5);
    let refresh = script(d.path(), "refresh.sh", "exit 2");
    let refuse = script(d.path(), "refuse.sh", "echo ABC; exit 1");
    let odd = script(d.path(), "odd.sh", "exit 7");
    let quiet = script(d.path(), "quiet.sh", "exit 0");
    assert_eq!(
        command(&refresh).captcha(&c).unwrap(),
        CaptchaReply::Refresh
    );
    assert_eq!(command(&refuse).captcha(&c).unwrap(), CaptchaReply::Refused);
    assert!(matches!(
        command(&odd).captcha(&c),
        Err(Error::Prompt(PromptError::Protocol { .. }))
    ));
    // Exit 0 with nothing printed: an empty answer (a wrong one for the gate).
    assert_eq!(
        command(&quiet).captcha(&c).unwrap(),
        CaptchaReply::Answer(String::new().into())
    );
    let missing = command(&d.path().join("missing"));
    assert!(missing.captcha(&c).is_err());
    // The picture file of a failed start is removed too (other tests running in
    // this process may hold theirs for a moment).
    let ours = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("vtoken-captcha-{}-", std::process::id()))
            })
            .count()
    };
    let end = Instant::now() + Duration::from_secs(10);
    while ours() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ours(), 0, "no picture files left in the temp dir");
}

#[test]
fn command_past_the_lifetime_times_out_and_cleans_up() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().display().to_string();
    let png = picture_with(10, 4, |_, _| false);
    let s = script(
        d.path(),
        "slow.sh",
        &format!(
            "printf '%s' \"$VTOKEN_PROMPT_IMAGE\" > {dir}/path\n\
             test -f \"$VTOKEN_PROMPT_IMAGE\" && touch {dir}/seen\n\
             sleep 30\necho late"
        ),
    );
    let t0 = Instant::now();
    let r = command(&s).captcha(&challenge(&png, 1)).unwrap();
    let took = t0.elapsed();
    assert_eq!(r, CaptchaReply::TimedOut);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        d.path().join("seen").exists(),
        "the PNG existed while it ran"
    );
    let path = std::fs::read_to_string(d.path().join("path")).unwrap();
    assert!(
        !Path::new(&path).exists(),
        "{path} removed after the timeout"
    );
}

// ---------------------------------------------------------------- pinentry agent

/// A fake pinentry: greets, logs every command (unescaped by nothing: raw lines)
/// to `<name>.log`, says it is `flavor`, answers GETPIN with `getpin_reply`.
fn fake_pinentry(dir: &Path, name: &str, flavor: &str, getpin_reply: &str) -> PathBuf {
    let log = dir.join(format!("{name}.log"));
    script(
        dir,
        name,
        &format!(
            "LOG='{log}'\n\
             echo 'OK Pleased to meet you'\n\
             while IFS= read -r line; do\n\
               printf '%s\\n' \"$line\" >> \"$LOG\"\n\
               case \"$line\" in\n\
                 'GETINFO flavor') printf '%b' '{flavor}' ;;\n\
                 GETPIN*) printf '%b' '{getpin_reply}' ;;\n\
                 BYE*) echo 'OK closing connection'; exit 0 ;;\n\
                 *) echo OK ;;\n\
               esac\n\
             done",
            log = log.display()
        ),
    )
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// A 200x70 picture with a few black bars (a stand-in for a challenge).
fn bars() -> Vec<u8> {
    picture_with(200, 70, |x, y| (20..60).contains(&y) && (x / 20) % 2 == 0)
}

#[test]
fn pinentry_tty_flavor_shows_the_picture_and_takes_the_answer() {
    let d = tempfile::tempdir().unwrap();
    let png = bars();
    let p = fake_pinentry(d.path(), "pe-ans", "D tty\\nOK\\n", "D k7px3m\\nOK\\n");
    let r = Pinentry::new(&p, Duration::from_secs(60))
        .captcha(&challenge(&png, 5))
        .unwrap();
    assert_eq!(r, CaptchaReply::Answer("k7px3m".to_string().into()));
    let log = log_of(d.path(), "pe-ans");
    let desc = log
        .lines()
        .find(|l| l.starts_with("SETDESC "))
        .expect("SETDESC sent");
    assert!(desc.len() <= 1000, "one Assuan line: {}", desc.len());
    assert!(
        desc.contains("█"),
        "the picture is in the description: {desc}"
    );
    assert!(desc.contains("Picture check"), "{desc}");
    assert!(
        log.contains("SETTIMEOUT 5\n"),
        "the lifetime is the timeout:\n{log}"
    );
    assert!(log.contains("GETPIN\n"), "{log}");
    // The picture's lines are whole: every line of blocks is as wide.
    let text = String::from_utf8(vault_core::prompt::pinentry::unescape(desc.as_bytes())).unwrap();
    let widths: Vec<usize> = text
        .lines()
        .filter(|l| l.contains('█'))
        .map(|l| l.chars().count())
        .collect();
    assert!(widths.len() >= 4, "{text}");
    assert!(widths.iter().all(|&w| w == widths[0]), "{widths:?}\n{text}");
}

#[test]
fn pinentry_empty_cancel_timeout() {
    let d = tempfile::tempdir().unwrap();
    let png = bars();
    let c = challenge(&png, 5);
    let run = |name: &str, flavor: &str, reply: &str| {
        let p = fake_pinentry(d.path(), name, flavor, reply);
        Pinentry::new(&p, Duration::from_secs(60)).captcha(&c)
    };
    assert_eq!(
        run("pe-empty", "D curses\\nOK\\n", "OK\\n").unwrap(),
        CaptchaReply::Refresh
    );
    assert_eq!(
        run(
            "pe-cancel",
            "D gtk2:curses\\nOK\\n",
            "ERR 83886179 Operation cancelled <Pinentry>\\n"
        )
        .unwrap(),
        CaptchaReply::Refused
    );
    assert_eq!(
        run(
            "pe-to",
            "D tty\\nOK\\n",
            "ERR 83886142 Timeout <Pinentry>\\n"
        )
        .unwrap(),
        CaptchaReply::TimedOut
    );
}

#[test]
fn graphical_pinentry_cannot_show_pictures() {
    let d = tempfile::tempdir().unwrap();
    let png = bars();
    let c = challenge(&png, 5);
    for (name, flavor) in [
        ("pe-gtk", "D gtk2\\nOK\\n"),
        ("pe-qt", "D qt\\nOK\\n"),
        ("pe-old", "ERR 275 Unknown command\\n"),
    ] {
        let p = fake_pinentry(d.path(), name, flavor, "D never\\nOK\\n");
        let r = Pinentry::new(&p, Duration::from_secs(60)).captcha(&c);
        assert!(
            matches!(r, Err(Error::FunctionNotSupported)),
            "{name}: {r:?}"
        );
        let log = log_of(d.path(), name);
        assert!(!log.contains("GETPIN"), "{name}: nothing asked:\n{log}");
        assert!(!log.contains("SETDESC"), "{name}: nothing shown:\n{log}");
    }
}
