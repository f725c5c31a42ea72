//! The state of one session, owned by the token's session table: the operation slots
//! and the key the last init used (the per-session fast path, [`super::fresh`]). The
//! operations over this state live in `crate::session` (SPEC T3, T4).

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use cryptoki_sys::*;

use zeroize::Zeroizing;

use crate::mechanism::{AeadParams, CipherOp, DigestOp, Key, Mechanism, SignOp, VerifyOp};
use crate::token::hooks::{KeyVerdict, OpClass};
use crate::token::CachedObject;

/// One operation in progress.
pub(crate) struct Stage<T: ?Sized> {
    pub(crate) op: Box<T>,
    pub(crate) multi: bool,
    pub(crate) pending: Option<Vec<u8>>,
    /// The key has `CKA_ALWAYS_AUTHENTICATE`: no step runs until a
    /// `C_Login(CKU_CONTEXT_SPECIFIC)` on this session after the init.
    pub(crate) needs_auth: bool,
}

/// A session as the token's session table and its [`crate::session::SessionRef`]s
/// hold it: `open` turns false once, when the session closes, so a reference kept
/// past `C_CloseSession` names nothing (read on every call; written only at close).
/// `open` comes first, on the cache line of the session's lock (which this session's
/// calls write anyway), not after `Session`'s cold tail beside the next heap block.
#[repr(C)]
pub(crate) struct SessionCell {
    pub(crate) open: AtomicBool,
    pub(crate) state: Mutex<Session>,
}

/// One session. Its lock and operation slots are written on every call, by whichever
/// thread uses it; `_cold_tail` (fields in declaration order) keeps the next heap block
/// (often another session, opened right after this one) off this one's written cache
/// lines, without the cost of an over-aligned allocation.
#[repr(C)]
pub struct Session {
    pub(crate) id: u64,
    pub(crate) rw: bool,
    pub(crate) find: Option<Vec<u64>>,
    pub(crate) sign: Option<Stage<dyn SignOp>>,
    pub(crate) verify: Option<Stage<dyn VerifyOp>>,
    pub(crate) encrypt: Option<Stage<dyn CipherOp>>,
    pub(crate) decrypt: Option<Stage<dyn CipherOp>>,
    pub(crate) digest: Option<Stage<dyn DigestOp>>,
    /// Keys used by active operations, so logout can end the private ones.
    pub(crate) private_op: bool,
    /// The key the last operation's init here used (token objects only): the next
    /// init with the same key reuses it while the file and the process are unchanged.
    pub(crate) last_key: Option<KeyUse>,
    /// The message-based operations (PKCS#11 3.0), allocated on first use.
    pub(crate) messages: Option<Box<MessageSlots>>,
    pub(crate) _cold_tail: [u8; 64],
}

/// A key object ready for an operation, with the key-use hook's verdict (the gate
/// record) read at the same time, and what it is current as of: the file's
/// `data_version` it was read at and the token's epoch taken before
/// ([`crate::token::fresh`]).
pub(crate) struct KeyUse {
    pub(crate) id: u64,
    pub(crate) key: Arc<Key>,
    pub(crate) private: bool,
    /// `CKA_ALWAYS_AUTHENTICATE` (read once, here).
    pub(crate) always_auth: bool,
    pub(crate) obj: Arc<CachedObject>,
    pub(crate) verdict: Arc<dyn KeyVerdict>,
    pub(crate) dv: i64,
    pub(crate) epoch: u64,
    /// The last (usage, mechanism, gate class) `Token::reuse` found this key good
    /// for without asking the gate: the same init again needs no attribute scans.
    pub(crate) passed: std::cell::Cell<Option<Use>>,
}

/// What a reused key was last found good for: usage attribute, mechanism, gate class.
pub(crate) type Use = (CK_ATTRIBUTE_TYPE, CK_MECHANISM_TYPE, Option<OpClass>);

/// One message-based context (PKCS#11 3.0; the operations are in
/// `crate::session::message`).
pub(crate) struct MessageCtx {
    /// The init's mechanism (a signature's parameter, such as PSS's, applies to
    /// every message).
    pub(crate) mech: Mechanism,
    pub(crate) key: Key,
    /// IVs this encryption context has used (a 96-bit IV twice under one GCM key
    /// gives away the authentication key).
    pub(crate) used_ivs: HashSet<Vec<u8>>,
    pub(crate) counter: u64,
    /// The message begun by `C_*MessageBegin`, if any.
    pub(crate) part: Option<Part>,
}

/// A message in progress: its parameter and associated data, the data so far
/// (GCM is computed over the whole message at its end), or the running signature.
pub(crate) enum Part {
    Aead {
        params: AeadParams,
        aad: Vec<u8>,
        data: Zeroizing<Vec<u8>>,
    },
    Sign(Box<dyn SignOp>),
    Verify(Box<dyn VerifyOp>),
}

/// The message contexts of a session, allocated on first use.
#[derive(Default)]
pub(crate) struct MessageSlots {
    pub(crate) encrypt: Option<Stage<MessageCtx>>,
    pub(crate) decrypt: Option<Stage<MessageCtx>>,
    pub(crate) sign: Option<Stage<MessageCtx>>,
    pub(crate) verify: Option<Stage<MessageCtx>>,
}
