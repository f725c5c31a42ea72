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

pub mod seal;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attr::Attributes;
use crate::config::PinPolicy;
use crate::error::{Error, Result};
use seal::{Key32, WrappedKey};

/// Current file format version. Bump it with a migration in [`MIGRATIONS`].
pub const FORMAT_VERSION: u32 = 1;

/// Migrations: `MIGRATIONS[i]` upgrades a file from version `i + 1` to `i + 2`.
/// Version 1 is the first format, so the list is empty; the hook is exercised by
/// [`Store::open`] whenever a file's version is older than [`FORMAT_VERSION`].
type Migration = fn(&rusqlite::Transaction<'_>) -> Result<()>;
const MIGRATIONS: &[Migration] = &[];

/// Token-wide state, sealed under the public-record key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// 16 hex digits, unique per token.
    pub serial: String,
    /// Token label (at most 32 bytes).
    pub label: String,
    /// Unix time of initialization.
    pub created: u64,
    /// PIN policy fixed at initialization.
    pub pin_policy: PinPolicy,
    /// Master key under the SO PIN.
    pub so: WrappedKey,
    /// Master key under the user PIN, once `C_InitPIN` has run.
    pub user: Option<WrappedKey>,
    /// `CKF_USER_PIN_TO_BE_CHANGED`.
    pub user_pin_to_be_changed: bool,
    /// `CKF_SO_PIN_TO_BE_CHANGED`.
    pub so_pin_to_be_changed: bool,
    /// Room for later features (vault, gate) without a format bump.
    pub ext: std::collections::BTreeMap<String, Vec<u8>>,
}

/// One object row as read from the file, before decryption.
#[derive(Debug)]
pub struct RawRecord {
    pub id: u64,
    pub private: bool,
    pub class: u64,
    pub gen: i64,
    label_tag: Option<Vec<u8>>,
    id_tag: Option<Vec<u8>>,
    blob: Vec<u8>,
}

/// A candidate row of a search: id, generation and privacy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowRef {
    pub id: u64,
    pub gen: i64,
    pub private: bool,
}

/// Search filter on the indexed columns.
#[derive(Clone, Debug, Default)]
pub struct IndexFilter {
    pub class: Option<u64>,
    pub label: Option<Vec<u8>>,
    pub id: Option<Vec<u8>>,
    pub include_private: bool,
}

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
/// with its `fcntl` locks: made on every call it took ~20 % of an aws-lc P-256
/// signature's time and most of a `C_OpenSession`.
pub const LOOK_WINDOW: Duration = Duration::from_millis(1);

fn obj_ad(
    serial: &str,
    id: u64,
    private: bool,
    class: u64,
    lt: &Option<Vec<u8>>,
    it: &Option<Vec<u8>>,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(96);
    ad.extend_from_slice(b"vtoken-obj-v1\0");
    ad.extend_from_slice(serial.as_bytes());
    ad.push(0);
    ad.extend_from_slice(&id.to_le_bytes());
    ad.push(private as u8);
    ad.extend_from_slice(&class.to_le_bytes());
    for t in [lt, it] {
        match t {
            Some(t) => {
                ad.push(1);
                ad.extend_from_slice(t);
            }
            None => ad.push(0),
        }
    }
    ad
}

fn counter_ad(serial: &str, name: &str) -> Vec<u8> {
    format!("vtoken-counter-v1\0{serial}\0{name}").into_bytes()
}

fn open_counter(pub_key: &Key32, serial: &str, name: &str, sealed: &[u8]) -> Result<u32> {
    let p = seal::open(pub_key, &counter_ad(serial, name), sealed)
        .ok_or_else(|| Error::Corrupt(format!("counter '{name}' fails its integrity check")))?;
    <[u8; 4]>::try_from(&p[..])
        .map(u32::from_le_bytes)
        .map_err(|_| Error::Corrupt(format!("counter '{name}' damaged")))
}

/// Associated data binding a wrapped master key to its token and role.
pub fn wrap_ad(serial: &str, role: &str) -> Vec<u8> {
    format!("vtoken-mk-v1\0{serial}\0{role}").into_bytes()
}

const HEADER_AD: &[u8] = b"vtoken-header-v1";

fn pubkey_encode(k: &Key32) -> Vec<u8> {
    let mut v = k.0.to_vec();
    v.extend_from_slice(&Sha256::digest(k.0)[..8]);
    v
}

fn pubkey_decode(v: &[u8]) -> Result<Key32> {
    if v.len() != 40 || Sha256::digest(&v[..32])[..8] != v[32..] {
        return Err(Error::Corrupt("public-record key damaged".into()));
    }
    let mut k = [0u8; 32];
    k.copy_from_slice(&v[..32]);
    Ok(Key32(k))
}

/// Every connection to a token file: the file is not trusted to carry code. With
/// `trusted_schema=OFF` SQL functions with side effects cannot run from the schema
/// (views, triggers, defaults, index expressions); defensive mode refuses
/// `PRAGMA writable_schema` and other ways of corrupting the file through SQL;
/// triggers are off (the token has none; [`check_schema`] refuses files with one).
fn configure(conn: &Connection) -> Result<()> {
    use rusqlite::config::DbConfig;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(())
}

/// Refuses a file whose schema holds anything but tables and indexes: a trigger or
/// view added to a token file (by `sqlite3`, or with `writable_schema`) would run
/// SQL inside the token's own transactions, e.g. a trigger resetting the PIN
/// counter on every failed try. Checked once per open, from the schema's SQL text
/// (what SQLite itself parses), not from its `type` column alone.
fn check_schema(conn: &Connection) -> Result<()> {
    let mut st = conn.prepare("SELECT type, name, sql FROM sqlite_schema")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    for row in rows {
        let (ty, name, sql) = row?;
        let sql = sql.unwrap_or_default();
        let head: String = sql
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        let ok = match ty.as_str() {
            "table" => head.starts_with("CREATE TABLE "),
            // Automatic indexes of UNIQUE/PRIMARY KEY constraints have no SQL.
            "index" => {
                sql.is_empty() && name.starts_with("sqlite_autoindex_")
                    || head.starts_with("CREATE INDEX ")
                    || head.starts_with("CREATE UNIQUE INDEX")
            }
            _ => false,
        };
        if !ok {
            return Err(Error::Corrupt(format!(
                "unexpected {ty} '{name}' in the token file's schema (a token file holds \
                 only tables and indexes; triggers and views are refused)"
            )));
        }
    }
    Ok(())
}

/// The PIN failure counters (user, SO). Each row is written when the token is
/// created (and again when it is re-initialized); from then on a missing row reads
/// as a locked PIN ([`Store::pin_counter`]), so deleting a row never gives tries back.
pub const PIN_COUNTERS: [&str; 2] = ["user_pin_failures", "so_pin_failures"];

/// `Header::ext` key present once the file's PIN counter rows are known to exist
/// (set at creation; older files get it from [`Store::upgrade_pin_counters`]). It
/// lives in the sealed header, so `sqlite3` alone cannot remove it.
pub const PIN_COUNTERS_MARK: &str = "pin-counters";

/// What one committed PIN try decided ([`Store::pin_attempt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinAttempt {
    /// The try was counted (this is the committed count); the PIN may be checked.
    Check(u32),
    /// The PIN is locked (tries used up, or the counter row is missing): no try
    /// was counted and the PIN must not be checked.
    Locked,
}

impl Store {
    /// Creates a new token file at `path` (it must not exist) holding `header`.
    pub fn create(path: &Path, header: &Header) -> Result<Store> {
        if path.exists() {
            return Err(Error::Storage(format!("{} already exists", path.display())));
        }
        let tmp = path.with_extension("vtoken-new");
        let _ = std::fs::remove_file(&tmp);
        {
            let conn = Connection::open_with_flags(
                &tmp,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            )?;
            configure(&conn)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.execute_batch(
                "CREATE TABLE meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);
                 CREATE TABLE counters(name TEXT PRIMARY KEY, v BLOB NOT NULL);
                 CREATE TABLE objects(
                    id INTEGER PRIMARY KEY,
                    private INTEGER NOT NULL,
                    class INTEGER NOT NULL,
                    label_tag BLOB,
                    id_tag BLOB,
                    gen INTEGER NOT NULL,
                    blob BLOB NOT NULL);
                 CREATE INDEX objects_class ON objects(class);
                 CREATE INDEX objects_label ON objects(label_tag);
                 CREATE INDEX objects_id ON objects(id_tag);",
            )?;
            let pk = Key32::random()?;
            let sealed = seal::seal(&pk, HEADER_AD, &postcard::to_allocvec(header).map_err(ser)?)?;
            conn.execute(
                "INSERT INTO meta VALUES('format', ?1)",
                [FORMAT_VERSION.to_le_bytes().to_vec()],
            )?;
            conn.execute(
                "INSERT INTO meta VALUES('pubkey', ?1)",
                [pubkey_encode(&pk)],
            )?;
            conn.execute("INSERT INTO meta VALUES('header', ?1)", [sealed])?;
            for name in PIN_COUNTERS {
                conn.execute(
                    "INSERT INTO counters(name, v) VALUES(?1, ?2)",
                    params![
                        name,
                        seal::seal(&pk, &counter_ad(&header.serial, name), &0u32.to_le_bytes())?
                    ],
                )?;
            }
            // Checkpoint so the new file is complete on its own before it is renamed.
            conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        // Publish atomically: a token file either exists complete or not at all.
        let _ = std::fs::remove_file(tmp.with_extension("vtoken-new-wal"));
        let _ = std::fs::remove_file(tmp.with_extension("vtoken-new-shm"));
        std::fs::hard_link(&tmp, path)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", path.display())))?;
        std::fs::remove_file(&tmp)?;
        Store::open(path)
    }

    /// Opens an existing token file; checks its format version, runs migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::TokenNotPresent(format!("{}: {e}", path.display())))?;
        if meta.len() == 0 {
            return Err(Error::Corrupt(format!("{} is empty", path.display())));
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
            .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        let read_only = conn
            .is_readonly(rusqlite::DatabaseName::Main)
            .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        configure(&conn).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        check_schema(&conn).map_err(|e| match e {
            Error::Corrupt(m) => Error::Corrupt(format!("{}: {m}", path.display())),
            e => Error::Corrupt(format!("{}: {e}", path.display())),
        })?;
        // A file cut short is refused before anything can write to it (SQLite itself
        // would read what is left and a login would then write the counter).
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        if page_size <= 0 || meta.len() % page_size as u64 != 0 {
            return Err(Error::Corrupt(format!(
                "{} is truncated ({} bytes is not a whole number of {page_size}-byte pages)",
                path.display(),
                meta.len()
            )));
        }
        let get = |k: &str| -> Result<Vec<u8>> {
            conn.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()
            .map_err(|e| Error::Corrupt(format!("{}: not a vtoken file ({e})", path.display())))?
            .ok_or_else(|| Error::Corrupt(format!("{}: no '{k}' record", path.display())))
        };
        let fv = get("format")?;
        let version = match <[u8; 4]>::try_from(fv.as_slice()) {
            Ok(b) => u32::from_le_bytes(b),
            Err(_) => return Err(Error::Corrupt("format record damaged".into())),
        };
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        if version == 0 {
            return Err(Error::Corrupt("format version 0".into()));
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

    fn decode_header(pub_key: &Key32, sealed: &[u8]) -> Result<Header> {
        let plain = seal::open(pub_key, HEADER_AD, sealed)
            .ok_or_else(|| Error::Corrupt("token header fails its integrity check".into()))?;
        postcard::from_bytes(&plain).map_err(|e| Error::Corrupt(format!("token header: {e}")))
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

    /// Replaces the header.
    pub fn write_header(&mut self, h: &Header) -> Result<()> {
        self.writable()?;
        let sealed = seal::seal(
            &self.pub_key,
            HEADER_AD,
            &postcard::to_allocvec(h).map_err(ser)?,
        )?;
        self.conn
            .execute("UPDATE meta SET v = ?1 WHERE k = 'header'", [sealed])?;
        self.header = h.clone();
        self.header_gen += 1;
        self.header_version = self.data_version()?;
        Ok(())
    }

    /// Reads a sealed counter (0 when absent).
    pub fn counter(&self, name: &str) -> Result<u32> {
        Ok(self.counter_row(name)?.unwrap_or(0))
    }

    /// Reads a sealed counter; `None` when its row is absent.
    fn counter_row(&self, name: &str) -> Result<Option<u32>> {
        let v: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT v FROM counters WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        v.map(|s| open_counter(&self.pub_key, &self.header.serial, name, &s))
            .transpose()
    }

    /// A PIN failure counter ([`PIN_COUNTERS`]); `None`: its row is missing, which
    /// means locked (see [`PIN_COUNTERS`]).
    pub fn pin_counter(&self, name: &str) -> Result<Option<u32>> {
        self.counter_row(name)
    }

    /// One PIN try, decided by the committed counter: in one immediate transaction
    /// (so no two processes see the same value) a counter below `max` is incremented
    /// and committed, and only then may the PIN be checked ([`PinAttempt::Check`]);
    /// a counter at `max` or a missing row is [`PinAttempt::Locked`] and nothing is
    /// written. However many processes try at once, at most `max` PINs are checked
    /// between two resets.
    pub fn pin_attempt(&mut self, name: &str, max: u32) -> Result<PinAttempt> {
        self.writable()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<Vec<u8>> = tx
            .query_row("SELECT v FROM counters WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        let old = match old {
            None => return Ok(PinAttempt::Locked),
            Some(s) => open_counter(&self.pub_key, &self.header.serial, name, &s)?,
        };
        if old >= max {
            return Ok(PinAttempt::Locked);
        }
        let new = old + 1;
        let ad = counter_ad(&self.header.serial, name);
        let s = seal::seal(&self.pub_key, &ad, &new.to_le_bytes())?;
        tx.execute(
            "UPDATE counters SET v = ?2 WHERE name = ?1",
            params![name, s],
        )?;
        tx.commit()?;
        Ok(PinAttempt::Check(new))
    }

    /// Gives a file made before [`PIN_COUNTERS_MARK`] its PIN counter rows, once:
    /// the SO row at 0 when it is missing and no user PIN is set (a token whose SO
    /// never logged in had no row); any other missing row stays missing, i.e. locked
    /// (every path that sets a user PIN logs the SO in and writes both rows, so only
    /// a deletion removes them). Then marks the header. Read-only files are left as
    /// they are (their PINs cannot be tried anyway: a try writes the counter).
    pub fn upgrade_pin_counters(&mut self) -> Result<()> {
        if self.read_only || self.header.ext.contains_key(PIN_COUNTERS_MARK) {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sealed: Vec<u8> =
            tx.query_row("SELECT v FROM meta WHERE k = 'header'", [], |r| r.get(0))?;
        let mut h = Store::decode_header(&self.pub_key, &sealed)?;
        if !h.ext.contains_key(PIN_COUNTERS_MARK) {
            let so = PIN_COUNTERS[1];
            let so_row: Option<i64> = tx
                .query_row("SELECT 1 FROM counters WHERE name = ?1", [so], |r| r.get(0))
                .optional()?;
            if so_row.is_none() && h.user.is_none() {
                let s = seal::seal(
                    &self.pub_key,
                    &counter_ad(&h.serial, so),
                    &0u32.to_le_bytes(),
                )?;
                tx.execute(
                    "INSERT INTO counters(name, v) VALUES(?1, ?2)",
                    params![so, s],
                )?;
            }
            h.ext.insert(PIN_COUNTERS_MARK.to_string(), vec![1]);
            let sealed = seal::seal(
                &self.pub_key,
                HEADER_AD,
                &postcard::to_allocvec(&h).map_err(ser)?,
            )?;
            tx.execute("UPDATE meta SET v = ?1 WHERE k = 'header'", [sealed])?;
        }
        tx.commit()?;
        self.header = h;
        self.header_gen += 1;
        self.header_version = self.data_version()?;
        Ok(())
    }

    /// Writes a counter durably (committed before this returns).
    pub fn set_counter(&self, name: &str, v: u32) -> Result<()> {
        self.writable()?;
        let s = seal::seal(
            &self.pub_key,
            &counter_ad(&self.header.serial, name),
            &v.to_le_bytes(),
        )?;
        self.conn.execute(
            "INSERT INTO counters(name, v) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET v = excluded.v",
            params![name, s],
        )?;
        Ok(())
    }

    /// Atomically increments a counter and returns the new value (read and write in
    /// one immediate transaction, so two processes never both see the old value).
    pub fn increment_counter(&mut self, name: &str) -> Result<u32> {
        self.writable()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<Vec<u8>> = tx
            .query_row("SELECT v FROM counters WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        let ad = counter_ad(&self.header.serial, name);
        let old = match old {
            None => 0,
            Some(s) => open_counter(&self.pub_key, &self.header.serial, name, &s)?,
        };
        let new = old.saturating_add(1);
        let s = seal::seal(&self.pub_key, &ad, &new.to_le_bytes())?;
        tx.execute(
            "INSERT INTO counters(name, v) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET v = excluded.v",
            params![name, s],
        )?;
        tx.commit()?;
        Ok(new)
    }

    fn index_key<'a>(&'a self, private: bool, mk_index: Option<&'a Key32>) -> Result<&'a Key32> {
        if private {
            mk_index.ok_or(Error::UserNotLoggedIn)
        } else {
            Ok(&self.pub_index)
        }
    }

    fn view(&self) -> SealView<'_> {
        SealView {
            serial: &self.header.serial,
            pub_key: &self.pub_key,
            pub_index: &self.pub_index,
        }
    }

    /// Stores a new object; returns its id and generation. Committed on return.
    pub fn insert_object(
        &mut self,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<RowRef> {
        self.writable()?;
        let private = sealed_private(private, attrs);
        let gen = random_gen()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: u64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM objects", [], |r| {
            r.get::<_, i64>(0)
        })? as u64;
        // `self` is borrowed by the transaction, so seal with a helper view.
        let (class, lt, it, blob) = SealView {
            serial: &self.header.serial,
            pub_key: &self.pub_key,
            pub_index: &self.pub_index,
        }
        .seal_object(id, private, attrs, mk)?;
        tx.execute(
            "INSERT INTO objects(id, private, class, label_tag, id_tag, gen, blob) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id as i64, private, class as i64, lt, it, gen, blob],
        )?;
        tx.commit()?;
        Ok(RowRef { id, gen, private })
    }

    /// Replaces an object's attributes (the object keeps its id).
    pub fn update_object(
        &mut self,
        id: u64,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<RowRef> {
        self.writable()?;
        let private = sealed_private(private, attrs);
        let gen = random_gen()?;
        let (class, lt, it, blob) = self.view().seal_object(id, private, attrs, mk)?;
        let n = self.conn.execute(
            "UPDATE objects SET private = ?2, class = ?3, label_tag = ?4, id_tag = ?5, gen = ?6, blob = ?7 WHERE id = ?1",
            params![id as i64, private, class as i64, lt, it, gen, blob],
        )?;
        if n == 0 {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(RowRef { id, gen, private })
    }

    /// Like [`Store::update_object`], but only while the row still has generation
    /// `expected_gen` (a compare-and-swap in one statement, atomic across processes).
    /// `Ok(None)`: another writer changed the object first (re-read and retry).
    pub fn update_object_if_gen(
        &mut self,
        id: u64,
        expected_gen: i64,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<Option<RowRef>> {
        self.writable()?;
        let private = sealed_private(private, attrs);
        let gen = random_gen()?;
        let (class, lt, it, blob) = self.view().seal_object(id, private, attrs, mk)?;
        let n = self.conn.execute(
            "UPDATE objects SET private = ?2, class = ?3, label_tag = ?4, id_tag = ?5, gen = ?6, blob = ?7 WHERE id = ?1 AND gen = ?8",
            params![id as i64, private, class as i64, lt, it, gen, blob, expected_gen],
        )?;
        if n == 0 {
            return match self.row(id)? {
                None => Err(Error::ObjectHandleInvalid),
                Some(_) => Ok(None),
            };
        }
        Ok(Some(RowRef { id, gen, private }))
    }

    /// Deletes an object; `ObjectHandleInvalid` if it is gone already.
    pub fn delete_object(&mut self, id: u64) -> Result<()> {
        self.writable()?;
        let n = self
            .conn
            .execute("DELETE FROM objects WHERE id = ?1", [id as i64])?;
        if n == 0 {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(())
    }

    /// Deletes every object and counter and writes the PIN counters at 0 (token
    /// re-initialization).
    pub fn wipe(&mut self, header: &Header) -> Result<()> {
        self.writable()?;
        let sealed = seal::seal(
            &self.pub_key,
            HEADER_AD,
            &postcard::to_allocvec(header).map_err(ser)?,
        )?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM objects", [])?;
        tx.execute("DELETE FROM counters", [])?;
        for name in PIN_COUNTERS {
            let s = seal::seal(
                &self.pub_key,
                &counter_ad(&header.serial, name),
                &0u32.to_le_bytes(),
            )?;
            tx.execute(
                "INSERT INTO counters(name, v) VALUES(?1, ?2)",
                params![name, s],
            )?;
        }
        tx.execute("UPDATE meta SET v = ?1 WHERE k = 'header'", [sealed])?;
        tx.commit()?;
        self.header = header.clone();
        self.header_gen += 1;
        self.header_version = self.data_version()?;
        Ok(())
    }

    /// The generation of one object, if it exists.
    pub fn row(&self, id: u64) -> Result<Option<RowRef>> {
        Ok(self
            .conn
            .query_row(
                "SELECT gen, private FROM objects WHERE id = ?1",
                [id as i64],
                |r| {
                    Ok(RowRef {
                        id,
                        gen: r.get(0)?,
                        private: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Reads and opens one object. `Corrupt` if its record fails the integrity check.
    pub fn load_object(
        &self,
        id: u64,
        mk: Option<&MasterKeys>,
    ) -> Result<Option<(RowRef, Attributes)>> {
        let raw = self
            .conn
            .query_row(
                "SELECT private, class, label_tag, id_tag, gen, blob FROM objects WHERE id = ?1",
                [id as i64],
                |r| {
                    Ok(RawRecord {
                        id,
                        private: r.get(0)?,
                        class: r.get::<_, i64>(1)? as u64,
                        label_tag: r.get(2)?,
                        id_tag: r.get(3)?,
                        gen: r.get(4)?,
                        blob: r.get(5)?,
                    })
                },
            )
            .optional()?;
        match raw {
            None => Ok(None),
            Some(raw) => {
                let rr = RowRef {
                    id: raw.id,
                    gen: raw.gen,
                    private: raw.private,
                };
                Ok(Some((rr, self.open_record(&raw, mk)?)))
            }
        }
    }

    /// Opens a raw record.
    pub fn open_record(&self, raw: &RawRecord, mk: Option<&MasterKeys>) -> Result<Attributes> {
        let key = if raw.private {
            &mk.ok_or(Error::UserNotLoggedIn)?.records
        } else {
            &self.pub_key
        };
        let ad = obj_ad(
            &self.header.serial,
            raw.id,
            raw.private,
            raw.class,
            &raw.label_tag,
            &raw.id_tag,
        );
        let plain = seal::open(key, &ad, &raw.blob).ok_or_else(|| {
            Error::Corrupt(format!("object {} fails its integrity check", raw.id))
        })?;
        let attrs: Attributes = postcard::from_bytes(&plain)
            .map_err(|e| Error::Corrupt(format!("object {}: {e}", raw.id)))?;
        if attrs.class().unwrap_or(u64::MAX) != raw.class {
            return Err(Error::Corrupt(format!(
                "object {}: class column mismatch",
                raw.id
            )));
        }
        Ok(attrs)
    }

    /// Rows matching the indexed parts of a search (the caller still matches the
    /// full template against the opened records).
    pub fn candidates(&self, f: &IndexFilter, mk: Option<&MasterKeys>) -> Result<Vec<RowRef>> {
        let mut out = Vec::new();
        for private in [false, true] {
            if private && !f.include_private {
                continue;
            }
            let k = match self.index_key(private, mk.map(|m| &m.index)) {
                Ok(k) => k,
                Err(_) => continue,
            };
            let (sql, args) = candidates_query(f, private, |v| k.tag(v));
            let mut st = self.conn.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                Ok(RowRef {
                    id: r.get::<_, i64>(0)? as u64,
                    gen: r.get(1)?,
                    private,
                })
            })?;
            for r in rows {
                out.push(r?);
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// SQLite's plan for the candidate query of `f` (tests check that label and ID
    /// searches use their index).
    pub fn explain_candidates(&self, f: &IndexFilter) -> Result<String> {
        let (sql, args) = candidates_query(f, false, |v| v.to_vec());
        let mut st = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?.join("; "))
    }

    /// Raw records for a list of ids (for batch opening after [`Store::candidates`]).
    pub fn raw_records(&self, ids: &[u64]) -> Result<Vec<RawRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT private, class, label_tag, id_tag, gen, blob FROM objects WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(r) = st
                .query_row([id as i64], |r| {
                    Ok(RawRecord {
                        id,
                        private: r.get(0)?,
                        class: r.get::<_, i64>(1)? as u64,
                        label_tag: r.get(2)?,
                        id_tag: r.get(3)?,
                        gen: r.get(4)?,
                        blob: r.get(5)?,
                    })
                })
                .optional()?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Number of objects (public, private).
    pub fn counts(&self) -> Result<(u64, u64)> {
        let mut st = self
            .conn
            .prepare_cached("SELECT private, COUNT(*) FROM objects GROUP BY private")?;
        let mut p = (0, 0);
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        for r in rows {
            let (private, n) = r?;
            if private {
                p.1 = n
            } else {
                p.0 = n
            }
        }
        Ok(p)
    }
}

/// Whether a record is sealed under the master key: when the caller says so, and
/// always for what holds key material or vault data (private and secret keys, OTP
/// credentials, vault entries), whatever their `CKA_PRIVATE` says.
pub fn sealed_private(private: bool, attrs: &Attributes) -> bool {
    private || crate::object::is_private(attrs) || crate::vendor::is_vault_object(attrs)
}

impl Store {
    /// Re-seals under the master key every key record an older version sealed under
    /// the public-record key (a key created with `CKA_PRIVATE=false`), with
    /// `CKA_PRIVATE` set true; returns how many. Runs at user login. The old
    /// ciphertext is overwritten (`secure_delete`) and the WAL truncated, so a later
    /// copy of the file keeps no record the public-record key opens.
    pub fn migrate_public_keys(&mut self, mk: &MasterKeys) -> Result<usize> {
        use cryptoki_sys::{CKA_PRIVATE, CKO_PRIVATE_KEY, CKO_SECRET_KEY};
        // The class column is in the clear: finding them costs one index scan.
        let ids: Vec<u64> = {
            let mut st = self
                .conn
                .prepare_cached("SELECT id FROM objects WHERE private = 0 AND class IN (?1, ?2)")?;
            let rows = st.query_map(
                params![CKO_PRIVATE_KEY as i64, CKO_SECRET_KEY as i64],
                |r| r.get::<_, i64>(0),
            )?;
            rows.map(|r| r.map(|v| v as u64))
                .collect::<std::result::Result<_, _>>()?
        };
        if ids.is_empty() {
            return Ok(0);
        }
        self.writable()?;
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let records = self.raw_records(&ids)?;
        let mut sealed = Vec::with_capacity(records.len());
        for raw in &records {
            let mut attrs = self.open_record(raw, None)?;
            attrs.set_bool(CKA_PRIVATE, true);
            let row = self.view().seal_object(raw.id, true, &attrs, Some(mk))?;
            sealed.push((raw.id, row, random_gen()?));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (id, (class, lt, it, blob), gen) in &sealed {
            // Only rows still public: another process may have migrated them first.
            tx.execute(
                "UPDATE objects SET private = 1, class = ?2, label_tag = ?3, id_tag = ?4, gen = ?5, blob = ?6 WHERE id = ?1 AND private = 0",
                params![*id as i64, *class as i64, lt, it, gen, blob],
            )?;
        }
        tx.commit()?;
        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
        Ok(sealed.len())
    }

    /// Writes `attrs` as a record sealed under the public-record key whatever its
    /// class, as versions before keys were always private did. Only for tests of
    /// [`Store::migrate_public_keys`] (it reveals nothing: the public-record key is
    /// in the file); the token never calls it.
    #[doc(hidden)]
    pub fn insert_legacy_public_record(&mut self, attrs: &Attributes) -> Result<RowRef> {
        self.writable()?;
        let gen = random_gen()?;
        let id: u64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM objects", [], |r| {
                    r.get::<_, i64>(0)
                })? as u64;
        let (class, lt, it, blob) = self.view().seal_object(id, false, attrs, None)?;
        self.conn.execute(
            "INSERT INTO objects(id, private, class, label_tag, id_tag, gen, blob) VALUES(?1, 0, ?2, ?3, ?4, ?5, ?6)",
            params![id as i64, class as i64, lt, it, gen, blob],
        )?;
        Ok(RowRef {
            id,
            gen,
            private: false,
        })
    }
}

/// Keys derived from the master key once a user (or SO) is logged in.
#[derive(Clone, Debug)]
pub struct MasterKeys {
    /// The master key itself (needed to re-wrap it under a new PIN).
    pub master: Key32,
    /// Seals private records.
    pub records: Key32,
    /// Keys blind indexes of private records.
    pub index: Key32,
}

impl MasterKeys {
    /// Derives the working keys from the master key.
    pub fn new(master: Key32) -> MasterKeys {
        MasterKeys {
            records: master.derive(b"records"),
            index: master.derive(b"index"),
            master,
        }
    }
}

/// A sealed object row: class, label tag, id tag, blob.
type SealedRow = (u64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>);

struct SealView<'a> {
    serial: &'a str,
    pub_key: &'a Key32,
    pub_index: &'a Key32,
}

impl SealView<'_> {
    fn seal_object(
        &self,
        id: u64,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<SealedRow> {
        use cryptoki_sys::{CKA_ID, CKA_LABEL};
        let class = attrs.class().unwrap_or(u64::MAX);
        let ik = if private {
            &mk.ok_or(Error::UserNotLoggedIn)?.index
        } else {
            self.pub_index
        };
        let lt = attrs.get(CKA_LABEL).map(|v| ik.tag(v));
        let it = attrs.get(CKA_ID).map(|v| ik.tag(v));
        let key = if private {
            &mk.ok_or(Error::UserNotLoggedIn)?.records
        } else {
            self.pub_key
        };
        let plain = attrs.to_sealable()?;
        let blob = seal::seal(
            key,
            &obj_ad(self.serial, id, private, class, &lt, &it),
            &plain,
        )?;
        Ok((class, lt, it, blob))
    }
}

fn random_gen() -> Result<i64> {
    let mut b = [0u8; 8];
    crate::mechanism::random(&mut b)?;
    Ok(i64::from_le_bytes(b))
}

fn ser(e: postcard::Error) -> Error {
    Error::General(format!("serialization: {e}"))
}

/// The candidate query of [`Store::candidates`] for one privacy class; `tag` maps a
/// label or ID to its blind index.
fn candidates_query(
    f: &IndexFilter,
    private: bool,
    tag: impl Fn(&[u8]) -> Vec<u8>,
) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("SELECT id, gen FROM objects WHERE private = ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![(private as i64).into()];
    if let Some(c) = f.class {
        args.push((c as i64).into());
        // With a label or ID tag, that tag's index is the selective one: `+class`
        // keeps SQLite from walking every object of the class.
        let unary = if f.label.is_some() || f.id.is_some() {
            "+"
        } else {
            ""
        };
        sql.push_str(&format!(" AND {unary}class = ?{}", args.len()));
    }
    if let Some(l) = &f.label {
        args.push(tag(l).into());
        sql.push_str(&format!(" AND label_tag = ?{}", args.len()));
    }
    if let Some(i) = &f.id {
        args.push(tag(i).into());
        sql.push_str(&format!(" AND id_tag = ?{}", args.len()));
    }
    sql.push_str(" ORDER BY id");
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            serial: "0123456789ABCDEF".into(),
            label: "t".into(),
            created: 0,
            pin_policy: PinPolicy::default(),
            so: WrappedKey::wrap(
                &Key32::random().unwrap(),
                b"12345678",
                crate::config::KdfParams::TEST,
                b"so",
            )
            .unwrap(),
            user: None,
            user_pin_to_be_changed: false,
            so_pin_to_be_changed: false,
            ext: [(PIN_COUNTERS_MARK.to_string(), vec![1])].into(),
        }
    }

    /// The store's own connection refuses the `writable_schema` route to planting
    /// a trigger (defensive mode), and runs no trigger (triggers off), whatever SQL
    /// reaches it.
    #[test]
    fn connection_is_defensive() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(&dir.path().join("t.vtoken"), &header()).unwrap();
        let _ = s.conn.execute_batch("PRAGMA writable_schema = ON");
        let r = s.conn.execute(
            "INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES('trigger',
             'x', 'counters', 0, 'CREATE TRIGGER x AFTER UPDATE ON counters BEGIN DELETE FROM counters; END')",
            [],
        );
        assert!(r.is_err(), "sqlite_schema written: {r:?}");
        // A trigger created through SQL does not fire on this connection.
        s.conn
            .execute_batch(
                "CREATE TRIGGER y AFTER UPDATE ON counters BEGIN DELETE FROM counters; END",
            )
            .unwrap();
        s.set_counter(PIN_COUNTERS[0], 1).unwrap();
        assert_eq!(s.pin_counter(PIN_COUNTERS[0]).unwrap(), Some(1));
        drop(s);
        // And the file carrying it no longer opens.
        match Store::open(&dir.path().join("t.vtoken")) {
            Err(Error::Corrupt(m)) => assert!(m.contains("trigger 'y'"), "{m}"),
            other => panic!("opened: {:?}", other.map(|_| ())),
        }
    }

    /// A missing PIN counter row is `None` (locked) and a try on it counts nothing.
    #[test]
    fn missing_pin_counter_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::create(&dir.path().join("t.vtoken"), &header()).unwrap();
        assert_eq!(
            s.pin_attempt(PIN_COUNTERS[0], 2).unwrap(),
            PinAttempt::Check(1)
        );
        assert_eq!(
            s.pin_attempt(PIN_COUNTERS[0], 2).unwrap(),
            PinAttempt::Check(2)
        );
        assert_eq!(
            s.pin_attempt(PIN_COUNTERS[0], 2).unwrap(),
            PinAttempt::Locked
        );
        assert_eq!(s.pin_counter(PIN_COUNTERS[0]).unwrap(), Some(2));
        s.conn
            .execute("DELETE FROM counters WHERE name = ?1", [PIN_COUNTERS[1]])
            .unwrap();
        assert_eq!(s.pin_counter(PIN_COUNTERS[1]).unwrap(), None);
        assert_eq!(
            s.pin_attempt(PIN_COUNTERS[1], 10).unwrap(),
            PinAttempt::Locked
        );
    }

    /// A file from before the counter rows were written at creation: a token
    /// whose SO never logged in gets its SO row (at 0) once; with a user PIN set,
    /// a missing row stays missing (only a deletion removes it), i.e. locked.
    #[test]
    fn old_files_get_their_counter_rows_once() {
        for with_user in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.vtoken");
            let mut h = header();
            h.ext.clear();
            if with_user {
                h.user = Some(h.so.clone());
            }
            let s = Store::create(&path, &h).unwrap();
            s.conn.execute("DELETE FROM counters", []).unwrap();
            drop(s);
            let mut s = Store::open(&path).unwrap();
            s.upgrade_pin_counters().unwrap();
            assert!(s.header().unwrap().ext.contains_key(PIN_COUNTERS_MARK));
            let so = s.pin_counter(PIN_COUNTERS[1]).unwrap();
            assert_eq!(so, if with_user { None } else { Some(0) });
            // Marked: deleting the row now reads as locked.
            s.conn.execute("DELETE FROM counters", []).unwrap();
            drop(s);
            let mut s = Store::open(&path).unwrap();
            s.upgrade_pin_counters().unwrap();
            assert_eq!(s.pin_counter(PIN_COUNTERS[1]).unwrap(), None);
        }
    }
}
