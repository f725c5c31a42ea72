//! PKCS#12 (`.p12`, `.pfx`) files for `vtoken import`: the integrity MAC checked
//! with the passphrase, then the private keys and certificates taken out, with the
//! RustCrypto `pkcs12` structures and PBES2 (`pkcs5`). The modern form only —
//! PBES2 with AES and an HMAC-SHA-256 MAC, what OpenSSL 3 and current browsers
//! write; the legacy RC2/3DES form is refused with the command that re-exports it.

use cms::encrypted_data::EncryptedData;
use const_oid::db::rfc5911::{ID_DATA, ID_ENCRYPTED_DATA};
use const_oid::db::rfc5912::ID_SHA_256;
use der::asn1::{ContextSpecific, OctetString};
use der::{Decode, Encode};
use pkcs12::authenticated_safe::AuthenticatedSafe;
use pkcs12::cert_type::CertBag;
use pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use pkcs12::pfx::Pfx;
use pkcs12::safe_bag::SafeContents;
use pkcs8::pkcs5;
use zeroize::Zeroizing;

use crate::error::{bail, CliError, Result};

/// What a PKCS#12 file holds: PKCS#8 private keys (DER) and X.509 certificates.
pub struct Contents {
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub certs: Vec<Vec<u8>>,
}

fn bad(e: impl std::fmt::Display) -> CliError {
    CliError::new(format!("the PKCS#12 file does not parse: {e}"))
}

const LEGACY: &str = "this PKCS#12 file uses the legacy RC2/3DES encryption, which vtoken does \
                      not read: re-export it with `openssl pkcs12 -export -keypbe AES-256-CBC \
                      -certpbe AES-256-CBC -macalg sha256 ...`";

/// Whether `der` parses as a PKCS#12 PFX.
pub fn is_pfx(der: &[u8]) -> bool {
    Pfx::from_der(der).is_ok()
}

/// Verifies the MAC and extracts every key and certificate of the file.
pub fn open(der: &[u8], password: &str) -> Result<Contents> {
    let pfx = Pfx::from_der(der).map_err(bad)?;
    if pfx.auth_safe.content_type != ID_DATA {
        bail!("this PKCS#12 file is protected by a public key, not a passphrase: not supported");
    }
    let auth = OctetString::from_der(&pfx.auth_safe.content.to_der().map_err(bad)?).map_err(bad)?;
    // Integrity first (RFC 7292 §5.1): a wrong passphrase is told as such here,
    // before any decryption is tried.
    let mac = pfx
        .mac_data
        .as_ref()
        .ok_or_else(|| CliError::new("the PKCS#12 file has no integrity MAC: not read"))?;
    if mac.mac.algorithm.oid != ID_SHA_256 {
        bail!("{LEGACY}");
    }
    let key = Zeroizing::new(
        derive_key_utf8::<sha2::Sha256>(
            password,
            mac.mac_salt.as_bytes(),
            Pkcs12KeyType::Mac,
            mac.iterations,
            32,
        )
        .map_err(bad)?,
    );
    {
        use hmac::{Mac, SimpleHmac};
        let mut h = SimpleHmac::<sha2::Sha256>::new_from_slice(&key).map_err(bad)?;
        h.update(auth.as_bytes());
        if h.verify_slice(mac.mac.digest.as_bytes()).is_err() {
            bail!("wrong passphrase for the PKCS#12 file (its integrity check fails)");
        }
    }
    let safes = AuthenticatedSafe::from_der(auth.as_bytes()).map_err(bad)?;
    let mut out = Contents {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    for ci in safes {
        let content = ci.content.to_der().map_err(bad)?;
        let bags: Zeroizing<Vec<u8>> = if ci.content_type == ID_DATA {
            Zeroizing::new(
                OctetString::from_der(&content)
                    .map_err(bad)?
                    .as_bytes()
                    .to_vec(),
            )
        } else if ci.content_type == ID_ENCRYPTED_DATA {
            let ed = EncryptedData::from_der(&content).map_err(bad)?;
            let alg = &ed.enc_content_info.content_enc_alg;
            if alg.oid != pkcs5::pbes2::PBES2_OID {
                bail!("{LEGACY}");
            }
            let params = alg
                .parameters
                .as_ref()
                .ok_or_else(|| bad("PBES2 without parameters"))?
                .to_der()
                .map_err(bad)?;
            let params = pkcs5::pbes2::Parameters::from_der(&params).map_err(bad)?;
            let scheme = pkcs5::EncryptionScheme::from(params);
            let mut buf = Zeroizing::new(
                ed.enc_content_info
                    .encrypted_content
                    .as_ref()
                    .ok_or_else(|| bad("encrypted data without content"))?
                    .as_bytes()
                    .to_vec(),
            );
            let n = scheme
                .decrypt_in_place(password, &mut buf)
                .map_err(|_| CliError::new("cannot decrypt the PKCS#12 certificates"))?
                .len();
            buf.truncate(n);
            buf
        } else {
            continue;
        };
        for bag in SafeContents::from_der(&bags).map_err(bad)? {
            match bag.bag_id {
                pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                    let cs: ContextSpecific<pkcs8::EncryptedPrivateKeyInfo> =
                        ContextSpecific::from_der(&bag.bag_value).map_err(bad)?;
                    let doc = cs.value.decrypt(password.as_bytes()).map_err(|_| {
                        CliError::new(format!("cannot decrypt the PKCS#12 private key ({LEGACY})"))
                    })?;
                    out.keys.push(Zeroizing::new(doc.as_bytes().to_vec()));
                }
                pkcs12::PKCS_12_KEY_BAG_OID => {
                    let cs: ContextSpecific<der::Any> =
                        ContextSpecific::from_der(&bag.bag_value).map_err(bad)?;
                    out.keys
                        .push(Zeroizing::new(cs.value.to_der().map_err(bad)?));
                }
                pkcs12::PKCS_12_CERT_BAG_OID => {
                    let cs: ContextSpecific<CertBag> =
                        ContextSpecific::from_der(&bag.bag_value).map_err(bad)?;
                    if cs.value.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                        out.certs.push(cs.value.cert_value.as_bytes().to_vec());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}
