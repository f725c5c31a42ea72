//! The tokens' PINs (E2): one preset PIN for all, or a PIN derived from each token's
//! serial with the station secret.
//!
//! Derivation: HOTP-style decimal truncation (RFC 4226 5.3) of
//! HMAC-SHA256(key = secret, message = token serial in ASCII upper-case hex), left-
//! padded with zeros to the chosen number of digits. Anyone holding the secret can
//! initialise tokens with the PIN the station will use, without a list of PINs.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A PIN held in memory that is wiped when dropped.
pub type Pin = Zeroizing<String>;

/// Smallest station secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;

/// Reads the station secret: the file's bytes without trailing whitespace, at least
/// [`MIN_SECRET`] of them.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|source| Error::SecretUnreadable {
            path: path.to_path_buf(),
            source,
        })?,
    );
    let secret = trim_secret(bytes);
    if secret.len() < MIN_SECRET {
        return Err(Error::SecretTooShort {
            path: path.to_path_buf(),
        });
    }
    Ok(secret)
}

/// The secret without its trailing whitespace (a file's final newline).
fn trim_secret(mut bytes: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
        bytes.pop();
    }
    bytes
}

/// RFC 4226 dynamic truncation of a MAC to `digits` decimal digits.
fn truncate(mac: &[u8], digits: u32) -> String {
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let v = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let code = u64::from(v) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The PIN of token `serial` under the station `secret` (algorithm in the module
/// documentation); the serial's case and surrounding spaces do not matter.
pub fn derive_pin(secret: &[u8], serial: &str, digits: u32) -> Pin {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(serial.trim().to_ascii_uppercase().as_bytes());
    let h = Zeroizing::new(mac.finalize().into_bytes().to_vec());
    Zeroizing::new(truncate(&h, digits))
}

/// Where the tokens' PINs come from.
pub enum PinSource {
    /// The same PIN for every token.
    Preset(Pin),
    /// Each token's PIN derived from its serial.
    Derived {
        secret: Zeroizing<Vec<u8>>,
        digits: u32,
    },
}

impl PinSource {
    /// The PIN of the token with this serial.
    pub fn for_serial(&self, serial: &str) -> Pin {
        match self {
            PinSource::Preset(p) => p.clone(),
            PinSource::Derived { secret, digits } => derive_pin(secret, serial, *digits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_matches_rfc4226_example() {
        // RFC 4226 section 5.4: this HMAC-SHA-1 value truncates to 0x50ef7f19 (872921).
        let h = hex::decode("1f8698690e02ca16618550ef7f19da8e945b555a").unwrap();
        assert_eq!(truncate(&h, 6), "872921");
        assert_eq!(
            truncate(&h, 9),
            &format!("{:09}", 0x50ef7f19u32 % 1_000_000_000)[..]
        );
    }

    #[test]
    fn derived_pin_is_stable_and_case_insensitive() {
        let secret = b"0123456789abcdef-station";
        let a = derive_pin(secret, "00000000000000a1", 8);
        let b = derive_pin(secret, " 00000000000000A1 ", 8);
        assert_eq!(*a, *b);
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(*a, *derive_pin(secret, "00000000000000A2", 8));
        assert_ne!(
            *a,
            *derive_pin(b"another-secret-0123", "00000000000000A1", 8)
        );
    }

    #[test]
    fn short_digits_are_zero_padded() {
        // Whatever the MAC, the PIN has exactly `digits` digits.
        for serial in ["01", "02", "03", "04", "05", "06", "07", "08"] {
            let p = derive_pin(b"0123456789abcdef", serial, 4);
            assert_eq!(p.len(), 4, "{serial}");
        }
    }

    #[test]
    fn preset_and_derived_sources() {
        let preset = PinSource::Preset(Zeroizing::new("123456".into()));
        assert_eq!(preset.for_serial("A1").as_str(), "123456");
        let secret = b"0123456789abcdef".to_vec();
        let derived = PinSource::Derived {
            secret: Zeroizing::new(secret.clone()),
            digits: 6,
        };
        assert_eq!(*derived.for_serial("a1"), *derive_pin(&secret, "A1", 6));
    }

    #[test]
    fn secret_file_is_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, b"0123456789abcdef\n\n").unwrap();
        assert_eq!(&read_secret(&good).unwrap()[..], b"0123456789abcdef");
        let short = dir.path().join("short");
        std::fs::write(&short, b"0123456789abcde \n").unwrap();
        assert!(matches!(
            read_secret(&short),
            Err(Error::SecretTooShort { .. })
        ));
        assert!(matches!(
            read_secret(&dir.path().join("none")),
            Err(Error::SecretUnreadable { .. })
        ));
    }
}
