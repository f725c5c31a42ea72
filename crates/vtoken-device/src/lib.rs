//! The protocols around a token's identity, both sides (SPEC V7, V8, V11):
//!
//! * [`attest`] (token side, V7) answers a challenge with a signature and the
//!   identity certificate chain; [`verify_attestation`] (client side, V7) checks the
//!   chain against a root, the serial, the nonce (so a replayed answer fails) and the
//!   signature.
//! * [`certify_local`] certifies a token's identity key with a local root
//!   ([`vtoken_pki::LocalCa`], `vtoken ca init`).
//! * [`backup`]: token-to-token backup (V11) — mutual authentication, a bundle
//!   signed by the source and sealed to the target (CMS, [`vault_core::sealed`], V8),
//!   shown to the user on the target through the trusted prompt (V5), stored only on
//!   confirmation.
//!
//! Words: the *identity key* is the RSA key pair every token makes with its first
//! user PIN (vault-core's `device` module, `Token::device_*`); its *identity
//! certificate* is issued with the `device` profile ([`Usage::Device`]); the
//! *identity root* is the root a token's identity certificate was issued under,
//! bound to the token at certification. The crate and the `vtoken device` commands
//! keep the word "device" for this identity.
//!
//! The token side works on a [`vault_core::token::Token`] the caller has opened and
//! logged in; nothing here asks for PINs.

#![forbid(unsafe_code)]

pub mod backup;
pub mod chunked;
pub mod vault_put;

use std::time::SystemTime;

use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use signature::Verifier;
use vault_core::identity::{attestation_message, MIN_NONCE_LEN};
use vault_core::token::Token;
use vtoken_pki::{verify_chain, LocalCa, Usage, VerifiedCert};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the token.
    #[error(transparent)]
    Token(#[from] vault_core::Error),
    /// From certificate handling.
    #[error(transparent)]
    Pki(#[from] vtoken_pki::Error),
    /// A failed check: the message says which.
    #[error("{0}")]
    Rejected(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

fn rejected<T>(why: impl Into<String>) -> Result<T> {
    Err(Error::Rejected(why.into()))
}

/// A token's answer to a challenge (JSON: hex strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// Token serial (16 hex digits).
    pub serial: String,
    /// The challenge, hex.
    pub nonce: String,
    /// RSA PKCS#1 v1.5 SHA-256 signature over
    /// [`vault_core::identity::attestation_message`], hex.
    pub signature: String,
    /// Identity certificate chain, leaf first, DER as hex.
    pub chain: Vec<String>,
}

/// Token side of V7: signs `nonce` with the identity key and attaches the chain.
/// The token must be certified and logged in.
pub fn attest(token: &Token, nonce: &[u8]) -> Result<Attestation> {
    let info = token.identity_info()?;
    if info.chain.is_empty() {
        return rejected(format!(
            "token {} has no device certificate yet (vtoken device certify)",
            info.serial
        ));
    }
    let sig = token.attest(nonce)?;
    Ok(Attestation {
        serial: info.serial,
        nonce: hex::encode(nonce),
        signature: hex::encode(sig),
        chain: info.chain.iter().map(hex::encode).collect(),
    })
}

pub(crate) fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|e| Error::Rejected(format!("{what}: not hex ({e})")))
}

/// Checks a certificate chain (leaf first, the root itself may be included at the
/// end) against the trusted `root_der`.
pub fn verify_identity_chain(
    chain: &[Vec<u8>],
    root_der: &[u8],
    now: SystemTime,
) -> Result<VerifiedCert> {
    let Some((leaf, rest)) = chain.split_first() else {
        return rejected("no device certificate");
    };
    let intermediates: Vec<Vec<u8>> = rest
        .iter()
        .filter(|c| c.as_slice() != root_der)
        .cloned()
        .collect();
    Ok(verify_chain(leaf, &intermediates, root_der, now)?)
}

/// Client side of V7: the chain must lead to `root_der`, the leaf must carry the
/// identity profile ([`vtoken_pki::require_usage`] with [`Usage::Device`]: a client,
/// signing or operator certificate of the same root proves no identity), certify
/// the serial the answer claims, the nonce must be the one this client sent
/// (`expected_nonce`), and the signature must verify with the certified key.
pub fn verify_attestation(
    att: &Attestation,
    root_der: &[u8],
    expected_nonce: &[u8],
    now: SystemTime,
) -> Result<VerifiedCert> {
    let nonce = unhex("nonce", &att.nonce)?;
    if nonce != expected_nonce {
        return rejected("the answer is not for this challenge (nonce differs: a replay?)");
    }
    let chain: Vec<Vec<u8>> = att
        .chain
        .iter()
        .map(|c| unhex("certificate", c))
        .collect::<Result<_>>()?;
    let v = verify_identity_chain(&chain, root_der, now)
        .map_err(|e| Error::Rejected(format!("device certificate rejected: {e}")))?;
    vtoken_pki::require_usage(&chain[0], Usage::Device)
        .map_err(|e| Error::Rejected(format!("device certificate rejected: {e}")))?;
    if v.token_serial != att.serial {
        return rejected(format!(
            "the certificate is for token {}, the answer claims {}",
            v.token_serial, att.serial
        ));
    }
    let sig = unhex("signature", &att.signature)?;
    verify_identity_signature(&v.spki, &attestation_message(&att.serial, &nonce), &sig).map_err(
        |_| {
            Error::Rejected(
                "the signature does not verify: not signed by the certified device key".into(),
            )
        },
    )?;
    Ok(v)
}

/// RSA PKCS#1 v1.5 / SHA-256 verification with a identity key (SPKI DER).
pub fn verify_identity_signature(spki: &[u8], msg: &[u8], sig: &[u8]) -> Result<()> {
    let key = rsa::RsaPublicKey::from_public_key_der(spki)
        .map_err(|e| Error::Rejected(format!("device key: {e}")))?;
    let sig = Signature::try_from(sig).map_err(|_| Error::Rejected("bad signature".into()))?;
    VerifyingKey::<Sha256>::new(key)
        .verify(msg, &sig)
        .map_err(|_| Error::Rejected("bad signature".into()))
}

/// A fresh random challenge.
pub fn new_nonce() -> Result<Vec<u8>> {
    let mut n = vec![0u8; 32];
    vault_core::mechanism::random(&mut n)?;
    debug_assert!(n.len() >= MIN_NONCE_LEN);
    Ok(n)
}

/// Certifies the token's identity key with a local root (V7): issues the identity
/// certificate and stores the chain `[leaf, root]` (user logged in). Returns the
/// leaf DER.
pub fn certify_local(token: &Token, ca: &LocalCa) -> Result<Vec<u8>> {
    token.identity_ensure()?;
    let info = token.identity_info()?;
    let leaf = ca.issue_for_spki(&info.spki, &info.serial, Usage::Device)?;
    token.identity_set_chain(vec![leaf.clone(), ca.cert_der().to_vec()], &info.spki)?;
    Ok(leaf)
}

/// The identity root `token` itself trusts (DER): the root its own identity
/// certificate was issued under, bound at certification and authenticated under
/// its master key ([`Token::identity_root`]; user or SO logged in). Backup trusts
/// this root only, never one a caller names.
pub fn own_root(token: &Token) -> Result<Vec<u8>> {
    match token.identity_root()? {
        Some(r) => Ok(r),
        None => rejected(format!(
            "token {} has no bound device root: certify it (vtoken device certify); a token \
             certified by an older vtoken must be certified again",
            token.serial()
        )),
    }
}

/// Checks that a certificate is an identity certificate (the `device` profile of
/// [`Usage`]): keyUsage present with digitalSignature and keyEncipherment (the
/// backup seals to the key with RSA-OAEP) and nothing a CA, signing or TLS
/// certificate carries (keyCertSign, cRLSign, nonRepudiation, a CA basic
/// constraint, an extended key usage). A missing keyUsage is refused: reading
/// "no extension" as `device` would accept any certificate the root ever issued.
pub fn check_identity_usage(cert_der: &[u8]) -> Result<()> {
    use const_oid::db::rfc5280::{ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE};
    use der::Decode;
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

    let not_identity =
        |why: &str| -> Result<()> { rejected(format!("not a device certificate: {why}")) };
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| Error::Rejected(format!("certificate unreadable: {e}")))?;
    let exts = cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]);
    let mut key_usage = None;
    for e in exts {
        let v = e.extn_value.as_bytes();
        if e.extn_id == ID_CE_KEY_USAGE {
            let ku = KeyUsage::from_der(v)
                .map_err(|e| Error::Rejected(format!("keyUsage unreadable: {e}")))?;
            key_usage = Some(ku);
        } else if e.extn_id == ID_CE_EXT_KEY_USAGE {
            return not_identity("it has an extended key usage (a TLS or signing certificate)");
        } else if e.extn_id == ID_CE_BASIC_CONSTRAINTS {
            let bc = BasicConstraints::from_der(v)
                .map_err(|e| Error::Rejected(format!("basicConstraints unreadable: {e}")))?;
            if bc.ca {
                return not_identity("it is a CA certificate");
            }
        }
    }
    let Some(ku) = key_usage else {
        return not_identity("it has no keyUsage");
    };
    if !ku.0.contains(KeyUsages::DigitalSignature) || !ku.0.contains(KeyUsages::KeyEncipherment) {
        return not_identity("its keyUsage lacks digitalSignature or keyEncipherment");
    }
    for bad in [
        KeyUsages::KeyCertSign,
        KeyUsages::CRLSign,
        KeyUsages::NonRepudiation,
    ] {
        if ku.0.contains(bad) {
            return not_identity("its keyUsage allows certificate, CRL or document signing");
        }
    }
    Ok(())
}

/// [`verify_identity_chain`] against the root `token` itself trusts ([`own_root`]),
/// plus [`check_identity_usage`] on the leaf.
pub fn verify_identity_chain_for(
    token: &Token,
    chain: &[Vec<u8>],
    now: SystemTime,
) -> Result<VerifiedCert> {
    let root = own_root(token)?;
    let v = verify_identity_chain(chain, &root, now).map_err(|e| {
        Error::Rejected(format!(
            "does not chain to the device root token {} trusts: {e}",
            token.serial()
        ))
    })?;
    if v.usage != Usage::Device {
        return rejected(format!(
            "not a device certificate: its usage is {}",
            v.usage
        ));
    }
    check_identity_usage(&chain[0])?;
    Ok(v)
}
