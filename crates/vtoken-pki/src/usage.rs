//! What a token certificate is for (E5: "the certificate usage").

use std::fmt;
use std::str::FromStr;

use const_oid::db::rfc5280::ID_KP_CLIENT_AUTH;
use const_oid::ObjectIdentifier;
use der::Decode;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::Certificate;

use crate::{ext, Error, Result};

/// Certificate usage requested in a PKCS#10 request and written into the certificate.
///
/// | usage | keyUsage | extendedKeyUsage |
/// |---|---|---|
/// | `Device` | digitalSignature + keyEncipherment (RSA key) or keyAgreement (EC key) | — |
/// | `Client` | digitalSignature | clientAuth |
/// | `Signing` | digitalSignature + nonRepudiation | — |
/// | `Operator` | digitalSignature | clientAuth + id-kp-cmcRA |
///
/// `Device` certifies a key that identifies a token (its wire name `device` stays in
/// requests, operator policies and the CLI): the identity certificate V7 attestation
/// and V11 backup check, and the default profile of enrollment (E5).
/// `Operator` certifies an issuing station or relay: a registration authority in the
/// sense of RFC 6402 (id-kp-cmcRA) and RFC 7030, allowed to ask the CA for
/// certificates. A request without a keyUsage/extendedKeyUsage request reads as
/// `Device`; the CA never takes the usage from a request ([`require_usage`] checks a
/// certificate against a profile exactly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Usage {
    /// A token's identity: authentication and key transport/agreement.
    Device,
    /// TLS client authentication.
    Client,
    /// Document signing (non-repudiation).
    Signing,
    /// Issuing station or relay credential (registration authority).
    Operator,
}

/// id-kp-cmcRA (RFC 6402 section 2.10): the key belongs to a registration authority.
pub const ID_KP_CMC_RA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.28");

impl Usage {
    /// All usages, for help texts.
    pub const ALL: [Usage; 4] = [
        Usage::Device,
        Usage::Client,
        Usage::Signing,
        Usage::Operator,
    ];

    /// Lower-case name (`device`, `client`, `signing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Device => "device",
            Usage::Client => "client",
            Usage::Signing => "signing",
            Usage::Operator => "operator",
        }
    }

    /// The keyUsage (critical) and, for `Client`, extendedKeyUsage extensions.
    /// `rsa_key` selects keyEncipherment (RSA) or keyAgreement (EC) for `Device`.
    pub(crate) fn extensions(self, rsa_key: bool) -> Result<Vec<Extension>> {
        let mut out = vec![ext::make(&KeyUsage(self.key_usages(rsa_key)), true)?];
        if let Some(eku) = self.ext_key_usages() {
            out.push(ext::make(&ExtendedKeyUsage(eku), false)?);
        }
        Ok(out)
    }

    fn key_usages(self, rsa_key: bool) -> der::flagset::FlagSet<KeyUsages> {
        match self {
            Usage::Device if rsa_key => KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
            Usage::Device => KeyUsages::DigitalSignature | KeyUsages::KeyAgreement,
            Usage::Client | Usage::Operator => KeyUsages::DigitalSignature.into(),
            Usage::Signing => KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
        }
    }

    fn ext_key_usages(self) -> Option<Vec<ObjectIdentifier>> {
        match self {
            Usage::Client => Some(vec![ID_KP_CLIENT_AUTH]),
            Usage::Operator => Some(vec![ID_KP_CLIENT_AUTH, ID_KP_CMC_RA]),
            Usage::Device | Usage::Signing => None,
        }
    }

    /// Read the usage back from keyUsage / extendedKeyUsage; none present means `Device`.
    /// Lenient (for reports and for matching a station's own certificates); decisions
    /// use [`require_usage`].
    pub(crate) fn from_extensions(exts: &[Extension]) -> Result<Usage> {
        if let Some((_, eku)) = ext::find::<ExtendedKeyUsage>(exts)? {
            if eku.0.contains(&ID_KP_CMC_RA) {
                return Ok(Usage::Operator);
            }
            if eku.0.contains(&ID_KP_CLIENT_AUTH) {
                return Ok(Usage::Client);
            }
        }
        if let Some((_, ku)) = ext::find::<KeyUsage>(exts)? {
            if ku.0.contains(KeyUsages::NonRepudiation) {
                return Ok(Usage::Signing);
            }
        }
        Ok(Usage::Device)
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Usage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Usage> {
        Usage::ALL
            .into_iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::Malformed(format!(
                    "unknown usage {s:?} (expected device, client, signing or operator)"
                ))
            })
    }
}

/// Check that a certificate (DER) carries exactly the profile of `usage`: not a CA
/// (basicConstraints absent or CA:false), a keyUsage extension with exactly the bits
/// the profile sets (for `Device`, keyEncipherment on an RSA key or keyAgreement on an
/// EC key), and exactly the profile's extendedKeyUsage (none for `Device` and
/// `Signing`). A certificate without keyUsage is refused: its purpose is unknown.
pub fn require_usage(cert_der: &[u8], usage: Usage) -> Result<()> {
    let cert = Certificate::from_der(cert_der)?;
    let tbs = &cert.tbs_certificate;
    let exts = tbs.extensions.as_deref().unwrap_or(&[]);
    let wrong = |why: String| Error::WrongUsage(format!("not a {usage} certificate: {why}"));
    if let Some((_, bc)) = ext::find::<BasicConstraints>(exts)? {
        if bc.ca {
            return Err(wrong("it is a CA certificate".into()));
        }
    }
    let rsa_key = crate::sig::key_kind(&tbs.subject_public_key_info)? == crate::sig::KeyKind::Rsa;
    let Some((_, ku)) = ext::find::<KeyUsage>(exts)? else {
        return Err(wrong("it has no keyUsage".into()));
    };
    let want = usage.key_usages(rsa_key);
    if ku.0 != want {
        return Err(wrong(format!(
            "keyUsage is {:?}, the profile sets {want:?}",
            ku.0
        )));
    }
    let eku = ext::find::<ExtendedKeyUsage>(exts)?.map(|(_, e)| e.0);
    let mut have = eku.unwrap_or_default();
    let mut want = usage.ext_key_usages().unwrap_or_default();
    have.sort();
    want.sort();
    if have != want {
        return Err(wrong(format!(
            "extendedKeyUsage is {have:?}, the profile sets {want:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalCa;
    use p256::ecdsa::SigningKey;
    use pkcs8::EncodePublicKey;

    #[test]
    fn require_usage_matches_each_profile_exactly() {
        let ca = LocalCa::generate("usage test", 30).unwrap();
        let spki = SigningKey::random(&mut rand_core::OsRng)
            .verifying_key()
            .to_public_key_der()
            .unwrap();
        for issued in Usage::ALL {
            let cert = ca
                .issue_for_spki(spki.as_bytes(), "0000000000000001", issued)
                .unwrap();
            for wanted in Usage::ALL {
                let r = require_usage(&cert, wanted);
                assert_eq!(r.is_ok(), issued == wanted, "{issued} as {wanted}: {r:?}");
            }
        }
        // The CA's own certificate is no end-entity profile.
        for wanted in Usage::ALL {
            let e = require_usage(ca.cert_der(), wanted).unwrap_err();
            assert!(e.to_string().contains("CA certificate"), "{e}");
        }
    }
}
