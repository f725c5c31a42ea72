//! The token file: one SQLite database per token (WAL mode, `synchronous=FULL`).
//!
//! SQLite gives atomic commits, multi-process locking and O(log n) record updates;
//! it never sees a secret. Layout (format version [`FORMAT_VERSION`]):
//!
//! | table | content |
//! |---|---|
//! | `meta(k, v)` | `format` (u32 LE, plain), `pubkey` (the public-record key + check), `header` (sealed [`Header`]) |
//! | `counters(name, v)` | PIN failure counters, each sealed |
//! | `objects(id, private, class, label_tag, id_tag, gen, blob)` | one sealed record per token object |
//!
//! Private objects are sealed under the master key (available only after login);
//! public objects under the public-record key kept in the file, so they are readable
//! before login. Associated data binds each record to its token serial, its object
//! id and its index columns, so a changed byte, or a record moved to another object
//! or token, fails to open. `label_tag`/`id_tag` are keyed 16-byte tags (blind
//! indexes) so searches by `CKA_LABEL`/`CKA_ID` use an index without storing labels
//! of private objects in the clear.
//!
//! This file holds [`Store`] (opening a file) and the freshness record the hot paths
//! read without the store's lock (SPEC T5: several processes on one token). The
//! parts: `schema` (creation, connection settings, schema check, migrations, wipe),
//! `header` ([`Header`] and the public-record key), `counters` (PIN retry counters,
//! SPEC T2), `records` (object rows, SPEC T3), `search` (candidate rows of a
//! search), [`seal`] (AES-256-GCM sealing, PIN-wrapped master key, [`MasterKeys`]).

mod counters;
mod header;
mod records;
mod schema;
pub mod seal;
mod search;
#[cfg(test)]
mod tests;

pub use counters::{PinAttempt, PIN_COUNTERS, PIN_COUNTERS_MARK};
pub use header::{wrap_ad, Header};
pub use records::{sealed_private, RawRecord, RowRef};
pub use schema::FORMAT_VERSION;
pub use seal::MasterKeys;
pub use search::IndexFilter;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Part, Result, StoreError};
use header::pubkey_decode;
use schema::{check_schema, configure, MIGRATIONS};
use seal::Key32;

/// An open token file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    pub_key: Key32,
    pub_index: Key32,
    header: Header,
    header_version: i64,
    /// Counts every change of the in-memory header (reload or own write).
    header_gen: u64,
    read_only: bool,
    /// The last look at `data_version` and this connection's commit count, readable
    /// without the store's lock.
    fresh: Arc<Freshness>,
}

/// What a hot path needs to know, without taking the store's lock, to reuse
/// something it derived from the file earlier: the last look at `data_version` (when,
/// and what it said: another process's commits) and an epoch that moves on every commit
/// of this connection (its own writes, which `data_version` does not count) and on
/// every in-process change a reader must not miss ([`Freshness::bump`]: login state,
/// the object cache).
///
/// A reader takes [`Freshness::epoch`] *before* deriving anything and keeps the value
/// with what it derived; the result is current while the epoch is unchanged and
/// [`Freshness::recent`] still gives the same `data_version`.
#[derive(Debug)]
pub struct Freshness {
    base: Instant,
    /// Nanoseconds after `base` of the last look, plus one (0: no look yet).
    look_at: AtomicU64,
    look_dv: AtomicI64,
    epoch: AtomicU64,
}

impl Freshness {
    fn new() -> Self {
        Freshness {
            base: Instant::now(),
            look_at: AtomicU64::new(0),
            look_dv: AtomicI64::new(0),
            epoch: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn looked(&self, dv: i64) {
        // dv first: a reader that sees the new time sees this dv (or a later one).
        self.look_dv.store(dv, Ordering::Release);
        self.look_at.store(self.now(), Ordering::Release);
    }

    /// `data_version` as of a look less than [`LOOK_WINDOW`] ago, if there was one.
    pub fn recent(&self) -> Option<i64> {
        let at = self.look_at.load(Ordering::Acquire);
        if at == 0 || self.now().saturating_sub(at) >= LOOK_WINDOW.as_nanos() as u64 {
            return None;
        }
        Some(self.look_dv.load(Ordering::Acquire))
    }

    /// The current epoch (see the type's documentation).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Moves the epoch on: call after an in-process change is complete.
    pub fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// How long one look at the file stays current for the hot paths
/// ([`Store::data_version_recent`]: every operation's init, session opens, attribute
/// reads). Another process's commit is seen by this one at its first such call at
/// least this long after its previous look; this process's own changes at once.
/// Writes, searches and logins always look. One look is a SQLite read transaction
/// with its `fcntl` locks, a large share of a signature's or a `C_OpenSession`'s cost,
/// so the hot paths share one look per window (`token/fresh.rs` states the protocol).
pub const LOOK_WINDOW: Duration = Duration::from_millis(1);

impl Store {
    /// Opens an existing token file; checks its format version, runs migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::TokenNotPresent(format!("{}: {e}", path.display())))?;
        if meta.len() == 0 {
            return Err(Error::corrupt(Part::File(path.to_path_buf()), "empty"));
        }
        // Never probe writability by opening the file with `std::fs`: closing any
        // descriptor of a file drops every POSIX lock this process holds on it, so a
        // probe would silently release the locks of a `Store` already open on this
        // file in this process. Another process could then checkpoint and delete the
        // WAL under that `Store`, which keeps reading and committing to the unlinked
        // WAL: stale reads and lost acknowledged writes. SQLite opens a file it
        // cannot write read-only and says so.
        let flags = if meta.permissions().readonly() {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Error::corrupt(Part::File(path.to_path_buf()), e.to_string()))?;
        let read_only = conn
            .is_readonly(rusqlite::DatabaseName::Main)
            .map_err(|e| Error::corrupt(Part::File(path.to_path_buf()), e.to_string()))?;
        configure(&conn)
            .map_err(|e| Error::corrupt(Part::File(path.to_path_buf()), e.to_string()))?;
        check_schema(&conn).map_err(|e| match e {
            Error::Store(StoreError::Corrupt { detail, .. }) => {
                Error::corrupt(Part::File(path.to_path_buf()), detail)
            }
            e => Error::corrupt(Part::File(path.to_path_buf()), e.to_string()),
        })?;
        // A file cut short is refused before anything can write to it (SQLite itself
        // would read what is left and a login would then write the counter).
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(|e| Error::corrupt(Part::File(path.to_path_buf()), e.to_string()))?;
        if page_size <= 0 || meta.len() % page_size as u64 != 0 {
            return Err(Error::corrupt(
                Part::File(path.to_path_buf()),
                format!(
                    "truncated ({} bytes is not a whole number of {page_size}-byte pages)",
                    meta.len()
                ),
            ));
        }
        let get = |k: &str| -> Result<Vec<u8>> {
            conn.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()
            .map_err(|e| {
                Error::corrupt(
                    Part::File(path.to_path_buf()),
                    format!("not a vtoken file ({e})"),
                )
            })?
            .ok_or_else(|| {
                Error::corrupt(Part::File(path.to_path_buf()), format!("no '{k}' record"))
            })
        };
        let fv = get("format")?;
        let version = match <[u8; 4]>::try_from(fv.as_slice()) {
            Ok(b) => u32::from_le_bytes(b),
            Err(_) => return Err(Error::corrupt(Part::Format, "damaged")),
        };
        if version > FORMAT_VERSION {
            return Err(Error::Store(StoreError::UnsupportedVersion(version)));
        }
        if version == 0 {
            return Err(Error::corrupt(Part::Format, "version 0"));
        }
        let mut store = {
            let pub_key = pubkey_decode(&get("pubkey")?)?;
            let header = Store::decode_header(&pub_key, &get("header")?)?;
            Store {
                pub_index: pub_key.derive(b"index"),
                pub_key,
                header,
                header_version: 0,
                header_gen: 0,
                fresh: Arc::new(Freshness::new()),
                conn,
                path: path.to_path_buf(),
                read_only,
            }
        };
        if version < FORMAT_VERSION {
            if read_only {
                return Err(Error::TokenWriteProtected(
                    "file needs a format upgrade but is read-only".into(),
                ));
            }
            let tx = store
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for m in &MIGRATIONS[(version - 1) as usize..] {
                m(&tx)?;
            }
            tx.execute(
                "UPDATE meta SET v = ?1 WHERE k = 'format'",
                [FORMAT_VERSION.to_le_bytes().to_vec()],
            )?;
            tx.commit()?;
        }
        {
            // Every commit of this connection moves the epoch on (own writes are
            // invisible to `data_version`). The hook runs inside the commit, under the
            // store's lock; it never vetoes.
            let fresh = store.fresh.clone();
            store.conn.commit_hook(Some(move || {
                fresh.bump();
                false
            }));
        }
        if !read_only {
            // WAL is a property of the file, but a file restored from a backup may
            // have lost it; setting it again is a no-op otherwise.
            let _ = store.conn.pragma_update(None, "journal_mode", "WAL");
        }
        store.header_version = store.data_version()?;
        Ok(store)
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file could only be opened read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    fn writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::TokenWriteProtected(format!(
                "{} is read-only",
                self.path.display()
            )))
        } else {
            Ok(())
        }
    }

    /// SQLite's `data_version`: changes whenever another connection commits.
    pub fn data_version(&self) -> Result<i64> {
        let v = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        self.fresh.looked(v);
        Ok(v)
    }

    /// The look-and-epoch record the hot paths read without this store's lock.
    pub fn freshness(&self) -> Arc<Freshness> {
        self.fresh.clone()
    }

    /// [`Store::data_version`] as of the last look if that was less than
    /// [`LOOK_WINDOW`] ago, else a fresh look.
    pub fn data_version_recent(&self) -> Result<i64> {
        match self.fresh.recent() {
            Some(v) => Ok(v),
            None => self.data_version(),
        }
    }

    /// Changes whenever the in-memory header changes (reloaded after another
    /// process's commit, or written here): a cache key for anything derived from it.
    pub fn header_generation(&self) -> u64 {
        self.header_gen
    }

    /// The token header, reloaded if another process changed the file.
    pub fn header(&mut self) -> Result<&Header> {
        let v = self.data_version()?;
        self.header_at(v)
    }

    /// [`Store::header`] for a `data_version` the caller has just read.
    pub fn header_at(&mut self, v: i64) -> Result<&Header> {
        if v != self.header_version {
            let sealed: Vec<u8> =
                self.conn
                    .query_row("SELECT v FROM meta WHERE k = 'header'", [], |r| r.get(0))?;
            self.header = Store::decode_header(&self.pub_key, &sealed)?;
            self.header_version = v;
            self.header_gen += 1;
        }
        Ok(&self.header)
    }
}
