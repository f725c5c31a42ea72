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
//! Every malformed or tampered input is an [`EnvelopeError`] (or
//! [`Error::SignatureInvalid`] for a signature), never a panic. Content keys and
//! plaintexts live in [`Zeroizing`](zeroize::Zeroizing) buffers.
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
//!
//! This file holds what both halves share: the key-transport description handed to
//! the token's RSA callback, and the DER, certificate and algorithm helpers.
//! `envelope` seals and opens (V8); `signed` signs, verifies and makes backup
//! bundles (V7, V11).

mod envelope;
mod signed;

pub use envelope::{max_direct_len, open, seal, seal_direct};
pub use signed::{open_signed, seal_signed, sign, verify_signed};

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::ContentInfo;
use const_oid::db::rfc5912;
use der::asn1::ObjectIdentifier;
use der::{Any, Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;

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

fn envelope(msg: impl Into<String>) -> Error {
    Error::envelope(msg.into())
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

/// Whether `data` is a CMS `ContentInfo` (DER or PEM): an envelope for [`open`]
/// rather than a bare ciphertext from [`seal_direct`] (SPEC V8's two delivery
/// options).
pub fn is_cms(data: &[u8]) -> bool {
    parse_content_info(data).is_ok()
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
