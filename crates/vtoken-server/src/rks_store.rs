//! The RKS's database (SPEC K1; SQLite `rks.db` in the RKS directory, or PostgreSQL
//! schema `rks` shared by several instances, see [`crate::db`]): the root and working key pairs, DIK1 records
//! by DSN, by production batch (a named list of DSNs) or by DSN range (one DIK1 for
//! many devices, as the patent's embodiments allow, ¶0049; DIK2 stays per device
//! since K3 diversifies by DSN), the queue of keys to deliver per DSN and the audit
//! log of every download step and every refusal. S306–S307 look a DSN up in that
//! order: its own record, then its batch, then its range.
//!
//! Secrets at rest (the two private keys, every DIK1 and every queued key value) are
//! sealed with AES-256-GCM under the directory's master key (`master.key`, 32 random
//! bytes, mode 0600), each with associated data naming what it is (`dik1 ‖ DSN`,
//! `tmk ‖ uid`, ...), so a value moved to another row does not open. Every instance
//! sharing a PostgreSQL database needs the same `master.key`. Every change is one
//! transaction. Exactly-once delivery (K5, S319–S321), on any number of instances: a
//! key is marked delivered by the device's acknowledgement in the one statement that
//! checks it was not ([`RksStore::set_delivered`]).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use serde::Serialize;
use vtoken_rks::crypto::{self, RootKey, WorkingKey};
use vtoken_rks::derive::DIK_LEN;
use vtoken_rks::server::Directory;
use vtoken_rks::tmk::{Tmk, TmkType};
use vtoken_rks::RksError;
use zeroize::Zeroizing;

use crate::db::{self, params, Db, Migration, Mode, Role, Row, Step, Target};

/// Database file in an RKS directory.
pub const DB_FILE: &str = "rks.db";
/// Master key file (seals the secrets in the database).
pub const MASTER_FILE: &str = "master.key";
/// The root public key RKS_RCRT_PK (SPKI PEM), given to the key-loading station.
pub const ROOT_FILE: &str = "root.pem";

/// The RKS's schema versions: 1 is the schema from before versioning (SQLite:
/// `CREATE ... IF NOT EXISTS`, so existing `rks.db` files open with their data).
pub const ROLE: Role = Role {
    name: "rks",
    migrations: &[Migration {
        version: 1,
        sqlite: Step::Sql(SCHEMA),
        postgres: Step::Sql(PG_V1),
    }],
};

const PG_V1: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE dik1 (dsn TEXT PRIMARY KEY, sealed BYTEA NOT NULL, added_at BIGINT NOT NULL);
CREATE TABLE dik1_range (
    first TEXT NOT NULL, last TEXT NOT NULL, sealed BYTEA NOT NULL,
    added_at BIGINT NOT NULL, PRIMARY KEY (first, last)
);
CREATE TABLE dik1_batch (name TEXT PRIMARY KEY, sealed BYTEA NOT NULL, added_at BIGINT NOT NULL);
CREATE TABLE dik1_batch_member (
    dsn TEXT PRIMARY KEY, batch TEXT NOT NULL REFERENCES dik1_batch(name)
);
CREATE INDEX dik1_batch_member_batch ON dik1_batch_member(batch);
CREATE TABLE queue (
    id            BIGSERIAL PRIMARY KEY,
    uid           TEXT NOT NULL UNIQUE,
    dsn           TEXT NOT NULL,
    label         TEXT NOT NULL,
    ckid          BYTEA NOT NULL,
    type          TEXT NOT NULL,
    usage         BIGINT NOT NULL,
    sealed        BYTEA NOT NULL,
    queued_at     BIGINT NOT NULL,
    delivered_at  BIGINT,
    session       TEXT
);
CREATE INDEX queue_by_dsn ON queue (dsn, delivered_at);
CREATE TABLE audit (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    dsn      TEXT NOT NULL,
    session  TEXT NOT NULL,
    ok       BIGINT NOT NULL,
    event    TEXT NOT NULL
);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dik1 (
    dsn       TEXT PRIMARY KEY,
    sealed    BLOB NOT NULL,
    added_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dik1_range (
    first     TEXT NOT NULL,
    last      TEXT NOT NULL,
    sealed    BLOB NOT NULL,
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (first, last)
);
CREATE TABLE IF NOT EXISTS dik1_batch (
    name      TEXT PRIMARY KEY,
    sealed    BLOB NOT NULL,
    added_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dik1_batch_member (
    dsn       TEXT PRIMARY KEY,
    batch     TEXT NOT NULL REFERENCES dik1_batch(name)
);
CREATE INDEX IF NOT EXISTS dik1_batch_member_batch ON dik1_batch_member(batch);
CREATE TABLE IF NOT EXISTS queue (
    id            INTEGER PRIMARY KEY,
    uid           TEXT NOT NULL UNIQUE,
    dsn           TEXT NOT NULL,
    label         TEXT NOT NULL,
    ckid          BLOB NOT NULL,
    type          TEXT NOT NULL,
    usage         INTEGER NOT NULL,
    sealed        BLOB NOT NULL,
    queued_at     INTEGER NOT NULL,
    delivered_at  INTEGER,
    session       TEXT
);
CREATE INDEX IF NOT EXISTS queue_by_dsn ON queue (dsn, delivered_at);
CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    dsn      TEXT NOT NULL,
    session  TEXT NOT NULL,
    ok       INTEGER NOT NULL,
    event    TEXT NOT NULL
);
";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn db_err(e: db::Error) -> String {
    match e {
        // The role's own refusal, carried out of a transaction.
        db::Error::Other(m) => m,
        e => format!("RKS database: {e}"),
    }
}

/// Writes `data` to a new file readable by its owner only; never overwrites.
pub fn write_new_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One line of `rks status`: a DSN, a DIK1 range (`kind` "range", `dsn`
/// "FIRST..LAST") or a DIK1 batch (`kind` "batch", `dsn` its name).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DsnStatus {
    /// "dsn", "range" or "batch".
    pub kind: &'static str,
    /// The DSN (or the range, or the batch name).
    pub dsn: String,
    /// Whether a DIK1 record exists for it (its own or a range's).
    pub dik1: bool,
    /// The range whose DIK1 serves this DSN (when it has no record of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dik1_range: Option<String>,
    /// The batch whose DIK1 serves this DSN (when it has no record of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dik1_batch: Option<String>,
    /// A batch's number of member DSNs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
    /// Keys queued and not delivered.
    pub queued: u64,
    /// Keys delivered.
    pub delivered: u64,
    /// Refusals in the audit log.
    pub refusals: u64,
    /// The last refusal, if any.
    pub last_refusal: Option<String>,
}

/// One audit log line.
#[derive(Debug, Serialize)]
pub struct AuditLine {
    /// Unix time.
    pub at: i64,
    /// The DSN ("?" when unknown).
    pub dsn: String,
    /// The session id, hex.
    pub session: String,
    /// Success event or refusal.
    pub ok: bool,
    /// What happened.
    pub event: String,
}

/// An opened RKS directory.
pub struct RksStore {
    db: Db,
    master: Zeroizing<[u8; 32]>,
}

fn one_blob(r: Option<Row>) -> Result<Option<Vec<u8>>, String> {
    r.map(|r| r.blob(0)).transpose().map_err(db_err)
}

fn one_text(r: Option<Row>) -> Result<Option<String>, String> {
    r.map(|r| r.text(0)).transpose().map_err(db_err)
}

impl RksStore {
    /// Creates an RKS in `dir`: master key, root and working RSA-2048 pairs (the root
    /// signs the working key), `root.pem`, the database (`database`: `--database`,
    /// default `rks.db` in `dir`). Never overwrites.
    pub fn init(dir: &Path, database: Option<&str>) -> Result<RksStore, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let target = Target::resolve(database, &dir.join(DB_FILE)).map_err(db_err)?;
        if let Target::Postgres(_) = target {
            // Refused before any file is written if that database holds an RKS.
            let db = Db::open(&target, &ROLE).map_err(db_err)?;
            if db
                .query_opt("SELECT 1 FROM meta WHERE name = 'root_key'", &[])
                .map_err(db_err)?
                .is_some()
            {
                return Err(format!(
                    "{} already holds an RKS; it is never overwritten (the other instances \
                     of this RKS need a copy of its directory: {MASTER_FILE} and {ROOT_FILE})",
                    db.describe()
                ));
            }
        }
        for f in [DB_FILE, MASTER_FILE, ROOT_FILE] {
            if dir.join(f).exists() {
                return Err(format!(
                    "{} already holds an RKS ({f} exists); it is never overwritten",
                    dir.display()
                ));
            }
        }
        let master = crypto::random(32).map_err(|e| e.to_string())?;
        write_new_private(&dir.join(MASTER_FILE), &master)?;
        let store = RksStore::open(dir, database)?;
        let root = RootKey::generate().map_err(|e| e.to_string())?;
        let working = WorkingKey::generate().map_err(|e| e.to_string())?;
        let working_spki = working.spki().map_err(|e| e.to_string())?;
        let sig = root
            .sign_working(&working_spki)
            .map_err(|e| e.to_string())?;
        let root_spki = root.spki().map_err(|e| e.to_string())?;
        let root_sealed = store.seal(b"root key", &root.to_pkcs8().map_err(|e| e.to_string())?)?;
        let working_sealed = store.seal(
            b"working key",
            &working.to_pkcs8().map_err(|e| e.to_string())?,
        )?;
        store
            .db
            .tx(Mode::ReadCommitted, |t| {
                for (n, v) in [
                    ("root_key", &root_sealed),
                    ("root_spki", &root_spki),
                    ("working_key", &working_sealed),
                    ("working_sig", &sig),
                ] {
                    t.execute(
                        "INSERT INTO meta (name, value) VALUES ($1, $2)",
                        params![n, v],
                    )?;
                }
                Ok(())
            })
            .map_err(db_err)?;
        let pem = pem_public_key(&root_spki);
        write_new_private(&dir.join(ROOT_FILE), pem.as_bytes())?;
        Ok(store)
    }

    /// Opens an RKS made by [`RksStore::init`] (`database` as there).
    pub fn open(dir: &Path, database: Option<&str>) -> Result<RksStore, String> {
        let mk = dir.join(MASTER_FILE);
        let m = std::fs::read(&mk).map_err(|e| {
            format!(
                "{}: {e} (is {} an RKS directory? create one with `vtoken-server rks init`)",
                mk.display(),
                dir.display()
            )
        })?;
        let master: [u8; 32] = m
            .as_slice()
            .try_into()
            .map_err(|_| format!("{}: not a 32-byte master key", mk.display()))?;
        let target = Target::resolve(database, &dir.join(DB_FILE)).map_err(db_err)?;
        let db = Db::open(&target, &ROLE).map_err(db_err)?;
        Ok(RksStore {
            db,
            master: Zeroizing::new(master),
        })
    }

    /// Which database this is (for the log).
    pub fn describe(&self) -> &str {
        self.db.describe()
    }

    /// The database (for `/readyz` and `/metrics`).
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn seal(&self, ad: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
        let c = Aes256Gcm::new_from_slice(&self.master[..]).map_err(|e| e.to_string())?;
        let nonce = crypto::random(12).map_err(|e| e.to_string())?;
        let ct = c
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: ad,
                },
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_sealed(&self, ad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        if sealed.len() < 28 {
            return Err("a sealed value is cut short".into());
        }
        let c = Aes256Gcm::new_from_slice(&self.master[..]).map_err(|e| e.to_string())?;
        c.decrypt(
            Nonce::from_slice(&sealed[..12]),
            Payload {
                msg: &sealed[12..],
                aad: ad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| "a sealed value fails its integrity check (wrong master key?)".to_string())
    }

    fn meta(&self, name: &str) -> Result<Vec<u8>, String> {
        one_blob(
            self.db
                .query_opt("SELECT value FROM meta WHERE name = $1", params![name])
                .map_err(db_err)?,
        )?
        .ok_or_else(|| format!("the RKS database has no {name}: not initialized"))
    }

    /// The working key and the root's signature over it.
    pub fn working(&self) -> Result<(WorkingKey, Vec<u8>), String> {
        let k = self.open_sealed(b"working key", &self.meta("working_key")?)?;
        Ok((
            WorkingKey::from_pkcs8(&k).map_err(|e| e.to_string())?,
            self.meta("working_sig")?,
        ))
    }

    fn dik1_ad(dsn: &str) -> Vec<u8> {
        let mut ad = b"dik1\0".to_vec();
        ad.extend_from_slice(dsn.as_bytes());
        ad
    }

    /// Adds a DIK1 record (the given key, or a random one). Never replaces one.
    pub fn add_dik1(&self, dsn: &str, key: Option<&[u8; DIK_LEN]>) -> Result<(), String> {
        let generated;
        let key = match key {
            Some(k) => k,
            None => {
                generated = crypto::random(DIK_LEN).map_err(|e| e.to_string())?;
                generated.as_slice().try_into().expect("24 bytes")
            }
        };
        let sealed = self.seal(&Self::dik1_ad(dsn), key)?;
        let n = self
            .db
            .execute(
                "INSERT INTO dik1 (dsn, sealed, added_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                params![dsn, &sealed, now()],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(format!(
                "DSN {dsn} already has a DIK1 record (never replaced)"
            ));
        }
        Ok(())
    }

    /// DIK1 of a DSN (S306–S307): its own record first, else its batch's, else
    /// its range's.
    pub fn get_dik1(&self, dsn: &str) -> Result<Option<Zeroizing<[u8; DIK_LEN]>>, String> {
        let sealed = one_blob(
            self.db
                .query_opt("SELECT sealed FROM dik1 WHERE dsn = $1", params![dsn])
                .map_err(db_err)?,
        )?;
        if let Some(sealed) = sealed {
            return Self::dik1_of(self.open_sealed(&Self::dik1_ad(dsn), &sealed)?).map(Some);
        }
        // S306–S307: no record of its own, then the batch that lists the DSN, then
        // the range that holds it.
        if let Some(batch) = self.batch_of(dsn)? {
            return self.get_dik1_batch(&batch);
        }
        match self.range_of(dsn)? {
            Some((first, last)) => self.get_dik1_range(&first, &last),
            None => Ok(None),
        }
    }

    fn range_ad(first: &str, last: &str) -> Vec<u8> {
        format!("dik1 range\0{first}..{last}").into_bytes()
    }

    /// Adds a DIK1 for every DSN from `first` to `last` (16 upper-case hex digits
    /// each, `first <= last`; the given key or a random one). Refused when it
    /// overlaps a range already recorded (the lookup must be unambiguous); DSNs
    /// with a record of their own keep it (the exact record is found first).
    /// One transaction: the overlap check and the insert cannot interleave.
    pub fn add_dik1_range(
        &self,
        first: &str,
        last: &str,
        key: Option<&[u8; DIK_LEN]>,
    ) -> Result<(), String> {
        let generated;
        let key = match key {
            Some(k) => k,
            None => {
                generated = crypto::random(DIK_LEN).map_err(|e| e.to_string())?;
                generated.as_slice().try_into().expect("24 bytes")
            }
        };
        let sealed = self.seal(&Self::range_ad(first, last), key)?;
        // SERIALIZABLE: two overlapping ranges added at once on two instances
        // cannot both pass the check (the loser retries and sees the winner).
        self.db
            .tx(Mode::Serializable, |t| {
                if let Some(r) = t.query_opt(
                    "SELECT first, last FROM dik1_range WHERE first <= $2 AND last >= $1 LIMIT 1",
                    params![first, last],
                )? {
                    let (f, l) = (r.text(0)?, r.text(1)?);
                    return Err(db::Error::Other(format!(
                        "the range {first}..{last} overlaps the DIK1 range {f}..{l} \
                         (ranges never overlap)"
                    )));
                }
                t.execute(
                    "INSERT INTO dik1_range (first, last, sealed, added_at) VALUES ($1, $2, $3, $4)",
                    params![first, last, &sealed, now()],
                )?;
                Ok(())
            })
            .map_err(db_err)
    }

    /// The DIK1 of exactly this range.
    pub fn get_dik1_range(
        &self,
        first: &str,
        last: &str,
    ) -> Result<Option<Zeroizing<[u8; DIK_LEN]>>, String> {
        let sealed = one_blob(
            self.db
                .query_opt(
                    "SELECT sealed FROM dik1_range WHERE first = $1 AND last = $2",
                    params![first, last],
                )
                .map_err(db_err)?,
        )?;
        sealed
            .map(|s| Self::dik1_of(self.open_sealed(&Self::range_ad(first, last), &s)?))
            .transpose()
    }

    /// The range whose DIK1 serves `dsn` (a DSN of 16 hex digits), if any.
    pub fn range_of(&self, dsn: &str) -> Result<Option<(String, String)>, String> {
        if !is_dsn16(dsn) {
            return Ok(None);
        }
        self.db
            .query_opt(
                "SELECT first, last FROM dik1_range WHERE first <= $1 AND last >= $1",
                params![dsn],
            )
            .and_then(|r| r.map(|r| Ok((r.text(0)?, r.text(1)?))).transpose())
            .map_err(db_err)
    }

    fn batch_ad(name: &str) -> Vec<u8> {
        format!("dik1 batch\0{name}").into_bytes()
    }

    /// Adds one DIK1 (the given key or a random one) for a production batch: the
    /// DSNs of `members` (each with its line number in the DSN file, for the
    /// error). Refused: an existing batch name, an empty list, a DSN listed twice,
    /// a DSN already in another batch (a DSN's batch must be unambiguous). DSNs
    /// with a record of their own keep it (the exact record is found first). One
    /// IMMEDIATE transaction: the checks and the inserts cannot interleave.
    pub fn add_dik1_batch(
        &self,
        name: &str,
        members: &[(usize, String)],
        key: Option<&[u8; DIK_LEN]>,
    ) -> Result<(), String> {
        if members.is_empty() {
            return Err(format!("batch {name}: the DSN file lists no DSN"));
        }
        let mut seen = std::collections::HashMap::new();
        for (line, dsn) in members {
            if let Some(first) = seen.insert(dsn.as_str(), *line) {
                return Err(format!(
                    "line {line}: DSN {dsn} is listed twice (first on line {first})"
                ));
            }
        }
        let generated;
        let key = match key {
            Some(k) => k,
            None => {
                generated = crypto::random(DIK_LEN).map_err(|e| e.to_string())?;
                generated.as_slice().try_into().expect("24 bytes")
            }
        };
        let sealed = self.seal(&Self::batch_ad(name), key)?;
        // SERIALIZABLE: a DSN put in two batches at once on two instances makes one
        // of them fail its check on retry.
        self.db
            .tx(Mode::Serializable, |t| {
                let n = t.execute(
                    "INSERT INTO dik1_batch (name, sealed, added_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    params![name, &sealed, now()],
                )?;
                if n == 0 {
                    return Err(db::Error::Other(format!(
                        "the batch {name} exists (never replaced)"
                    )));
                }
                for (line, dsn) in members {
                    if let Some(other) = t.query_opt(
                        "SELECT batch FROM dik1_batch_member WHERE dsn = $1",
                        params![dsn],
                    )? {
                        return Err(db::Error::Other(format!(
                            "line {line}: DSN {dsn} is already in the batch {} \
                             (a DSN belongs to one batch)",
                            other.text(0)?
                        )));
                    }
                    t.execute(
                        "INSERT INTO dik1_batch_member (dsn, batch) VALUES ($1, $2)",
                        params![dsn, name],
                    )?;
                }
                Ok(())
            })
            .map_err(db_err)
    }

    /// The DIK1 of this batch.
    pub fn get_dik1_batch(&self, name: &str) -> Result<Option<Zeroizing<[u8; DIK_LEN]>>, String> {
        let sealed = one_blob(
            self.db
                .query_opt(
                    "SELECT sealed FROM dik1_batch WHERE name = $1",
                    params![name],
                )
                .map_err(db_err)?,
        )?;
        sealed
            .map(|s| Self::dik1_of(self.open_sealed(&Self::batch_ad(name), &s)?))
            .transpose()
    }

    /// The batch that lists `dsn`, if any.
    pub fn batch_of(&self, dsn: &str) -> Result<Option<String>, String> {
        one_text(
            self.db
                .query_opt(
                    "SELECT batch FROM dik1_batch_member WHERE dsn = $1",
                    params![dsn],
                )
                .map_err(db_err)?,
        )
    }

    /// The member DSNs of a batch, in order.
    pub fn batch_members(&self, name: &str) -> Result<Vec<String>, String> {
        self.db
            .query(
                "SELECT dsn FROM dik1_batch_member WHERE batch = $1 ORDER BY dsn",
                params![name],
            )
            .and_then(|rows| rows.iter().map(|r| r.text(0)).collect())
            .map_err(db_err)
    }

    fn dik1_of(k: Zeroizing<Vec<u8>>) -> Result<Zeroizing<[u8; DIK_LEN]>, String> {
        let k: [u8; DIK_LEN] = k
            .as_slice()
            .try_into()
            .map_err(|_| "a DIK1 record is not 24 bytes".to_string())?;
        Ok(Zeroizing::new(k))
    }

    fn tmk_ad(uid: &str) -> Vec<u8> {
        let mut ad = b"tmk\0".to_vec();
        ad.extend_from_slice(uid.as_bytes());
        ad
    }

    /// Queues a key for a DSN; returns its uid (hex).
    pub fn queue(
        &self,
        dsn: &str,
        label: &str,
        ckid: &[u8],
        ty: TmkType,
        usage: u8,
        value: Option<&[u8]>,
    ) -> Result<String, String> {
        let generated;
        let value = match value {
            Some(v) => v,
            None => {
                generated = crypto::random(ty.value_len()).map_err(|e| e.to_string())?;
                &generated[..]
            }
        };
        if value.len() != ty.value_len() {
            return Err(format!(
                "a {} key has {} bytes ({} hex digits), not {}",
                ty.as_str(),
                ty.value_len(),
                2 * ty.value_len(),
                value.len()
            ));
        }
        let uid = hex::encode(&crypto::random(16).map_err(|e| e.to_string())?[..]);
        let sealed = self.seal(&Self::tmk_ad(&uid), value)?;
        self.db
            .execute(
                "INSERT INTO queue (uid, dsn, label, ckid, type, usage, sealed, queued_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                params![
                    &uid,
                    dsn,
                    label,
                    ckid,
                    ty.as_str(),
                    i64::from(usage),
                    &sealed,
                    now()
                ],
            )
            .map_err(db_err)?;
        Ok(uid)
    }

    /// S319: the next undelivered key of a DSN. Two sessions of one DSN (on one
    /// instance or two) may both be sent it: the device stores a key before it
    /// acknowledges it (S320), and only the first acknowledgement marks it delivered
    /// ([`RksStore::set_delivered`]).
    pub fn next_undelivered(&self, dsn: &str) -> Result<Option<Tmk>, String> {
        let Some(r) = self
            .db
            .query_opt(
                "SELECT uid, label, ckid, type, usage, sealed FROM queue
                 WHERE dsn = $1 AND delivered_at IS NULL ORDER BY id LIMIT 1",
                params![dsn],
            )
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let uid = r.text(0).map_err(db_err)?;
        let usage = u8::try_from(r.int(4).map_err(db_err)?)
            .map_err(|_| "a queued key has a bad usage".to_string())?;
        let value = self.open_sealed(&Self::tmk_ad(&uid), &r.blob(5).map_err(db_err)?)?;
        let uid_b: [u8; 16] = hex::decode(&uid)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("a queued key has a bad uid")?;
        Ok(Some(Tmk {
            uid: uid_b,
            ty: TmkType::parse(&r.text(3).map_err(db_err)?).map_err(|e| e.to_string())?,
            usage,
            label: r.text(1).map_err(db_err)?,
            id: r.blob(2).map_err(db_err)?,
            value,
        }))
    }

    /// Marks a key delivered, once: one statement turns an undelivered key into a
    /// delivered one. Of two acknowledgements racing on two instances, PostgreSQL
    /// makes the second UPDATE wait for the first's row lock and then re-check
    /// `delivered_at IS NULL` (false): it changes nothing and is refused.
    pub fn set_delivered(&self, dsn: &str, uid: &[u8; 16], session: &str) -> Result<(), String> {
        let n = self
            .db
            .execute(
                "UPDATE queue SET delivered_at = $1, session = $2
                 WHERE uid = $3 AND dsn = $4 AND delivered_at IS NULL",
                params![now(), session, hex::encode(uid), dsn],
            )
            .map_err(db_err)?;
        if n != 1 {
            return Err("the acknowledged key is not an undelivered key of this DSN".into());
        }
        Ok(())
    }

    /// Appends to the audit log.
    pub fn log(&self, dsn: &str, session: &str, ok: bool, event: &str) -> Result<(), String> {
        self.db
            .execute(
                "INSERT INTO audit (at, dsn, session, ok, event) VALUES ($1, $2, $3, $4, $5)",
                params![now(), dsn, session, i64::from(ok), event],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Per DSN: DIK1 (its own or a range's), queued, delivered, refusals; then
    /// one line per DIK1 range.
    pub fn status(&self) -> Result<Vec<DsnStatus>, String> {
        let mut out = self
            .db
            .query(
                "SELECT d.dsn,
                   EXISTS(SELECT 1 FROM dik1 WHERE dsn = d.dsn),
                   (SELECT count(*) FROM queue WHERE dsn = d.dsn AND delivered_at IS NULL),
                   (SELECT count(*) FROM queue WHERE dsn = d.dsn AND delivered_at IS NOT NULL),
                   (SELECT count(*) FROM audit WHERE dsn = d.dsn AND ok = 0),
                   (SELECT event FROM audit WHERE dsn = d.dsn AND ok = 0 ORDER BY id DESC LIMIT 1)
                 FROM (SELECT dsn FROM dik1 UNION SELECT dsn FROM queue
                       UNION SELECT dsn FROM audit) d
                 WHERE d.dsn NOT LIKE '%..%' AND d.dsn NOT LIKE 'batch %'
                 ORDER BY d.dsn",
                &[],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(DsnStatus {
                            kind: "dsn",
                            dsn: r.text(0)?,
                            dik1: r.int(1)? != 0,
                            dik1_range: None,
                            dik1_batch: None,
                            members: None,
                            queued: r.int(2)? as u64,
                            delivered: r.int(3)? as u64,
                            refusals: r.int(4)? as u64,
                            last_refusal: r.0.get(5).and_then(|v| match v {
                                db::Value::Text(t) => Some(t.clone()),
                                _ => None,
                            }),
                        })
                    })
                    .collect::<db::Result<Vec<_>>>()
            })
            .map_err(db_err)?;
        for s in &mut out {
            if !s.dik1 {
                if let Some(b) = self.batch_of(&s.dsn)? {
                    s.dik1 = true;
                    s.dik1_batch = Some(b);
                } else if let Some((f, l)) = self.range_of(&s.dsn)? {
                    s.dik1 = true;
                    s.dik1_range = Some(format!("{f}..{l}"));
                }
            }
        }
        let ranges = self
            .db
            .query("SELECT first, last FROM dik1_range ORDER BY first", &[])
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.text(0)?, r.text(1)?)))
                    .collect::<db::Result<Vec<_>>>()
            })
            .map_err(db_err)?;
        for (f, l) in ranges {
            let (queued, delivered, refusals) = out
                .iter()
                .filter(|s| s.kind == "dsn" && s.dsn >= f && s.dsn <= l && is_dsn16(&s.dsn))
                .fold((0, 0, 0), |a, s| {
                    (a.0 + s.queued, a.1 + s.delivered, a.2 + s.refusals)
                });
            out.push(DsnStatus {
                kind: "range",
                dsn: format!("{f}..{l}"),
                dik1: true,
                dik1_range: None,
                dik1_batch: None,
                members: None,
                queued,
                delivered,
                refusals,
                last_refusal: None,
            });
        }
        // Per batch: its members' totals (from the members table, so a member with
        // nothing queued counts too).
        let batches = self
            .db
            .query(
                "SELECT b.name,
                   (SELECT count(*) FROM dik1_batch_member m WHERE m.batch = b.name),
                   (SELECT count(*) FROM queue q JOIN dik1_batch_member m ON q.dsn = m.dsn
                     WHERE m.batch = b.name AND q.delivered_at IS NULL),
                   (SELECT count(*) FROM queue q JOIN dik1_batch_member m ON q.dsn = m.dsn
                     WHERE m.batch = b.name AND q.delivered_at IS NOT NULL),
                   (SELECT count(*) FROM audit a JOIN dik1_batch_member m ON a.dsn = m.dsn
                     WHERE m.batch = b.name AND a.ok = 0)
                 FROM dik1_batch b ORDER BY b.name",
                &[],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(DsnStatus {
                            kind: "batch",
                            dsn: r.text(0)?,
                            dik1: true,
                            dik1_range: None,
                            dik1_batch: None,
                            members: Some(r.int(1)? as u64),
                            queued: r.int(2)? as u64,
                            delivered: r.int(3)? as u64,
                            refusals: r.int(4)? as u64,
                            last_refusal: None,
                        })
                    })
                    .collect::<db::Result<Vec<_>>>()
            })
            .map_err(db_err)?;
        out.extend(batches);
        Ok(out)
    }

    /// The audit log, oldest first (`dsn`: only this DSN).
    pub fn audit_log(&self, dsn: Option<&str>) -> Result<Vec<AuditLine>, String> {
        self.db
            .query(
                "SELECT at, dsn, session, ok, event FROM audit
                 WHERE CAST($1 AS TEXT) IS NULL OR dsn = $1 ORDER BY id",
                params![dsn],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(AuditLine {
                            at: r.int(0)?,
                            dsn: r.text(1)?,
                            session: r.text(2)?,
                            ok: r.int(3)? != 0,
                            event: r.text(4)?,
                        })
                    })
                    .collect()
            })
            .map_err(db_err)
    }
}

/// Whether `s` is a DSN of 16 upper-case hex digits (what ranges hold: in that
/// fixed width, text order is numeric order).
pub fn is_dsn16(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// PEM "PUBLIC KEY" of an SPKI DER.
pub fn pem_public_key(spki: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(spki);
    let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str("-----END PUBLIC KEY-----\n");
    s
}

fn rks(e: String) -> RksError {
    RksError::Local(e)
}

impl Directory for RksStore {
    fn dik1(&self, dsn: &str) -> vtoken_rks::Result<Option<Zeroizing<[u8; DIK_LEN]>>> {
        self.get_dik1(dsn).map_err(rks)
    }
    fn next_key(&self, dsn: &str) -> vtoken_rks::Result<Option<Tmk>> {
        self.next_undelivered(dsn).map_err(rks)
    }
    fn mark_delivered(&self, dsn: &str, uid: &[u8; 16], session: &str) -> vtoken_rks::Result<()> {
        self.set_delivered(dsn, uid, session).map_err(rks)
    }
    fn audit(&self, dsn: &str, session: &str, ok: bool, event: &str) {
        if let Err(e) = self.log(dsn, session, ok, event) {
            tracing::error!("audit log: {e}");
        }
        if ok {
            tracing::info!(%dsn, %session, "rks: {event}");
        } else {
            tracing::warn!(%dsn, %session, "rks: {event}");
        }
    }
}
