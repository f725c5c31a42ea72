//! EdDSA over Ed25519 (RFC 8032; PKCS#11 3.0 `CKK_EC_EDWARDS`,
//! `CKM_EC_EDWARDS_KEY_PAIR_GEN`, `CKM_EDDSA`); Ed448 keys go to [`super::ed448`].
//!
//! Key encoding as PKCS#11 3.0 §2.3.6 gives it: `CKA_EC_PARAMS` names the curve (the
//! OID 1.3.101.112 or the printable string "edwards25519", both accepted, the
//! template's form kept); `CKA_EC_POINT` is the 32-byte public key in a DER OCTET
//! STRING (a bare 32-byte key is accepted on import); `CKA_VALUE` of the private key
//! is the 32-byte secret seed. Pure Ed25519 and Ed25519ph (`CK_EDDSA_PARAMS` with
//! `phFlag`, with or without a context; the message is hashed with SHA-512 as it
//! arrives), and Ed25519ctx (a context without pre-hash), which ed25519-dalek does
//! not offer, in [`super::ed25519ctx`].

use cryptoki_sys::*;
use ed25519_dalek::{Digest, Sha512, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::keys::check_template_type;
use super::table::{MechEntry, Ops, SV};
use super::{param_err, Key, MechParam, Mechanism, SignOp, VerifyOp};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Key size in bits as `C_GetMechanismInfo` reports it (Ed25519 to Ed448).
const BITS: (u64, u64) = (255, 448);

/// `CKA_EC_PARAMS` of Ed25519: the OID 1.3.101.112 (RFC 8410).
pub const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// `CKA_EC_PARAMS` of Ed25519: the printable string form.
pub const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        BITS,
        CKF_GENERATE_KEY_PAIR,
        Ops {
            generate_pair: Some(generate_pair),
            ..Ops::NONE
        },
    ),
    MechEntry::new(
        CKM_EDDSA,
        BITS,
        SV,
        Ops {
            sign: Some(sign_init),
            verify: Some(verify_init),
            ..Ops::NONE
        },
    ),
];

/// Whether `params` names Ed25519 (`false`) or Ed448 (`true`); anything else is
/// `CKR_ATTRIBUTE_VALUE_INVALID`, as for an unknown Weierstrass curve.
pub(crate) fn is_ed448(params: &[u8]) -> Result<bool> {
    if params == ED25519_OID || params == ED25519_NAME {
        Ok(false)
    } else if super::ed448::is_ed448(params) {
        Ok(true)
    } else {
        Err(Error::AttributeValueInvalid(CKA_EC_PARAMS))
    }
}

/// Checks a private key object's `CKA_EC_PARAMS` and `CKA_VALUE`.
pub(crate) fn check_private(params: &[u8], value: &[u8]) -> Result<()> {
    if is_ed448(params)? {
        super::ed448::private_from(value).map(drop)
    } else {
        private_from(value).map(drop)
    }
}

/// Checks a public key object's `CKA_EC_PARAMS` and `CKA_EC_POINT`.
pub(crate) fn check_public(params: &[u8], point: &[u8]) -> Result<()> {
    if is_ed448(params)? {
        super::ed448::public_from(point).map(drop)
    } else {
        public_from(point).map(drop)
    }
}

/// `CKA_EC_POINT` for a public key: DER OCTET STRING.
pub(crate) fn point_der(pk: &VerifyingKey) -> Vec<u8> {
    let mut v = vec![0x04, 0x20];
    v.extend_from_slice(pk.as_bytes());
    v
}

/// A private key from its `CKA_VALUE` seed.
pub(crate) fn private_from(value: &[u8]) -> Result<SigningKey> {
    let seed: &[u8; 32] = value
        .try_into()
        .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
    Ok(SigningKey::from_bytes(seed))
}

/// A public key from its `CKA_EC_POINT` (a point not on the curve is refused).
pub(crate) fn public_from(point: &[u8]) -> Result<VerifyingKey> {
    VerifyingKey::from_bytes(&super::encoding::point32_raw(point)?)
        .map_err(|_| Error::AttributeValueInvalid(CKA_EC_POINT))
}

/// `CKM_EC_EDWARDS_KEY_PAIR_GEN`: `CKA_EC_PARAMS` (Ed25519) from the public template.
fn generate_pair(
    _mech: &Mechanism,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<(Attributes, Attributes)> {
    check_template_type(pub_t, CKO_PUBLIC_KEY, &[CKK_EC_EDWARDS])?;
    check_template_type(priv_t, CKO_PRIVATE_KEY, &[CKK_EC_EDWARDS])?;
    let params = pub_t.require(CKA_EC_PARAMS)?.to_vec();
    if is_ed448(&params)? {
        return super::ed448::generate_pair(params);
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    super::random(&mut seed[..])?;
    let sk = SigningKey::from_bytes(&seed);
    let mut public = Attributes::new();
    public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    public.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    public.set(CKA_EC_PARAMS, params.clone());
    public.set(CKA_EC_POINT, point_der(&sk.verifying_key()));
    let mut private = Attributes::new();
    private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    private.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    private.set(CKA_EC_PARAMS, params);
    private.set(CKA_VALUE, seed.to_vec());
    Ok((public, private))
}

/// What a `CKM_EDDSA` parameter asks for: pure Ed25519 (no parameter, or
/// `CK_EDDSA_PARAMS` without pre-hash or context), Ed25519ctx (a context without
/// pre-hash) or Ed25519ph; a context is at most 255 bytes.
fn variant(mech: &Mechanism) -> Result<Input> {
    match &mech.param {
        MechParam::None => Ok(Input::Pure(Zeroizing::new(Vec::new()))),
        MechParam::Eddsa {
            prehash: false,
            context,
        } if context.is_empty() => Ok(Input::Pure(Zeroizing::new(Vec::new()))),
        MechParam::Eddsa {
            prehash: true,
            context,
        } if context.len() <= 255 => Ok(Input::Prehash(Box::new(Sha512::new()), context.clone())),
        MechParam::Eddsa {
            prehash: false,
            context,
        } if context.len() <= 255 => Ok(Input::Ctx(Zeroizing::new(Vec::new()), context.clone())),
        MechParam::Eddsa { .. } => Err(param_err("an Ed25519 context is at most 255 bytes")),
        _ => Err(param_err("CKM_EDDSA takes CK_EDDSA_PARAMS or no parameter")),
    }
}

/// The message so far: whole for pure Ed25519 (it signs the message at once),
/// hashed as it comes for Ed25519ph.
enum Input {
    Pure(Zeroizing<Vec<u8>>),
    Prehash(Box<Sha512>, Vec<u8>),
    /// Ed25519ctx: the message (whole, it is hashed twice) and the context.
    Ctx(Zeroizing<Vec<u8>>, Vec<u8>),
}

impl Input {
    fn update(&mut self, data: &[u8]) {
        match self {
            Input::Pure(v) | Input::Ctx(v, _) => v.extend_from_slice(data),
            Input::Prehash(h, _) => h.update(data),
        }
    }
}

struct EdOp {
    input: Input,
    key: Key,
}

fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    if matches!(key.material(), super::keys::Material::Ed448Private(_)) {
        return super::ed448::sign_init(mech, key);
    }
    let input = variant(mech)?;
    key.ed_private()?;
    Ok(Box::new(EdOp {
        input,
        key: key.clone(),
    }))
}

fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    if matches!(key.material(), super::keys::Material::Ed448Public(_)) {
        return super::ed448::verify_init(mech, key);
    }
    let input = variant(mech)?;
    key.ed_public()?;
    Ok(Box::new(EdOp {
        input,
        key: key.clone(),
    }))
}

impl SignOp for EdOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data);
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let sk = self.key.ed_private()?;
        let sig = match &self.input {
            Input::Pure(m) => sk.sign(m),
            Input::Ctx(m, ctx) => {
                return Ok(super::ed25519ctx::sign(sk, ctx, m).to_vec());
            }
            Input::Prehash(h, ctx) => sk
                .sign_prehashed((**h).clone(), Some(ctx))
                .map_err(|_| param_err("bad Ed25519ph context"))?,
        };
        Ok(sig.to_bytes().to_vec())
    }

    fn sig_len(&self) -> usize {
        64
    }
}

impl VerifyOp for EdOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data);
        Ok(())
    }

    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let raw: &[u8; 64] = signature.try_into().map_err(|_| Error::SignatureLenRange)?;
        let sig = ed25519_dalek::Signature::from_bytes(raw);
        let pk = self.key.ed_public()?;
        // Strict verification: no small-order keys, canonical encodings only.
        let ok = match &self.input {
            Input::Pure(m) => pk.verify_strict(m, &sig).is_ok(),
            Input::Prehash(h, ctx) => pk
                .verify_prehashed_strict((**h).clone(), Some(ctx), &sig)
                .is_ok(),
            Input::Ctx(m, ctx) => super::ed25519ctx::verify(pk, ctx, m, raw),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

#[cfg(test)]
#[path = "tests/eddsa.rs"]
mod tests;
