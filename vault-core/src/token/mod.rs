//! One token: lifecycle (create, open, re-initialize), token info and login state.
//!
//! A [`Token`] is one process's handle on one token file. Login state belongs to the
//! process (PKCS#11: "per application") and is shared by all its sessions; several
//! processes may hold the same token at once, each with its own login.
//!
//! - [`pin`]: the PIN state machine (SPEC T2);
//! - [`fresh`]: the freshness protocol the hot paths rely on;
//! - [`hooks`]: how the feature extensions plug in (registered at [`Token::open`]);
//! - [`handles`]: the maps of session and object handles.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cryptoki_sys::*;
use tracing::{info, warn};

use crate::attr::Attributes;
use crate::config::{Config, KdfParams, PinPolicy};
use crate::error::{Error, Result};
use crate::mechanism::Key;
use crate::store::seal::{Key32, WrappedKey};
use crate::store::{wrap_ad, Header, MasterKeys, PinAttempt, Store, PIN_COUNTERS_MARK};

mod agent;
pub mod fresh;
pub mod handles;
pub mod hooks;
pub mod pin;
mod protected_login;
pub(crate) mod session_state;

pub use handles::{HandleMap, ShardedHandles};
pub use pin::{check_pin_len, PinStatus, UserType};
pub use session_state::Session;

pub(crate) use fresh::CacheWrite;
use hooks::Hooks;

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
    /// Initial, PIN-verified or locked as the picture-verification gate sees it
    /// (SPEC C6; never `pin-locked`).
    pub gate: TokenState,
    /// The token's state on every surface (SPEC C6): the gate's view, except that a
    /// locked user PIN shows as `pin-locked` when the gate has not locked the token.
    pub state: TokenState,
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
    /// The user PIN is locked (too many wrong PINs): no user login until the SO
    /// unlocks it (`vtoken pin unlock`). Not one of the patent's three states; shown
    /// because it is what stops the user before the gate can.
    PinLocked,
}

impl TokenState {
    /// `initial`, `pin-verified` or `locked`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Initial => "initial",
            TokenState::PinVerified => "pin-verified",
            TokenState::Locked => "locked",
            TokenState::PinLocked => "pin-locked",
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

    /// [`Self::of`], with a locked user PIN shown as [`TokenState::PinLocked`]
    /// (the gate's lock wins: it refuses everything).
    pub fn with_pin(self, user_pin_locked: bool) -> TokenState {
        match self {
            TokenState::Locked => TokenState::Locked,
            _ if user_pin_locked => TokenState::PinLocked,
            s => s,
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
    pub(crate) sessions: ShardedHandles<Arc<session_state::SessionCell>>,
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
    /// `[policy] key_defaults`: what a key template silent on `CKA_SENSITIVE` and
    /// `CKA_EXTRACTABLE` gets.
    pub(crate) key_defaults: crate::config::KeyDefaults,
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
        config.policy.apply_to_process();
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
            key_defaults: config.policy.key_defaults,
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

    /// Whether an extension blocks the whole token now (the gate's lock, C5), read
    /// fresh from the file: such a token is "unplugged", and the PKCS#11 module
    /// reports its slot without a token present.
    pub fn blocked(&self) -> Result<bool> {
        self.blocked_fresh()
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
            state: gate.with_pin(user.locked),
        })
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
        let old = st.header()?.clone();
        // Every policy and state goes back to what a new token has: no extension
        // state (gate off and unlocked, no identity, no pending requests), the prompt
        // policy from this configuration, no PIN flags; extensions then carry over
        // only what outlives re-initialization (the vault's factory mode).
        let mut h = old.clone();
        h.label = label.to_string();
        h.user = None;
        h.user_pin_to_be_changed = false;
        h.so_pin_to_be_changed = false;
        h.ext = [(PIN_COUNTERS_MARK.to_string(), vec![1])].into();
        let prompt = crate::prompt::policy::PromptPolicy::defaults_from(&self.prompt_local)?;
        crate::prompt::policy::put(&mut h, &prompt)?;
        for hook in self.hooks.lifecycle.iter() {
            hook.reinitialize(&old, &mut h)?;
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
}
