//! The CA's SQLite database: every issued certificate (published by token serial, E8)
//! and an audit log of every request the CA saw, accepted or refused.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// File name of the database in a CA directory.
pub const DB_FILE: &str = "ca.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS certs (
    id           INTEGER PRIMARY KEY,
    cert_serial  TEXT NOT NULL UNIQUE,
    token_serial TEXT NOT NULL,
    spki_sha256  TEXT NOT NULL,
    usage        TEXT NOT NULL,
    cert         BLOB NOT NULL,
    issued_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS certs_by_token ON certs (token_serial, spki_sha256, usage);
CREATE TABLE IF NOT EXISTS requests (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    token_serial TEXT NOT NULL,
    status       INTEGER NOT NULL,
    outcome      TEXT NOT NULL
);
";

/// A certificate as stored.
pub struct IssuedCert {
    /// Certificate serial number, upper-case hex.
    pub cert_serial: String,
    /// Token serial from the subject.
    pub token_serial: String,
    /// Hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub spki_sha256: String,
    /// `device`, `client` or `signing`.
    pub usage: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// Open connection to the CA database.
pub struct Store {
    conn: Connection,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Open (creating if needed) the database at `path`, in WAL mode.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// The certificate already issued for this token, key and usage, if any
    /// (re-enrollment returns it: an interrupted batch can be rerun).
    pub fn find(
        &self,
        token_serial: &str,
        spki_sha256: &str,
        usage: &str,
    ) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT cert FROM certs WHERE token_serial = ?1 AND spki_sha256 = ?2 AND usage = ?3
                 ORDER BY id DESC LIMIT 1",
                params![token_serial, spki_sha256, usage],
                |r| r.get(0),
            )
            .optional()
    }

    /// Record a new certificate.
    pub fn insert(&self, c: &IssuedCert) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO certs (cert_serial, token_serial, spki_sha256, usage, cert, issued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                c.cert_serial,
                c.token_serial,
                c.spki_sha256,
                c.usage,
                c.der,
                now()
            ],
        )?;
        Ok(())
    }

    /// The newest certificate published for a token serial (case-insensitive).
    pub fn latest(&self, token_serial: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT cert FROM certs WHERE upper(token_serial) = upper(?1)
                 ORDER BY id DESC LIMIT 1",
                params![token_serial],
                |r| r.get(0),
            )
            .optional()
    }

    /// Append to the audit log.
    pub fn log_request(
        &self,
        token_serial: &str,
        status: u16,
        outcome: &str,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO requests (at, token_serial, status, outcome) VALUES (?1, ?2, ?3, ?4)",
            params![now(), token_serial, status, outcome],
        )?;
        Ok(())
    }

    /// Number of certificates issued so far.
    pub fn cert_count(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM certs", [], |r| r.get(0))
    }
}
