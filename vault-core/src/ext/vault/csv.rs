//! KeePassXC CSV import and export.
//!
//! KeePassXC (Database → Export → CSV File) writes one header row
//! `"Group","Title","Username","Password","URL","Notes","TOTP","Icon","Last Modified","Created"`
//! and one row per entry, every field quoted (RFC 4180: `""` inside quotes, line
//! breaks allowed in quoted fields), times as ISO 8601 UTC (`2024-01-31T12:00:00Z`).
//! Import maps columns by their header name (only `Title` is required; older
//! exports without `TOTP`, `Icon` or the times work), so column order does not
//! matter. vtoken's export adds a `Kind` column and one named column per other
//! field (a bank card's `bank`, `card_number (secret)`, `card_pin (secret)`), so
//! its own export reads back without loss; KeePassXC ignores the extra columns.
//! The `TOTP` column is an OTP credential on the token ([`super::interop`]).

use otp_core::OtpUri;
use zeroize::Zeroizing;

use super::interop::{ImportReport, Record};
use super::*;
use crate::error::{Error, Result};

/// The columns KeePassXC writes, in its order.
pub const COLUMNS: [&str; 10] = [
    "Group",
    "Title",
    "Username",
    "Password",
    "URL",
    "Notes",
    "TOTP",
    "Icon",
    "Last Modified",
    "Created",
];

fn bad(m: impl Into<String>) -> Error {
    Error::ArgumentsBad(format!("CSV: {}", m.into()))
}

/// Splits CSV text into rows of fields (RFC 4180).
pub fn parse(text: &str) -> Result<Vec<Vec<String>>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1usize;
    let mut any = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                any = true;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                if any || !field.is_empty() {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                any = false;
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(bad(format!("unterminated quoted field (line {line})")));
    }
    if any || !field.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Unix time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso8601(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let s = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS` with an optional `Z` or fraction (UTC); `None` if
/// it is not that form.
pub fn parse_iso8601(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo, d);
    let t = days * 86_400 + (h * 3600 + mi * 60 + se) as i64;
    u64::try_from(t).ok()
}

/// The column of an entry's kind (after KeePassXC's ten; KeePassXC ignores it).
pub const KIND_COLUMN: &str = "Kind";
/// The suffix of an extra column whose values are secret (`card_pin (secret)`).
const SECRET_SUFFIX: &str = " (secret)";

/// The field an entry's `Username` column holds: `address` for e-mail entries,
/// `username` otherwise.
fn user_field(kind: Kind) -> &'static str {
    if kind == Kind::Email {
        "address"
    } else {
        "username"
    }
}

/// Fields that have a column of their own (not an extra, named column).
fn mapped(kind: Kind, name: &str) -> bool {
    name == user_field(kind)
        || [
            "password",
            "notes",
            "group",
            "totp",
            super::interop::OTP_LINK,
        ]
        .contains(&name)
}

/// The credential of a `TOTP` cell: an `otpauth://` URI (KeePassXC 2.6+), the
/// older `key=BASE32&step=30&size=6` settings, or a bare base32 secret; the latter
/// two are named `TITLE:USERNAME` (or `TITLE`), as KeePassXC names them.
pub fn parse_totp(cell: &str, title: &str, username: &str) -> Result<OtpUri> {
    let cell = cell.trim();
    if cell.to_ascii_lowercase().starts_with("otpauth:") {
        return OtpUri::parse(cell).map_err(|e| bad(format!("TOTP of \"{title}\": {e}")));
    }
    let mut key = cell;
    let (mut step, mut size) = (30u64, 6u32);
    if cell.contains("key=") {
        for kv in cell.split('&') {
            match kv.split_once('=') {
                Some(("key", v)) => key = v,
                Some(("step", v)) => step = v.parse().unwrap_or(30),
                Some(("size", v)) => size = v.parse().unwrap_or(6),
                _ => {}
            }
        }
    }
    let secret =
        otp_core::base32::decode(key).map_err(|e| bad(format!("TOTP of \"{title}\": {e}")))?;
    let issuer = title.replace(':', " ");
    let issuer = issuer.trim();
    let account = if username.is_empty() {
        issuer
    } else {
        username
    };
    let mut u = OtpUri::new_totp((!issuer.is_empty()).then_some(issuer), account, secret);
    u.period = step;
    u.digits = size;
    u.validate()
        .map_err(|e| bad(format!("TOTP of \"{title}\": {e}")))?;
    Ok(u)
}

/// Reads a KeePassXC CSV export (or vtoken's, which adds a `Kind` column and one
/// named column per other field) into records. Columns are found by their header,
/// so order does not matter; only `Title` is required. A `TOTP` cell becomes the
/// record's OTP credential (one that cannot be read as a credential is kept as a
/// secret `totp` field instead, so nothing is lost).
pub fn parse_records(text: &str) -> Result<Vec<Record>> {
    let rows = parse(text)?;
    let mut it = rows.into_iter();
    let header = it.next().ok_or_else(|| bad("the file is empty"))?;
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let title = col("Title").ok_or_else(|| {
        bad(format!(
            "no \"Title\" column: not a KeePassXC export (expected the header {})",
            COLUMNS.map(quote).join(",")
        ))
    })?;
    let (group, user, pass, url, notes, totp, modified, created, kind) = (
        col("Group"),
        col("Username"),
        col("Password"),
        col("URL"),
        col("Notes"),
        col("TOTP"),
        col("Last Modified"),
        col("Created"),
        col(KIND_COLUMN),
    );
    // Every other column is a named field (`NAME` or `NAME (secret)`).
    let extras: Vec<(usize, String, bool)> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| !COLUMNS.contains(&h.trim()) && h.trim() != KIND_COLUMN)
        .filter(|(_, h)| !h.trim().is_empty())
        .map(|(i, h)| match h.trim().strip_suffix(SECRET_SUFFIX) {
            Some(n) => (i, n.to_string(), true),
            None => (i, h.trim().to_string(), false),
        })
        .collect();
    let rows: Vec<Zeroizing<Vec<String>>> = it.map(Zeroizing::new).collect();
    let root = root_group(&rows, group);
    let mut out = Vec::new();
    for (n, row) in rows.into_iter().enumerate() {
        if row.len() != header.len() {
            return Err(bad(format!(
                "row {} has {} fields, the header {}",
                n + 2,
                row.len(),
                header.len()
            )));
        }
        let get = |c: Option<usize>| c.map(|c| row[c].as_str()).unwrap_or("");
        let k = match get(kind).trim() {
            "" => Kind::Website,
            s => s
                .parse::<Kind>()
                .map_err(|e| bad(format!("row {}: {e}", n + 2)))?,
        };
        let mut e = Entry::new(k, row[title].trim());
        if e.title.is_empty() {
            e.title = if get(url).is_empty() {
                format!("imported {}", n + 1)
            } else {
                get(url).to_string()
            };
        }
        e.url = get(url).to_string();
        if !get(user).is_empty() {
            e.set(user_field(k), get(user), false);
        }
        if !get(pass).is_empty() {
            e.set("password", get(pass), true);
        }
        if !get(notes).is_empty() {
            e.set("notes", get(notes), false);
        }
        let g = get(group);
        let g = match &root {
            Some(r) if g == r => "",
            Some(r) => g
                .strip_prefix(r.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(g),
            None => g,
        };
        if !g.is_empty() {
            e.set("group", g, false);
        }
        for (i, name, secret) in &extras {
            if !row[*i].is_empty() {
                e.set(name, &row[*i], *secret);
            }
        }
        let mut otp = None;
        if !get(totp).trim().is_empty() {
            match parse_totp(get(totp), &e.title, get(user)) {
                Ok(u) => otp = Some(u),
                Err(_) => e.set("totp", get(totp), true),
            }
        }
        e.created = parse_iso8601(get(created)).unwrap_or(0);
        e.modified = parse_iso8601(get(modified)).unwrap_or(e.created);
        out.push(Record { entry: e, otp });
    }
    Ok(out)
}

/// The root group's name when every row's `Group` path starts with the same
/// component, as in every KeePassXC export (`Passwords`, `Passwords/Work`; vtoken
/// writes `Root`): entries then keep their path below the root (`Work`), so the
/// same entry has the same group whichever database or format it came through.
fn root_group(rows: &[Zeroizing<Vec<String>>], group: Option<usize>) -> Option<String> {
    let c = group?;
    let mut first: Option<&str> = None;
    for r in rows {
        let top = r.get(c)?.split('/').next().unwrap_or("");
        match first {
            None => first = Some(top),
            Some(f) if f == top => {}
            Some(_) => return None,
        }
    }
    first.filter(|f| !f.is_empty()).map(str::to_string)
}

/// Reads a KeePassXC CSV export into entries (OTP credentials left aside).
pub fn parse_keepassxc(text: &str) -> Result<Vec<Entry>> {
    Ok(parse_records(text)?.into_iter().map(|r| r.entry).collect())
}

/// Writes entries as a KeePassXC CSV export; secret values only with `secrets`.
pub fn write_keepassxc(entries: &[Entry], secrets: bool) -> Zeroizing<String> {
    let records: Vec<Record> = entries.iter().cloned().map(Record::new).collect();
    write_records(&records, secrets)
}

/// Writes records as a KeePassXC CSV export: KeePassXC's ten columns (the user
/// name-like field in `Username`, only a `password` field in `Password`, the OTP
/// credential's `otpauth://` URI in `TOTP`, the group path under the root group
/// `Root` in `Group`), then `Kind` and one column per other field name (`NAME (secret)` when
/// the field is secret in any entry), so a bank card's number and PIN stay named.
/// Secret values only with `secrets`.
pub fn write_records(records: &[Record], secrets: bool) -> Zeroizing<String> {
    let mut extras: Vec<(String, bool)> = Vec::new();
    for r in records {
        for f in &r.entry.fields {
            if mapped(r.entry.kind, &f.name) {
                continue;
            }
            match extras.iter_mut().find(|(n, _)| *n == f.name) {
                Some((_, s)) => *s |= f.secret,
                None => extras.push((f.name.clone(), f.secret)),
            }
        }
    }
    extras.sort();
    let mut header: Vec<String> = COLUMNS.map(quote).to_vec();
    header.push(quote(KIND_COLUMN));
    for (n, s) in &extras {
        header.push(quote(&format!(
            "{n}{}",
            if *s { SECRET_SUFFIX } else { "" }
        )));
    }
    let mut out = Zeroizing::new(header.join(","));
    out.push('\n');
    for r in records {
        let e = &r.entry;
        let value = |name: &str| -> Zeroizing<String> {
            Zeroizing::new(
                e.field(name)
                    .filter(|f| secrets || !f.secret)
                    .map(|f| f.value.clone())
                    .unwrap_or_default(),
            )
        };
        let group = match e.field("group") {
            Some(f) => format!("Root/{}", f.value),
            None => "Root".into(),
        };
        let totp = match (&r.otp, secrets) {
            (Some(u), true) => Zeroizing::new(u.to_uri()),
            _ => value("totp"),
        };
        let mut cells: Vec<Zeroizing<String>> = vec![
            Zeroizing::new(group),
            Zeroizing::new(e.title.clone()),
            value(user_field(e.kind)),
            value("password"),
            Zeroizing::new(e.url.clone()),
            value("notes"),
            totp,
            Zeroizing::new("0".into()),
            Zeroizing::new(iso8601(e.modified)),
            Zeroizing::new(iso8601(e.created)),
            Zeroizing::new(e.kind.as_str().into()),
        ];
        for (n, _) in &extras {
            cells.push(if mapped(e.kind, n) {
                Zeroizing::new(String::new())
            } else {
                value(n)
            });
        }
        let line = Zeroizing::new(cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
        out.push_str(&line);
        out.push('\n');
    }
    out
}

impl crate::token::Token {
    /// Imports a KeePassXC CSV export ([`parse_records`]; entries matched and
    /// merged, OTP credentials created: [`super::interop`]).
    pub fn vault_import_csv(&self, text: &str) -> Result<ImportReport> {
        self.vault_require_user()?;
        self.vault_import_records(parse_records(text)?)
    }

    /// Exports every entry in KeePassXC's CSV format ([`write_records`]). With
    /// `secrets` the passwords, other secret values and OTP secrets are included,
    /// after the gate and the user's confirmation
    /// ([`Token::vault_export_records`]); without, they are left empty.
    pub fn vault_export_csv(&self, secrets: bool) -> Result<Zeroizing<String>> {
        Ok(write_records(&self.vault_export_records(secrets)?, secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for t in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_iso8601(&iso8601(t)), Some(t), "{}", iso8601(t));
        }
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_iso8601("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    /// KeePassXC names its root group (`Passwords`); entries keep the path below
    /// it, and vtoken's `Root` reads back the same.
    #[test]
    fn groups_below_the_root() {
        let text = "\"Group\",\"Title\"\n\"Passwords\",\"a\"\n\"Passwords/Work/Mail\",\"b\"\n";
        let r = parse_records(text).unwrap();
        assert!(r[0].entry.field("group").is_none());
        assert_eq!(r[1].entry.field("group").unwrap().value, "Work/Mail");
        let out = write_records(&r, true);
        assert!(out.contains("\"Root/Work/Mail\",\"b\""), "{}", *out);
        let back = parse_records(&out).unwrap();
        assert_eq!(back[1].entry.field("group").unwrap().value, "Work/Mail");
        // Top-level groups that differ: kept whole.
        let r = parse_records("\"Group\",\"Title\"\n\"Home\",\"a\"\n\"Work\",\"b\"\n").unwrap();
        assert_eq!(r[1].entry.field("group").unwrap().value, "Work");
    }

    #[test]
    fn totp_cells() {
        let u = parse_totp("key=JBSWY3DPEHPK3PXP&step=60&size=8", "Site", "me").unwrap();
        assert_eq!((u.name().as_str(), u.period, u.digits), ("Site:me", 60, 8));
        let u = parse_totp("jbsw y3dp ehpk 3pxp", "A:B", "").unwrap();
        assert_eq!(u.name(), "A B:A B");
        assert!(parse_totp("otpauth://totp/x?secret=!!", "t", "").is_err());
    }

    #[test]
    fn quoting() {
        let rows = parse("a,\"b,\"\"c\"\"\",\"multi\nline\"\r\n\"\",x\n").unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["a".to_string(), "b,\"c\"".into(), "multi\nline".into()],
                vec!["".to_string(), "x".into()]
            ]
        );
        assert!(parse("\"open").is_err());
    }
}
