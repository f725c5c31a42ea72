//! Searches: `C_FindObjects*` and [`Token::search`] (the index answers what it can).

use super::*;

impl Token {
    /// Every visible object matching `template`, in id order (token objects first).
    pub fn search(&self, template: &Attributes) -> Result<Vec<u64>> {
        self.ensure_unblocked()?;
        let keys = self.master_keys();
        if template.get_bool(CKA_PRIVATE)? == Some(true) && keys.is_none() {
            return Ok(Vec::new());
        }
        let filter = IndexFilter {
            class: template.get_ulong(CKA_CLASS)?,
            label: template.get(CKA_LABEL).map(|v| v.to_vec()),
            id: template.get(CKA_ID).map(|v| v.to_vec()),
            include_private: keys.is_some(),
        };
        let mut found = Vec::new();
        if template.get_bool(CKA_TOKEN)? != Some(false) {
            // The object hooks whose objects are hidden now (asked once per search).
            let hidden = self.hooks.hidden(self, keys.is_some());
            let st = self.store();
            let dv = st.data_version()?;
            let rows = st.candidates(&filter, keys.as_deref())?;
            // A template of indexed attributes only (class, label, ID, token,
            // private) is answered from the index columns alone: nothing is
            // decrypted until a caller reads an object (a find over 10 000 objects
            // stays a single index scan). Hidden objects need the records.
            if hidden == 0
                && template.iter().all(|(t, _)| {
                    matches!(t, CKA_CLASS | CKA_LABEL | CKA_ID | CKA_TOKEN | CKA_PRIVATE)
                })
            {
                let private = template.get_bool(CKA_PRIVATE)?;
                found.extend(
                    rows.iter()
                        .filter(|r| private.is_none_or(|p| p == r.private))
                        .map(|r| r.id),
                );
                drop(st);
                return self.with_session_objects(template, found);
            }
            let mut cache = self.cache_read();
            let mut missing = Vec::new();
            for r in &rows {
                match cache.objects.get_mut(&r.id) {
                    Some(e) if e.1.gen == r.gen => e.0 = dv,
                    _ => missing.push(r.id),
                }
            }
            for raw in st.raw_records(&missing)? {
                let attrs = st.open_record(&raw, keys.as_deref())?;
                let o = Arc::new(CachedObject {
                    gen: raw.gen,
                    attrs: Arc::new(attrs),
                    key: Default::default(),
                });
                cache.objects.insert(raw.id, (dv, o));
            }
            let user = self.user_in();
            for r in &rows {
                if let Some((_, o)) = cache.objects.get(&r.id) {
                    if o.attrs.matches(template)
                        && (user || !object::is_private(&o.attrs))
                        && !object::probes_secret(&o.attrs, template)
                        && (hidden == 0 || !self.hooks.hidden_claims(hidden, &o.attrs))
                    {
                        found.push(r.id);
                    }
                }
            }
        }
        self.with_session_objects(template, found)
    }

    /// [`Token::search`]'s tail: appends the matching session objects (unless the
    /// template asks for token objects only).
    pub(super) fn with_session_objects(
        &self,
        template: &Attributes,
        mut found: Vec<u64>,
    ) -> Result<Vec<u64>> {
        if template.get_bool(CKA_TOKEN)? != Some(true) {
            let user = self.user_in();
            let map = self
                .session_objects
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut ids: Vec<u64> = map
                .iter()
                .filter(|(_, (_, o))| {
                    (user || !object::is_private(&o.attrs))
                        && o.attrs.matches(template)
                        && !object::probes_secret(&o.attrs, template)
                })
                .map(|(id, _)| *id)
                .collect();
            ids.sort_unstable();
            found.extend(ids);
        }
        Ok(found)
    }

    /// `C_FindObjectsInit`.
    pub fn find_init(&self, sid: &SessionRef, template: &Attributes) -> Result<()> {
        let s = self.resolve(sid)?;
        if Token::lock_session(s).find.is_some() {
            return Err(Error::OperationActive);
        }
        let mut ids = self.search(template)?;
        ids.reverse();
        Token::lock_session(s).find = Some(ids);
        Ok(())
    }

    /// `C_FindObjects`: up to `max` more handles.
    pub fn find_next(&self, sid: &SessionRef, max: usize) -> Result<Vec<u64>> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let list = s.find.as_mut().ok_or(Error::OperationNotInitialized)?;
        let n = max.min(list.len());
        let at = list.len() - n;
        let mut out = list.split_off(at);
        out.reverse();
        Ok(out)
    }

    /// `C_FindObjectsFinal`.
    pub fn find_final(&self, sid: &SessionRef) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        s.find.take().ok_or(Error::OperationNotInitialized)?;
        Ok(())
    }
}
