//! KeePassXC CSV import and export.
//!
//! KeePassXC (Database → Export → CSV File) writes one header row
//! `"Group","Title","Username","Password","URL","Notes","TOTP","Icon","Last Modified","Created"`
//! and one row per entry, every field quoted (RFC 4180: `""` inside quotes, line
//! breaks allowed in quoted fields), times as ISO 8601 UTC (`2024-01-31T12:00:00Z`).
//! Import maps columns by their header name (only `Title` is required; older
//! exports without `TOTP`, `Icon` or the times work), so column order does not
//! matter. Rows become website entries: `Username`, `Password` (secret), `Notes`,
//! `TOTP` (secret, when present), `Group` (unless it is the root group) as fields.
//!
//! Export writes the same columns; entries of other kinds map their user name-like
//! field (`username`, `address`) and their primary secret ([`super::Entry::primary_secret`])
//! to `Username`/`Password`, and append their other fields to `Notes` as
//! `name: value` lines.

use zeroize::Zeroizing;

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

/// Reads a KeePassXC CSV export into website entries.
pub fn parse_keepassxc(text: &str) -> Result<Vec<Entry>> {
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
    let (group, user, pass, url, notes, totp, modified, created) = (
        col("Group"),
        col("Username"),
        col("Password"),
        col("URL"),
        col("Notes"),
        col("TOTP"),
        col("Last Modified"),
        col("Created"),
    );
    let mut out = Vec::new();
    for (n, row) in it.enumerate() {
        let row = Zeroizing::new(row);
        if row.len() != header.len() {
            return Err(bad(format!(
                "row {} has {} fields, the header {}",
                n + 2,
                row.len(),
                header.len()
            )));
        }
        let get = |c: Option<usize>| c.map(|c| row[c].as_str()).unwrap_or("");
        let mut e = Entry::new(Kind::Website, row[title].trim());
        if e.title.is_empty() {
            e.title = if get(url).is_empty() {
                format!("imported {}", n + 1)
            } else {
                get(url).to_string()
            };
        }
        e.url = get(url).to_string();
        if !get(user).is_empty() {
            e.set("username", get(user), false);
        }
        if !get(pass).is_empty() {
            e.set("password", get(pass), true);
        }
        if !get(notes).is_empty() {
            e.set("notes", get(notes), false);
        }
        if !get(totp).is_empty() {
            e.set("totp", get(totp), true);
        }
        let g = get(group);
        if !g.is_empty() && g != "Root" {
            e.set("group", g, false);
        }
        e.created = parse_iso8601(get(created)).unwrap_or(0);
        e.modified = parse_iso8601(get(modified)).unwrap_or(e.created);
        out.push(e);
    }
    Ok(out)
}

/// Writes entries as a KeePassXC CSV export; secret values only with `secrets`.
pub fn write_keepassxc(entries: &[Entry], secrets: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(COLUMNS.map(quote).join(","));
    out.push('\n');
    for e in entries {
        let user_field = if e.field("username").is_some() {
            "username"
        } else {
            "address"
        };
        let primary = e.primary_secret().map(|f| f.name.clone());
        let mut notes = Zeroizing::new(
            e.field("notes")
                .map(|f| f.value.clone())
                .unwrap_or_default(),
        );
        for f in &e.fields {
            let mapped = [user_field, "notes", "group", "totp"].contains(&f.name.as_str())
                || Some(&f.name) == primary.as_ref();
            if mapped || (f.secret && !secrets) {
                continue;
            }
            if !notes.is_empty() {
                notes.push('\n');
            }
            notes.push_str(&format!("{}: {}", f.name, f.value));
        }
        let value = |name: Option<&str>| -> Zeroizing<String> {
            Zeroizing::new(
                name.and_then(|n| e.field(n))
                    .filter(|f| secrets || !f.secret)
                    .map(|f| f.value.clone())
                    .unwrap_or_default(),
            )
        };
        let group = e
            .field("group")
            .map(|f| f.value.clone())
            .unwrap_or_else(|| "Root".into());
        let cells: [Zeroizing<String>; 10] = [
            Zeroizing::new(group),
            Zeroizing::new(e.title.clone()),
            value(Some(user_field)),
            value(primary.as_deref()),
            Zeroizing::new(e.url.clone()),
            notes,
            value(Some("totp")),
            Zeroizing::new("0".into()),
            Zeroizing::new(iso8601(e.modified)),
            Zeroizing::new(iso8601(e.created)),
        ];
        let line = Zeroizing::new(cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
        out.push_str(&line);
        out.push('\n');
    }
    out
}

impl crate::token::Token {
    /// Imports a KeePassXC CSV export as website entries (user logged in; one
    /// confirmation for the whole file). Returns the new ids.
    pub fn vault_import_csv(&self, text: &str) -> Result<Vec<u64>> {
        self.vault_require_user()?;
        let mut entries = parse_keepassxc(text)?;
        let t = now();
        let mut description = format!("{} entries:", entries.len());
        for e in entries.iter_mut() {
            e.normalize()?;
            if e.created == 0 {
                e.created = t;
            }
            if e.modified == 0 {
                e.modified = t;
            }
            description.push_str(&format!(
                "\n- {} ({}{}{})",
                e.title,
                e.username().unwrap_or(""),
                if e.url.is_empty() { "" } else { ", " },
                e.url
            ));
        }
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Import these vault entries?".into(),
                description,
            },
        )?;
        let mut ids = Vec::with_capacity(entries.len());
        for e in &entries {
            ids.push(self.vault_insert(entry_attributes(e)?)?);
        }
        Ok(ids)
    }

    /// Exports every entry in KeePassXC's CSV format. With `secrets` the passwords
    /// and other secret values are included, after the gate (class
    /// [`crate::gate::OpClass::VaultPassword`]: every secret of the vault leaves) and
    /// the user's confirmation; without, they are left empty.
    pub fn vault_export_csv(&self, secrets: bool) -> Result<Zeroizing<String>> {
        self.vault_require_user()?;
        let mut entries = Vec::new();
        for (id, _) in self.vault_list()? {
            entries.push(self.vault_get(id)?);
        }
        if secrets {
            self.gate_check(
                crate::gate::OpClass::VaultPassword,
                None,
                &format!("export {} vault entries with their secrets", entries.len()),
            )?;
            self.confirm(&crate::prompt::Request {
                title: "Export the vault WITH its secrets?".into(),
                description: format!(
                    "{} entries, passwords in the clear, will leave the token:\n{}",
                    entries.len(),
                    entries
                        .iter()
                        .map(|e| format!("- {}", e.title))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            })?;
        }
        Ok(write_keepassxc(&entries, secrets))
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
