//! Pictures on a terminal: a PNG (the gate's challenge, SPEC C2) drawn with Unicode
//! half blocks.
//!
//! Each character cell holds two pixels, one above the other: `█` (both ink), `▀`
//! (top), `▄` (bottom) or a space (neither). The result is plain text, with no
//! escape sequences, so it shows in any terminal with a Unicode font, in a log, in
//! `tmux capture-pane -p`, and through a pinentry description.
//!
//! The picture is shrunk (never enlarged) to at most `max_cols` columns, keeping its
//! proportions (a cell is about twice as tall as wide, so two pixels per cell keep
//! them square), by averaging the pixels each output pixel covers; it is then cut
//! into ink and paper at Otsu's threshold (the grey level that best separates the
//! two), and the smaller of the two classes is drawn as ink: dark text on light
//! paper and light text on dark paper both come out as block letters.
//!
//! [`to_colour_blocks`] is the 24-bit colour variant (`▀` with the top pixel as
//! foreground and the bottom one as background), for terminals that support it.

use std::io::Cursor;

use image::{imageops, DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::{PromptError, Result};

/// Largest picture decoded, in pixels per side (a challenge is a few hundred).
pub const MAX_SIDE: u32 = 4096;

/// How a picture is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Style {
    /// Half blocks and spaces, no escape sequences ([`to_half_blocks`]).
    #[default]
    Mono,
    /// Half blocks with 24-bit colour escapes ([`to_colour_blocks`]).
    Colour,
}

/// `png` drawn in `style`, at most `max_cols` columns wide.
pub fn render(png: &[u8], max_cols: u16, style: Style) -> Result<String> {
    match style {
        Style::Mono => to_half_blocks(png, max_cols),
        Style::Colour => to_colour_blocks(png, max_cols),
    }
}

fn decode(png: &[u8]) -> Result<DynamicImage> {
    let mut reader = ImageReader::with_format(Cursor::new(png), ImageFormat::Png);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| PromptError::Picture(format!("cannot decode the PNG: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(PromptError::Picture("the PNG is empty".into()).into());
    }
    Ok(img)
}

/// The width and height of a PNG, from its header (nothing else is decoded).
pub fn png_size(png: &[u8]) -> Result<(u32, u32)> {
    let mut reader = ImageReader::with_format(Cursor::new(png), ImageFormat::Png);
    reader.no_limits();
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| PromptError::Picture(format!("cannot read the PNG: {e}")))?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(PromptError::Picture(format!("bad PNG size {w}x{h}")).into());
    }
    Ok((w, h))
}

/// The size in pixels the picture is drawn at: at most `max_cols` wide (never
/// enlarged), proportions kept, an even height (two pixels per text row).
pub fn fitted_size(width: u32, height: u32, max_cols: u16) -> (u32, u32) {
    let w = width.min(u32::from(max_cols.max(1)));
    let h = ((u64::from(height) * u64::from(w) + u64::from(width) / 2) / u64::from(width)) as u32;
    let h = h.max(1);
    (w, h + (h & 1))
}

/// The picture shrunk to [`fitted_size`], the padding row (if any) white.
fn fitted(img: &DynamicImage, max_cols: u16) -> (u32, u32, DynamicImage) {
    let (w, h) = fitted_size(img.width(), img.height(), max_cols);
    // The height before padding to even.
    let h0 = ((u64::from(img.height()) * u64::from(w) + u64::from(img.width()) / 2)
        / u64::from(img.width()))
    .max(1) as u32;
    let small = if (w, h0) == (img.width(), img.height()) {
        img.clone()
    } else {
        // `thumbnail` averages the pixels each output pixel covers.
        DynamicImage::ImageRgba8(imageops::thumbnail(&img.to_rgba8(), w, h0))
    };
    (w, h, small)
}

/// Otsu's threshold of a grey-level histogram: the level `t` that maximises the
/// between-class variance of `< t` and `>= t`.
fn otsu(hist: &[u64; 256]) -> u8 {
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut best, mut best_t) = (-1.0f64, 128u8);
    let (mut w0, mut sum0) = (0u64, 0f64);
    for t in 1..256usize {
        w0 += hist[t - 1];
        sum0 += (t - 1) as f64 * hist[t - 1] as f64;
        let w1 = total - w0;
        if w0 == 0 || w1 == 0 {
            continue;
        }
        let m0 = sum0 / w0 as f64;
        let m1 = (sum_all - sum0) / w1 as f64;
        let v = w0 as f64 * w1 as f64 * (m0 - m1) * (m0 - m1);
        if v > best {
            best = v;
            best_t = t as u8;
        }
    }
    best_t
}

/// `png` as half blocks (`█ ▀ ▄` and spaces), at most `max_cols` columns wide: one
/// line per two pixel rows, every line exactly as wide as the picture (trailing
/// spaces kept), lines joined with `\n` (no final newline). See the module docs.
pub fn to_half_blocks(png: &[u8], max_cols: u16) -> Result<String> {
    let img = decode(png)?;
    let (w, h, small) = fitted(&img, max_cols);
    // Grey on white: transparent pixels are paper.
    let rgba = small.to_rgba8();
    let grey = |x: u32, y: u32| -> u8 {
        if y >= rgba.height() {
            return 255;
        }
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let l = (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000;
        let a = u32::from(a);
        ((l * a + 255 * (255 - a)) / 255) as u8
    };
    let mut hist = [0u64; 256];
    let (mut lo, mut hi) = (255u8, 0u8);
    for y in 0..rgba.height() {
        for x in 0..w {
            let g = grey(x, y);
            hist[usize::from(g)] += 1;
            lo = lo.min(g);
            hi = hi.max(g);
        }
    }
    let t = otsu(&hist);
    let dark: u64 = hist[..usize::from(t)].iter().sum();
    let light: u64 = hist[usize::from(t)..].iter().sum();
    // A blank (near-uniform) picture has no ink; otherwise the minority is ink.
    let flat = hi.saturating_sub(lo) < 24;
    let dark_is_ink = dark <= light;
    let ink = |x: u32, y: u32| -> bool {
        if flat || y >= rgba.height() {
            return false;
        }
        (grey(x, y) < t) == dark_is_ink
    };
    let mut out = String::with_capacity((w as usize * 3 + 1) * (h as usize / 2));
    for row in 0..h / 2 {
        if row > 0 {
            out.push('\n');
        }
        for x in 0..w {
            out.push(match (ink(x, 2 * row), ink(x, 2 * row + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
    }
    Ok(out)
}

/// `png` as `▀` cells with 24-bit colour escapes (foreground: the top pixel,
/// background: the bottom one), at most `max_cols` columns wide; each line ends
/// with a colour reset. Transparent pixels are drawn on white.
pub fn to_colour_blocks(png: &[u8], max_cols: u16) -> Result<String> {
    let img = decode(png)?;
    let (w, h, small) = fitted(&img, max_cols);
    let rgba = small.to_rgba8();
    let px = |x: u32, y: u32| -> [u8; 3] {
        if y >= rgba.height() {
            return [255; 3];
        }
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = u32::from(a);
        let over = |c: u8| ((u32::from(c) * a + 255 * (255 - a)) / 255) as u8;
        [over(r), over(g), over(b)]
    };
    let mut out = String::new();
    for row in 0..h / 2 {
        if row > 0 {
            out.push('\n');
        }
        for x in 0..w {
            let [r1, g1, b1] = px(x, 2 * row);
            let [r2, g2, b2] = px(x, 2 * row + 1);
            out.push_str(&format!(
                "\x1b[38;2;{r1};{g1};{b1}m\x1b[48;2;{r2};{g2};{b2}m▀"
            ));
        }
        out.push_str("\x1b[0m");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(fitted_size(200, 70, 80), (80, 28));
        assert_eq!(fitted_size(40, 10, 80), (40, 10));
        assert_eq!(fitted_size(41, 11, 80), (41, 12));
        assert_eq!(fitted_size(1000, 1, 10), (10, 2));
    }

    #[test]
    fn otsu_splits_two_peaks() {
        let mut h = [0u64; 256];
        h[20] = 100;
        h[230] = 300;
        let t = otsu(&h);
        assert!(t > 20 && t <= 230, "{t}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(to_half_blocks(b"not a png", 40).is_err());
    }
}
