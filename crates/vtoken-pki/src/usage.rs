//! What a token certificate is for (E5: "the certificate usage").

use std::fmt;
use std::str::FromStr;

use const_oid::db::rfc5280::ID_KP_CLIENT_AUTH;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;

use crate::{ext, Error, Result};

/// Certificate usage requested in a PKCS#10 request and written into the certificate.
///
/// | usage | keyUsage | extendedKeyUsage |
/// |---|---|---|
/// | `Device` | digitalSignature + keyEncipherment (RSA key) or keyAgreement (EC key) | — |
/// | `Client` | digitalSignature | clientAuth |
/// | `Signing` | digitalSignature + nonRepudiation | — |
///
/// `Device` is the token's identity (device authentication, V7/V11 envelopes).
/// A request without a keyUsage/extendedKeyUsage request reads as `Device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Usage {
    /// Device identity: authentication and key transport/agreement.
    Device,
    /// TLS client authentication.
    Client,
    /// Document signing (non-repudiation).
    Signing,
}

impl Usage {
    /// All usages, for help texts.
    pub const ALL: [Usage; 3] = [Usage::Device, Usage::Client, Usage::Signing];

    /// Lower-case name (`device`, `client`, `signing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Device => "device",
            Usage::Client => "client",
            Usage::Signing => "signing",
        }
    }

    /// The keyUsage (critical) and, for `Client`, extendedKeyUsage extensions.
    /// `rsa_key` selects keyEncipherment (RSA) or keyAgreement (EC) for `Device`.
    pub(crate) fn extensions(self, rsa_key: bool) -> Result<Vec<Extension>> {
        let bits = match self {
            Usage::Device if rsa_key => KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
            Usage::Device => KeyUsages::DigitalSignature | KeyUsages::KeyAgreement,
            Usage::Client => KeyUsages::DigitalSignature.into(),
            Usage::Signing => KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
        };
        let mut out = vec![ext::make(&KeyUsage(bits), true)?];
        if self == Usage::Client {
            out.push(ext::make(
                &ExtendedKeyUsage(vec![ID_KP_CLIENT_AUTH]),
                false,
            )?);
        }
        Ok(out)
    }

    /// Read the usage back from keyUsage / extendedKeyUsage; none present means `Device`.
    pub(crate) fn from_extensions(exts: &[Extension]) -> Result<Usage> {
        if let Some((_, eku)) = ext::find::<ExtendedKeyUsage>(exts)? {
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
                    "unknown usage {s:?} (expected device, client or signing)"
                ))
            })
    }
}
