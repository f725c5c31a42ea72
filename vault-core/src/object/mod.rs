//! Object templates with PKCS#11 semantics (SPEC T3): required and default
//! attributes per class, read-only attributes, sensitive attributes, and the rules
//! for `C_SetAttributeValue` and `C_CopyObject`.
//!
//! This file holds the attribute rules per class: which attributes an object may
//! carry, which are sensitive, which are fixed at creation or set only by the token;
//! `template` applies them to create, change and copy objects.

mod template;
#[cfg(test)]
mod tests;

pub use template::{apply_copy, apply_update, build, derived_id, Origin};

use cryptoki_sys::*;

use crate::attr::{is_bool_attr, is_ulong_attr, Attributes};
use crate::error::{Error, Result};

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
    CKA_PARAMETER_SET,
    CKA_VALUE,
    CKA_ENCAPSULATE,
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
    CKA_PARAMETER_SET,
    CKA_SEED,
    CKA_DECAPSULATE,
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
                | CKA_SEED
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
            | CKA_PARAMETER_SET
            | CKA_SEED
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
