//! The agreed range of token serials (E6: the relay and the CA check it).

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// An inclusive range of token serials, `LO-HI`, each 1 to 16 hex digits.
///
/// vtoken token serials are 16 hex digits; they compare as unsigned 64-bit numbers, so
/// `0000000000000000-00000000FFFFFFFF` holds `00000000DEADBEEF` but not `0000000100000000`.
/// A serial that is not hex never lies in a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialRange {
    /// Lowest serial in the range.
    pub lo: u64,
    /// Highest serial in the range.
    pub hi: u64,
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl SerialRange {
    /// Every serial.
    pub const ALL: SerialRange = SerialRange {
        lo: 0,
        hi: u64::MAX,
    };

    /// Whether `serial` (hex, case-insensitive) lies in the range.
    pub fn contains(&self, serial: &str) -> bool {
        parse_hex(serial).is_some_and(|v| self.lo <= v && v <= self.hi)
    }
}

impl FromStr for SerialRange {
    type Err = Error;

    fn from_str(s: &str) -> Result<SerialRange> {
        let bad = || Error::InvalidRange(s.to_string());
        let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
        let lo = parse_hex(lo).ok_or_else(bad)?;
        let hi = parse_hex(hi).ok_or_else(bad)?;
        if lo > hi {
            return Err(bad());
        }
        Ok(SerialRange { lo, hi })
    }
}

impl fmt::Display for SerialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}-{:016X}", self.lo, self.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contains() {
        let r: SerialRange = "0000000000000000-00000000FFFFFFFF".parse().unwrap();
        assert!(r.contains("00000000DEADBEEF"));
        assert!(r.contains("00000000deadbeef"));
        assert!(r.contains("0000000000000000"));
        assert!(r.contains("00000000FFFFFFFF"));
        assert!(!r.contains("0000000100000000"));
        assert!(!r.contains("not-hex"));
        assert!(!r.contains(""));
        assert!(!r.contains("00000000000000000"));
        assert_eq!(r.to_string(), "0000000000000000-00000000FFFFFFFF");
        let short: SerialRange = "10-20".parse().unwrap();
        assert!(short.contains("0000000000000015"));
        assert!(!short.contains("0000000000000021"));
        assert!(SerialRange::ALL.contains("FFFFFFFFFFFFFFFF"));
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in [
            "",
            "10",
            "20-10",
            "x-1",
            "1-",
            "-1",
            "00000000000000000-1",
            "1-2-3",
        ] {
            assert!(bad.parse::<SerialRange>().is_err(), "{bad:?}");
        }
    }
}
