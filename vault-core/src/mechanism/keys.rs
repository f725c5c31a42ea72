//! Keys ready for use ([`Key`]) and what the key-generation mechanisms of every
//! family share (template checks, the attributes of a new key).

use std::sync::Arc;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::backend::{
    Curve, EcPrivateKey, EcPrivateOps, EcPublicKey, EcPublicOps, RsaComponents, RsaPrivateKey,
    RsaPrivateOps, RsaPublicKey, RsaPublicOps,
};
use super::encoding::{ec_point_der, ec_point_raw};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Key material parsed from an object's attributes, ready for the mechanisms.
///
/// Cheap to clone (one `Arc`), `Send + Sync`, no interior locking: many threads may
/// sign with the same key at once. Private material is zeroized when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Key(Arc<Material>);

/// What a [`Key`] holds.
pub(crate) enum Material {
    RsaPrivate(RsaPrivateKey),
    RsaPublic(RsaPublicKey),
    EcPrivate(EcPrivateKey),
    EcPublic(EcPublicKey),
    EdPrivate(ed25519_dalek::SigningKey),
    EdPublic(ed25519_dalek::VerifyingKey),
    Ed448Private(Box<ed448_goldilocks::SigningKey>),
    Ed448Public(Box<ed448_goldilocks::VerifyingKey>),
    XPrivate(x25519_dalek::StaticSecret),
    /// An X25519 public key does no operation of its own (a peer's key reaches ECDH
    /// as mechanism data); it is checked on the way in.
    XPublic,
    X448Private(Zeroizing<[u8; 56]>),
    MlDsaPrivate(Box<dyn super::mldsa::PrivateOps>),
    MlDsaPublic(Box<dyn super::mldsa::PublicOps>),
    MlKemPrivate(Box<dyn super::mlkem::PrivateOps>),
    MlKemPublic(Box<dyn super::mlkem::PublicOps>),
    /// Any `CKO_SECRET_KEY`; the mechanisms check `key_type`.
    Secret {
        key_type: CK_KEY_TYPE,
        value: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Key {{ class: 0x{:x}, key_type: 0x{:x} }}",
            self.class(),
            self.key_type()
        )
    }
}

/// The curve named by an object's `CKA_EC_PARAMS`.
pub(crate) fn curve_of(attrs: &Attributes) -> Result<Curve> {
    Curve::from_ec_params(attrs.require(CKA_EC_PARAMS)?)
        .ok_or(Error::AttributeValueInvalid(CKA_EC_PARAMS))
}

impl Key {
    /// Builds a key from a key object's attributes (`CKA_CLASS`, `CKA_KEY_TYPE` and
    /// the key material attributes).
    ///
    /// - RSA private: `CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`, `CKA_PRIVATE_EXPONENT`,
    ///   and `CKA_PRIME_1`/`CKA_PRIME_2` when present (else recovered);
    /// - RSA public: `CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`;
    /// - EC private: `CKA_EC_PARAMS`, `CKA_VALUE`; EC public: `CKA_EC_PARAMS`,
    ///   `CKA_EC_POINT` (DER OCTET STRING or raw point);
    /// - secret keys: `CKA_VALUE`, any key type.
    pub fn from_attributes(attrs: &Attributes) -> Result<Key> {
        let class = attrs
            .class()
            .ok_or_else(|| Error::TemplateIncomplete("missing CKA_CLASS".into()))?;
        let key_type = attrs
            .key_type()
            .ok_or_else(|| Error::TemplateIncomplete("missing CKA_KEY_TYPE".into()))?;
        let m = match (class, key_type) {
            (CKO_PRIVATE_KEY, CKK_RSA) => {
                let primes = match (attrs.get(CKA_PRIME_1), attrs.get(CKA_PRIME_2)) {
                    (Some(p), Some(q)) if !p.is_empty() && !q.is_empty() => Some((p, q)),
                    _ => None,
                };
                Material::RsaPrivate(RsaPrivateKey::from_components(
                    attrs.require(CKA_MODULUS)?,
                    attrs.require(CKA_PUBLIC_EXPONENT)?,
                    attrs.require(CKA_PRIVATE_EXPONENT)?,
                    primes,
                )?)
            }
            (CKO_PUBLIC_KEY, CKK_RSA) => Material::RsaPublic(RsaPublicKey::new(
                attrs.require(CKA_MODULUS)?,
                attrs.require(CKA_PUBLIC_EXPONENT)?,
            )?),
            (CKO_PRIVATE_KEY, CKK_EC) => {
                let curve = curve_of(attrs)?;
                Material::EcPrivate(EcPrivateKey::from_scalar(curve, attrs.require(CKA_VALUE)?)?)
            }
            (CKO_PUBLIC_KEY, CKK_EC) => {
                let curve = curve_of(attrs)?;
                let point = ec_point_raw(curve, attrs.require(CKA_EC_POINT)?)?;
                Material::EcPublic(EcPublicKey::from_point(curve, &point)?)
            }
            (CKO_PRIVATE_KEY, CKK_EC_EDWARDS) => {
                let value = attrs.require(CKA_VALUE)?;
                if super::eddsa::is_ed448(attrs.require(CKA_EC_PARAMS)?)? {
                    Material::Ed448Private(Box::new(super::ed448::private_from(value)?))
                } else {
                    Material::EdPrivate(super::eddsa::private_from(value)?)
                }
            }
            (CKO_PUBLIC_KEY, CKK_EC_EDWARDS) => {
                let point = attrs.require(CKA_EC_POINT)?;
                if super::eddsa::is_ed448(attrs.require(CKA_EC_PARAMS)?)? {
                    Material::Ed448Public(Box::new(super::ed448::public_from(point)?))
                } else {
                    Material::EdPublic(super::eddsa::public_from(point)?)
                }
            }
            (CKO_PRIVATE_KEY, CKK_EC_MONTGOMERY) => {
                let value = attrs.require(CKA_VALUE)?;
                if super::x25519::is_x448(attrs.require(CKA_EC_PARAMS)?)? {
                    Material::X448Private(super::x25519::private448_from(value)?)
                } else {
                    Material::XPrivate(super::x25519::private_from(value)?)
                }
            }
            (CKO_PUBLIC_KEY, CKK_EC_MONTGOMERY) => {
                super::x25519::check_public(
                    attrs.require(CKA_EC_PARAMS)?,
                    attrs.require(CKA_EC_POINT)?,
                )?;
                Material::XPublic
            }
            (CKO_PRIVATE_KEY, CKK_ML_DSA) => {
                Material::MlDsaPrivate(super::mldsa::private_from(attrs)?)
            }
            (CKO_PUBLIC_KEY, CKK_ML_DSA) => {
                Material::MlDsaPublic(super::mldsa::public_from(attrs)?)
            }
            (CKO_PRIVATE_KEY, CKK_ML_KEM) => {
                Material::MlKemPrivate(super::mlkem::private_from(attrs)?)
            }
            (CKO_PUBLIC_KEY, CKK_ML_KEM) => {
                Material::MlKemPublic(super::mlkem::public_from(attrs)?)
            }
            (CKO_SECRET_KEY, kt) => Material::Secret {
                key_type: kt,
                value: Zeroizing::new(attrs.require(CKA_VALUE)?.to_vec()),
            },
            (CKO_PRIVATE_KEY | CKO_PUBLIC_KEY, _) => return Err(Error::KeyTypeInconsistent),
            _ => {
                return Err(Error::TemplateInconsistent(format!(
                    "object class 0x{class:x} is not a key"
                )))
            }
        };
        Ok(Key(Arc::new(m)))
    }

    /// `CKO_PRIVATE_KEY`, `CKO_PUBLIC_KEY` or `CKO_SECRET_KEY`.
    pub fn class(&self) -> CK_OBJECT_CLASS {
        match &*self.0 {
            Material::RsaPrivate(_)
            | Material::EcPrivate(_)
            | Material::EdPrivate(_)
            | Material::Ed448Private(_)
            | Material::XPrivate(_)
            | Material::X448Private(_)
            | Material::MlDsaPrivate(_)
            | Material::MlKemPrivate(_) => CKO_PRIVATE_KEY,
            Material::RsaPublic(_)
            | Material::EcPublic(_)
            | Material::EdPublic(_)
            | Material::Ed448Public(_)
            | Material::XPublic
            | Material::MlDsaPublic(_)
            | Material::MlKemPublic(_) => CKO_PUBLIC_KEY,
            Material::Secret { .. } => CKO_SECRET_KEY,
        }
    }

    /// The `CKK_*` key type.
    pub fn key_type(&self) -> CK_KEY_TYPE {
        match &*self.0 {
            Material::RsaPrivate(_) | Material::RsaPublic(_) => CKK_RSA,
            Material::EcPrivate(_) | Material::EcPublic(_) => CKK_EC,
            Material::EdPrivate(_)
            | Material::EdPublic(_)
            | Material::Ed448Private(_)
            | Material::Ed448Public(_) => CKK_EC_EDWARDS,
            Material::XPrivate(_) | Material::X448Private(_) | Material::XPublic => {
                CKK_EC_MONTGOMERY
            }
            Material::MlDsaPrivate(_) | Material::MlDsaPublic(_) => CKK_ML_DSA,
            Material::MlKemPrivate(_) | Material::MlKemPublic(_) => CKK_ML_KEM,
            Material::Secret { key_type, .. } => *key_type,
        }
    }

    pub(crate) fn material(&self) -> &Material {
        &self.0
    }

    /// The Ed25519 private key, or `KeyTypeInconsistent`.
    pub(crate) fn ed_private(&self) -> Result<&ed25519_dalek::SigningKey> {
        match &*self.0 {
            Material::EdPrivate(k) => Ok(k),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }

    /// The Ed25519 public key, or `KeyTypeInconsistent`.
    pub(crate) fn ed_public(&self) -> Result<&ed25519_dalek::VerifyingKey> {
        match &*self.0 {
            Material::EdPublic(k) => Ok(k),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }
}

/// The `CKA_PARAMETER_SET` of a post-quantum key pair (ML-DSA, ML-KEM): required in
/// the public template, and the private template may only repeat it.
pub(super) fn pair_parameter_set(
    key_type: CK_KEY_TYPE,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<CK_ULONG> {
    check_template_type(pub_t, CKO_PUBLIC_KEY, &[key_type])?;
    check_template_type(priv_t, CKO_PRIVATE_KEY, &[key_type])?;
    let set = pub_t
        .get_ulong(CKA_PARAMETER_SET)?
        .ok_or_else(|| Error::TemplateIncomplete("CKA_PARAMETER_SET is required".into()))?;
    if let Some(v) = priv_t.get_ulong(CKA_PARAMETER_SET)? {
        if v != set {
            return Err(Error::TemplateInconsistent(
                "the two templates name different parameter sets".into(),
            ));
        }
    }
    Ok(set)
}

/// The attributes of a new post-quantum pair: the public key's encoding, and the
/// private key's seed with its expanded form (PKCS#11 3.2 keeps both).
pub(super) fn pair_parameter_set_attributes(
    key_type: CK_KEY_TYPE,
    set: CK_ULONG,
    public_value: Vec<u8>,
    seed: &[u8],
    expanded: &[u8],
) -> (Attributes, Attributes) {
    let mut public = Attributes::new();
    public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    public.set_ulong(CKA_KEY_TYPE, key_type);
    public.set_ulong(CKA_PARAMETER_SET, set);
    public.set(CKA_VALUE, public_value);
    let mut private = Attributes::new();
    private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    private.set_ulong(CKA_KEY_TYPE, key_type);
    private.set_ulong(CKA_PARAMETER_SET, set);
    private.set(CKA_SEED, seed.to_vec());
    private.set(CKA_VALUE, expanded.to_vec());
    (public, private)
}

pub(super) fn check_template_type(
    t: &Attributes,
    class: CK_OBJECT_CLASS,
    allowed_types: &[CK_KEY_TYPE],
) -> Result<()> {
    if let Some(c) = t.get_ulong(CKA_CLASS)? {
        if c != class {
            return Err(Error::TemplateInconsistent(format!(
                "CKA_CLASS 0x{c:x} does not fit the mechanism"
            )));
        }
    }
    if let Some(kt) = t.get_ulong(CKA_KEY_TYPE)? {
        if !allowed_types.contains(&kt) {
            return Err(Error::TemplateInconsistent(format!(
                "CKA_KEY_TYPE 0x{kt:x} does not fit the mechanism"
            )));
        }
    }
    Ok(())
}

/// The attributes of a new secret key: `CKA_CLASS`, `CKA_KEY_TYPE`, `CKA_VALUE` and,
/// with `with_len`, `CKA_VALUE_LEN`.
pub(super) fn secret_key_attributes(
    key_type: CK_KEY_TYPE,
    value: &[u8],
    with_len: bool,
) -> Attributes {
    let mut out = Attributes::new();
    out.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    out.set_ulong(CKA_KEY_TYPE, key_type);
    out.set(CKA_VALUE, value.to_vec());
    if with_len {
        out.set_ulong(CKA_VALUE_LEN, value.len() as CK_ULONG);
    }
    out
}

/// The value of a secret key whose type is one of `types`.
pub(super) fn secret_of<'k>(key: &'k Key, types: &[CK_KEY_TYPE]) -> Result<&'k [u8]> {
    match key.material() {
        Material::Secret { key_type, value } if types.contains(key_type) => Ok(value),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// Bit length of a big-endian unsigned integer.
pub(crate) fn bit_len(v: &[u8]) -> usize {
    match v.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (v.len() - i) * 8 - v[i].leading_zeros() as usize,
    }
}

/// The public and private attributes of an RSA key pair (as key-pair generation
/// and PKCS#8 import fill them).
pub(crate) fn rsa_pair_attributes(c: &RsaComponents) -> (Attributes, Attributes) {
    let mut public = Attributes::new();
    public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    public.set_ulong(CKA_KEY_TYPE, CKK_RSA);
    public.set(CKA_MODULUS, c.n.clone());
    public.set(CKA_PUBLIC_EXPONENT, c.e.clone());
    public.set_ulong(CKA_MODULUS_BITS, bit_len(&c.n) as CK_ULONG);
    let mut private = Attributes::new();
    private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    private.set_ulong(CKA_KEY_TYPE, CKK_RSA);
    private.set(CKA_MODULUS, c.n.clone());
    private.set(CKA_PUBLIC_EXPONENT, c.e.clone());
    private.set(CKA_PRIVATE_EXPONENT, c.d.clone());
    private.set(CKA_PRIME_1, c.p.clone());
    private.set(CKA_PRIME_2, c.q.clone());
    private.set(CKA_EXPONENT_1, c.dp.clone());
    private.set(CKA_EXPONENT_2, c.dq.clone());
    private.set(CKA_COEFFICIENT, c.qinv.clone());
    (public, private)
}

/// The public and private attributes of an EC key pair. `ec_params` is stored as
/// given (OID or curve name form).
pub(crate) fn ec_pair_attributes(ec_params: &[u8], key: &EcPrivateKey) -> (Attributes, Attributes) {
    let mut public = Attributes::new();
    public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    public.set_ulong(CKA_KEY_TYPE, CKK_EC);
    public.set(CKA_EC_PARAMS, ec_params.to_vec());
    public.set(CKA_EC_POINT, ec_point_der(&key.public().point()));
    let mut private = Attributes::new();
    private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    private.set_ulong(CKA_KEY_TYPE, CKK_EC);
    private.set(CKA_EC_PARAMS, ec_params.to_vec());
    private.set(CKA_VALUE, key.scalar().to_vec());
    (public, private)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::{generate_key, generate_key_pair, Mechanism};

    fn tmpl(v: &[(CK_ATTRIBUTE_TYPE, CK_ULONG)]) -> Attributes {
        let mut a = Attributes::new();
        for (t, x) in v {
            a.set_ulong(*t, *x);
        }
        a
    }

    #[test]
    fn aes_key_generation() {
        let m = Mechanism::new(CKM_AES_KEY_GEN);
        for len in [16, 24, 32] {
            let a = generate_key(&m, &tmpl(&[(CKA_VALUE_LEN, len)])).unwrap();
            assert_eq!(a.get(CKA_VALUE).unwrap().len(), len as usize);
            assert_eq!(a.key_type(), Some(CKK_AES));
            assert_eq!(a.class(), Some(CKO_SECRET_KEY));
            assert_eq!(a.get_ulong(CKA_VALUE_LEN).unwrap(), Some(len));
            Key::from_attributes(&a).unwrap();
        }
        assert!(matches!(
            generate_key(&m, &tmpl(&[(CKA_VALUE_LEN, 20)])),
            Err(Error::KeySizeRange)
        ));
        assert!(matches!(
            generate_key(&m, &Attributes::new()),
            Err(Error::TemplateIncomplete(_))
        ));
        assert!(matches!(
            generate_key(&m, &tmpl(&[(CKA_VALUE_LEN, 16), (CKA_KEY_TYPE, CKK_DES3)])),
            Err(Error::TemplateInconsistent(_))
        ));
        assert!(matches!(
            generate_key(&Mechanism::new(CKM_RSA_PKCS), &Attributes::new()),
            Err(Error::MechanismInvalid(_))
        ));
    }

    #[test]
    fn generic_and_des3_generation() {
        let m = Mechanism::new(CKM_GENERIC_SECRET_KEY_GEN);
        let a = generate_key(
            &m,
            &tmpl(&[(CKA_VALUE_LEN, 40), (CKA_KEY_TYPE, CKK_SHA256_HMAC)]),
        )
        .unwrap();
        assert_eq!(a.get(CKA_VALUE).unwrap().len(), 40);
        assert_eq!(a.key_type(), Some(CKK_SHA256_HMAC));
        assert!(matches!(
            generate_key(&m, &Attributes::new()),
            Err(Error::TemplateIncomplete(_))
        ));
        assert!(matches!(
            generate_key(&m, &tmpl(&[(CKA_VALUE_LEN, 513)])),
            Err(Error::KeySizeRange)
        ));

        let d = generate_key(&Mechanism::new(CKM_DES3_KEY_GEN), &Attributes::new()).unwrap();
        let v = d.get(CKA_VALUE).unwrap();
        assert_eq!(v.len(), 24);
        assert!(v.iter().all(|b| b.count_ones() % 2 == 1), "odd parity");
        assert!(!d.contains(CKA_VALUE_LEN));
    }

    #[test]
    fn ec_key_pair_generation_every_curve_and_name_form() {
        let m = Mechanism::new(CKM_EC_KEY_PAIR_GEN);
        for (params, fl) in [
            (Curve::P256.ec_params().to_vec(), 32usize),
            (Curve::P384.ec_params().to_vec(), 48),
            (Curve::P521.ec_params().to_vec(), 66),
            (b"\x13\x0aprime256v1".to_vec(), 32),
        ] {
            let mut pt = Attributes::new();
            pt.set(CKA_EC_PARAMS, params.clone());
            let (pa, sa) = generate_key_pair(&m, &pt, &Attributes::new()).unwrap();
            assert_eq!(pa.get(CKA_EC_PARAMS), Some(&params[..]));
            let point = pa.get(CKA_EC_POINT).unwrap();
            // DER OCTET STRING: short length form up to 127 bytes (P-256/P-384),
            // long form for P-521's 133-byte point.
            let n = 2 * fl + 1;
            if n < 0x80 {
                assert_eq!(&point[..3], &[0x04, n as u8, 0x04]);
                assert_eq!(point.len(), n + 2);
            } else {
                assert_eq!(&point[..4], &[0x04, 0x81, n as u8, 0x04]);
                assert_eq!(point.len(), n + 3);
            }
            assert_eq!(sa.get(CKA_VALUE).unwrap().len(), fl);
            assert!(!sa.contains(CKA_EC_POINT));
            let sk = Key::from_attributes(&sa).unwrap();
            let pk = Key::from_attributes(&pa).unwrap();
            assert_eq!((sk.class(), sk.key_type()), (CKO_PRIVATE_KEY, CKK_EC));
            assert_eq!((pk.class(), pk.key_type()), (CKO_PUBLIC_KEY, CKK_EC));
        }
        let mut pt = Attributes::new();
        // secp256k1: not a supported curve.
        pt.set(
            CKA_EC_PARAMS,
            vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        );
        assert!(matches!(
            generate_key_pair(&m, &pt, &Attributes::new()),
            Err(Error::AttributeValueInvalid(CKA_EC_PARAMS))
        ));
        assert!(matches!(
            generate_key_pair(&m, &Attributes::new(), &Attributes::new()),
            Err(Error::TemplateIncomplete(_))
        ));
    }

    #[test]
    fn rsa_key_pair_template_checks() {
        let m = Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN);
        assert!(matches!(
            generate_key_pair(&m, &Attributes::new(), &Attributes::new()),
            Err(Error::TemplateIncomplete(_))
        ));
        assert!(matches!(
            generate_key_pair(&m, &tmpl(&[(CKA_MODULUS_BITS, 512)]), &Attributes::new()),
            Err(Error::KeySizeRange)
        ));
        // Below 2048 bits the token generates nothing (1024-bit keys only import).
        assert!(matches!(
            generate_key_pair(&m, &tmpl(&[(CKA_MODULUS_BITS, 1024)]), &Attributes::new()),
            Err(Error::KeySizeRange)
        ));
        let mut t = tmpl(&[(CKA_MODULUS_BITS, 2048)]);
        t.set(CKA_PUBLIC_EXPONENT, vec![0x01, 0x00, 0x00]);
        assert!(matches!(
            generate_key_pair(&m, &t, &Attributes::new()),
            Err(Error::AttributeValueInvalid(CKA_PUBLIC_EXPONENT))
        ));
    }

    #[test]
    fn from_attributes_errors() {
        let mut a = Attributes::new();
        a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        a.set_ulong(CKA_KEY_TYPE, CKK_DSA);
        assert!(matches!(
            Key::from_attributes(&a),
            Err(Error::KeyTypeInconsistent)
        ));
        a.set_ulong(CKA_KEY_TYPE, CKK_EC);
        a.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
        assert!(matches!(
            Key::from_attributes(&a),
            Err(Error::TemplateIncomplete(_))
        ));
        a.set(CKA_VALUE, vec![0u8; 32]); // zero scalar is invalid
        assert!(matches!(
            Key::from_attributes(&a),
            Err(Error::AttributeValueInvalid(CKA_VALUE))
        ));
    }

    #[test]
    fn key_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Key>();
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[0x00, 0x01, 0x00, 0x01]), 17);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[]), 0);
    }
}
