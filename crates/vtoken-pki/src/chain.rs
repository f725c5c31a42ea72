//! Certificate chain verification against a trusted root (V7, E9).

use std::time::SystemTime;

use der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::Certificate;

use crate::csr::signed_part;
use crate::{ext, name, sig, Error, Result, Usage};

/// What a verified leaf certificate certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCert {
    /// The token serial (subject serialNumber).
    pub token_serial: String,
    /// The certified public key, DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// Usage read from keyUsage / extendedKeyUsage.
    pub usage: Usage,
    /// Certificate serial number, upper-case hex.
    pub cert_serial: String,
    /// End of validity.
    pub not_after: SystemTime,
}

struct Parsed<'a> {
    der: &'a [u8],
    cert: Certificate,
}

fn parse(der: &[u8]) -> Result<Parsed<'_>> {
    Ok(Parsed {
        der,
        cert: Certificate::from_der(der)?,
    })
}

fn check_validity(c: &Certificate, now: SystemTime, what: &str) -> Result<()> {
    let v = &c.tbs_certificate.validity;
    if now < v.not_before.to_system_time() {
        return Err(Error::Chain(format!("{what} is not yet valid")));
    }
    if now > v.not_after.to_system_time() {
        return Err(Error::Chain(format!("{what} has expired")));
    }
    Ok(())
}

/// May `c` issue certificates? basicConstraints CA:true and, when keyUsage is present,
/// keyCertSign. `below` is how many CA certificates lie between it and the leaf.
fn check_issuer(c: &Certificate, below: usize, what: &str) -> Result<()> {
    let exts = c.tbs_certificate.extensions.as_deref().unwrap_or(&[]);
    let bc = ext::find::<BasicConstraints>(exts)?;
    match bc {
        Some((_, bc)) if bc.ca => {
            if let Some(max) = bc.path_len_constraint {
                if below > usize::from(max) {
                    return Err(Error::Chain(format!(
                        "{what}: path length constraint exceeded"
                    )));
                }
            }
        }
        _ => return Err(Error::Chain(format!("{what} is not a CA certificate"))),
    }
    if let Some((_, ku)) = ext::find::<KeyUsage>(exts)? {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err(Error::Chain(format!("{what} may not sign certificates")));
        }
    }
    Ok(())
}

/// Verify `leaf_der` through `intermediates` (leaf's issuer first) up to the trusted
/// `root_der` at time `now`: each signature with the issuer's key (ECDSA P-256/P-384
/// with SHA-256/384, RSA PKCS#1 v1.5 with SHA-256/384/512), each validity period,
/// issuer/subject name chaining, CA flags and keyCertSign on issuers, path lengths.
/// The root is trusted as given (its own validity and CA flag are still checked).
/// The leaf must carry a token serial. Used for identity certificates (V7) and by the
/// issuing station before it writes a certificate into a token (E9).
pub fn verify_chain(
    leaf_der: &[u8],
    intermediates: &[Vec<u8>],
    root_der: &[u8],
    now: SystemTime,
) -> Result<VerifiedCert> {
    let mut chain = vec![parse(leaf_der)?];
    for der in intermediates {
        chain.push(parse(der)?);
    }
    chain.push(parse(root_der)?);
    let last = chain.len() - 1;
    for (i, link) in chain.iter().enumerate() {
        let what = match i {
            0 => "the certificate".to_string(),
            i if i == last => "the root".to_string(),
            i => format!("intermediate {i}"),
        };
        check_validity(&link.cert, now, &what)?;
        if i == 0 {
            continue;
        }
        check_issuer(&link.cert, i - 1, &what)?;
        let child = &chain[i - 1];
        if child.cert.tbs_certificate.issuer.to_der()?
            != link.cert.tbs_certificate.subject.to_der()?
        {
            return Err(Error::Chain(format!(
                "issuer of certificate {} ({}) is not {what} ({})",
                i - 1,
                child.cert.tbs_certificate.issuer,
                link.cert.tbs_certificate.subject
            )));
        }
        if child.cert.signature_algorithm != child.cert.tbs_certificate.signature {
            return Err(Error::Chain(format!(
                "certificate {}: signature algorithm mismatch",
                i - 1
            )));
        }
        sig::verify(
            &link.cert.tbs_certificate.subject_public_key_info,
            &child.cert.signature_algorithm,
            signed_part(child.der)?,
            &child.cert.signature,
        )
        .map_err(|e| Error::Chain(format!("certificate {} not signed by {what}: {e}", i - 1)))?;
    }
    let leaf = &chain[0].cert.tbs_certificate;
    let exts = leaf.extensions.as_deref().unwrap_or(&[]);
    Ok(VerifiedCert {
        token_serial: name::serial_of(&leaf.subject)?,
        spki: leaf.subject_public_key_info.to_der()?,
        usage: Usage::from_extensions(exts)?,
        cert_serial: hex::encode_upper(leaf.serial_number.as_bytes()),
        not_after: leaf.validity.not_after.to_system_time(),
    })
}

/// The token serial in a certificate's subject (no verification).
pub fn cert_token_serial(cert_der: &[u8]) -> Result<String> {
    name::serial_of(&Certificate::from_der(cert_der)?.tbs_certificate.subject)
}

/// The public key (DER SubjectPublicKeyInfo) a certificate carries (no verification).
pub fn cert_spki(cert_der: &[u8]) -> Result<Vec<u8>> {
    Ok(Certificate::from_der(cert_der)?
        .tbs_certificate
        .subject_public_key_info
        .to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalCa;
    use p256::ecdsa::SigningKey;
    use pkcs8::EncodePublicKey;
    use std::time::Duration;

    fn spki() -> Vec<u8> {
        SigningKey::random(&mut rand_core::OsRng)
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn issued_cert_verifies_and_carries_serial() {
        let ca = LocalCa::generate("test root", 30).unwrap();
        let key = spki();
        let cert = ca
            .issue_for_spki(&key, "00000000CAFEF00D", Usage::Device)
            .unwrap();
        let v = verify_chain(&cert, &[], ca.cert_der(), SystemTime::now()).unwrap();
        assert_eq!(v.token_serial, "00000000CAFEF00D");
        assert_eq!(v.spki, key);
        assert_eq!(v.usage, Usage::Device);
        assert_eq!(v.cert_serial.len(), 32);
        assert_eq!(cert_token_serial(&cert).unwrap(), "00000000CAFEF00D");
        assert_eq!(cert_spki(&cert).unwrap(), key);
        // Two certificates never share a serial number.
        let again = ca
            .issue_for_spki(&key, "00000000CAFEF00D", Usage::Client)
            .unwrap();
        let w = verify_chain(&again, &[], ca.cert_der(), SystemTime::now()).unwrap();
        assert_ne!(v.cert_serial, w.cert_serial);
        assert_eq!(w.usage, Usage::Client);
    }

    #[test]
    fn numbered_serials_grow_with_the_number_and_stay_random() {
        let ca = LocalCa::generate("test root", 30).unwrap();
        let csr = crate::CsrInfo {
            serial: "00000000CAFEF00D".into(),
            spki: spki(),
            usage: Usage::Device,
        };
        let serial = |n: u64| {
            let der = ca.issue_numbered(&csr, 30, n).unwrap();
            verify_chain(&der, &[], ca.cert_der(), SystemTime::now())
                .unwrap()
                .cert_serial
        };
        let (a, b, c) = (serial(9), serial(10), serial(0x1_0000_0000));
        assert!(a.starts_with("010000000000000009") && a.len() == 34, "{a}");
        assert!(b.starts_with("01000000000000000A"), "{b}");
        // Upper-case hex of equal length: text order is number order.
        assert!(a < b && b < c, "{a} {b} {c}");
        // The same number twice still differs (the 64 random bits).
        assert_ne!(serial(9), a);
    }

    #[test]
    fn forged_wrong_root_and_expired_are_rejected() {
        let ca = LocalCa::generate("test root", 30).unwrap();
        // Same name, different key: its certificates look alike but are forged.
        let impostor = LocalCa::generate("test root", 30).unwrap();
        let other = LocalCa::generate("other root", 30).unwrap();
        let key = spki();
        let good = ca
            .issue_for_spki(&key, "0000000000000001", Usage::Device)
            .unwrap();
        let forged = impostor
            .issue_for_spki(&key, "0000000000000001", Usage::Device)
            .unwrap();
        let now = SystemTime::now();
        let e = verify_chain(&forged, &[], ca.cert_der(), now).unwrap_err();
        assert!(e.to_string().contains("not signed"), "{e}");
        let e = verify_chain(&good, &[], other.cert_der(), now).unwrap_err();
        assert!(e.to_string().contains("issuer"), "{e}");
        let later = now + Duration::from_secs(3651 * 86_400);
        let e = verify_chain(&good, &[], ca.cert_der(), later).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let earlier = now - Duration::from_secs(3600);
        let e = verify_chain(&good, &[], ca.cert_der(), earlier).unwrap_err();
        assert!(e.to_string().contains("not yet valid"), "{e}");
        // A leaf is not a CA: it cannot serve as an intermediate.
        let e = verify_chain(&good, std::slice::from_ref(&good), ca.cert_der(), now).unwrap_err();
        assert!(e.to_string().contains("not a CA"), "{e}");
    }

    #[test]
    fn ca_saves_and_loads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::init(dir.path(), "saved root").unwrap();
        let mode = std::fs::metadata(dir.path().join(crate::CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = LocalCa::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
        assert!(loaded.subject().contains("saved root"));
        assert!(LocalCa::init(dir.path(), "again").is_err());
        let cert = loaded
            .issue_for_spki(&spki(), "0000000000000002", Usage::Signing)
            .unwrap();
        let v = verify_chain(&cert, &[], ca.cert_der(), SystemTime::now()).unwrap();
        assert_eq!(v.usage, Usage::Signing);
    }

    #[test]
    fn pkcs7_round_trip() {
        let ca = LocalCa::generate("p7", 30).unwrap();
        let leaf = ca
            .issue_for_spki(&spki(), "0000000000000003", Usage::Device)
            .unwrap();
        let p7 = crate::pkcs7::certs_only(&[leaf.clone(), ca.cert_der().to_vec()]).unwrap();
        let back = crate::pkcs7::parse_certs_only(&p7).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.contains(&leaf));
        let text = crate::pkcs7::base64_lines(&p7);
        assert!(text.lines().all(|l| l.len() <= 64));
        assert_eq!(crate::pkcs7::base64_decode(text.as_bytes()).unwrap(), p7);
        let pem = crate::cert_der_to_pem(&leaf) + &ca.cert_pem();
        assert_eq!(crate::certs_from_pem(&pem).unwrap().len(), 2);
    }
}
