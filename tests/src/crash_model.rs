//! What `vt-crash` (the killed workload) and `crash-harness` (its checker) agree on:
//! PINs, the HOTP credential, and the exact content of every object and vault entry
//! the workload writes, so the harness can compare what it finds byte for byte.
//!
//! Included by both binaries with `#[path]` (it is not part of the library).

#![allow(dead_code)]

use vault_core::pkcs11::*;
use vault_core::vault::{Entry, Kind};
use vault_core::Attributes;

/// SO PIN of the crash token.
pub const SO_PIN: &str = "crash-so-4711";
/// User PIN of the crash token.
pub const USER_PIN: &str = "crash-user-0815";
/// A wrong user PIN of a valid length (so every attempt counts as a try).
pub const WRONG_PIN: &str = "crash-wrong-999";
/// `CKA_APPLICATION` of the workload's data objects.
pub const APP: &[u8] = b"vt-crash";
/// The HOTP credential: issuer and account (its name is `issuer:account`).
pub const OTP_ISSUER: &str = "Crash";
/// See [`OTP_ISSUER`].
pub const OTP_ACCOUNT: &str = "hotp";
/// The HOTP secret.
pub const OTP_SECRET: &[u8] = b"12345678901234567890";
/// Digits of the HOTP codes.
pub const OTP_DIGITS: u32 = 6;

/// The HOTP credential's name.
pub fn otp_name() -> String {
    format!("{OTP_ISSUER}:{OTP_ACCOUNT}")
}

/// `CKA_VALUE` of object `label` at version `ver`: label, version and a pattern
/// that depends on both, so a value from another object or version is noticed.
pub fn obj_value(label: &str, ver: u64) -> Vec<u8> {
    let mut v = format!("vt-crash:{label}:{ver}:").into_bytes();
    let seed = label.bytes().fold(ver.wrapping_mul(0x9e37_79b9), |a, b| {
        a.wrapping_mul(31).wrapping_add(b as u64)
    });
    let n = 32 + (seed % 200) as usize;
    v.extend((0..n).map(|i| (seed.wrapping_add(i as u64 * 7919) >> 3) as u8));
    v
}

/// `CKA_OBJECT_ID` of object `label` at version `ver`: written in the same update as
/// the value, so a half-applied update shows as a mismatch between the two.
pub fn obj_oid(label: &str, ver: u64) -> Vec<u8> {
    format!("oid:{label}:{ver}").into_bytes()
}

/// Whether object `label` is private (every other one is public).
pub fn obj_private(label: &str) -> bool {
    label.bytes().map(|b| b as u32).sum::<u32>() & 1 == 0
}

/// The template that creates object `label` at version 0.
pub fn obj_template(label: &str) -> Attributes {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_DATA);
    a.set_bool(CKA_TOKEN, true);
    a.set_bool(CKA_PRIVATE, obj_private(label));
    a.set(CKA_LABEL, label.as_bytes().to_vec());
    a.set(CKA_APPLICATION, APP.to_vec());
    a.set(CKA_OBJECT_ID, obj_oid(label, 0));
    a.set(CKA_VALUE, obj_value(label, 0));
    a
}

/// The template that moves object `label` to version `ver`.
pub fn obj_update(label: &str, ver: u64) -> Attributes {
    let mut a = Attributes::new();
    a.set(CKA_OBJECT_ID, obj_oid(label, ver));
    a.set(CKA_VALUE, obj_value(label, ver));
    a
}

/// The template that finds every workload object.
pub fn obj_search() -> Attributes {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_DATA);
    a.set_bool(CKA_TOKEN, true);
    a.set(CKA_APPLICATION, APP.to_vec());
    a
}

/// The version an object's `CKA_VALUE` claims (`vt-crash:LABEL:VER:...`), if the
/// value has that shape for `label`.
pub fn value_version(label: &str, value: &[u8]) -> Option<u64> {
    let prefix = format!("vt-crash:{label}:");
    let rest = value.strip_prefix(prefix.as_bytes())?;
    let end = rest.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The vault entry titled `title` the workload stores.
pub fn vault_entry(title: &str) -> Entry {
    Entry::new(Kind::Website, title)
        .with("username", &format!("user-{title}"), false)
        .with("password", &format!("pw-{title}-{}", title.len() * 7), true)
        .with_url(&format!("https://{title}.example"))
}

/// Whether a stored entry is exactly what [`vault_entry`] wrote for `title`
/// (ignoring the timestamps the token sets).
pub fn vault_entry_matches(title: &str, got: &Entry) -> bool {
    let want = vault_entry(title);
    got.title == want.title
        && got.kind == want.kind
        && got.url == want.url
        && ["username", "password"].iter().all(
            |f| matches!((got.field(f), want.field(f)), (Some(a), Some(b)) if a.value == b.value),
        )
}
