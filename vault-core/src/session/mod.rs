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
pub use crate::mechanism::AeadParams;
use crate::mechanism::{self, CipherOp, Key, Mechanism};
use crate::object::{self, Origin};
use crate::store::IndexFilter;
use crate::token::hooks::{KeyVerdict, OpClass};
use crate::token::session_state::{KeyUse, Stage, Use};
pub use crate::token::Session;
use crate::token::{CachedObject, Token, UserType, SESSION_OBJECT_BASE};
pub use message::MessageKind;

mod cipher;
mod digest;
mod find;
mod init;
mod keys;
pub(crate) mod message;
mod objects;
mod sign;

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

/// The result of an operation that writes into the caller's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Filled {
    /// This many bytes were written at the start of the buffer.
    Wrote(usize),
    /// The buffer is missing or too small: this many bytes are needed. The operation
    /// stays active.
    Needed(usize),
}

/// The kinds of operation a session runs, one of each at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Encrypt,
    Decrypt,
    Digest,
    Sign,
    Verify,
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

impl Session {
    fn end_all(&mut self) {
        self.find = None;
        self.sign = None;
        self.verify = None;
        self.encrypt = None;
        self.decrypt = None;
        self.digest = None;
        self.messages = None;
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
            messages: None,
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

    /// Ends every operation of a session (`C_SessionCancel`).
    pub fn cancel(&self, sid: impl SessionKey) -> Result<()> {
        let s = sid.resolve(self)?;
        Token::lock_session(&s).end_all();
        Ok(())
    }

    /// Ends one kind of operation of a session, if active: PKCS#11 ends an
    /// operation on any failed call except a short buffer or a length query,
    /// including calls refused for their arguments before they reach the token.
    pub fn end_operation(&self, sid: impl SessionKey, op: Operation) -> Result<()> {
        let s = sid.resolve(self)?;
        let mut s = Token::lock_session(&s);
        match op {
            Operation::Encrypt => s.encrypt = None,
            Operation::Decrypt => s.decrypt = None,
            Operation::Digest => s.digest = None,
            Operation::Sign => s.sign = None,
            Operation::Verify => s.verify = None,
        }
        Ok(())
    }

    /// Whether an operation of kind `op` is active on the session.
    pub fn operation_active(&self, sid: impl SessionKey, op: Operation) -> Result<bool> {
        let s = sid.resolve(self)?;
        let s = Token::lock_session(&s);
        Ok(match op {
            Operation::Encrypt => s.encrypt.is_some(),
            Operation::Decrypt => s.decrypt.is_some(),
            Operation::Digest => s.digest.is_some(),
            Operation::Sign => s.sign.is_some(),
            Operation::Verify => s.verify.is_some(),
        })
    }

    /// The session's id (for logs).
    pub fn session_id(s: &Session) -> u64 {
        s.id
    }
}
