//! Sessions, object access and cryptographic operations of one token.
//!
//! Each session has its own lock; a signature holds only its session's lock and an
//! `Arc` of the parsed key, so threads on different sessions sign in parallel.
//!
//! Output follows PKCS#11's length protocol through [`OutLen`] and [`Output`]: a
//! query or a too-small buffer returns [`Output::Needed`] and leaves the operation
//! active (a computed result is kept for the next call); anything else ends it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use crate::token::session_state::{KeyUse, SessionCell, Stage, Use};
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

/// A session of one token: the one handle the session API takes.
/// [`Token::open_session`] returns it and [`SessionRef::id`] is its PKCS#11 session
/// handle (the module maps each `CK_SESSION_HANDLE` to its `SessionRef` once per
/// call, so no call looks the session up again). It names a session of the token
/// that opened it only, until [`Token::close_session`] or
/// [`Token::close_all_sessions`]: after that every call with it answers
/// `SessionHandleInvalid`, as the handle would.
#[derive(Clone)]
pub struct SessionRef {
    cell: Arc<SessionCell>,
    /// The token the session belongs to ([`Token::instance`], checked on use).
    token: u64,
    id: u64,
}

impl SessionRef {
    /// The session's handle: unique within the process across all tokens, never 0.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl std::fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRef")
            .field("id", &self.id)
            .finish_non_exhaustive()
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
    pub fn open_session(&self, rw: bool) -> Result<SessionRef> {
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
        let cell = Arc::new(SessionCell {
            state: Mutex::new(s),
            open: AtomicBool::new(true),
        });
        self.sessions.insert(id, cell.clone());
        debug!(serial = %self.serial(), session = id, rw, "session opened");
        Ok(SessionRef {
            cell,
            token: self.instance(),
            id,
        })
    }

    /// `C_CloseSession`: its session objects go with it; the last session logs out.
    pub fn close_session(&self, sid: &SessionRef) -> Result<()> {
        if sid.token != self.instance() {
            return Err(Error::SessionHandleInvalid);
        }
        let cell = self
            .sessions
            .remove(sid.id)
            .ok_or(Error::SessionHandleInvalid)?;
        Token::close_cell(&cell);
        // (Two last closes at once may both see none left: the second logout is a
        // no-op.)
        let last = self.sessions.is_empty();
        self.session_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (owner, _)| *owner != sid.id);
        if last {
            let _ = self.logout();
        }
        Ok(())
    }

    /// `C_CloseAllSessions`.
    pub fn close_all_sessions(&self) {
        self.sessions.retain(|_, cell| {
            Token::close_cell(cell);
            false
        });
        self.session_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = self.logout();
    }

    /// Marks a session closed for the references still held to it. Its operations
    /// (and the keys they hold) go with the last reference: the module holds the only
    /// one and drops it with the handle, so `C_CloseSession` takes no session lock.
    fn close_cell(cell: &SessionCell) {
        cell.open.store(false, Ordering::Release);
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

    /// The session `sid` names, if it is open and of this token. A token locked by
    /// the picture-verification gate refuses every operation (the state last seen;
    /// each operation's init looks at the file).
    fn resolve<'s>(&self, sid: &'s SessionRef) -> Result<&'s SessionCell> {
        if sid.token != self.instance() || !sid.cell.open.load(Ordering::Acquire) {
            return Err(Error::SessionHandleInvalid);
        }
        self.ensure_unblocked_cached()?;
        Ok(&sid.cell)
    }

    fn lock_session(s: &SessionCell) -> MutexGuard<'_, Session> {
        s.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `C_GetSessionInfo`.
    pub fn session_info(&self, sid: &SessionRef) -> Result<SessionInfo> {
        let s = self.resolve(sid)?;
        let rw = Token::lock_session(s).rw;
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
    pub fn cancel(&self, sid: &SessionRef) -> Result<()> {
        let s = self.resolve(sid)?;
        Token::lock_session(s).end_all();
        Ok(())
    }

    /// Ends one kind of operation of a session, if active: PKCS#11 ends an
    /// operation on any failed call except a short buffer or a length query,
    /// including calls refused for their arguments before they reach the token.
    pub fn end_operation(&self, sid: &SessionRef, op: Operation) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
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
    pub fn operation_active(&self, sid: &SessionRef, op: Operation) -> Result<bool> {
        let s = self.resolve(sid)?;
        let s = Token::lock_session(s);
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
