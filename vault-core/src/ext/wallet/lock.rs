//! One wallet user at a time, across processes (SPEC W4: no lost update, no
//! sequence number used twice).
//!
//! Each wallet step is one read-modify-write of the wallet record; a load is
//! several steps with the network in between. Two processes on one token (two
//! `vtoken wallet load`, a `pay` during a `load`) must not interleave either: the
//! second would read the record the first is about to replace (a lost debit), or
//! settle the first one's load as "interrupted" while it is still running.
//!
//! The lock is an exclusive `flock` on `<token file>.wallet-lock` (mode 0600, beside
//! the token file; never the token file itself: closing any descriptor of the
//! SQLite file would drop the POSIX locks SQLite holds on it). A command takes it
//! for its whole run ([`Token::wallet_lock`]); every step takes it too, so a
//! single step from anywhere is serialized as well. Re-entrant within one thread
//! (the command's lock covers its steps); another thread of the same process opens
//! its own descriptor and waits like another process. The kernel drops a `flock`
//! when its process dies, so a killed command never leaves the wallet locked.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use crate::error::{Error, Result};
use crate::token::Token;

/// The locks this process holds: (lock file, thread) → (open file, depth).
type Held = HashMap<(PathBuf, ThreadId), (Arc<File>, usize)>;

fn held() -> &'static Mutex<Held> {
    static H: OnceLock<Mutex<Held>> = OnceLock::new();
    H.get_or_init(Default::default)
}

/// The wallet of one token, locked against every other process and thread until
/// dropped.
#[must_use = "the wallet is unlocked when this is dropped"]
pub struct WalletLock {
    key: (PathBuf, ThreadId),
}

impl Drop for WalletLock {
    fn drop(&mut self) {
        let mut h = held().lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, depth)) = h.get_mut(&self.key) {
            *depth -= 1;
            if *depth == 0 {
                // Closing the last descriptor releases the flock.
                h.remove(&self.key);
            }
        }
    }
}

fn lock_path(token_file: &Path) -> PathBuf {
    let mut p = token_file.as_os_str().to_owned();
    p.push(".wallet-lock");
    PathBuf::from(p)
}

pub(super) fn acquire(token_file: &Path) -> Result<WalletLock> {
    let key = (lock_path(token_file), std::thread::current().id());
    {
        let mut h = held().lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, depth)) = h.get_mut(&key) {
            *depth += 1;
            return Ok(WalletLock { key });
        }
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&key.0)
        .map_err(|e| Error::General(format!("wallet: lock {}: {e}", key.0.display())))?;
    // Blocks until the other holder is done (outside the registry's mutex).
    f.lock()
        .map_err(|e| Error::General(format!("wallet: lock {}: {e}", key.0.display())))?;
    held()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone(), (Arc::new(f), 1));
    Ok(WalletLock { key })
}

impl Token {
    /// Locks this token's wallet against every other process (and thread) until
    /// the returned guard is dropped: a command holding it runs its steps with no
    /// other wallet step in between. Waits while another holds it.
    pub fn wallet_lock(&self) -> Result<WalletLock> {
        acquire(self.path())
    }
}
