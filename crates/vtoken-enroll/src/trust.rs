//! The CA certificate the station verifies issued certificates with (E9): given as a
//! file (trusted as given) or fetched from the CA (EST cacerts), optionally pinned by
//! its SHA-256 fingerprint.

use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use vtoken_pki::{client, Usage, VerifiedCert};

use crate::error::{Error, Result};

/// The CA's root certificate and the intermediates that chain to it.
pub struct Trust {
    root: Vec<u8>,
    intermediates: Vec<Vec<u8>>,
    subject: String,
    fingerprint: String,
}

/// SHA-256 of `der` as colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A fingerprint's hex digits in upper case: colons, spaces and case do not matter.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_uppercase()
}

impl Trust {
    /// From DER certificates: the self-issued one is the root (else the last one),
    /// the others are intermediates. `origin` names where they came from in errors.
    pub fn from_certs(certs: Vec<Vec<u8>>, origin: &str) -> Result<Trust> {
        use der::{Decode, Encode};
        let invalid = |reason: String| Error::CaCertificate {
            origin: origin.to_string(),
            reason,
        };
        let mut parsed = Vec::new();
        for der in certs {
            let c = x509_cert::Certificate::from_der(&der)
                .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
            let tbs = &c.tbs_certificate;
            let self_issued = tbs.subject.to_der().ok() == tbs.issuer.to_der().ok();
            parsed.push((der, tbs.subject.to_string(), self_issued));
        }
        let root_at = match parsed.iter().position(|p| p.2) {
            Some(i) => i,
            None if parsed.is_empty() => return Err(invalid("no certificate".into())),
            None => parsed.len() - 1,
        };
        let (root, subject, _) = parsed.remove(root_at);
        Ok(Trust {
            fingerprint: fingerprint(&root),
            root,
            intermediates: parsed.into_iter().map(|p| p.0).collect(),
            subject,
        })
    }

    /// From a PEM or DER file, trusted as given.
    pub fn from_file(path: &Path) -> Result<Trust> {
        let data = std::fs::read(path).map_err(|source| Error::File {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        let certs = match std::str::from_utf8(&data) {
            Ok(t) if t.contains("-----BEGIN") => {
                vtoken_pki::certs_from_pem(t).map_err(|e| Error::CaCertificate {
                    origin: origin.clone(),
                    reason: e.to_string(),
                })?
            }
            _ => vec![data],
        };
        Trust::from_certs(certs, &origin)
    }

    /// Fetched from the CA at `url`; with `want`, refused unless its SHA-256
    /// fingerprint is that one.
    pub fn fetch(url: &str, want: Option<&str>) -> Result<Trust> {
        let certs = client::ca_certs(url).map_err(|source| Error::CaFetch {
            url: url.to_string(),
            source,
        })?;
        let trust = Trust::from_certs(certs, url)?;
        if let Some(want) = want {
            if normalise(want) != normalise(&trust.fingerprint) {
                return Err(Error::FingerprintMismatch {
                    url: url.to_string(),
                    got: trust.fingerprint,
                    want: want.to_string(),
                });
            }
        }
        Ok(trust)
    }

    /// The root's subject name.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The root's SHA-256 fingerprint (colon-separated upper-case hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Verifies a certificate issued for token `serial`'s key `spki` with `usage`:
    /// chain to the root, validity now, the serial it carries, the key and the usage.
    pub fn check(
        &self,
        cert: &[u8],
        serial: &str,
        spki: &[u8],
        usage: Usage,
    ) -> Result<VerifiedCert> {
        let v = vtoken_pki::verify_chain(cert, &self.intermediates, &self.root, SystemTime::now())
            .map_err(|e| {
                Error::CertificateRejected(format!("the certificate does not verify: {e}"))
            })?;
        if !v.token_serial.eq_ignore_ascii_case(serial) {
            return Err(Error::CertificateRejected(format!(
                "the certificate is for token {}, not {serial}",
                v.token_serial
            )));
        }
        if v.spki != spki {
            return Err(Error::CertificateRejected(
                "the certificate certifies another public key".into(),
            ));
        }
        if v.usage != usage {
            return Err(Error::CertificateRejected(format!(
                "the certificate's usage is {}, not the requested {usage}",
                v.usage
            )));
        }
        Ok(v)
    }
}

impl Trust {
    /// Step 201 at the station: `cert` is an operator certificate of this CA —
    /// it chains to the trusted root, is valid now and carries the operator profile
    /// (clientAuth + id-kp-cmcRA). The CA then checks it is registered and not
    /// revoked, and that the token's key answers its challenge.
    pub fn check_operator(&self, cert: &[u8]) -> std::result::Result<VerifiedCert, String> {
        let v = vtoken_pki::verify_chain(cert, &self.intermediates, &self.root, SystemTime::now())
            .map_err(|e| format!("its operator certificate is not one of this CA: {e}"))?;
        vtoken_pki::require_usage(cert, Usage::Operator).map_err(|e| e.to_string())?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_without_separators_or_case() {
        assert_eq!(normalise("ab:CD:01"), "ABCD01");
        assert_eq!(normalise("AB CD 01"), normalise("abcd01"));
        let f = fingerprint(b"x");
        assert_eq!(f.len(), 32 * 3 - 1);
        assert_eq!(normalise(&f), hex::encode_upper(Sha256::digest(b"x")));
    }

    #[test]
    fn no_or_bad_certificates_are_refused() {
        let e = Trust::from_certs(Vec::new(), "ca.pem").err().unwrap();
        assert_eq!(e.to_string(), "ca.pem: no certificate");
        let e = Trust::from_certs(vec![b"junk".to_vec()], "ca.pem")
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .starts_with("ca.pem: not an X.509 certificate: "),
            "{e}"
        );
    }

    #[test]
    fn a_root_from_der_or_pem_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = vtoken_pki::LocalCa::init(&dir.path().join("ca"), "station test root").unwrap();
        let t = Trust::from_certs(vec![ca.cert_der().to_vec()], "test").unwrap();
        assert_eq!(t.subject(), ca.subject());
        assert_eq!(t.fingerprint(), fingerprint(ca.cert_der()));
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, vtoken_pki::cert_der_to_pem(ca.cert_der())).unwrap();
        assert_eq!(
            Trust::from_file(&pem).unwrap().fingerprint(),
            t.fingerprint()
        );
        let der = dir.path().join("ca.der");
        std::fs::write(&der, ca.cert_der()).unwrap();
        assert_eq!(Trust::from_file(&der).unwrap().subject(), t.subject());
        assert!(matches!(
            Trust::from_file(&dir.path().join("none")),
            Err(Error::File { .. })
        ));
        // Something that is not a certificate of this root is refused.
        let e = t
            .check(b"junk", "00", b"", vtoken_pki::Usage::Device)
            .unwrap_err();
        assert!(matches!(e, Error::CertificateRejected(_)), "{e}");
    }
}
