//! Building and changing objects from templates (SPEC T3): the defaults and checks
//! of `C_CreateObject` and key generation ([`build`]), the key ID derived from the
//! public key, and the rules of `C_SetAttributeValue` ([`apply_update`]) and
//! `C_CopyObject` ([`apply_copy`]).

use cryptoki_sys::*;

use super::{check_encoding, check_key_private, read_only_after_create, token_only, valid_for};
use crate::attr::Attributes;
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
                && t != CKA_PARAMETER_SET
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
                CKK_EC_EDWARDS => {
                    crate::mechanism::eddsa::check_public(
                        o.require(CKA_EC_PARAMS)?,
                        o.require(CKA_EC_POINT)?,
                    )?;
                }
                CKK_EC_MONTGOMERY => {
                    crate::mechanism::x25519::check_public(
                        o.require(CKA_EC_PARAMS)?,
                        o.require(CKA_EC_POINT)?,
                    )?;
                }
                CKK_ML_DSA => {
                    crate::mechanism::mldsa::public_from(o)?;
                }
                CKK_ML_KEM => {
                    crate::mechanism::mlkem::public_from(o)?;
                    set_default_bool(o, CKA_ENCAPSULATE, true);
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
                CKK_EC_EDWARDS => {
                    crate::mechanism::eddsa::check_private(
                        o.require(CKA_EC_PARAMS)?,
                        o.require(CKA_VALUE)?,
                    )?;
                }
                CKK_EC_MONTGOMERY => {
                    crate::mechanism::x25519::check_private(
                        o.require(CKA_EC_PARAMS)?,
                        o.require(CKA_VALUE)?,
                    )?;
                }
                CKK_ML_DSA => {
                    crate::mechanism::mldsa::complete_private(o)?;
                }
                CKK_ML_KEM => {
                    crate::mechanism::mlkem::complete_private(o)?;
                    set_default_bool(o, CKA_DECAPSULATE, true);
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
                    | CKK_HKDF
                    | CKK_CHACHA20
                    | CKK_DES3
                    | CKK_DES
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
            if kt == CKK_CHACHA20 && len != 32 {
                return Err(Error::AttributeValueInvalid(CKA_VALUE));
            }
            if kt == CKK_DES3 && len != 24 {
                return Err(Error::AttributeValueInvalid(CKA_VALUE));
            }
            // Single DES: 8 bytes; the parity bits are not checked (PKCS#11 leaves
            // that to the token, and legacy clients send keys without parity).
            if kt == CKK_DES && len != 8 {
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
