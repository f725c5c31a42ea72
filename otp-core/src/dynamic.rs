//! A dynamic password derived from a vault entry (SPEC V9).
//!
//! A vault entry (any text, typically a stored password) is turned into an
//! HOTP key with [`seed_from_entry`], and a code is then produced with HMAC-SHA-1
//! HOTP ([`DYNAMIC_ALGORITHM`]) over a moving factor built from a time step, a
//! counter, or both ([`moving_factor`]). The service side, holding the same
//! entry, checks codes with [`verify_dynamic_password`].
//!
//! Because the seed is an ordinary HOTP key, any RFC 4226 implementation can
//! reproduce the codes, e.g. `oathtool --hotp -c <factor> <hex of seed>`.
//!
//! # Seed mapping
//!
//! The entry is processed byte by byte (in its UTF-8 encoding):
//!
//! * an ASCII digit `'0'..='9'` stays as that digit;
//! * every other byte — letters, operators, punctuation, space, ASCII
//!   control characters, and each byte of a non-ASCII character's UTF-8
//!   encoding — is replaced by the decimal digits of its value
//!   (`'A'` → `65`, `'+'` → `43`, `' '` → `32`, `'é'` = `C3 A9` → `195169`).
//!
//! The resulting decimal digit string, as ASCII bytes, is the HMAC key. For
//! example `"A+1"` gives the key `b"65431"`.
//!
//! The mapping is not injective (`"A"` and `"65"` give the same key); it is a
//! deterministic derivation, not an encoding.
//!
//! # Moving factor
//!
//! | inputs               | factor                              |
//! |----------------------|-------------------------------------|
//! | time only            | `T = unix / period`                 |
//! | counter only         | `counter`                           |
//! | time and counter     | `(T << 32) ^ counter`               |
//! | neither              | [`Error::MissingMovingFactor`]      |
//!
//! With both, the time step occupies the high 32 bits and the counter is
//! XOR-ed in, so a counter below 2³² never disturbs the time part. Bits of
//! `T` above bit 31 are discarded by the shift; `T` stays below 2³² until the
//! year 2106 even with a 1-second period. The time step uses `T0 = 0`.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::otp::{self, Algorithm};

/// The HMAC hash used for dynamic passwords.
pub const DYNAMIC_ALGORITHM: Algorithm = Algorithm::Sha1;

/// Maps a vault entry to the decimal-digit seed key (see the
/// [module docs](self)).
///
/// The returned key is secret material; callers should zeroize it after use.
///
/// ```
/// use otp_core::seed_from_entry;
/// assert_eq!(seed_from_entry("A"), b"65");
/// assert_eq!(seed_from_entry("+"), b"43");
/// assert_eq!(seed_from_entry("a1 b2"), b"97132982");
/// assert_eq!(seed_from_entry("é"), b"195169");
/// ```
pub fn seed_from_entry(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3);
    for b in data.bytes() {
        if b.is_ascii_digit() {
            out.push(b);
        } else {
            // Decimal digits of the byte value, most significant first.
            if b >= 100 {
                out.push(b'0' + b / 100);
            }
            if b >= 10 {
                out.push(b'0' + (b / 10) % 10);
            }
            out.push(b'0' + b % 10);
        }
    }
    out
}

/// Computes the moving factor for a dynamic password (see the table in the
/// [module docs](self)). `time` is `(unix_time, period)`.
///
/// # Errors
/// [`Error::MissingMovingFactor`] if both are `None`, [`Error::InvalidPeriod`]
/// for a zero period.
pub fn moving_factor(time: Option<(u64, u64)>, counter: Option<u64>) -> Result<u64> {
    let step = time
        .map(|(unix, period)| otp::time_step(unix, period, 0))
        .transpose()?;
    match (step, counter) {
        (Some(t), None) => Ok(t),
        (None, Some(c)) => Ok(c),
        (Some(t), Some(c)) => Ok((t << 32) ^ c),
        (None, None) => Err(Error::MissingMovingFactor),
    }
}

/// Generates the dynamic password for a vault entry.
///
/// `time` is `(unix_time, period_seconds)`; `counter` is an event counter.
/// At least one must be given; see [`moving_factor`].
///
/// # Errors
/// [`Error::EmptyEntry`], [`Error::MissingMovingFactor`],
/// [`Error::InvalidPeriod`] or [`Error::InvalidDigits`].
///
/// ```
/// use otp_core::{dynamic_password, hotp, seed_from_entry, Algorithm};
/// let code = dynamic_password("hunter2", Some((1_700_000_000, 30)), None, 6).unwrap();
/// let step = 1_700_000_000 / 30;
/// assert_eq!(code, hotp(&seed_from_entry("hunter2"), step, 6, Algorithm::Sha1).unwrap());
/// ```
pub fn dynamic_password(
    entry_data: &str,
    time: Option<(u64, u64)>,
    counter: Option<u64>,
    digits: u32,
) -> Result<String> {
    if entry_data.is_empty() {
        return Err(Error::EmptyEntry);
    }
    let factor = moving_factor(time, counter)?;
    let seed = Zeroizing::new(seed_from_entry(entry_data));
    otp::hotp(&seed, factor, digits, DYNAMIC_ALGORITHM)
}

/// How far [`verify_dynamic_password`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DynamicWindow {
    /// Accept time steps `T - n ..= T + n` (ignored without a time).
    pub time_skew_steps: u64,
    /// Accept counters `c ..= c + n` (ignored without a counter).
    pub counter_look_ahead: u64,
}

/// Where a dynamic password matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicMatch {
    /// Time-step offset of the match (`0` when no time was used).
    pub time_offset: i64,
    /// The counter value that matched, when a counter was used; the service
    /// should store `counter + 1` as its next expected counter.
    pub counter: Option<u64>,
}

/// Service-side check of a dynamic password.
///
/// Tries every combination of time-step offset (closest to zero first,
/// past before future) and counter in `window`, comparing in constant time,
/// and returns the first match in that order. Returns `Ok(None)` on
/// mismatch (including a code of the wrong length).
///
/// # Errors
/// The same configuration errors as [`dynamic_password`].
///
/// ```
/// use otp_core::{dynamic_password, verify_dynamic_password, DynamicMatch, DynamicWindow};
/// let code = dynamic_password("s3cret!", None, Some(12), 6).unwrap();
/// let w = DynamicWindow { time_skew_steps: 0, counter_look_ahead: 5 };
/// assert_eq!(
///     verify_dynamic_password("s3cret!", &code, None, Some(10), 6, w).unwrap(),
///     Some(DynamicMatch { time_offset: 0, counter: Some(12) })
/// );
/// ```
pub fn verify_dynamic_password(
    entry_data: &str,
    code: &str,
    time: Option<(u64, u64)>,
    counter: Option<u64>,
    digits: u32,
    window: DynamicWindow,
) -> Result<Option<DynamicMatch>> {
    if entry_data.is_empty() {
        return Err(Error::EmptyEntry);
    }
    otp::check_digits(digits)?;
    // Validates the factor inputs (neither given, zero period).
    moving_factor(time, counter)?;
    if code.len() != digits as usize {
        return Ok(None);
    }
    let seed = Zeroizing::new(seed_from_entry(entry_data));

    let time_offsets: Vec<i64> = match time {
        Some(_) => otp::skew_offsets(window.time_skew_steps).collect(),
        None => vec![0],
    };
    let counter_deltas = match counter {
        Some(_) => window.counter_look_ahead,
        None => 0,
    };

    let mut found = None;
    for &offset in &time_offsets {
        let step = match time {
            Some((unix, period)) => match otp::offset_step(unix / period, offset) {
                Some(s) => Some(s),
                None => continue,
            },
            None => None,
        };
        for delta in 0..=counter_deltas {
            let c = match counter {
                Some(c) => match c.checked_add(delta) {
                    Some(c) => Some(c),
                    None => break,
                },
                None => None,
            };
            let factor = match (step, c) {
                (Some(t), None) => t,
                (None, Some(c)) => c,
                (Some(t), Some(c)) => (t << 32) ^ c,
                (None, None) => unreachable!("checked by moving_factor"),
            };
            let expected = otp::hotp(&seed, factor, digits, DYNAMIC_ALGORITHM)?;
            if otp::codes_equal(&expected, code) && found.is_none() {
                found = Some(DynamicMatch {
                    time_offset: offset,
                    counter: c,
                });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_examples() {
        assert_eq!(seed_from_entry(""), b"");
        assert_eq!(seed_from_entry("0123456789"), b"0123456789");
        assert_eq!(seed_from_entry("A"), b"65");
        assert_eq!(seed_from_entry("+"), b"43");
        assert_eq!(seed_from_entry(" "), b"32");
        assert_eq!(seed_from_entry("~"), b"126");
        assert_eq!(seed_from_entry("z"), b"122");
        assert_eq!(seed_from_entry("A+1"), b"65431");
        assert_eq!(seed_from_entry("1+1=2"), b"1431612");
        assert_eq!(seed_from_entry("Pa$$w0rd!"), b"80973636119011410033");
        assert_eq!(seed_from_entry("\t"), b"9");
        assert_eq!(seed_from_entry("\n"), b"10");
        // U+00E9 = C3 A9, U+20AC (euro) = E2 82 AC.
        assert_eq!(seed_from_entry("é"), b"195169");
        assert_eq!(seed_from_entry("€5"), b"2261301725");
    }

    #[test]
    fn moving_factor_table() {
        assert_eq!(moving_factor(Some((59, 30)), None), Ok(1));
        assert_eq!(moving_factor(None, Some(7)), Ok(7));
        assert_eq!(moving_factor(Some((95, 30)), Some(5)), Ok((3 << 32) ^ 5));
        assert_eq!(
            moving_factor(Some((1_234_567_890, 30)), Some(0xdead_beef)),
            Ok((41_152_263u64 << 32) | 0xdead_beef)
        );
        assert_eq!(moving_factor(None, None), Err(Error::MissingMovingFactor));
        assert_eq!(moving_factor(Some((5, 0)), None), Err(Error::InvalidPeriod));
    }

    #[test]
    fn password_is_hotp_of_seed() {
        let seed = seed_from_entry("correct horse");
        let t = 1_111_111_111;
        for (time, counter, factor) in [
            (Some((t, 30)), None, t / 30),
            (None, Some(42), 42),
            (Some((t, 60)), Some(42), ((t / 60) << 32) ^ 42),
        ] {
            for digits in [6, 8, 10] {
                assert_eq!(
                    dynamic_password("correct horse", time, counter, digits).unwrap(),
                    otp::hotp(&seed, factor, digits, Algorithm::Sha1).unwrap()
                );
            }
        }
    }

    #[test]
    fn password_errors() {
        assert_eq!(
            dynamic_password("x", None, None, 6),
            Err(Error::MissingMovingFactor)
        );
        assert_eq!(
            dynamic_password("", None, Some(1), 6),
            Err(Error::EmptyEntry)
        );
        assert_eq!(
            dynamic_password("x", None, Some(1), 4),
            Err(Error::InvalidDigits(4))
        );
        assert_eq!(
            dynamic_password("x", Some((1, 0)), None, 6),
            Err(Error::InvalidPeriod)
        );
        let w = DynamicWindow::default();
        assert_eq!(
            verify_dynamic_password("x", "123456", None, None, 6, w),
            Err(Error::MissingMovingFactor)
        );
    }

    #[test]
    fn verify_time_window() {
        let entry = "vault entry";
        let now = 1_700_000_000;
        let code = dynamic_password(entry, Some((now - 60, 30)), None, 6).unwrap();
        let w = |n| DynamicWindow {
            time_skew_steps: n,
            counter_look_ahead: 0,
        };
        assert_eq!(
            verify_dynamic_password(entry, &code, Some((now, 30)), None, 6, w(2)).unwrap(),
            Some(DynamicMatch {
                time_offset: -2,
                counter: None
            })
        );
        assert_eq!(
            verify_dynamic_password(entry, &code, Some((now, 30)), None, 6, w(1)).unwrap(),
            None
        );
        assert_eq!(
            verify_dynamic_password("other entry", &code, Some((now, 30)), None, 6, w(3)).unwrap(),
            None
        );
    }

    #[test]
    fn verify_combined_window() {
        let entry = "combo";
        let now = 1_234_567_890;
        let code = dynamic_password(entry, Some((now + 30, 30)), Some(103), 8).unwrap();
        let w = DynamicWindow {
            time_skew_steps: 1,
            counter_look_ahead: 5,
        };
        assert_eq!(
            verify_dynamic_password(entry, &code, Some((now, 30)), Some(100), 8, w).unwrap(),
            Some(DynamicMatch {
                time_offset: 1,
                counter: Some(103)
            })
        );
        // Counter outside the look-ahead.
        assert_eq!(
            verify_dynamic_password(entry, &code, Some((now, 30)), Some(90), 8, w).unwrap(),
            None
        );
        // Time outside the skew.
        let w0 = DynamicWindow {
            time_skew_steps: 0,
            ..w
        };
        assert_eq!(
            verify_dynamic_password(entry, &code, Some((now, 30)), Some(100), 8, w0).unwrap(),
            None
        );
        // Wrong length is a plain mismatch.
        assert_eq!(
            verify_dynamic_password(entry, "123", Some((now, 30)), Some(100), 8, w).unwrap(),
            None
        );
    }
}
