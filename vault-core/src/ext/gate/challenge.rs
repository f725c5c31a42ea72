//! Picture challenges (SPEC C2): a random string and its picture.
//!
//! The string is drawn with the OS random generator, uniformly from an alphabet
//! without look-alikes ([`DEFAULT_ALPHABET`]: of each pair `0`/`O`, `1`/`I`/`l`,
//! `2`/`Z`, `5`/`S`, `8`/`B`, `U`/`V` at most one is drawn). The picture
//! is a [`WIDTH`]×[`HEIGHT`] PNG drawn with an embedded font (DejaVu Sans Mono
//! Bold, see `FONT-LICENSE`): each character at its own size, rotation and offset,
//! the whole band bent by two sine waves, crossed by curves in the characters'
//! colours, and sprinkled with dots — easy for a person, not for a casual OCR pass.
//! No external service is involved.

use ab_glyph::{Font, FontRef, PxScale};
use image::ImageEncoder;
use rand::Rng;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The default alphabet: upper-case letters and digits with no two that a bent,
/// rotated glyph makes look alike (no `0`, `O`, `1`, `I`, `Z`, `S`, `B`, `V`; no
/// lower case, so no `l`): 27 characters, 28.5 bits in 6.
pub const DEFAULT_ALPHABET: &str = "ACDEFGHJKMNPQRTUWXY23456789";

/// Pairs (and triples) of characters a person misreads for one another in the
/// picture; [`DEFAULT_ALPHABET`] holds at most one of each.
pub const LOOK_ALIKES: &[&str] = &["0O", "1Il", "2Z", "5S", "8B", "UV"];
/// Picture width in pixels.
pub const WIDTH: u32 = 240;
/// Picture height in pixels.
pub const HEIGHT: u32 = 80;

static FONT_BYTES: &[u8] = include_bytes!("DejaVuSansMono-Bold.ttf");

fn font() -> Result<FontRef<'static>> {
    FontRef::try_from_slice(FONT_BYTES)
        .map_err(|e| Error::General(format!("embedded font unreadable: {e}")))
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling over OS
/// random bytes, so no character is favoured).
pub fn random_text(alphabet: &str, len: usize) -> Result<Zeroizing<String>> {
    let chars: Vec<char> = alphabet.chars().collect();
    if chars.is_empty() || chars.len() > 256 {
        return Err(Error::ArgumentsBad(
            "the challenge alphabet must have 1 to 256 characters".into(),
        ));
    }
    let n = chars.len();
    // The largest multiple of n that fits a byte: values at or above it are redrawn.
    let limit = (256 / n) * n;
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.chars().count() < len {
        crate::mechanism::random(&mut buf[..])?;
        for &b in buf.iter() {
            if (b as usize) < limit && out.chars().count() < len {
                out.push(chars[b as usize % n]);
            }
        }
    }
    Ok(out)
}

/// A float canvas of RGB pixels in 0..=1.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

impl Canvas {
    fn blend(&mut self, x: i64, y: i64, color: [f32; 3], alpha: f32) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h || alpha <= 0.0 {
            return;
        }
        let a = alpha.min(1.0);
        let p = &mut self.px[y as usize * self.w + x as usize];
        for i in 0..3 {
            p[i] = p[i] * (1.0 - a) + color[i] * a;
        }
    }

    /// A soft round dot of radius `r` at (`cx`, `cy`).
    fn dot(&mut self, cx: f32, cy: f32, r: f32, color: [f32; 3], alpha: f32) {
        let (x0, x1) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
        let (y0, y1) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                self.blend(x, y, color, cover * alpha);
            }
        }
    }

    fn png(&self) -> Result<Vec<u8>> {
        let raw: Vec<u8> = self
            .px
            .iter()
            .flat_map(|p| p.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8))
            .collect();
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                &raw,
                self.w as u32,
                self.h as u32,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::General(format!("PNG encoding failed: {e}")))?;
        Ok(out)
    }
}

/// One character's coverage bitmap.
struct GlyphMap {
    w: usize,
    h: usize,
    cover: Vec<f32>,
}

impl GlyphMap {
    fn sample(&self, x: f32, y: f32) -> f32 {
        // Bilinear, zero outside.
        let x = x - 0.5;
        let y = y - 0.5;
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let get = |xi: f32, yi: f32| -> f32 {
            if xi < 0.0 || yi < 0.0 || xi as usize >= self.w || yi as usize >= self.h {
                0.0
            } else {
                self.cover[yi as usize * self.w + xi as usize]
            }
        };
        get(x0, y0) * (1.0 - fx) * (1.0 - fy)
            + get(x0 + 1.0, y0) * fx * (1.0 - fy)
            + get(x0, y0 + 1.0) * (1.0 - fx) * fy
            + get(x0 + 1.0, y0 + 1.0) * fx * fy
    }
}

fn glyph_map(font: &FontRef<'_>, c: char, size: f32) -> Result<GlyphMap> {
    let glyph = font
        .glyph_id(c)
        .with_scale_and_position(PxScale::from(size), ab_glyph::point(0.0, 0.0));
    let outlined = font
        .outline_glyph(glyph)
        .ok_or_else(|| Error::General(format!("the font has no glyph for {c:?}")))?;
    let b = outlined.px_bounds();
    let (w, h) = (
        b.width().ceil() as usize + 1,
        b.height().ceil() as usize + 1,
    );
    let mut cover = vec![0f32; w * h];
    outlined.draw(|x, y, v| {
        let (x, y) = (x as usize, y as usize);
        if x < w && y < h {
            cover[y * w + x] = v;
        }
    });
    Ok(GlyphMap { w, h, cover })
}

fn dark_color(rng: &mut impl Rng) -> [f32; 3] {
    let base: f32 = rng.gen_range(0.05..0.35);
    [
        (base + rng.gen_range(-0.05..0.25f32)).clamp(0.0, 1.0),
        (base + rng.gen_range(-0.05..0.25f32)).clamp(0.0, 1.0),
        (base + rng.gen_range(-0.05..0.25f32)).clamp(0.0, 1.0),
    ]
}

/// Draws `text` into a distorted, noisy PNG of [`WIDTH`]×[`HEIGHT`] pixels, every
/// parameter drawn from `rng`. The token passes the stream keyed by its picture key
/// ([`super::picture`], ¶0017, ¶0028), so the picture is an encryption of the string.
pub fn render_with(text: &str, rng: &mut impl Rng) -> Result<Vec<u8>> {
    let font = font()?;
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    // Background: a light gradient with per-pixel grain.
    let bg0 = [
        rng.gen_range(0.85..1.0),
        rng.gen_range(0.85..1.0),
        rng.gen_range(0.85..1.0),
    ];
    let bg1 = [
        rng.gen_range(0.75..0.95),
        rng.gen_range(0.75..0.95),
        rng.gen_range(0.75..0.95),
    ];
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let t = (x as f32 / w as f32 + y as f32 / h as f32) / 2.0;
            let grain: f32 = rng.gen_range(-0.06..0.06);
            px.push([0, 1, 2].map(|i| bg0[i] * (1.0 - t) + bg1[i] * t + grain));
        }
    }
    let mut canvas = Canvas { w, h, px };

    // Background clutter: faint large circles.
    for _ in 0..4 {
        let (cx, cy) = (rng.gen_range(0.0..w as f32), rng.gen_range(0.0..h as f32));
        let r = rng.gen_range(10.0..30.0);
        let color = dark_color(rng);
        let n = 90;
        for k in 0..n {
            let a = k as f32 / n as f32 * std::f32::consts::TAU;
            canvas.dot(cx + r * a.cos(), cy + r * a.sin(), 0.8, color, 0.35);
        }
    }

    // The wave that bends the whole band (applied through the inverse mapping).
    let (ax, px_x, ph_x) = (
        rng.gen_range(2.0..4.0f32),
        rng.gen_range(30.0..55.0f32),
        rng.gen_range(0.0..std::f32::consts::TAU),
    );
    let (ay, px_y, ph_y) = (
        rng.gen_range(2.5..5.0f32),
        rng.gen_range(50.0..90.0f32),
        rng.gen_range(0.0..std::f32::consts::TAU),
    );
    let wave = |x: f32, y: f32| -> (f32, f32) {
        (
            x + ax * (std::f32::consts::TAU * y / px_x + ph_x).sin(),
            y + ay * (std::f32::consts::TAU * x / px_y + ph_y).sin(),
        )
    };

    let chars: Vec<char> = text.chars().collect();
    let n = chars.len().max(1);
    let margin = 12.0f32;
    let step = (w as f32 - 2.0 * margin) / n as f32;
    let mut colors = Vec::with_capacity(n);
    for (i, &c) in chars.iter().enumerate() {
        let size = rng.gen_range(44.0..54.0f32);
        let g = glyph_map(&font, c, size)?;
        let angle = rng.gen_range(-0.35..0.35f32);
        let (sin, cos) = angle.sin_cos();
        let shear = rng.gen_range(-0.2..0.2f32);
        let cx = margin + step * (i as f32 + 0.5) + rng.gen_range(-3.0..3.0f32);
        let cy = h as f32 / 2.0 + rng.gen_range(-7.0..7.0f32);
        let color = dark_color(rng);
        colors.push(color);
        let (gw, gh) = (g.w as f32, g.h as f32);
        let reach = (gw.max(gh) * 0.85 + 8.0) as i64;
        for y in (cy as i64 - reach)..=(cy as i64 + reach) {
            for x in (cx as i64 - reach)..=(cx as i64 + reach) {
                // Destination pixel -> un-bend -> un-rotate/shear -> glyph space.
                let (ux, uy) = wave(x as f32 + 0.5, y as f32 + 0.5);
                let (dx, dy) = (ux - cx, uy - cy);
                let rx = dx * cos + dy * sin;
                let ry = -dx * sin + dy * cos;
                let rx = rx - shear * ry;
                let v = g.sample(rx + gw / 2.0, ry + gh / 2.0);
                canvas.blend(x, y, color, v);
            }
        }
    }

    // Curves through the text band, in the characters' colours, so that
    // segmentation by colour or by connected components fails.
    for k in 0..2 {
        let color = colors
            .get(rng.gen_range(0..colors.len().max(1)))
            .copied()
            .unwrap_or([0.2, 0.2, 0.2]);
        let y0 = rng.gen_range(h as f32 * 0.3..h as f32 * 0.7);
        let amp = rng.gen_range(6.0..16.0f32);
        let period = rng.gen_range(60.0..160.0f32);
        let phase = rng.gen_range(0.0..std::f32::consts::TAU);
        // Thin enough that a person reads through them, in the characters'
        // colours so that colour segmentation fails.
        let thick = if k == 0 {
            rng.gen_range(0.8..1.1f32)
        } else {
            rng.gen_range(0.5..0.8f32)
        };
        let mut x = 0.0f32;
        while x < w as f32 {
            let y = y0 + amp * (std::f32::consts::TAU * x / period + phase).sin();
            canvas.dot(x, y, thick, color, 0.9);
            x += 0.5;
        }
    }
    // Short straight strokes and dots.
    for _ in 0..10 {
        let color = dark_color(rng);
        let (x0, y0) = (rng.gen_range(0.0..w as f32), rng.gen_range(0.0..h as f32));
        let len = rng.gen_range(8.0..25.0f32);
        let a = rng.gen_range(0.0..std::f32::consts::TAU);
        let mut t = 0.0;
        while t < len {
            canvas.dot(x0 + t * a.cos(), y0 + t * a.sin(), 0.7, color, 0.8);
            t += 0.5;
        }
    }
    for _ in 0..180 {
        let color = if rng.gen_bool(0.5) {
            dark_color(rng)
        } else {
            [0.95, 0.95, 0.95]
        };
        let r = rng.gen_range(0.4..1.3f32);
        canvas.dot(
            rng.gen_range(0.0..w as f32),
            rng.gen_range(0.0..h as f32),
            r,
            color,
            0.9,
        );
    }
    canvas.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_uses_the_alphabet() {
        for _ in 0..50 {
            let t = random_text(DEFAULT_ALPHABET, 6).unwrap();
            assert_eq!(t.chars().count(), 6);
            assert!(t.chars().all(|c| DEFAULT_ALPHABET.contains(c)));
        }
        for group in LOOK_ALIKES {
            let n = group
                .chars()
                .filter(|c| DEFAULT_ALPHABET.contains(*c))
                .count();
            assert!(n <= 1, "{group}: {n} of them in the alphabet");
        }
    }

    #[test]
    fn text_is_roughly_uniform() {
        let mut seen = std::collections::HashMap::new();
        for _ in 0..400 {
            for c in random_text(DEFAULT_ALPHABET, 6).unwrap().chars() {
                *seen.entry(c).or_insert(0u32) += 1;
            }
        }
        // 2400 draws over 31 characters: every one appears.
        assert_eq!(seen.len(), DEFAULT_ALPHABET.chars().count());
    }

    #[test]
    fn renders_a_png_of_the_right_size() {
        let png = render_with("AB3KXZ", &mut rand::rngs::OsRng).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        // Two streams draw the same text differently.
        assert_ne!(png, render_with("AB3KXZ", &mut rand::rngs::OsRng).unwrap());
    }

    #[test]
    fn every_alphabet_character_has_a_glyph() {
        let f = font().unwrap();
        for c in DEFAULT_ALPHABET.chars() {
            glyph_map(&f, c, 40.0).unwrap();
        }
    }
}
