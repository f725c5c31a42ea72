//! Renders one picture-check challenge (the gate, SPEC C2) to a PNG file and shows
//! it as the terminal prompt agents draw it.
//!
//! ```text
//! cargo run -p vault-core --example captcha_png -- docs/gate-captcha.png [TEXT] [COLS]
//! ```
//!
//! `TEXT` defaults to a random string of the gate's default alphabet and length;
//! `COLS` (default 76) is the width of the half-block drawing printed on stdout.

use vault_core::gate::challenge;
use vault_core::prompt::picture;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .ok_or("usage: captcha_png OUT.png [TEXT] [COLS]")?;
    let text = match args.next() {
        Some(t) => t,
        None => challenge::random_text(challenge::DEFAULT_ALPHABET, 6)?.to_string(),
    };
    let cols: u16 = match args.next() {
        Some(c) => c.parse()?,
        None => 76,
    };
    // A token draws with a stream keyed by its own picture key; a sample needs none.
    let png = challenge::render_with(&text, &mut rand::rngs::OsRng)?;
    std::fs::write(&out, &png)?;
    println!("{}", picture::to_half_blocks(&png, cols)?);
    eprintln!("wrote {out} ({} bytes; text {text})", png.len());
    Ok(())
}
