//! One token: lifecycle, PIN state machine (SPEC T2) and login state.
//!
//! A [`Token`] is one process's handle on one token file. Login state belongs to the
//! process (PKCS#11: "per application") and is shared by all its sessions; several
//! processes may hold the same token at once, each with its own login.
//!
//! PIN checks persist the failure counter *before* the check's outcome is known
//! (count, check, then reset on success), so a process killed mid-check never gains
//! a free try. The committed count alone decides whether a PIN is checked at all
//! ([`crate::store::Store::pin_attempt`]): processes trying at once can never check
//! more PINs than the limit, and a missing counter row reads as locked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cryptoki_sys::*;
use tracing::{info, warn};

use crate::attr::Attributes;
use crate::config::{Config, KdfParams, PinPolicy};
use crate::error::{Error, Result};
use crate::mechanism::Key;
use crate::session::Session;
use crate::store::seal::{Key32, WrappedKey};
use crate::store::{wrap_ad, Header, MasterKeys, PinAttempt, Store, PIN_COUNTERS_MARK};

pub mod fresh;
pub mod hooks;

pub(crate) use fresh::CacheWrite;
use hooks::Hooks;

/// Who is logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserType {
    /// The security officer (`CKU_SO`).
    So,
    /// The normal user (`CKU_USER`).
    User,
}

impl UserType {
    /// From `CKU_*`.
    pub fn from_ck(u: CK_USER_TYPE) -> Result<UserType> {
        match u {
            CKU_SO => Ok(UserType::So),
            CKU_USER | CKU_CONTEXT_SPECIFIC => Ok(UserType::User),
            _ => Err(Error::UserTypeInvalid),
        }
    }
    fn counter(self) -> &'static str {
        match self {
            UserType::So => crate::store::PIN_COUNTERS[1],
            UserType::User => crate::store::PIN_COUNTERS[0],
        }
    }
}

/// PIN status flags of one PIN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PinStatus {
    /// Consecutive failures so far.
    pub failures: u32,
    /// Failures allowed before the PIN locks.
    pub max_tries: u32,
    /// `*_COUNT_LOW`: at least one failure since the last success.
    pub count_low: bool,
    /// `*_FINAL_TRY`: one more failure locks.
    pub final_try: bool,
    /// `*_LOCKED`.
    pub locked: bool,
    /// `*_TO_BE_CHANGED`.
    pub to_be_changed: bool,
}

impl PinStatus {
    /// The token flags for this PIN, given its `[COUNT_LOW, FINAL_TRY, LOCKED,
    /// TO_BE_CHANGED]` flag values.
    fn flags(&self, names: [CK_FLAGS; 4]) -> CK_FLAGS {
        [
            self.count_low,
            self.final_try,
            self.locked,
            self.to_be_changed,
        ]
        .iter()
        .zip(names)
        .filter(|(on, _)| **on)
        .fold(0, |acc, (_, f)| acc | f)
    }
}

/// What `C_GetTokenInfo` reports, in Rust form.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// `CKF_*` token flags.
    pub flags: u64,
    pub user_pin_initialized: bool,
    pub user_pin: PinStatus,
    pub so_pin: PinStatus,
    pub min_pin_len: usize,
    pub max_pin_len: usize,
    pub public_objects: u64,
    pub private_objects: u64,
    pub sessions: u64,
    pub rw_sessions: u64,
    pub read_only: bool,
    pub path: PathBuf,
    /// Initial, PIN-verified or locked (the picture-verification gate, SPEC C6).
    pub gate: TokenState,
}

/// The token's state as the user sees it (SPEC C6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenState {
    /// No user login in this process (after "plug-in").
    Initial,
    /// The user PIN was verified in this process.
    PinVerified,
    /// A key-use hook blocked the token (too many failed picture checks): every
    /// operation fails until `vtoken reattach`.
    Locked,
}

impl TokenState {
    /// `initial`, `pin-verified` or `locked`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Initial => "initial",
            TokenState::PinVerified => "pin-verified",
            TokenState::Locked => "locked",
        }
    }

    /// The state of a token `blocked` or not, with `user` logged in.
    pub fn of(blocked: bool, user: Option<UserType>) -> TokenState {
        if blocked {
            TokenState::Locked
        } else if user == Some(UserType::User) {
            TokenState::PinVerified
        } else {
            TokenState::Initial
        }
    }
}

impl std::fmt::Display for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Manufacturer ID reported in token and slot info.
pub const MANUFACTURER: &str = "vtoken project";
/// Model reported in token info.
pub const MODEL: &str = "vtoken soft";

#[derive(Default)]
pub(crate) struct LoginState {
    pub(crate) user: Option<UserType>,
    /// Shared, not copied: every lookup that needs them takes a reference count,
    /// so the keys exist once in memory (zeroized when the last user drops them).
    pub(crate) keys: Option<Arc<MasterKeys>>,
}

/// A map keyed by handles this process hands out (sessions, objects): a fast
/// non-cryptographic hasher, since the keys are ours, not attacker-chosen.
pub type HandleMap<V> = HashMap<u64, V, rustc_hash::FxBuildHasher>;

/// A [`HandleMap`] split by handle into shards, each with its own lock and on its
/// own cache lines: threads working on different sessions (consecutive handles) take
/// different locks, so the per-call lookup shares no written cache line between them.
/// Whole-map operations visit the shards one after another (not one snapshot).
pub struct ShardedHandles<V> {
    shards: [Shard<V>; SHARDS],
    /// Entries in all shards (changed under the shard's lock; written only on insert
    /// and remove, so it is not on the per-call path).
    len: std::sync::atomic::AtomicUsize,
}

const SHARDS: usize = 16;

#[repr(align(128))]
struct Shard<V>(RwLock<HandleMap<V>>);

impl<V> Default for ShardedHandles<V> {
    fn default() -> Self {
        ShardedHandles {
            shards: std::array::from_fn(|_| Shard(RwLock::new(HandleMap::default()))),
            len: Default::default(),
        }
    }
}

impl<V> ShardedHandles<V> {
    fn shard(&self, h: u64) -> &RwLock<HandleMap<V>> {
        &self.shards[(h % SHARDS as u64) as usize].0
    }

    fn read_shard(m: &RwLock<HandleMap<V>>) -> std::sync::RwLockReadGuard<'_, HandleMap<V>> {
        m.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_shard(m: &RwLock<HandleMap<V>>) -> std::sync::RwLockWriteGuard<'_, HandleMap<V>> {
        m.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A clone of the value of `h`.
    pub fn get(&self, h: u64) -> Option<V>
    where
        V: Clone,
    {
        Self::read_shard(self.shard(h)).get(&h).cloned()
    }

    /// Whether `h` is present.
    pub fn contains(&self, h: u64) -> bool {
        Self::read_shard(self.shard(h)).contains_key(&h)
    }

    /// Sets the value of `h`; returns the old one.
    pub fn insert(&self, h: u64, v: V) -> Option<V> {
        let old = Self::write_shard(self.shard(h)).insert(h, v);
        if old.is_none() {
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        old
    }

    /// Removes `h`; returns its value.
    pub fn remove(&self, h: u64) -> Option<V> {
        let mut shard = Self::write_shard(self.shard(h));
        let old = shard.remove(&h);
        if old.is_some() {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
        old
    }

    /// Keeps the entries for which `keep` says so.
    pub fn retain(&self, mut keep: impl FnMut(&u64, &mut V) -> bool) {
        for s in &self.shards {
            let mut shard = Self::write_shard(&s.0);
            let before = shard.len();
            shard.retain(&mut keep);
            self.len.fetch_sub(before - shard.len(), Ordering::AcqRel);
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.retain(|_, _| false);
    }

    /// Whether some value satisfies `f`.
    pub fn any(&self, mut f: impl FnMut(&V) -> bool) -> bool {
        self.shards
            .iter()
            .any(|s| Self::read_shard(&s.0).values().any(&mut f))
    }

    /// Calls `f` on every value.
    pub fn for_each(&self, mut f: impl FnMut(&V)) {
        for s in &self.shards {
            Self::read_shard(&s.0).values().for_each(&mut f);
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A token object as cached in memory.
pub(crate) struct CachedObject {
    pub(crate) gen: i64,
    pub(crate) attrs: Arc<Attributes>,
    pub(crate) key: std::sync::OnceLock<Arc<Key>>,
}

/// Token objects this process has opened, each with the SQLite `data_version` at
/// which it was last known current.
#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) objects: HandleMap<(i64, Arc<CachedObject>)>,
}

/// One process's handle on one token file.
pub struct Token {
    pub(crate) store: Mutex<Store>,
    pub(crate) login: RwLock<LoginState>,
    pub(crate) cache: Mutex<Cache>,
    /// The store's look-and-epoch record, read without the store's lock by the
    /// per-session key reuse of every operation's init (the protocol: [`fresh`]).
    pub(crate) fresh: Arc<fresh::Freshness>,
    /// Whether the key-use hook blocked the token, as last seen ([`fresh::Blocked`]).
    pub(crate) blocked: fresh::Blocked,
    /// The extensions, registered when the token opens.
    pub(crate) hooks: Hooks,
    /// Unique among the tokens this process opens (names it in a `SessionRef`).
    instance: u64,
    pub(crate) sessions: ShardedHandles<Arc<Mutex<Session>>>,
    pub(crate) session_objects: Mutex<HandleMap<(u64, Arc<CachedObject>)>>,
    pub(crate) next_session_object: AtomicU64,
    /// An agent the embedding program installed itself ([`Token::set_prompt`]);
    /// `None`: the agent of the token's prompt policy.
    pub(crate) prompt: RwLock<Option<Arc<dyn crate::prompt::Prompt>>>,
    /// The caller's `[prompt]` settings: only the timeout and pinentry's terminal
    /// are taken from them at use time (the agent and the confirmations are token
    /// policy, see [`crate::prompt::policy`]).
    prompt_local: crate::config::PromptConfig,
    serial: String,
    path: PathBuf,
    kdf: KdfParams,
    /// `[policy] strict_wrap`: sensitive keys are wrapped only by keys that cannot
    /// decrypt and are at least as strong.
    pub(crate) strict_wrap: bool,
    /// `[policy] key_privacy`: whether `CKA_PRIVATE = false` on a key template is
    /// turned into a private key or refused.
    pub(crate) key_privacy: crate::config::KeyPrivacy,
}

/// Session objects get ids from this bit upward, token objects stay below.
pub const SESSION_OBJECT_BASE: u64 = 1 << 40;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn check_label(label: &str) -> Result<()> {
    if label.len() > 32 {
        return Err(Error::ArgumentsBad(
            "token label is longer than 32 bytes".into(),
        ));
    }
    Ok(())
}

/// A fresh random token serial: 16 upper-case hex digits.
pub fn new_serial() -> Result<String> {
    let mut sb = [0u8; 8];
    crate::mechanism::random(&mut sb)?;
    Ok(hex::encode_upper(sb))
}

/// Checks a PIN against the policy.
pub fn check_pin_len(policy: &PinPolicy, pin: &[u8]) -> Result<()> {
    if pin.len() < policy.min_len || pin.len() > policy.max_len {
        return Err(Error::PinLenRange {
            min: policy.min_len,
            max: policy.max_len,
        });
    }
    Ok(())
}

impl Token {
    /// Creates a new token file at `path` with `label` and `so_pin` (the user PIN is
    /// set later with [`Token::init_pin`]). Returns the new token's serial.
    pub fn create(path: &Path, label: &str, so_pin: &[u8], config: &Config) -> Result<String> {
        Token::create_with_serial(path, &new_serial()?, label, so_pin, config)
    }

    /// Like [`Token::create`] with a serial chosen by the caller (16 hex digits): the
    /// PKCS#11 module picks the serial of the free slot's next token in advance, so
    /// the slot keeps its ID once the token is initialized.
    pub fn create_with_serial(
        path: &Path,
        serial: &str,
        label: &str,
        so_pin: &[u8],
        config: &Config,
    ) -> Result<String> {
        check_label(label)?;
        check_pin_len(&config.pin, so_pin)?;
        if serial.len() != 16 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::ArgumentsBad(
                "a token serial is 16 hex digits".into(),
            ));
        }
        let serial = serial.to_ascii_uppercase();
        // The prompt policy starts from the creator's configuration (and
        // `VTOKEN_PROMPT`); afterwards only the SO changes it.
        let prompt = crate::prompt::policy::PromptPolicy::defaults_from(&config.prompt)?;
        let master = Key32::random()?;
        let mut header = Header {
            so: WrappedKey::wrap(&master, so_pin, config.kdf, &wrap_ad(&serial, "so"))?,
            serial: serial.clone(),
            label: label.to_string(),
            created: now(),
            pin_policy: config.pin,
            user: None,
            user_pin_to_be_changed: false,
            so_pin_to_be_changed: false,
            // The file's PIN counter rows exist from the start (see `PIN_COUNTERS`).
            ext: [(PIN_COUNTERS_MARK.to_string(), vec![1])].into(),
        };
        crate::prompt::policy::put(&mut header, &prompt)?;
        Store::create(path, &header)?;
        info!(serial = %serial, label, "token created");
        Ok(serial)
    }

    /// Opens a token file.
    pub fn open(path: &Path, config: &Config) -> Result<Arc<Token>> {
        crate::mechanism::backend::set_rsa_pkcs1_decrypt(config.policy.rsa_pkcs1_decrypt);
        let mut store = Store::open(path)?;
        store.upgrade_pin_counters()?;
        let serial = store.header()?.serial.clone();
        let fresh = store.freshness();
        Ok(Arc::new(Token {
            store: Mutex::new(store),
            login: RwLock::new(LoginState::default()),
            cache: Mutex::new(Cache::default()),
            fresh,
            instance: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
            sessions: ShardedHandles::default(),
            session_objects: Mutex::new(HandleMap::default()),
            next_session_object: AtomicU64::new(SESSION_OBJECT_BASE),
            prompt: RwLock::new(None),
            prompt_local: config.prompt.clone(),
            blocked: Default::default(),
            hooks: crate::extensions(),
            serial,
            path: path.to_path_buf(),
            kdf: config.kdf,
            strict_wrap: config.policy.strict_wrap,
            key_privacy: config.policy.key_privacy,
        }))
    }

    /// This open token's number: unique in the process, never reused.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The object cache, for a lookup (entries may be added or refreshed, but not
    /// changed: what a reader derived from an entry stays true).
    pub(crate) fn cache_read(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The object cache, to change or drop entries: the epoch moves on when the
    /// guard goes, so nothing derived from an old entry is reused afterwards.
    pub(crate) fn cache_write(&self) -> CacheWrite<'_> {
        CacheWrite {
            guard: self.cache_read(),
            fresh: &self.fresh,
        }
    }

    /// Installs the embedding program's own agent for this process (a Rust program
    /// that is the user's interface, e.g. a GUI). It takes precedence over the
    /// token policy's agent; the list of confirmed operations stays token policy.
    /// Neither the PKCS#11 module nor the CLI calls it: their agent is the policy's.
    pub fn set_prompt(&self, p: Arc<dyn crate::prompt::Prompt>) {
        *self.prompt.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    /// The prompt policy stored in the token file (`None`: an old file without one).
    pub fn prompt_policy_stored(&self) -> Result<Option<crate::prompt::policy::PromptPolicy>> {
        crate::prompt::policy::stored(self.store().header()?)
    }

    /// The prompt policy in force: the stored one, or the fail-closed fallback of
    /// an old file ([`crate::prompt::policy::PromptPolicy::fallback`]). A damaged
    /// record is an error.
    pub fn prompt_policy(&self) -> Result<crate::prompt::policy::PromptPolicy> {
        Ok(self
            .prompt_policy_stored()?
            .unwrap_or_else(crate::prompt::policy::PromptPolicy::fallback))
    }

    /// The SO sets the token's prompt policy (agent and confirmed operations):
    /// `so_pin` is verified and counted like a login. Does not log in.
    pub fn set_prompt_policy(
        &self,
        so_pin: &[u8],
        policy: crate::prompt::policy::PromptPolicy,
    ) -> Result<()> {
        let policy = policy.validated()?;
        self.verify_pin(UserType::So, so_pin)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        crate::prompt::policy::put(&mut h, &policy)?;
        st.write_header(&h)?;
        drop(st);
        info!(serial = %self.serial, agent = %policy.agent, confirm = ?policy.confirm,
              "prompt policy changed by the SO");
        Ok(())
    }

    /// The agent that asks the user now: the embedding program's
    /// ([`Token::set_prompt`]), else the token policy's. Only a `test-hooks` build
    /// lets `VTOKEN_PROMPT` choose instead of the policy. An agent that cannot be
    /// built, or a damaged policy, gives `deny` (fail closed, logged).
    pub(crate) fn prompt_agent(&self) -> Arc<dyn crate::prompt::Prompt> {
        if let Some(p) = self
            .prompt
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return p;
        }
        #[cfg(feature = "test-hooks")]
        match std::env::var("VTOKEN_PROMPT") {
            Ok(s) if !s.trim().is_empty() => {
                match self
                    .prompt_local
                    .with_override(&s)
                    .and_then(|c| crate::prompt::build(&c))
                {
                    Ok(p) => return p,
                    Err(e) => {
                        warn!(serial = %self.serial, error = %e, "test-hooks: VTOKEN_PROMPT unusable: deny");
                        return Arc::new(crate::prompt::Deny);
                    }
                }
            }
            _ => {}
        }
        match self
            .prompt_policy()
            .and_then(|p| p.agent(&self.prompt_local))
        {
            Ok(p) => p,
            Err(e) => {
                warn!(serial = %self.serial, error = %e, "prompt agent unavailable: every confirmation is refused");
                Arc::new(crate::prompt::Deny)
            }
        }
    }

    /// The name of the agent that asks the user now (`deny`, `tty`, …).
    pub fn prompt_agent_name(&self) -> String {
        self.prompt_agent().name().to_string()
    }

    /// Whether operation `op` (`vault-write`, `vault-read`, `otp-code`, `key-export`)
    /// needs the user's confirmation under this token's prompt policy. A policy
    /// that cannot be read asks (fail closed).
    pub fn needs_confirmation(&self, op: &str) -> bool {
        self.prompt_policy().map(|p| p.needs(op)).unwrap_or(true)
    }

    /// [`Token::confirm`] when the token's prompt policy lists `op`, else `Ok(())`
    /// at once.
    pub fn confirm_for(&self, op: &str, req: &crate::prompt::Request) -> Result<()> {
        if self.needs_confirmation(op) {
            self.confirm(req)
        } else {
            Ok(())
        }
    }

    /// Asks the user through the prompt agent; `Ok(())` only on confirmation.
    /// A refusal, a timeout or an agent failure is `FunctionRejected` (logged).
    pub fn confirm(&self, req: &crate::prompt::Request) -> Result<()> {
        let agent = self.prompt_agent();
        match agent.confirm(req) {
            Ok(crate::prompt::Answer::Confirmed) => {
                info!(serial = %self.serial, agent = agent.name(), title = %req.title, "confirmed by the user");
                Ok(())
            }
            Ok(a) => {
                warn!(serial = %self.serial, agent = agent.name(), title = %req.title, answer = ?a, "not confirmed");
                Err(Error::FunctionRejected)
            }
            Err(e) => {
                warn!(serial = %self.serial, agent = agent.name(), error = %e, "no prompt could be shown");
                Err(Error::FunctionRejected)
            }
        }
    }

    /// The token serial (16 hex digits).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current label.
    pub fn label(&self) -> Result<String> {
        Ok(self.store().header()?.label.clone())
    }

    /// Who is logged in, if anyone.
    pub fn logged_in(&self) -> Option<UserType> {
        self.login.read().unwrap_or_else(|p| p.into_inner()).user
    }

    /// The master keys of whoever is logged in (user or SO).
    pub(crate) fn any_master_keys(&self) -> Option<Arc<MasterKeys>> {
        self.login
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .clone()
    }

    pub(crate) fn master_keys(&self) -> Option<Arc<MasterKeys>> {
        let l = self.login.read().unwrap_or_else(|p| p.into_inner());
        match l.user {
            Some(UserType::User) => l.keys.clone(),
            _ => None,
        }
    }

    fn pin_status(store: &mut Store, who: UserType) -> Result<PinStatus> {
        let h = store.header()?.clone();
        let max = match who {
            UserType::User => h.pin_policy.user_max_tries,
            UserType::So => h.pin_policy.so_max_tries,
        };
        // A missing row is a locked PIN (see `PIN_COUNTERS`).
        let failures = store.pin_counter(who.counter())?.unwrap_or(max);
        Ok(PinStatus {
            failures,
            max_tries: max,
            count_low: failures > 0 && failures < max,
            final_try: max > 1 && failures.checked_add(1) == Some(max),
            locked: failures >= max,
            to_be_changed: match who {
                UserType::User => h.user_pin_to_be_changed,
                UserType::So => h.so_pin_to_be_changed,
            },
        })
    }

    /// Token information (label, serial, flags, PIN state, object counts).
    pub fn info(&self) -> Result<TokenInfo> {
        let mut st = self.store();
        let h = st.header()?.clone();
        let user = Token::pin_status(&mut st, UserType::User)?;
        let so = Token::pin_status(&mut st, UserType::So)?;
        let (public_objects, private_objects) = st.counts()?;
        let read_only = st.read_only();
        drop(st);
        let gate = TokenState::of(self.hooks.key_use.blocked_in(&h), self.logged_in());
        let mut flags =
            CKF_RNG | CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED | CKF_DUAL_CRYPTO_OPERATIONS;
        if read_only {
            flags |= CKF_WRITE_PROTECTED;
        }
        if h.user.is_some() {
            flags |= CKF_USER_PIN_INITIALIZED;
        }
        flags |= user.flags([
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
            CKF_USER_PIN_TO_BE_CHANGED,
        ]);
        flags |= so.flags([
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
            CKF_SO_PIN_TO_BE_CHANGED,
        ]);
        let (sessions, rw_sessions) = self.session_counts();
        Ok(TokenInfo {
            label: h.label,
            manufacturer: MANUFACTURER.into(),
            model: MODEL.into(),
            serial: h.serial,
            flags,
            user_pin_initialized: h.user.is_some(),
            user_pin: user,
            so_pin: so,
            min_pin_len: h.pin_policy.min_len,
            max_pin_len: h.pin_policy.max_len,
            public_objects,
            private_objects,
            sessions,
            rw_sessions,
            read_only,
            path: self.path.clone(),
            gate,
        })
    }

    /// Verifies `pin` for `who`. The try is counted and committed first, and that
    /// committed count alone decides whether the PIN is checked: a counter already
    /// at the limit (or a missing counter row) is `PinLocked` without a check, so
    /// processes racing each other check at most the limit between two successes.
    /// The counter is reset only on success.
    ///
    /// A PIN whose length the token's policy can never accept is a wrong PIN like
    /// any other: it uses a try (and sets the count-low flag), but is not run
    /// through the KDF. PKCS#11 has one answer for a wrong PIN (`CKR_PIN_INCORRECT`),
    /// and a client that keeps sending a short PIN must see the PIN lock as it would
    /// with any other wrong one.
    pub(crate) fn verify_pin(&self, who: UserType, pin: &[u8]) -> Result<Key32> {
        let mut st = self.store();
        let h = st.header()?.clone();
        let wrapped = match who {
            UserType::So => h.so.clone(),
            UserType::User => h.user.clone().ok_or(Error::UserPinNotInitialized)?,
        };
        let max = match who {
            UserType::User => h.pin_policy.user_max_tries,
            UserType::So => h.pin_policy.so_max_tries,
        };
        let name = who.counter();
        let failures = match st.pin_attempt(name, max)? {
            PinAttempt::Check(n) => n,
            PinAttempt::Locked => {
                warn!(serial = %self.serial, ?who, "login refused: PIN locked");
                return Err(Error::PinLocked);
            }
        };
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::pin_check_pause();
        let role = if who == UserType::So { "so" } else { "user" };
        let right = if pin.len() < h.pin_policy.min_len || pin.len() > h.pin_policy.max_len {
            None
        } else {
            wrapped.unwrap(pin, &wrap_ad(&self.serial, role))?
        };
        match right {
            Some(master) => {
                st.set_counter(name, 0)?;
                info!(serial = %self.serial, ?who, "PIN verified");
                Ok(master)
            }
            None => {
                warn!(serial = %self.serial, ?who, failures, max, "wrong PIN");
                if failures >= max {
                    Err(Error::PinLocked)
                } else {
                    Err(Error::PinIncorrect)
                }
            }
        }
    }

    /// `C_Login`. Context-specific logins re-verify the user PIN without changing state.
    pub fn login(&self, who: UserType, pin: &[u8]) -> Result<()> {
        {
            let l = self.login.read().unwrap_or_else(|p| p.into_inner());
            match l.user {
                Some(u) if u == who => return Err(Error::UserAlreadyLoggedIn),
                Some(_) => return Err(Error::UserAnotherAlreadyLoggedIn),
                None => {}
            }
        }
        if who == UserType::So && self.has_read_only_session() {
            return Err(Error::SessionReadOnlyExists);
        }
        self.ensure_unblocked()?;
        let master = self.verify_pin(who, pin)?;
        let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
        l.user = Some(who);
        l.keys = Some(Arc::new(MasterKeys::new(master)));
        drop(l);
        self.fresh.bump();
        if who == UserType::User {
            self.log_state(TokenState::PinVerified);
            self.migrate_public_keys();
        }
        Ok(())
    }

    /// Re-verifies the logged-in user's PIN (`CKU_CONTEXT_SPECIFIC`).
    pub fn verify_user_pin(&self, pin: &[u8]) -> Result<()> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        self.verify_pin(UserType::User, pin).map(|_| ())
    }

    /// `C_Logout`: forgets the master key and private objects; ends operations.
    pub fn logout(&self) -> Result<()> {
        let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
        if l.user.is_none() {
            return Err(Error::UserNotLoggedIn);
        }
        let was_user = l.user == Some(UserType::User);
        l.user = None;
        l.keys = None;
        drop(l);
        self.fresh.bump();
        self.forget_private();
        if was_user && !self.blocked_fresh().unwrap_or(false) {
            self.log_state(TokenState::Initial);
        }
        Ok(())
    }

    /// Drops private objects from the cache (after logout).
    pub(crate) fn forget_private(&self) {
        let mut c = self.cache_write();
        c.objects
            .retain(|_, (_, o)| !o.attrs.bool_or(CKA_PRIVATE, true));
        drop(c);
        self.sessions_forget_private();
    }

    /// `C_InitPIN`: the SO sets (or resets and unlocks) the user PIN.
    pub fn init_pin(&self, pin: &[u8]) -> Result<()> {
        let keys = {
            let l = self.login.read().unwrap_or_else(|p| p.into_inner());
            if l.user != Some(UserType::So) {
                return Err(Error::UserNotLoggedIn);
            }
            l.keys.clone().ok_or(Error::UserNotLoggedIn)?
        };
        let mut st = self.store();
        let mut h = st.header()?.clone();
        check_pin_len(&h.pin_policy, pin)?;
        h.user = Some(WrappedKey::wrap(
            &keys.master,
            pin,
            self.kdf,
            &wrap_ad(&self.serial, "user"),
        )?);
        h.user_pin_to_be_changed = false;
        st.write_header(&h)?;
        st.set_counter(UserType::User.counter(), 0)?;
        drop(st);
        info!(serial = %self.serial, "user PIN initialized by the SO");
        // The token's device identity is made with its first user PIN (SPEC V7).
        for hook in self.hooks.lifecycle.iter() {
            hook.user_pin_set(self)?;
        }
        Ok(())
    }

    /// `C_SetPIN`: changes the PIN of whoever is logged in, or the user PIN when no
    /// one is. `old` is verified (and counted) like a login.
    pub fn set_pin(&self, old: &[u8], new: &[u8]) -> Result<()> {
        let who = self.logged_in().unwrap_or(UserType::User);
        self.change_pin(who, old, new)
    }

    /// Changes the PIN of `who` after verifying `old`.
    pub fn change_pin(&self, who: UserType, old: &[u8], new: &[u8]) -> Result<()> {
        {
            let mut st = self.store();
            let policy = st.header()?.pin_policy;
            check_pin_len(&policy, new)?;
        }
        let master = self.verify_pin(who, old)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        match who {
            UserType::User => {
                h.user = Some(WrappedKey::wrap(
                    &master,
                    new,
                    self.kdf,
                    &wrap_ad(&self.serial, "user"),
                )?);
                h.user_pin_to_be_changed = false;
            }
            UserType::So => {
                h.so = WrappedKey::wrap(&master, new, self.kdf, &wrap_ad(&self.serial, "so"))?;
                h.so_pin_to_be_changed = false;
            }
        }
        st.write_header(&h)?;
        info!(serial = %self.serial, ?who, "PIN changed");
        Ok(())
    }

    /// The SO unlocks the user PIN and sets a new one (`vtoken pin unlock`), without
    /// a prior login: verifies `so_pin` like a login, then re-wraps.
    pub fn unlock_user(&self, so_pin: &[u8], new_user_pin: &[u8]) -> Result<()> {
        {
            let mut st = self.store();
            let policy = st.header()?.pin_policy;
            check_pin_len(&policy, new_user_pin)?;
        }
        let master = self.verify_pin(UserType::So, so_pin)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        h.user = Some(WrappedKey::wrap(
            &master,
            new_user_pin,
            self.kdf,
            &wrap_ad(&self.serial, "user"),
        )?);
        h.user_pin_to_be_changed = false;
        st.write_header(&h)?;
        st.set_counter(UserType::User.counter(), 0)?;
        info!(serial = %self.serial, "user PIN reset and unlocked by the SO");
        Ok(())
    }

    /// `C_InitToken` on an initialized token: with the right SO PIN, destroys every
    /// object, clears the user PIN and sets the new label. A locked SO PIN refuses.
    pub fn reinitialize(&self, so_pin: &[u8], label: &str) -> Result<()> {
        check_label(label)?;
        if !self.sessions.is_empty() {
            return Err(Error::SessionExists);
        }
        let master = self.verify_pin(UserType::So, so_pin)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        h.label = label.to_string();
        h.user = None;
        // Extensions reset their header state (an optional vault: not activated).
        for hook in self.hooks.lifecycle.iter() {
            hook.reinitialize(&mut h)?;
        }
        // A fresh master key: nothing encrypted under the old one survives.
        let fresh = Key32::random()?;
        h.so = WrappedKey::wrap(&fresh, so_pin, self.kdf, &wrap_ad(&self.serial, "so"))?;
        drop(master);
        st.wipe(&h)?;
        drop(st);
        self.cache_write().objects.clear();
        let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
        l.user = None;
        l.keys = None;
        drop(l);
        self.fresh.bump();
        info!(serial = %self.serial, label, "token re-initialized");
        Ok(())
    }

    /// Whether the SO PIN is locked (such a token can only be deleted).
    pub fn so_locked(&self) -> Result<bool> {
        let mut st = self.store();
        Ok(Token::pin_status(&mut st, UserType::So)?.locked)
    }
}
