//! `vtoken vault add --generate`: a random password, like `pass generate`.

use clap::Args;
use vault_core::vault::{Entry, Kind};
use zeroize::Zeroizing;

use crate::error::{bail, Result};

use super::helpers::clip;

const LETTERS_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SYMBOLS: &[u8] = b"!#$%&()*+,-./:;<=>?@[]^_{|}~";

/// The `--generate` options of `vault add`.
#[derive(Debug, Args, Clone, Default)]
pub struct GenerateArgs {
    /// Generate the password (shown once on stderr, or copied with -c).
    #[arg(long, conflicts_with = "password")]
    pub generate: bool,
    /// Length of the generated password (8 to 128).
    #[arg(long, value_name = "N", default_value_t = 20, requires = "generate")]
    pub length: usize,
    /// Letters and digits only (for sites that refuse symbols).
    #[arg(long, requires = "generate")]
    pub no_symbols: bool,
    /// Copy the generated password to the clipboard (cleared after 45 seconds)
    /// instead of showing it.
    #[arg(short = 'c', long = "clip", requires = "generate")]
    pub clip: bool,
}

/// `length` characters drawn uniformly from `alphabet` with the token library's
/// random source (the operating system's), by rejection sampling (no modulo bias).
pub fn password(length: usize, alphabet: &[u8]) -> Result<Zeroizing<String>> {
    let n = alphabet.len();
    // The largest multiple of n below 256: bytes at or above it are redrawn.
    let limit = 256 - 256 % n;
    let mut out = Zeroizing::new(String::with_capacity(length));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < length {
        vault_core::mechanism::random(&mut buf[..])?;
        for &b in buf.iter() {
            if (b as usize) < limit && out.len() < length {
                out.push(alphabet[b as usize % n] as char);
            }
        }
    }
    Ok(out)
}

/// With `--generate`, sets the entry's password to a fresh one and returns it.
pub(super) fn apply(e: &mut Entry, g: &GenerateArgs) -> Result<Option<Zeroizing<String>>> {
    if !g.generate {
        return Ok(None);
    }
    if e.kind == Kind::BankCard {
        bail!("a bank-card entry has no password to generate (its card number and PIN are given)");
    }
    if !(8..=128).contains(&g.length) {
        bail!(
            "a generated password has 8 to 128 characters (--length {} was given)",
            g.length
        );
    }
    let mut alphabet = LETTERS_DIGITS.to_vec();
    if !g.no_symbols {
        alphabet.extend_from_slice(SYMBOLS);
    }
    let pw = password(g.length, &alphabet)?;
    e.set("password", &pw, true);
    Ok(Some(pw))
}

/// Shows the generated password once (stderr), or copies it to the clipboard.
pub(super) fn hand_out(pw: &str, g: &GenerateArgs) -> Result<()> {
    if g.clip {
        clip(pw.as_bytes(), 45)?;
        eprintln!("generated password copied to the clipboard; it is cleared in 45 seconds");
    } else {
        eprintln!("generated password (shown once): {pw}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_and_length() {
        let p = password(100, LETTERS_DIGITS).unwrap();
        assert_eq!(p.len(), 100);
        assert!(p.bytes().all(|b| LETTERS_DIGITS.contains(&b)));
        assert_ne!(*p, *password(100, LETTERS_DIGITS).unwrap());
    }
}
