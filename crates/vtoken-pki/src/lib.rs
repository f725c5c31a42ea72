//! vtoken PKI: the certificate side of vtoken tokens (SPEC V7, E1–E10).
//!
//! * [`LocalCa`] — a root CA (ECDSA P-256 / SHA-256) kept as two PEM files in a
//!   directory; it issues end-entity certificates whose subject carries only the token
//!   serial ([`LocalCa::issue`] from a verified request, [`LocalCa::issue_for_spki`] for a
//!   token's identity certificate without a request round trip).
//! * [`build_csr`] — a PKCS#10 request whose signature is computed by a callback, so the
//!   private key never leaves the token; [`verify_csr`] checks one and returns [`CsrInfo`].
//! * [`verify_chain`] — a leaf, its intermediates and a trusted root: signatures, validity,
//!   CA flags and name chaining; returns the token serial and public key it certifies.
//! * [`SerialRange`] — the agreed range of token serials a CA or relay accepts.
//! * [`client`] — blocking HTTP calls to the CA server (`vtoken-server ca serve`) or a
//!   relay, and [`api`] — the JSON messages and paths they share with the server.
//! * [`pkcs7`] — certs-only PKCS#7 (CMS SignedData without signers) for EST (RFC 7030).
//!
//! Nothing here depends on vault-core: a token signs through the [`build_csr`] callback.
//!
//! ```
//! use std::time::SystemTime;
//! use p256::ecdsa::{signature::Signer, Signature, SigningKey};
//! use pkcs8::EncodePublicKey;
//! use vtoken_pki::{build_csr, verify_chain, verify_csr, LocalCa, SigAlg, Usage};
//!
//! let ca = LocalCa::generate("Example CA", 365)?;
//! // Stand-in for a token key: with a token, the closure calls C_Sign (CKM_ECDSA_SHA256)
//! // and returns its raw r || s output.
//! let key = SigningKey::random(&mut rand_core::OsRng);
//! let spki = key.verifying_key().to_public_key_der().unwrap();
//! let csr = build_csr(
//!     spki.as_bytes(),
//!     "00000000CAFEF00D",
//!     Usage::Device,
//!     |tbs| Ok::<_, String>(Signer::<Signature>::sign(&key, tbs).to_bytes().to_vec()),
//!     SigAlg::EcdsaSha256,
//! )?;
//! let info = verify_csr(&csr)?; // what the CA (or a relay) checks
//! let cert = ca.issue(&info, 365)?;
//! let checked = verify_chain(&cert, &[], ca.cert_der(), SystemTime::now())?;
//! assert_eq!(checked.token_serial, "00000000CAFEF00D");
//! assert_eq!(checked.spki, spki.as_bytes());
//! # Ok::<(), vtoken_pki::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
mod ca;
mod chain;
pub mod client;
mod csr;
mod error;
mod ext;
mod name;
pub mod pkcs7;
mod serial;
mod sig;
mod time;
mod usage;

pub use ca::{Ca, LocalCa, CA_CERT_FILE, CA_KEY_FILE, DEFAULT_LEAF_DAYS, DEFAULT_ROOT_DAYS};
pub use chain::{cert_spki, cert_token_serial, verify_chain, VerifiedCert};
pub use csr::{build_csr, csr_token_serial, verify_csr, CsrInfo};
pub use error::{Error, Result};
pub use serial::SerialRange;
pub use sig::SigAlg;
pub use usage::{require_usage, Usage, ID_KP_CMC_RA};

/// Convert a certificate from DER to PEM (`-----BEGIN CERTIFICATE-----`).
pub fn cert_der_to_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
        .expect("PEM encoding of a byte string cannot fail")
}

/// `x509_cert::Certificate::load_pem_chain`, refusing text that is empty once its
/// trailing line breaks are gone: x509-cert 0.2.5 computes `len - 1` of it (an
/// arithmetic overflow — a panic where overflow checks are on; found by the `pkcs10`
/// fuzz target).
pub(crate) fn load_pem_chain(pem: &[u8]) -> Result<Vec<x509_cert::Certificate>> {
    if pem.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        return Err(Error::Malformed("no certificate in PEM text".into()));
    }
    Ok(x509_cert::Certificate::load_pem_chain(pem)?)
}

/// Read every certificate from PEM text (one or more `CERTIFICATE` blocks), as DER.
pub fn certs_from_pem(pem: &str) -> Result<Vec<Vec<u8>>> {
    use der::Encode;
    let certs = load_pem_chain(pem.as_bytes())?;
    if certs.is_empty() {
        return Err(Error::Malformed("no certificate in PEM text".into()));
    }
    certs
        .iter()
        .map(|c| c.to_der().map_err(Error::from))
        .collect()
}
