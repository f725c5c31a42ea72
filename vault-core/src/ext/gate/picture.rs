//! The picture is made by an encryption step inside the token (CN102609656A ¶0017,
//! ¶0028: "the randomly generated string is processed by an encryption algorithm to
//! produce the picture data").
//!
//! Every parameter the renderer varies — background, clutter, the bend of the band,
//! each glyph's size, angle, shear, offset and colour, the curves, strokes and dots —
//! is drawn from a stream keyed by
//!
//! ```text
//! picture key = HMAC-SHA256(master key, "vtoken gate picture key v1")
//! seed        = HMAC-SHA256(picture key, "vtoken gate picture v1" || 0x00 || string)
//! stream      = ChaCha12 (rand's StdRng) seeded with `seed`
//! ```
//!
//! The master key is the token's own secret (random per token, stored only wrapped
//! under the PINs), present only while someone is logged in; the picture key is
//! derived for one picture and zeroized after it, never stored. So two tokens draw
//! the same string two different ways, and one token draws a string the same way
//! each time; without the key the distortion of a picture cannot be predicted from
//! its string (HMAC is a PRF). The string itself stays uniformly random
//! ([`challenge::random_text`]) and the answer check is unchanged.

use hmac::{Hmac, Mac};
use rand::SeedableRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::challenge;
use crate::error::{Error, Result};
use crate::token::Token;

const KEY_LABEL: &[u8] = b"vtoken gate picture key v1";
const SEED_DOMAIN: &[u8] = b"vtoken gate picture v1";

/// The seed of the distortion stream for `text` under `key` (the keyed step).
pub(super) fn seed(key: &[u8; 32], text: &str) -> Zeroizing<[u8; 32]> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(SEED_DOMAIN);
    m.update(&[0]);
    m.update(text.as_bytes());
    Zeroizing::new(m.finalize().into_bytes().into())
}

/// Draws `text` with the distortion the picture key gives it.
pub(super) fn render_keyed(key: &[u8; 32], text: &str) -> Result<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::from_seed(*seed(key, text));
    challenge::render_with(text, &mut rng)
}

impl Token {
    /// This token's picture key, derived now from the master key of whoever is
    /// logged in (user or SO: both unwrap the same master key).
    fn gate_picture_key(&self) -> Result<Zeroizing<[u8; 32]>> {
        let keys = self.any_master_keys().ok_or(Error::UserNotLoggedIn)?;
        let k = keys.master.derive(KEY_LABEL);
        Ok(Zeroizing::new(k.0))
    }

    /// The picture of `text` as this token draws it (¶0017, ¶0028).
    pub(super) fn gate_picture(&self, text: &str) -> Result<Vec<u8>> {
        let key = self.gate_picture_key()?;
        render_keyed(&key, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::token::UserType;

    fn token(dir: &std::path::Path, name: &str) -> std::sync::Arc<Token> {
        let cfg = Config::for_dir(dir);
        let path = dir.join(format!("{name}.vtoken"));
        Token::create(&path, name, b"12345678", &cfg).unwrap();
        let t = Token::open(&path, &cfg).unwrap();
        t.login(UserType::So, b"12345678").unwrap();
        t.init_pin(b"123456").unwrap();
        t.logout().unwrap();
        t
    }

    #[test]
    fn the_picture_is_keyed_per_token_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (token(dir.path(), "a"), token(dir.path(), "b"));
        // No login, no key: the token draws nothing.
        assert!(matches!(
            a.gate_picture("AC3KXY"),
            Err(Error::UserNotLoggedIn)
        ));
        a.login(UserType::User, b"123456").unwrap();
        b.login(UserType::User, b"123456").unwrap();
        let (ka, kb) = (a.gate_picture_key().unwrap(), b.gate_picture_key().unwrap());
        assert_ne!(*ka, *kb);
        // The same token: the same parameters and the same picture for a string.
        assert_eq!(*seed(&ka, "AC3KXY"), *seed(&ka, "AC3KXY"));
        let pa = a.gate_picture("AC3KXY").unwrap();
        assert_eq!(pa, a.gate_picture("AC3KXY").unwrap());
        // The key is the token's secret, not the login: the SO draws the same way,
        // and so does the token after a new login.
        a.logout().unwrap();
        a.login(UserType::So, b"12345678").unwrap();
        assert_eq!(pa, a.gate_picture("AC3KXY").unwrap());
        // Another token draws the same string another way; another string too.
        let pb = b.gate_picture("AC3KXY").unwrap();
        assert_ne!(pa, pb);
        assert_ne!(*seed(&ka, "AC3KXY"), *seed(&kb, "AC3KXY"));
        assert_ne!(pa, a.gate_picture("AC3KXZ").unwrap());
        // Both are real pictures of the right size.
        for png in [&pa, &pb] {
            let img = image::load_from_memory(png).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                (challenge::WIDTH, challenge::HEIGHT)
            );
        }
    }

    #[test]
    fn the_seed_depends_on_every_character_and_the_key() {
        let k1 = [7u8; 32];
        let mut k2 = k1;
        k2[31] ^= 1;
        let s = seed(&k1, "AC3KXY");
        assert_ne!(*s, *seed(&k2, "AC3KXY"));
        assert_ne!(*s, *seed(&k1, "AC3KXYA"));
        assert_ne!(*s, *seed(&k1, "AC3KX"));
        assert_eq!(
            render_keyed(&k1, "AC3KXY").unwrap(),
            render_keyed(&k1, "AC3KXY").unwrap()
        );
        assert_ne!(
            render_keyed(&k1, "AC3KXY").unwrap(),
            render_keyed(&k2, "AC3KXY").unwrap()
        );
    }
}
