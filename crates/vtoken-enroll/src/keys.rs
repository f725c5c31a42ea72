//! Key pairs on a token and signatures made inside it: the free key pair search
//! (E3), key generation, the PKCS#10 request signed by the token (E5).

use cryptoki_sys::*;
use vault_core::mechanism::backend::Curve;
use vault_core::mechanism::{encoding, Mechanism};
use vault_core::session::{OutLen, Output, SessionRef};
use vault_core::token::Token;
use vault_core::Attributes;
use vtoken_pki::{SigAlg, Usage};

use crate::error::{Error, Result};
use crate::session::TokenSession;
use crate::station::KeyType;

/// A key pair on a token.
pub(crate) struct KeyPair {
    /// The private key's handle.
    pub private: u64,
    /// CKA_ID shared by the pair (and by its certificate, once written).
    pub id: Vec<u8>,
    pub label: String,
    /// The public key (SubjectPublicKeyInfo, DER).
    pub spki: Vec<u8>,
    /// Whether this run generated it.
    pub generated: bool,
}

/// The token objects of `class`, with CKA_ID `id` if given.
pub(crate) fn search(
    s: &TokenSession,
    class: CK_OBJECT_CLASS,
    id: Option<&[u8]>,
) -> Result<Vec<u64>> {
    let mut t = Attributes::new();
    t.set_ulong(CKA_CLASS, class);
    t.set_bool(CKA_TOKEN, true);
    if let Some(id) = id {
        t.set(CKA_ID, id.to_vec());
    }
    Ok(s.token.search(&t)?)
}

/// The public key (SPKI) of the pair with CKA_ID `id`, from its public key object.
pub(crate) fn public_spki(s: &TokenSession, id: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(search(s, CKO_PUBLIC_KEY, Some(id))?
        .into_iter()
        .find_map(|p| {
            let pa = s.token.attributes(p).ok()?;
            encoding::public_key_spki(&pa).ok()
        }))
}

/// Generates a token key pair labelled `label` (sign-only private key, never
/// extractable); the token derives its CKA_ID from the public key.
pub(crate) fn generate_key_pair(
    s: &TokenSession,
    key_type: KeyType,
    label: &str,
) -> Result<KeyPair> {
    let label = label.as_bytes().to_vec();
    let template = |class: CK_OBJECT_CLASS, kt: CK_KEY_TYPE| {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, class);
        t.set_ulong(CKA_KEY_TYPE, kt);
        t.set_bool(CKA_TOKEN, true);
        t.set(CKA_LABEL, label.clone());
        t
    };
    let rsa = matches!(key_type, KeyType::Rsa2048 | KeyType::Rsa3072);
    let kt = if rsa { CKK_RSA } else { CKK_EC };
    let mut p = template(CKO_PUBLIC_KEY, kt);
    let mut k = template(CKO_PRIVATE_KEY, kt);
    p.set_bool(CKA_PRIVATE, false);
    p.set_bool(CKA_VERIFY, true);
    k.set_bool(CKA_PRIVATE, true);
    k.set_bool(CKA_SENSITIVE, true);
    k.set_bool(CKA_EXTRACTABLE, false);
    k.set_bool(CKA_SIGN, true);
    let mech = if rsa {
        let bits = if key_type == KeyType::Rsa2048 {
            2048
        } else {
            3072
        };
        p.set_ulong(CKA_MODULUS_BITS, bits);
        p.set(CKA_PUBLIC_EXPONENT, vec![1, 0, 1]);
        p.set_bool(CKA_ENCRYPT, true);
        p.set_bool(CKA_WRAP, true);
        k.set_bool(CKA_DECRYPT, true);
        k.set_bool(CKA_UNWRAP, true);
        CKM_RSA_PKCS_KEY_PAIR_GEN
    } else {
        let curve = if key_type == KeyType::EcP256 {
            Curve::P256
        } else {
            Curve::P384
        };
        p.set(CKA_EC_PARAMS, curve.ec_params().to_vec());
        k.set_bool(CKA_DERIVE, true);
        CKM_EC_KEY_PAIR_GEN
    };
    let (ph, kh) = s
        .token
        .generate_key_pair(&s.sid, &Mechanism::new(mech), &p, &k)?;
    let pa = s.token.attributes(ph)?;
    let ka = s.token.attributes(kh)?;
    Ok(KeyPair {
        private: kh,
        id: ka.get(CKA_ID).unwrap_or_default().to_vec(),
        label: ka.label(),
        spki: encoding::public_key_spki(&pa)?,
        generated: true,
    })
}

/// A PKCS#10 request for `key` naming the token serial and `usage`, signed inside
/// the token (E5).
pub(crate) fn sign_request(s: &TokenSession, key: &KeyPair, usage: Usage) -> Result<Vec<u8>> {
    let alg = SigAlg::for_spki(&key.spki)?;
    let mech = mechanism_for(alg)?;
    let sign = |tbs: &[u8]| token_sign(&s.token, &s.sid, key.private, mech, tbs);
    vtoken_pki::build_csr(&key.spki, s.token.serial(), usage, sign, alg).map_err(Error::Request)
}

/// The token mechanism that makes signatures of `alg`.
pub(crate) fn mechanism_for(alg: SigAlg) -> Result<CK_MECHANISM_TYPE> {
    Ok(match alg {
        SigAlg::EcdsaSha256 => CKM_ECDSA_SHA256,
        SigAlg::EcdsaSha384 => CKM_ECDSA_SHA384,
        SigAlg::RsaPkcs1Sha256 => CKM_SHA256_RSA_PKCS,
        other => return Err(Error::NoMechanism(other)),
    })
}

/// Signs with private key `key` inside the token (the key never leaves it).
pub(crate) fn token_sign(
    token: &Token,
    sid: &SessionRef,
    key: u64,
    mech: CK_MECHANISM_TYPE,
    msg: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    token
        .sign_init(sid, &Mechanism::new(mech), key)
        .map_err(|e| format!("signing in the token: {e}"))?;
    match token.sign(sid, msg, OutLen::Buffer(usize::MAX)) {
        Ok(Output::Bytes(b)) => Ok(b),
        Ok(Output::Needed(_)) => Err("signature buffer too small".into()),
        Err(e) => Err(format!("signing in the token: {e}")),
    }
}

/// Writes certificate `cert` on the token under CKA_ID `id` and `label` (public,
/// token object), unless the very same certificate is there already. One object
/// creation: the certificate appears whole or not at all (E9).
pub(crate) fn store_certificate(
    s: &TokenSession,
    cert: &[u8],
    id: &[u8],
    label: &str,
) -> Result<()> {
    let mut dup = Attributes::new();
    dup.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    dup.set(CKA_VALUE, cert.to_vec());
    if s.token.search(&dup)?.is_empty() {
        let mut t = encoding::certificate_attributes(cert)?;
        t.set(CKA_ID, id.to_vec());
        t.set(CKA_LABEL, label.as_bytes().to_vec());
        t.set_bool(CKA_TOKEN, true);
        t.set_bool(CKA_PRIVATE, false);
        s.token.create_object(&s.sid, &t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_algorithms_have_token_mechanisms() {
        assert_eq!(
            mechanism_for(SigAlg::EcdsaSha256).unwrap(),
            CKM_ECDSA_SHA256
        );
        assert_eq!(
            mechanism_for(SigAlg::EcdsaSha384).unwrap(),
            CKM_ECDSA_SHA384
        );
        assert_eq!(
            mechanism_for(SigAlg::RsaPkcs1Sha256).unwrap(),
            CKM_SHA256_RSA_PKCS
        );
    }
}
