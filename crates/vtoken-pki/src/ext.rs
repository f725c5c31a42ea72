//! Building and reading X.509 extensions.

use const_oid::AssociatedOid;
use der::asn1::OctetString;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::Extension;

use crate::Result;

/// An extension from a typed value (its OID comes from the type).
pub(crate) fn make<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Extension> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Find and decode the extension of type `T`, if present.
pub(crate) fn find<'a, T>(exts: &'a [Extension]) -> Result<Option<(bool, T)>>
where
    T: AssociatedOid + Decode<'a>,
{
    match exts.iter().find(|e| e.extn_id == T::OID) {
        None => Ok(None),
        Some(e) => Ok(Some((e.critical, T::from_der(e.extn_value.as_bytes())?))),
    }
}

/// Key identifier: the first 160 bits of SHA-256 over the subjectPublicKey bits
/// (RFC 7093 section 2, method 1).
pub(crate) fn key_id(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    let digest = Sha256::digest(spki.subject_public_key.raw_bytes());
    digest[..20].to_vec()
}
