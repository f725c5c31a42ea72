//! ML-DSA (FIPS 204; PKCS#11 3.2 `CKK_ML_DSA`, `CKM_ML_DSA_KEY_PAIR_GEN`,
//! `CKM_ML_DSA`, `CKM_HASH_ML_DSA` and the ten `CKM_HASH_ML_DSA_<hash>` with SHA-2,
//! SHA-3 and SHAKE), on RustCrypto's `ml-dsa` in both builds.
//!
//! Keys as PKCS#11 3.2 §6.67 stores them: `CKA_PARAMETER_SET` (`CKP_ML_DSA_44/65/87`)
//! on both halves; the public key's `CKA_VALUE` is pkEncode(pk); the private key
//! holds `CKA_SEED` (ξ, 32 bytes) and `CKA_VALUE` (skEncode(sk)), both sensitive.
//! A private key is rebuilt from its seed (the expanded form is checked against it
//! when given), so a key imported without its seed is refused: the expanded form
//! alone cannot be validated (the crate's decoder may panic on a malformed one).
//!
//! Signing follows FIPS 204 Algorithms 2 and 4 through the `_internal` functions:
//! M' = 0 ‖ |ctx| ‖ ctx ‖ M (pure) or 1 ‖ |ctx| ‖ ctx ‖ OID(PH) ‖ PH(M) (pre-hash),
//! with `rnd` 32 fresh random bytes (hedged: `CKH_HEDGE_PREFERRED`,
//! `CKH_HEDGE_REQUIRED`) or zeros (`CKH_DETERMINISTIC_REQUIRED`).

use cryptoki_sys::*;
use ml_dsa::{Keypair, MlDsa44, MlDsa65, MlDsa87, MlDsaParams};
use zeroize::Zeroizing;

use super::keys::{pair_parameter_set, pair_parameter_set_attributes};
use super::table::{MechEntry, Ops, SV};
use super::{param_err, HashAlg, Key, MechParam, Mechanism, SignOp, VerifyOp, MAX_BUFFER};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Public key sizes in bytes (what `C_GetMechanismInfo` reports, §6.67).
const PK_BYTES: (u64, u64) = (1312, 2592);

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_ML_DSA_KEY_PAIR_GEN,
        PK_BYTES,
        CKF_GENERATE_KEY_PAIR,
        Ops {
            generate_pair: Some(generate_pair),
            ..Ops::NONE
        },
    ),
    sv(CKM_ML_DSA),
    sv(CKM_HASH_ML_DSA),
    sv(CKM_HASH_ML_DSA_SHA224),
    sv(CKM_HASH_ML_DSA_SHA256),
    sv(CKM_HASH_ML_DSA_SHA384),
    sv(CKM_HASH_ML_DSA_SHA512),
    sv(CKM_HASH_ML_DSA_SHA3_224),
    sv(CKM_HASH_ML_DSA_SHA3_256),
    sv(CKM_HASH_ML_DSA_SHA3_384),
    sv(CKM_HASH_ML_DSA_SHA3_512),
    sv(CKM_HASH_ML_DSA_SHAKE128),
    sv(CKM_HASH_ML_DSA_SHAKE256),
];

const fn sv(ty: CK_MECHANISM_TYPE) -> MechEntry {
    MechEntry::new(
        ty,
        PK_BYTES,
        SV,
        Ops {
            sign: Some(sign_init),
            verify: Some(verify_init),
            ..Ops::NONE
        },
    )
}

/// A FIPS 204 parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamSet {
    P44,
    P65,
    P87,
}

impl ParamSet {
    /// The set named by a `CKA_PARAMETER_SET` value.
    pub fn from_ckp(v: CK_ULONG) -> Result<ParamSet> {
        match v {
            CKP_ML_DSA_44 => Ok(ParamSet::P44),
            CKP_ML_DSA_65 => Ok(ParamSet::P65),
            CKP_ML_DSA_87 => Ok(ParamSet::P87),
            _ => Err(Error::AttributeValueInvalid(CKA_PARAMETER_SET)),
        }
    }

    pub fn ckp(self) -> CK_ULONG {
        match self {
            ParamSet::P44 => CKP_ML_DSA_44,
            ParamSet::P65 => CKP_ML_DSA_65,
            ParamSet::P87 => CKP_ML_DSA_87,
        }
    }

    /// Signature length in bytes.
    pub fn sig_len(self) -> usize {
        match self {
            ParamSet::P44 => 2420,
            ParamSet::P65 => 3309,
            ParamSet::P87 => 4627,
        }
    }
}

/// An ML-DSA private key ready to sign (the expanded key, rebuilt from ξ).
pub(crate) trait PrivateOps: Send + Sync {
    fn set(&self) -> ParamSet;
    /// ML-DSA.Sign_internal over the parts of M' with `rnd`.
    fn sign_internal(&self, mp: &[&[u8]], rnd: &[u8; 32]) -> Vec<u8>;
}

/// An ML-DSA public key ready to verify.
pub(crate) trait PublicOps: Send + Sync {
    fn set(&self) -> ParamSet;
    /// ML-DSA.Verify_internal of `sig` over M'.
    fn verify_internal(&self, mp: &[u8], sig: &[u8]) -> bool;
}

struct Private<P: MlDsaParams>(ParamSet, ml_dsa::ExpandedSigningKey<P>);
struct Public<P: MlDsaParams>(ParamSet, ml_dsa::VerifyingKey<P>);

impl<P: MlDsaParams> PrivateOps for Private<P> {
    fn set(&self) -> ParamSet {
        self.0
    }
    fn sign_internal(&self, mp: &[&[u8]], rnd: &[u8; 32]) -> Vec<u8> {
        let rnd = ml_dsa::B32::from(*rnd);
        self.1.sign_internal(mp, &rnd).encode().to_vec()
    }
}

impl<P: MlDsaParams> PublicOps for Public<P> {
    fn set(&self) -> ParamSet {
        self.0
    }
    fn verify_internal(&self, mp: &[u8], sig: &[u8]) -> bool {
        let Ok(enc) = ml_dsa::EncodedSignature::<P>::try_from(sig) else {
            return false;
        };
        match ml_dsa::Signature::<P>::decode(&enc) {
            Some(s) => self.1.verify_internal(mp, &s),
            None => false,
        }
    }
}

/// (public key encoding, expanded private key encoding, the signing half) of ξ.
type Expanded = (Vec<u8>, Zeroizing<Vec<u8>>, Box<dyn PrivateOps>);

fn expand_as<P: MlDsaParams + 'static>(set: ParamSet, seed: &[u8; 32]) -> Expanded {
    let xi = ml_dsa::Seed::from(*seed);
    let sk = ml_dsa::SigningKey::<P>::from_seed(&xi);
    let pk = sk.verifying_key().encode().to_vec();
    let exp = sk.expanded_key().clone();
    #[allow(deprecated)] // skEncode: PKCS#11 stores it in CKA_VALUE beside the seed.
    let enc = Zeroizing::new(exp.to_expanded().to_vec());
    (pk, enc, Box::new(Private(set, exp)))
}

/// ML-DSA.KeyGen_internal(ξ) for `set`.
fn expand(set: ParamSet, seed: &[u8; 32]) -> Expanded {
    match set {
        ParamSet::P44 => expand_as::<MlDsa44>(set, seed),
        ParamSet::P65 => expand_as::<MlDsa65>(set, seed),
        ParamSet::P87 => expand_as::<MlDsa87>(set, seed),
    }
}

fn public_as<P: MlDsaParams + 'static>(set: ParamSet, v: &[u8]) -> Result<Box<dyn PublicOps>> {
    let enc = ml_dsa::EncodedVerifyingKey::<P>::try_from(v)
        .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
    Ok(Box::new(Public(
        set,
        ml_dsa::VerifyingKey::<P>::decode(&enc),
    )))
}

fn set_of(attrs: &Attributes) -> Result<ParamSet> {
    ParamSet::from_ckp(attrs.require_ulong(CKA_PARAMETER_SET)?)
}

/// A private key from `CKA_PARAMETER_SET`, `CKA_SEED` and (if present) `CKA_VALUE`,
/// which must be the seed's expanded key.
pub(crate) fn private_from(attrs: &Attributes) -> Result<Box<dyn PrivateOps>> {
    use subtle::ConstantTimeEq;
    let set = set_of(attrs)?;
    let seed: [u8; 32] = attrs
        .get(CKA_SEED)
        .ok_or_else(|| {
            Error::TemplateIncomplete(
                "an ML-DSA private key needs CKA_SEED (the expanded key alone is not accepted)"
                    .into(),
            )
        })?
        .try_into()
        .map_err(|_| Error::AttributeValueInvalid(CKA_SEED))?;
    let seed = Zeroizing::new(seed);
    let (_, enc, sk) = expand(set, &seed);
    if let Some(v) = attrs.get(CKA_VALUE).filter(|v| !v.is_empty()) {
        if !bool::from(v.ct_eq(&enc[..])) {
            return Err(Error::AttributeValueInvalid(CKA_VALUE));
        }
    }
    Ok(sk)
}

/// A public key from `CKA_PARAMETER_SET` and `CKA_VALUE`.
pub(crate) fn public_from(attrs: &Attributes) -> Result<Box<dyn PublicOps>> {
    let set = set_of(attrs)?;
    let v = attrs.require(CKA_VALUE)?;
    match set {
        ParamSet::P44 => public_as::<MlDsa44>(set, v),
        ParamSet::P65 => public_as::<MlDsa65>(set, v),
        ParamSet::P87 => public_as::<MlDsa87>(set, v),
    }
}

/// The attributes a private key object gets from its seed (creation fills
/// `CKA_VALUE` when only the seed is given).
pub(crate) fn complete_private(o: &mut Attributes) -> Result<()> {
    let set = set_of(o)?;
    let seed: [u8; 32] = o
        .require(CKA_SEED)?
        .try_into()
        .map_err(|_| Error::AttributeValueInvalid(CKA_SEED))?;
    private_from(o)?;
    let (_, enc, _) = expand(set, &Zeroizing::new(seed));
    o.set(CKA_VALUE, enc.to_vec());
    Ok(())
}

/// `CKM_ML_DSA_KEY_PAIR_GEN`: the parameter set from the public template.
fn generate_pair(
    _mech: &Mechanism,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<(Attributes, Attributes)> {
    let set = ParamSet::from_ckp(pair_parameter_set(CKK_ML_DSA, pub_t, priv_t)?)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    super::random(&mut seed[..])?;
    let (pk, enc, _) = expand(set, &seed);
    Ok(pair_parameter_set_attributes(
        CKK_ML_DSA,
        set.ckp(),
        pk,
        &seed[..],
        &enc,
    ))
}

/// The pre-hash functions of HashML-DSA (FIPS 204 §5.4): each with the last arc
/// of its OID (2.16.840.1.101.3.4.2.x) and its output length (SHAKE128 gives 256
/// bits, SHAKE256 512, as §5.4.1 fixes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
    Shake128,
    Shake256,
}

impl PreHash {
    /// The hash named in a `CK_HASH_SIGN_ADDITIONAL_CONTEXT` (a digest mechanism).
    fn from_digest(ty: CK_MECHANISM_TYPE) -> Option<PreHash> {
        Some(match ty {
            CKM_SHA224 => PreHash::Sha224,
            CKM_SHA256 => PreHash::Sha256,
            CKM_SHA384 => PreHash::Sha384,
            CKM_SHA512 => PreHash::Sha512,
            CKM_SHA3_224 => PreHash::Sha3_224,
            CKM_SHA3_256 => PreHash::Sha3_256,
            CKM_SHA3_384 => PreHash::Sha3_384,
            CKM_SHA3_512 => PreHash::Sha3_512,
            _ => return None,
        })
    }

    /// The hash of a `CKM_HASH_ML_DSA_<hash>` mechanism.
    fn of_mechanism(ty: CK_MECHANISM_TYPE) -> Option<PreHash> {
        Some(match ty {
            CKM_HASH_ML_DSA_SHA224 => PreHash::Sha224,
            CKM_HASH_ML_DSA_SHA256 => PreHash::Sha256,
            CKM_HASH_ML_DSA_SHA384 => PreHash::Sha384,
            CKM_HASH_ML_DSA_SHA512 => PreHash::Sha512,
            CKM_HASH_ML_DSA_SHA3_224 => PreHash::Sha3_224,
            CKM_HASH_ML_DSA_SHA3_256 => PreHash::Sha3_256,
            CKM_HASH_ML_DSA_SHA3_384 => PreHash::Sha3_384,
            CKM_HASH_ML_DSA_SHA3_512 => PreHash::Sha3_512,
            CKM_HASH_ML_DSA_SHAKE128 => PreHash::Shake128,
            CKM_HASH_ML_DSA_SHAKE256 => PreHash::Shake256,
            _ => return None,
        })
    }

    /// DER of the OID FIPS 204 puts in M'.
    fn oid(self) -> [u8; 11] {
        let last = match self {
            PreHash::Sha256 => 1,
            PreHash::Sha384 => 2,
            PreHash::Sha512 => 3,
            PreHash::Sha224 => 4,
            PreHash::Sha3_224 => 7,
            PreHash::Sha3_256 => 8,
            PreHash::Sha3_384 => 9,
            PreHash::Sha3_512 => 10,
            PreHash::Shake128 => 11,
            PreHash::Shake256 => 12,
        };
        [
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last,
        ]
    }

    fn output_len(self) -> usize {
        match self {
            PreHash::Sha224 | PreHash::Sha3_224 => 28,
            PreHash::Sha256 | PreHash::Sha3_256 | PreHash::Shake128 => 32,
            PreHash::Sha384 | PreHash::Sha3_384 => 48,
            PreHash::Sha512 | PreHash::Sha3_512 | PreHash::Shake256 => 64,
        }
    }

    fn hasher(self) -> Hasher {
        use sha3::digest::Digest;
        match self {
            PreHash::Sha224 => Hasher::Fixed(HashAlg::Sha224.hasher()),
            PreHash::Sha256 => Hasher::Fixed(HashAlg::Sha256.hasher()),
            PreHash::Sha384 => Hasher::Fixed(HashAlg::Sha384.hasher()),
            PreHash::Sha512 => Hasher::Fixed(HashAlg::Sha512.hasher()),
            PreHash::Sha3_224 => Hasher::Fixed(Box::new(sha3::Sha3_224::new())),
            PreHash::Sha3_256 => Hasher::Fixed(Box::new(sha3::Sha3_256::new())),
            PreHash::Sha3_384 => Hasher::Fixed(Box::new(sha3::Sha3_384::new())),
            PreHash::Sha3_512 => Hasher::Fixed(Box::new(sha3::Sha3_512::new())),
            PreHash::Shake128 => Hasher::Shake128(Box::default()),
            PreHash::Shake256 => Hasher::Shake256(Box::default()),
        }
    }
}

/// A running pre-hash.
enum Hasher {
    Fixed(Box<dyn digest::DynDigest + Send + Sync>),
    Shake128(Box<sha3::Shake128>),
    Shake256(Box<sha3::Shake256>),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        use sha3::digest::Update;
        match self {
            Hasher::Fixed(h) => h.update(data),
            Hasher::Shake128(h) => h.update(data),
            Hasher::Shake256(h) => h.update(data),
        }
    }

    fn finish(&mut self, len: usize) -> Vec<u8> {
        use sha3::digest::{ExtendableOutputReset, XofReader};
        let mut out = vec![0u8; len];
        match self {
            Hasher::Fixed(h) => return h.finalize_reset().to_vec(),
            Hasher::Shake128(h) => h.finalize_xof_reset().read(&mut out),
            Hasher::Shake256(h) => h.finalize_xof_reset().read(&mut out),
        }
        out
    }
}

/// What to sign: the message itself, hashed as it comes, or (`CKM_HASH_ML_DSA`) a
/// hash the caller made.
enum Input {
    Pure(Zeroizing<Vec<u8>>),
    Hashing(PreHash, Hasher),
    Hashed(PreHash, Vec<u8>),
}

struct Op {
    key: Key,
    ctx: Vec<u8>,
    deterministic: bool,
    input: Input,
}

impl Op {
    fn new(mech: &Mechanism, key: &Key) -> Result<Op> {
        let (hedge, ctx, hash) = match &mech.param {
            MechParam::None => (CKH_HEDGE_PREFERRED, Vec::new(), None),
            MechParam::SignContext {
                hedge,
                context,
                hash,
            } => (*hedge, context.clone(), *hash),
            _ => return Err(param_err("CK_SIGN_ADDITIONAL_CONTEXT expected")),
        };
        if ctx.len() > 255 {
            return Err(param_err("an ML-DSA context is at most 255 bytes"));
        }
        let deterministic = match hedge {
            CKH_HEDGE_PREFERRED | CKH_HEDGE_REQUIRED => false,
            CKH_DETERMINISTIC_REQUIRED => true,
            _ => return Err(param_err("unknown hedge variant")),
        };
        let input = match (mech.ty, hash) {
            (CKM_ML_DSA, None) => Input::Pure(Zeroizing::new(Vec::new())),
            (CKM_HASH_ML_DSA, Some(h)) => {
                let h = PreHash::from_digest(h).ok_or_else(|| {
                    param_err("CKM_HASH_ML_DSA takes a SHA-2 or SHA-3 hash in its parameter")
                })?;
                Input::Hashed(h, Vec::new())
            }
            (CKM_HASH_ML_DSA, None) => {
                return Err(param_err(
                    "CKM_HASH_ML_DSA needs CK_HASH_SIGN_ADDITIONAL_CONTEXT naming the hash",
                ))
            }
            (ty, None) => match PreHash::of_mechanism(ty) {
                Some(h) => Input::Hashing(h, h.hasher()),
                None => return Err(Error::MechanismInvalid(ty)),
            },
            (_, Some(_)) => {
                return Err(param_err(
                    "CK_HASH_SIGN_ADDITIONAL_CONTEXT is for CKM_HASH_ML_DSA",
                ))
            }
        };
        Ok(Op {
            key: key.clone(),
            ctx,
            deterministic,
            input,
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
            Input::Hashing(_, h) => h.update(data),
            // Single-part by §6.67; parts are joined and the length checked at
            // the end.
            Input::Hashed(_, v) => {
                if v.len() + data.len() > 64 {
                    return Err(Error::DataLenRange);
                }
                v.extend_from_slice(data)
            }
        }
        Ok(())
    }

    /// The parts of M' (FIPS 204 Algorithms 2 and 4).
    fn message_prime(&mut self) -> Result<Vec<Vec<u8>>> {
        let ctx_len = [self.ctx.len() as u8];
        let (domain, tail): (u8, Vec<Vec<u8>>) = match &mut self.input {
            Input::Pure(m) => (0, vec![std::mem::take(&mut **m)]),
            Input::Hashing(h, d) => {
                let ph = d.finish(h.output_len());
                (1, vec![h.oid().to_vec(), ph])
            }
            Input::Hashed(h, v) => {
                if v.len() != h.output_len() {
                    return Err(Error::DataLenRange);
                }
                (1, vec![h.oid().to_vec(), v.clone()])
            }
        };
        let mut parts = vec![vec![domain], ctx_len.to_vec(), self.ctx.clone()];
        parts.extend(tail);
        Ok(parts)
    }
}

fn private(key: &Key) -> Result<&dyn PrivateOps> {
    match key.material() {
        super::keys::Material::MlDsaPrivate(k) => Ok(&**k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn public(key: &Key) -> Result<&dyn PublicOps> {
    match key.material() {
        super::keys::Material::MlDsaPublic(k) => Ok(&**k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    private(key)?;
    Ok(Box::new(Op::new(mech, key)?))
}

fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    public(key)?;
    Ok(Box::new(Op::new(mech, key)?))
}

impl SignOp for Op {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Op::update(self, data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let mut rnd = Zeroizing::new([0u8; 32]);
        if !self.deterministic {
            super::random(&mut rnd[..])?;
        }
        let parts = Zeroizing::new(self.message_prime()?);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Ok(private(&self.key)?.sign_internal(&refs, &rnd))
    }

    fn sig_len(&self) -> usize {
        private(&self.key).map_or(0, |k| k.set().sig_len())
    }

    fn single_part(&self) -> bool {
        matches!(self.input, Input::Hashed(..))
    }
}

impl VerifyOp for Op {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Op::update(self, data)
    }

    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let key = self.key.clone();
        let k = public(&key)?;
        if signature.len() != k.set().sig_len() {
            return Err(Error::SignatureLenRange);
        }
        let mp = self.message_prime()?.concat();
        if k.verify_internal(&mp, signature) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }

    fn single_part(&self) -> bool {
        matches!(self.input, Input::Hashed(..))
    }
}

#[cfg(test)]
#[path = "tests/mldsa.rs"]
mod tests;
