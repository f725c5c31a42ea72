//! The vault's entries: add, change, delete, list, search and reveal (SPEC V2–V4).

use super::*;

impl Token {
    pub(super) fn vault_objects(&self) -> Result<Vec<(u64, Arc<CachedObject>)>> {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_DATA);
        t.set(CKA_APPLICATION, VAULT_APPLICATION.to_vec());
        t.set_bool(CKA_TOKEN, true);
        let ids = self.search(&t)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((id, self.object_unchecked(id)?));
        }
        Ok(out)
    }

    pub(super) fn vault_object(&self, id: u64) -> Result<Arc<CachedObject>> {
        let o = self.object_unchecked(id)?;
        if !is_vault_object(&o.attrs) {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(o)
    }

    pub(super) fn vault_insert(&self, attrs: Attributes) -> Result<u64> {
        let keys = self.master_keys().ok_or(Error::UserNotLoggedIn)?;
        let mut st = self.store();
        let row = st.insert_object(true, &attrs, Some(&keys))?;
        drop(st);
        info!(serial = %self.serial(), id = row.id, "vault entry stored");
        Ok(row.id)
    }

    /// Adds an entry (user logged in, confirmed by the user). Returns its id.
    pub fn vault_add(&self, entry: &Entry) -> Result<u64> {
        self.vault_require_user()?;
        let mut e = entry.clone();
        e.normalize()?;
        let t = now();
        e.created = t;
        e.modified = t;
        self.confirm_write("Store this vault entry?".into(), &e, "")?;
        self.vault_insert(entry_attributes(&e)?)
    }

    /// Replaces entry `id` (user logged in, confirmed by the user).
    pub fn vault_update(&self, id: u64, entry: &Entry) -> Result<()> {
        self.vault_require_user()?;
        let o = self.vault_object(id)?;
        let old = entry_of(&o.attrs)?;
        let mut e = entry.clone();
        e.normalize()?;
        e.created = old.created;
        e.modified = now();
        self.confirm_write(
            "Change this vault entry?".into(),
            &e,
            &format!("\n(was: {})", old.title),
        )?;
        let mut attrs = (*o.attrs).clone();
        attrs.set(CKA_LABEL, e.title.as_bytes().to_vec());
        attrs.set(CKA_VALUE, e.to_json()?.to_vec());
        let keys = self.master_keys().ok_or(Error::UserNotLoggedIn)?;
        self.store().update_object(id, true, &attrs, Some(&keys))?;
        self.forget_cached(id);
        info!(serial = %self.serial(), id, "vault entry changed");
        Ok(())
    }

    /// Deletes entry `id` (user logged in, confirmed by the user).
    pub fn vault_delete(&self, id: u64) -> Result<()> {
        self.vault_require_user()?;
        let o = self.vault_object(id)?;
        let e = entry_of(&o.attrs)?;
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Delete this vault entry?".into(),
                description: e.describe(),
            },
        )?;
        self.store().delete_object(id)?;
        self.forget_cached(id);
        info!(serial = %self.serial(), id, "vault entry deleted");
        Ok(())
    }

    /// Asks the user to confirm a vault write whose description holds the entry as
    /// received, secrets in the clear or as fingerprints by the token's policy (V5,
    /// [`super::display`]), then `suffix`; the description is wiped afterwards.
    pub(super) fn confirm_write(&self, title: String, e: &Entry, suffix: &str) -> Result<()> {
        let mut description = self.write_description(e)?;
        description.push_str(suffix);
        let mut req = crate::prompt::Request {
            title,
            description: std::mem::take(&mut *description),
        };
        let r = self.confirm_for("vault-write", &req);
        req.description.zeroize();
        r
    }

    pub(super) fn forget_cached(&self, id: u64) {
        self.cache_write().objects.remove(&id);
    }

    /// Every entry (id, summary), in id order.
    pub fn vault_list(&self) -> Result<Vec<(u64, EntrySummary)>> {
        self.vault_search(&Query::default())
    }

    /// Entries matching `q`.
    pub fn vault_search(&self, q: &Query) -> Result<Vec<(u64, EntrySummary)>> {
        self.vault_require_user()?;
        let text = q.text.as_ref().map(|s| s.to_lowercase());
        let url = q.url.as_ref().map(|s| s.to_lowercase());
        let mut out = Vec::new();
        for (id, o) in self.vault_objects()? {
            let e = match entry_of(&o.attrs) {
                Ok(e) => e,
                Err(_) => {
                    warn!(serial = %self.serial(), id, "vault object without a valid entry");
                    continue;
                }
            };
            if q.kind.is_some_and(|k| k != e.kind) {
                continue;
            }
            if let Some(t) = &text {
                if !e.title.to_lowercase().contains(t) && !e.url.to_lowercase().contains(t) {
                    continue;
                }
            }
            if let Some(u) = &url {
                if !e.url.to_lowercase().contains(u) {
                    continue;
                }
            }
            out.push((id, e.summary()));
        }
        Ok(out)
    }

    /// Entry `id` with its secrets (user logged in).
    pub fn vault_get(&self, id: u64) -> Result<Entry> {
        self.vault_require_user()?;
        entry_of(&self.vault_object(id)?.attrs)
    }

    /// Entry `id` with its secrets, to be shown in the clear (`vtoken vault show
    /// --reveal`): a read of vault secrets, so it passes the gate as
    /// [`crate::gate::OpClass::VaultPassword`] and, when the token's prompt policy
    /// lists `vault-read`, the user's confirmation. An entry without secrets passes
    /// neither (nothing secret leaves).
    pub fn vault_reveal(&self, id: u64) -> Result<Entry> {
        let e = self.vault_get(id)?;
        if e.fields.iter().any(|f| f.secret) {
            self.gate_check(
                crate::gate::OpClass::VaultPassword,
                None,
                &format!("reveal the secrets of vault entry \"{}\"", e.title),
            )?;
            self.confirm_for(
                "vault-read",
                &crate::prompt::Request {
                    title: "Reveal a vault secret?".into(),
                    description: format!("the secrets of \"{}\" ({})", e.title, e.kind),
                },
            )?;
        }
        Ok(e)
    }

    /// Entries whose title is exactly `title`.
    pub fn vault_find_title(&self, title: &str) -> Result<Vec<u64>> {
        Ok(self
            .vault_list()?
            .into_iter()
            .filter(|(_, s)| s.title == title)
            .map(|(id, _)| id)
            .collect())
    }

    /// A value of entry `id` (`field`, default [`Entry::primary_secret`]) in the
    /// requested form (V10). Returns the bytes: the value (UTF-8), the RSA-OAEP
    /// ciphertext, or the dynamic password's digits.
    pub fn vault_password(
        &self,
        id: u64,
        field: Option<&str>,
        output: &PasswordOutput,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let e = self.vault_get(id)?;
        self.gate_check(
            crate::gate::OpClass::VaultPassword,
            None,
            &format!("output a password of vault entry \"{}\"", e.title),
        )?;
        let f = match field {
            Some(n) => e.field(n).ok_or_else(|| {
                Error::ArgumentsBad(format!("the entry \"{}\" has no field \"{n}\"", e.title))
            })?,
            None => e.primary_secret().ok_or_else(|| {
                Error::ArgumentsBad(format!("the entry \"{}\" has no password", e.title))
            })?,
        };
        if matches!(output, PasswordOutput::Plain) && f.secret {
            // `[prompt] confirm` may list "vault-read": a secret leaves the token in
            // the clear only after the user agrees.
            self.confirm_for(
                "vault-read",
                &crate::prompt::Request {
                    title: "Reveal a vault secret?".into(),
                    description: format!("{} of \"{}\" ({})", f.name, e.title, e.kind),
                },
            )?;
        }
        let value = Zeroizing::new(f.value.as_bytes().to_vec());
        match output {
            PasswordOutput::Plain => Ok(value),
            PasswordOutput::RsaOaep(key) => {
                let spki = match key {
                    PublicKeyRef::Spki(d) => d.clone(),
                    PublicKeyRef::Object(kid) => {
                        let o = self.object(*kid).map_err(|_| Error::KeyHandleInvalid)?;
                        if o.attrs.key_type() != Some(CKK_RSA) {
                            return Err(Error::KeyTypeInconsistent);
                        }
                        crate::mechanism::encoding::public_key_spki(&o.attrs)?
                    }
                };
                rsa_oaep_encrypt(&spki, &value)
            }
            PasswordOutput::Dynamic {
                time_period,
                event,
                digits,
            } => {
                if time_period.is_none() && !event {
                    return Err(Error::ArgumentsBad(
                        "a dynamic password needs the time factor, the event factor or both".into(),
                    ));
                }
                let data = Zeroizing::new(f.value.clone());
                // Checked before the counter moves: bad parameters waste no event.
                otp_core::dynamic_password(
                    &data,
                    time_period.map(|p| (now(), p)),
                    event.then_some(0),
                    *digits,
                )
                .map_err(|e| Error::ArgumentsBad(format!("dynamic password: {e}")))?;
                let counter = if *event {
                    Some(self.vault_next_event(id)?)
                } else {
                    None
                };
                let time = time_period.map(|p| (now(), p));
                let code = otp_core::dynamic_password(&data, time, counter, *digits)
                    .map_err(|e| Error::ArgumentsBad(format!("dynamic password: {e}")))?;
                Ok(Zeroizing::new(code.into_bytes()))
            }
        }
    }
}

impl Token {
    /// The event factor of entry `id` (V9, ¶0093–0095): the entry's counter is
    /// advanced in one immediate SQLite transaction and committed before the caller
    /// computes the password with the value it had, so two processes never get the
    /// same event and a crash after the commit skips a value but never repeats one.
    /// The counter is a sealed store counter bound to the token and the entry id.
    fn vault_next_event(&self, id: u64) -> Result<u64> {
        let n = self.store().increment_counter(&event_counter_name(id))?;
        if n == u32::MAX {
            return Err(Error::ArgumentsBad(
                "the event counter of this vault entry is exhausted".into(),
            ));
        }
        info!(serial = %self.serial(), id, event = n - 1, "vault event counter advanced");
        Ok(u64::from(n - 1))
    }

    /// The next event factor entry `id` will use (the number of event passwords
    /// it has given so far).
    pub fn vault_event_counter(&self, id: u64) -> Result<u64> {
        self.vault_require_user()?;
        self.vault_object(id)?;
        Ok(u64::from(self.store().counter(&event_counter_name(id))?))
    }
}

impl Token {
    /// Resynchronizes entry `id`'s event counter (V9): the user, logged in, names
    /// the entry; the SO authorizes with `so_pin` (verified and counted like a
    /// login). The counter moves forward to `next` (the event the next dynamic
    /// password will use), never back, in one immediate transaction, so no event
    /// value is ever used twice. Returns the value it had.
    pub fn vault_event_resync(&self, id: u64, so_pin: &[u8], next: u64) -> Result<u64> {
        self.vault_require_user()?;
        self.vault_object(id)?;
        let to = u32::try_from(next)
            .ok()
            .filter(|n| *n < u32::MAX)
            .ok_or_else(|| Error::ArgumentsBad(format!("event counter {next} is out of range")))?;
        self.verify_pin(UserType::So, so_pin)?;
        let old = self
            .store()
            .raise_counter(&event_counter_name(id), to, |cur| {
                Error::ArgumentsBad(format!(
                    "the event counter of this entry is at {cur}: a resync only moves it \
                     forward (a dynamic password must never repeat)"
                ))
            })?;
        info!(serial = %self.serial(), id, from = old, to, "vault event counter resynchronized by the SO");
        Ok(u64::from(old))
    }
}

fn event_counter_name(id: u64) -> String {
    format!("vault-event:{id}")
}

fn rsa_oaep_encrypt(spki: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(spki)
        .map_err(|e| Error::ArgumentsBad(format!("not an RSA public key: {e}")))?;
    let ct = key
        .encrypt(
            &mut rand_core::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            data,
        )
        .map_err(|e| match e {
            rsa::Error::MessageTooLong => Error::DataLenRange,
            e => Error::General(format!("RSA-OAEP: {e}")),
        })?;
    Ok(Zeroizing::new(ct))
}
