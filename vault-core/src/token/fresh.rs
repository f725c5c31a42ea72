//! The freshness protocol: how the hot paths reuse what they derived from the token
//! file without taking the store's lock, and stay exact.
//!
//! # Parts
//!
//! - **The look** ([`Freshness::recent`], [`crate::store::Store::data_version_recent`]):
//!   SQLite's `data_version` (it moves on every commit by *another* connection) as of
//!   the last look, trusted for [`LOOK_WINDOW`] (1 ms). One look is a read
//!   transaction with its `fcntl` locks; the window lets every operation's init,
//!   session open and attribute read share one.
//! - **The epoch** ([`Freshness::epoch`], [`Freshness::bump`]): moves on at every
//!   commit of this process's connection (the store's SQLite commit hook, under the
//!   store's lock: own writes, which `data_version` does not count) and at every
//!   in-process change a reader must not miss: login and logout, re-initialization,
//!   and every change of the object cache ([`CacheWrite`] bumps when its guard goes,
//!   still under the cache's lock).
//! - **The blocked flag and the unblocked mark** ([`Blocked`]): whether the last look
//!   of the key-use hook ([`super::hooks::KeyUseHook`], the picture gate) found the
//!   token blocked, and the (version, epoch) at which the token was last found
//!   unblocked, packed in one word.
//!
//! # Invariants
//!
//! 1. A reader takes the epoch *before* it reads anything, and keeps it with what it
//!    derived (a session's last key, the unblocked mark). What it derived is current
//!    while the epoch is unchanged and a look within the window gives the same
//!    `data_version`: any change made since, by this process or another, moved one
//!    of the two.
//! 2. Every writer bumps *after* its change is complete (the commit hook runs inside
//!    the commit; [`CacheWrite`] bumps on drop, under the cache's lock), so a reader
//!    that took the old epoch compares unequal, and one that took the new epoch saw
//!    the change.
//! 3. Another process's commit is seen at the first look at least [`LOOK_WINDOW`]
//!    after this process's previous look; writes, searches and logins always look.
//! 4. The per-call checks (`C_Sign`, `C_Encrypt`, …) read only atomics: the blocked
//!    flag ([`Blocked::seen`]); every operation's init compares epoch and version
//!    before it reuses a key.
//!
//! The low-level record ([`Freshness`]) is the store's: its connection makes the looks
//! and owns the commit hook, and the store depends on nothing above it. This module
//! is where the protocol is stated and where the kernel's uses of it live.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::MutexGuard;

pub use crate::store::{Freshness, LOOK_WINDOW};

use super::Cache;
use crate::error::GateError;

/// [`super::Token::cache_write`]'s guard: the epoch moves on when it goes.
pub(crate) struct CacheWrite<'a> {
    pub(super) guard: MutexGuard<'a, Cache>,
    pub(super) fresh: &'a Freshness,
}

impl std::ops::Deref for CacheWrite<'_> {
    type Target = Cache;
    fn deref(&self) -> &Cache {
        &self.guard
    }
}

impl std::ops::DerefMut for CacheWrite<'_> {
    fn deref_mut(&mut self) -> &mut Cache {
        &mut self.guard
    }
}

impl Drop for CacheWrite<'_> {
    fn drop(&mut self) {
        // Still under the cache's lock: a reader that took the old epoch sees the
        // change as a new epoch, one that takes the new epoch sees the change.
        self.fresh.bump();
    }
}

/// Whether the token is blocked by its key-use hook, as this process last saw it.
#[derive(Default)]
pub(crate) struct Blocked {
    /// The last look (or this process's own lock) found the token blocked: the
    /// check on every session call reads only this.
    seen: AtomicBool,
    /// The (file version, epoch) at which the token was last found unblocked, packed
    /// by [`unblocked_mark`] (0: none).
    unblocked_at: AtomicU64,
}

impl Blocked {
    pub(crate) fn seen(&self) -> bool {
        self.seen.load(Ordering::Relaxed)
    }

    pub(crate) fn set_seen(&self, blocked: bool) {
        self.seen.store(blocked, Ordering::Relaxed);
    }

    /// Whether the token was found unblocked at the version `fresh` looked at within
    /// the window and at its current epoch (nothing to read again).
    pub(crate) fn unblocked_now(&self, fresh: &Freshness) -> bool {
        if let Some(dv) = fresh.recent() {
            let mark = unblocked_mark(dv, fresh.epoch());
            return mark.is_some()
                && mark == Some(self.unblocked_at.load(Ordering::Acquire))
                && !self.seen.load(Ordering::Acquire);
        }
        false
    }

    /// Records that the token was found unblocked at version `dv`, epoch `epoch`
    /// (taken before the look).
    pub(crate) fn mark_unblocked(&self, dv: i64, epoch: u64) {
        if let Some(mark) = unblocked_mark(dv, epoch) {
            self.unblocked_at.store(mark, Ordering::Release);
        }
    }
}

/// `data_version` and the token's epoch in one word, when both fit in 32 bits (else
/// `None`: no shortcut, the full check every time).
fn unblocked_mark(dv: i64, epoch: u64) -> Option<u64> {
    let dv = u32::try_from(dv).ok()?;
    let epoch = u32::try_from(epoch).ok()?;
    ((dv as u64) << 32 | epoch as u64).checked_add(1)
}

impl super::Token {
    /// Records whether the key-use hook found the token blocked (its look at the
    /// file, or its own lock).
    pub(crate) fn set_blocked_seen(&self, blocked: bool) {
        self.blocked.set_seen(blocked);
    }

    /// `Err(GateLocked)` while the token file records the token as blocked (read
    /// fresh: a lock set by another process is seen within [`LOOK_WINDOW`]).
    /// Session-level entry points (open session, login, find, every operation's
    /// init) call it; at an unchanged version and epoch it reads only atomics.
    pub(crate) fn ensure_unblocked(&self) -> crate::Result<()> {
        if self.blocked.unblocked_now(&self.fresh) {
            return Ok(());
        }
        let epoch = self.fresh.epoch(); // before the look, as every reuse does
        let (dv, verdict) = self.hooks.key_use.fresh(self)?;
        if verdict.blocks() {
            return Err(crate::Error::Gate(GateError::Locked));
        }
        self.blocked.mark_unblocked(dv, epoch);
        Ok(())
    }

    /// [`Self::ensure_unblocked`] without touching the file: the state this process
    /// last saw (its own lock at once; another process's lock at this process's next
    /// fresh check). Calls that continue an operation use it, so a signature does not
    /// pay a file lock per call.
    pub(crate) fn ensure_unblocked_cached(&self) -> crate::Result<()> {
        if self.blocked.seen() {
            return Err(crate::Error::Gate(GateError::Locked));
        }
        Ok(())
    }

    /// Whether the token file records the token as blocked (a fresh look).
    pub(crate) fn blocked_fresh(&self) -> crate::Result<bool> {
        Ok(self.hooks.key_use.fresh(self)?.1.blocks())
    }

    pub(crate) fn log_state(&self, state: super::TokenState) {
        tracing::info!(serial = %self.serial(), state = state.as_str(), "token state");
    }
}
