//! The module's global state between `C_Initialize` and `C_Finalize`: the token
//! directory, the tokens this process has opened, the free slot, and the map from
//! session handle to token.
//!
//! Thread safety (SPEC T5): locks are held only long enough to look something up:
//! a call loads the state (lock-free, `arc-swap`), takes a reference on its
//! session's entry from a sharded map, releases every lock here, then calls the
//! token. So many threads sign at once: threads on different sessions write no
//! cache line in common on this path, and each session has its own lock in the core.
//!
//! Fork: the state remembers the pid that initialized it. In a child, every call
//! answers `CKR_CRYPTOKI_NOT_INITIALIZED` until the child calls `C_Initialize`,
//! which discards the parent's state without closing its SQLite handles (closing a
//! connection that the parent still uses could disturb the parent's locks).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use arc_swap::ArcSwapOption;

use cryptoki_sys::*;
use vault_core::config::Config;
use vault_core::session::SessionRef;
use vault_core::slots::{slot_id_for_serial, Registry, TokenEntry};
use vault_core::token::{new_serial, ShardedHandles, Token};

use crate::guard::Rv;

/// The process's state, present between `C_Initialize` and `C_Finalize`.
static GLOBAL: ArcSwapOption<State> = ArcSwapOption::const_empty();

/// Serializes `C_Initialize` and `C_Finalize` (readers never wait for it).
static LIFECYCLE: Mutex<()> = Mutex::new(());

/// A session handle's token. The per-call path takes a reference on it, so
/// `_cold_tail` (fields in declaration order) keeps the next heap block (often the
/// entry of the session opened next, used by another thread) off its cache line.
#[repr(C)]
pub(crate) struct SessionEntry {
    /// The slot the session was opened on.
    pub slot: CK_SLOT_ID,
    /// The token (shared by all sessions on it: login state is per application).
    pub token: Arc<Token>,
    /// The token's session itself, so a call does not look it up again by handle.
    pub core: SessionRef,
    _cold_tail: [u8; 64],
}

impl SessionEntry {
    pub(crate) fn new(slot: CK_SLOT_ID, token: Arc<Token>, core: SessionRef) -> Self {
        SessionEntry {
            slot,
            token,
            core,
            _cold_tail: [0; 64],
        }
    }
}

/// What a slot ID names.
pub(crate) enum Slot {
    /// An initialized token.
    Token(TokenEntry),
    /// The free slot with its uninitialized token.
    Free,
}

struct Slots {
    /// The last scan of the token directory.
    entries: Vec<TokenEntry>,
    /// Tokens opened by this process, by file.
    open: HashMap<PathBuf, Arc<Token>>,
    /// The serial the free slot's next token will get (its slot ID derives from it).
    free_serial: String,
    /// `slot_id_for_serial(free_serial)`, kept beside it (a SHA-256 per lookup otherwise).
    free_slot: CK_SLOT_ID,
}

impl Slots {
    fn set_free_serial(&mut self, serial: String) {
        self.free_slot = slot_id_for_serial(&serial);
        self.free_serial = serial;
    }
}

/// The free slot's serial as the token directory reserves it, shared by every
/// process; a random one (with a warning) when the directory cannot keep it, e.g.
/// read-only: the free slot then works but its ID is this process's own.
fn reserved_free_serial(registry: &Registry) -> Result<String, Rv> {
    match registry.free_serial() {
        Ok(s) => Ok(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot reserve the free slot's serial in the token directory; its slot ID is this process's own");
            Ok(new_serial()?)
        }
    }
}

/// Global state of an initialized module.
pub(crate) struct State {
    pid: u32,
    registry: Registry,
    slots: Mutex<Slots>,
    sessions: ShardedHandles<Arc<SessionEntry>>,
    /// Slot IDs seen by the last `C_WaitForSlotEvent`.
    seen: Mutex<BTreeSet<CK_SLOT_ID>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's id, cached: `getpid` is a system call and every entry point asks.
/// A `pthread_atfork` child handler clears the cache, so a forked child sees its own
/// id (and so the parent's state is not its own).
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid_in_child() {
    // Async-signal-safe: a relaxed atomic store.
    PID.store(0, Ordering::Relaxed);
}

fn pid() -> u32 {
    static AT_FORK: Once = Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic; no pointers are
        // kept. If registration fails the cache is never used (PID stays 0 below).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) };
        if rc != 0 {
            PID.store(u32::MAX, Ordering::Relaxed);
        }
    });
    match PID.load(Ordering::Relaxed) {
        0 => {
            let p = std::process::id();
            PID.store(p, Ordering::Relaxed);
            p
        }
        u32::MAX => std::process::id(),
        p => p,
    }
}

/// The current state, or `CKR_CRYPTOKI_NOT_INITIALIZED` (also in a forked child
/// that has not called `C_Initialize` yet).
/// Holds the state for one call without taking a reference count on it (an
/// `arc-swap` guard: `C_Finalize` does not wait for it).
pub(crate) fn state() -> Result<StateRef, Rv> {
    let g = GLOBAL.load();
    match g.as_ref() {
        Some(s) if s.pid == pid() => Ok(StateRef(g)),
        _ => Err(Rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

/// [`state`]'s answer: derefs to the live `Arc<State>`.
pub(crate) struct StateRef(arc_swap::Guard<Option<Arc<State>>>);

impl std::ops::Deref for StateRef {
    type Target = Arc<State>;
    fn deref(&self) -> &Arc<State> {
        // `state` checked it is `Some`.
        self.0.as_ref().expect("state() checked")
    }
}

/// The entry of session `h` in the current state (as `state()?.session(h)`, without
/// taking a reference on the state: the per-call path of every session function).
pub(crate) fn session(h: CK_SESSION_HANDLE) -> Result<Arc<SessionEntry>, Rv> {
    let g = GLOBAL.load();
    match g.as_ref() {
        Some(s) if s.pid == pid() => s.session(h),
        _ => Err(Rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

/// Whether `s` is still the live state (a blocking wait ends when it is not).
pub(crate) fn is_current(s: &Arc<State>) -> bool {
    matches!(GLOBAL.load().as_ref(), Some(cur) if Arc::ptr_eq(cur, s))
}

/// `C_Initialize`: builds the state from `config`.
pub(crate) fn initialize(config: Config) -> Result<(), Rv> {
    let _g = lock(&LIFECYCLE);
    if let Some(old) = GLOBAL.load().as_ref() {
        if old.pid == pid() {
            return Err(Rv(CKR_CRYPTOKI_ALREADY_INITIALIZED));
        }
    }
    if let Some(old) = GLOBAL.swap(None) {
        // A forked child: the parent's tokens and SQLite handles are not ours to close.
        tracing::info!(
            parent = old.pid,
            "C_Initialize in a forked child: discarding the parent's state"
        );
        std::mem::forget(old);
    }
    let state = State::new(config)?;
    GLOBAL.store(Some(Arc::new(state)));
    Ok(())
}

/// `C_Finalize`: drops the state (tokens close when their last user returns).
pub(crate) fn finalize() -> Result<(), Rv> {
    let _g = lock(&LIFECYCLE);
    match GLOBAL.swap(None) {
        Some(s) if s.pid == pid() => Ok(()),
        Some(s) => {
            // A child finalizing the parent's state: leave its handles alone.
            std::mem::forget(s);
            Err(Rv(CKR_CRYPTOKI_NOT_INITIALIZED))
        }
        None => Err(Rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

impl State {
    fn new(config: Config) -> Result<State, Rv> {
        config.policy.apply_to_process();
        let registry = Registry::new(config);
        // E.g. a token directory others can write to: say why C_Initialize fails.
        let entries = registry.tokens().inspect_err(|e| {
            tracing::error!(error = %e, "cannot use the token directory");
        })?;
        let seen = entries.iter().map(|e| e.slot_id).collect();
        let free_serial = reserved_free_serial(&registry)?;
        Ok(State {
            pid: pid(),
            registry,
            slots: Mutex::new(Slots {
                entries,
                open: HashMap::new(),
                free_slot: slot_id_for_serial(&free_serial),
                free_serial,
            }),
            sessions: ShardedHandles::default(),
            seen: Mutex::new(seen),
        })
    }

    /// Rescans the token directory (tokens made by other processes appear).
    fn rescan(&self) -> Result<Vec<TokenEntry>, Rv> {
        let entries = self.registry.tokens()?;
        let mut s = lock(&self.slots);
        // Forget tokens whose file is gone and that no session uses.
        s.open.retain(|path, t| {
            entries.iter().any(|e| &e.path == path)
                || self.sessions.any(|e| Arc::ptr_eq(&e.token, t))
        });
        s.entries = entries.clone();
        // Another process may have initialized the free slot: follow the reservation
        // (a directory that cannot keep one leaves this process's own serial).
        if let Ok(free) = self.registry.free_serial() {
            if free != s.free_serial {
                s.set_free_serial(free);
            }
        }
        Ok(entries)
    }

    /// The PIN policy new tokens get (reported by the free slot).
    pub(crate) fn pin_policy(&self) -> vault_core::config::PinPolicy {
        self.registry.config().pin
    }

    /// The free slot's ID.
    pub(crate) fn free_slot_id(&self) -> CK_SLOT_ID {
        lock(&self.slots).free_slot
    }

    /// Every slot: one per token (sorted), then the free slot last.
    pub(crate) fn slot_list(&self) -> Result<Vec<CK_SLOT_ID>, Rv> {
        let mut ids: Vec<CK_SLOT_ID> = self.rescan()?.iter().map(|e| e.slot_id).collect();
        ids.push(self.free_slot_id());
        Ok(ids)
    }

    /// What `slot` names; rescans once when it is unknown.
    pub(crate) fn slot(&self, slot: CK_SLOT_ID) -> Result<Slot, Rv> {
        {
            let s = lock(&self.slots);
            if slot == s.free_slot {
                return Ok(Slot::Free);
            }
            if let Some(e) = s.entries.iter().find(|e| e.slot_id == slot) {
                return Ok(Slot::Token(e.clone()));
            }
        }
        match self.rescan()?.into_iter().find(|e| e.slot_id == slot) {
            Some(e) => Ok(Slot::Token(e)),
            None => Err(Rv(CKR_SLOT_ID_INVALID)),
        }
    }

    /// This process's handle on a token (opened once, then shared).
    pub(crate) fn token(&self, entry: &TokenEntry) -> Result<Arc<Token>, Rv> {
        let mut s = lock(&self.slots);
        if let Some(t) = s.open.get(&entry.path) {
            return Ok(t.clone());
        }
        let t = self.registry.open(entry)?;
        s.open.insert(entry.path.clone(), t.clone());
        Ok(t)
    }

    /// The token of an initialized slot; the free slot has none.
    pub(crate) fn slot_token(&self, slot: CK_SLOT_ID) -> Result<Arc<Token>, Rv> {
        // Fast path (every C_OpenSession): a known slot whose token is open already.
        {
            let s = lock(&self.slots);
            if let Some(e) = s.entries.iter().find(|e| e.slot_id == slot) {
                // Byte comparison over the few open tokens: cheaper than hashing a path.
                let path = e.path.as_os_str();
                if let Some((_, t)) = s.open.iter().find(|(p, _)| p.as_os_str() == path) {
                    return Ok(t.clone());
                }
            }
        }
        match self.slot(slot)? {
            Slot::Token(e) => self.token(&e),
            Slot::Free => Err(Rv(CKR_TOKEN_NOT_RECOGNIZED)),
        }
    }

    /// `C_InitToken` on the free slot: creates the token under the reserved serial
    /// (so the slot keeps its ID) and reserves a new serial for the next free slot.
    pub(crate) fn create_token(&self, label: &str, so_pin: &[u8]) -> Result<(), Rv> {
        let mut s = lock(&self.slots);
        let created = self.registry.create(label, so_pin, Some(&s.free_serial));
        // Created here or by another process meanwhile: either way the reservation
        // moves on, and this process follows it.
        s.set_free_serial(reserved_free_serial(&self.registry)?);
        let entry = created?;
        s.entries.push(entry);
        s.entries
            .sort_by(|a, b| a.slot_id.cmp(&b.slot_id).then(a.serial.cmp(&b.serial)));
        Ok(())
    }

    /// The session `h`, or `CKR_SESSION_HANDLE_INVALID`.
    pub(crate) fn session(&self, h: CK_SESSION_HANDLE) -> Result<Arc<SessionEntry>, Rv> {
        self.sessions.get(h).ok_or(Rv(CKR_SESSION_HANDLE_INVALID))
    }

    /// Records a new session.
    pub(crate) fn add_session(&self, h: CK_SESSION_HANDLE, entry: SessionEntry) {
        self.sessions.insert(h, Arc::new(entry));
    }

    /// Forgets a session; returns its entry.
    pub(crate) fn remove_session(&self, h: CK_SESSION_HANDLE) -> Option<Arc<SessionEntry>> {
        self.sessions.remove(h)
    }

    /// Forgets every session of `token`.
    pub(crate) fn remove_token_sessions(&self, token: &Arc<Token>) {
        self.sessions.retain(|_, e| !Arc::ptr_eq(&e.token, token));
    }

    /// Whether `token` has sessions in this process.
    pub(crate) fn has_sessions(&self, token: &Arc<Token>) -> bool {
        self.sessions.any(|e| Arc::ptr_eq(&e.token, token))
    }

    /// For `C_WaitForSlotEvent`: a slot that appeared or disappeared since the last
    /// look, if any.
    pub(crate) fn slot_event(&self) -> Result<Option<CK_SLOT_ID>, Rv> {
        let now: BTreeSet<CK_SLOT_ID> = self.rescan()?.iter().map(|e| e.slot_id).collect();
        let mut seen = lock(&self.seen);
        let changed = now.symmetric_difference(&seen).next().copied();
        if changed.is_some() {
            *seen = now;
        }
        Ok(changed)
    }
}
