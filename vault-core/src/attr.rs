//! PKCS#11 attributes as the core stores them.
//!
//! An object is a map from attribute type (`CKA_*`) to its value in PKCS#11's own
//! encoding: `CK_BBOOL` is one byte (0 or 1), `CK_ULONG` is eight bytes little-endian
//! (the native layout on every platform vtoken builds for), everything else is the
//! raw byte string. Keeping the PKCS#11 encoding means the adapter copies values out
//! unchanged and the store needs no per-attribute schema.

use std::collections::BTreeMap;

use cryptoki_sys::*;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Attributes of one object, or a search/creation template.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes(BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>);

impl std::fmt::Debug for Attributes {
    /// Lists attribute types only: values may be secret and are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|k| format!("0x{k:x}")))
            .finish()
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

/// Attribute types whose value is a `CK_BBOOL`.
pub fn is_bool_attr(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_TOKEN
            | CKA_PRIVATE
            | CKA_MODIFIABLE
            | CKA_COPYABLE
            | CKA_DESTROYABLE
            | CKA_TRUSTED
            | CKA_SENSITIVE
            | CKA_ENCRYPT
            | CKA_DECRYPT
            | CKA_WRAP
            | CKA_UNWRAP
            | CKA_SIGN
            | CKA_SIGN_RECOVER
            | CKA_VERIFY
            | CKA_VERIFY_RECOVER
            | CKA_DERIVE
            | CKA_EXTRACTABLE
            | CKA_LOCAL
            | CKA_NEVER_EXTRACTABLE
            | CKA_ALWAYS_SENSITIVE
            | CKA_WRAP_WITH_TRUSTED
            | CKA_ALWAYS_AUTHENTICATE
            | CKA_ENCAPSULATE
            | CKA_DECAPSULATE
    )
}

/// Attribute types whose value is a `CK_ULONG`.
pub fn is_ulong_attr(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_CLASS
            | CKA_KEY_TYPE
            | CKA_CERTIFICATE_TYPE
            | CKA_CERTIFICATE_CATEGORY
            | CKA_MODULUS_BITS
            | CKA_VALUE_LEN
            | CKA_KEY_GEN_MECHANISM
            | CKA_JAVA_MIDP_SECURITY_DOMAIN
            | CKA_NAME_HASH_ALGORITHM
            | CKA_PARAMETER_SET
    )
}

/// Encodes a `CK_ULONG` value.
pub fn ulong_bytes(v: CK_ULONG) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

impl Attributes {
    /// An empty set.
    pub fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// Raw value of `t`, if present.
    pub fn get(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.0.get(&t).map(|v| v.as_slice())
    }

    /// Whether `t` is present.
    pub fn contains(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        self.0.contains_key(&t)
    }

    /// Sets the raw value of `t`, replacing any previous value (which is zeroized).
    pub fn set(&mut self, t: CK_ATTRIBUTE_TYPE, v: impl Into<Vec<u8>>) {
        if let Some(mut old) = self.0.insert(t, v.into()) {
            old.zeroize();
        }
    }

    /// Sets a `CK_BBOOL` attribute.
    pub fn set_bool(&mut self, t: CK_ATTRIBUTE_TYPE, v: bool) {
        self.set(t, vec![v as u8]);
    }

    /// Sets a `CK_ULONG` attribute.
    pub fn set_ulong(&mut self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) {
        self.set(t, ulong_bytes(v));
    }

    /// Removes `t` (its value is zeroized).
    pub fn remove(&mut self, t: CK_ATTRIBUTE_TYPE) {
        if let Some(mut old) = self.0.remove(&t) {
            old.zeroize();
        }
    }

    /// A `CK_BBOOL` attribute; `Err` if present with a wrong length.
    pub fn get_bool(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
        match self.get(t) {
            None => Ok(None),
            Some([b]) => Ok(Some(*b != 0)),
            Some(_) => Err(Error::AttributeValueInvalid(t)),
        }
    }

    /// A `CK_BBOOL` attribute with a default when absent (malformed counts as absent:
    /// templates are validated on the way in, so stored objects are always well formed).
    pub fn bool_or(&self, t: CK_ATTRIBUTE_TYPE, default: bool) -> bool {
        self.get_bool(t).ok().flatten().unwrap_or(default)
    }

    /// A `CK_ULONG` attribute; `Err` if present with a wrong length.
    pub fn get_ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
        match self.get(t) {
            None => Ok(None),
            Some(v) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                Ok(Some(u64::from_le_bytes(b) as CK_ULONG))
            }
            Some(v) if v.len() == 4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(v);
                Ok(Some(u32::from_le_bytes(b) as CK_ULONG))
            }
            Some(_) => Err(Error::AttributeValueInvalid(t)),
        }
    }

    /// A required `CK_ULONG` attribute.
    pub fn require_ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Result<CK_ULONG> {
        self.get_ulong(t)?
            .ok_or_else(|| Error::TemplateIncomplete(format!("missing attribute 0x{t:x}")))
    }

    /// A required byte-string attribute.
    pub fn require(&self, t: CK_ATTRIBUTE_TYPE) -> Result<&[u8]> {
        self.get(t)
            .ok_or_else(|| Error::TemplateIncomplete(format!("missing attribute 0x{t:x}")))
    }

    /// `CKA_CLASS`, if present.
    pub fn class(&self) -> Option<CK_OBJECT_CLASS> {
        self.get_ulong(CKA_CLASS).ok().flatten()
    }

    /// `CKA_KEY_TYPE`, if present.
    pub fn key_type(&self) -> Option<CK_KEY_TYPE> {
        self.get_ulong(CKA_KEY_TYPE).ok().flatten()
    }

    /// `CKA_LABEL` as UTF-8 (lossy), empty when absent.
    pub fn label(&self) -> String {
        self.get(CKA_LABEL)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }

    /// The postcard encoding of the attributes (the plaintext of a sealed record) in
    /// a buffer wiped on drop. The buffer is sized before serializing, so it never
    /// grows: a growing `Vec` would leave copies of secret values in freed memory.
    pub fn to_sealable(&self) -> Result<Zeroizing<Vec<u8>>> {
        // A varint is at most 10 bytes: the map length, then per attribute its type,
        // its value's length and the value.
        let bound = 10 + self.0.values().map(|v| 20 + v.len()).sum::<usize>();
        let mut buf = Zeroizing::new(vec![0u8; bound]);
        let used = postcard::to_slice(self, &mut buf[..])
            .map_err(|e| Error::General(format!("record encoding: {e}")))?
            .len();
        buf.truncate(used);
        Ok(buf)
    }

    /// Iterates over (type, value).
    pub fn iter(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &[u8])> {
        self.0.iter().map(|(k, v)| (*k, v.as_slice()))
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every attribute of `template` is present here with an equal value
    /// (PKCS#11 `C_FindObjects` matching). Booleans and ulongs compare by value.
    pub fn matches(&self, template: &Attributes) -> bool {
        template.iter().all(|(t, want)| match self.get(t) {
            None => false,
            Some(have) if is_bool_attr(t) => {
                matches!((have, want), ([a], [b]) if (*a != 0) == (*b != 0))
            }
            Some(have) if is_ulong_attr(t) => {
                let mut a = Attributes::new();
                a.set(t, have.to_vec());
                let mut b = Attributes::new();
                b.set(t, want.to_vec());
                matches!((a.get_ulong(t), b.get_ulong(t)), (Ok(Some(x)), Ok(Some(y))) if x == y)
            }
            Some(have) => have == want,
        })
    }

    /// Copies every attribute of `other` into `self` (overwriting).
    pub fn merge(&mut self, other: &Attributes) {
        for (t, v) in other.iter() {
            self.set(t, v.to_vec());
        }
    }
}

impl FromIterator<(CK_ATTRIBUTE_TYPE, Vec<u8>)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, Vec<u8>)>>(iter: I) -> Self {
        let mut a = Attributes::new();
        for (t, v) in iter {
            a.set(t, v);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_and_ulong_round_trip() {
        let mut a = Attributes::new();
        a.set_bool(CKA_TOKEN, true);
        a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        assert_eq!(a.get_bool(CKA_TOKEN).unwrap(), Some(true));
        assert_eq!(a.class(), Some(CKO_SECRET_KEY));
        a.set(CKA_TOKEN, vec![1, 2]);
        assert!(a.get_bool(CKA_TOKEN).is_err());
    }

    #[test]
    fn sealable_encoding_is_postcard() {
        let mut a = Attributes::new();
        assert_eq!(
            &a.to_sealable().unwrap()[..],
            &postcard::to_allocvec(&a).unwrap()[..]
        );
        a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        a.set(CKA_VALUE, vec![0xab; 70_000]);
        a.set(CKA_VENDOR_DEFINED | 0xffff_ffff, vec![]);
        a.set(u64::MAX as CK_ATTRIBUTE_TYPE, vec![1; 200]);
        let enc = a.to_sealable().unwrap();
        assert_eq!(&enc[..], &postcard::to_allocvec(&a).unwrap()[..]);
        assert_eq!(postcard::from_bytes::<Attributes>(&enc).unwrap(), a);
    }

    #[test]
    fn matching_normalises_booleans() {
        let mut obj = Attributes::new();
        obj.set(CKA_TOKEN, vec![5]);
        obj.set(CKA_LABEL, b"k".to_vec());
        let mut t = Attributes::new();
        t.set_bool(CKA_TOKEN, true);
        assert!(obj.matches(&t));
        t.set(CKA_LABEL, b"x".to_vec());
        assert!(!obj.matches(&t));
    }

    #[test]
    fn debug_never_prints_values() {
        let mut a = Attributes::new();
        a.set(CKA_VALUE, b"supersecret".to_vec());
        assert!(!format!("{a:?}").contains("supersecret"));
    }
}
