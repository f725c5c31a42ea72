//! Keys and certificates as the protocol sees them: P-256 public keys from a
//! SubjectPublicKeyInfo or an X.509 certificate.

use der::{Decode, Encode};
use p256::ecdsa::VerifyingKey;
use pkcs8::DecodePublicKey;
use x509_cert::Certificate;

use crate::Error;

/// The P-256 key of a DER SubjectPublicKeyInfo.
pub fn verifying_key_of_spki(spki: &[u8]) -> Result<VerifyingKey, Error> {
    VerifyingKey::from_public_key_der(spki)
        .map_err(|e| Error::Key(format!("not a P-256 public key: {e}")))
}

/// The SubjectPublicKeyInfo DER of a DER certificate.
pub fn spki_of_cert(cert_der: &[u8]) -> Result<Vec<u8>, Error> {
    let c = Certificate::from_der(cert_der)
        .map_err(|e| Error::Key(format!("not an X.509 certificate: {e}")))?;
    c.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| Error::Key(e.to_string()))
}

/// The P-256 key a DER certificate certifies.
pub fn verifying_key_of_cert(cert_der: &[u8]) -> Result<VerifyingKey, Error> {
    verifying_key_of_spki(&spki_of_cert(cert_der)?)
}

/// A PEM or DER certificate as DER.
pub fn cert_der_of(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    use der::DecodePem;
    if bytes.starts_with(b"-----BEGIN") {
        let c = Certificate::from_pem(bytes)
            .map_err(|e| Error::Key(format!("not a PEM certificate: {e}")))?;
        c.to_der().map_err(|e| Error::Key(e.to_string()))
    } else {
        Certificate::from_der(bytes).map_err(|e| Error::Key(format!("not a certificate: {e}")))?;
        Ok(bytes.to_vec())
    }
}
