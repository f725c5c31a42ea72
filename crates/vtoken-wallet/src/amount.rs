//! Money as integer minor units (never floats): 1.00 CNY is 100 minor units.
//! Parsing takes major-unit decimals (`100`, `100.5`, `100.50`) and refuses
//! anything that is not an exact, non-negative amount of at most two decimals.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Minor units per major unit (two decimals: fen, cents).
pub const MINOR_PER_MAJOR: u64 = 100;

/// A non-negative amount in minor units, at most `i64::MAX` (SQLite's INTEGER).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Amount(u64);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);
    /// The largest amount (fits an SQLite INTEGER).
    pub const MAX: Amount = Amount(i64::MAX as u64);

    /// From minor units; `None` above [`Amount::MAX`].
    pub fn from_minor(minor: u64) -> Option<Amount> {
        (minor <= Amount::MAX.0).then_some(Amount(minor))
    }

    /// From an SQLite INTEGER; `None` when negative.
    pub fn from_i64(v: i64) -> Option<Amount> {
        u64::try_from(v).ok().map(Amount)
    }

    /// Minor units.
    pub fn minor(self) -> u64 {
        self.0
    }

    /// Minor units as an SQLite INTEGER (always fits).
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }

    /// `self + other`, `None` past [`Amount::MAX`].
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).and_then(Amount::from_minor)
    }

    /// `self - other`, `None` below zero.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02}",
            self.0 / MINOR_PER_MAJOR,
            self.0 % MINOR_PER_MAJOR
        )
    }
}

impl FromStr for Amount {
    type Err = Error;

    /// `123`, `123.4`, `123.45` (major units); no sign, exponent, separators or
    /// third decimal.
    fn from_str(s: &str) -> Result<Amount, Error> {
        let bad = || {
            Error::Amount(format!(
                "{s:?} is not an amount (write major units with at most two decimals, e.g. 100.00)"
            ))
        };
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty()
            || frac.len() > 2
            || (s.contains('.') && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let major: u64 = int.parse().map_err(|_| bad())?;
        let mut minor: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        if frac.len() == 1 {
            minor *= 10;
        }
        major
            .checked_mul(MINOR_PER_MAJOR)
            .and_then(|m| m.checked_add(minor))
            .and_then(Amount::from_minor)
            .ok_or_else(|| Error::Amount(format!("{s} is too large")))
    }
}

/// A currency code: three ASCII capitals (ISO 4217 form).
pub fn check_currency(c: &str) -> Result<(), Error> {
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Error::Amount(format!(
            "{c:?} is not a currency code (three capitals, e.g. CNY)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_units_exactly() {
        assert_eq!("100.00".parse::<Amount>().unwrap().minor(), 10_000);
        assert_eq!("100".parse::<Amount>().unwrap().minor(), 10_000);
        assert_eq!("0.5".parse::<Amount>().unwrap().minor(), 50);
        assert_eq!("0.05".parse::<Amount>().unwrap().minor(), 5);
        assert_eq!("1000.99".parse::<Amount>().unwrap().to_string(), "1000.99");
        assert_eq!(Amount::from_minor(7).unwrap().to_string(), "0.07");
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for s in [
            "",
            ".",
            "1.",
            ".5",
            "-1",
            "+1",
            "1.234",
            "1e3",
            "1,00",
            " 1",
            "1 ",
            "0x10",
            "１",
            "99999999999999999999",
        ] {
            assert!(s.parse::<Amount>().is_err(), "{s:?} parsed");
        }
        let max = format!("{}", Amount::MAX);
        assert_eq!(max.parse::<Amount>().unwrap(), Amount::MAX);
        assert!(Amount::MAX.checked_add(Amount(1)).is_none());
        assert!(Amount(1).checked_sub(Amount(2)).is_none());
    }

    #[test]
    fn currency_codes() {
        assert!(check_currency("CNY").is_ok());
        for c in ["cny", "CN", "CNYY", "C1Y"] {
            assert!(check_currency(c).is_err());
        }
    }
}
