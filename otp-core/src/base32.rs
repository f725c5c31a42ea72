//! RFC 4648 base32 (the standard `A-Z2-7` alphabet), as used for
//! `otpauth://` secrets.
//!
//! * [`encode`] produces upper-case output **without** `=` padding, the form
//!   Google Authenticator shows and expects.
//! * [`encode_padded`] produces canonical RFC 4648 output with padding.
//! * [`decode`] is tolerant: it is case-insensitive, ignores ASCII whitespace
//!   (so `"JBSW Y3DP"` works) and accepts input with or without trailing
//!   padding. It rejects characters outside the alphabet, `=` anywhere but at
//!   the end, and lengths that cannot occur in base32 (1, 3 or 6 significant
//!   characters in the final group).

use crate::error::{Error, Result};

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes `data` as upper-case base32 without padding.
///
/// ```
/// assert_eq!(otp_core::base32::encode(b"foobar"), "MZXW6YTBOI");
/// ```
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Number of significant output characters for this (possibly short) chunk.
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let idx = (bits >> (35 - 5 * i)) & 0x1f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// Encodes `data` as upper-case base32 with RFC 4648 `=` padding.
///
/// ```
/// assert_eq!(otp_core::base32::encode_padded(b"foob"), "MZXW6YQ=");
/// ```
pub fn encode_padded(data: &[u8]) -> String {
    let mut out = encode(data);
    while out.len() % 8 != 0 {
        out.push('=');
    }
    out
}

fn value_of(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Decodes base32 text, tolerating lower case, whitespace and missing padding.
///
/// # Errors
/// [`Error::InvalidBase32`] describing the first problem found.
///
/// ```
/// use otp_core::base32::decode;
/// assert_eq!(decode("mzxw 6ytb oi").unwrap(), b"foobar");
/// assert_eq!(decode("MZXW6YTBOI======").unwrap(), b"foobar");
/// assert!(decode("MZXW1").is_err());
/// ```
pub fn decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u64 = 0;
    let mut nbits = 0u32;
    let mut significant = 0usize;
    let mut padding = 0usize;
    for (pos, ch) in text.char_indices() {
        if ch.is_ascii_whitespace() {
            continue;
        }
        if ch == '=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return Err(Error::InvalidBase32(format!(
                "character {ch:?} at byte {pos} follows '=' padding"
            )));
        }
        let v = u8::try_from(ch).ok().and_then(value_of).ok_or_else(|| {
            Error::InvalidBase32(format!(
                "character {ch:?} at byte {pos} is not in the RFC 4648 alphabet (A-Z, 2-7)"
            ))
        })?;
        acc = (acc << 5) | u64::from(v);
        nbits += 5;
        significant += 1;
        if nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
            acc &= (1 << nbits) - 1;
        }
    }
    if matches!(significant % 8, 1 | 3 | 6) {
        return Err(Error::InvalidBase32(format!(
            "{significant} significant characters is not a valid base32 length"
        )));
    }
    if padding > 0 && (significant + padding) % 8 != 0 {
        return Err(Error::InvalidBase32(format!(
            "{padding} padding characters do not complete an 8-character group"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10 test vectors.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "MY======"),
        ("fo", "MZXQ===="),
        ("foo", "MZXW6==="),
        ("foob", "MZXW6YQ="),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI======"),
    ];

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in VECTORS {
            assert_eq!(encode_padded(plain.as_bytes()), *enc, "encode {plain:?}");
            assert_eq!(encode(plain.as_bytes()), enc.trim_end_matches('='));
            assert_eq!(decode(enc).unwrap(), plain.as_bytes(), "decode {enc:?}");
            assert_eq!(
                decode(enc.trim_end_matches('=')).unwrap(),
                plain.as_bytes(),
                "decode unpadded {enc:?}"
            );
            assert_eq!(decode(&enc.to_lowercase()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn round_trip_all_lengths() {
        let data: Vec<u8> = (0..=255u8).rev().collect();
        for len in 0..64 {
            let d = &data[..len];
            assert_eq!(decode(&encode(d)).unwrap(), d);
            assert_eq!(decode(&encode_padded(d)).unwrap(), d);
        }
    }

    #[test]
    fn tolerates_spaces_and_case() {
        assert_eq!(
            decode("jbsw y3dp ehpk 3pxp").unwrap(),
            decode("JBSWY3DPEHPK3PXP").unwrap()
        );
        assert_eq!(
            decode("JBSWY3DPEHPK3PXP").unwrap(),
            b"Hello!\xde\xad\xbe\xef"
        );
        assert_eq!(decode(" MZXW6\tYQ= \n").unwrap(), b"foob");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "MZXW1", "MZ0W", "MZ=XW", "M", "MZX", "MZXW6Y", "MZXQ=", "MZ!Q", "MZXé",
        ] {
            let err = decode(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidBase32(_)), "{bad:?} -> {err:?}");
        }
    }

    #[test]
    fn error_messages_are_clear() {
        let msg = decode("AB1C").unwrap_err().to_string();
        assert!(msg.contains("'1'") && msg.contains("alphabet"), "{msg}");
    }
}
