//! The CA's SQLite database: every issued certificate (published by token serial, E8),
//! the registered operators (issuing stations and relays) and their policy, the nonces
//! of recent signed requests (replay protection), and a bounded audit log of the
//! requests the CA saw, accepted or refused.

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
CREATE TABLE IF NOT EXISTS operators (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    fingerprint  TEXT NOT NULL UNIQUE,
    cert         BLOB NOT NULL,
    profiles     TEXT NOT NULL,
    added_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce        TEXT PRIMARY KEY,
    at           INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS operator_certs (
    id           INTEGER PRIMARY KEY,
    cert_serial  TEXT NOT NULL UNIQUE,
    token_serial TEXT NOT NULL,
    cert         BLOB NOT NULL,
    issued_at    INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE TABLE IF NOT EXISTS operator_challenges (
    challenge    TEXT PRIMARY KEY,
    issued_at    INTEGER NOT NULL
);
";

/// Columns a database made by the first schema lacks; [`Store::open`] adds them, so
/// every database the server opens has the full schema.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("certs", "revoked_at INTEGER"),
    ("requests", "client TEXT NOT NULL DEFAULT ''"),
];

/// Requests kept in the audit log by default (older ones are deleted).
pub const DEFAULT_LOG_KEEP: u64 = 10_000;

/// A registered operator: who may ask for certificates, and which profiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// Unique name (for the log and `operator remove`).
    pub name: String,
    /// Hex SHA-256 of the certificate DER.
    pub fingerprint: String,
    /// The certificate, DER.
    pub cert: Vec<u8>,
    /// Profiles it may request; the first is its default.
    pub profiles: Vec<vtoken_pki::Usage>,
}

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
        for (table, column) in ADDED_COLUMNS {
            let name = column.split_whitespace().next().unwrap_or_default();
            let present: bool = conn.query_row(
                &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                params![name],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column}"))?;
            }
        }
        Ok(Store { conn })
    }

    /// Register an operator. Fails if the name or certificate is already registered.
    pub fn add_operator(&self, op: &Operator) -> rusqlite::Result<()> {
        let profiles: Vec<&str> = op.profiles.iter().map(|u| u.as_str()).collect();
        self.conn.execute(
            "INSERT INTO operators (name, fingerprint, cert, profiles, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![op.name, op.fingerprint, op.cert, profiles.join(","), now()],
        )?;
        Ok(())
    }

    fn operator_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Operator> {
        let profiles: String = r.get(3)?;
        Ok(Operator {
            name: r.get(0)?,
            fingerprint: r.get(1)?,
            cert: r.get(2)?,
            // An unreadable profile grants nothing (fail closed).
            profiles: profiles.split(',').filter_map(|p| p.parse().ok()).collect(),
        })
    }

    /// The operator registered with this certificate fingerprint.
    pub fn operator_by_fingerprint(&self, fingerprint: &str) -> rusqlite::Result<Option<Operator>> {
        self.conn
            .query_row(
                "SELECT name, fingerprint, cert, profiles FROM operators WHERE fingerprint = ?1",
                params![fingerprint],
                Self::operator_row,
            )
            .optional()
    }

    /// Every registered operator, by name.
    pub fn operators(&self) -> rusqlite::Result<Vec<Operator>> {
        let mut st = self
            .conn
            .prepare("SELECT name, fingerprint, cert, profiles FROM operators ORDER BY name")?;
        let rows = st.query_map([], Self::operator_row)?;
        rows.collect()
    }

    /// Unregister an operator by name or fingerprint; returns how many were removed.
    pub fn remove_operator(&self, name_or_fingerprint: &str) -> rusqlite::Result<usize> {
        self.conn.execute(
            "DELETE FROM operators WHERE name = ?1 OR fingerprint = lower(?1)",
            params![name_or_fingerprint],
        )
    }

    /// Record a request nonce; `false` if it was seen before (a replay). Nonces older
    /// than `window` seconds are forgotten: requests that old fail the time check.
    pub fn fresh_nonce(&self, nonce: &str, window: u64) -> rusqlite::Result<bool> {
        let t = now();
        self.conn.execute(
            "DELETE FROM nonces WHERE at < ?1",
            params![t - 2 * window as i64],
        )?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO nonces (nonce, at) VALUES (?1, ?2)",
            params![nonce, t],
        )?;
        Ok(n == 1)
    }

    /// The live (not revoked) certificates of a token for a key other than
    /// `spki_sha256`: their certificate serials.
    pub fn live_for_other_key(
        &self,
        token_serial: &str,
        spki_sha256: &str,
    ) -> rusqlite::Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT cert_serial FROM certs WHERE upper(token_serial) = upper(?1)
             AND spki_sha256 != ?2 AND revoked_at IS NULL ORDER BY id",
        )?;
        let rows = st.query_map(params![token_serial, spki_sha256], |r| r.get(0))?;
        rows.collect()
    }

    /// Revoke the certificates whose certificate serial or token serial is `serial`
    /// (case-insensitive); returns the certificate serials revoked.
    pub fn revoke(&self, serial: &str) -> rusqlite::Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT cert_serial FROM certs WHERE revoked_at IS NULL AND
             (upper(cert_serial) = upper(?1) OR upper(token_serial) = upper(?1)) ORDER BY id",
        )?;
        let serials: Vec<String> = st
            .query_map(params![serial], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for s in &serials {
            self.conn.execute(
                "UPDATE certs SET revoked_at = ?1 WHERE cert_serial = ?2",
                params![now(), s],
            )?;
        }
        // Operator certificates (E1) are kept apart from the tokens' certificates
        // (never published, never counted as issued to a token) but revoked alike.
        let mut st = self.conn.prepare(
            "SELECT cert_serial FROM operator_certs WHERE revoked_at IS NULL AND
             (upper(cert_serial) = upper(?1) OR upper(token_serial) = upper(?1)) ORDER BY id",
        )?;
        let ops: Vec<String> = st
            .query_map(params![serial], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for s in &ops {
            self.conn.execute(
                "UPDATE operator_certs SET revoked_at = ?1 WHERE cert_serial = ?2",
                params![now(), s],
            )?;
        }
        let mut serials = serials;
        serials.extend(ops);
        Ok(serials)
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
                 AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
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

    /// The newest certificate published for a token serial (case-insensitive; E8).
    pub fn latest(&self, token_serial: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT cert FROM certs WHERE upper(token_serial) = upper(?1)
                 AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
                params![token_serial],
                |r| r.get(0),
            )
            .optional()
    }

    /// Append to the audit log, keeping only the newest `keep` entries. `client` names
    /// who asked (operator name, or the peer address of an unauthenticated request).
    pub fn log_request(
        &self,
        token_serial: &str,
        client: &str,
        status: u16,
        outcome: &str,
        keep: u64,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO requests (at, token_serial, client, status, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), token_serial, client, status, outcome],
        )?;
        let last = self.conn.last_insert_rowid();
        self.conn.execute(
            "DELETE FROM requests WHERE id <= ?1",
            params![last - keep as i64],
        )?;
        Ok(())
    }

    /// Record a fresh operator-authorisation challenge (E1, step 201); challenges
    /// older than `max_age` seconds are forgotten.
    pub fn new_challenge(&self, challenge: &str, max_age: u64) -> rusqlite::Result<()> {
        let t = now();
        self.conn.execute(
            "DELETE FROM operator_challenges WHERE issued_at < ?1",
            params![t - max_age as i64],
        )?;
        self.conn.execute(
            "INSERT INTO operator_challenges (challenge, issued_at) VALUES (?1, ?2)",
            params![challenge, t],
        )?;
        Ok(())
    }

    /// Use up a challenge: `true` once for a challenge issued within `max_age`
    /// seconds; `false` for an unknown, expired or already answered one (a replay).
    /// One DELETE decides, so two answers racing each other cannot both win.
    pub fn take_challenge(&self, challenge: &str, max_age: u64) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM operator_challenges WHERE challenge = ?1 AND issued_at >= ?2",
            params![challenge, now() - max_age as i64],
        )?;
        Ok(n == 1)
    }

    /// Record an operator certificate the CA issued (`ca operator add --csr`), so
    /// `ca revoke` can revoke it.
    pub fn insert_operator_cert(
        &self,
        cert_serial: &str,
        token_serial: &str,
        der: &[u8],
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO operator_certs (cert_serial, token_serial, cert, issued_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![cert_serial, token_serial, der, now()],
        )?;
        Ok(())
    }

    /// Whether the operator certificate with this serial was revoked (`ca revoke`).
    pub fn is_revoked(&self, cert_serial: &str) -> rusqlite::Result<bool> {
        self.conn.query_row(
            "SELECT count(*) FROM operator_certs WHERE upper(cert_serial) = upper(?1)
             AND revoked_at IS NOT NULL",
            params![cert_serial],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )
    }

    /// Number of certificates issued so far.
    pub fn cert_count(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM certs", [], |r| r.get(0))
    }
}
