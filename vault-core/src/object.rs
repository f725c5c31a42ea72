//! Object templates with PKCS#11 semantics (SPEC T3): required and default
//! attributes per class, read-only attributes, sensitive attributes, and the rules
//! for `C_SetAttributeValue` and `C_CopyObject`.

use cryptoki_sys::*;

use crate::attr::{is_bool_attr, is_ulong_attr, Attributes};
use crate::error::{Error, Result};
use crate::mechanism::backend::Curve;
use crate::mechanism::encoding;

/// How an object comes into being; decides which attributes the caller may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `C_CreateObject` (or an import): all value attributes come from the caller.
    Create,
    /// Key generation, derivation or unwrapping: values come from the token.
    Generated,
}

/// A `CKA_EC_PARAMS` value must be one complete DER value (a curve OID, a curve
/// name, NULL or explicit parameters) with nothing after it; malformed bytes are
/// `CKR_ATTRIBUTE_VALUE_INVALID`. Returns the curve when the token knows it, so its
/// `CKA_EC_POINT` can be checked too (other curves are stored but never used).
fn check_ec_params(params: &[u8]) -> Result<Option<Curve>> {
    use der::Decode;
    let curve = Curve::from_ec_params(params);
    if curve.is_none() && der::asn1::AnyRef::from_der(params).is_err() {
        return Err(Error::AttributeValueInvalid(CKA_EC_PARAMS));
    }
    Ok(curve)
}

/// Attributes common to every object.
const COMMON: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_LABEL,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_UNIQUE_ID,
];
const DATA: &[CK_ATTRIBUTE_TYPE] = &[CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE];
const CERT: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CERTIFICATE_TYPE,
    CKA_TRUSTED,
    CKA_CERTIFICATE_CATEGORY,
    CKA_CHECK_VALUE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_PUBLIC_KEY_INFO,
    CKA_SUBJECT,
    CKA_ID,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_VALUE,
    CKA_URL,
    CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
    CKA_HASH_OF_ISSUER_PUBLIC_KEY,
    CKA_JAVA_MIDP_SECURITY_DOMAIN,
    CKA_NAME_HASH_ALGORITHM,
];
const KEY: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_KEY_TYPE,
    CKA_ID,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_DERIVE,
    CKA_LOCAL,
    CKA_KEY_GEN_MECHANISM,
    CKA_ALLOWED_MECHANISMS,
];
const PUBLIC: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_SUBJECT,
    CKA_ENCRYPT,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_PUBLIC_KEY_INFO,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
];
const PRIVATE: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_SUBJECT,
    CKA_SENSITIVE,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_UNWRAP_TEMPLATE,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_PUBLIC_KEY_INFO,
    CKA_MODULUS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
    CKA_EC_PARAMS,
    CKA_VALUE,
    CKA_EC_POINT,
    CKA_MODULUS_BITS,
];
const SECRET: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_CHECK_VALUE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_VALUE,
    CKA_VALUE_LEN,
    CKA_ALWAYS_AUTHENTICATE,
];

pub use crate::vendor::CKA_VTOKEN_GATED;

/// Whether `t` is a valid attribute for objects of `class`.
pub fn valid_for(class: CK_OBJECT_CLASS, t: CK_ATTRIBUTE_TYPE) -> bool {
    if COMMON.contains(&t) || t == CKA_VTOKEN_GATED || t == crate::vendor::CKA_VTOKEN_OTP {
        return true;
    }
    match class {
        CKO_DATA => DATA.contains(&t),
        CKO_CERTIFICATE => CERT.contains(&t),
        CKO_PUBLIC_KEY => KEY.contains(&t) || PUBLIC.contains(&t),
        CKO_PRIVATE_KEY => KEY.contains(&t) || PRIVATE.contains(&t),
        CKO_SECRET_KEY => KEY.contains(&t) || SECRET.contains(&t),
        _ => false,
    }
}

/// Attributes that never leave the token when the key is sensitive or unextractable.
pub fn is_sensitive_attr(class: CK_OBJECT_CLASS, t: CK_ATTRIBUTE_TYPE) -> bool {
    match class {
        CKO_PRIVATE_KEY => matches!(
            t,
            CKA_PRIVATE_EXPONENT
                | CKA_PRIME_1
                | CKA_PRIME_2
                | CKA_EXPONENT_1
                | CKA_EXPONENT_2
                | CKA_COEFFICIENT
                | CKA_VALUE
        ),
        CKO_SECRET_KEY => t == CKA_VALUE,
        _ => false,
    }
}

/// Whether the object is private: `CKA_PRIVATE`, and every private or secret key and
/// OTP credential whatever its `CKA_PRIVATE` says (records written before
/// `CKA_PRIVATE=false` was refused on keys may still carry it until migrated).
pub fn is_private(obj: &Attributes) -> bool {
    obj.bool_or(CKA_PRIVATE, true)
        || matches!(obj.class(), Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY))
        || obj.contains(crate::vendor::CKA_VTOKEN_OTP)
}

/// Whether a search `template` would compare a value `obj` keeps secret: a
/// sensitive attribute of a key that hides its secrets, or the value of a vault
/// entry. Such a template never matches the object (no guessing oracle).
pub fn probes_secret(obj: &Attributes, template: &Attributes) -> bool {
    let class = obj.class().unwrap_or(CKO_DATA);
    if class == CKO_DATA {
        return template.contains(CKA_VALUE) && crate::vendor::is_vault_object(obj);
    }
    hides_secrets(obj) && template.iter().any(|(t, _)| is_sensitive_attr(class, t))
}

/// Refuses `CKA_PRIVATE=false` on a private or secret key: their records hold key
/// material and are sealed under the master key only.
fn check_key_private(class: CK_OBJECT_CLASS, template: &Attributes) -> Result<()> {
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY)
        && template.get_bool(CKA_PRIVATE)? == Some(false)
    {
        return Err(Error::AttributeValueInvalid(CKA_PRIVATE));
    }
    Ok(())
}

/// Whether the object's sensitive attributes are hidden.
pub fn hides_secrets(obj: &Attributes) -> bool {
    matches!(obj.class(), Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY))
        && (obj.bool_or(CKA_SENSITIVE, true) || !obj.bool_or(CKA_EXTRACTABLE, false))
}

/// Attributes fixed at creation.
fn read_only_after_create(class: CK_OBJECT_CLASS, t: CK_ATTRIBUTE_TYPE) -> bool {
    if matches!(
        t,
        CKA_CLASS
            | CKA_TOKEN
            | CKA_PRIVATE
            | CKA_MODIFIABLE
            | CKA_COPYABLE
            | CKA_DESTROYABLE
            | CKA_KEY_TYPE
            | CKA_LOCAL
            | CKA_KEY_GEN_MECHANISM
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_CERTIFICATE_TYPE
            | CKA_MODULUS
            | CKA_MODULUS_BITS
            | CKA_PUBLIC_EXPONENT
            | CKA_PRIVATE_EXPONENT
            | CKA_PRIME_1
            | CKA_PRIME_2
            | CKA_EXPONENT_1
            | CKA_EXPONENT_2
            | CKA_COEFFICIENT
            | CKA_EC_PARAMS
            | CKA_EC_POINT
            | CKA_VALUE_LEN
            | CKA_UNIQUE_ID
            | CKA_ALWAYS_AUTHENTICATE
            | CKA_VTOKEN_GATED
    ) {
        return true;
    }
    // CKA_VALUE of keys and certificates is fixed; of data objects it may change.
    t == CKA_VALUE && class != CKO_DATA
}

/// Attributes that only the token sets (never in a creation template).
fn token_only(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_LOCAL
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_KEY_GEN_MECHANISM
            | CKA_UNIQUE_ID
    )
}

/// Checks value encodings (booleans one byte, ulongs eight or four bytes).
pub fn check_encoding(template: &Attributes) -> Result<()> {
    for (t, v) in template.iter() {
        if is_bool_attr(t) && v.len() != 1 {
            return Err(Error::AttributeValueInvalid(t));
        }
        if is_ulong_attr(t) && v.len() != 8 && v.len() != 4 {
            return Err(Error::AttributeValueInvalid(t));
        }
    }
    Ok(())
}

fn set_default_bool(a: &mut Attributes, t: CK_ATTRIBUTE_TYPE, v: bool) {
    if !a.contains(t) {
        a.set_bool(t, v);
    }
}

/// Validates a template for a new object of `origin` and fills in defaults.
/// For `Generated`, `generated` holds the values the mechanism produced; the caller's
/// template may not set them.
pub fn build(template: &Attributes, origin: Origin, generated: &Attributes) -> Result<Attributes> {
    check_encoding(template)?;
    let class = generated
        .class()
        .or(template.class())
        .ok_or_else(|| Error::TemplateIncomplete("CKA_CLASS is required".into()))?;
    if let (Some(a), Some(b)) = (template.class(), generated.class()) {
        if a != b {
            return Err(Error::TemplateInconsistent(
                "CKA_CLASS does not match the mechanism".into(),
            ));
        }
    }
    if !matches!(
        class,
        CKO_DATA | CKO_CERTIFICATE | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY
    ) {
        return Err(Error::AttributeValueInvalid(CKA_CLASS));
    }
    for (t, _) in template.iter() {
        if !valid_for(class, t) {
            return Err(Error::AttributeTypeInvalid(t));
        }
        if t == CKA_UNIQUE_ID {
            // Assigned by the token only; cryptoki and kryoptic expect TYPE_INVALID.
            return Err(Error::AttributeTypeInvalid(t));
        }
        if token_only(t) {
            return Err(Error::AttributeReadOnly(t));
        }
        if origin == Origin::Generated
            && generated.contains(t)
            && t != CKA_CLASS
            && t != CKA_KEY_TYPE
        {
            // e.g. CKA_VALUE in a key-generation template
            if t != CKA_EC_PARAMS
                && t != CKA_MODULUS_BITS
                && t != CKA_PUBLIC_EXPONENT
                && t != CKA_VALUE_LEN
            {
                return Err(Error::TemplateInconsistent(format!(
                    "attribute 0x{t:x} is set by the token"
                )));
            }
        }
    }
    check_key_private(class, template)?;
    if let (Some(a), Some(b)) = (template.key_type(), generated.key_type()) {
        if a != b {
            return Err(Error::TemplateInconsistent(
                "CKA_KEY_TYPE does not match the mechanism".into(),
            ));
        }
    }
    let mut o = template.clone();
    o.merge(generated);
    o.set_ulong(CKA_CLASS, class);
    set_default_bool(&mut o, CKA_TOKEN, false);
    set_default_bool(
        &mut o,
        CKA_PRIVATE,
        matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY),
    );
    set_default_bool(&mut o, CKA_MODIFIABLE, true);
    set_default_bool(&mut o, CKA_COPYABLE, true);
    set_default_bool(&mut o, CKA_DESTROYABLE, true);
    if !o.contains(CKA_LABEL) {
        o.set(CKA_LABEL, Vec::new());
    }
    match class {
        CKO_DATA => {
            for t in [CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE] {
                if !o.contains(t) {
                    o.set(t, Vec::new());
                }
            }
        }
        CKO_CERTIFICATE => {
            let ct = o.get_ulong(CKA_CERTIFICATE_TYPE)?.ok_or_else(|| {
                Error::TemplateIncomplete("CKA_CERTIFICATE_TYPE is required".into())
            })?;
            if ct != CKC_X_509 {
                return Err(Error::AttributeValueInvalid(CKA_CERTIFICATE_TYPE));
            }
            let value = o.require(CKA_VALUE)?.to_vec();
            // Fill what the DER holds and the caller left out (NSS, pkcs11-tool rely on it).
            if let Ok(parsed) = encoding::certificate_attributes(&value) {
                for t in [CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_ID] {
                    if !o.contains(t) {
                        if let Some(v) = parsed.get(t) {
                            o.set(t, v.to_vec());
                        }
                    }
                }
            } else if origin == Origin::Create && !o.contains(CKA_SUBJECT) {
                return Err(Error::AttributeValueInvalid(CKA_VALUE));
            }
            set_default_bool(&mut o, CKA_TRUSTED, false);
            if !o.contains(CKA_CERTIFICATE_CATEGORY) {
                o.set_ulong(CKA_CERTIFICATE_CATEGORY, 0);
            }
            for t in [
                CKA_ID,
                CKA_ISSUER,
                CKA_SERIAL_NUMBER,
                CKA_START_DATE,
                CKA_END_DATE,
            ] {
                if !o.contains(t) {
                    o.set(t, Vec::new());
                }
            }
        }
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => {
            let kt = o
                .key_type()
                .ok_or_else(|| Error::TemplateIncomplete("CKA_KEY_TYPE is required".into()))?;
            key_defaults(&mut o, class, kt, origin)?;
        }
        _ => unreachable!(),
    }
    Ok(o)
}

fn key_defaults(
    o: &mut Attributes,
    class: CK_OBJECT_CLASS,
    kt: CK_KEY_TYPE,
    origin: Origin,
) -> Result<()> {
    let local = origin == Origin::Generated;
    set_default_bool(o, CKA_DERIVE, false);
    if !local {
        o.set_bool(CKA_LOCAL, false);
        o.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
    }
    for t in [CKA_START_DATE, CKA_END_DATE] {
        if !o.contains(t) {
            o.set(t, Vec::new());
        }
    }
    match class {
        CKO_PUBLIC_KEY => {
            for t in [CKA_ENCRYPT, CKA_VERIFY, CKA_WRAP] {
                set_default_bool(o, t, true);
            }
            set_default_bool(o, CKA_VERIFY_RECOVER, false);
            set_default_bool(o, CKA_TRUSTED, false);
            match kt {
                CKK_RSA => {
                    let n = o.require(CKA_MODULUS)?.to_vec();
                    o.require(CKA_PUBLIC_EXPONENT)?;
                    let bits = bit_len(&n);
                    o.set_ulong(CKA_MODULUS_BITS, bits as CK_ULONG);
                }
                CKK_EC => {
                    let curve = check_ec_params(o.require(CKA_EC_PARAMS)?)?;
                    let point = o.require(CKA_EC_POINT)?;
                    if let Some(c) = curve {
                        encoding::ec_point_raw(c, point)?;
                    }
                }
                _ => return Err(Error::AttributeValueInvalid(CKA_KEY_TYPE)),
            }
            if !o.contains(CKA_SUBJECT) {
                o.set(CKA_SUBJECT, Vec::new());
            }
        }
        CKO_PRIVATE_KEY => {
            for t in [CKA_DECRYPT, CKA_SIGN, CKA_UNWRAP] {
                set_default_bool(o, t, true);
            }
            set_default_bool(o, CKA_SIGN_RECOVER, false);
            set_default_bool(o, CKA_SENSITIVE, true);
            set_default_bool(o, CKA_EXTRACTABLE, false);
            set_default_bool(o, CKA_WRAP_WITH_TRUSTED, false);
            set_default_bool(o, CKA_ALWAYS_AUTHENTICATE, false);
            match kt {
                CKK_RSA => {
                    let n = o.require(CKA_MODULUS)?.to_vec();
                    o.require(CKA_PRIVATE_EXPONENT)?;
                    o.set_ulong(CKA_MODULUS_BITS, bit_len(&n) as CK_ULONG);
                }
                CKK_EC => {
                    check_ec_params(o.require(CKA_EC_PARAMS)?)?;
                    o.require(CKA_VALUE)?;
                }
                _ => return Err(Error::AttributeValueInvalid(CKA_KEY_TYPE)),
            }
            if !o.contains(CKA_SUBJECT) {
                o.set(CKA_SUBJECT, Vec::new());
            }
        }
        CKO_SECRET_KEY => {
            for t in [
                CKA_ENCRYPT,
                CKA_DECRYPT,
                CKA_SIGN,
                CKA_VERIFY,
                CKA_WRAP,
                CKA_UNWRAP,
            ] {
                set_default_bool(o, t, true);
            }
            set_default_bool(o, CKA_SENSITIVE, true);
            set_default_bool(o, CKA_EXTRACTABLE, false);
            set_default_bool(o, CKA_WRAP_WITH_TRUSTED, false);
            set_default_bool(o, CKA_TRUSTED, false);
            set_default_bool(o, CKA_ALWAYS_AUTHENTICATE, false);
            if !matches!(
                kt,
                CKK_AES
                    | CKK_GENERIC_SECRET
                    | CKK_DES3
                    | CKK_SHA_1_HMAC
                    | CKK_SHA224_HMAC
                    | CKK_SHA256_HMAC
                    | CKK_SHA384_HMAC
                    | CKK_SHA512_HMAC
            ) {
                return Err(Error::AttributeValueInvalid(CKA_KEY_TYPE));
            }
            let len = o.require(CKA_VALUE)?.len();
            if let Some(want) = o.get_ulong(CKA_VALUE_LEN)? {
                if origin == Origin::Create && want as usize != len {
                    return Err(Error::TemplateInconsistent(
                        "CKA_VALUE_LEN does not match CKA_VALUE".into(),
                    ));
                }
            }
            if kt == CKK_AES && ![16, 24, 32].contains(&len) {
                return Err(Error::AttributeValueInvalid(CKA_VALUE));
            }
            if kt == CKK_DES3 && len != 24 {
                return Err(Error::AttributeValueInvalid(CKA_VALUE));
            }
            o.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
        }
        _ => unreachable!(),
    }
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        if local {
            let s = o.bool_or(CKA_SENSITIVE, true);
            let x = o.bool_or(CKA_EXTRACTABLE, false);
            o.set_bool(CKA_ALWAYS_SENSITIVE, s);
            o.set_bool(CKA_NEVER_EXTRACTABLE, !x);
        } else {
            o.set_bool(CKA_ALWAYS_SENSITIVE, false);
            o.set_bool(CKA_NEVER_EXTRACTABLE, false);
        }
    }
    // A CKA_ID derived from the public key when none is given (NSS pairs by it).
    if matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY)
        && o.get(CKA_ID).is_none_or(|v| v.is_empty())
    {
        if let Some(id) = derived_id(o) {
            o.set(CKA_ID, id);
        }
    }
    if !o.contains(CKA_ID) {
        o.set(CKA_ID, Vec::new());
    }
    Ok(())
}

/// The CKA_ID the token derives for a key object (SHA-1 of the modulus or EC point).
pub fn derived_id(o: &Attributes) -> Option<Vec<u8>> {
    let mut p = Attributes::new();
    for t in [
        CKA_CLASS,
        CKA_KEY_TYPE,
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_EC_PARAMS,
        CKA_EC_POINT,
    ] {
        if let Some(v) = o.get(t) {
            p.set(t, v.to_vec());
        }
    }
    if o.key_type() == Some(CKK_RSA) && o.contains(CKA_MODULUS) {
        return Some(encoding::key_id(&p));
    }
    if o.key_type() == Some(CKK_EC) {
        if !p.contains(CKA_EC_POINT) {
            // A private EC key: compute the point from the scalar through the public part.
            let der = encoding::private_key_pkcs8(o).ok()?;
            let (public, _) = encoding::pkcs8_to_attributes(&der).ok()?;
            return Some(encoding::key_id(&public));
        }
        return Some(encoding::key_id(&p));
    }
    None
}

fn bit_len(n: &[u8]) -> usize {
    let first = n.iter().position(|b| *b != 0);
    match first {
        None => 0,
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
    }
}

/// Applies `C_SetAttributeValue` rules and returns the updated object.
pub fn apply_update(obj: &Attributes, template: &Attributes) -> Result<Attributes> {
    check_encoding(template)?;
    let class = obj.class().unwrap_or(CKO_DATA);
    if !obj.bool_or(CKA_MODIFIABLE, true) {
        return Err(Error::AttributeReadOnly(
            template
                .iter()
                .next()
                .map(|(t, _)| t)
                .unwrap_or(CKA_MODIFIABLE),
        ));
    }
    check_key_private(class, template)?;
    let mut o = obj.clone();
    for (t, v) in template.iter() {
        if !valid_for(class, t) {
            return Err(Error::AttributeTypeInvalid(t));
        }
        if t == crate::vendor::CKA_VTOKEN_OTP {
            // OTP parameters (the HOTP counter) change only through the token itself.
            return Err(Error::AttributeReadOnly(t));
        }
        if read_only_after_create(class, t) {
            if o.get(t) == Some(v) {
                continue; // setting the same value is harmless (some clients do)
            }
            return Err(Error::AttributeReadOnly(t));
        }
        match t {
            CKA_SENSITIVE if obj.bool_or(CKA_SENSITIVE, false) && v == [0] => {
                return Err(Error::AttributeReadOnly(t))
            }
            CKA_EXTRACTABLE if !obj.bool_or(CKA_EXTRACTABLE, true) && v != [0] => {
                return Err(Error::AttributeReadOnly(t))
            }
            CKA_WRAP_WITH_TRUSTED if obj.bool_or(CKA_WRAP_WITH_TRUSTED, false) && v == [0] => {
                return Err(Error::AttributeReadOnly(t))
            }
            _ => {}
        }
        o.set(t, v.to_vec());
    }
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        // A key record from before keys were always private is written back private.
        o.set_bool(CKA_PRIVATE, true);
    }
    Ok(o)
}

/// Applies `C_CopyObject` rules: the template may change only CKA_TOKEN, CKA_PRIVATE,
/// CKA_MODIFIABLE, CKA_DESTROYABLE, CKA_LABEL, CKA_ID and the usual one-way flags.
pub fn apply_copy(obj: &Attributes, template: &Attributes) -> Result<Attributes> {
    check_encoding(template)?;
    if !obj.bool_or(CKA_COPYABLE, true) {
        return Err(Error::FunctionNotSupported);
    }
    let class = obj.class().unwrap_or(CKO_DATA);
    check_key_private(class, template)?;
    let mut o = obj.clone();
    for (t, v) in template.iter() {
        if !valid_for(class, t) {
            return Err(Error::AttributeTypeInvalid(t));
        }
        let allowed = matches!(
            t,
            CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE | CKA_DESTROYABLE | CKA_COPYABLE
        ) || !read_only_after_create(class, t);
        if !allowed && o.get(t) != Some(v) {
            return Err(Error::AttributeReadOnly(t));
        }
        if t == CKA_SENSITIVE && obj.bool_or(CKA_SENSITIVE, false) && v == [0] {
            return Err(Error::AttributeReadOnly(t));
        }
        if t == CKA_EXTRACTABLE && !obj.bool_or(CKA_EXTRACTABLE, true) && v != [0] {
            return Err(Error::AttributeReadOnly(t));
        }
        o.set(t, v.to_vec());
    }
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        // A copy of a key written before keys were always private is private.
        o.set_bool(CKA_PRIVATE, true);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aes_template() -> Attributes {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_ulong(CKA_KEY_TYPE, CKK_AES);
        t.set(CKA_VALUE, vec![7u8; 32]);
        t
    }

    #[test]
    fn defaults_for_an_imported_secret_key() {
        let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
        assert_eq!(o.get_bool(CKA_SENSITIVE).unwrap(), Some(true));
        assert_eq!(o.get_bool(CKA_LOCAL).unwrap(), Some(false));
        assert_eq!(o.get_bool(CKA_ALWAYS_SENSITIVE).unwrap(), Some(false));
        assert_eq!(o.get_ulong(CKA_VALUE_LEN).unwrap(), Some(32));
        assert_eq!(o.get_bool(CKA_PRIVATE).unwrap(), Some(true));
        assert!(hides_secrets(&o));
    }

    #[test]
    fn template_errors() {
        let mut t = aes_template();
        t.set(CKA_VALUE, vec![1u8; 15]);
        assert!(matches!(
            build(&t, Origin::Create, &Attributes::new()),
            Err(Error::AttributeValueInvalid(_))
        ));
        let mut t = aes_template();
        t.set(CKA_MODULUS, vec![1]);
        assert!(matches!(
            build(&t, Origin::Create, &Attributes::new()),
            Err(Error::AttributeTypeInvalid(_))
        ));
        let mut t = aes_template();
        t.set_bool(CKA_LOCAL, true);
        assert!(matches!(
            build(&t, Origin::Create, &Attributes::new()),
            Err(Error::AttributeReadOnly(_))
        ));
        let mut t = Attributes::new();
        t.set(CKA_LABEL, b"x".to_vec());
        assert!(matches!(
            build(&t, Origin::Create, &Attributes::new()),
            Err(Error::TemplateIncomplete(_))
        ));
        let mut t = aes_template();
        t.set(CKA_TOKEN, vec![1, 1]);
        assert!(matches!(
            build(&t, Origin::Create, &Attributes::new()),
            Err(Error::AttributeValueInvalid(_))
        ));
    }

    #[test]
    fn update_rules() {
        let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
        let mut t = Attributes::new();
        t.set(CKA_ID, b"new".to_vec());
        assert_eq!(apply_update(&o, &t).unwrap().get(CKA_ID), Some(&b"new"[..]));
        let mut t = Attributes::new();
        t.set_bool(CKA_SENSITIVE, false);
        assert!(matches!(
            apply_update(&o, &t),
            Err(Error::AttributeReadOnly(_))
        ));
        let mut t = Attributes::new();
        t.set(CKA_VALUE, vec![0u8; 32]);
        assert!(matches!(
            apply_update(&o, &t),
            Err(Error::AttributeReadOnly(_))
        ));
        let mut t = Attributes::new();
        t.set_bool(CKA_MODIFIABLE, false);
        let ro = apply_copy(&o, &t).unwrap();
        let mut t = Attributes::new();
        t.set(CKA_LABEL, b"l".to_vec());
        assert!(apply_update(&ro, &t).is_err());
    }

    #[test]
    fn keys_are_always_private() {
        let mut t = aes_template();
        t.set_bool(CKA_PRIVATE, false);
        assert!(matches!(
            build(&t, Origin::Create, &Attributes::new()),
            Err(Error::AttributeValueInvalid(CKA_PRIVATE))
        ));
        let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
        let mut p = Attributes::new();
        p.set_bool(CKA_PRIVATE, false);
        assert!(apply_copy(&o, &p).is_err());
        assert!(apply_update(&o, &p).is_err());
        // A record an older version wrote with CKA_PRIVATE=false: still private, and
        // private again once copied or changed.
        let mut old = o.clone();
        old.set_bool(CKA_PRIVATE, false);
        assert!(is_private(&old));
        let copy = apply_copy(&old, &Attributes::new()).unwrap();
        assert_eq!(copy.get_bool(CKA_PRIVATE).unwrap(), Some(true));
        let mut l = Attributes::new();
        l.set(CKA_LABEL, b"x".to_vec());
        let upd = apply_update(&old, &l).unwrap();
        assert_eq!(upd.get_bool(CKA_PRIVATE).unwrap(), Some(true));
        // Public keys and data objects may be public.
        let mut d = Attributes::new();
        d.set_ulong(CKA_CLASS, CKO_DATA);
        d.set_bool(CKA_PRIVATE, false);
        assert!(!is_private(
            &build(&d, Origin::Create, &Attributes::new()).unwrap()
        ));
    }

    #[test]
    fn a_template_naming_a_hidden_value_never_matches() {
        let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
        let mut guess = Attributes::new();
        guess.set(CKA_VALUE, vec![7u8; 32]);
        assert!(o.matches(&guess), "the guess is right");
        assert!(probes_secret(&o, &guess));
        let mut t = aes_template();
        t.set_bool(CKA_SENSITIVE, false);
        t.set_bool(CKA_EXTRACTABLE, true);
        let open = build(&t, Origin::Create, &Attributes::new()).unwrap();
        assert!(!probes_secret(&open, &guess));
        let mut label = Attributes::new();
        label.set(CKA_LABEL, Vec::new());
        assert!(!probes_secret(&o, &label));
    }
}
