//! The CA's database (SQLite `ca.db` in the CA directory, or PostgreSQL schema `ca`):
//! every issued certificate (published by token serial, E8), the registered operators
//! (issuing stations and relays) and their policy, the nonces of recent signed requests
//! (replay protection), and a bounded audit log of the requests the CA saw, accepted or
//! refused.
//!
//! Several CA instances may share one PostgreSQL database; what keeps them consistent
//! is written at each step ([`Store::issue_once`] is the one with a read-then-write).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{params, Db, Dialect, Error, Migration, Mode, Role, Row, Step, Target, Tx};

/// File name of the database in a CA directory.
pub const DB_FILE: &str = "ca.db";

/// The CA's schema versions. Version 1 is the schema the CA had before versioning
/// (SQLite: created or completed in place, so existing `ca.db` files keep their data);
/// version 2 adds the issuance counter the certificate serial numbers are made from.
pub const ROLE: Role = Role {
    name: "ca",
    migrations: &[
        Migration {
            version: 1,
            sqlite: Step::Code(sqlite_v1),
            postgres: Step::Sql(PG_V1),
        },
        Migration {
            version: 2,
            sqlite: Step::Sql(
                "CREATE TABLE IF NOT EXISTS cert_number (
                     id   INTEGER PRIMARY KEY CHECK (id = 1),
                     last INTEGER NOT NULL
                 );
                 INSERT INTO cert_number (id, last) VALUES (1, 0) ON CONFLICT DO NOTHING;",
            ),
            // A sequence: nextval() never blocks another instance and never returns a
            // value twice (a rolled-back issuance leaves a gap, never a reuse).
            postgres: Step::Sql("CREATE SEQUENCE IF NOT EXISTS cert_number"),
        },
    ],
};

const PG_V1: &str = "
CREATE TABLE certs (
    id           BIGSERIAL PRIMARY KEY,
    cert_serial  TEXT NOT NULL UNIQUE,
    token_serial TEXT NOT NULL,
    spki_sha256  TEXT NOT NULL,
    usage        TEXT NOT NULL,
    cert         BYTEA NOT NULL,
    issued_at    BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX certs_by_token ON certs (token_serial, spki_sha256, usage);
CREATE INDEX certs_by_upper_token ON certs (upper(token_serial));
CREATE TABLE requests (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    token_serial TEXT NOT NULL,
    status       BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    client       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE operators (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    fingerprint  TEXT NOT NULL UNIQUE,
    cert         BYTEA NOT NULL,
    profiles     TEXT NOT NULL,
    added_at     BIGINT NOT NULL
);
CREATE TABLE nonces (
    nonce        TEXT PRIMARY KEY,
    at           BIGINT NOT NULL
);
CREATE TABLE operator_certs (
    id           BIGSERIAL PRIMARY KEY,
    cert_serial  TEXT NOT NULL UNIQUE,
    token_serial TEXT NOT NULL,
    cert         BYTEA NOT NULL,
    issued_at    BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE TABLE operator_challenges (
    challenge    TEXT PRIMARY KEY,
    issued_at    BIGINT NOT NULL
);
";

/// SQLite version 1: the first schema, and the columns databases made by its first
/// form lack (a `ca.db` from before versioning opens with its data).
fn sqlite_v1(t: &mut dyn Tx) -> crate::db::Result<()> {
    t.batch(SQLITE_V1)?;
    for (table, column) in ADDED_COLUMNS {
        let name = column.split_whitespace().next().unwrap_or_default();
        let present = t
            .query_one(
                &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = $1"),
                params![name],
            )?
            .int(0)?
            > 0;
        if !present {
            t.batch(&format!("ALTER TABLE {table} ADD COLUMN {column}"))?;
        }
    }
    Ok(())
}

const SQLITE_V1: &str = "
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

/// Columns a database made by the first schema lacks; version 1 adds them, so every
/// SQLite database the server opens has the full schema.
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

/// What [`Store::issue_once`] decided for a token, key and usage.
pub enum Issue {
    /// Re-enrollment: the live certificate already issued for them.
    Existing(Vec<u8>),
    /// The token holds a live certificate for another key (its serial).
    OtherKey(String),
    /// A new certificate, stored.
    Issued {
        /// The certificate, DER.
        der: Vec<u8>,
        /// Its serial number, upper-case hex.
        cert_serial: String,
    },
}

/// The CA database.
pub struct Store {
    db: Db,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn operator_row(r: &Row) -> crate::db::Result<Operator> {
    let profiles = r.text(3)?;
    Ok(Operator {
        name: r.text(0)?,
        fingerprint: r.text(1)?,
        cert: r.blob(2)?,
        // An unreadable profile grants nothing (fail closed).
        profiles: profiles.split(',').filter_map(|p| p.parse().ok()).collect(),
    })
}

impl Store {
    /// Open (creating if needed) the CA database at `target` and bring its schema to
    /// this binary's version.
    pub fn open(target: &Target) -> crate::db::Result<Store> {
        Ok(Store {
            db: Db::open(target, &ROLE)?,
        })
    }

    /// Which database this is (for logs).
    pub fn describe(&self) -> &str {
        self.db.describe()
    }

    /// The database layer (readiness, pool state).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Register an operator. Fails ([`Error::Duplicate`]) if the name or certificate
    /// is already registered.
    pub fn add_operator(&self, op: &Operator) -> crate::db::Result<()> {
        let profiles: Vec<&str> = op.profiles.iter().map(|u| u.as_str()).collect();
        self.db.execute(
            "INSERT INTO operators (name, fingerprint, cert, profiles, added_at)
             VALUES ($1, $2, $3, $4, $5)",
            params![
                &op.name,
                &op.fingerprint,
                &op.cert,
                profiles.join(","),
                now()
            ],
        )?;
        Ok(())
    }

    /// The operator registered with this certificate fingerprint.
    pub fn operator_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> crate::db::Result<Option<Operator>> {
        self.db
            .query_opt(
                "SELECT name, fingerprint, cert, profiles FROM operators WHERE fingerprint = $1",
                params![fingerprint],
            )?
            .as_ref()
            .map(operator_row)
            .transpose()
    }

    /// Every registered operator, by name.
    pub fn operators(&self) -> crate::db::Result<Vec<Operator>> {
        self.db
            .query(
                "SELECT name, fingerprint, cert, profiles FROM operators ORDER BY name",
                &[],
            )?
            .iter()
            .map(operator_row)
            .collect()
    }

    /// Unregister an operator by name or fingerprint; returns how many were removed.
    pub fn remove_operator(&self, name_or_fingerprint: &str) -> crate::db::Result<u64> {
        self.db.execute(
            "DELETE FROM operators WHERE name = $1 OR fingerprint = lower($1)",
            params![name_or_fingerprint],
        )
    }

    /// Record a request nonce; `false` if it was seen before (a replay). Nonces older
    /// than `window` seconds are forgotten: requests that old fail the time check.
    /// Across instances the primary key decides: of two inserts of one nonce, the
    /// second waits for the first and then inserts nothing.
    pub fn fresh_nonce(&self, nonce: &str, window: u64) -> crate::db::Result<bool> {
        let t = now();
        self.db.tx(Mode::ReadCommitted, |tx| {
            tx.execute(
                "DELETE FROM nonces WHERE at < $1",
                params![t - 2 * window as i64],
            )?;
            let n = tx.execute(
                "INSERT INTO nonces (nonce, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                params![nonce, t],
            )?;
            Ok(n == 1)
        })
    }

    /// Revoke the certificates whose certificate serial or token serial is `serial`
    /// (case-insensitive); returns the certificate serials revoked. One statement per
    /// table: a concurrent revocation of the same certificate reports it once.
    pub fn revoke(&self, serial: &str) -> crate::db::Result<Vec<String>> {
        self.db.tx(Mode::ReadCommitted, |t| {
            let mut serials = Vec::new();
            // Operator certificates (E1) are kept apart from the tokens' certificates
            // (never published, never counted as issued to a token) but revoked alike.
            for table in ["certs", "operator_certs"] {
                let rows = t.query(
                    &format!(
                        "UPDATE {table} SET revoked_at = $1 WHERE revoked_at IS NULL AND
                         (upper(cert_serial) = upper($2) OR upper(token_serial) = upper($2))
                         RETURNING cert_serial, id"
                    ),
                    params![now(), serial],
                )?;
                let mut rows: Vec<(i64, String)> = rows
                    .iter()
                    .map(|r| Ok((r.int(1)?, r.text(0)?)))
                    .collect::<crate::db::Result<_>>()?;
                rows.sort();
                serials.extend(rows.into_iter().map(|(_, s)| s));
            }
            Ok(serials)
        })
    }

    /// E7/E8, one token's decision in one transaction: the live certificate already
    /// issued for this token, key and usage (re-enrollment returns it: an interrupted
    /// batch can be rerun); else a refusal if the token holds a live certificate for
    /// another key; else the next issuance number, the certificate `sign` makes with
    /// it (returning the DER and its serial), stored.
    ///
    /// Isolation: on PostgreSQL READ COMMITTED plus a transaction-scoped advisory lock
    /// on the token serial, taken before the reads, so two instances deciding for the
    /// same token run one after the other (the second finds the first's certificate),
    /// while different tokens never wait for each other. A row lock cannot do this (the
    /// row to guard does not exist yet) and SERIALIZABLE would make the loser sign
    /// again after its retry. On SQLite the IMMEDIATE transaction is the lock.
    pub fn issue_once(
        &self,
        token_serial: &str,
        spki_sha256: &str,
        usage: &str,
        sign: impl Fn(u64) -> crate::db::Result<(Vec<u8>, String)>,
    ) -> crate::db::Result<Issue> {
        self.db.tx(Mode::ReadCommitted, |t| {
            if t.dialect() == Dialect::Postgres {
                t.query(
                    "SELECT pg_advisory_xact_lock(hashtextextended('vtoken token ' || upper($1), 0))",
                    params![token_serial],
                )?;
            }
            if let Some(r) = t.query_opt(
                "SELECT cert FROM certs WHERE token_serial = $1 AND spki_sha256 = $2 AND usage = $3
                 AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
                params![token_serial, spki_sha256, usage],
            )? {
                return Ok(Issue::Existing(r.blob(0)?));
            }
            // One live identity per token: a certificate for a new key replaces nothing
            // silently; the old one must be revoked first.
            if let Some(r) = t.query_opt(
                "SELECT cert_serial FROM certs WHERE upper(token_serial) = upper($1)
                 AND spki_sha256 != $2 AND revoked_at IS NULL ORDER BY id LIMIT 1",
                params![token_serial, spki_sha256],
            )? {
                return Ok(Issue::OtherKey(r.text(0)?));
            }
            let number = next_number(t)?;
            let (der, cert_serial) = sign(number)?;
            t.execute(
                "INSERT INTO certs (cert_serial, token_serial, spki_sha256, usage, cert, issued_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                params![&cert_serial, token_serial, spki_sha256, usage, &der, now()],
            )?;
            Ok(Issue::Issued { der, cert_serial })
        })
    }

    /// The newest certificate published for a token serial (case-insensitive; E8).
    pub fn latest(&self, token_serial: &str) -> crate::db::Result<Option<Vec<u8>>> {
        self.db
            .query_opt(
                "SELECT cert FROM certs WHERE upper(token_serial) = upper($1)
                 AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
                params![token_serial],
            )?
            .map(|r| r.blob(0))
            .transpose()
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
    ) -> crate::db::Result<()> {
        self.db.tx(Mode::ReadCommitted, |t| {
            let last = t
                .query_one(
                    "INSERT INTO requests (at, token_serial, client, status, outcome)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    params![now(), token_serial, client, status, outcome],
                )?
                .int(0)?;
            t.execute(
                "DELETE FROM requests WHERE id <= $1",
                params![last - keep as i64],
            )?;
            Ok(())
        })
    }

    /// Record a fresh operator-authorisation challenge (E1, step 201); challenges
    /// older than `max_age` seconds are forgotten.
    pub fn new_challenge(&self, challenge: &str, max_age: u64) -> crate::db::Result<()> {
        let t = now();
        self.db.tx(Mode::ReadCommitted, |tx| {
            tx.execute(
                "DELETE FROM operator_challenges WHERE issued_at < $1",
                params![t - max_age as i64],
            )?;
            tx.execute(
                "INSERT INTO operator_challenges (challenge, issued_at) VALUES ($1, $2)",
                params![challenge, t],
            )?;
            Ok(())
        })
    }

    /// Use up a challenge: `true` once for a challenge issued within `max_age`
    /// seconds; `false` for an unknown, expired or already answered one (a replay).
    /// One DELETE decides, so two answers racing each other (on any instances)
    /// cannot both win.
    pub fn take_challenge(&self, challenge: &str, max_age: u64) -> crate::db::Result<bool> {
        let n = self.db.execute(
            "DELETE FROM operator_challenges WHERE challenge = $1 AND issued_at >= $2",
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
    ) -> crate::db::Result<()> {
        self.db.execute(
            "INSERT INTO operator_certs (cert_serial, token_serial, cert, issued_at)
             VALUES ($1, $2, $3, $4)",
            params![cert_serial, token_serial, der, now()],
        )?;
        Ok(())
    }

    /// Whether the operator certificate with this serial was revoked (`ca revoke`).
    pub fn is_revoked(&self, cert_serial: &str) -> crate::db::Result<bool> {
        Ok(self
            .db
            .query_opt(
                "SELECT count(*) FROM operator_certs WHERE upper(cert_serial) = upper($1)
                 AND revoked_at IS NOT NULL",
                params![cert_serial],
            )?
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0)
            > 0)
    }

    /// Number of certificates issued so far.
    pub fn cert_count(&self) -> crate::db::Result<u64> {
        let n = self
            .db
            .query_opt("SELECT count(*) FROM certs", &[])?
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0);
        Ok(n as u64)
    }
}

/// The next issuance number: the PostgreSQL sequence, or SQLite's counter row
/// (inside the IMMEDIATE transaction, so no two issuances read the same value).
fn next_number(t: &mut dyn Tx) -> crate::db::Result<u64> {
    let n = match t.dialect() {
        Dialect::Postgres => t.query_one("SELECT nextval('cert_number')", &[])?.int(0)?,
        Dialect::Sqlite => t
            .query_one(
                "UPDATE cert_number SET last = last + 1 WHERE id = 1 RETURNING last",
                &[],
            )?
            .int(0)?,
    };
    u64::try_from(n).map_err(|_| Error::Data(format!("issuance number {n}")))
}
