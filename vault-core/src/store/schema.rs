//! The token file's layout (SPEC T1: each token one file; T5: several processes on
//! it): creating a file, the settings of every connection, the schema check that
//! refuses a file carrying code, format migrations, and wiping a file for
//! re-initialization.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use super::counters::{counter_ad, PIN_COUNTERS};
use super::header::{pubkey_encode, ser, Header, HEADER_AD};
use super::seal::{self, Key32};
use super::Store;
use crate::error::{Error, Part, Result, StoreError};

/// Current file format version. Bump it with a migration in `MIGRATIONS`.
pub const FORMAT_VERSION: u32 = 1;

/// Migrations: `MIGRATIONS[i]` upgrades a file from version `i + 1` to `i + 2`.
/// Version 1 is the first format, so the list is empty; the hook is exercised by
/// [`Store::open`] whenever a file's version is older than [`FORMAT_VERSION`].
pub(super) type Migration = fn(&rusqlite::Transaction<'_>) -> Result<()>;
pub(super) const MIGRATIONS: &[Migration] = &[];

/// Every connection to a token file: the file is not trusted to carry code. With
/// `trusted_schema=OFF` SQL functions with side effects cannot run from the schema
/// (views, triggers, defaults, index expressions); defensive mode refuses
/// `PRAGMA writable_schema` and other ways of corrupting the file through SQL;
/// triggers are off (the token has none; [`check_schema`] refuses files with one).
pub(super) fn configure(conn: &Connection) -> Result<()> {
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
pub(super) fn check_schema(conn: &Connection) -> Result<()> {
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
            return Err(Error::corrupt(
                Part::Schema,
                format!(
                    "unexpected {ty} '{name}' in the token file's schema (a token file holds \
                 only tables and indexes; triggers and views are refused)"
                ),
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Creates a new token file at `path` (it must not exist) holding `header`.
    pub fn create(path: &Path, header: &Header) -> Result<Store> {
        if path.exists() {
            return Err(Error::Store(StoreError::Exists(path.to_path_buf())));
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
        std::fs::hard_link(&tmp, path).map_err(|source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        std::fs::remove_file(&tmp)?;
        Store::open(path)
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
}
