//! KeePass KDBX 4 import and export (`vtoken vault import-kdbx` / `export-kdbx`),
//! through the `keepass` crate. The database is decrypted and encrypted in this
//! process (as a CSV file is read here); the token sees vault records
//! ([`vault_core::vault::Record`]) and matches, merges and confirms them exactly as
//! for a CSV import.
//!
//! Mapping (what KeePassXC shows): `Title`, `UserName` (an e-mail entry's
//! `address`), `Password`, `URL`, `Notes` are the standard fields; the group path
//! below the root group (`Work`) is the entry's `group` field; KeePassXC's `otp` attribute (an
//! `otpauth://` URI) is the entry's OTP credential; the kind is the attribute
//! `vtoken-kind` (absent: website); every other field is an attribute of its own
//! name, protected (hidden in KeePassXC) exactly when it is secret on the token.

use std::path::Path;

use keepass::db::{Entry as KEntry, Group, Value};
use keepass::{Database, DatabaseKey};
use vault_core::vault::csv::parse_totp;
use vault_core::vault::{Entry, Kind, Record, OTP_LINK};
use zeroize::Zeroizing;

use crate::error::{bail, CliError, Result};

/// The attribute holding an entry's kind.
const KIND_ATTR: &str = "vtoken-kind";
/// KeePassXC's attribute for an entry's TOTP settings (`otpauth://` URI).
const OTP_ATTR: &str = "otp";

fn user_field(kind: Kind) -> &'static str {
    if kind == Kind::Email {
        "address"
    } else {
        "username"
    }
}

fn text(v: &Value) -> Option<Zeroizing<String>> {
    match v {
        Value::Unprotected(s) => Some(Zeroizing::new(s.clone())),
        Value::Protected(p) => Some(Zeroizing::new(
            String::from_utf8_lossy(p.unsecure()).into_owned(),
        )),
        Value::Bytes(_) => None,
    }
}

fn unix(t: Option<&chrono::NaiveDateTime>) -> u64 {
    t.map(|t| t.and_utc().timestamp())
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0)
}

fn naive(t: u64) -> Option<chrono::NaiveDateTime> {
    chrono::DateTime::from_timestamp(i64::try_from(t).ok()?, 0).map(|d| d.naive_utc())
}

/// One KeePass entry as a record; `group` is its group path below the root
/// (`Work/Mail`; empty in the root).
fn record_of(k: &KEntry, group: &str) -> Result<Record> {
    let get = |name: &str| k.fields.get(name).and_then(text);
    let kind = match get(KIND_ATTR) {
        Some(s) => s
            .parse::<Kind>()
            .map_err(|e| CliError::new(e.to_string()))?,
        None => Kind::Website,
    };
    let title = get("Title")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let url = get("URL").map(|u| u.to_string()).unwrap_or_default();
    let title = match (title.is_empty(), url.is_empty()) {
        (false, _) => title,
        (true, false) => url.clone(),
        (true, true) => "untitled".to_string(),
    };
    let mut e = Entry::new(kind, &title);
    e.url = url;
    let username = get("UserName").unwrap_or_default();
    for (name, value) in &k.fields {
        let Some(v) = text(value) else { continue };
        if v.is_empty() {
            continue;
        }
        let secret = matches!(value, Value::Protected(_));
        match name.as_str() {
            "Title" | "URL" | KIND_ATTR | OTP_ATTR => {}
            "UserName" => e.set(user_field(kind), &v, false),
            "Password" => e.set("password", &v, true),
            "Notes" => e.set("notes", &v, false),
            n => e.set(n, &v, secret),
        }
    }
    if !group.is_empty() {
        e.set("group", group, false);
    }
    let mut otp = None;
    if let Some(v) = get(OTP_ATTR).filter(|v| !v.trim().is_empty()) {
        match parse_totp(&v, &title, &username) {
            Ok(u) => otp = Some(u),
            // Kept as it was (secret), so nothing is lost.
            Err(_) => e.set("totp", &v, true),
        }
    }
    // KeePass entries keep their own field order only loosely: sort for a stable
    // comparison on re-import.
    e.fields.sort_by(|a, b| a.name.cmp(&b.name));
    e.created = unix(k.times.get_creation());
    e.modified = unix(k.times.get_last_modification());
    Ok(Record { entry: e, otp })
}

fn walk(g: &Group, path: &str, out: &mut Vec<Record>) -> Result<()> {
    for k in &g.entries {
        out.push(record_of(k, path)?);
    }
    for sub in &g.groups {
        // The recycle bin's entries are deleted ones: not imported.
        if sub.name == "Recycle Bin" {
            continue;
        }
        let sub_path = if path.is_empty() {
            sub.name.clone()
        } else {
            format!("{path}/{}", sub.name)
        };
        walk(sub, &sub_path, out)?;
    }
    Ok(())
}

/// Reads a KDBX (3.1 or 4) database into records.
pub(super) fn read(path: &Path, passphrase: &str) -> Result<Vec<Record>> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let db = Database::open(&mut f, DatabaseKey::new().with_password(passphrase)).map_err(|e| {
        CliError::new(format!(
            "{}: cannot open the KeePass database ({e}); check the passphrase",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    // Paths below the root group, whatever its name (as the CSV import keeps them).
    walk(&db.root, "", &mut out)?;
    Ok(out)
}

fn set(k: &mut KEntry, name: &str, value: &str, protected: bool) {
    let v = if protected {
        Value::Protected(value.as_bytes().to_vec().into())
    } else {
        Value::Unprotected(value.to_string())
    };
    k.fields.insert(name.to_string(), v);
}

/// The group at `path` under `root` (`Root/Work/Mail` or `Work/Mail`: a leading
/// `Root` is the root itself), created as needed.
fn group_at<'a>(root: &'a mut Group, path: &str) -> &'a mut Group {
    let mut g = root;
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.first() == Some(&"Root") {
        parts.remove(0);
    }
    for part in parts.into_iter().map(str::to_string) {
        let i = match g.groups.iter().position(|x| x.name == part) {
            Some(i) => i,
            None => {
                g.groups.push(Group::new(&part));
                g.groups.len() - 1
            }
        };
        g = &mut g.groups[i];
    }
    g
}

/// A name-based UUID (RFC 9562 version 8: SHA-256, cut to 128 bits, with the
/// version and variant bits set) for `parts` under the namespace `kind`. The same
/// inputs always give the same UUID, so the same entry exported twice is one entry
/// to KeePassXC (its merge matches entries and groups by UUID, and would otherwise
/// duplicate every one).
fn stable_uuid(kind: &str, parts: &[&[u8]]) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"vtoken kdbx export\0");
    h.update(kind.as_bytes());
    for p in parts {
        // Length-prefixed, so no two different part lists hash the same input.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b)
}

/// Gives `g` and every group below it a UUID derived from the token and the
/// group's path, so repeated exports name the same groups alike.
fn stable_group_uuids(g: &mut Group, serial: &str, path: &str) {
    g.uuid = stable_uuid("group", &[serial.as_bytes(), path.as_bytes()]);
    for sub in &mut g.groups {
        let p = format!("{path}/{}", sub.name);
        stable_group_uuids(sub, serial, &p);
    }
}

/// Writes records as a KDBX 4 database under `passphrase` (AES-256, Argon2d 64 MiB).
/// Each entry's UUID is derived from the token's serial and the entry's id, and
/// each group's from its path, so exporting twice and merging in KeePassXC adds
/// nothing.
pub(super) fn write(
    records: &[(u64, Record)],
    serial: &str,
    path: &Path,
    passphrase: &str,
) -> Result<()> {
    let mut config = keepass::config::DatabaseConfig::default();
    if let keepass::config::KdfConfig::Argon2 {
        iterations,
        memory,
        parallelism,
        ..
    } = &mut config.kdf_config
    {
        // KeePassXC's default memory; iterations for about a second.
        *memory = 64 << 20;
        *iterations = 10;
        *parallelism = 2;
    }
    let mut db = Database::new(config);
    db.meta.generator = Some("vtoken".into());
    for (id, r) in records {
        let e = &r.entry;
        let mut k = KEntry::new();
        k.uuid = stable_uuid("entry", &[serial.as_bytes(), &id.to_be_bytes()]);
        set(&mut k, "Title", &e.title, false);
        set(&mut k, "URL", &e.url, false);
        if e.kind != Kind::Website {
            set(&mut k, KIND_ATTR, e.kind.as_str(), false);
        }
        for f in &e.fields {
            match f.name.as_str() {
                "group" | OTP_LINK => {}
                n if n == user_field(e.kind) => set(&mut k, "UserName", &f.value, false),
                "password" => set(&mut k, "Password", &f.value, true),
                "notes" => set(&mut k, "Notes", &f.value, false),
                "totp" => set(&mut k, OTP_ATTR, &f.value, true),
                n => set(&mut k, n, &f.value, f.secret),
            }
        }
        if let Some(u) = &r.otp {
            set(&mut k, OTP_ATTR, &Zeroizing::new(u.to_uri()), true);
        }
        for (name, default) in [("UserName", ""), ("Password", ""), ("Notes", "")] {
            if !k.fields.contains_key(name) {
                set(&mut k, name, default, name == "Password");
            }
        }
        if let Some(t) = naive(e.created) {
            k.times.set_creation(t);
        }
        if let Some(t) = naive(e.modified) {
            k.times.set_last_modification(t);
        }
        let group = e
            .field("group")
            .map(|f| f.value.clone())
            .unwrap_or_default();
        group_at(&mut db.root, &group).entries.push(k);
    }
    stable_group_uuids(&mut db.root, serial, "");
    let mut buf = Zeroizing::new(Vec::new());
    db.save(&mut *buf, DatabaseKey::new().with_password(passphrase))
        .map_err(|e| CliError::new(format!("cannot write the KeePass database: {e}")))?;
    if buf.is_empty() {
        bail!("cannot write the KeePass database: nothing was produced");
    }
    super::write_private(path, &buf)
}
