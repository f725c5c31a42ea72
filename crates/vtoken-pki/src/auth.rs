//! Enrollment requests signed by a registered operator (E1, E6; seed 001: pre-agreed
//! trust between the issuing station, the relay and the CA).
//!
//! Every enrollment call carries five headers: the operator's certificate, a time, a
//! random nonce, the requested profile and a signature by the operator's key (inside
//! its operator token) over
//!
//! ```text
//! vtoken-request-v1 LF METHOD LF PATH LF TIME LF NONCE LF PROFILE LF hex(SHA-256(body))
//! ```
//!
//! The server ([`verify`]) checks the signature with the certificate's key, the
//! certificate's validity and a time window of ±[`MAX_SKEW_SECS`]; it then looks the
//! certificate up among its registered operators (by SHA-256 [`fingerprint`]) and
//! refuses a nonce it has already seen. Signing the method, path and body digest binds
//! the signature to this one request: it cannot be moved to another body or endpoint.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use der::asn1::BitString;
use der::Decode;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::sig::{self, SigAlg};
use crate::{Error, Result, Usage};

/// Header: the operator certificate, DER in standard base64.
pub const H_CERT: &str = "x-vtoken-operator-cert";
/// Header: seconds since the Unix epoch when the request was signed.
pub const H_TIME: &str = "x-vtoken-time";
/// Header: 16 random bytes, 32 lower-case hex digits, never reused.
pub const H_NONCE: &str = "x-vtoken-nonce";
/// Header: the profile asked for (`device`, `client`, ...); empty for the default.
pub const H_PROFILE: &str = "x-vtoken-profile";
/// Header: the signature, standard base64 (DER ECDSA or RSA PKCS#1 v1.5).
pub const H_SIGNATURE: &str = "x-vtoken-signature";
/// How far a request's time may be from the server's clock, in seconds.
pub const MAX_SKEW_SECS: u64 = 300;

const DOMAIN: &str = "vtoken-request-v1";

/// A signing callback: gets the message (not a hash) and returns the signature
/// made with the key of the credential's certificate (see [`SigAlg`] for formats).
pub type SignFn = dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync;

/// An operator's credential: its certificate and a way to sign with its key.
#[derive(Clone)]
pub struct Credential {
    cert_der: Vec<u8>,
    alg: SigAlg,
    sign: std::sync::Arc<SignFn>,
    /// The profile to ask for; `None` lets the CA apply the operator's default.
    pub profile: Option<Usage>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("fingerprint", &fingerprint(&self.cert_der))
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Hex SHA-256 of a certificate's DER: how operators are registered and named in logs.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The bytes an operator signs for one request.
pub fn message(
    method: &str,
    path: &str,
    time: u64,
    nonce: &str,
    profile: &str,
    body: &[u8],
) -> Vec<u8> {
    format!(
        "{DOMAIN}\n{}\n{path}\n{time}\n{nonce}\n{profile}\n{}",
        method.to_ascii_uppercase(),
        hex::encode(Sha256::digest(body))
    )
    .into_bytes()
}

impl Credential {
    /// A credential from the operator certificate (DER) and a signer for its key.
    pub fn new(cert_der: Vec<u8>, sign: Box<SignFn>) -> Result<Credential> {
        let cert = Certificate::from_der(&cert_der)?;
        let spki = der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info)?;
        let alg = SigAlg::for_spki(&spki)?;
        Ok(Credential {
            cert_der,
            alg,
            sign: sign.into(),
            profile: None,
        })
    }

    /// A software credential from PEM files: a certificate and its PKCS#8 private key
    /// (P-256 or RSA), as a relay holds it.
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Credential> {
        use pkcs8::DecodePrivateKey;
        let cert_pem = std::fs::read_to_string(cert).map_err(|e| Error::io(cert, e))?;
        let key_pem = zeroize_string(std::fs::read_to_string(key).map_err(|e| Error::io(key, e))?);
        let cert_der = crate::certs_from_pem(&cert_pem)?.remove(0);
        let sign: Box<SignFn> = if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(&key_pem) {
            Box::new(move |m| {
                let s: p256::ecdsa::Signature = signature::Signer::sign(&k, m);
                Ok(s.to_der().as_bytes().to_vec())
            })
        } else if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem) {
            let k = rsa::pkcs1v15::SigningKey::<Sha256>::new(k);
            Box::new(move |m| {
                let s: rsa::pkcs1v15::Signature = signature::Signer::sign(&k, m);
                Ok(Box::<[u8]>::from(s).to_vec())
            })
        } else {
            return Err(Error::Key(format!(
                "{}: not a PKCS#8 P-256 or RSA private key",
                key.display()
            )));
        };
        let cred = Credential::new(cert_der, sign)?;
        // A key that does not match the certificate would only fail at the CA.
        let probe = cred.sign_message(b"vtoken credential self-check")?;
        cred.check(b"vtoken credential self-check", &probe)
            .map_err(|_| {
                Error::Key(format!(
                    "{} is not the key of {}",
                    key.display(),
                    cert.display()
                ))
            })?;
        Ok(cred)
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    fn sign_message(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let raw = (self.sign)(msg).map_err(|e| Error::Signer(e.into()))?;
        self.alg.normalise(raw)
    }

    fn check(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        let cert = Certificate::from_der(&self.cert_der)?;
        sig::verify(
            &cert.tbs_certificate.subject_public_key_info,
            &self.alg.identifier(),
            msg,
            &BitString::from_bytes(sig)?,
        )
    }

    /// The authentication headers for one request (`method`, `path` as the server
    /// routes it, e.g. `/api/v1/enroll`, and the exact body sent).
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>> {
        let mut n = [0u8; 16];
        OsRng.fill_bytes(&mut n);
        let nonce = hex::encode(n);
        let time = now_secs();
        let profile = self.profile.map(Usage::as_str).unwrap_or("");
        let sig = self.sign_message(&message(method, path, time, &nonce, profile, body))?;
        Ok(vec![
            (H_CERT, STANDARD.encode(&self.cert_der)),
            (H_TIME, time.to_string()),
            (H_NONCE, nonce),
            (H_PROFILE, profile.to_string()),
            (H_SIGNATURE, STANDARD.encode(sig)),
        ])
    }
}

impl Credential {
    /// Answers an operator-authorisation challenge (E1, step 201): the key's
    /// signature over [`challenge_message`].
    pub fn answer_challenge(&self, challenge: &str) -> Result<Vec<u8>> {
        self.sign_message(&challenge_message(challenge, &self.cert_der))
    }
}

const CHALLENGE_DOMAIN: &str = "vtoken-operator-challenge-v1";

/// What an operator token signs to prove it holds the key of `cert_der` now: the
/// domain, the verifier's fresh challenge and the certificate's fingerprint, so an
/// answer is good for one challenge and one certificate only.
pub fn challenge_message(challenge: &str, cert_der: &[u8]) -> Vec<u8> {
    format!(
        "{CHALLENGE_DOMAIN}\n{}\n{}",
        challenge.trim(),
        fingerprint(cert_der)
    )
    .into_bytes()
}

/// Checks an answer to `challenge` made with the key of `cert_der` (the signature
/// only: the caller checks the certificate's issuer, validity, usage and status).
pub fn verify_challenge_answer(cert_der: &[u8], challenge: &str, sig: &[u8]) -> Result<()> {
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| Error::Auth(format!("operator certificate: {e}")))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let alg = SigAlg::for_spki(&der::Encode::to_der(spki)?)?;
    let sig = alg.normalise(sig.to_vec())?;
    sig::verify(
        spki,
        &alg.identifier(),
        &challenge_message(challenge, cert_der),
        &BitString::from_bytes(&sig)?,
    )
    .map_err(|_| {
        Error::Auth("the challenge answer does not verify with the operator certificate".into())
    })
}

fn zeroize_string(s: String) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(s)
}

/// A request whose signature verified; the caller still has to check the operator is
/// registered ([`Authenticated::fingerprint`]) and the nonce is fresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The operator certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its SHA-256, hex.
    pub fingerprint: String,
    /// The request's nonce (32 hex digits).
    pub nonce: String,
    /// The request's time, seconds since the epoch.
    pub time: u64,
    /// The profile asked for, if any.
    pub profile: Option<Usage>,
}

/// Check the signed headers of a request (`header` looks one up by lower-case name)
/// at time `now` (seconds since the epoch). Fails closed on anything missing or odd.
pub fn verify<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: u64,
) -> Result<Authenticated> {
    let bad = |why: &str| Error::Auth(why.to_string());
    let get = |name: &str| header(name).ok_or_else(|| Error::Auth(format!("no {name} header")));
    let cert_b64 = header(H_CERT).ok_or_else(|| {
        bad("no operator credential (requests must be signed by a registered operator)")
    })?;
    let cert_der = STANDARD
        .decode(cert_b64.trim())
        .map_err(|_| bad("operator certificate is not base64"))?;
    let time: u64 = get(H_TIME)?
        .trim()
        .parse()
        .map_err(|_| bad("time is not a number"))?;
    if time.abs_diff(now) > MAX_SKEW_SECS {
        return Err(Error::Auth(format!(
            "request time {time} is more than {MAX_SKEW_SECS} s from the server's {now}"
        )));
    }
    let nonce = get(H_NONCE)?.trim().to_string();
    if nonce.len() != 32
        || !nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad("nonce must be 32 lower-case hex digits"));
    }
    let profile_text = header(H_PROFILE).unwrap_or("").trim().to_string();
    let profile = if profile_text.is_empty() {
        None
    } else {
        Some(profile_text.parse::<Usage>()?)
    };
    let sig = STANDARD
        .decode(get(H_SIGNATURE)?.trim())
        .map_err(|_| bad("signature is not base64"))?;
    let cert = Certificate::from_der(&cert_der)
        .map_err(|e| Error::Auth(format!("operator certificate: {e}")))?;
    let validity = &cert.tbs_certificate.validity;
    let at = UNIX_EPOCH + std::time::Duration::from_secs(now);
    if at < validity.not_before.to_system_time() || at > validity.not_after.to_system_time() {
        return Err(bad("the operator certificate is not valid now"));
    }
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let alg = SigAlg::for_spki(&der::Encode::to_der(spki)?)?;
    let msg = message(method, path, time, &nonce, &profile_text, body);
    sig::verify(spki, &alg.identifier(), &msg, &BitString::from_bytes(&sig)?)
        .map_err(|_| bad("the signature does not verify with the operator certificate"))?;
    Ok(Authenticated {
        fingerprint: fingerprint(&cert_der),
        cert_der,
        nonce,
        time,
        profile,
    })
}

/// [`verify`] at the current time.
pub fn verify_now<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Authenticated> {
    verify(header, method, path, body, now_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalCa;
    use pkcs8::EncodePublicKey;
    use std::collections::HashMap;

    fn cred() -> Credential {
        let ca = LocalCa::generate("auth test", 30).unwrap();
        let key = p256::ecdsa::SigningKey::random(&mut OsRng);
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let cert = ca
            .issue_for_spki(spki.as_bytes(), "0000000000000001", Usage::Operator)
            .unwrap();
        Credential::new(
            cert,
            Box::new(move |m| {
                let s: p256::ecdsa::Signature = signature::Signer::sign(&key, m);
                Ok(s.to_bytes().to_vec())
            }),
        )
        .unwrap()
    }

    fn map(h: Vec<(&'static str, String)>) -> HashMap<&'static str, String> {
        h.into_iter().collect()
    }

    #[test]
    fn a_challenge_answer_is_bound_to_its_challenge_and_certificate() {
        let (a, b) = (cred(), cred());
        let sig = a.answer_challenge("c1").unwrap();
        verify_challenge_answer(a.cert_der(), "c1", &sig).unwrap();
        // Another challenge, another certificate, a flipped bit: refused.
        assert!(verify_challenge_answer(a.cert_der(), "c2", &sig).is_err());
        assert!(verify_challenge_answer(b.cert_der(), "c1", &sig).is_err());
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(verify_challenge_answer(a.cert_der(), "c1", &bad).is_err());
        // The request signature's domain is not the challenge's.
        assert_ne!(
            challenge_message("c1", a.cert_der()),
            message("POST", "/", 0, "c1", "", b"")
        );
    }

    #[test]
    fn signed_request_verifies_and_is_bound_to_its_parts() {
        let mut c = cred();
        c.profile = Some(Usage::Client);
        let h = map(c.headers("POST", "/api/v1/enroll", b"body").unwrap());
        let get = |n: &str| h.get(n).map(String::as_str);
        let a = verify_now(get, "POST", "/api/v1/enroll", b"body").unwrap();
        assert_eq!(a.fingerprint, fingerprint(c.cert_der()));
        assert_eq!(a.profile, Some(Usage::Client));
        for (m, p, b) in [
            ("POST", "/api/v1/enroll", &b"other"[..]),
            ("POST", "/api/v1/enroll-batch", b"body"),
            ("GET", "/api/v1/enroll", b"body"),
        ] {
            assert!(verify_now(get, m, p, b).is_err(), "{m} {p}");
        }
        // Profile changed in transit.
        let mut h2 = h.clone();
        h2.insert(H_PROFILE, "device".into());
        let get2 = |n: &str| h2.get(n).map(String::as_str);
        assert!(verify_now(get2, "POST", "/api/v1/enroll", b"body").is_err());
        // Outside the time window.
        let t: u64 = h[H_TIME].parse().unwrap();
        let e = verify(
            get,
            "POST",
            "/api/v1/enroll",
            b"body",
            t + MAX_SKEW_SECS + 1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("from the server"), "{e}");
        // No headers at all.
        let e = verify_now(|_| None, "POST", "/api/v1/enroll", b"body").unwrap_err();
        assert!(e.to_string().contains("no operator credential"), "{e}");
    }
}
