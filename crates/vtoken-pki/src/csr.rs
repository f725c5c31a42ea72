//! PKCS#10 certification requests signed inside a token (E5) and their checks (E6, E7).

use const_oid::AssociatedOid;
use der::asn1::{BitString, SetOfVec};
use der::{Decode, Encode, Reader, SliceReader};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use crate::sig::{self, KeyKind, SigAlg};
use crate::{name, Error, Result, Usage};

/// What a verified request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrInfo {
    /// The token serial from the subject's serialNumber attribute.
    pub serial: String,
    /// The public key (DER SubjectPublicKeyInfo) to certify.
    pub spki: Vec<u8>,
    /// The requested usage (from the extensionRequest; `Device` when absent).
    pub usage: Usage,
}

/// Build a DER PKCS#10 request for the key `spki_der` of token `token_serial`.
///
/// The subject is `CN=vtoken <serial>, serialNumber=<serial>` and nothing else (no personal
/// data); an extensionRequest asks for the keyUsage/extendedKeyUsage of `usage`.
/// `sign` receives the DER CertificationRequestInfo — the bytes to sign, not their hash —
/// and returns the signature made with the private key of `spki_der` under `alg`
/// (for ECDSA raw `r || s` or DER; see [`SigAlg`]). The signature is checked against
/// `spki_der` before the request is returned, so a wrong key or mechanism fails here.
/// This is the issuing station's request, signed inside the token (E5).
pub fn build_csr<E>(
    spki_der: &[u8],
    token_serial: &str,
    usage: Usage,
    sign: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, E>,
    alg: SigAlg,
) -> Result<Vec<u8>>
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    let public_key = SubjectPublicKeyInfoOwned::from_der(spki_der)?;
    let kind = sig::key_kind(&public_key)?;
    let expected = match kind {
        KeyKind::P256 => SigAlg::EcdsaSha256,
        KeyKind::P384 => SigAlg::EcdsaSha384,
        KeyKind::Rsa => SigAlg::RsaPkcs1Sha256,
    };
    if alg != expected {
        return Err(Error::UnsupportedAlgorithm(format!(
            "{alg:?} with a {kind:?} key (use {expected:?})"
        )));
    }
    let ext_req = ExtensionReq(usage.extensions(kind == KeyKind::Rsa)?);
    let mut attributes = SetOfVec::new();
    attributes.insert(Attribute::try_from(ext_req)?)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: name::token_subject(token_serial)?,
        public_key,
        attributes,
    };
    let tbs = info.to_der()?;
    let raw = sign(&tbs).map_err(|e| Error::Signer(e.into()))?;
    let signature = BitString::from_bytes(&alg.normalise(raw)?)?;
    let algorithm = alg.identifier();
    sig::verify(&info.public_key, &algorithm, &tbs, &signature)?;
    Ok(CertReq {
        info,
        algorithm,
        signature,
    }
    .to_der()?)
}

/// The raw DER of the first element of a SEQUENCE (the signed part of a request or
/// certificate), exactly as it was received.
pub(crate) fn signed_part(der: &[u8]) -> Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    let tbs = reader.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        // Skip the rest (algorithm, signature): the typed decoder checks them.
        while !r.is_finished() {
            r.tlv_bytes()?;
        }
        Ok(tbs)
    })?;
    reader.finish(tbs).map_err(Error::from)
}

/// Check a DER PKCS#10 request's self-signature (ECDSA P-256/P-384, RSA PKCS#1 v1.5)
/// and read the token serial, public key and usage from it: the check a verifying
/// relay (E6) and the CA (E7) make before anything else.
pub fn verify_csr(der: &[u8]) -> Result<CsrInfo> {
    let req = CertReq::from_der(der)?;
    let tbs = signed_part(der)?;
    sig::verify(&req.info.public_key, &req.algorithm, tbs, &req.signature)?;
    let serial = name::serial_of(&req.info.subject)?;
    let mut exts: Vec<Extension> = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid == ExtensionReq::OID {
            for value in attr.values.iter() {
                exts.extend(value.decode_as::<Vec<Extension>>()?);
            }
        }
    }
    Ok(CsrInfo {
        serial,
        spki: req.info.public_key.to_der()?,
        usage: Usage::from_extensions(&exts)?,
    })
}

/// The token serial a request names, without checking its signature (to match batch
/// results back to requests; never to decide anything).
pub fn csr_token_serial(der: &[u8]) -> Result<String> {
    let req = CertReq::from_der(der)?;
    name::serial_of(&req.info.subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{signature::Signer, Signature, SigningKey};
    use pkcs8::EncodePublicKey;

    fn p256_key() -> (SigningKey, Vec<u8>) {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        (key, spki)
    }

    fn p256_csr(key: &SigningKey, spki: &[u8], serial: &str, usage: Usage) -> Vec<u8> {
        build_csr(
            spki,
            serial,
            usage,
            |m| Ok::<_, Error>(Signer::<Signature>::sign(key, m).to_bytes().to_vec()),
            SigAlg::EcdsaSha256,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_p256_raw_signature() {
        let (key, spki) = p256_key();
        for usage in Usage::ALL {
            let csr = p256_csr(&key, &spki, "00112233AABBCCDD", usage);
            let info = verify_csr(&csr).unwrap();
            assert_eq!(info.serial, "00112233AABBCCDD");
            assert_eq!(info.spki, spki);
            assert_eq!(info.usage, usage);
            assert_eq!(csr_token_serial(&csr).unwrap(), "00112233AABBCCDD");
        }
    }

    #[test]
    fn der_signature_accepted() {
        let (key, spki) = p256_key();
        let csr = build_csr(
            &spki,
            "0000000000000001",
            Usage::Device,
            |m| {
                Ok::<_, Error>(
                    Signer::<p256::ecdsa::DerSignature>::sign(&key, m)
                        .as_bytes()
                        .to_vec(),
                )
            },
            SigAlg::EcdsaSha256,
        )
        .unwrap();
        assert_eq!(verify_csr(&csr).unwrap().serial, "0000000000000001");
    }

    #[test]
    fn wrong_key_or_alg_fails_at_build() {
        let (_, spki) = p256_key();
        let (other, _) = p256_key();
        let err = build_csr(
            &spki,
            "0000000000000001",
            Usage::Device,
            |m| Ok::<_, Error>(Signer::<Signature>::sign(&other, m).to_bytes().to_vec()),
            SigAlg::EcdsaSha256,
        )
        .unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "{err}");
        let err = build_csr(
            &spki,
            "0000000000000001",
            Usage::Device,
            |_| Ok::<_, Error>(vec![0; 256]),
            SigAlg::RsaPkcs1Sha256,
        )
        .unwrap_err();
        assert!(matches!(err, Error::UnsupportedAlgorithm(_)), "{err}");
    }

    #[test]
    fn signer_error_is_kept() {
        let (_, spki) = p256_key();
        let err = build_csr(
            &spki,
            "0000000000000001",
            Usage::Device,
            |_| Err(std::io::Error::other("PIN locked")),
            SigAlg::EcdsaSha256,
        )
        .unwrap_err();
        match err {
            Error::Signer(e) => assert_eq!(e.to_string(), "PIN locked"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn tampered_request_is_rejected() {
        let (key, spki) = p256_key();
        let mut csr = p256_csr(&key, &spki, "00112233AABBCCDD", Usage::Device);
        // Change one serial digit inside the subject: same length, still valid DER.
        let pos = csr
            .windows(16)
            .position(|w| w == b"00112233AABBCCDD")
            .unwrap();
        csr[pos] = b'9';
        assert!(matches!(verify_csr(&csr), Err(Error::BadSignature(_))));
    }

    #[test]
    fn bad_serials_refused() {
        let (key, spki) = p256_key();
        for bad in ["", "a\u{e9}", "x*y", &"A".repeat(65)] {
            let r = build_csr(
                &spki,
                bad,
                Usage::Device,
                |m| Ok::<_, Error>(Signer::<Signature>::sign(&key, m).to_bytes().to_vec()),
                SigAlg::EcdsaSha256,
            );
            assert!(matches!(r, Err(Error::InvalidSerial(_))), "{bad:?}");
        }
    }
}
