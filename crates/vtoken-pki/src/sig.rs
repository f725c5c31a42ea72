//! Signature algorithms: identifiers, signature formats and verification (the
//! algorithm id a token's request carries, E5, and the CA's checks, E7).

use const_oid::db::{rfc5912, rfc5912::ID_EC_PUBLIC_KEY, rfc5912::RSA_ENCRYPTION};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString};
use der::Encode;
use ecdsa::signature::hazmat::PrehashVerifier;
use pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::{Error, Result};

const SECP256R1: ObjectIdentifier = rfc5912::SECP_256_R_1;
const SECP384R1: ObjectIdentifier = rfc5912::SECP_384_R_1;

/// Signature algorithm a token uses to sign a request ([`crate::build_csr`]).
///
/// The signing callback gets the DER bytes to be signed (not a hash): it hashes and
/// signs them in one step, as PKCS#11 `CKM_ECDSA_SHA256` / `CKM_SHA256_RSA_PKCS` do.
/// ECDSA signatures may be returned raw (`r || s`, 64 bytes for P-256, 96 for P-384,
/// the PKCS#11 format) or DER-encoded (`Ecdsa-Sig-Value`); raw ones are converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SigAlg {
    /// ecdsa-with-SHA256 (P-256 key).
    EcdsaSha256,
    /// ecdsa-with-SHA384 (P-384 key).
    EcdsaSha384,
    /// sha256WithRSAEncryption (RSA PKCS#1 v1.5).
    RsaPkcs1Sha256,
}

impl SigAlg {
    /// The AlgorithmIdentifier written into a request or certificate.
    pub(crate) fn identifier(self) -> AlgorithmIdentifierOwned {
        match self {
            SigAlg::EcdsaSha256 => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
            SigAlg::EcdsaSha384 => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_384,
                parameters: None,
            },
            SigAlg::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
        }
    }

    /// The natural algorithm for a public key: ECDSA with the curve's hash, or RSA
    /// PKCS#1 v1.5 with SHA-256.
    pub fn for_spki(spki_der: &[u8]) -> Result<SigAlg> {
        use der::Decode;
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)?;
        match key_kind(&spki)? {
            KeyKind::P256 => Ok(SigAlg::EcdsaSha256),
            KeyKind::P384 => Ok(SigAlg::EcdsaSha384),
            KeyKind::Rsa => Ok(SigAlg::RsaPkcs1Sha256),
        }
    }

    /// Normalise a signature from a signer into the encoding X.509 / PKCS#10 carry
    /// (DER `Ecdsa-Sig-Value` for ECDSA, the raw block for RSA).
    pub(crate) fn normalise(self, sig: Vec<u8>) -> Result<Vec<u8>> {
        let bad = |e: ecdsa::Error| Error::BadSignature(format!("ECDSA signature: {e}"));
        match self {
            SigAlg::EcdsaSha256 if sig.len() == 64 => Ok(p256::ecdsa::Signature::from_slice(&sig)
                .map_err(bad)?
                .to_der()
                .as_bytes()
                .to_vec()),
            SigAlg::EcdsaSha384 if sig.len() == 96 => Ok(p384::ecdsa::Signature::from_slice(&sig)
                .map_err(bad)?
                .to_der()
                .as_bytes()
                .to_vec()),
            _ => Ok(sig),
        }
    }
}

/// Key types this crate verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    P256,
    P384,
    Rsa,
}

pub(crate) fn key_kind(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyKind> {
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        return Ok(KeyKind::Rsa);
    }
    if oid == ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        return match curve {
            Some(c) if c == SECP256R1 => Ok(KeyKind::P256),
            Some(c) if c == SECP384R1 => Ok(KeyKind::P384),
            other => Err(Error::UnsupportedAlgorithm(format!(
                "EC curve {}",
                other.map_or("(none)".to_string(), |c| c.to_string())
            ))),
        };
    }
    Err(Error::UnsupportedAlgorithm(format!("public key {oid}")))
}

enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(msg).to_vec(),
            Hash::Sha384 => Sha384::digest(msg).to_vec(),
            Hash::Sha512 => Sha512::digest(msg).to_vec(),
        }
    }
}

/// Verify `sig` over `msg` made by the key `spki` with algorithm `alg`.
/// Handles ecdsa-with-SHA256/384/512 (P-256, P-384) and sha256/384/512WithRSAEncryption.
pub(crate) fn verify(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: &BitString,
) -> Result<()> {
    let sig = sig
        .as_bytes()
        .ok_or_else(|| Error::BadSignature("signature has unused bits".into()))?;
    let (ec, hash) = match alg.oid {
        o if o == rfc5912::ECDSA_WITH_SHA_256 => (true, Hash::Sha256),
        o if o == rfc5912::ECDSA_WITH_SHA_384 => (true, Hash::Sha384),
        o if o == rfc5912::ECDSA_WITH_SHA_512 => (true, Hash::Sha512),
        o if o == rfc5912::SHA_256_WITH_RSA_ENCRYPTION => (false, Hash::Sha256),
        o if o == rfc5912::SHA_384_WITH_RSA_ENCRYPTION => (false, Hash::Sha384),
        o if o == rfc5912::SHA_512_WITH_RSA_ENCRYPTION => (false, Hash::Sha512),
        o => return Err(Error::UnsupportedAlgorithm(format!("signature {o}"))),
    };
    let kind = key_kind(spki)?;
    if ec != (kind != KeyKind::Rsa) {
        return Err(Error::BadSignature(format!(
            "signature algorithm {} does not match the key type",
            alg.oid
        )));
    }
    let spki_der = spki.to_der()?;
    let digest = hash.digest(msg);
    let fail = |what: &str| Error::BadSignature(what.to_string());
    match kind {
        KeyKind::P256 => {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der)
                .map_err(|e| Error::Key(format!("P-256 public key: {e}")))?;
            let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| fail("bad ECDSA DER"))?;
            key.verify_prehash(&digest, &sig)
                .map_err(|_| fail("ECDSA P-256 verification failed"))
        }
        KeyKind::P384 => {
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der)
                .map_err(|e| Error::Key(format!("P-384 public key: {e}")))?;
            let sig = p384::ecdsa::Signature::from_der(sig).map_err(|_| fail("bad ECDSA DER"))?;
            key.verify_prehash(&digest, &sig)
                .map_err(|_| fail("ECDSA P-384 verification failed"))
        }
        KeyKind::Rsa => {
            let key = rsa::RsaPublicKey::from_public_key_der(&spki_der)
                .map_err(|e| Error::Key(format!("RSA public key: {e}")))?;
            let scheme = match hash {
                Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                Hash::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
                Hash::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
            };
            key.verify(scheme, &digest, sig)
                .map_err(|_| fail("RSA PKCS#1 v1.5 verification failed"))
        }
    }
}
