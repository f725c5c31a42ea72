//! Subject names that carry only a token serial (E5, E7: no personal data).

use const_oid::db::rfc4519;
use der::asn1::{Any, SetOfVec};
use der::{Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::{Error, Result};

/// Longest token serial accepted (X.520 ub-serial-number is 64).
const MAX_SERIAL: usize = 64;

/// A token serial must be 1..=64 characters of the PrintableString alphabet.
pub(crate) fn check_serial(serial: &str) -> Result<()> {
    let printable = |c: char| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c);
    if serial.is_empty() || serial.len() > MAX_SERIAL || !serial.chars().all(printable) {
        return Err(Error::InvalidSerial(serial.to_string()));
    }
    Ok(())
}

fn rdn(atv: AttributeTypeAndValue) -> Result<RelativeDistinguishedName> {
    let mut set = SetOfVec::new();
    set.insert(atv)?;
    Ok(RelativeDistinguishedName(set))
}

/// `CN=vtoken <serial>, serialNumber=<serial>` — the only subject vtoken certificates and
/// requests carry.
pub(crate) fn token_subject(serial: &str) -> Result<Name> {
    check_serial(serial)?;
    let cn = format!("vtoken {serial}");
    let cn = AttributeTypeAndValue {
        oid: rfc4519::COMMON_NAME,
        value: Any::new(Tag::Utf8String, cn.as_bytes())?,
    };
    let sn = AttributeTypeAndValue {
        oid: rfc4519::SERIAL_NUMBER,
        value: Any::new(Tag::PrintableString, serial.as_bytes())?,
    };
    Ok(RdnSequence(vec![rdn(cn)?, rdn(sn)?]))
}

/// `CN=<name>, O=vtoken` for a CA.
pub(crate) fn ca_subject(name: &str) -> Result<Name> {
    if name.is_empty() || name.len() > 64 {
        return Err(Error::Malformed(format!(
            "CA name must be 1 to 64 characters: {name:?}"
        )));
    }
    let o = AttributeTypeAndValue {
        oid: rfc4519::ORGANIZATION_NAME,
        value: Any::new(Tag::Utf8String, &b"vtoken"[..])?,
    };
    let cn = AttributeTypeAndValue {
        oid: rfc4519::COMMON_NAME,
        value: Any::new(Tag::Utf8String, name.as_bytes())?,
    };
    Ok(RdnSequence(vec![rdn(o)?, rdn(cn)?]))
}

/// The serialNumber attribute of a name (PrintableString or UTF8String).
pub(crate) fn serial_of(name: &Name) -> Result<String> {
    let atv = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == rfc4519::SERIAL_NUMBER)
        .ok_or(Error::NoTokenSerial)?;
    let text = match atv.value.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            std::str::from_utf8(atv.value.value())
                .map_err(|_| Error::Malformed("serialNumber is not text".into()))?
        }
        other => {
            return Err(Error::Malformed(format!(
                "serialNumber has unexpected type {other}"
            )))
        }
    };
    check_serial(text)?;
    Ok(text.to_string())
}
