//! Password-manager interchange: the token side of KeePassXC CSV ([`super::csv`])
//! and KDBX (read and written by the CLI) imports and exports.
//!
//! A file entry travels as a [`Record`]: the vault entry and, when the file gives
//! it a TOTP/HOTP secret (KeePassXC's `TOTP` column or `otp` attribute), that
//! credential. On import the credential becomes an OTP credential on the token
//! (an ordinary [`crate::otp`] object, codes computed inside the token) and the
//! entry names it in its [`OTP_LINK`] field; on export the credential's
//! `otpauth://` URI goes back into the file.
//!
//! # Identity (why importing the same file twice adds nothing)
//!
//! KeePassXC's CSV carries no entry UUID, so an entry is matched by what a person
//! reads as "the same login" and every export keeps: kind, group, title, user name
//! and URL ([`identity`]). The n-th file entry with an identity matches the n-th
//! stored entry with it (so a file with two identical logins stays at two).
//! A matched entry is merged: values the file carries replace the stored ones, an
//! empty or missing value never erases one (an export without secrets re-imported
//! loses nothing); an entry the merge leaves as it was is counted unchanged and
//! not written. OTP credentials are matched by name and secret: the same name with
//! the same parameters is the same credential; the same name with another secret
//! is stored under `NAME (2)` (up to 9), so nothing on the token is overwritten.
//!
//! Writes follow V3/V5: one confirmation through the prompt agent lists every new
//! and changed entry and every new OTP credential (secrets masked: a bulk import
//! shows what arrives, not each password); a refusal writes nothing. Each stored
//! object is its own store transaction.

use otp_core::OtpUri;

use super::*;

/// The entry field naming the OTP credential an import created for the entry.
pub const OTP_LINK: &str = "otp_credential";

/// One entry as a password-manager file carries it.
#[derive(Clone, Debug)]
pub struct Record {
    /// The vault entry.
    pub entry: Entry,
    /// The TOTP/HOTP credential the file gives the entry.
    pub otp: Option<OtpUri>,
}

impl Record {
    /// A record without an OTP credential.
    pub fn new(entry: Entry) -> Record {
        Record { entry, otp: None }
    }
}

/// What an import did (entry ids and OTP credential names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Entries stored new.
    pub added: Vec<u64>,
    /// Stored entries the file changed (merged).
    pub updated: Vec<u64>,
    /// Stored entries the file matched without changing them.
    pub unchanged: Vec<u64>,
    /// OTP credentials created.
    pub otp_added: Vec<String>,
}

/// The identity an import matches entries by: kind, group, title, user name, URL.
pub fn identity(e: &Entry) -> (Kind, String, String, String, String) {
    (
        e.kind,
        e.field("group")
            .map(|f| f.value.clone())
            .unwrap_or_default(),
        e.title.clone(),
        e.username().unwrap_or("").to_string(),
        e.url.clone(),
    )
}

/// `old` with the non-empty values of `new` (fields added or replaced; nothing
/// removed); `None` when that changes nothing.
fn merge(old: &Entry, new: &Entry) -> Option<Entry> {
    let mut m = old.clone();
    for f in &new.fields {
        if !f.value.is_empty() {
            let secret = f.secret || old.field(&f.name).is_some_and(|o| o.secret);
            m.set(&f.name, &f.value, secret);
        }
    }
    (m.fields != old.fields).then_some(m)
}

enum Step {
    Add(Entry),
    Update(u64, Entry),
    Same(u64),
}

impl Token {
    /// Imports password-manager records (user logged in): entries matched by
    /// [`identity`] and merged, OTP credentials created and linked (module docs).
    /// One confirmation for the whole file; nothing to write asks nothing.
    pub fn vault_import_records(&self, records: Vec<Record>) -> Result<ImportReport> {
        self.vault_require_user()?;
        let mut stored: std::collections::HashMap<_, std::collections::VecDeque<(u64, Entry)>> =
            Default::default();
        for (id, _) in self.vault_list()? {
            let e = self.vault_get(id)?;
            stored.entry(identity(&e)).or_default().push_back((id, e));
        }
        let t = now();
        let mut steps = Vec::with_capacity(records.len());
        let mut new_otps: Vec<OtpUri> = Vec::new();
        for (n, mut r) in records.into_iter().enumerate() {
            if let Some(uri) = r.otp.take() {
                let name = self.otp_place(&uri, &mut new_otps)?;
                r.entry.set(OTP_LINK, &name, false);
            }
            let at = |e: Error| match e {
                Error::TemplateInconsistent(m) => {
                    Error::ArgumentsBad(format!("entry {} (\"{}\"): {m}", n + 1, r.entry.title))
                }
                e => e,
            };
            let step = match stored
                .get_mut(&identity(&r.entry))
                .and_then(|q| q.pop_front())
            {
                Some((id, old)) => match merge(&old, &r.entry) {
                    Some(mut m) => {
                        m.normalize().map_err(at)?;
                        m.modified = t;
                        Step::Update(id, m)
                    }
                    None => Step::Same(id),
                },
                None => {
                    let mut e = r.entry.clone();
                    e.normalize().map_err(at)?;
                    if e.created == 0 {
                        e.created = t;
                    }
                    if e.modified == 0 {
                        e.modified = e.created;
                    }
                    Step::Add(e)
                }
            };
            steps.push(step);
        }
        let mut report = ImportReport::default();
        let (mut adds, mut changes) = (String::new(), String::new());
        for s in &steps {
            let line = |e: &Entry| {
                format!(
                    "\n- {} ({}{}{}{})",
                    e.title,
                    e.kind,
                    e.username().map(|u| format!(", {u}")).unwrap_or_default(),
                    if e.url.is_empty() { "" } else { ", " },
                    e.url
                )
            };
            match s {
                Step::Add(e) => adds.push_str(&line(e)),
                Step::Update(_, e) => changes.push_str(&line(e)),
                Step::Same(id) => report.unchanged.push(*id),
            }
        }
        if adds.is_empty() && changes.is_empty() && new_otps.is_empty() {
            return Ok(report);
        }
        let mut description = String::new();
        if !adds.is_empty() {
            description.push_str(&format!("New entries:{adds}\n"));
        }
        if !changes.is_empty() {
            description.push_str(&format!(
                "Changed entries (values added or replaced):{changes}\n"
            ));
        }
        if !new_otps.is_empty() {
            description.push_str("New OTP credentials:");
            for u in &new_otps {
                description.push_str(&format!("\n- {} ({})", u.name(), u.kind.as_str()));
            }
        }
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Import these vault entries?".into(),
                description: description.trim_end().to_string(),
            },
        )?;
        for u in &new_otps {
            self.otp_add(u, false)?;
            report.otp_added.push(u.name());
        }
        for s in steps {
            match s {
                Step::Add(e) => report.added.push(self.vault_insert(entry_attributes(&e)?)?),
                Step::Update(id, e) => {
                    self.vault_replace(id, &e)?;
                    report.updated.push(id);
                }
                Step::Same(_) => {}
            }
        }
        info!(
            serial = %self.serial(),
            added = report.added.len(),
            updated = report.updated.len(),
            unchanged = report.unchanged.len(),
            otp = report.otp_added.len(),
            "vault import"
        );
        Ok(report)
    }

    /// The name under which `uri` lives (or will, once `planned` is stored): its
    /// own name, or `NAME (2)`… when that name holds another secret.
    fn otp_place(&self, uri: &OtpUri, planned: &mut Vec<OtpUri>) -> Result<String> {
        for n in 1..=9u32 {
            let mut u = uri.clone();
            if n > 1 {
                u.account = format!("{} ({n})", uri.account);
            }
            let name = u.name();
            if let Some(p) = planned.iter().find(|p| p.name() == name) {
                if crate::otp::same_credential(p, &u) {
                    return Ok(name);
                }
                continue;
            }
            match self.otp_matches(&u)? {
                Some(true) => return Ok(name),
                Some(false) => continue,
                None => {
                    planned.push(u);
                    return Ok(name);
                }
            }
        }
        Err(Error::ArgumentsBad(format!(
            "OTP credentials \"{}\" to \"{} (9)\" all exist with other secrets",
            uri.name(),
            uri.name()
        )))
    }

    /// Replaces entry `id` after a confirmation the caller obtained.
    fn vault_replace(&self, id: u64, e: &Entry) -> Result<()> {
        let o = self.vault_object(id)?;
        let mut attrs = (*o.attrs).clone();
        attrs.set(CKA_LABEL, e.title.as_bytes().to_vec());
        attrs.set(CKA_VALUE, e.to_json()?.to_vec());
        let keys = self.master_keys().ok_or(Error::UserNotLoggedIn)?;
        self.store().update_object(id, true, &attrs, Some(&keys))?;
        self.forget_cached(id);
        Ok(())
    }

    /// Every entry as a record. With `secrets` the secret values and the linked OTP
    /// credentials' secrets are included, after the gate (class
    /// [`crate::gate::OpClass::VaultPassword`], and
    /// [`crate::gate::OpClass::KeyExport`] when OTP secrets leave too, as for
    /// `otp show`) and the user's confirmation; without, secret values are empty
    /// and no credential is attached.
    pub fn vault_export_records(&self, secrets: bool) -> Result<Vec<Record>> {
        Ok(self
            .vault_export_records_with_ids(secrets)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// [`Token::vault_export_records`], each record with its entry's id (stable for
    /// the entry's life on this token: an export can name entries by it).
    pub fn vault_export_records_with_ids(&self, secrets: bool) -> Result<Vec<(u64, Record)>> {
        self.vault_require_user()?;
        let mut records = Vec::new();
        let mut ids = Vec::new();
        for (id, _) in self.vault_list()? {
            ids.push(id);
            let mut e = self.vault_get(id)?;
            if !secrets {
                for f in e.fields.iter_mut().filter(|f| f.secret) {
                    f.value.zeroize();
                }
            }
            records.push(Record::new(e));
        }
        if !secrets {
            return Ok(ids.into_iter().zip(records).collect());
        }
        let linked: Vec<String> = records
            .iter()
            .filter_map(|r| r.entry.field(OTP_LINK).map(|f| f.value.clone()))
            .collect();
        self.gate_check(
            crate::gate::OpClass::VaultPassword,
            None,
            &format!("export {} vault entries with their secrets", records.len()),
        )?;
        if !linked.is_empty() {
            self.gate_check(
                crate::gate::OpClass::KeyExport,
                None,
                &format!("export {} OTP secrets with the vault", linked.len()),
            )?;
        }
        let mut description = format!(
            "{} entries, passwords in the clear, will leave the token:\n{}",
            records.len(),
            records
                .iter()
                .map(|r| format!("- {}", r.entry.title))
                .collect::<Vec<_>>()
                .join("\n")
        );
        if !linked.is_empty() {
            description.push_str(&format!(
                "\nand the secrets of {} OTP credentials: {}",
                linked.len(),
                linked.join(", ")
            ));
        }
        self.confirm(&crate::prompt::Request {
            title: "Export the vault WITH its secrets?".into(),
            description,
        })?;
        for r in &mut records {
            if let Some(name) = r.entry.field(OTP_LINK).map(|f| f.value.clone()) {
                r.otp = self.otp_uri_confirmed(&name)?;
            }
        }
        Ok(ids.into_iter().zip(records).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_never_erases() {
        let old = Entry::new(Kind::Website, "a")
            .with("username", "u", false)
            .with("password", "pw", true);
        let blank = Entry::new(Kind::Website, "a")
            .with("username", "u", false)
            .with("password", "", true);
        assert!(merge(&old, &blank).is_none());
        let newer = Entry::new(Kind::Website, "a").with("password", "pw2", true);
        let m = merge(&old, &newer).unwrap();
        assert_eq!(m.field("password").unwrap().value, "pw2");
        assert_eq!(m.field("username").unwrap().value, "u");
    }
}
