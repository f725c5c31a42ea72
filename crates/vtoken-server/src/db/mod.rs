//! One storage layer under every server role, two backends (issue 21): SQLite, the
//! embedded default (one file per role in the role's directory, the layout the roles
//! always had), and PostgreSQL (`--database postgres://...`), which several server
//! instances share.
//!
//! Shape: a role writes its SQL once, with `$1, $2, ...` placeholders and the
//! statements both dialects accept (`INSERT ... ON CONFLICT DO NOTHING`,
//! `... RETURNING id`, `upper()`, `LIMIT`), against [`Tx`]; where the dialects differ
//! (schema DDL, sequences, locks) it asks [`Tx::dialect`]. Values cross the layer as
//! [`Value`] (64-bit integers, text, bytes, NULL): every integer column is `BIGINT` on
//! PostgreSQL, so an `i64` binds everywhere.
//!
//! Every call runs in a transaction ([`Db::tx`]): on SQLite one `BEGIN IMMEDIATE`
//! transaction on the role's single connection (writers are serialised, as before);
//! on PostgreSQL a pooled connection, READ COMMITTED with the explicit locks the role
//! takes, or SERIALIZABLE retried on a serialization failure ([`Mode`]).
//!
//! Schema: versioned [`Migration`]s per role, each in both dialects, applied on open
//! in one transaction; the version lives in the role's `schema_version` table, and a
//! database newer than this binary is refused ([`Error::TooNew`]). On PostgreSQL each
//! role has its own schema (`ca`, ...), so the roles can share one database.

pub mod postgres;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A value bound to a placeholder or read from a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (`INTEGER` / `BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (`BLOB` / `BYTEA`).
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u16> for Value {
    fn from(v: u16) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}

impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Value {
        Value::Blob(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// The placeholders' values: `params![a, b]` is `&[Value::from(a), Value::from(b)]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::db::Value::from($v)),*][..]
    };
}
pub(crate) use params;

/// One result row.
#[derive(Debug)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| Error::Data(format!("no column {i}")))
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            v => Err(Error::Data(format!(
                "column {i}: integer expected, got {v:?}"
            ))),
        }
    }

    /// Column `i` as an integer or NULL.
    #[cfg(test)]
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String> {
        match self.at(i)? {
            Value::Text(v) => Ok(v.clone()),
            v => Err(Error::Data(format!("column {i}: text expected, got {v:?}"))),
        }
    }

    /// Column `i` as bytes.
    pub fn blob(&self, i: usize) -> Result<Vec<u8>> {
        match self.at(i)? {
            Value::Blob(v) => Ok(v.clone()),
            v => Err(Error::Data(format!(
                "column {i}: bytes expected, got {}",
                match v {
                    Value::Null => "NULL",
                    Value::Int(_) => "an integer",
                    Value::Text(_) => "text",
                    Value::Blob(_) => "bytes",
                }
            ))),
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite said no.
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    /// PostgreSQL said no (message with its SQLSTATE).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// No database connection (PostgreSQL down or unreachable, the connection lost
    /// mid-transaction, the pool exhausted): nothing of the transaction was applied.
    #[error("database unavailable: {0} (nothing was changed; retry when it is back)")]
    Unavailable(String),
    /// A unique key already holds this value.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// A concurrent transaction conflicted (SERIALIZABLE); [`Db::tx`] retries these.
    #[error("serialization conflict: {0}")]
    Conflict(String),
    /// The database was written by a newer vtoken-server.
    #[error(
        "the {role} database has schema version {found}, newer than this vtoken-server \
         (it knows up to {known}): run the newer vtoken-server, or restore a backup \
         made for this version"
    )]
    TooNew {
        /// The role (`ca`, ...).
        role: &'static str,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// A database URL or path that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A column of an unexpected type (a damaged or foreign database).
    #[error("unexpected data: {0}")]
    Data(String),
    /// A failure of the role's own work inside a transaction (rolled back).
    #[error("{0}")]
    Other(String),
}

/// Results of this layer.
pub type Result<T> = std::result::Result<T, Error>;

/// Which SQL dialect a transaction speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (bundled).
    Sqlite,
    /// PostgreSQL (15 tested).
    Postgres,
}

/// The isolation a transaction needs. SQLite gives every transaction full isolation
/// (one writer at a time), so the mode matters on PostgreSQL only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// READ COMMITTED: single statements that are atomic on their own, or steps that
    /// take explicit locks (advisory locks, `SELECT ... FOR UPDATE`) before reading.
    ReadCommitted,
    /// SERIALIZABLE: read-then-write steps without explicit locks; a serialization
    /// failure rolls back and the whole step is retried.
    Serializable,
}

/// The statements of one transaction.
pub trait Tx {
    /// The dialect of this backend.
    fn dialect(&self) -> Dialect;
    /// Run one statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Run one query; its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Run several statements without parameters (migrations).
    fn batch(&mut self, sql: &str) -> Result<()>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always returns one.
    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| Error::Data(format!("no row from {sql}")))
    }
}

/// One schema step, in the dialect's SQL or as code (e.g. SQLite's upgrade of a
/// database made before versioning).
pub enum Step {
    /// Statements run as one batch.
    Sql(&'static str),
    /// Code run in the migration's transaction.
    Code(fn(&mut dyn Tx) -> Result<()>),
}

/// Schema version `version` of a role, in both dialects.
pub struct Migration {
    /// 1, 2, ...: applied in order, each once.
    pub version: i64,
    /// The step on SQLite.
    pub sqlite: Step,
    /// The step on PostgreSQL.
    pub postgres: Step,
}

/// A role's name (its PostgreSQL schema) and its migrations, oldest first.
pub struct Role {
    /// `ca`, `rks`, `bank`: a lower-case SQL identifier.
    pub name: &'static str,
    /// Versions 1..=N in order.
    pub migrations: &'static [Migration],
}

impl Role {
    /// The newest schema version this binary knows.
    pub fn latest(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.version)
    }
}

/// Where a role keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user[:password]@host[:port]/db`, or
    /// `postgres:///db?host=/run/postgresql` for a Unix socket).
    Postgres(String),
}

impl Target {
    /// The `--database` value when given (a `postgres://` or `postgresql://` URL, or a
    /// `sqlite://PATH`), else the role's SQLite file `default_file` (the default).
    pub fn resolve(database: Option<&str>, default_file: &Path) -> Result<Target> {
        let Some(d) = database.map(str::trim).filter(|d| !d.is_empty()) else {
            return Ok(Target::Sqlite(default_file.to_path_buf()));
        };
        if d.starts_with("postgres://") || d.starts_with("postgresql://") {
            return Ok(Target::Postgres(d.to_string()));
        }
        if let Some(path) = d.strip_prefix("sqlite://") {
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        Err(Error::Config(format!(
            "--database {d:?}: give a postgres://USER@HOST:PORT/DB URL or sqlite://PATH \
             (without --database the role's SQLite file is used)"
        )))
    }
}

/// Where the role keeps its state (issue 21): its SQLite file (default) or PostgreSQL.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DatabaseArgs {
    /// The role's database: a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST:PORT/DB;
    /// several server instances may share it) or sqlite://PATH [default: the role's
    /// SQLite file in --dir]. Prefer the variable to keep a password off the command
    /// line.
    #[arg(
        long,
        value_name = "URL",
        env = "VTOKEN_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

enum Inner {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Pg),
}

/// A role's database, migrated to this binary's schema.
pub struct Db {
    inner: Inner,
    describe: String,
    /// Transactions run through [`Db::tx`] and the wall time spent in them (waits
    /// for SQLite's writer lock or a pooled connection included), reported when the
    /// database is closed: the database's share of a request in `vtoken-load`.
    txs: AtomicU64,
    tx_nanos: AtomicU64,
}

/// The tracing target of the line [`Db`] logs (at debug level) when it is closed:
/// `VTOKEN_LOG=warn,vtoken_db_stats=debug` shows it alone.
pub const STATS_TARGET: &str = "vtoken_db_stats";

impl Drop for Db {
    fn drop(&mut self) {
        tracing::debug!(
            target: STATS_TARGET,
            transactions = self.txs.load(Ordering::Relaxed),
            seconds = self.tx_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            "database time"
        );
    }
}

impl Db {
    /// Open `target` for `role`, creating it if needed, and apply the role's pending
    /// migrations; refused if the database is newer than this binary.
    pub fn open(target: &Target, role: &Role) -> Result<Db> {
        let db = match target {
            Target::Sqlite(path) => Db {
                inner: Inner::Sqlite(sqlite::Sqlite::open(path)?),
                describe: format!("SQLite {}", path.display()),
                txs: AtomicU64::new(0),
                tx_nanos: AtomicU64::new(0),
            },
            Target::Postgres(url) => {
                let pg = postgres::Pg::connect(url, role.name)?;
                Db {
                    describe: format!("PostgreSQL {} (schema {})", pg.describe(), role.name),
                    inner: Inner::Postgres(pg),
                    txs: AtomicU64::new(0),
                    tx_nanos: AtomicU64::new(0),
                }
            }
        };
        db.migrate(role)?;
        Ok(db)
    }

    /// Which database this is, for logs and errors (no password).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Run `f` in one transaction: committed if it returns `Ok`, rolled back
    /// otherwise. In [`Mode::Serializable`] on PostgreSQL, `f` runs again after a
    /// serialization failure (so it must not have effects outside the database that
    /// matter twice).
    pub fn tx<T>(&self, mode: Mode, f: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let r = match &self.inner {
            Inner::Sqlite(s) => s.tx(f),
            Inner::Postgres(p) => p.tx(mode, f),
        };
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.txs.fetch_add(1, Ordering::Relaxed);
        self.tx_nanos.fetch_add(nanos, Ordering::Relaxed);
        r
    }

    /// Whether the database answers now (`/readyz`).
    pub fn ping(&self) -> Result<()> {
        self.query("SELECT 1", &[]).map(drop)
    }

    /// The PostgreSQL pool's state (none on SQLite).
    pub fn pool_status(&self) -> Option<crate::ops::PoolStatus> {
        match &self.inner {
            Inner::Sqlite(_) => None,
            Inner::Postgres(p) => Some(p.status()),
        }
    }

    /// One statement in its own transaction.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.tx(Mode::ReadCommitted, |t| t.execute(sql, params))
    }

    /// One query in its own transaction.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.tx(Mode::ReadCommitted, |t| t.query(sql, params))
    }

    /// The first row of one query, if any.
    pub fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        self.tx(Mode::ReadCommitted, |t| t.query_opt(sql, params))
    }

    /// The schema version recorded in the database.
    #[cfg(test)]
    pub fn schema_version(&self) -> Result<i64> {
        self.tx(Mode::ReadCommitted, |t| {
            t.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
                .int(0)
        })
    }

    /// Bring the schema to the role's latest version, in one transaction. On
    /// PostgreSQL an advisory lock makes instances starting together migrate one
    /// after the other (the second finds nothing left to do).
    fn migrate(&self, role: &Role) -> Result<()> {
        self.tx(Mode::ReadCommitted, |t| {
            if t.dialect() == Dialect::Postgres {
                t.query(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    params![format!("vtoken schema {}", role.name)],
                )?;
                t.batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", role.name))?;
            }
            t.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
            let found = t
                .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
                .int(0)?;
            let known = role.latest();
            if found > known {
                return Err(Error::TooNew {
                    role: role.name,
                    found,
                    known,
                });
            }
            for m in role.migrations.iter().filter(|m| m.version > found) {
                let step = match t.dialect() {
                    Dialect::Sqlite => &m.sqlite,
                    Dialect::Postgres => &m.postgres,
                };
                match step {
                    Step::Sql(sql) => t.batch(sql)?,
                    Step::Code(f) => f(t)?,
                }
                tracing::info!(role = role.name, version = m.version, "schema migrated");
            }
            if found < known {
                t.execute("DELETE FROM schema_version", &[])?;
                t.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    params![known],
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_option_picks_the_backend() {
        let file = Path::new("/srv/ca/ca.db");
        assert_eq!(
            Target::resolve(None, file).unwrap(),
            Target::Sqlite(file.into())
        );
        assert_eq!(
            Target::resolve(Some(" "), file).unwrap(),
            Target::Sqlite(file.into())
        );
        assert_eq!(
            Target::resolve(Some("postgresql://u@h/db"), file).unwrap(),
            Target::Postgres("postgresql://u@h/db".into())
        );
        assert_eq!(
            Target::resolve(Some("sqlite:///tmp/x.db"), file).unwrap(),
            Target::Sqlite("/tmp/x.db".into())
        );
        let e = Target::resolve(Some("mysql://h/db"), file).unwrap_err();
        assert!(e.to_string().contains("postgres://"), "{e}");
    }

    const ROLE: Role = Role {
        name: "t",
        migrations: &[
            Migration {
                version: 1,
                sqlite: Step::Sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"),
                postgres: Step::Sql("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)"),
            },
            Migration {
                version: 2,
                sqlite: Step::Sql("ALTER TABLE t ADD COLUMN n INTEGER"),
                postgres: Step::Sql("ALTER TABLE t ADD COLUMN n BIGINT"),
            },
        ],
    };

    #[test]
    fn sqlite_migrates_once_rolls_back_failures_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Sqlite(dir.path().join("t.db"));
        let db = Db::open(&target, &ROLE).unwrap();
        assert_eq!(db.schema_version().unwrap(), 2);
        db.execute("INSERT INTO t (v, n) VALUES ($1, $2)", params!["a", 1i64])
            .unwrap();
        // A failing step leaves nothing of the transaction.
        let r: Result<()> = db.tx(Mode::ReadCommitted, |t| {
            t.execute("INSERT INTO t (v, n) VALUES ($1, $2)", params!["b", 2i64])?;
            Err(Error::Other("refused".into()))
        });
        assert!(matches!(r, Err(Error::Other(_))));
        drop(db);
        // Opened again: nothing migrated twice, the data kept.
        let db = Db::open(&target, &ROLE).unwrap();
        let rows = db.query("SELECT v, n FROM t ORDER BY id", &[]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].text(0).unwrap(), "a");
        assert_eq!(rows[0].opt_int(1).unwrap(), Some(1));
        db.execute("UPDATE schema_version SET version = 3", &[])
            .unwrap();
        drop(db);
        match Db::open(&target, &ROLE) {
            Err(Error::TooNew {
                found: 3, known: 2, ..
            }) => {}
            other => panic!("{:?}", other.err()),
        }
    }
}
