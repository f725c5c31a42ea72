//! Sessions, object access and cryptographic operations of one token.
//!
//! Each session has its own lock; a signature holds only its session's lock and an
//! `Arc` of the parsed key, so threads on different sessions sign in parallel.
//!
//! Output follows PKCS#11's length protocol through [`OutLen`] and [`Output`]: a
//! query or a too-small buffer returns [`Output::Needed`] and leaves the operation
//! active (a computed result is kept for the next call); anything else ends it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cryptoki_sys::*;
use tracing::{debug, info, warn};

use crate::attr::Attributes;
use crate::error::{Error, Result};
use crate::mechanism::{self, CipherOp, DigestOp, Key, Mechanism, SignOp, VerifyOp};
use crate::object::{self, Origin};
use crate::store::IndexFilter;
use crate::token::hooks::{KeyVerdict, OpClass};
use crate::token::{CachedObject, Token, UserType, SESSION_OBJECT_BASE};

/// Session handles are unique within the process across all tokens.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How much room the caller has for output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutLen {
    /// A length query (NULL buffer).
    Query,
    /// A buffer of this many bytes.
    Buffer(usize),
}

/// The result of an operation that produces output.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// The output; it fits the buffer.
    Bytes(Vec<u8>),
    /// The buffer is missing or too small: this many bytes are needed. The operation
    /// stays active.
    Needed(usize),
}

/// One attribute as `C_GetAttributeValue` reports it.
#[derive(Debug, PartialEq, Eq)]
pub enum AttrResult {
    Value(Vec<u8>),
    Sensitive,
    TypeInvalid,
}

/// `C_GetSessionInfo` in Rust form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// `CKS_*`.
    pub state: CK_STATE,
    /// R/W session.
    pub rw: bool,
}

struct Stage<T: ?Sized> {
    op: Box<T>,
    multi: bool,
    pending: Option<Vec<u8>>,
    /// The key has `CKA_ALWAYS_AUTHENTICATE`: no step runs until a
    /// `C_Login(CKU_CONTEXT_SPECIFIC)` on this session after the init.
    needs_auth: bool,
}

impl<T: ?Sized> Stage<T> {
    fn new(op: Box<T>) -> Self {
        Stage {
            op,
            multi: false,
            pending: None,
            needs_auth: false,
        }
    }
}

/// `CKR_USER_NOT_LOGGED_IN` while an operation waits for its context-specific
/// login; the operation stays active.
fn check_auth<T: ?Sized>(slot: &Option<Stage<T>>) -> Result<()> {
    match slot {
        Some(st) if st.needs_auth => Err(Error::UserNotLoggedIn),
        _ => Ok(()),
    }
}

/// One session. Its lock and operation slots are written on every call, by whichever
/// thread uses it; `_cold_tail` (fields in declaration order) keeps the next heap block
/// (often another session, opened right after this one) off this one's written cache
/// lines, without the cost of an over-aligned allocation.
#[repr(C)]
pub struct Session {
    id: u64,
    rw: bool,
    find: Option<Vec<u64>>,
    sign: Option<Stage<dyn SignOp>>,
    verify: Option<Stage<dyn VerifyOp>>,
    encrypt: Option<Stage<dyn CipherOp>>,
    decrypt: Option<Stage<dyn CipherOp>>,
    digest: Option<Stage<dyn DigestOp>>,
    /// Keys used by active operations, so logout can end the private ones.
    private_op: bool,
    /// The key the last operation's init here used (token objects only): the next
    /// init with the same key reuses it while the file and the process are unchanged.
    last_key: Option<KeyUse>,
    _cold_tail: [u8; 64],
}

impl Session {
    fn end_all(&mut self) {
        self.find = None;
        self.sign = None;
        self.verify = None;
        self.encrypt = None;
        self.decrypt = None;
        self.digest = None;
        self.private_op = false;
    }
}

fn deliver(out: OutLen, bytes: Vec<u8>) -> (Output, Option<Vec<u8>>) {
    match out {
        OutLen::Query => (Output::Needed(bytes.len()), Some(bytes)),
        OutLen::Buffer(n) if n < bytes.len() => (Output::Needed(bytes.len()), Some(bytes)),
        OutLen::Buffer(_) => (Output::Bytes(bytes), None),
    }
}

/// Runs one step of an operation held in `slot`: `f` computes the output (once; a
/// kept result is reused), errors end the operation, a short buffer keeps it.
fn step<T: ?Sized>(
    slot: &mut Option<Stage<T>>,
    out: OutLen,
    ends: bool,
    f: impl FnOnce(&mut Stage<T>) -> Result<Vec<u8>>,
) -> Result<Output> {
    let st = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    let bytes = match st.pending.take() {
        Some(b) => b,
        None => match f(st) {
            Ok(b) => b,
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        },
    };
    let (o, keep) = deliver(out, bytes);
    match keep {
        Some(b) => {
            if let Some(st) = slot.as_mut() {
                st.pending = Some(b);
            }
        }
        None if ends => *slot = None,
        None => {}
    }
    Ok(o)
}

fn ulongs(v: &[u8]) -> impl Iterator<Item = u64> + '_ {
    v.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
}

/// A key object ready for an operation, with the gate record read at the same time,
/// and what it is current as of: the file's `data_version` it was read at and the
/// token's epoch taken before ([`crate::store::Freshness`]).
struct KeyUse {
    id: u64,
    key: Arc<Key>,
    private: bool,
    /// `CKA_ALWAYS_AUTHENTICATE` (read once, here).
    always_auth: bool,
    obj: Arc<CachedObject>,
    gate: Arc<dyn KeyVerdict>,
    dv: i64,
    epoch: u64,
    /// The last (usage, mechanism, gate class) [`Token::reuse`] found this key good
    /// for without asking the gate: the same init again needs no attribute scans.
    passed: std::cell::Cell<Option<Use>>,
}

type Use = (
    CK_ATTRIBUTE_TYPE,
    CK_MECHANISM_TYPE,
    Option<OpClass>,
);

/// A session as a caller names it: by handle (`u64`, looked up in the token's
/// session map) or by a [`SessionRef`] the caller keeps (no lookup: the PKCS#11
/// module keeps one beside each handle). The operation functions take either.
pub trait SessionKey: Copy {
    #[doc(hidden)]
    fn resolve<'t>(self, t: &'t Token) -> Result<Resolved<'t>>
    where
        Self: 't;
}

/// A session found for a call ([`SessionKey`]).
#[doc(hidden)]
pub enum Resolved<'a> {
    Found(Arc<Mutex<Session>>),
    Held(&'a Arc<Mutex<Session>>),
}

impl std::ops::Deref for Resolved<'_> {
    type Target = Arc<Mutex<Session>>;
    fn deref(&self) -> &Arc<Mutex<Session>> {
        match self {
            Resolved::Found(s) => s,
            Resolved::Held(s) => s,
        }
    }
}

impl SessionKey for u64 {
    fn resolve<'t>(self, t: &'t Token) -> Result<Resolved<'t>>
    where
        Self: 't,
    {
        t.session(self).map(Resolved::Found)
    }
}

/// A session of one token, held by the caller instead of looked up by handle on
/// every call ([`Token::session_ref`]). Valid for calls on that token only; after
/// `C_CloseSession` the caller must drop it (the PKCS#11 module drops it with the
/// handle).
#[derive(Clone)]
pub struct SessionRef {
    session: Arc<Mutex<Session>>,
    /// The token the session belongs to ([`Token::instance`], checked on use).
    token: u64,
}

impl SessionKey for &SessionRef {
    fn resolve<'t>(self, t: &'t Token) -> Result<Resolved<'t>>
    where
        Self: 't,
    {
        if self.token != t.instance() {
            return Err(Error::SessionHandleInvalid);
        }
        // As a lookup by handle does: a token the gate locked refuses every call.
        t.ensure_unblocked_cached()?;
        Ok(Resolved::Held(&self.session))
    }
}

/// Whether an object may serve as the key of an operation: a key class, the usage
/// attribute set (`usage` 0: no usage needed), the mechanism allowed.
fn check_use(attrs: &Attributes, usage: CK_ATTRIBUTE_TYPE, mech: &Mechanism) -> Result<()> {
    let class = attrs.class().unwrap_or(CKO_DATA);
    if !matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        return Err(Error::KeyHandleInvalid);
    }
    if attrs.contains(crate::vendor::CKA_VTOKEN_OTP) {
        // An OTP credential computes codes only through `Token::otp_code`, which
        // commits the HOTP counter first and is gated as `otp-code`: an HMAC over a
        // chosen counter through PKCS#11 would skip both, whatever its CKA_SIGN.
        return Err(Error::KeyFunctionNotPermitted);
    }
    if usage != 0 && !attrs.bool_or(usage, false) {
        return Err(Error::KeyFunctionNotPermitted);
    }
    if let Some(allowed) = attrs.get(CKA_ALLOWED_MECHANISMS) {
        if !allowed.is_empty() && !ulongs(allowed).any(|m| m == mech.ty) {
            return Err(Error::MechanismInvalid(mech.ty));
        }
    }
    Ok(())
}

/// Whether a key made from `template` (unwrap, derive) could be read back: it is
/// extractable or not sensitive (the defaults of [`object::build`] otherwise).
fn exposes_value(template: &Attributes) -> bool {
    template.bool_or(CKA_EXTRACTABLE, false) || !template.bool_or(CKA_SENSITIVE, true)
}

/// A key's security strength in bits (NIST SP 800-57 Part 1, table 2): symmetric
/// keys their length (three-key DES3: 112), RSA by modulus size, EC by
/// half the curve order. `None`: unknown (treated as weakest when wrapping,
/// strongest when wrapped).
fn strength(attrs: &Attributes) -> Option<usize> {
    match attrs.key_type()? {
        CKK_DES3 => Some(112),
        CKK_RSA => {
            let bits = match attrs.get_ulong(CKA_MODULUS_BITS).ok().flatten() {
                Some(b) => b as usize,
                None => attrs.get(CKA_MODULUS).map(|n| {
                    let lead = n.iter().take_while(|b| **b == 0).count();
                    (n.len() - lead) * 8
                })?,
            };
            Some(match bits {
                0..=1023 => 0,
                1024..=2047 => 80,
                2048..=3071 => 112,
                3072..=7679 => 128,
                7680..=15359 => 192,
                _ => 256,
            })
        }
        CKK_EC => {
            let curve =
                crate::mechanism::backend::Curve::from_ec_params(attrs.get(CKA_EC_PARAMS)?)?;
            Some(curve.bits() / 2)
        }
        _ => attrs.get(CKA_VALUE).map(|v| (v.len() * 8).min(256)),
    }
}

/// `[policy] strict_wrap` for a sensitive `target`: the wrapping key must not be a
/// secret key that can also decrypt (the wrapped blob would decrypt to the value
/// with `C_Decrypt`), nor weaker than the target. `CKR_KEY_NOT_WRAPPABLE`: the
/// token cannot wrap this key with that wrapping key (PKCS#11's meaning of it).
fn check_strict_wrap(wrapping: &Attributes, target: &Attributes) -> Result<()> {
    if wrapping.class() == Some(CKO_SECRET_KEY) && wrapping.bool_or(CKA_DECRYPT, true) {
        return Err(Error::KeyNotWrappable);
    }
    let need = strength(target).unwrap_or(usize::MAX);
    if strength(wrapping).unwrap_or(0) < need {
        return Err(Error::KeyNotWrappable);
    }
    Ok(())
}

/// The operation slot an init fills.
type Slot<T> = fn(&mut Session) -> &mut Option<Stage<T>>;

/// How an operation's init turns a key into an operation, and what it checks.
struct InitKind<T: ?Sized> {
    usage: CK_ATTRIBUTE_TYPE,
    flag: CK_FLAGS,
    /// The gate's class and verb, for operations the gate may stop.
    gate: Option<(OpClass, &'static str)>,
    /// A second class the operation also counts as (either gated: gated).
    also: Option<OpClass>,
    slot: Slot<T>,
    make: fn(&Mechanism, &Key) -> Result<Box<T>>,
}

impl Token {
    // ------------------------------------------------------------------ sessions

    /// `C_OpenSession`.
    pub fn open_session(&self, rw: bool) -> Result<u64> {
        Ok(self.open_session_ref(rw)?.0)
    }

    /// `C_OpenSession` for a caller that keeps the session's [`SessionRef`] beside
    /// its handle.
    pub fn open_session_ref(&self, rw: bool) -> Result<(u64, SessionRef)> {
        self.ensure_unblocked()?;
        if !rw && self.logged_in() == Some(UserType::So) {
            return Err(Error::SessionReadWriteSoExists);
        }
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let s = Session {
            id,
            rw,
            find: None,
            sign: None,
            verify: None,
            encrypt: None,
            decrypt: None,
            digest: None,
            private_op: false,
            last_key: None,
            _cold_tail: [0; 64],
        };
        let s = Arc::new(Mutex::new(s));
        self.sessions.insert(id, s.clone());
        debug!(serial = %self.serial(), session = id, rw, "session opened");
        Ok((id, self.session_ref_to(s)))
    }

    /// `C_CloseSession`: its session objects go with it; the last session logs out.
    pub fn close_session(&self, sid: u64) -> Result<()> {
        self.sessions
            .remove(sid)
            .ok_or(Error::SessionHandleInvalid)?;
        // (Two last closes at once may both see none left: the second logout is a
        // no-op.)
        let last = self.sessions.is_empty();
        self.session_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (owner, _)| *owner != sid);
        if last {
            let _ = self.logout();
        }
        Ok(())
    }

    /// `C_CloseAllSessions`.
    pub fn close_all_sessions(&self) {
        self.sessions.clear();
        self.session_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = self.logout();
    }

    /// Whether `sid` is a session of this token.
    pub fn has_session(&self, sid: u64) -> bool {
        self.sessions.contains(sid)
    }

    pub(crate) fn session_counts(&self) -> (u64, u64) {
        let (mut all, mut rw) = (0, 0);
        self.sessions.for_each(|s| {
            all += 1;
            rw += u64::from(Token::lock_session(s).rw);
        });
        (all, rw)
    }

    pub(crate) fn has_read_only_session(&self) -> bool {
        self.sessions.any(|s| !Token::lock_session(s).rw)
    }

    pub(crate) fn sessions_forget_private(&self) {
        self.sessions.for_each(|s| {
            let mut s = Token::lock_session(s);
            if s.private_op {
                s.end_all();
            }
            s.find = None;
            s.last_key = None;
        });
        self.session_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, o)| !object::is_private(&o.attrs));
    }

    /// Session `sid` as a [`SessionRef`], for callers that keep it beside the
    /// handle and pass it to the operation functions instead of `sid`.
    pub fn session_ref(&self, sid: u64) -> Result<SessionRef> {
        Ok(self.session_ref_to(self.session(sid)?))
    }

    fn session_ref_to(&self, session: Arc<Mutex<Session>>) -> SessionRef {
        SessionRef {
            session,
            token: self.instance(),
        }
    }

    fn session(&self, sid: u64) -> Result<Arc<Mutex<Session>>> {
        // A token locked by the picture-verification gate refuses every operation
        // (the state last seen; each operation's init looks at the file).
        self.ensure_unblocked_cached()?;
        self.sessions.get(sid).ok_or(Error::SessionHandleInvalid)
    }

    fn lock_session(s: &Arc<Mutex<Session>>) -> MutexGuard<'_, Session> {
        s.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `C_GetSessionInfo`.
    pub fn session_info(&self, sid: u64) -> Result<SessionInfo> {
        let s = self.session(sid)?;
        let rw = Token::lock_session(&s).rw;
        let state = match (self.logged_in(), rw) {
            (Some(UserType::So), _) => CKS_RW_SO_FUNCTIONS,
            (Some(UserType::User), true) => CKS_RW_USER_FUNCTIONS,
            (Some(UserType::User), false) => CKS_RO_USER_FUNCTIONS,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (None, false) => CKS_RO_PUBLIC_SESSION,
        };
        Ok(SessionInfo { state, rw })
    }

    // ------------------------------------------------------------------ objects

    fn user_in(&self) -> bool {
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
    fn object_at(&self, id: u64, dv: Option<i64>) -> Result<Arc<CachedObject>> {
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

    fn object_unchecked_at(&self, id: u64, dv: Option<i64>) -> Result<Arc<CachedObject>> {
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
    fn check_trusted_template(&self, template: &Attributes) -> Result<()> {
        if template.get_bool(CKA_TRUSTED)? == Some(true) && self.logged_in() != Some(UserType::So) {
            return Err(Error::AttributeReadOnly(CKA_TRUSTED));
        }
        Ok(())
    }

    fn check_write(&self, sid: u64, attrs: &Attributes) -> Result<()> {
        let s = self.session(sid)?;
        let rw = Token::lock_session(&s).rw;
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
    pub(crate) fn store_object(&self, sid: u64, mut attrs: Attributes) -> Result<u64> {
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
                .insert(id, (sid, o));
            Ok(id)
        }
    }

    /// `C_CreateObject`.
    pub fn create_object(&self, sid: u64, template: &Attributes) -> Result<u64> {
        self.session(sid)?;
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
    pub fn copy_object(&self, sid: u64, id: u64, template: &Attributes) -> Result<u64> {
        self.session(sid)?;
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
    pub fn destroy_object(&self, sid: u64, id: u64) -> Result<()> {
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
        sid: u64,
        id: u64,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrResult>> {
        self.session(sid)?;
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
    pub fn set_attributes(&self, sid: u64, id: u64, template: &Attributes) -> Result<()> {
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
    pub fn object_size(&self, sid: u64, id: u64) -> Result<usize> {
        self.session(sid)?;
        let o = self.object(id)?;
        // A zeroizing buffer: the serialization holds secret values.
        Ok(o.attrs.to_sealable().map(|v| v.len()).unwrap_or(0))
    }

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
    fn with_session_objects(&self, template: &Attributes, mut found: Vec<u64>) -> Result<Vec<u64>> {
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

    /// The attributes of a visible object (for the CLI and Rust callers).
    pub fn attributes(&self, id: u64) -> Result<Arc<Attributes>> {
        Ok(self.object(id)?.attrs.clone())
    }

    /// `C_FindObjectsInit`.
    pub fn find_init(&self, sid: u64, template: &Attributes) -> Result<()> {
        let s = self.session(sid)?;
        if Token::lock_session(&s).find.is_some() {
            return Err(Error::OperationActive);
        }
        let mut ids = self.search(template)?;
        ids.reverse();
        Token::lock_session(&s).find = Some(ids);
        Ok(())
    }

    /// `C_FindObjects`: up to `max` more handles.
    pub fn find_next(&self, sid: u64, max: usize) -> Result<Vec<u64>> {
        let s = self.session(sid)?;
        let mut s = Token::lock_session(&s);
        let list = s.find.as_mut().ok_or(Error::OperationNotInitialized)?;
        let n = max.min(list.len());
        let at = list.len() - n;
        let mut out = list.split_off(at);
        out.reverse();
        Ok(out)
    }

    /// `C_FindObjectsFinal`.
    pub fn find_final(&self, sid: u64) -> Result<()> {
        let s = self.session(sid)?;
        let mut s = Token::lock_session(&s);
        s.find.take().ok_or(Error::OperationNotInitialized)?;
        Ok(())
    }

    // ------------------------------------------------------------------ keys

    /// The parsed key of an object, cached with it.
    fn key_of(&self, id: u64, usage: CK_ATTRIBUTE_TYPE, mech: &Mechanism) -> Result<KeyUse> {
        // Taken before anything is read: a change from here on moves it.
        let epoch = self.fresh.epoch();
        // Each operation's init looks at the file once: a gate lock set by another
        // process stops it here, and the object is read as of the same version.
        let (dv, gate) = self.hooks.key_use.fresh(self)?;
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
            gate,
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
    fn reuse<'s>(
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
            || !k.gate.lets_through(gate, &k.obj.attrs)
            || !k.gate.lets_through(also, &k.obj.attrs)
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
    fn init_keyed<T: ?Sized>(
        &self,
        sid: impl SessionKey,
        mech: &Mechanism,
        key: u64,
        kind: InitKind<T>,
    ) -> Result<()> {
        let s = sid.resolve(self)?;
        // The file's version as of a recent look (a look now if there was none), taken
        // before the session's lock: the store's lock is never taken under it.
        let dv = if key < SESSION_OBJECT_BASE {
            self.fresh
                .recent()
                .or_else(|| self.store().data_version_recent().ok())
        } else {
            None
        };
        let mut g = Token::lock_session(&s);
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
                .find(|c| !k.gate.lets_through(Some(*c), &k.obj.attrs));
            if let Some(c) = gated {
                self.key_check(c, &k.obj.attrs, &k.gate, verb)?;
            }
        }
        let mut g = Token::lock_session(&s);
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
    fn key_check(
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
    fn needs_context_login(usage: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(usage, CKA_SIGN | CKA_DECRYPT)
    }

    /// `C_Login(CKU_CONTEXT_SPECIFIC)` on session `sid`: the user PIN verified again
    /// (counted like a login) lets the operations initialized on this session with
    /// a `CKA_ALWAYS_AUTHENTICATE` key run (each later init needs a new one).
    pub fn context_login(&self, sid: u64, pin: &[u8]) -> Result<()> {
        let s = self.session(sid)?;
        self.verify_user_pin(pin)?;
        let mut g = Token::lock_session(&s);
        if let Some(st) = g.sign.as_mut() {
            st.needs_auth = false;
        }
        if let Some(st) = g.decrypt.as_mut() {
            st.needs_auth = false;
        }
        Ok(())
    }

    /// Re-seals key records an older version sealed as public (see
    /// [`crate::store::Store::migrate_public_keys`]); runs at user login. A failure
    /// (a read-only file) is logged: such records stay invisible without login.
    pub(crate) fn migrate_public_keys(&self) {
        let Some(keys) = self.master_keys() else {
            return;
        };
        let res = self.store().migrate_public_keys(&keys);
        match res {
            Ok(0) => {}
            Ok(n) => {
                self.cache_write().objects.clear();
                warn!(serial = %self.serial(), records = n, "key records sealed as public by an older version re-sealed under the master key");
            }
            Err(e) => {
                warn!(serial = %self.serial(), error = %e, "public key records could not be re-sealed")
            }
        }
    }

    fn check_mech_flag(mech: &Mechanism, flag: CK_FLAGS) -> Result<()> {
        let info = mechanism::mechanism_info(mech.ty)?;
        if info.flags & flag == 0 {
            return Err(Error::MechanismInvalid(mech.ty));
        }
        Ok(())
    }

    /// `C_GenerateKey`.
    pub fn generate_key(&self, sid: u64, mech: &Mechanism, template: &Attributes) -> Result<u64> {
        self.session(sid)?;
        Token::check_mech_flag(mech, CKF_GENERATE)?;
        object::check_encoding(template)?;
        self.check_trusted_template(template)?;
        let mut generated = mechanism::generate_key(mech, template)?;
        generated.set_bool(CKA_LOCAL, true);
        generated.set_ulong(CKA_KEY_GEN_MECHANISM, mech.ty);
        let template = self.key_template(template, generated.class());
        let attrs = object::build(&template, Origin::Generated, &generated)?;
        self.check_write(sid, &attrs)?;
        self.store_object(sid, attrs)
    }

    /// `C_GenerateKeyPair`: returns (public, private) ids.
    pub fn generate_key_pair(
        &self,
        sid: u64,
        mech: &Mechanism,
        pub_t: &Attributes,
        priv_t: &Attributes,
    ) -> Result<(u64, u64)> {
        self.session(sid)?;
        Token::check_mech_flag(mech, CKF_GENERATE_KEY_PAIR)?;
        object::check_encoding(pub_t)?;
        object::check_encoding(priv_t)?;
        self.check_trusted_template(pub_t)?;
        self.check_trusted_template(priv_t)?;
        let (mut gp, mut gs) = mechanism::generate_key_pair(mech, pub_t, priv_t)?;
        for g in [&mut gp, &mut gs] {
            g.set_bool(CKA_LOCAL, true);
            g.set_ulong(CKA_KEY_GEN_MECHANISM, mech.ty);
        }
        // Both halves share one CKA_ID: the caller's, or the one derived from the
        // generated public key. It goes into the templates before the objects are
        // built, so building the private half does not derive it again from the
        // scalar (for EC that is a PKCS#8 round trip with two scalar
        // multiplications: three quarters of a session key pair's cost).
        let id = match (pub_t.get(CKA_ID), priv_t.get(CKA_ID)) {
            (Some(a), _) if !a.is_empty() => a.to_vec(),
            (_, Some(b)) if !b.is_empty() => b.to_vec(),
            _ => object::derived_id(&gp).unwrap_or_default(),
        };
        let with_id = |t: &Attributes| {
            let mut t = t.clone();
            if !t.contains(CKA_ID) {
                t.set(CKA_ID, id.clone());
            }
            t
        };
        let pub_attrs = object::build(&with_id(pub_t), Origin::Generated, &gp)?;
        let priv_t = with_id(priv_t);
        let priv_t = self.key_template(&priv_t, Some(CKO_PRIVATE_KEY));
        let priv_attrs = object::build(&priv_t, Origin::Generated, &gs)?;
        self.check_write(sid, &pub_attrs)?;
        self.check_write(sid, &priv_attrs)?;
        let p = self.store_object(sid, pub_attrs)?;
        match self.store_object(sid, priv_attrs) {
            Ok(s) => Ok((p, s)),
            Err(e) => {
                let _ = self.destroy_object(sid, p);
                Err(e)
            }
        }
    }

    /// `C_WrapKey`.
    pub fn wrap_key(
        &self,
        sid: u64,
        mech: &Mechanism,
        wrapping: u64,
        key: u64,
        out: OutLen,
    ) -> Result<Output> {
        self.session(sid)?;
        let w = self.key_of(wrapping, CKA_WRAP, mech)?;
        let o = self.object(key).map_err(|_| Error::KeyHandleInvalid)?;
        if !o.attrs.bool_or(CKA_EXTRACTABLE, false) {
            return Err(Error::KeyUnextractable);
        }
        if o.attrs.bool_or(CKA_WRAP_WITH_TRUSTED, false) && !w.obj.attrs.bool_or(CKA_TRUSTED, false)
        {
            return Err(Error::KeyNotWrappable);
        }
        if self.strict_wrap && o.attrs.bool_or(CKA_SENSITIVE, true) {
            check_strict_wrap(&w.obj.attrs, &o.attrs)?;
        }
        self.key_check(
            OpClass::KeyExport,
            &o.attrs,
            &w.gate,
            "export by wrapping",
        )?;
        let bytes = mechanism::wrap(mech, &w.key, &o.attrs)?;
        Ok(deliver(out, bytes).0)
    }

    /// `C_UnwrapKey`.
    pub fn unwrap_key(
        &self,
        sid: u64,
        mech: &Mechanism,
        unwrapping: u64,
        wrapped: &[u8],
        template: &Attributes,
    ) -> Result<u64> {
        self.session(sid)?;
        object::check_encoding(template)?;
        self.check_trusted_template(template)?;
        let u = self.key_of(unwrapping, CKA_UNWRAP, mech)?;
        self.key_check(
            OpClass::Unwrap,
            &u.obj.attrs,
            &u.gate,
            "unwrap a key",
        )?;
        if exposes_value(template) {
            // The unwrapped value can be read back: the unwrap is a decryption.
            self.key_check(
                OpClass::Decrypt,
                &u.obj.attrs,
                &u.gate,
                "unwrap into an extractable key",
            )?;
        }
        let uk = u.key;
        let plain = mechanism::unwrap(mech, &uk, wrapped)?;
        let mut generated = match template.class() {
            Some(CKO_PRIVATE_KEY) => mechanism::encoding::pkcs8_to_attributes(&plain)?.1,
            Some(CKO_SECRET_KEY) => {
                let mut g = Attributes::new();
                g.set(CKA_VALUE, plain.to_vec());
                g.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
                g
            }
            _ => {
                return Err(Error::TemplateIncomplete(
                    "CKA_CLASS of the unwrapped key".into(),
                ))
            }
        };
        generated.set_bool(CKA_LOCAL, false);
        generated.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
        let template = self.key_template(template, generated.class());
        let mut attrs = object::build(&template, Origin::Generated, &generated)?;
        attrs.set_bool(CKA_ALWAYS_SENSITIVE, false);
        attrs.set_bool(CKA_NEVER_EXTRACTABLE, false);
        self.store_object(sid, attrs)
    }

    /// `C_DeriveKey`.
    pub fn derive_key(
        &self,
        sid: u64,
        mech: &Mechanism,
        base: u64,
        template: &Attributes,
    ) -> Result<u64> {
        self.session(sid)?;
        object::check_encoding(template)?;
        self.check_trusted_template(template)?;
        let b = self.key_of(base, CKA_DERIVE, mech)?;
        self.key_check(
            OpClass::Derive,
            &b.obj.attrs,
            &b.gate,
            "derive a key",
        )?;
        if exposes_value(template) {
            // The derived value can be read back: the derivation is a decryption.
            self.key_check(
                OpClass::Decrypt,
                &b.obj.attrs,
                &b.gate,
                "derive an extractable key",
            )?;
        }
        let bk = b.key;
        let secret = mechanism::derive(mech, &bk, template)?;
        let mut g = Attributes::new();
        g.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        if template.key_type().is_none() {
            g.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        }
        g.set(CKA_VALUE, secret.to_vec());
        g.set_bool(CKA_LOCAL, false);
        g.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
        let template = self.key_template(template, Some(CKO_SECRET_KEY));
        let attrs = object::build(&template, Origin::Generated, &g)?;
        self.store_object(sid, attrs)
    }

    /// A creation template for an object of `class` under `[policy] key_privacy`:
    /// with `force`, `CKA_PRIVATE = false` on a private or secret key becomes `true`
    /// (the key is private either way; `object::build` refuses what is left).
    fn key_template<'a>(
        &self,
        template: &'a Attributes,
        class: Option<CK_OBJECT_CLASS>,
    ) -> std::borrow::Cow<'a, Attributes> {
        let class = template.class().or(class);
        if self.key_privacy == crate::config::KeyPrivacy::Force
            && matches!(class, Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY))
            && template.get(CKA_PRIVATE) == Some(&[0u8][..])
        {
            let mut t = template.clone();
            t.set_bool(CKA_PRIVATE, true);
            return std::borrow::Cow::Owned(t);
        }
        std::borrow::Cow::Borrowed(template)
    }

    // ------------------------------------------------------------------ operations

    /// `C_SignInit`.
    pub fn sign_init(&self, sid: impl SessionKey, mech: &Mechanism, key: u64) -> Result<()> {
        self.init_keyed(
            sid,
            mech,
            key,
            InitKind {
                usage: CKA_SIGN,
                flag: CKF_SIGN,
                gate: Some((OpClass::Sign, "sign")),
                also: None,
                slot: |s| &mut s.sign,
                make: mechanism::sign_init,
            },
        )
    }

    /// `C_Sign` (single part).
    pub fn sign(&self, sid: impl SessionKey, data: &[u8], out: OutLen) -> Result<Output> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        check_auth(&s.sign)?;
        if let Some(st) = s.sign.as_ref() {
            if st.multi {
                s.sign = None;
                return Err(Error::OperationActive);
            }
            if out == OutLen::Query && st.pending.is_none() {
                return Ok(Output::Needed(st.op.sig_len()));
            }
        }
        step(&mut s.sign, out, true, |st| {
            st.op.update(data)?;
            st.op.finish()
        })
    }

    /// `C_SignUpdate`.
    pub fn sign_update(&self, sid: impl SessionKey, data: &[u8]) -> Result<()> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        check_auth(&s.sign)?;
        let st = s.sign.as_mut().ok_or(Error::OperationNotInitialized)?;
        st.multi = true;
        if let Err(e) = st.op.update(data) {
            s.sign = None;
            return Err(e);
        }
        Ok(())
    }

    /// `C_SignFinal`.
    pub fn sign_final(&self, sid: impl SessionKey, out: OutLen) -> Result<Output> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        check_auth(&s.sign)?;
        if let Some(st) = s.sign.as_ref() {
            if out == OutLen::Query && st.pending.is_none() {
                return Ok(Output::Needed(st.op.sig_len()));
            }
        }
        step(&mut s.sign, out, true, |st| st.op.finish())
    }

    /// `C_VerifyInit`.
    pub fn verify_init(&self, sid: impl SessionKey, mech: &Mechanism, key: u64) -> Result<()> {
        self.init_keyed(
            sid,
            mech,
            key,
            InitKind {
                usage: CKA_VERIFY,
                flag: CKF_VERIFY,
                gate: None,
                also: None,
                slot: |s| &mut s.verify,
                make: mechanism::verify_init,
            },
        )
    }

    /// `C_Verify` (single part). The operation ends whatever the outcome.
    pub fn verify(&self, sid: impl SessionKey, data: &[u8], signature: &[u8]) -> Result<()> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        let mut st = s.verify.take().ok_or(Error::OperationNotInitialized)?;
        if st.multi {
            return Err(Error::OperationActive);
        }
        st.op.update(data)?;
        st.op.finish(signature)
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, sid: impl SessionKey, data: &[u8]) -> Result<()> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        let st = s.verify.as_mut().ok_or(Error::OperationNotInitialized)?;
        st.multi = true;
        if let Err(e) = st.op.update(data) {
            s.verify = None;
            return Err(e);
        }
        Ok(())
    }

    /// `C_VerifyFinal`.
    pub fn verify_final(&self, sid: impl SessionKey, signature: &[u8]) -> Result<()> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        let mut st = s.verify.take().ok_or(Error::OperationNotInitialized)?;
        st.op.finish(signature)
    }

    fn cipher_init(
        &self,
        sid: impl SessionKey,
        mech: &Mechanism,
        key: u64,
        enc: bool,
    ) -> Result<()> {
        let kind = if enc {
            InitKind {
                usage: CKA_ENCRYPT,
                flag: CKF_ENCRYPT,
                gate: None,
                also: None,
                slot: |s| &mut s.encrypt,
                make: mechanism::encrypt_init,
            }
        } else {
            InitKind {
                usage: CKA_DECRYPT,
                flag: CKF_DECRYPT,
                gate: Some((OpClass::Decrypt, "decrypt")),
                // A raw or PKCS#1 v1.5 RSA decryption with a private key turns an
                // encoded digest into a signature: it is a signature too.
                also: matches!(mech.ty, CKM_RSA_X_509 | CKM_RSA_PKCS)
                    .then_some(OpClass::Sign),
                slot: |s| &mut s.decrypt,
                make: mechanism::decrypt_init,
            }
        };
        self.init_keyed(sid, mech, key, kind)
    }

    fn cipher_slot(s: &mut Session, enc: bool) -> &mut Option<Stage<dyn CipherOp>> {
        if enc {
            &mut s.encrypt
        } else {
            &mut s.decrypt
        }
    }

    fn cipher_once(
        &self,
        sid: impl SessionKey,
        data: &[u8],
        out: OutLen,
        enc: bool,
    ) -> Result<Output> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        let slot = Token::cipher_slot(&mut s, enc);
        check_auth(slot)?;
        if let Some(st) = slot.as_ref() {
            if st.multi {
                *slot = None;
                return Err(Error::OperationActive);
            }
            // Encryption can answer a length query without doing the work.
            if enc && out == OutLen::Query && st.pending.is_none() {
                return Ok(Output::Needed(st.op.max_output_len(data.len())));
            }
        }
        step(slot, out, true, |st| st.op.once(data))
    }

    fn cipher_update(
        &self,
        sid: impl SessionKey,
        data: &[u8],
        out: OutLen,
        enc: bool,
    ) -> Result<Output> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        let slot = Token::cipher_slot(&mut s, enc);
        check_auth(slot)?;
        if let Some(st) = slot.as_mut() {
            st.multi = true;
        }
        step(slot, out, false, |st| st.op.update(data))
    }

    fn cipher_final(&self, sid: impl SessionKey, out: OutLen, enc: bool) -> Result<Output> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        let slot = Token::cipher_slot(&mut s, enc);
        check_auth(slot)?;
        step(slot, out, true, |st| st.op.finish())
    }

    /// `C_EncryptInit`.
    pub fn encrypt_init(&self, sid: impl SessionKey, mech: &Mechanism, key: u64) -> Result<()> {
        self.cipher_init(sid, mech, key, true)
    }
    /// `C_Encrypt`.
    pub fn encrypt(&self, sid: impl SessionKey, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_once(sid, data, out, true)
    }
    /// `C_EncryptUpdate`.
    pub fn encrypt_update(&self, sid: impl SessionKey, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_update(sid, data, out, true)
    }
    /// `C_EncryptFinal`.
    pub fn encrypt_final(&self, sid: impl SessionKey, out: OutLen) -> Result<Output> {
        self.cipher_final(sid, out, true)
    }
    /// `C_DecryptInit`.
    pub fn decrypt_init(&self, sid: impl SessionKey, mech: &Mechanism, key: u64) -> Result<()> {
        self.cipher_init(sid, mech, key, false)
    }
    /// `C_Decrypt`.
    pub fn decrypt(&self, sid: impl SessionKey, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_once(sid, data, out, false)
    }
    /// `C_DecryptUpdate`.
    pub fn decrypt_update(&self, sid: impl SessionKey, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_update(sid, data, out, false)
    }
    /// `C_DecryptFinal`.
    pub fn decrypt_final(&self, sid: impl SessionKey, out: OutLen) -> Result<Output> {
        self.cipher_final(sid, out, false)
    }

    /// `C_DigestInit`.
    pub fn digest_init(&self, sid: impl SessionKey, mech: &Mechanism) -> Result<()> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        if s.digest.is_some() {
            return Err(Error::OperationActive);
        }
        s.digest = Some(Stage::new(mechanism::digest_init(mech)?));
        Ok(())
    }

    /// `C_Digest`.
    pub fn digest(&self, sid: impl SessionKey, data: &[u8], out: OutLen) -> Result<Output> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        if let Some(st) = s.digest.as_ref() {
            if st.multi {
                s.digest = None;
                return Err(Error::OperationActive);
            }
            if st.pending.is_none() && out == OutLen::Query {
                return Ok(Output::Needed(st.op.len()));
            }
        }
        step(&mut s.digest, out, true, |st| {
            st.op.update(data);
            Ok(st.op.finish())
        })
    }

    /// `C_DigestUpdate`.
    pub fn digest_update(&self, sid: impl SessionKey, data: &[u8]) -> Result<()> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        let st = s.digest.as_mut().ok_or(Error::OperationNotInitialized)?;
        st.multi = true;
        st.op.update(data);
        Ok(())
    }

    /// `C_DigestKey`: feeds a secret key's value into the digest.
    pub fn digest_key(&self, sid: impl SessionKey, key: u64) -> Result<()> {
        let o = self.object(key).map_err(|_| Error::KeyHandleInvalid)?;
        if o.attrs.class() != Some(CKO_SECRET_KEY) {
            return Err(Error::KeyHandleInvalid);
        }
        if o.attrs.bool_or(CKA_SENSITIVE, true) && !o.attrs.bool_or(CKA_EXTRACTABLE, false) {
            return Err(Error::KeyIndigestible);
        }
        let v = o
            .attrs
            .get(CKA_VALUE)
            .ok_or(Error::KeyIndigestible)?
            .to_vec();
        let v = zeroize::Zeroizing::new(v);
        self.digest_update(sid, &v)
    }

    /// `C_DigestFinal`.
    pub fn digest_final(&self, sid: impl SessionKey, out: OutLen) -> Result<Output> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        if let Some(st) = s.digest.as_ref() {
            if st.pending.is_none() && out == OutLen::Query {
                return Ok(Output::Needed(st.op.len()));
            }
        }
        step(&mut s.digest, out, true, |st| Ok(st.op.finish()))
    }

    /// Ends every operation of a session (`C_SessionCancel`).
    pub fn cancel(&self, sid: impl SessionKey) -> Result<()> {
        let s = sid.resolve(self)?;
        Token::lock_session(&s).end_all();
        Ok(())
    }

    /// The session's id (for logs).
    pub fn session_id(s: &Session) -> u64 {
        s.id
    }
}
