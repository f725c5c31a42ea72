//! CMS signatures (SPEC V7: a token signs with its device key; V11: backup bundles):
//! [`sign`] and [`verify_signed`] (`SignedData`, RSA PKCS#1 v1.5, the signer
//! certificate bound by `SigningCertificateV2`), and [`seal_signed`] /
//! [`open_signed`] (a `SignedData` by the source token over an `AuthEnvelopedData`
//! to the target).

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence};
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::envelope::{open, seal};
use super::{
    any_of, content_info_der, der_err, envelope, hash_of, issuer_and_serial, parse_cert,
    parse_content_info, rsa_public_key, subject_key_id, KeyTransport,
};
use crate::error::{Error, Result};
use crate::mechanism::HashAlg;

/// `ESSCertIDv2` (RFC 5035 §4); the hash algorithm defaults to SHA-256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// `SigningCertificateV2` (RFC 5035 §3): binds the signer certificate into the
/// signed attributes, so it cannot be swapped for another with the same key.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// `id-aa-signingCertificateV2`.
const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");

fn sha256_identifier() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: rfc5912::ID_SHA_256,
        parameters: None,
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values
        .insert(value)
        .map_err(|e| Error::General(format!("attribute value: {e}")))?;
    Ok(Attribute { oid, values })
}

fn sign_typed(
    content: &[u8],
    content_type: ObjectIdentifier,
    signer_cert_der: &[u8],
    sign_cb: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let cert = parse_cert(signer_cert_der, "signer")?;
    let key = rsa_public_key(&cert, "signer")?;
    let digest = Sha256::digest(content);

    let attrs: Attributes = SetOfVec::try_from(vec![
        attribute(
            rfc5911::ID_CONTENT_TYPE,
            any_of("content type", &content_type)?,
        )?,
        attribute(
            ID_AA_SIGNING_CERTIFICATE_V2,
            any_of(
                "signing certificate",
                &SigningCertificateV2 {
                    certs: vec![EssCertIdV2 {
                        hash_algorithm: None,
                        cert_hash: OctetString::new(Sha256::digest(signer_cert_der).to_vec())
                            .map_err(der_err("certificate hash"))?,
                        issuer_serial: None,
                    }],
                    policies: None,
                },
            )?,
        )?,
        attribute(
            rfc5911::ID_MESSAGE_DIGEST,
            any_of(
                "message digest",
                &OctetString::new(digest.to_vec()).map_err(der_err("digest"))?,
            )?,
        )?,
    ])
    .map_err(|e| Error::General(format!("signed attributes: {e}")))?;
    let to_sign = attrs
        .to_der()
        .map_err(|e| Error::General(format!("signed attributes: {e}")))?;
    let signature = sign_cb(&to_sign)?;
    // A wrong key or padding on the token side shows here, not at the far end.
    key.verify(
        Pkcs1v15Sign::new::<Sha256>(),
        &Sha256::digest(&to_sign),
        &signature,
    )
    .map_err(|_| {
        Error::General(
            "the signature callback's signature does not verify with the signer certificate".into(),
        )
    })?;

    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial(&cert)),
        digest_alg: sha256_identifier(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(der_err("signature"))?,
        unsigned_attrs: None,
    };
    let mut digest_algs = SetOfVec::new();
    digest_algs
        .insert(sha256_identifier())
        .map_err(|e| Error::General(format!("digest algorithms: {e}")))?;
    let mut certs = SetOfVec::new();
    certs
        .insert(CertificateChoices::Certificate(cert))
        .map_err(|e| Error::General(format!("certificates: {e}")))?;
    let mut signers = SetOfVec::new();
    signers
        .insert(signer_info)
        .map_err(|e| Error::General(format!("signer infos: {e}")))?;
    let sd = SignedData {
        // RFC 5652 §5.1: v3 when the content is not id-data.
        version: if content_type == rfc5911::ID_DATA {
            CmsVersion::V1
        } else {
            CmsVersion::V3
        },
        digest_algorithms: digest_algs,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: content_type,
            econtent: Some(any_of(
                "content",
                &OctetString::new(content).map_err(der_err("content"))?,
            )?),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signers),
    };
    content_info_der(rfc5911::ID_SIGNED_DATA, &sd)
}

/// Signs `content` as a CMS `SignedData` (`ContentInfo`, DER): encapsulated `id-data`
/// content, SHA-256, signed attributes (content type and message digest), RSA
/// PKCS#1 v1.5 signature, the signer certificate included and named by issuer and
/// serial number.
///
/// `sign_cb` is the token's private-key operation: it gets the DER of the signed
/// attributes and returns their RSA PKCS#1 v1.5 SHA-256 signature
/// (`CKM_SHA256_RSA_PKCS`). The signature is checked against `signer_cert_der`
/// before it is used.
pub fn sign(
    content: &[u8],
    signer_cert_der: &[u8],
    sign_cb: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    sign_typed(content, rfc5911::ID_DATA, signer_cert_der, sign_cb)
}

/// The parts of a verified `SignedData`.
struct Verified {
    content_type: ObjectIdentifier,
    content: Vec<u8>,
    signer_cert_der: Vec<u8>,
}

fn verify_inner(der_bytes: &[u8]) -> Result<Verified> {
    let ci = parse_content_info(der_bytes)?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(envelope(format!(
            "CMS content type {} is not SignedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci.content.decode_as().map_err(der_err("SignedData"))?;
    let content_type = sd.encap_content_info.econtent_type;
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| {
            envelope("SignedData without encapsulated content (detached) is not supported")
        })?
        .decode_as::<OctetString>()
        .map_err(der_err("SignedData content"))?
        .into_bytes();
    let signer = match sd.signer_infos.0.as_slice() {
        [one] => one,
        [] => return Err(envelope("SignedData has no signer")),
        _ => {
            return Err(envelope(
                "SignedData has several signers; exactly one is supported",
            ))
        }
    };

    // The signer certificate, among those included.
    let cert = sd
        .certificates
        .as_ref()
        .into_iter()
        .flat_map(|c| c.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
        .find(|c| match &signer.sid {
            SignerIdentifier::IssuerAndSerialNumber(i) => *i == issuer_and_serial(c),
            SignerIdentifier::SubjectKeyIdentifier(s) => subject_key_id(c).as_ref() == Some(s),
        })
        .ok_or_else(|| envelope("the signer certificate is not included in the SignedData"))?;
    let key = rsa_public_key(cert, "signer").map_err(|e| envelope(e.to_string()))?;

    let hash = hash_of(&signer.digest_alg.oid)
        .filter(|h| matches!(h, HashAlg::Sha256 | HashAlg::Sha384 | HashAlg::Sha512))
        .ok_or_else(|| {
            envelope(format!(
                "digest algorithm {} is not supported (SHA-256/384/512)",
                signer.digest_alg.oid
            ))
        })?;
    let sig_alg = &signer.signature_algorithm.oid;
    let sig_hash_ok = *sig_alg == rfc5912::RSA_ENCRYPTION
        || (*sig_alg == rfc5912::SHA_256_WITH_RSA_ENCRYPTION && hash == HashAlg::Sha256)
        || (*sig_alg == rfc5912::SHA_384_WITH_RSA_ENCRYPTION && hash == HashAlg::Sha384)
        || (*sig_alg == rfc5912::SHA_512_WITH_RSA_ENCRYPTION && hash == HashAlg::Sha512);
    if !sig_hash_ok {
        return Err(envelope(format!(
            "signature algorithm {sig_alg} is not supported with this digest (RSA PKCS#1 v1.5 only)"
        )));
    }

    let attrs_der;
    let signed: &[u8] = match &signer.signed_attrs {
        // RFC 5652 §5.3: without signed attributes nothing binds the content type.
        None if content_type != rfc5911::ID_DATA => {
            return Err(envelope(
                "SignedData over non-data content without signed attributes",
            ))
        }
        None => &content,
        Some(attrs) => {
            let single = |oid: ObjectIdentifier, name: &str| -> Result<Any> {
                let mut found = attrs.iter().filter(|a| a.oid == oid);
                match (found.next(), found.next()) {
                    (Some(a), None) => match a.values.as_slice() {
                        [v] => Ok(v.clone()),
                        _ => Err(envelope(format!(
                            "the {name} attribute must have one value"
                        ))),
                    },
                    (None, _) => Err(envelope(format!("signed attributes lack the {name}"))),
                    _ => Err(envelope(format!(
                        "signed attributes hold several {name} attributes"
                    ))),
                }
            };
            let ct: ObjectIdentifier = single(rfc5911::ID_CONTENT_TYPE, "content type")?
                .decode_as()
                .map_err(der_err("content-type attribute"))?;
            if ct != content_type {
                return Err(Error::SignatureInvalid);
            }
            let md: OctetString = single(rfc5911::ID_MESSAGE_DIGEST, "message digest")?
                .decode_as()
                .map_err(der_err("message-digest attribute"))?;
            if md.as_bytes() != digest_with(hash, &content).as_slice() {
                return Err(Error::SignatureInvalid);
            }
            // RFC 5035: when the signer names its certificate, it must be this one.
            let mut ess = attrs
                .iter()
                .filter(|a| a.oid == ID_AA_SIGNING_CERTIFICATE_V2);
            if let Some(a) = ess.next() {
                if ess.next().is_some() {
                    return Err(envelope("several signing-certificate attributes"));
                }
                check_signing_certificate(a, cert)?;
            }
            // RFC 5652 §5.4: the signature covers the DER of the attributes as a
            // SET OF, not with the [0] tag they carry in SignerInfo.
            attrs_der = attrs.to_der().map_err(der_err("signed attributes"))?;
            &attrs_der
        }
    };
    let scheme = match hash {
        HashAlg::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
        HashAlg::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        _ => Pkcs1v15Sign::new::<Sha256>(),
    };
    key.verify(
        scheme,
        &digest_with(hash, signed),
        signer.signature.as_bytes(),
    )
    .map_err(|_| Error::SignatureInvalid)?;
    let signer_cert_der = cert.to_der().map_err(der_err("signer certificate"))?;
    Ok(Verified {
        content_type,
        content,
        signer_cert_der,
    })
}

fn check_signing_certificate(attr: &Attribute, cert: &Certificate) -> Result<()> {
    let [value] = attr.values.as_slice() else {
        return Err(envelope(
            "the signing-certificate attribute must have one value",
        ));
    };
    let sc: SigningCertificateV2 = value
        .decode_as()
        .map_err(der_err("signing-certificate attribute"))?;
    let first = sc
        .certs
        .first()
        .ok_or_else(|| envelope("empty signing-certificate attribute"))?;
    let hash = match &first.hash_algorithm {
        None => HashAlg::Sha256,
        Some(a) => hash_of(&a.oid)
            .filter(|h| matches!(h, HashAlg::Sha256 | HashAlg::Sha384 | HashAlg::Sha512))
            .ok_or_else(|| {
                envelope(format!(
                    "signing-certificate hash {} is not supported",
                    a.oid
                ))
            })?,
    };
    let cert_der = cert.to_der().map_err(der_err("signer certificate"))?;
    if digest_with(hash, &cert_der) != first.cert_hash.as_bytes() {
        return Err(Error::SignatureInvalid);
    }
    Ok(())
}

fn digest_with(hash: HashAlg, data: &[u8]) -> Vec<u8> {
    match hash {
        HashAlg::Sha384 => Sha384::digest(data).to_vec(),
        HashAlg::Sha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// Verifies a CMS `SignedData` (`ContentInfo`, DER) with exactly one signer whose
/// certificate is included: the message digest (SHA-256/384/512), the content-type
/// attribute and the RSA PKCS#1 v1.5 signature with that certificate's public key.
/// Returns the encapsulated content and the signer certificate (DER); whether that
/// certificate is to be trusted (chain to a root, validity) is the caller's check.
pub fn verify_signed(der_bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let v = verify_inner(der_bytes)?;
    Ok((v.content, v.signer_cert_der))
}

/// A backup bundle (V11): `plaintext` sealed to `target_cert_der` with [`seal`], and
/// that `AuthEnvelopedData` signed by the source with [`sign`]'s format (its
/// encapsulated content type is `id-ct-authEnvelopedData`, so a bundle signature
/// cannot pass for a signature over plain data).
pub fn seal_signed(
    target_cert_der: &[u8],
    signer_cert_der: &[u8],
    plaintext: &[u8],
    sign_cb: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let sealed = seal(target_cert_der, plaintext)?;
    let ci = ContentInfo::from_der(&sealed).map_err(der_err("sealed envelope"))?;
    let aed_der = ci.content.to_der().map_err(der_err("sealed envelope"))?;
    sign_typed(
        &aed_der,
        rfc5911::ID_CT_AUTH_ENVELOPED_DATA,
        signer_cert_der,
        sign_cb,
    )
}

/// Opens a backup bundle made by [`seal_signed`]: verifies the signature, hands the
/// signer certificate (DER) to `check_signer` — which must check it chains to the
/// root and is the expected source — and only then opens the envelope with
/// `rsa_oaep_decrypt` (see [`open`]).
pub fn open_signed(
    bundle_der: &[u8],
    check_signer: impl FnOnce(&[u8]) -> Result<()>,
    rsa_oaep_decrypt: impl FnOnce(&KeyTransport, &[u8]) -> Result<Zeroizing<Vec<u8>>>,
    my_cert_der: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>> {
    let v = verify_inner(bundle_der)?;
    if v.content_type != rfc5911::ID_CT_AUTH_ENVELOPED_DATA {
        return Err(envelope(format!(
            "signed content type {} is not an AuthEnvelopedData bundle",
            v.content_type
        )));
    }
    check_signer(&v.signer_cert_der)?;
    let envelope_der = content_info_der(
        rfc5911::ID_CT_AUTH_ENVELOPED_DATA,
        &Any::from_der(&v.content).map_err(der_err("bundle envelope"))?,
    )?;
    open(&envelope_der, rsa_oaep_decrypt, my_cert_der)
}
