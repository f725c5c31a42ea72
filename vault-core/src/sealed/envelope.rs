//! CMS envelopes (SPEC V8: data sealed so that only one token opens it): [`seal`]
//! (`AuthEnvelopedData`, AES-256-GCM under RSAES-OAEP-SHA256), [`seal_direct`]
//! (bare RSAES-OAEP for a few bytes) and [`open`] (`EnvelopedData` and
//! `AuthEnvelopedData` as OpenSSL writes them, the RSA step a callback).

use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, OriginatorInfo,
    RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{OctetString, SetOfVec};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use rand::RngCore;
use rand_core::OsRng;
use rsa::pkcs1::RsaOaepParams;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attributes;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::{
    any_of, content_info_der, der_err, envelope, hash_of, issuer_and_serial, parse_cert,
    parse_content_info, rsa_public_key, subject_key_id, KeyTransport, MIN_RSA_BITS,
};
use crate::error::{Error, Result};
use crate::mechanism::HashAlg;

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

fn default_icv_len() -> u8 {
    12
}

const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// The one message for every failure after the key-transport step: wrong key, wrong
/// padding, changed ciphertext or tag. Saying which would help an attacker.
fn decrypt_failed() -> Error {
    envelope("decryption failed: the envelope was changed or is not sealed to this key")
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
