//! HOTP (RFC 4226) and TOTP (RFC 6238) generation and verification: the codes of the
//! token's OTP credentials (X5) and the core of V9's dynamic passwords.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Smallest supported code length.
pub const MIN_DIGITS: u32 = 6;
/// Largest supported code length.
pub const MAX_DIGITS: u32 = 10;
/// Default code length of the Google Key URI format.
pub const DEFAULT_DIGITS: u32 = 6;
/// Default TOTP time step in seconds.
pub const DEFAULT_PERIOD: u64 = 30;

/// The HMAC hash function used to compute codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1, the RFC 4226 algorithm and the `otpauth://` default.
    #[default]
    Sha1,
    /// HMAC-SHA-256 (RFC 6238).
    Sha256,
    /// HMAC-SHA-512 (RFC 6238).
    Sha512,
}

impl Algorithm {
    /// The canonical name used in `otpauth://` URIs (`SHA1`, `SHA256`, `SHA512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Computes `HMAC(key, msg)` with this hash.
    fn hmac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, msg),
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
            Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses `SHA1`, `SHA256` or `SHA512`, case-insensitively and with an
    /// optional dash (`sha-256`).
    fn from_str(s: &str) -> Result<Self> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        match norm.as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(Error::UnsupportedAlgorithm(s.to_owned())),
        }
    }
}

/// Checks that `digits` is within `MIN_DIGITS..=MAX_DIGITS`.
pub(crate) fn check_digits(digits: u32) -> Result<()> {
    if (MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
        Ok(())
    } else {
        Err(Error::InvalidDigits(digits))
    }
}

/// Computes an HOTP code (RFC 4226).
///
/// The HMAC of the big-endian 8-byte `counter` is dynamically truncated to a
/// 31-bit value, which is reduced modulo `10^digits` and left-padded with
/// zeros. For 10 digits the 31-bit value (at most 2 147 483 647) is used as is.
///
/// # Errors
/// [`Error::InvalidDigits`] unless `6 <= digits <= 10`, [`Error::EmptySecret`]
/// for an empty key.
///
/// # Example
/// ```
/// use otp_core::{hotp, Algorithm};
/// assert_eq!(hotp(b"12345678901234567890", 0, 6, Algorithm::Sha1).unwrap(), "755224");
/// ```
pub fn hotp(secret: &[u8], counter: u64, digits: u32, alg: Algorithm) -> Result<String> {
    check_digits(digits)?;
    if secret.is_empty() {
        return Err(Error::EmptySecret);
    }
    let mac = alg.hmac(secret, &counter.to_be_bytes());
    // Dynamic truncation (RFC 4226 section 5.3).
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    let value = u64::from(bin) % 10u64.pow(digits);
    Ok(format!("{value:0width$}", width = digits as usize))
}

/// Computes the TOTP time step `T = floor((unix_time - t0) / period)`.
///
/// # Errors
/// [`Error::InvalidPeriod`] for `period == 0`, [`Error::TimeBeforeEpoch`] when
/// `unix_time < t0`.
pub fn time_step(unix_time: u64, period: u64, t0: u64) -> Result<u64> {
    if period == 0 {
        return Err(Error::InvalidPeriod);
    }
    let elapsed = unix_time.checked_sub(t0).ok_or(Error::TimeBeforeEpoch {
        time: unix_time,
        t0,
    })?;
    Ok(elapsed / period)
}

/// Computes a TOTP code (RFC 6238): [`hotp`] over [`time_step`].
///
/// # Errors
/// Those of [`time_step`] and [`hotp`].
///
/// # Example
/// ```
/// use otp_core::{totp, Algorithm};
/// let code = totp(b"12345678901234567890", 59, 30, 0, 8, Algorithm::Sha1).unwrap();
/// assert_eq!(code, "94287082");
/// ```
pub fn totp(
    secret: &[u8],
    unix_time: u64,
    period: u64,
    t0: u64,
    digits: u32,
    alg: Algorithm,
) -> Result<String> {
    hotp(secret, time_step(unix_time, period, t0)?, digits, alg)
}

/// Compares two codes in constant time (for equal lengths; the length itself,
/// which equals the public `digits` parameter, is not secret).
pub(crate) fn codes_equal(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Verifies an HOTP code against the counters `counter ..= counter + look_ahead`.
///
/// Returns the counter value that matched (the lowest one if several do), so
/// the caller can resynchronise its stored counter to `matched + 1`. Returns
/// `None` when nothing matches or when the parameters are invalid (bad
/// `digits`, empty secret). Every counter in the window is computed and
/// compared in constant time; the loop does not stop at the first match.
///
/// The work is linear in `look_ahead`; callers should keep it small (RFC 4226
/// suggests a throttled window of a few dozen at most).
///
/// # Example
/// ```
/// use otp_core::{verify_hotp, Algorithm};
/// let key = b"12345678901234567890";
/// assert_eq!(verify_hotp(key, "399871", 0, 10, 6, Algorithm::Sha1), Some(8));
/// assert_eq!(verify_hotp(key, "399871", 0, 5, 6, Algorithm::Sha1), None);
/// ```
pub fn verify_hotp(
    secret: &[u8],
    code: &str,
    counter: u64,
    look_ahead: u64,
    digits: u32,
    alg: Algorithm,
) -> Option<u64> {
    if check_digits(digits).is_err() || secret.is_empty() || code.len() != digits as usize {
        return None;
    }
    let mut found = None;
    for delta in 0..=look_ahead {
        let Some(c) = counter.checked_add(delta) else {
            break;
        };
        let expected = hotp(secret, c, digits, alg).ok()?;
        if codes_equal(&expected, code) && found.is_none() {
            found = Some(c);
        }
    }
    found
}

/// Iterates step offsets in the order `0, -1, +1, -2, +2, ...` up to `skew`.
pub(crate) fn skew_offsets(skew: u64) -> impl Iterator<Item = i64> {
    let skew = i64::try_from(skew).unwrap_or(i64::MAX);
    std::iter::once(0).chain((1..=skew).flat_map(|d| [-d, d]))
}

/// Applies a signed offset to a time step, `None` if it leaves `u64`.
pub(crate) fn offset_step(step: u64, offset: i64) -> Option<u64> {
    if offset < 0 {
        step.checked_sub(offset.unsigned_abs())
    } else {
        step.checked_add(offset.unsigned_abs())
    }
}

/// Verifies a TOTP code, tolerating `skew_steps` time steps of clock drift in
/// either direction.
///
/// Returns the step offset of the match relative to the current step (`0`
/// for an exact match, `-1` if the code belongs to the previous period, ...).
/// When several offsets match, the one closest to zero wins (ties prefer the
/// past). Returns `None` on mismatch or invalid parameters (bad `digits`,
/// `period == 0`, `time < t0`, empty secret). Steps before `t0` are skipped.
/// All candidates are computed and compared in constant time.
///
/// # Example
/// ```
/// use otp_core::{verify_totp, Algorithm};
/// let key = b"12345678901234567890";
/// // "94287082" is the code for t = 59; at t = 89 it is one step old.
/// assert_eq!(verify_totp(key, "94287082", 89, 30, 0, 1, 8, Algorithm::Sha1), Some(-1));
/// assert_eq!(verify_totp(key, "94287082", 89, 30, 0, 0, 8, Algorithm::Sha1), None);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn verify_totp(
    secret: &[u8],
    code: &str,
    time: u64,
    period: u64,
    t0: u64,
    skew_steps: u64,
    digits: u32,
    alg: Algorithm,
) -> Option<i64> {
    if check_digits(digits).is_err() || secret.is_empty() || code.len() != digits as usize {
        return None;
    }
    let step = time_step(time, period, t0).ok()?;
    let mut found = None;
    for offset in skew_offsets(skew_steps) {
        let Some(s) = offset_step(step, offset) else {
            continue;
        };
        let expected = hotp(secret, s, digits, alg).ok()?;
        if codes_equal(&expected, code) && found.is_none() {
            found = Some(offset);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn digits_range_is_enforced() {
        assert_eq!(
            hotp(KEY, 0, 5, Algorithm::Sha1),
            Err(Error::InvalidDigits(5))
        );
        assert_eq!(
            hotp(KEY, 0, 11, Algorithm::Sha1),
            Err(Error::InvalidDigits(11))
        );
        for d in 6..=10 {
            assert_eq!(hotp(KEY, 0, d, Algorithm::Sha1).unwrap().len(), d as usize);
        }
    }

    #[test]
    fn ten_digits_uses_the_31_bit_value() {
        // RFC 4226 Appendix D: counter 0 truncates to 0x4c93cf18 = 1284755224.
        assert_eq!(hotp(KEY, 0, 10, Algorithm::Sha1).unwrap(), "1284755224");
        // counter 1: 0x41397eea = 1094287082.
        assert_eq!(hotp(KEY, 1, 10, Algorithm::Sha1).unwrap(), "1094287082");
        // counter 8: 0x2823443f = 673399871, zero-padded to 10 digits.
        assert_eq!(hotp(KEY, 8, 10, Algorithm::Sha1).unwrap(), "0673399871");
    }

    #[test]
    fn zero_padding() {
        // 0x2823443f mod 10^9 = 673399871 -> 9 digits, 7 digits "3399871".
        assert_eq!(hotp(KEY, 8, 7, Algorithm::Sha1).unwrap(), "3399871");
        assert_eq!(hotp(KEY, 8, 9, Algorithm::Sha1).unwrap(), "673399871");
    }

    #[test]
    fn empty_secret_is_rejected() {
        assert_eq!(hotp(b"", 0, 6, Algorithm::Sha1), Err(Error::EmptySecret));
        assert_eq!(verify_hotp(b"", "000000", 0, 3, 6, Algorithm::Sha1), None);
    }

    #[test]
    fn time_step_errors() {
        assert_eq!(time_step(10, 0, 0), Err(Error::InvalidPeriod));
        assert_eq!(
            time_step(10, 30, 20),
            Err(Error::TimeBeforeEpoch { time: 10, t0: 20 })
        );
        assert_eq!(time_step(59, 30, 0), Ok(1));
        assert_eq!(time_step(100, 30, 40), Ok(2));
    }

    #[test]
    fn algorithm_names() {
        for a in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(a.as_str().parse::<Algorithm>().unwrap(), a);
            assert_eq!(
                a.to_string().to_lowercase().parse::<Algorithm>().unwrap(),
                a
            );
        }
        assert_eq!("sha-256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
        assert_eq!(
            "MD5".parse::<Algorithm>(),
            Err(Error::UnsupportedAlgorithm("MD5".into()))
        );
        assert_eq!(Algorithm::default(), Algorithm::Sha1);
    }

    #[test]
    fn skew_order() {
        assert_eq!(skew_offsets(2).collect::<Vec<_>>(), vec![0, -1, 1, -2, 2]);
        assert_eq!(skew_offsets(0).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn verify_rejects_wrong_length_and_garbage() {
        assert_eq!(verify_hotp(KEY, "75522", 0, 3, 6, Algorithm::Sha1), None);
        assert_eq!(verify_hotp(KEY, "7552244", 0, 3, 6, Algorithm::Sha1), None);
        assert_eq!(verify_hotp(KEY, "abcdef", 0, 3, 6, Algorithm::Sha1), None);
        assert_eq!(
            verify_hotp(KEY, "755224", 0, 0, 6, Algorithm::Sha1),
            Some(0)
        );
    }

    #[test]
    fn verify_hotp_near_counter_overflow() {
        let c = u64::MAX - 1;
        let code = hotp(KEY, u64::MAX, 6, Algorithm::Sha1).unwrap();
        assert_eq!(
            verify_hotp(KEY, &code, c, 100, 6, Algorithm::Sha1),
            Some(u64::MAX)
        );
    }

    #[test]
    fn verify_totp_skips_steps_before_t0() {
        let code = hotp(KEY, 0, 6, Algorithm::Sha1).unwrap();
        assert_eq!(
            verify_totp(KEY, &code, 5, 30, 0, 3, 6, Algorithm::Sha1),
            Some(0)
        );
        assert_eq!(
            verify_totp(KEY, &code, 5, 30, 10, 3, 6, Algorithm::Sha1),
            None
        );
    }
}
