//! Objects: lookup (with the object hooks' visibility), create, copy, destroy,
//! attribute reads and writes (SPEC T3).

use super::*;

impl Token {
    pub(super) fn user_in(&self) -> bool {
        self.logged_in() == Some(UserType::User)
    }

    /// Looks up a visible object (token or session). An extension's objects are
    /// invisible while its object hook says so (vault entries while the vault is not
    /// activated and enabled).
    pub(crate) fn object(&self, id: u64) -> Result<Arc<CachedObject>> {
        self.object_at(id, None)
    }

    /// [`Token::object`] as of `data_version` `dv` when the caller just read it
    /// (saves a query), else as of now.
    pub(super) fn object_at(&self, id: u64, dv: Option<i64>) -> Result<Arc<CachedObject>> {
        let o = self.object_unchecked_at(id, dv)?;
        if let Some(hook) = self.hooks.owner(&o.attrs) {
            if !hook.visible(self, true) {
                return Err(Error::ObjectHandleInvalid);
            }
        }
        Ok(o)
    }

    /// [`Token::object`] without the object hooks' visibility check.
    pub(crate) fn object_unchecked(&self, id: u64) -> Result<Arc<CachedObject>> {
        self.object_unchecked_at(id, None)
    }

    pub(super) fn object_unchecked_at(
        &self,
        id: u64,
        dv: Option<i64>,
    ) -> Result<Arc<CachedObject>> {
        if id >= SESSION_OBJECT_BASE {
            let map = self
                .session_objects
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let (_, o) = map.get(&id).ok_or(Error::ObjectHandleInvalid)?;
            if object::is_private(&o.attrs) && !self.user_in() {
                return Err(Error::ObjectHandleInvalid);
            }
            return Ok(o.clone());
        }
        let st = self.store();
        let dv = match dv {
            Some(v) => v,
            None => st.data_version_recent()?,
        };
        let mut cache = self.cache_read();
        if let Some((v, o)) = cache.objects.get(&id) {
            if *v == dv {
                // A cache hit needs only whether the user is in, not the keys.
                if object::is_private(&o.attrs) && !self.user_in() {
                    return Err(Error::ObjectHandleInvalid);
                }
                return Ok(o.clone());
            }
        }
        let keys = self.master_keys();
        let row = st.row(id)?.ok_or_else(|| {
            cache.objects.remove(&id);
            Error::ObjectHandleInvalid
        })?;
        if row.private && keys.is_none() {
            return Err(Error::ObjectHandleInvalid);
        }
        if let Some((_, o)) = cache.objects.get(&id) {
            if o.gen == row.gen {
                let o = o.clone();
                cache.objects.insert(id, (dv, o.clone()));
                return Ok(o);
            }
        }
        let (row, attrs) = st
            .load_object(id, keys.as_deref())?
            .ok_or(Error::ObjectHandleInvalid)?;
        let o = Arc::new(CachedObject {
            gen: row.gen,
            attrs: Arc::new(attrs),
            key: Default::default(),
        });
        cache.objects.insert(id, (dv, o.clone()));
        if object::is_private(&o.attrs) && !self.user_in() {
            // A key record sealed as public by an older version (not yet migrated).
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(o)
    }

    /// `CKA_TRUSTED` is set true by the SO only (PKCS#11: an application cannot
    /// make a key trusted); `CKR_ATTRIBUTE_READ_ONLY` for anyone else.
    pub(super) fn check_trusted_template(&self, template: &Attributes) -> Result<()> {
        if template.get_bool(CKA_TRUSTED)? == Some(true) && self.logged_in() != Some(UserType::So) {
            return Err(Error::AttributeReadOnly(CKA_TRUSTED));
        }
        Ok(())
    }

    pub(super) fn check_write(&self, sid: &SessionRef, attrs: &Attributes) -> Result<()> {
        let s = self.resolve(sid)?;
        let rw = Token::lock_session(s).rw;
        let token = attrs.bool_or(CKA_TOKEN, false);
        if token && !rw {
            return Err(Error::SessionReadOnly);
        }
        if object::is_private(attrs) && !self.user_in() {
            return Err(Error::UserNotLoggedIn);
        }
        Ok(())
    }

    /// Stores a validated object; returns its id.
    pub(crate) fn store_object(&self, sid: &SessionRef, mut attrs: Attributes) -> Result<u64> {
        self.check_write(sid, &attrs)?;
        // PKCS#11 3.0 CKA_UNIQUE_ID: assigned by the token, never by a template.
        attrs.set(
            CKA_UNIQUE_ID,
            hex::encode(mechanism::random_secret(16)?.as_slice()).into_bytes(),
        );
        let private = object::is_private(&attrs);
        if attrs.bool_or(CKA_TOKEN, false) {
            let keys = self.master_keys();
            let mut st = self.store();
            let row = st.insert_object(private, &attrs, keys.as_deref())?;
            let dv = st.data_version()?;
            drop(st);
            info!(serial = %self.serial(), id = row.id, class = attrs.class().unwrap_or(0), "token object created");
            let o = Arc::new(CachedObject {
                gen: row.gen,
                attrs: Arc::new(attrs),
                key: Default::default(),
            });
            self.cache_write().objects.insert(row.id, (dv, o));
            Ok(row.id)
        } else {
            let id = self.next_session_object.fetch_add(1, Ordering::Relaxed);
            let o = Arc::new(CachedObject {
                gen: 0,
                attrs: Arc::new(attrs),
                key: Default::default(),
            });
            self.session_objects
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, (sid.id(), o));
            Ok(id)
        }
    }

    /// `C_CreateObject`.
    pub fn create_object(&self, sid: &SessionRef, template: &Attributes) -> Result<u64> {
        self.resolve(sid)?;
        self.check_trusted_template(template)?;
        let template = self.key_template(template, template.class());
        let mut attrs = object::build(&template, Origin::Create, &Attributes::new())?;
        if let Some(hook) = self.hooks.owner(&attrs) {
            self.check_write(sid, &attrs)?;
            hook.before_write(self, None, &mut attrs, "Store")?;
        }
        self.store_object(sid, attrs)
    }

    /// `C_CopyObject`.
    pub fn copy_object(&self, sid: &SessionRef, id: u64, template: &Attributes) -> Result<u64> {
        self.resolve(sid)?;
        let o = self.object(id)?;
        self.check_trusted_template(template)?;
        let mut attrs = object::apply_copy(&o.attrs, template)?;
        if self.logged_in() != Some(UserType::So) && attrs.bool_or(CKA_TRUSTED, false) {
            // Trust is the SO's to give: a user's copy is not trusted.
            attrs.set_bool(CKA_TRUSTED, false);
        }
        if let Some(hook) = self.hooks.owner(&o.attrs).or(self.hooks.owner(&attrs)) {
            self.check_write(sid, &attrs)?;
            hook.before_write(self, Some(&o.attrs), &mut attrs, "Copy")?;
        }
        self.store_object(sid, attrs)
    }

    /// `C_DestroyObject`.
    pub fn destroy_object(&self, sid: &SessionRef, id: u64) -> Result<()> {
        let o = self.object(id)?;
        self.check_write(sid, &o.attrs)?;
        if !o.attrs.bool_or(CKA_DESTROYABLE, true) {
            return Err(Error::ActionProhibited);
        }
        if let Some(hook) = self.hooks.owner(&o.attrs) {
            hook.before_destroy(self, &o.attrs)?;
        }
        if id >= SESSION_OBJECT_BASE {
            self.session_objects
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        } else {
            self.store().delete_object(id)?;
            self.cache_write().objects.remove(&id);
            info!(serial = %self.serial(), id, "token object destroyed");
        }
        Ok(())
    }

    /// `C_GetAttributeValue`: one result per requested type.
    pub fn get_attributes(
        &self,
        sid: &SessionRef,
        id: u64,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrResult>> {
        self.resolve(sid)?;
        let o = self.object(id)?;
        let class = o.attrs.class().unwrap_or(CKO_DATA);
        let hide = object::hides_secrets(&o.attrs);
        if types.contains(&CKA_VALUE) {
            // Reading an extractable key's value is a key export (gate, SPEC C1).
            self.hooks.key_use.check_value_read(self, &o.attrs)?;
            if let Some(hook) = self.hooks.owner(&o.attrs) {
                hook.before_value_read(self, &o.attrs)?;
            }
        }
        Ok(types
            .iter()
            .map(|&t| {
                if hide && object::is_sensitive_attr(class, t) {
                    return AttrResult::Sensitive;
                }
                match o.attrs.get(t) {
                    Some(v) => AttrResult::Value(v.to_vec()),
                    None if t == CKA_PUBLIC_KEY_INFO
                        && matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) =>
                    {
                        match mechanism::encoding::public_key_spki(&o.attrs) {
                            Ok(v) => AttrResult::Value(v),
                            Err(_) => AttrResult::Value(Vec::new()),
                        }
                    }
                    None => AttrResult::TypeInvalid,
                }
            })
            .collect())
    }

    /// `C_SetAttributeValue`.
    pub fn set_attributes(&self, sid: &SessionRef, id: u64, template: &Attributes) -> Result<()> {
        let o = self.object(id)?;
        self.check_write(sid, &o.attrs)?;
        self.check_trusted_template(template)?;
        let mut attrs = object::apply_update(&o.attrs, template)?;
        if let Some(hook) = self.hooks.owner(&o.attrs).or(self.hooks.owner(&attrs)) {
            hook.before_write(self, Some(&o.attrs), &mut attrs, "Change")?;
        }
        if id >= SESSION_OBJECT_BASE {
            let n = Arc::new(CachedObject {
                gen: 0,
                attrs: Arc::new(attrs),
                key: Default::default(),
            });
            let mut map = self
                .session_objects
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get_mut(&id) {
                e.1 = n;
            }
        } else {
            let keys = self.master_keys();
            let private = object::is_private(&attrs);
            let mut st = self.store();
            let row = st.update_object(id, private, &attrs, keys.as_deref())?;
            let dv = st.data_version()?;
            drop(st);
            let n = Arc::new(CachedObject {
                gen: row.gen,
                attrs: Arc::new(attrs),
                key: Default::default(),
            });
            self.cache_write().objects.insert(id, (dv, n));
        }
        Ok(())
    }

    /// `C_GetObjectSize`: the size of the object's serialized attributes.
    pub fn object_size(&self, sid: &SessionRef, id: u64) -> Result<usize> {
        self.resolve(sid)?;
        let o = self.object(id)?;
        // A zeroizing buffer: the serialization holds secret values.
        Ok(o.attrs.to_sealable().map(|v| v.len()).unwrap_or(0))
    }

    /// The attributes of a visible object (for the CLI and Rust callers).
    pub fn attributes(&self, id: u64) -> Result<Arc<Attributes>> {
        Ok(self.object(id)?.attrs.clone())
    }
}
