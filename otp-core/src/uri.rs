//! `otpauth://` URIs (how OTP credentials move between vtoken and authenticator apps,
//! X5) in the Google Authenticator
//! [Key URI format](https://github.com/google/google-authenticator/wiki/Key-Uri-Format):
//!
//! ```text
//! otpauth://TYPE/LABEL?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
//! otpauth://hotp/LABEL?secret=BASE32&counter=N
//! ```
//!
//! * `TYPE` is `totp` or `hotp` (case-insensitive).
//! * `LABEL` is `account` or `issuer:account`, percent-encoded. Spaces after
//!   the colon are ignored. The label is split at the first colon, so the
//!   issuer never contains one; the account may (e.g. `Corp:a:b`).
//! * `secret` is required (base32, see [`crate::base32::decode`] for what is
//!   tolerated). `counter` is required for `hotp`. `algorithm` (default
//!   `SHA1`), `digits` (default 6, accepted `6..=10`) and `period` (default 30,
//!   TOTP only) are optional. Unknown parameters (e.g. `image`) are ignored;
//!   a repeated parameter is an error.
//! * If both the label prefix and the `issuer` parameter are present they must
//!   be identical, otherwise [`Error::IssuerMismatch`] is returned. An issuer
//!   given only as a parameter is used as the issuer.
//! * Parameter values are percent-decoded and `+` is read as a space (form
//!   encoding, produced by many generators). The label is percent-decoded
//!   only (`+` stays `+`).
//!
//! [`OtpUri::to_uri`] percent-encodes every character outside the RFC 3986
//! unreserved set, so its output parses back to an equal value.

use std::fmt;
use std::str::FromStr;

use zeroize::{Zeroize, Zeroizing};

use crate::base32;
use crate::error::{Error, Result};
use crate::otp::{self, Algorithm, DEFAULT_DIGITS, DEFAULT_PERIOD};

/// Which kind of one-time password a URI describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtpKind {
    /// Counter-based (RFC 4226), URI type `hotp`.
    Hotp,
    /// Time-based (RFC 6238), URI type `totp`.
    Totp,
}

impl OtpKind {
    /// The URI type string, `hotp` or `totp`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtpKind::Hotp => "hotp",
            OtpKind::Totp => "totp",
        }
    }
}

/// A parsed `otpauth://` URI.
///
/// The secret is wiped from memory when the value is dropped, and the
/// [`Debug`] output redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpUri {
    /// `hotp` or `totp`.
    pub kind: OtpKind,
    /// The provider, e.g. `Example Corp`; never empty and never contains `:`.
    pub issuer: Option<String>,
    /// The account name, e.g. `alice@example.com`; never empty.
    pub account: String,
    /// The raw shared secret (already base32-decoded).
    pub secret: Vec<u8>,
    /// HMAC hash, default SHA-1.
    pub algorithm: Algorithm,
    /// Code length, `6..=10`, default 6.
    pub digits: u32,
    /// TOTP time step in seconds, default 30 (kept but unused for HOTP).
    pub period: u64,
    /// HOTP moving factor (`0` and unused for TOTP).
    pub counter: u64,
}

impl Drop for OtpUri {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl fmt::Debug for OtpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpUri")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field(
                "secret",
                &format_args!("<{} bytes redacted>", self.secret.len()),
            )
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("counter", &self.counter)
            .finish()
    }
}

impl OtpUri {
    /// A TOTP description with the defaults (SHA-1, 6 digits, 30 s).
    pub fn new_totp(issuer: Option<&str>, account: &str, secret: Vec<u8>) -> Self {
        OtpUri {
            kind: OtpKind::Totp,
            issuer: issuer.map(str::to_owned),
            account: account.to_owned(),
            secret,
            algorithm: Algorithm::Sha1,
            digits: DEFAULT_DIGITS,
            period: DEFAULT_PERIOD,
            counter: 0,
        }
    }

    /// An HOTP description with the defaults (SHA-1, 6 digits).
    pub fn new_hotp(issuer: Option<&str>, account: &str, secret: Vec<u8>, counter: u64) -> Self {
        let mut uri = Self::new_totp(issuer, account, secret);
        uri.kind = OtpKind::Hotp;
        uri.counter = counter;
        uri
    }

    /// Parses an `otpauth://` URI (see the [module docs](self) for the rules).
    ///
    /// # Errors
    /// [`Error::InvalidUri`], [`Error::UnknownOtpType`], [`Error::MissingSecret`],
    /// [`Error::InvalidBase32`], [`Error::MissingCounter`], [`Error::MissingAccount`],
    /// [`Error::UnsupportedAlgorithm`], [`Error::InvalidDigits`],
    /// [`Error::InvalidPeriod`], [`Error::InvalidParameter`] or
    /// [`Error::IssuerMismatch`].
    ///
    /// ```
    /// use otp_core::{OtpUri, OtpKind};
    /// let u = OtpUri::parse(
    ///     "otpauth://totp/ACME%20Co:john.doe@email.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co",
    /// ).unwrap();
    /// assert_eq!(u.kind, OtpKind::Totp);
    /// assert_eq!(u.issuer.as_deref(), Some("ACME Co"));
    /// assert_eq!(u.account, "john.doe@email.com");
    /// assert_eq!((u.digits, u.period), (6, 30));
    /// assert_eq!(u.name(), "ACME Co:john.doe@email.com");
    /// ```
    pub fn parse(uri: &str) -> Result<Self> {
        let uri = uri.trim();
        let rest = match uri.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("otpauth") => rest,
            Some((scheme, _)) => {
                return Err(Error::InvalidUri(format!(
                    "scheme {scheme:?} is not \"otpauth\""
                )))
            }
            None => return Err(Error::InvalidUri("missing \"otpauth://\" prefix".into())),
        };
        // A fragment carries nothing for us.
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (kind_str, label_raw) = path
            .split_once('/')
            .ok_or_else(|| Error::InvalidUri("missing \"/label\" after the type".into()))?;
        let kind = if kind_str.eq_ignore_ascii_case("totp") {
            OtpKind::Totp
        } else if kind_str.eq_ignore_ascii_case("hotp") {
            OtpKind::Hotp
        } else {
            return Err(Error::UnknownOtpType(kind_str.to_owned()));
        };

        let label = percent_decode(label_raw, false)?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((iss, acc)) => {
                let iss = iss.trim();
                ((!iss.is_empty()).then(|| iss.to_owned()), acc.trim_start())
            }
            None => (None, label.as_str()),
        };
        if account.is_empty() {
            return Err(Error::MissingAccount);
        }

        let mut params = Params::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k, true)?.to_ascii_lowercase();
            let value = Zeroizing::new(percent_decode(v, true)?);
            let slot = match key.as_str() {
                "secret" => &mut params.secret,
                "issuer" => &mut params.issuer,
                "algorithm" => &mut params.algorithm,
                "digits" => &mut params.digits,
                "period" => &mut params.period,
                "counter" => &mut params.counter,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Error::InvalidUri(format!("parameter {key:?} is repeated")));
            }
            *slot = Some(value);
        }

        let secret_text = params
            .secret
            .as_ref()
            .filter(|s| !s.trim().is_empty())
            .ok_or(Error::MissingSecret)?;
        let secret = base32::decode(secret_text)?;
        if secret.is_empty() {
            return Err(Error::MissingSecret);
        }
        let param_issuer = params
            .issuer
            .as_ref()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let issuer = match (label_issuer, param_issuer) {
            (Some(l), Some(p)) if l != p => {
                return Err(Error::IssuerMismatch {
                    label: l,
                    parameter: p,
                })
            }
            (l, p) => p.or(l),
        };
        let algorithm = match &params.algorithm {
            Some(a) => a.parse()?,
            None => Algorithm::Sha1,
        };
        let digits = match &params.digits {
            Some(d) => {
                let n = parse_number::<u32>("digits", d)?;
                otp::check_digits(n)?;
                n
            }
            None => DEFAULT_DIGITS,
        };
        let period = match &params.period {
            Some(p) if kind == OtpKind::Totp => {
                let n = parse_number::<u64>("period", p)?;
                if n == 0 {
                    return Err(Error::InvalidPeriod);
                }
                n
            }
            _ => DEFAULT_PERIOD,
        };
        let counter = match (kind, &params.counter) {
            (OtpKind::Hotp, Some(c)) => parse_number::<u64>("counter", c)?,
            (OtpKind::Hotp, None) => return Err(Error::MissingCounter),
            (OtpKind::Totp, _) => 0,
        };

        let out = OtpUri {
            kind,
            issuer,
            account: account.to_owned(),
            secret,
            algorithm,
            digits,
            period,
            counter,
        };
        out.validate()?;
        Ok(out)
    }

    /// Checks the invariants that make [`to_uri`](Self::to_uri) round-trip:
    /// non-empty secret and account, an issuer (if any) that is non-empty and
    /// colon-free, an account without leading whitespace and — when there is
    /// no issuer — without a colon, `digits` in `6..=10`, a non-zero period.
    ///
    /// [`parse`](Self::parse) only returns values that pass this check.
    pub fn validate(&self) -> Result<()> {
        if self.secret.is_empty() {
            return Err(Error::MissingSecret);
        }
        if self.account.is_empty() {
            return Err(Error::MissingAccount);
        }
        if self.account.starts_with(char::is_whitespace) {
            return Err(Error::InvalidUri(
                "the account name must not start with whitespace".into(),
            ));
        }
        match &self.issuer {
            Some(i) if i.is_empty() || i.contains(':') || i.trim() != i => {
                return Err(Error::InvalidUri(format!(
                    "issuer {i:?} must be non-empty, contain no ':' and no surrounding whitespace"
                )))
            }
            None if self.account.contains(':') => {
                return Err(Error::InvalidUri(format!(
                    "account {:?} contains ':' but there is no issuer",
                    self.account
                )))
            }
            _ => {}
        }
        otp::check_digits(self.digits)?;
        if self.period == 0 {
            return Err(Error::InvalidPeriod);
        }
        Ok(())
    }

    /// The label as shown to users: `issuer:account`, or just `account`
    /// when there is no issuer.
    pub fn name(&self) -> String {
        match &self.issuer {
            Some(i) => format!("{i}:{}", self.account),
            None => self.account.clone(),
        }
    }

    /// Serialises to an `otpauth://` URI with an unpadded base32 secret and
    /// every parameter spelled out (`algorithm`, `digits`, and `period` for
    /// TOTP or `counter` for HOTP). The result parses back to an equal value
    /// provided [`validate`](Self::validate) succeeds.
    ///
    /// The returned string contains the secret; treat it accordingly.
    ///
    /// ```
    /// use otp_core::OtpUri;
    /// let u = OtpUri::new_hotp(Some("Big Corp"), "bob", b"12345678901234567890".to_vec(), 7);
    /// let s = u.to_uri();
    /// assert_eq!(
    ///     s,
    ///     "otpauth://hotp/Big%20Corp:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
    ///      &issuer=Big%20Corp&algorithm=SHA1&digits=6&counter=7"
    /// );
    /// assert_eq!(OtpUri::parse(&s).unwrap(), u);
    /// ```
    pub fn to_uri(&self) -> String {
        let mut s = format!("otpauth://{}/", self.kind.as_str());
        if let Some(i) = &self.issuer {
            s.push_str(&percent_encode(i));
            s.push(':');
        }
        s.push_str(&percent_encode(&self.account));
        s.push_str("?secret=");
        s.push_str(&Zeroizing::new(base32::encode(&self.secret)));
        if let Some(i) = &self.issuer {
            s.push_str("&issuer=");
            s.push_str(&percent_encode(i));
        }
        s.push_str("&algorithm=");
        s.push_str(self.algorithm.as_str());
        s.push_str(&format!("&digits={}", self.digits));
        match self.kind {
            OtpKind::Totp => s.push_str(&format!("&period={}", self.period)),
            OtpKind::Hotp => s.push_str(&format!("&counter={}", self.counter)),
        }
        s
    }

    /// The code for this credential: for TOTP at `unix_time` (with `T0 = 0`),
    /// for HOTP at the stored [`counter`](Self::counter) (`unix_time` is
    /// ignored; the caller is responsible for incrementing the counter).
    ///
    /// # Errors
    /// Those of [`crate::hotp`] / [`crate::totp`].
    pub fn code(&self, unix_time: u64) -> Result<String> {
        match self.kind {
            OtpKind::Totp => otp::totp(
                &self.secret,
                unix_time,
                self.period,
                0,
                self.digits,
                self.algorithm,
            ),
            OtpKind::Hotp => otp::hotp(&self.secret, self.counter, self.digits, self.algorithm),
        }
    }
}

impl FromStr for OtpUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        OtpUri::parse(s)
    }
}

#[derive(Default)]
struct Params {
    secret: Option<Zeroizing<String>>,
    issuer: Option<Zeroizing<String>>,
    algorithm: Option<Zeroizing<String>>,
    digits: Option<Zeroizing<String>>,
    period: Option<Zeroizing<String>>,
    counter: Option<Zeroizing<String>>,
}

fn parse_number<T: FromStr>(name: &str, value: &str) -> Result<T> {
    let v = value.trim();
    // Reject signs and other decorations `FromStr` would accept ("+5").
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidParameter {
            name: name.to_owned(),
            value: value.to_owned(),
        });
    }
    v.parse().map_err(|_| Error::InvalidParameter {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// Percent-decodes `s` (optionally reading `+` as a space) into UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        Error::InvalidUri(format!("malformed percent escape at byte {i}"))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::InvalidUri("percent-decoded text is not valid UTF-8".into()))
}

/// Percent-encodes every byte outside the RFC 3986 unreserved set.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_helpers() {
        assert_eq!(percent_decode("a%20b+c", false).unwrap(), "a b+c");
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("%C3%A9", false).unwrap(), "é");
        assert!(percent_decode("%G1", false).is_err());
        assert!(percent_decode("%4", false).is_err());
        assert!(percent_decode("%FF", false).is_err());
        assert_eq!(percent_encode("a b:c/é~"), "a%20b%3Ac%2F%C3%A9~");
    }

    #[test]
    fn debug_redacts_secret() {
        let u = OtpUri::new_totp(None, "x", b"supersecret".to_vec());
        let d = format!("{u:?}");
        assert!(!d.contains("115") && d.contains("redacted"), "{d}");
    }

    #[test]
    fn validate_rules() {
        let mut u = OtpUri::new_totp(None, "a:b", b"k".to_vec());
        assert!(u.validate().is_err());
        u.issuer = Some("I".into());
        assert!(u.validate().is_ok());
        u.issuer = Some("I:J".into());
        assert!(u.validate().is_err());
        u.issuer = Some(String::new());
        assert!(u.validate().is_err());
    }
}
