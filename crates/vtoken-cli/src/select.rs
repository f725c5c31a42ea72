//! Finding objects by label, CKA_ID or handle, and describing them for listings.

use cryptoki_sys::*;
use serde::Serialize;
use vault_core::mechanism::backend::Curve;
use vault_core::Attributes;

use crate::args::Selector;
use crate::context::Open;
use crate::error::{bail, CliError, Result};

/// Parses a hex CKA_ID (`01ab`, `0x01ab` or `01:ab`).
pub fn parse_id(s: &str) -> Result<Vec<u8>> {
    let t: String = s
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    hex::decode(&t).map_err(|_| CliError::new(format!("--id '{s}' is not hex (e.g. 01ab)")))
}

/// The objects a selector names, restricted to `classes` (all classes if empty).
pub fn select(open: &Open, sel: &Selector, classes: &[CK_OBJECT_CLASS]) -> Result<Vec<u64>> {
    if sel.label.is_none() && sel.id.is_none() && sel.handle.is_none() {
        bail!("name the object with --label, --id or --handle");
    }
    let mut t = Attributes::new();
    if let Some(l) = &sel.label {
        t.set(CKA_LABEL, l.as_bytes().to_vec());
    }
    if let Some(id) = &sel.id {
        t.set(CKA_ID, parse_id(id)?);
    }
    let ids = match sel.handle {
        Some(h) => {
            let a = match open.token.attributes(h) {
                Ok(a) => a,
                Err(vault_core::Error::ObjectHandleInvalid) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            if a.matches(&t) {
                vec![h]
            } else {
                Vec::new()
            }
        }
        None => open.token.search(&t)?,
    };
    if classes.is_empty() {
        return Ok(ids);
    }
    let mut out = Vec::new();
    for id in ids {
        let a = open.token.attributes(id)?;
        if a.class().is_some_and(|c| classes.contains(&c)) {
            out.push(id);
        }
    }
    Ok(out)
}

/// How a selector reads in messages.
pub fn describe_selector(sel: &Selector) -> String {
    let mut parts = Vec::new();
    if let Some(l) = &sel.label {
        parts.push(format!("label '{l}'"));
    }
    if let Some(i) = &sel.id {
        parts.push(format!("id {i}"));
    }
    if let Some(h) = sel.handle {
        parts.push(format!("handle {h}"));
    }
    parts.join(", ")
}

/// The name of an object class.
pub fn class_name(c: Option<CK_OBJECT_CLASS>) -> &'static str {
    match c {
        Some(CKO_DATA) => "data",
        Some(CKO_CERTIFICATE) => "certificate",
        Some(CKO_PUBLIC_KEY) => "public-key",
        Some(CKO_PRIVATE_KEY) => "private-key",
        Some(CKO_SECRET_KEY) => "secret-key",
        _ => "other",
    }
}

/// The name of a key type.
pub fn key_type_name(k: Option<CK_KEY_TYPE>) -> Option<&'static str> {
    Some(match k? {
        CKK_RSA => "rsa",
        CKK_EC => "ec",
        CKK_AES => "aes",
        CKK_DES3 => "des3",
        CKK_GENERIC_SECRET => "generic-secret",
        CKK_SHA_1_HMAC => "sha1-hmac",
        CKK_SHA224_HMAC => "sha224-hmac",
        CKK_SHA256_HMAC => "sha256-hmac",
        CKK_SHA384_HMAC => "sha384-hmac",
        CKK_SHA512_HMAC => "sha512-hmac",
        _ => "other",
    })
}

/// The curve of an EC key object.
pub fn curve_of(a: &Attributes) -> Option<Curve> {
    a.get(CKA_EC_PARAMS).and_then(Curve::from_ec_params)
}

/// A certificate's subject as text (RFC 4514), if it parses.
pub fn subject_text(der: &[u8]) -> Option<String> {
    use der::Decode;
    x509_cert::name::Name::from_der(der)
        .ok()
        .map(|n| n.to_string())
}

/// One object as listings show it. Holds no secret values.
#[derive(Debug, Serialize)]
pub struct ObjectInfo {
    pub handle: u64,
    pub class: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<&'static str>,
    pub label: String,
    /// CKA_ID in hex.
    pub id: String,
    /// RSA modulus bits, EC field bits or secret key bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u64>,
    pub token: bool,
    pub private: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extractable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<bool>,
    /// Permitted uses (sign, verify, encrypt, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Private or secret key flagged for the picture-verification gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gated: Option<bool>,
}

impl ObjectInfo {
    /// Describes the object `handle` with attributes `a`.
    pub fn new(handle: u64, a: &Attributes) -> ObjectInfo {
        let class = a.class();
        let is_key = matches!(
            class,
            Some(CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY)
        );
        let secret_bearing = matches!(class, Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY));
        let bits = match a.key_type() {
            Some(CKK_RSA) => a.get_ulong(CKA_MODULUS_BITS).ok().flatten(),
            Some(CKK_EC) => curve_of(a).map(|c| c.bits() as u64),
            Some(_) if class == Some(CKO_SECRET_KEY) => {
                a.get_ulong(CKA_VALUE_LEN).ok().flatten().map(|l| l * 8)
            }
            _ => None,
        };
        let mut usage = Vec::new();
        if is_key {
            for (t, n) in [
                (CKA_SIGN, "sign"),
                (CKA_VERIFY, "verify"),
                (CKA_ENCRYPT, "encrypt"),
                (CKA_DECRYPT, "decrypt"),
                (CKA_WRAP, "wrap"),
                (CKA_UNWRAP, "unwrap"),
                (CKA_DERIVE, "derive"),
            ] {
                if a.bool_or(t, false) {
                    usage.push(n);
                }
            }
        }
        ObjectInfo {
            handle,
            class: class_name(class),
            key_type: if is_key {
                key_type_name(a.key_type())
            } else {
                None
            },
            label: a.label(),
            id: hex::encode(a.get(CKA_ID).unwrap_or_default()),
            bits,
            token: a.bool_or(CKA_TOKEN, false),
            private: a.bool_or(CKA_PRIVATE, false),
            sensitive: secret_bearing.then(|| a.bool_or(CKA_SENSITIVE, true)),
            extractable: secret_bearing.then(|| a.bool_or(CKA_EXTRACTABLE, false)),
            local: is_key.then(|| a.bool_or(CKA_LOCAL, false)),
            usage,
            subject: if class == Some(CKO_CERTIFICATE) {
                a.get(CKA_SUBJECT).and_then(subject_text)
            } else {
                None
            },
            gated: secret_bearing.then(|| a.bool_or(vault_core::gate::CKA_VTOKEN_GATED, false)),
        }
    }

    /// One line of text for human listings.
    pub fn line(&self) -> String {
        let mut s = format!("{:>5}  {:<12}", self.handle, self.class);
        let kt = match (self.key_type, self.bits) {
            (Some(k), Some(b)) => format!("{k}-{b}"),
            (Some(k), None) => k.to_string(),
            _ => String::new(),
        };
        s.push_str(&format!(" {kt:<10} label={:?} id={}", self.label, self.id));
        let mut flags = Vec::new();
        if self.private {
            flags.push("private");
        }
        if self.sensitive == Some(true) {
            flags.push("sensitive");
        }
        if self.extractable == Some(true) {
            flags.push("extractable");
        }
        if !self.token {
            flags.push("session");
        }
        if self.gated == Some(true) {
            flags.push("gated");
        }
        if !flags.is_empty() {
            s.push_str(&format!(" [{}]", flags.join(",")));
        }
        if !self.usage.is_empty() {
            s.push_str(&format!(" usage={}", self.usage.join(",")));
        }
        if let Some(subj) = &self.subject {
            s.push_str(&format!(" subject={subj:?}"));
        }
        s
    }
}
