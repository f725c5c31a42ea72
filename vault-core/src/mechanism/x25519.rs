//! Montgomery-curve keys for ECDH over X25519 and X448 (RFC 7748; PKCS#11 3.0
//! `CKK_EC_MONTGOMERY`, `CKM_EC_MONTGOMERY_KEY_PAIR_GEN`); the derivation itself is
//! `CKM_ECDH1_DERIVE` in [`super::ecdh`].
//!
//! Encoding as for Ed25519 ([`super::eddsa`]): `CKA_EC_PARAMS` is the OID
//! 1.3.101.110 or the printable string "curve25519" (X448: 1.3.101.111 or
//! "curve448"); `CKA_EC_POINT` the u-coordinate (32 or 56 bytes) in a DER OCTET
//! STRING (bare accepted); `CKA_VALUE` the scalar of the same length. X448 runs on
//! RustCrypto's `x448` (pinned pre-release, the family of `ed448-goldilocks`).

use cryptoki_sys::*;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keys::check_template_type;
use super::table::{MechEntry, Ops};
use super::Mechanism;
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// `CKA_EC_PARAMS` of X25519: the OID 1.3.101.110 (RFC 8410).
pub const X25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6e];
/// `CKA_EC_PARAMS` of X25519: the printable string form.
pub const X25519_NAME: &[u8] = b"\x13\x0acurve25519";
/// `CKA_EC_PARAMS` of X448: the OID 1.3.101.111 (RFC 8410).
pub const X448_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6f];
/// `CKA_EC_PARAMS` of X448: the printable string form.
pub const X448_NAME: &[u8] = b"\x13\x08curve448";

pub(super) const ENTRIES: &[MechEntry] = &[MechEntry::new(
    CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
    (255, 448),
    CKF_GENERATE_KEY_PAIR,
    Ops {
        generate_pair: Some(generate_pair),
        ..Ops::NONE
    },
)];

/// Whether `params` names X25519 (`false`) or X448 (`true`); anything else is
/// `CKR_ATTRIBUTE_VALUE_INVALID`.
pub(crate) fn is_x448(params: &[u8]) -> Result<bool> {
    if params == X25519_OID || params == X25519_NAME {
        Ok(false)
    } else if params == X448_OID || params == X448_NAME {
        Ok(true)
    } else {
        Err(Error::AttributeValueInvalid(CKA_EC_PARAMS))
    }
}

/// Checks a private key object's `CKA_EC_PARAMS` and `CKA_VALUE`.
pub(crate) fn check_private(params: &[u8], value: &[u8]) -> Result<()> {
    if is_x448(params)? {
        private448_from(value).map(drop)
    } else {
        private_from(value).map(drop)
    }
}

/// Checks a public key object's `CKA_EC_PARAMS` and `CKA_EC_POINT`.
pub(crate) fn check_public(params: &[u8], point: &[u8]) -> Result<()> {
    if is_x448(params)? {
        point56_raw(point).map(drop)
    } else {
        super::encoding::point32_raw(point).map(drop)
    }
}

/// The 56-byte u-coordinate of an X448 `CKA_EC_POINT` (or ECDH public data): a DER
/// OCTET STRING, or bare.
fn point56_raw(v: &[u8]) -> Result<[u8; 56]> {
    let raw = match v {
        [0x04, 0x38, rest @ ..] if rest.len() == 56 => rest,
        _ if v.len() == 56 => v,
        _ => return Err(Error::AttributeValueInvalid(CKA_EC_POINT)),
    };
    Ok(raw.try_into().expect("56 bytes"))
}

/// An X448 private key from its 56-byte `CKA_VALUE`.
pub(crate) fn private448_from(value: &[u8]) -> Result<Zeroizing<[u8; 56]>> {
    let k: [u8; 56] = value
        .try_into()
        .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
    Ok(Zeroizing::new(k))
}

/// The raw X448 shared secret; a peer point giving the all-zero result (small
/// order) is refused, as RFC 7748 §6.2 allows.
pub(crate) fn shared448(sk: &[u8; 56], peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let u = point56_raw(peer)?;
    let s = Zeroizing::new(x448::x448(*sk, u).ok_or_else(|| {
        Error::MechanismParamInvalid("the peer's X448 point has small order".into())
    })?);
    Ok(Zeroizing::new(s.to_vec()))
}

/// A private key from its `CKA_VALUE`.
pub(crate) fn private_from(value: &[u8]) -> Result<StaticSecret> {
    let k: [u8; 32] = value
        .try_into()
        .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
    Ok(StaticSecret::from(k))
}

/// The raw X25519 shared secret with a peer's u-coordinate; an all-zero result (a
/// small-order peer point) is refused, as RFC 7748 §6.1 allows.
pub(crate) fn shared(sk: &StaticSecret, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let peer = PublicKey::from(super::encoding::point32_raw(peer)?);
    let s = sk.diffie_hellman(&peer);
    if !s.was_contributory() {
        return Err(Error::MechanismParamInvalid(
            "the peer's X25519 point has small order".into(),
        ));
    }
    Ok(Zeroizing::new(s.as_bytes().to_vec()))
}

/// `CKM_EC_MONTGOMERY_KEY_PAIR_GEN`: `CKA_EC_PARAMS` (X25519) from the public template.
fn generate_pair(
    _mech: &Mechanism,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<(Attributes, Attributes)> {
    check_template_type(pub_t, CKO_PUBLIC_KEY, &[CKK_EC_MONTGOMERY])?;
    check_template_type(priv_t, CKO_PRIVATE_KEY, &[CKK_EC_MONTGOMERY])?;
    let params = pub_t.require(CKA_EC_PARAMS)?.to_vec();
    if is_x448(&params)? {
        return generate448(params);
    }
    let mut k = Zeroizing::new([0u8; 32]);
    super::random(&mut k[..])?;
    let sk = StaticSecret::from(*k);
    let mut point = vec![0x04, 0x20];
    point.extend_from_slice(PublicKey::from(&sk).as_bytes());
    let mut public = Attributes::new();
    public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    public.set_ulong(CKA_KEY_TYPE, CKK_EC_MONTGOMERY);
    public.set(CKA_EC_PARAMS, params.clone());
    public.set(CKA_EC_POINT, point);
    let mut private = Attributes::new();
    private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    private.set_ulong(CKA_KEY_TYPE, CKK_EC_MONTGOMERY);
    private.set(CKA_EC_PARAMS, params);
    private.set(CKA_VALUE, sk.to_bytes().to_vec());
    Ok((public, private))
}

/// An X448 pair: 56 random bytes, and the u-coordinate of k·5 (RFC 7748 §6.2).
fn generate448(params: Vec<u8>) -> Result<(Attributes, Attributes)> {
    let mut k = Zeroizing::new([0u8; 56]);
    super::random(&mut k[..])?;
    let mut base = [0u8; 56];
    base[0] = 5;
    let mut point = vec![0x04, 0x38];
    point.extend_from_slice(&x448::x448_unchecked(*k, base));
    let mut public = Attributes::new();
    public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    public.set_ulong(CKA_KEY_TYPE, CKK_EC_MONTGOMERY);
    public.set(CKA_EC_PARAMS, params.clone());
    public.set(CKA_EC_POINT, point);
    let mut private = Attributes::new();
    private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    private.set_ulong(CKA_KEY_TYPE, CKK_EC_MONTGOMERY);
    private.set(CKA_EC_PARAMS, params);
    private.set(CKA_VALUE, k.to_vec());
    Ok((public, private))
}

#[cfg(test)]
#[path = "tests/x25519.rs"]
mod tests;
