//! The picture-verification gate (SPEC C1–C6, after CN102609656A).
//!
//! After the PIN, a *high-privilege* request must also pass a picture check that
//! only the person at the machine can answer, so a program that learnt the PIN
//! still cannot sign in the user's name.
//!
//! # Policy (C1)
//!
//! A request is gated when the gate is enabled and either
//! - the key it uses carries [`CKA_VTOKEN_GATED`] = true (set at generation or
//!   import, read-only afterwards; `vtoken key generate --gate`), or
//! - its operation class ([`OpClass`]) is in the token's gated classes:
//!   `sign`, `decrypt`, `unwrap`, `derive`, `vault-password`, `otp-code`,
//!   `key-export` (`C_WrapKey` of a key, reading `CKA_VALUE` of an extractable
//!   key, `vtoken otp show` of an OTP secret).
//!
//! Everything else (digests, verification, encryption with a public key, an
//! unflagged key of an ungated class, listing) never sees the gate. A token
//! starts with no gated class and no flagged key, so the gate is off unless
//! configured.
//!
//! The policy ([`GatePolicy`]) and the lock live in the token header
//! (`ext["gate"]`, postcard), so they travel with the token file. Changing the
//! policy needs the user logged in (or the SO PIN, which may set any policy); a change that *weakens* it (switching it off,
//! removing a class, more chances, a longer lifetime, a shorter or poorer string)
//! needs a passed picture check as well ([`OpClass::Configure`]), so a program
//! holding the PIN cannot simply switch the gate off.
//!
//! # Challenges (C2–C4)
//!
//! A challenge is a random string ([`GatePolicy::length`] characters of
//! [`GatePolicy::alphabet`], default 6 of [`challenge::DEFAULT_ALPHABET`]) drawn
//! into a distorted, noisy PNG. The picture is made by an encryption step inside
//! the token (¶0017, ¶0028; [`picture`]): every distortion parameter comes from a
//! stream keyed by HMAC-SHA256 under a per-token picture key derived from the
//! token's master key, so two tokens draw a string differently and one token draws
//! it the same way each time. The answer is compared in
//! constant time, ignoring case and spaces, and counts only if it arrives within
//! `lifetime_ms + transport_ms` (default 5 s + 1 s) of the picture being handed
//! over, measured on the monotonic clock ([`std::time::Instant`]). A refresh
//! replaces the picture.
//!
//! # Chances and the lock (C5)
//!
//! Every picture handed out uses one chance, counted in the token file's sealed
//! `gate_failures` counter and committed *before* the picture exists; a right
//! answer in time gives it back (the counter returns to 0). So a wrong answer, a
//! late one, a refresh, a timeout, a refusal and a picture abandoned by a killed
//! process each use exactly one chance. The one exception: an agent that cannot
//! show pictures at all (`Error::FunctionNotSupported`, e.g. `deny`) gets the
//! chance back, since nobody saw anything.
//!
//! When the chances ([`GatePolicy::chances`], default 3) are used up, the token
//! locks: the lock is written to the token header, the process logs out, the user
//! is warned that the machine may be compromised (log at `warn`, the error text,
//! and a notice through the prompt agent), and every operation of every process
//! fails with [`GateError::Locked`] = **`CKR_DEVICE_REMOVED`** — the software
//! counterpart of a USB key that locked itself and must be unplugged. Restarting
//! the process does not clear it. Only the security officer clears it, with
//! `vtoken reattach` ([`Token::gate_reattach`]), which verifies the SO PIN (counted
//! like a login): a program that learnt the user PIN cannot unlock and try again.
//! The SO PIN also sets any policy without a picture
//! ([`Token::gate_configure_so`]), so a user who cannot pass the picture is never
//! trapped.
//!
//! # States (C6)
//!
//! [`GateState`]: `initial` (no user login in this process), `pin-verified`,
//! `locked` (¶0038, Fig. 5); shown by `vtoken info` / `vtoken gate status`, in
//! `C_GetTokenInfo` (see `pkcs11-module/src/slot.rs`), and logged on every change
//! (a `token state` line): the lock and the reattach here, the
//! login, logout and the PIN lock in the kernel.
//!
//! # Two ways to answer
//!
//! - **Through the prompt agent** (the PKCS#11 module, any program): the gated
//!   call (`C_SignInit`, `C_DecryptInit`, …) blocks while the token shows the
//!   picture through the trusted prompt agent ([`crate::prompt::Prompt::captcha`]).
//!   A wrong or late answer or a refresh brings the next picture while chances
//!   remain; a refusal or an agent failure returns `CKR_FUNCTION_REJECTED`
//!   ([`Error::FunctionRejected`]); a timeout returns it as
//!   [`GateError::Rejected`] (also `CKR_FUNCTION_REJECTED`).
//! - **Captcha-aware programs** (the CLI, Rust callers): [`Token::gate_challenge`]
//!   returns the PNG, [`Token::gate_answer`] takes the answer; a right answer
//!   grants a one-time pass for the next gated operation of that class in this
//!   process, valid for the challenge lifetime, which the gated call then consumes
//!   instead of asking the agent.
//!
//! No build meant for users reveals the answer by any other path. Only with the
//! cargo feature `test-hooks` (never enabled by configuration) does the token
//! write each answer to the file named by `VTOKEN_TEST_CAPTCHA_ANSWER_FILE`.
//!
//! # Limits
//!
//! A software token's file is readable by its owner: a program running as the
//! same user that knows the PIN can decrypt the file directly. The gate protects
//! the token's *interfaces* (the module, the CLI, the Rust API) — a program that
//! can only reach the token through them cannot sign without the user.

pub mod challenge;
mod check;
mod hook;
mod picture;

use check::{Issued, Pass};

pub(crate) use hook::GateHook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::attr::Attributes;
use crate::error::{Error, GateError, Part, Result};
use crate::prompt::{Captcha, CaptchaReply, Prompt};
use crate::store::{Header, Store};
use crate::token::{Token, UserType};
pub use crate::vendor::CKA_VTOKEN_GATED;

/// The header extension key of the gate state.
pub const EXT_KEY: &str = "gate";
/// The counter of chances used since the last passed check.
pub const COUNTER: &str = "gate_failures";
/// The environment variable the `test-hooks` feature reads (test builds only).
pub const TEST_ANSWER_FILE_ENV: &str = "VTOKEN_TEST_CAPTCHA_ANSWER_FILE";

pub use crate::token::hooks::OpClass;

/// Which requests are gated, and how challenges look (per token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatePolicy {
    /// The master switch. Off: nothing is gated, not even flagged keys.
    pub enabled: bool,
    /// Operation classes gated for every key.
    pub classes: Vec<OpClass>,
    /// Pictures that may fail in a row before the token locks (1..=10).
    pub chances: u32,
    /// Time the user has for one picture, in milliseconds (1000..=120000).
    pub lifetime_ms: u32,
    /// Extra time allowed for transport, in milliseconds (0..=10000).
    pub transport_ms: u32,
    /// Characters per challenge (4..=12).
    pub length: u32,
    /// Characters challenges are drawn from (upper-case letters and digits, at
    /// least 10 distinct).
    pub alphabet: String,
}

impl Default for GatePolicy {
    fn default() -> Self {
        GatePolicy {
            enabled: true,
            classes: Vec::new(),
            chances: 3,
            lifetime_ms: 5000,
            transport_ms: 1000,
            length: 6,
            alphabet: challenge::DEFAULT_ALPHABET.to_string(),
        }
    }
}

impl GatePolicy {
    /// The policy checked and normalized (classes sorted, alphabet upper case).
    pub fn validated(mut self) -> Result<GatePolicy> {
        if self.classes.contains(&OpClass::Configure) {
            return Err(Error::ArgumentsBad(
                "\"configure\" is not a class a policy lists".into(),
            ));
        }
        self.classes.sort();
        self.classes.dedup();
        if !(1..=10).contains(&self.chances) {
            return Err(Error::ArgumentsBad("gate chances: 1 to 10".into()));
        }
        if !(1000..=120_000).contains(&self.lifetime_ms) {
            return Err(Error::ArgumentsBad(
                "gate lifetime: 1 to 120 seconds".into(),
            ));
        }
        if self.transport_ms > 10_000 {
            return Err(Error::ArgumentsBad(
                "gate transport allowance: at most 10 seconds".into(),
            ));
        }
        if !(4..=12).contains(&self.length) {
            return Err(Error::ArgumentsBad(
                "gate challenge length: 4 to 12 characters".into(),
            ));
        }
        let mut chars: Vec<char> = self
            .alphabet
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if chars.iter().any(|c| !c.is_ascii_alphanumeric()) {
            return Err(Error::ArgumentsBad(
                "gate alphabet: letters and digits only".into(),
            ));
        }
        chars.sort_unstable();
        chars.dedup();
        if chars.len() < 10 {
            return Err(Error::ArgumentsBad(
                "gate alphabet: at least 10 distinct characters".into(),
            ));
        }
        self.alphabet = chars.into_iter().collect();
        Ok(self)
    }

    /// How long a picture's answer is accepted: lifetime plus transport.
    pub fn limit(&self) -> Duration {
        Duration::from_millis(u64::from(self.lifetime_ms) + u64::from(self.transport_ms))
    }

    /// The time the user is told they have.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(u64::from(self.lifetime_ms))
    }

    /// Whether moving from `self` to `new` makes the gate weaker in any way.
    pub fn weakened_by(&self, new: &GatePolicy) -> bool {
        if !self.enabled {
            return false;
        }
        let alphabet_poorer = {
            let old: std::collections::BTreeSet<char> = self.alphabet.chars().collect();
            let n: std::collections::BTreeSet<char> = new.alphabet.chars().collect();
            !n.is_superset(&old)
        };
        !new.enabled
            || self.classes.iter().any(|c| !new.classes.contains(c))
            || new.chances > self.chances
            || new.lifetime_ms > self.lifetime_ms
            || new.transport_ms > self.transport_ms
            || new.length < self.length
            || alphabet_poorer
    }

    /// Whether a request of `class` with a key of attributes `key` is gated.
    pub fn applies(&self, class: OpClass, key: Option<&Attributes>) -> bool {
        self.enabled
            && (self.classes.contains(&class)
                || key.is_some_and(|a| a.bool_or(CKA_VTOKEN_GATED, false)))
    }
}

/// The gate record as read for one operation (what the header keeps).
pub(crate) type GateRecord = Persisted;

/// What the header keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Persisted {
    policy: GatePolicy,
    locked: bool,
    /// Unix time of the lock (0 when not locked).
    locked_at: u64,
}

impl Persisted {
    /// Whether an operation passes the gate without asking anything: the token is
    /// not locked, and the policy does not cover `class` (`None`: an operation the
    /// gate never stops) for this key.
    pub(crate) fn lets_through(&self, class: Option<OpClass>, key: &Attributes) -> bool {
        !self.locked && class.is_none_or(|c| !self.policy.applies(c, Some(key)))
    }
}

fn persisted(h: &Header) -> Result<Persisted> {
    match h.ext.get(EXT_KEY) {
        None => Ok(Persisted::default()),
        Some(b) => postcard::from_bytes(b)
            .map_err(|e| Error::corrupt(Part::GateState, format!("damaged: {e}"))),
    }
}

fn save(st: &mut Store, p: &Persisted) -> Result<()> {
    let mut h = st.header()?.clone();
    let b = postcard::to_allocvec(p).map_err(|e| Error::General(format!("gate state: {e}")))?;
    h.ext.insert(EXT_KEY.to_string(), b);
    st.write_header(&h)
}

/// Whether the header records the lock.
pub(crate) fn locked_in(h: &Header) -> bool {
    persisted(h).map(|p| p.locked).unwrap_or(true)
}

/// The token's state (SPEC C6), which the gate's lock decides.
pub use crate::token::TokenState as GateState;

/// The gate as `vtoken gate status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GateStatus {
    pub state: GateState,
    pub locked: bool,
    /// Unix time of the lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_at: Option<u64>,
    pub policy: GatePolicy,
    /// Chances used since the last passed check.
    pub failures: u32,
    pub chances_left: u32,
}

/// A picture challenge handed to a captcha-aware caller.
#[derive(Clone, Debug)]
pub struct GateChallenge {
    /// Names the challenge in [`Token::gate_answer`].
    pub id: u64,
    /// The picture (PNG).
    pub png: Vec<u8>,
    /// The time the user has (the token also allows the transport time).
    pub lifetime: Duration,
    /// Chances left, this picture included.
    pub chances_left: u32,
}

/// The gate's in-process state (pictures and passes never leave the process).
#[derive(Default)]
pub(crate) struct GateRuntime {
    /// One picture at a time through the agent.
    run: Mutex<()>,
    /// The picture a captcha-aware caller holds.
    pending: Mutex<Option<Issued>>,
    /// One-time passes earned through [`Token::gate_answer`].
    passes: Mutex<Vec<Pass>>,
    next_id: AtomicU64,
    /// The persisted state as last read, keyed by the store's header version: the
    /// per-operation checks parse the header's gate record once per change.
    view: Mutex<Option<(u64, Arc<Persisted>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const COMPROMISED: &str = "the token locked itself after too many failed picture checks: \
     this machine may be compromised (a program may be using your PIN). \
     Check it, then run `vtoken reattach` (needs the SO PIN)";

impl Token {
    // ------------------------------------------------------------------ state

    /// The gate record as of the file's version (looked at within the last
    /// [`crate::store::LOOK_WINDOW`]), with that `data_version`: one store lock and at
    /// most one query; the record is parsed again only when the header changed. Refreshes the kernel's blocked flag ([`crate::token::fresh::Blocked`]).
    /// A damaged record is `Err(GateLocked)` (fail closed).
    pub(crate) fn gate_fresh(&self) -> Result<(i64, Arc<Persisted>)> {
        let mut st = self.store();
        let dv = st.data_version_recent()?;
        st.header_at(dv)?;
        let version = st.header_generation();
        let mut view = lock(&self.gate_rt().view);
        if let Some((v, p)) = view.as_ref() {
            if *v == version {
                return Ok((dv, p.clone()));
            }
        }
        let p = match persisted(st.header_at(dv)?) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                self.set_blocked_seen(true);
                warn!(serial = %self.serial(), error = %e, "gate record unreadable: locked");
                return Err(Error::Gate(GateError::Locked));
            }
        };
        self.set_blocked_seen(p.locked);
        *view = Some((version, p.clone()));
        Ok((dv, p))
    }

    fn gate_view(&self) -> Result<Arc<Persisted>> {
        Ok(self.gate_fresh()?.1)
    }

    fn gate_persisted(&self) -> Result<Persisted> {
        Ok((*self.gate_view()?).clone())
    }

    /// The token's gate policy.
    pub fn gate_policy(&self) -> Result<GatePolicy> {
        Ok(self.gate_persisted()?.policy)
    }

    /// Whether the token is locked by the gate (as recorded in the token file).
    pub fn gate_locked(&self) -> Result<bool> {
        Ok(self.gate_persisted()?.locked)
    }

    /// The state: initial, PIN-verified or locked (SPEC C6).
    pub fn gate_state(&self) -> Result<GateState> {
        let mut st = self.store();
        let h = st.header()?;
        Ok(GateState::of(locked_in(h), self.logged_in()))
    }

    /// Policy, state and chances.
    pub fn gate_status(&self) -> Result<GateStatus> {
        let mut st = self.store();
        let p = persisted(st.header()?)?;
        let failures = st.counter(COUNTER)?;
        drop(st);
        let state = if p.locked {
            GateState::Locked
        } else if self.logged_in() == Some(UserType::User) {
            GateState::PinVerified
        } else {
            GateState::Initial
        };
        Ok(GateStatus {
            state,
            locked: p.locked,
            locked_at: p.locked.then_some(p.locked_at),
            chances_left: p.policy.chances.saturating_sub(failures),
            policy: p.policy,
            failures,
        })
    }

    /// `Err(GateLocked)` while the token file records the lock (read fresh: a lock
    /// set by another process is seen within [`crate::store::LOOK_WINDOW`]). Session-level entry points (open session,
    /// login, find, every operation's init) call it.
    pub(crate) fn gate_ensure_unlocked(&self) -> Result<()> {
        self.ensure_unblocked()
    }

    /// Whether a request of `class` using a key with attributes `key` is gated.
    pub fn gate_applies(&self, class: OpClass, key: Option<&Attributes>) -> Result<bool> {
        Ok(self.gate_policy()?.applies(class, key))
    }

    // ------------------------------------------------------------------ administration

    /// Sets the policy (user logged in). A change that weakens the current policy
    /// ([`GatePolicy::weakened_by`]) needs a picture check first (class
    /// [`OpClass::Configure`]: a pass from [`Token::gate_challenge`], or the agent).
    pub fn gate_configure(&self, policy: GatePolicy) -> Result<()> {
        self.gate_ensure_unlocked()?;
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        let policy = policy.validated()?;
        let current = self.gate_policy()?;
        if current.weakened_by(&policy) {
            self.gate_run(OpClass::Configure, "weaken the picture-check policy")?;
        }
        let mut st = self.store();
        let mut p = persisted(st.header()?)?;
        if p.locked {
            return Err(Error::Gate(GateError::Locked));
        }
        p.policy = policy;
        save(&mut st, &p)?;
        info!(serial = %self.serial(), enabled = p.policy.enabled,
              classes = ?p.policy.classes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
              chances = p.policy.chances, lifetime_ms = p.policy.lifetime_ms,
              "gate policy changed");
        Ok(())
    }

    /// The SO sets any gate policy, stronger or weaker, without a picture check:
    /// `so_pin` is verified and counted like a login. So a user who cannot pass the
    /// picture in time is never trapped, while a program holding only the user PIN
    /// still cannot weaken the gate. Works while the token is locked (the lock stays).
    pub fn gate_configure_so(&self, so_pin: &[u8], policy: GatePolicy) -> Result<()> {
        let policy = policy.validated()?;
        self.verify_pin(UserType::So, so_pin)?;
        let mut st = self.store();
        let mut p = persisted(st.header()?)?;
        p.policy = policy;
        save(&mut st, &p)?;
        info!(serial = %self.serial(), enabled = p.policy.enabled,
              classes = ?p.policy.classes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
              chances = p.policy.chances, lifetime_ms = p.policy.lifetime_ms,
              "gate policy set by the SO");
        Ok(())
    }

    /// `vtoken reattach`: clears the lock (and the used chances) with the SO PIN,
    /// verified and counted like a login. The user PIN does not clear it: a program
    /// that learnt the user PIN must not be able to loop picture, guess, lock,
    /// reattach (the SO PIN is the software counterpart of unplugging the key).
    /// Does not log in.
    pub fn gate_reattach(&self, so_pin: &[u8]) -> Result<()> {
        self.verify_pin(UserType::So, so_pin)?;
        let mut st = self.store();
        let mut p = persisted(st.header()?)?;
        let was = p.locked;
        p.locked = false;
        p.locked_at = 0;
        save(&mut st, &p)?;
        st.set_counter(COUNTER, 0)?;
        drop(st);
        self.set_blocked_seen(false);
        *lock(&self.gate_rt().pending) = None;
        lock(&self.gate_rt().passes).clear();
        if was {
            info!(serial = %self.serial(), state = "initial", "token reattached with the SO PIN: gate lock cleared");
            self.log_state(GateState::of(false, self.logged_in()));
        } else {
            info!(serial = %self.serial(), "reattach: the token was not locked; chances reset");
        }
        Ok(())
    }

    /// The key-value read check of `C_GetAttributeValue`: reading `CKA_VALUE` of a
    /// private or secret key whose value is not hidden is a key export.
    pub(crate) fn gate_check_value_read(&self, attrs: &Attributes) -> Result<()> {
        if matches!(attrs.class(), Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY))
            && !crate::object::hides_secrets(attrs)
        {
            let what = format!("export the value of key \"{}\"", attrs.label());
            return self.gate_check(OpClass::KeyExport, Some(attrs), &what);
        }
        Ok(())
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
