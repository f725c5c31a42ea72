//! Every keyed operation's init: the key looked up with the key-use hook's verdict,
//! or the session's last key reused while the epoch and the file version stand
//! (the fast path, [`crate::token::fresh`]).

use super::*;

impl Token {
    /// The parsed key of an object, cached with it.
    pub(super) fn key_of(
        &self,
        id: u64,
        usage: CK_ATTRIBUTE_TYPE,
        mech: &Mechanism,
    ) -> Result<KeyUse> {
        // Taken before anything is read: a change from here on moves it.
        let epoch = self.fresh.epoch();
        // Each operation's init looks at the file once: a gate lock set by another
        // process stops it here, and the object is read as of the same version.
        let (dv, verdict) = self.hooks.key_use.fresh(self)?;
        let o = self.object_at(id, Some(dv)).map_err(|e| match e {
            Error::ObjectHandleInvalid => Error::KeyHandleInvalid,
            e => e,
        })?;
        check_use(&o.attrs, usage, mech)?;
        let key = match o.key.get() {
            Some(k) => k.clone(),
            None => {
                let k = Arc::new(Key::from_attributes(&o.attrs)?);
                let _ = o.key.set(k.clone());
                k
            }
        };
        Ok(KeyUse {
            id,
            private: object::is_private(&o.attrs),
            always_auth: o.attrs.bool_or(CKA_ALWAYS_AUTHENTICATE, false),
            key,
            obj: o,
            verdict,
            dv,
            epoch,
            passed: Default::default(),
        })
    }

    /// The key this session's last init used, if it is `id` and still current: the
    /// token's epoch unchanged (no commit, login change or cache change in this
    /// process) and the file's `data_version` as of a look within the look window
    /// unchanged (no commit by another process; `dv` is the caller's look). No store,
    /// cache or login lock. The checks an init makes on the object are made again
    /// (once per usage, mechanism and gate class); a key the gate would stop, or any
    /// failed check, goes the full way (which reports the error).
    pub(super) fn reuse<'s>(
        &self,
        s: &'s Session,
        dv: Option<i64>,
        id: u64,
        usage: CK_ATTRIBUTE_TYPE,
        mech: &Mechanism,
        (gate, also): (Option<OpClass>, Option<OpClass>),
    ) -> Option<&'s KeyUse> {
        let k = s.last_key.as_ref().filter(|k| k.id == id)?;
        if k.epoch != self.fresh.epoch() {
            return None;
        }
        if dv != Some(k.dv) {
            return None;
        }
        // Nothing the checks read can change while epoch and version stand.
        let this: Use = (usage, mech.ty, gate);
        if k.passed.get() == Some(this) {
            return Some(k);
        }
        // `also` follows from usage and mechanism, so `this` covers it.
        if check_use(&k.obj.attrs, usage, mech).is_err()
            || !k.verdict.lets_through(gate, &k.obj.attrs)
            || !k.verdict.lets_through(also, &k.obj.attrs)
        {
            return None;
        }
        k.passed.set(Some(this));
        Some(k)
    }

    /// Every keyed operation's init (`C_SignInit`, `C_VerifyInit`, `C_EncryptInit`,
    /// `C_DecryptInit`): one session lock when the session's last key is reused,
    /// else the key looked up (file look, object cache, parsed key), the gate asked,
    /// and the key kept for the next init.
    pub(super) fn init_keyed<T: ?Sized>(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        key: u64,
        kind: InitKind<T>,
    ) -> Result<()> {
        let s = self.resolve(sid)?;
        // The file's version as of a recent look (a look now if there was none), taken
        // before the session's lock: the store's lock is never taken under it.
        let dv = if key < SESSION_OBJECT_BASE {
            self.fresh
                .recent()
                .or_else(|| self.store().data_version_recent().ok())
        } else {
            None
        };
        let mut g = Token::lock_session(s);
        if (kind.slot)(&mut g).is_some() {
            return Err(Error::OperationActive);
        }
        Token::check_mech_flag(mech, kind.flag)?;
        if key < SESSION_OBJECT_BASE {
            let class = kind.gate.map(|c| c.0);
            if let Some(k) = self.reuse(&g, dv, key, kind.usage, mech, (class, kind.also)) {
                let private = k.private;
                let mut st = Stage::new((kind.make)(mech, &k.key)?);
                st.needs_auth = k.always_auth && Token::needs_context_login(kind.usage);
                *(kind.slot)(&mut g) = Some(st);
                g.private_op |= private;
                return Ok(());
            }
        }
        // The full way runs without the session's lock (the gate may ask the user).
        drop(g);
        let k = self.key_of(key, kind.usage, mech)?;
        let op = (kind.make)(mech, &k.key)?;
        if let Some((class, verb)) = kind.gate {
            // One picture for the first class that is gated (either is enough).
            let gated = [Some(class), kind.also]
                .into_iter()
                .flatten()
                .find(|c| !k.verdict.lets_through(Some(*c), &k.obj.attrs));
            if let Some(c) = gated {
                self.key_check(c, &k.obj.attrs, &k.verdict, verb)?;
            }
        }
        let mut g = Token::lock_session(s);
        if k.private && !self.user_in() {
            // A logout came in between and may have passed this session already.
            return Err(Error::KeyHandleInvalid);
        }
        let mut st = Stage::new(op);
        st.needs_auth = k.always_auth && Token::needs_context_login(kind.usage);
        *(kind.slot)(&mut g) = Some(st);
        g.private_op |= k.private;
        if key < SESSION_OBJECT_BASE {
            g.last_key = Some(k);
        }
        Ok(())
    }

    /// The key-use hook's full check of `class` on `key`, which `verdict` (the
    /// hook's answer read with the key) did not let through by itself.
    pub(super) fn key_check(
        &self,
        class: OpClass,
        key: &Attributes,
        verdict: &Arc<dyn KeyVerdict>,
        verb: &str,
    ) -> Result<()> {
        self.hooks.key_use.check(self, class, key, &**verdict, verb)
    }

    /// Whether an init with `usage` on a `CKA_ALWAYS_AUTHENTICATE` key waits for a
    /// context-specific login (signatures and decryptions, as PKCS#11 defines the attribute).
    pub(super) fn needs_context_login(usage: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(usage, CKA_SIGN | CKA_DECRYPT)
    }

    /// `C_Login(CKU_CONTEXT_SPECIFIC)` on session `sid`: the user PIN verified again
    /// (counted like a login) lets the operations initialized on this session with
    /// a `CKA_ALWAYS_AUTHENTICATE` key run (each later init needs a new one).
    pub fn context_login(&self, sid: &SessionRef, pin: &[u8]) -> Result<()> {
        let s = self.resolve(sid)?;
        self.verify_user_pin(pin)?;
        let mut g = Token::lock_session(s);
        if let Some(st) = g.sign.as_mut() {
            st.needs_auth = false;
        }
        if let Some(st) = g.decrypt.as_mut() {
            st.needs_auth = false;
        }
        Ok(())
    }

    pub(super) fn check_mech_flag(mech: &Mechanism, flag: CK_FLAGS) -> Result<()> {
        let info = mechanism::mechanism_info(mech.ty)?;
        if info.flags & flag == 0 {
            return Err(Error::MechanismInvalid(mech.ty));
        }
        Ok(())
    }
}
