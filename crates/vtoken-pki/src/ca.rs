//! A local root CA: ECDSA P-256 key and self-signed certificate in PEM files. It
//! certifies token identity keys on one machine (`vtoken ca init`, V7) and is the
//! signing core of the CA server (E7).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use der::asn1::{BitString, OctetString};
use der::pem::LineEnding;
use der::{Decode, DecodePem, Encode, EncodePem};
use p256::ecdsa::{DerSignature, SigningKey};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use signature::Signer;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use crate::sig::{self, KeyKind, SigAlg};
use crate::{ext, name, time, CsrInfo, Error, Result, Usage};

/// File name of the CA certificate (PEM) in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (PKCS#8 PEM, mode 0600) in a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Validity of a new root certificate (20 years).
pub const DEFAULT_ROOT_DAYS: u32 = 7300;
/// Validity of an end-entity certificate from [`LocalCa::issue_for_spki`] (10 years).
pub const DEFAULT_LEAF_DAYS: u32 = 3650;

/// Short name used in the brief and by callers: the CA that issues token certificates.
pub type Ca = LocalCa;

/// A root certificate authority with an ECDSA P-256 key, signing with SHA-256.
pub struct LocalCa {
    key: SigningKey,
    cert: Certificate,
    cert_der: Vec<u8>,
    key_id: Vec<u8>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("subject", &self.cert.tbs_certificate.subject.to_string())
            .finish_non_exhaustive()
    }
}

/// 16 random bytes as a positive INTEGER without a leading zero byte.
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::new(&bytes)?)
}

/// The serial number of issuance `number`: 0x01, `number` (8 bytes, big-endian), 8
/// random bytes. Serials so made order like the numbers (monotonic wherever the CA
/// draws them from one counter, across every server instance sharing it), are unique
/// when the numbers are, and keep 64 random bits (CA/Browser Forum BR 7.1).
fn numbered_serial(number: u64) -> Result<SerialNumber> {
    let mut bytes = [0u8; 17];
    bytes[0] = 1;
    bytes[1..9].copy_from_slice(&number.to_be_bytes());
    OsRng.fill_bytes(&mut bytes[9..]);
    Ok(SerialNumber::new(&bytes)?)
}

impl LocalCa {
    /// A new root CA in memory: fresh P-256 key, self-signed certificate
    /// `O=vtoken, CN=<name>` valid for `days`, basicConstraints CA:true (critical),
    /// keyUsage keyCertSign + cRLSign (critical), subject and authority key identifiers.
    pub fn generate(name: &str, days: u32) -> Result<LocalCa> {
        let key = SigningKey::random(&mut OsRng);
        let spki_der = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| Error::Key(e.to_string()))?;
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())?;
        let subject = name::ca_subject(name)?;
        let key_id = ext::key_id(&spki);
        let extensions = vec![
            ext::make(
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
                true,
            )?,
            ext::make(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), true)?,
            ext::make(
                &SubjectKeyIdentifier(OctetString::new(key_id.clone())?),
                false,
            )?,
            ext::make(&aki(&key_id)?, false)?,
        ];
        let cert = sign_tbs(
            &key,
            subject.clone(),
            subject,
            spki,
            time::validity_days(days)?,
            extensions,
            random_serial()?,
        )?;
        LocalCa::from_parts(key, cert)
    }

    fn from_parts(key: SigningKey, cert: Certificate) -> Result<LocalCa> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let key_spki = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| Error::Key(e.to_string()))?;
        if spki.to_der()? != key_spki.as_bytes() {
            return Err(Error::Key(
                "the CA key does not match the CA certificate".into(),
            ));
        }
        let key_id = ext::key_id(spki);
        let cert_der = cert.to_der()?;
        Ok(LocalCa {
            key,
            cert,
            cert_der,
            key_id,
        })
    }

    /// Create a root CA named `name` and save it in `dir` (created if missing) as
    /// [`CA_CERT_FILE`] and [`CA_KEY_FILE`] (mode 0600). Refuses to overwrite an
    /// existing CA.
    pub fn init(dir: &Path, name: &str) -> Result<LocalCa> {
        let ca = LocalCa::generate(name, DEFAULT_ROOT_DAYS)?;
        ca.save(dir)?;
        Ok(ca)
    }

    /// Write the certificate and key into `dir` (created if missing); never overwrites.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let key_pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::Key(e.to_string()))?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "a CA already exists here (not overwritten)",
                    ),
                ));
            }
        }
        write_new(&key_path, key_pem.as_bytes(), 0o600)?;
        write_new(&cert_path, self.cert_pem().as_bytes(), 0o644)?;
        Ok(())
    }

    /// Load the CA saved in `dir` by [`LocalCa::init`]; checks the key matches the
    /// certificate.
    pub fn load(dir: &Path) -> Result<LocalCa> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = fs::read_to_string(&cert_path).map_err(|e| Error::io(&cert_path, e))?;
        let key_pem = fs::read_to_string(&key_path).map_err(|e| Error::io(&key_path, e))?;
        let cert = Certificate::from_pem(cert_pem.as_bytes())?;
        let key = SigningKey::from_pkcs8_pem(&key_pem)
            .map_err(|e| Error::Key(format!("{}: {e}", key_path.display())))?;
        LocalCa::from_parts(key, cert)
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert
            .to_pem(LineEnding::LF)
            .expect("PEM encoding of a parsed certificate")
    }

    /// The CA subject as text (`O=vtoken,CN=...`).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// Issue an end-entity certificate for a verified request ([`crate::verify_csr`]),
    /// valid for `validity_days` (E7: the subject carries the token serial only).
    pub fn issue(&self, csr: &CsrInfo, validity_days: u32) -> Result<Vec<u8>> {
        self.issue_leaf(
            &csr.spki,
            &csr.serial,
            csr.usage,
            validity_days,
            random_serial()?,
        )
    }

    /// [`LocalCa::issue`] with the serial number of issuance `number` (the CA
    /// server's counter): `01 ‖ number ‖ 8 random bytes`, so serials grow with it.
    pub fn issue_numbered(
        &self,
        csr: &CsrInfo,
        validity_days: u32,
        number: u64,
    ) -> Result<Vec<u8>> {
        self.issue_leaf(
            &csr.spki,
            &csr.serial,
            csr.usage,
            validity_days,
            numbered_serial(number)?,
        )
    }

    /// Issue a certificate for a token's public key without a request (the local-root
    /// path: a token's identity certificate, V7), valid for [`DEFAULT_LEAF_DAYS`].
    pub fn issue_for_spki(
        &self,
        spki_der: &[u8],
        token_serial: &str,
        usage: Usage,
    ) -> Result<Vec<u8>> {
        self.issue_leaf(
            spki_der,
            token_serial,
            usage,
            DEFAULT_LEAF_DAYS,
            random_serial()?,
        )
    }

    /// The certificate: subject `CN=vtoken <serial>, serialNumber=<serial>` only, a random
    /// 128-bit serial number, basicConstraints CA:false, keyUsage (and extendedKeyUsage)
    /// from `usage`, subject and authority key identifiers.
    fn issue_leaf(
        &self,
        spki_der: &[u8],
        token_serial: &str,
        usage: Usage,
        days: u32,
        serial_number: SerialNumber,
    ) -> Result<Vec<u8>> {
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)?;
        let kind = sig::key_kind(&spki)?;
        let mut extensions = vec![ext::make(
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
            true,
        )?];
        extensions.extend(usage.extensions(kind == KeyKind::Rsa)?);
        extensions.push(ext::make(
            &SubjectKeyIdentifier(OctetString::new(ext::key_id(&spki))?),
            false,
        )?);
        extensions.push(ext::make(&aki(&self.key_id)?, false)?);
        let cert = sign_tbs(
            &self.key,
            self.cert.tbs_certificate.subject.clone(),
            name::token_subject(token_serial)?,
            spki,
            time::validity_days(days)?,
            extensions,
            serial_number,
        )?;
        Ok(cert.to_der()?)
    }
}

fn aki(key_id: &[u8]) -> Result<AuthorityKeyIdentifier> {
    Ok(AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_id.to_vec())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
}

fn sign_tbs(
    key: &SigningKey,
    issuer: Name,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    validity: Validity,
    extensions: Vec<Extension>,
    serial_number: SerialNumber,
) -> Result<Certificate> {
    let algorithm = SigAlg::EcdsaSha256.identifier();
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number,
        signature: algorithm.clone(),
        issuer,
        validity,
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let sig: DerSignature = key.sign(&tbs.to_der()?);
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(sig.as_bytes())?,
    })
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}
