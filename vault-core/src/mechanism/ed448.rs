//! EdDSA over Ed448 (RFC 8032 §5.2; PKCS#11 3.0 `CKK_EC_EDWARDS` with
//! `CKA_EC_PARAMS` = OID 1.3.101.113 or "edwards448"), behind `CKM_EDDSA` and
//! `CKM_EC_EDWARDS_KEY_PAIR_GEN` ([`super::eddsa`] dispatches by curve).
//!
//! Keys: `CKA_VALUE` of the private key is the 57-byte secret, `CKA_EC_POINT` the
//! 57-byte public key in a DER OCTET STRING (bare accepted on import). Ed448 always
//! signs with a context (empty without `CK_EDDSA_PARAMS`); `phFlag` selects Ed448ph,
//! whose message is hashed with SHAKE256 (64 bytes) as it arrives. Built on
//! RustCrypto's `ed448-goldilocks` (a 0.14 pre-release: the only maintained Ed448 in
//! Rust; the RFC 8032 vectors and openssl check it).

use cryptoki_sys::*;
use ed448_goldilocks::shake::digest::Update;
use ed448_goldilocks::shake::Shake256;
use ed448_goldilocks::{PreHasherXof, Signature, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::{param_err, Key, MechParam, Mechanism, SignOp, VerifyOp, MAX_BUFFER};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// `CKA_EC_PARAMS` of Ed448: the OID 1.3.101.113 (RFC 8410).
pub const ED448_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x71];
/// `CKA_EC_PARAMS` of Ed448: the printable string form.
pub const ED448_NAME: &[u8] = b"\x13\x0aedwards448";

/// Key and public key length.
const LEN: usize = 57;

/// Whether `params` names Ed448.
pub(crate) fn is_ed448(params: &[u8]) -> bool {
    params == ED448_OID || params == ED448_NAME
}

/// `CKA_EC_POINT` for a public key: DER OCTET STRING.
fn point_der(pk: &VerifyingKey) -> Vec<u8> {
    let mut v = vec![0x04, LEN as u8];
    v.extend_from_slice(pk.as_bytes().as_ref());
    v
}

/// A private key from its 57-byte `CKA_VALUE`.
pub(crate) fn private_from(value: &[u8]) -> Result<SigningKey> {
    if value.len() != LEN {
        return Err(Error::AttributeValueInvalid(CKA_VALUE));
    }
    SigningKey::try_from(value).map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))
}

/// A public key from its `CKA_EC_POINT` (DER OCTET STRING or bare; a point not on
/// the curve is refused).
pub(crate) fn public_from(point: &[u8]) -> Result<VerifyingKey> {
    let raw = match point {
        [0x04, 0x39, rest @ ..] if rest.len() == LEN => rest,
        _ if point.len() == LEN => point,
        _ => return Err(Error::AttributeValueInvalid(CKA_EC_POINT)),
    };
    let bytes = raw
        .try_into()
        .map_err(|_| Error::AttributeValueInvalid(CKA_EC_POINT))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| Error::AttributeValueInvalid(CKA_EC_POINT))
}

/// `CKM_EC_EDWARDS_KEY_PAIR_GEN` for Ed448 (`params` as the template gave them).
pub(super) fn generate_pair(params: Vec<u8>) -> Result<(Attributes, Attributes)> {
    let mut secret = Zeroizing::new([0u8; LEN]);
    super::random(&mut secret[..])?;
    let sk = private_from(&secret[..])?;
    let mut public = Attributes::new();
    public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    public.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    public.set(CKA_EC_PARAMS, params.clone());
    public.set(CKA_EC_POINT, point_der(&sk.verifying_key()));
    let mut private = Attributes::new();
    private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    private.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    private.set(CKA_EC_PARAMS, params);
    private.set(CKA_VALUE, secret.to_vec());
    Ok((public, private))
}

/// The message so far: whole for Ed448, hashed as it comes for Ed448ph; with the
/// context (at most 255 bytes).
enum Input {
    Pure(Zeroizing<Vec<u8>>),
    Prehash(Box<Shake256>),
}

struct Op {
    input: Input,
    context: Vec<u8>,
    key: Key,
}

impl Op {
    fn new(mech: &Mechanism, key: &Key) -> Result<Op> {
        let (prehash, context) = match &mech.param {
            MechParam::None => (false, Vec::new()),
            MechParam::Eddsa { prehash, context } => (*prehash, context.clone()),
            _ => return Err(param_err("CK_EDDSA_PARAMS expected")),
        };
        if context.len() > 255 {
            return Err(param_err("an Ed448 context is at most 255 bytes"));
        }
        let input = if prehash {
            Input::Prehash(Box::default())
        } else {
            Input::Pure(Zeroizing::new(Vec::new()))
        };
        Ok(Op {
            input,
            context,
            key: key.clone(),
        })
    }

    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.input {
            Input::Pure(m) => {
                if m.len() + data.len() > MAX_BUFFER {
                    return Err(Error::DataLenRange);
                }
                m.extend_from_slice(data)
            }
            Input::Prehash(h) => h.update(data),
        }
        Ok(())
    }
}

fn private(key: &Key) -> Result<&SigningKey> {
    match key.material() {
        super::keys::Material::Ed448Private(k) => Ok(k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn public(key: &Key) -> Result<&VerifyingKey> {
    match key.material() {
        super::keys::Material::Ed448Public(k) => Ok(k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

pub(super) fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    private(key)?;
    Ok(Box::new(Op::new(mech, key)?))
}

pub(super) fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    public(key)?;
    Ok(Box::new(Op::new(mech, key)?))
}

impl SignOp for Op {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Op::update(self, data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let sk = private(&self.key)?;
        let bad = |_| param_err("bad Ed448 context");
        let sig = match &self.input {
            Input::Pure(m) => sk.sign_ctx(&self.context, m).map_err(bad)?,
            Input::Prehash(h) => sk
                .sign_prehashed::<PreHasherXof<Shake256>>(Some(&self.context), (**h).clone().into())
                .map_err(bad)?,
        };
        Ok(sig.to_bytes().to_vec())
    }

    fn sig_len(&self) -> usize {
        2 * LEN
    }
}

impl VerifyOp for Op {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Op::update(self, data)
    }

    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != 2 * LEN {
            return Err(Error::SignatureLenRange);
        }
        let sig = Signature::from_slice(signature).map_err(|_| Error::SignatureInvalid)?;
        let pk = public(&self.key)?;
        match &self.input {
            Input::Pure(m) => pk.verify_ctx(&sig, &self.context, m),
            Input::Prehash(h) => pk.verify_prehashed::<PreHasherXof<Shake256>>(
                &sig,
                Some(&self.context),
                (**h).clone().into(),
            ),
        }
        .map_err(|_| Error::SignatureInvalid)
    }
}
