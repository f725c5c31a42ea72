//! Sealed transfer (SPEC V8, V11): data sealed to a token's device certificate so
//! that only that token opens it, and CMS signatures by a token's device key.
//!
//! Everything here speaks standard CMS (RFC 5652), so OpenSSL and other CMS tools
//! interoperate with a token:
//!
//! - [`seal`] writes an `AuthEnvelopedData` (RFC 5083): a random AES-256-GCM key
//!   (RFC 5084) encrypts the data, and RSAES-OAEP with SHA-256 and MGF1-SHA-256
//!   (RFC 8017, identified as in RFC 4055) encrypts that key to the recipient
//!   certificate, named by issuer and serial number. `openssl cms -decrypt` (OpenSSL
//!   3.0 or later) opens it.
//! - [`seal_direct`] is plain RSAES-OAEP-SHA256 for a few bytes (at most 190 for an
//!   RSA-2048 key), no CMS around it.
//! - [`open`] opens `EnvelopedData` (AES-128/192/256-CBC) and `AuthEnvelopedData`
//!   (AES-128/192/256-GCM), with RSAES-OAEP (any SHA-1/SHA-2 hash, any label) or
//!   RSAES-PKCS1-v1_5 key transport — what `openssl cms -encrypt` writes with or
//!   without `-keyopt rsa_padding_mode:oaep`. The RSA private-key operation is a
//!   callback, so the token does it inside and decides which paddings it accepts
//!   ([`KeyTransport::Pkcs1v15`] is announced as such so the token can refuse it).
//! - [`sign`] writes a `SignedData` (RSA PKCS#1 v1.5 with SHA-256, signed attributes,
//!   signer certificate included) and [`verify_signed`] checks one.
//! - [`seal_signed`] / [`open_signed`] make and open a backup bundle (V11):
//!   `SignedData` by the source token over an `AuthEnvelopedData` to the target.
//!
//! [`open`] and [`verify_signed`] read DER or PEM (`-outform DER` or `-outform PEM`);
//! BER with indefinite lengths (what `-stream` writes) is refused with a hint to
//! re-encode (`openssl cms -cmsout -outform DER`); S/MIME is not read.
//! Every malformed or tampered input is an [`Error::Envelope`] (or
//! [`Error::SignatureInvalid`] for a signature), never a panic. Content keys and
//! plaintexts live in [`Zeroizing`] buffers.
//!
//! # With OpenSSL (checked against OpenSSL 3.0 in `vault-core/tests/sealed.rs`)
//!
//! ```text
//! # seal to a token (the token opens it with `open`): OAEP + AES-GCM, or any of
//! # -aes-{128,192,256}-{gcm,cbc}; plain `-aes256` uses PKCS#1 v1.5 key transport
//! openssl cms -encrypt -binary -in data -outform DER -out data.cms -recip token.pem \
//!     -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -aes-256-gcm
//! # open what `seal` made, where the private key is at hand
//! openssl cms -decrypt -binary -inform DER -in data.cms -inkey key.pem -recip token.pem
//! # check what `sign` made (the certificate chain: -CAfile root.pem)
//! openssl cms -verify -binary -inform DER -in signed.cms -CAfile root.pem
//! # sign for `verify_signed`
//! openssl cms -sign -binary -nodetach -in data -signer cert.pem -inkey key.pem -outform DER
//! ```

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, OriginatorInfo,
    RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use rand::RngCore;
use rand_core::OsRng;
use rsa::pkcs1::RsaOaepParams;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanism::HashAlg;

/// How the content-encryption key was encrypted to the recipient's RSA key: what
/// [`open`] tells its decryption callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyTransport {
    /// RSAES-OAEP (`id-RSAES-OAEP`, RFC 4055; absent parameters mean SHA-1,
    /// MGF1-SHA-1 and an empty label).
    Oaep {
        hash: HashAlg,
        mgf_hash: HashAlg,
        label: Vec<u8>,
    },
    /// RSAES-PKCS1-v1_5 (`rsaEncryption`): what `openssl cms -encrypt` uses unless
    /// told otherwise. A token should refuse it or decrypt with implicit rejection
    /// (a wrong padding yields a random key, so content decryption fails later).
    Pkcs1v15,
}

impl KeyTransport {
    /// The `rsa` crate's OAEP padding for these parameters (`None` for PKCS#1 v1.5).
    /// A label that is not UTF-8 cannot be expressed there and is an error.
    pub fn oaep_padding(&self) -> Result<Option<Oaep>> {
        let KeyTransport::Oaep {
            hash,
            mgf_hash,
            label,
        } = self
        else {
            return Ok(None);
        };
        let label = if label.is_empty() {
            None
        } else {
            Some(
                String::from_utf8(label.clone())
                    .map_err(|_| envelope("an OAEP label that is not UTF-8 is not supported"))?,
            )
        };
        Ok(Some(Oaep {
            digest: dyn_digest(*hash),
            mgf_digest: dyn_digest(*mgf_hash),
            label,
        }))
    }
}

fn dyn_digest(h: HashAlg) -> Box<dyn digest::DynDigest + Send + Sync> {
    match h {
        HashAlg::Sha1 => Box::new(sha1::Sha1::new()),
        HashAlg::Sha224 => Box::new(sha2::Sha224::new()),
        HashAlg::Sha256 => Box::new(Sha256::new()),
        HashAlg::Sha384 => Box::new(Sha384::new()),
        HashAlg::Sha512 => Box::new(Sha512::new()),
    }
}

/// The smallest RSA modulus [`seal`] and [`seal_direct`] encrypt to.
pub const MIN_RSA_BITS: usize = 2048;

/// `AuthEnvelopedData` (RFC 5083 §2.1); the `cms` crate 0.2 has no type for it.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct AuthEnvelopedData {
    version: CmsVersion,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    originator_info: Option<OriginatorInfo>,
    recip_infos: RecipientInfos,
    auth_encrypted_content: EncryptedContentInfo,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    auth_attrs: Option<Attributes>,
    mac: OctetString,
    #[asn1(
        context_specific = "2",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    unauth_attrs: Option<Attributes>,
}

/// `GCMParameters` (RFC 5084 §3.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct GcmParameters {
    nonce: OctetString,
    #[asn1(default = "default_icv_len")]
    icv_len: u8,
}

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

fn default_icv_len() -> u8 {
    12
}

const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

fn envelope(msg: impl Into<String>) -> Error {
    Error::Envelope(msg.into())
}

/// The one message for every failure after the key-transport step: wrong key, wrong
/// padding, changed ciphertext or tag. Saying which would help an attacker.
fn decrypt_failed() -> Error {
    envelope("decryption failed: the envelope was changed or is not sealed to this key")
}

/// Parses a `ContentInfo` from DER or PEM (`-----BEGIN CMS-----` or `PKCS7`, as
/// `openssl cms -outform PEM` writes), with a way out for BER (`-stream`).
fn parse_content_info(der_bytes: &[u8]) -> Result<ContentInfo> {
    if der_bytes.starts_with(b"-----BEGIN ") {
        let (label, der_bytes) =
            der::pem::decode_vec(der_bytes).map_err(|e| envelope(format!("PEM: {e}")))?;
        if !matches!(label, "CMS" | "PKCS7") {
            return Err(envelope(format!("PEM label {label} is not CMS or PKCS7")));
        }
        return parse_content_info(&der_bytes);
    }
    ContentInfo::from_der(der_bytes).map_err(|e| {
        if der_bytes.get(1) == Some(&0x80) {
            envelope(
                "BER with indefinite lengths is not supported: re-encode it as DER \
                 (`openssl cms -cmsout -inform DER -outform DER`)",
            )
        } else {
            envelope(format!("not a DER CMS ContentInfo: {e}"))
        }
    })
}

fn der_err(what: &str) -> impl FnOnce(der::Error) -> Error + '_ {
    move |e| envelope(format!("{what}: {e}"))
}

fn parse_cert(der_bytes: &[u8], role: &str) -> Result<Certificate> {
    Certificate::from_der(der_bytes).map_err(|e| {
        Error::ArgumentsBad(format!(
            "{role} certificate is not a DER X.509 certificate: {e}"
        ))
    })
}

fn rsa_public_key(cert: &Certificate, role: &str) -> Result<RsaPublicKey> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != rfc5912::RSA_ENCRYPTION {
        return Err(Error::ArgumentsBad(format!(
            "{role} certificate holds a {} key, not an RSA key",
            spki.algorithm.oid
        )));
    }
    let spki_der = spki
        .to_der()
        .map_err(|e| Error::ArgumentsBad(format!("{role} certificate: {e}")))?;
    RsaPublicKey::from_public_key_der(&spki_der)
        .map_err(|e| Error::ArgumentsBad(format!("{role} certificate: bad RSA public key: {e}")))
}

fn recipient_key(cert_der: &[u8]) -> Result<(Certificate, RsaPublicKey)> {
    let cert = parse_cert(cert_der, "recipient")?;
    let key = rsa_public_key(&cert, "recipient")?;
    if key.size() * 8 < MIN_RSA_BITS {
        return Err(Error::ArgumentsBad(format!(
            "recipient RSA key has {} bits; at least {MIN_RSA_BITS} are required",
            key.size() * 8
        )));
    }
    Ok((cert, key))
}

fn issuer_and_serial(cert: &Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    }
}

fn subject_key_id(cert: &Certificate) -> Option<SubjectKeyIdentifier> {
    cert.tbs_certificate
        .get::<SubjectKeyIdentifier>()
        .ok()
        .flatten()
        .map(|(_, ski)| ski)
}

fn any_of(what: &str, value: &impl Encode) -> Result<Any> {
    value
        .to_der()
        .and_then(|d| Any::from_der(&d))
        .map_err(|e| Error::General(format!("encoding {what}: {e}")))
}

fn content_info_der(content_type: ObjectIdentifier, content: &impl Encode) -> Result<Vec<u8>> {
    ContentInfo {
        content_type,
        content: any_of("CMS content", content)?,
    }
    .to_der()
    .map_err(|e| Error::General(format!("encoding CMS ContentInfo: {e}")))
}

fn oaep_sha256_identifier() -> Result<AlgorithmIdentifierOwned> {
    Ok(AlgorithmIdentifierOwned {
        oid: rfc5912::ID_RSAES_OAEP,
        parameters: Some(any_of(
            "RSAES-OAEP parameters",
            &RsaOaepParams::new::<Sha256>(),
        )?),
    })
}

/// The largest plaintext [`seal_direct`] takes for an RSA key of `modulus_bytes`
/// bytes (190 for RSA-2048): OAEP-SHA256 needs 2·32 + 2 bytes of padding.
pub fn max_direct_len(modulus_bytes: usize) -> usize {
    modulus_bytes.saturating_sub(2 * 32 + 2)
}

/// Encrypts `small_plaintext` directly to the RSA key of `recipient_cert_der` with
/// RSAES-OAEP, SHA-256, MGF1-SHA-256 and an empty label. Returns the bare RSA
/// ciphertext (as long as the modulus). At most [`max_direct_len`] bytes — 190 for
/// RSA-2048; use [`seal`] for anything longer.
pub fn seal_direct(recipient_cert_der: &[u8], small_plaintext: &[u8]) -> Result<Vec<u8>> {
    let (_, key) = recipient_key(recipient_cert_der)?;
    let max = max_direct_len(key.size());
    if small_plaintext.len() > max {
        return Err(Error::ArgumentsBad(format!(
            "seal_direct takes at most {max} bytes for a {}-bit key (got {}); use seal",
            key.size() * 8,
            small_plaintext.len()
        )));
    }
    key.encrypt(&mut OsRng, Oaep::new::<Sha256>(), small_plaintext)
        .map_err(|e| Error::General(format!("RSA-OAEP encryption: {e}")))
}

/// Seals `plaintext` to the holder of `recipient_cert_der`'s private key: CMS
/// `ContentInfo` (DER) holding an `AuthEnvelopedData` — AES-256-GCM content
/// encryption under a fresh random key, that key encrypted with RSAES-OAEP-SHA256
/// (MGF1-SHA256) to the certificate's RSA key, recipient named by issuer and serial
/// number. Opens with [`open`] or `openssl cms -decrypt -inform DER`.
pub fn seal(recipient_cert_der: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::KeyInit;

    let (cert, key) = recipient_key(recipient_cert_der)?;
    let mut cek = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(cek.as_mut());
    let mut nonce = [0u8; GCM_NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);

    let enc_key = key
        .encrypt(&mut OsRng, Oaep::new::<Sha256>(), cek.as_ref())
        .map_err(|e| Error::General(format!("RSA-OAEP encryption: {e}")))?;

    let mut buf = Zeroizing::new(plaintext.to_vec());
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(cek.as_ref())
        .map_err(|_| Error::General("AES-256-GCM key".into()))?;
    let tag = cipher
        .encrypt_in_place_detached((&nonce).into(), &[], buf.as_mut_slice())
        .map_err(|_| Error::General("AES-256-GCM encryption failed".into()))?;

    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(issuer_and_serial(&cert)),
        key_enc_alg: oaep_sha256_identifier()?,
        enc_key: OctetString::new(enc_key).map_err(der_err("encrypted key"))?,
    };
    let mut recips = SetOfVec::new();
    recips
        .insert(RecipientInfo::Ktri(ktri))
        .map_err(|e| Error::General(format!("recipient infos: {e}")))?;

    let gcm_params = GcmParameters {
        nonce: OctetString::new(nonce.to_vec()).map_err(der_err("GCM nonce"))?,
        icv_len: GCM_TAG_LEN as u8,
    };
    let aed = AuthEnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(recips),
        auth_encrypted_content: EncryptedContentInfo {
            content_type: rfc5911::ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: rfc5911::ID_AES_256_GCM,
                parameters: Some(any_of("GCM parameters", &gcm_params)?),
            },
            encrypted_content: Some(
                OctetString::new(std::mem::take(&mut *buf))
                    .map_err(der_err("encrypted content"))?,
            ),
        },
        auth_attrs: None,
        mac: OctetString::new(tag.to_vec()).map_err(der_err("GCM tag"))?,
        unauth_attrs: None,
    };
    content_info_der(rfc5911::ID_CT_AUTH_ENVELOPED_DATA, &aed)
}

/// The content-encryption algorithms [`open`] understands.
#[derive(Clone, Copy)]
enum ContentAlg {
    Cbc {
        key_len: usize,
        iv: [u8; 16],
    },
    Gcm {
        key_len: usize,
        nonce: [u8; GCM_NONCE_LEN],
    },
}

impl ContentAlg {
    fn key_len(&self) -> usize {
        match self {
            ContentAlg::Cbc { key_len, .. } | ContentAlg::Gcm { key_len, .. } => *key_len,
        }
    }

    fn parse(alg: &AlgorithmIdentifierOwned, authenticated: bool) -> Result<Self> {
        let cbc_len = match alg.oid {
            o if o == rfc5911::ID_AES_128_CBC => Some(16),
            o if o == rfc5911::ID_AES_192_CBC => Some(24),
            o if o == rfc5911::ID_AES_256_CBC => Some(32),
            _ => None,
        };
        let gcm_len = match alg.oid {
            o if o == rfc5911::ID_AES_128_GCM => Some(16),
            o if o == rfc5911::ID_AES_192_GCM => Some(24),
            o if o == rfc5911::ID_AES_256_GCM => Some(32),
            _ => None,
        };
        let params = alg.parameters.as_ref();
        match (cbc_len, gcm_len, authenticated) {
            (Some(key_len), _, false) => {
                let iv: OctetString = params
                    .ok_or_else(|| envelope("AES-CBC without an IV"))?
                    .decode_as()
                    .map_err(der_err("AES-CBC IV"))?;
                let iv = iv
                    .as_bytes()
                    .try_into()
                    .map_err(|_| envelope("AES-CBC IV is not 16 bytes"))?;
                Ok(ContentAlg::Cbc { key_len, iv })
            }
            (_, Some(key_len), true) => {
                let p: GcmParameters = params
                    .ok_or_else(|| envelope("AES-GCM without parameters"))?
                    .decode_as()
                    .map_err(der_err("AES-GCM parameters"))?;
                let nonce = p.nonce.as_bytes().try_into().map_err(|_| {
                    envelope(format!(
                        "AES-GCM nonce of {} bytes: only 12 is supported",
                        p.nonce.as_bytes().len()
                    ))
                })?;
                if usize::from(p.icv_len) != GCM_TAG_LEN {
                    return Err(envelope(format!(
                        "AES-GCM tag of {} bytes: only 16 is supported",
                        p.icv_len
                    )));
                }
                Ok(ContentAlg::Gcm { key_len, nonce })
            }
            (Some(_), _, true) => Err(envelope(
                "AuthEnvelopedData needs an authenticated cipher (AES-GCM), not AES-CBC",
            )),
            (_, Some(_), false) => Err(envelope(
                "AES-GCM in EnvelopedData is not standard; use AuthEnvelopedData",
            )),
            _ => Err(envelope(format!(
                "content encryption algorithm {} is not supported (AES-CBC or AES-GCM only)",
                alg.oid
            ))),
        }
    }
}

fn hash_of(oid: &ObjectIdentifier) -> Option<HashAlg> {
    Some(match *oid {
        o if o == rfc5912::ID_SHA_1 => HashAlg::Sha1,
        o if o == rfc5912::ID_SHA_224 => HashAlg::Sha224,
        o if o == rfc5912::ID_SHA_256 => HashAlg::Sha256,
        o if o == rfc5912::ID_SHA_384 => HashAlg::Sha384,
        o if o == rfc5912::ID_SHA_512 => HashAlg::Sha512,
        _ => return None,
    })
}

fn parse_key_transport(alg: &AlgorithmIdentifierOwned) -> Result<KeyTransport> {
    if alg.oid == rfc5912::RSA_ENCRYPTION {
        match &alg.parameters {
            None => {}
            Some(p) if p.tag() == Tag::Null && p.value().is_empty() => {}
            Some(_) => return Err(envelope("rsaEncryption with parameters other than NULL")),
        }
        return Ok(KeyTransport::Pkcs1v15);
    }
    if alg.oid != rfc5912::ID_RSAES_OAEP {
        return Err(envelope(format!(
            "key transport algorithm {} is not supported (RSAES-OAEP or rsaEncryption only)",
            alg.oid
        )));
    }
    let Some(params) = &alg.parameters else {
        return Ok(KeyTransport::Oaep {
            hash: HashAlg::Sha1,
            mgf_hash: HashAlg::Sha1,
            label: Vec::new(),
        });
    };
    let params_der = params.to_der().map_err(der_err("RSAES-OAEP parameters"))?;
    let p = RsaOaepParams::from_der(&params_der).map_err(der_err("RSAES-OAEP parameters"))?;
    let hash = hash_of(&p.hash.oid)
        .ok_or_else(|| envelope(format!("RSAES-OAEP hash {} is not supported", p.hash.oid)))?;
    if p.mask_gen.oid != rfc5912::ID_MGF_1 {
        return Err(envelope(format!(
            "RSAES-OAEP mask generation {} is not supported (MGF1 only)",
            p.mask_gen.oid
        )));
    }
    let mgf_hash = p
        .mask_gen
        .parameters
        .as_ref()
        .and_then(|a| hash_of(&a.oid))
        .ok_or_else(|| envelope("RSAES-OAEP MGF1 hash missing or not supported"))?;
    if p.p_source.oid != rfc5912::ID_P_SPECIFIED {
        return Err(envelope("RSAES-OAEP label source is not pSpecified"));
    }
    let label = match p.p_source.parameters {
        None => Vec::new(),
        Some(any) => any
            .decode_as::<OctetString>()
            .map_err(der_err("RSAES-OAEP label"))?
            .into_bytes(),
    };
    Ok(KeyTransport::Oaep {
        hash,
        mgf_hash,
        label,
    })
}

/// Picks the key-transport recipient meant for `my_cert` (or the only one).
fn select_recipient<'a>(
    infos: &'a RecipientInfos,
    my_cert_der: Option<&[u8]>,
) -> Result<&'a KeyTransRecipientInfo> {
    let ktris: Vec<&KeyTransRecipientInfo> = infos
        .0
        .iter()
        .filter_map(|ri| match ri {
            RecipientInfo::Ktri(k) => Some(k),
            _ => None,
        })
        .collect();
    if ktris.is_empty() {
        return Err(envelope(
            "the envelope has no key-transport (RSA) recipient; only those are supported",
        ));
    }
    let Some(cert_der) = my_cert_der else {
        return match ktris.as_slice() {
            [only] => Ok(only),
            _ => Err(envelope(
                "the envelope has several recipients: pass the recipient certificate",
            )),
        };
    };
    let cert = parse_cert(cert_der, "recipient")?;
    let ias = issuer_and_serial(&cert);
    let ski = subject_key_id(&cert);
    ktris
        .into_iter()
        .find(|k| match &k.rid {
            RecipientIdentifier::IssuerAndSerialNumber(i) => *i == ias,
            RecipientIdentifier::SubjectKeyIdentifier(s) => ski.as_ref() == Some(s),
        })
        .ok_or_else(|| envelope("the envelope is not sealed to this certificate"))
}

/// Opens a CMS `EnvelopedData` or `AuthEnvelopedData` (`ContentInfo`, DER) sealed to
/// this token.
///
/// `rsa_oaep_decrypt` is the token's private-key operation: it gets the key
/// transport (padding and its hashes) and the encrypted content-encryption key, and
/// returns the decrypted key — or an error, e.g. to refuse PKCS#1 v1.5. It is called
/// only once the envelope has parsed and its algorithms are supported.
/// `my_cert_der` names the recipient to use; with `None` the envelope must have
/// exactly one key-transport recipient.
///
/// Returns the content octets (for the usual `id-data` content: the data itself).
pub fn open(
    cms_der: &[u8],
    rsa_oaep_decrypt: impl FnOnce(&KeyTransport, &[u8]) -> Result<Zeroizing<Vec<u8>>>,
    my_cert_der: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>> {
    let ci = parse_content_info(cms_der)?;
    let (infos, eci, mac, aad) = if ci.content_type == rfc5911::ID_ENVELOPED_DATA {
        let ed: EnvelopedData = ci.content.decode_as().map_err(der_err("EnvelopedData"))?;
        (ed.recip_infos, ed.encrypted_content, None, None)
    } else if ci.content_type == rfc5911::ID_CT_AUTH_ENVELOPED_DATA {
        let aed: AuthEnvelopedData = ci
            .content
            .decode_as()
            .map_err(der_err("AuthEnvelopedData"))?;
        // RFC 5083 §2.1: the authenticated attributes are authenticated as the DER
        // encoding of a SET OF (not with the [1] tag).
        let aad = match &aed.auth_attrs {
            Some(a) => Some(a.to_der().map_err(der_err("authenticated attributes"))?),
            None => None,
        };
        (
            aed.recip_infos,
            aed.auth_encrypted_content,
            Some(aed.mac),
            aad,
        )
    } else {
        return Err(envelope(format!(
            "CMS content type {} is neither EnvelopedData nor AuthEnvelopedData",
            ci.content_type
        )));
    };

    let alg = ContentAlg::parse(&eci.content_enc_alg, mac.is_some())?;
    let ciphertext = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| {
            envelope("the envelope has no encrypted content (detached content is not supported)")
        })?
        .as_bytes();
    let tag: Option<[u8; GCM_TAG_LEN]> = match &mac {
        Some(m) => Some(m.as_bytes().try_into().map_err(|_| {
            envelope(format!(
                "AES-GCM tag of {} bytes: only 16 is supported",
                m.as_bytes().len()
            ))
        })?),
        None => None,
    };
    if let ContentAlg::Cbc { .. } = alg {
        if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
            return Err(envelope(
                "AES-CBC ciphertext is not a whole number of blocks",
            ));
        }
    }

    let ktri = select_recipient(&infos, my_cert_der)?;
    let transport = parse_key_transport(&ktri.key_enc_alg)?;
    let cek = rsa_oaep_decrypt(&transport, ktri.enc_key.as_bytes())?;
    if cek.len() != alg.key_len() {
        return Err(decrypt_failed());
    }

    let mut buf = Zeroizing::new(ciphertext.to_vec());
    match alg {
        ContentAlg::Cbc { key_len, iv } => {
            let n = match key_len {
                16 => cbc_decrypt::<aes::Aes128>(&cek, &iv, &mut buf)?,
                24 => cbc_decrypt::<aes::Aes192>(&cek, &iv, &mut buf)?,
                _ => cbc_decrypt::<aes::Aes256>(&cek, &iv, &mut buf)?,
            };
            buf.truncate(n);
        }
        ContentAlg::Gcm { key_len, nonce } => {
            let tag = tag.ok_or_else(decrypt_failed)?;
            let aad = aad.as_deref().unwrap_or(&[]);
            match key_len {
                16 => gcm_decrypt::<aes::Aes128>(&cek, &nonce, aad, &mut buf, &tag)?,
                24 => gcm_decrypt::<aes::Aes192>(&cek, &nonce, aad, &mut buf, &tag)?,
                _ => gcm_decrypt::<aes::Aes256>(&cek, &nonce, aad, &mut buf, &tag)?,
            }
        }
    }
    Ok(buf)
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8; 16], buf: &mut [u8]) -> Result<usize>
where
    C: cipher::BlockDecryptMut + cipher::BlockCipher + cipher::KeyInit,
    cbc::Decryptor<C>: cipher::KeyIvInit,
{
    use cipher::block_padding::Pkcs7;
    use cipher::{BlockDecryptMut, KeyIvInit};
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| decrypt_failed())?;
    dec.decrypt_padded_mut::<Pkcs7>(buf)
        .map(|pt| pt.len())
        .map_err(|_| decrypt_failed())
}

fn gcm_decrypt<C>(
    key: &[u8],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; GCM_TAG_LEN],
) -> Result<()>
where
    C: cipher::BlockCipher
        + cipher::BlockSizeUser<BlockSize = cipher::consts::U16>
        + cipher::BlockEncrypt
        + cipher::KeyInit,
{
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::KeyInit;
    let gcm = aes_gcm::AesGcm::<C, cipher::consts::U12>::new_from_slice(key)
        .map_err(|_| decrypt_failed())?;
    gcm.decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
        .map_err(|_| decrypt_failed())
}

// ---------------------------------------------------------------------------
// SignedData
// ---------------------------------------------------------------------------

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
