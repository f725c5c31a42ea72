//! The bank's database (SPEC W1; SQLite `bank.db` in the bank directory, or the
//! PostgreSQL schema `bank` shared by several server instances, see [`crate::db`]):
//! accounts in integer minor units, the registered tokens with their wallet
//! certificates, the load records (keyed by token serial and sequence number, see
//! `vtoken_wallet::record`), the purchases seen, and the operation log. Every step of
//! a load is one transaction: the balance, the load record and the log line move
//! together or not at all.
//!
//! Isolation (several instances on one PostgreSQL database): every step that moves
//! money runs READ COMMITTED and locks the account row (`SELECT ... FOR UPDATE`)
//! before it reads the load record, so two steps on one account, on any instances,
//! run one after the other and the second sees what the first committed; a settle
//! also locks the load row. Locks are always taken account first, then load, so two
//! steps never wait for each other in a cycle. The load's primary key (token serial,
//! sequence number) is the last word: a request that races another for the same
//! sequence number under a different account lock fails on it, and the step is run
//! again from the start, reading what the winner committed. Nothing is signed inside
//! a transaction: the bank signs its permit or settlement from the committed record
//! after the commit, so a step run again never signs or sends twice. On SQLite every
//! transaction is `BEGIN IMMEDIATE` (one writer at a time), which gives the same
//! order without row locks.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use vtoken_wallet::{Amount, LoadState};

use crate::db::{self, params, Db, Dialect, Migration, Mode, Role, Row, Step, Target, Tx};

/// File name of the database in a bank directory.
pub const DB_FILE: &str = "bank.db";

/// The bank's schema versions. Version 1 is the schema from before versioning
/// (SQLite: `CREATE ... IF NOT EXISTS`, so an existing `bank.db` opens with its
/// data); version 2 adds `meta`, which records the bank certificate the database
/// belongs to (a second `bank init` on one PostgreSQL database is refused, and an
/// instance with another bank's directory does not serve it).
pub const ROLE: Role = Role {
    name: "bank",
    migrations: &[
        Migration {
            version: 1,
            sqlite: Step::Sql(SCHEMA),
            postgres: Step::Sql(PG_V1),
        },
        Migration {
            version: 2,
            sqlite: Step::Sql(
                "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
            ),
            postgres: Step::Sql("CREATE TABLE meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL)"),
        },
    ],
};

/// Version 1 on PostgreSQL: the SQLite schema with `BIGINT` integers, `BYTEA`
/// bytes, and an `id` on `tokens` in place of SQLite's `rowid` (newest
/// registration last).
const PG_V1: &str = "
CREATE TABLE accounts (
    number     TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    balance    BIGINT NOT NULL CHECK (balance >= 0),
    currency   TEXT NOT NULL,
    opened_at  BIGINT NOT NULL
);
CREATE TABLE tokens (
    id           BIGSERIAL UNIQUE,
    cert_serial  TEXT PRIMARY KEY,
    token_serial TEXT NOT NULL,
    account      TEXT NOT NULL REFERENCES accounts(number),
    cert         BYTEA NOT NULL,
    key_version  BIGINT NOT NULL,
    registered_at BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX tokens_by_serial ON tokens (token_serial);
CREATE TABLE loads (
    token_serial TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    account      TEXT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    random       BYTEA NOT NULL,
    cert_serial  TEXT NOT NULL,
    state        TEXT NOT NULL,
    host_date    TEXT NOT NULL,
    host_time    TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (token_serial, seq)
);
CREATE TABLE purchases (
    payer     TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    merchant  TEXT NOT NULL,
    amount    BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (payer, seq)
);
CREATE TABLE cards (
    number    TEXT PRIMARY KEY,
    spki      BYTEA NOT NULL,
    added_at  BIGINT NOT NULL
);
CREATE TABLE oplog (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    account      TEXT NOT NULL,
    token_serial TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    op           TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    balance      BIGINT NOT NULL
);
CREATE INDEX oplog_by_account ON oplog (account, id);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    number     TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    currency   TEXT NOT NULL,
    opened_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    cert_serial  TEXT PRIMARY KEY,
    token_serial TEXT NOT NULL,
    account      TEXT NOT NULL REFERENCES accounts(number),
    cert         BLOB NOT NULL,
    key_version  INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_by_serial ON tokens (token_serial);
CREATE TABLE IF NOT EXISTS loads (
    token_serial TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    account      TEXT NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount >= 0),
    random       BLOB NOT NULL,
    cert_serial  TEXT NOT NULL,
    state        TEXT NOT NULL,
    host_date    TEXT NOT NULL,
    host_time    TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (token_serial, seq)
);
CREATE TABLE IF NOT EXISTS purchases (
    payer     TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    merchant  TEXT NOT NULL,
    amount    INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (payer, seq)
);
CREATE TABLE IF NOT EXISTS cards (
    number    TEXT PRIMARY KEY,
    spki      BLOB NOT NULL,
    added_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS oplog (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    account      TEXT NOT NULL,
    token_serial TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    op           TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    balance      INTEGER NOT NULL
);
";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    pub holder: String,
    pub balance: Amount,
    pub currency: String,
}

/// A registered wallet certificate.
#[derive(Clone, Debug)]
pub struct TokenReg {
    pub cert_serial: String,
    pub token_serial: String,
    pub account: String,
    pub cert: Vec<u8>,
    pub key_version: u32,
    pub revoked: bool,
}

/// A load record at the bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    pub token_serial: String,
    pub seq: u64,
    pub account: String,
    pub amount: Amount,
    pub random: [u8; 16],
    pub cert_serial: String,
    pub state: LoadState,
    pub host_date: String,
    pub host_time: String,
}

/// One line of the operation log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Op {
    pub at: i64,
    pub account: String,
    pub token_serial: String,
    pub seq: u64,
    pub op: String,
    pub amount: String,
    pub balance: String,
}

/// Why a store operation failed: a refusal to report to the client, or a database
/// failure.
#[derive(Debug)]
pub enum StoreError {
    /// Not allowed (the message says why).
    Refused(String),
    /// The account cannot pay.
    Funds(String),
    /// The database ([`db::Error::Unavailable`]: nothing was changed, retry later).
    Db(db::Error),
}

impl From<db::Error> for StoreError {
    fn from(e: db::Error) -> Self {
        StoreError::Db(e)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Refused(m) | StoreError::Funds(m) => f.write_str(m),
            StoreError::Db(e) => write!(f, "bank database: {e}"),
        }
    }
}

type Res<T> = Result<T, StoreError>;

fn refuse<T>(m: impl Into<String>) -> Res<T> {
    Err(StoreError::Refused(m.into()))
}

fn amount_of(v: i64) -> db::Result<Amount> {
    Amount::from_i64(v).ok_or_else(|| db::Error::Data(format!("negative amount {v}")))
}

/// How often a money step runs again after losing a race on a primary key (each
/// run reads what the winner committed, so the second run already decides).
const KEY_RACES: u32 = 3;

/// The bank database.
pub struct BankStore {
    db: Db,
}

impl BankStore {
    /// Opens (creating if missing) the bank database `target` and brings its schema
    /// to this binary's version.
    pub fn open(target: &Target) -> Res<BankStore> {
        Ok(BankStore {
            db: Db::open(target, &ROLE)?,
        })
    }

    /// Which database this is (for the log and errors; no password).
    pub fn describe(&self) -> &str {
        self.db.describe()
    }

    /// The database (for `/readyz` and `/metrics`).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The bank certificate (DER) this database belongs to, if recorded.
    pub fn bank_cert(&self) -> Res<Option<Vec<u8>>> {
        Ok(self
            .db
            .query_opt("SELECT value FROM meta WHERE name = 'bank_cert'", &[])?
            .map(|r| r.blob(0))
            .transpose()?)
    }

    /// Records the bank certificate the database belongs to: `false` when one is
    /// recorded already (the database belongs to a bank).
    pub fn claim(&self, cert_der: &[u8]) -> Res<bool> {
        let n = self.db.execute(
            "INSERT INTO meta (name, value) VALUES ('bank_cert', $1) ON CONFLICT DO NOTHING",
            params![cert_der],
        )?;
        Ok(n == 1)
    }

    /// A money step: `f` in one READ COMMITTED transaction, committed when it
    /// returns `Ok(_)` (also `Ok(Err(refusal))`: a refusal may record a burnt
    /// sequence number). Run again from the start when it lost a race on a primary
    /// key ([`KEY_RACES`]).
    fn step<T>(&self, mut f: impl FnMut(&mut dyn Tx) -> db::Result<Res<T>>) -> Res<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.db.tx(Mode::ReadCommitted, &mut f) {
                Err(db::Error::Duplicate(m)) if attempt < KEY_RACES => {
                    tracing::debug!(attempt, "lost a race on a key, running again: {m}");
                }
                Err(e) => return Err(StoreError::Db(e)),
                Ok(r) => return r,
            }
        }
    }

    /// Opens an account with an opening balance.
    pub fn open_account(
        &self,
        number: &str,
        holder: &str,
        balance: Amount,
        currency: &str,
    ) -> Res<()> {
        self.step(|t| {
            let n = t.execute(
                "INSERT INTO accounts (number, holder, balance, currency, opened_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                params![number, holder, balance.as_i64(), currency, now()],
            )?;
            if n == 0 {
                return Ok(refuse(format!("account {number} exists")));
            }
            log(t, number, "", 0, "open", balance, balance)?;
            Ok(Ok(()))
        })
    }

    /// Credits an account (admin).
    pub fn credit_account(&self, number: &str, amount: Amount) -> Res<Amount> {
        self.step(|t| {
            let Some(a) = lock_account(t, number)? else {
                return Ok(refuse(format!("no account {number}")));
            };
            let Some(b) = a.balance.checked_add(amount) else {
                return Ok(refuse("the balance would overflow"));
            };
            set_balance(t, number, b)?;
            log(t, number, "", 0, "credit", amount, b)?;
            Ok(Ok(b))
        })
    }

    /// The account `number`.
    pub fn account(&self, number: &str) -> Res<Account> {
        self.db
            .tx(Mode::ReadCommitted, |t| account_in(t, number, false))?
            .map_or_else(|| refuse(format!("no account {number}")), Ok)
    }

    /// Registers a wallet certificate bound to `account`.
    pub fn register(&self, reg: &TokenReg) -> Res<()> {
        let r = self.db.tx(Mode::ReadCommitted, |t| {
            let Some(a) = lock_account(t, &reg.account)? else {
                return Ok(refuse(format!("no account {}", reg.account)));
            };
            t.execute(
                "INSERT INTO tokens (cert_serial, token_serial, account, cert, key_version, registered_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                params![
                    &reg.cert_serial,
                    &reg.token_serial,
                    &reg.account,
                    &reg.cert,
                    i64::from(reg.key_version),
                    now()
                ],
            )?;
            log(
                t,
                &reg.account,
                &reg.token_serial,
                0,
                "register",
                Amount::ZERO,
                a.balance,
            )?;
            Ok(Ok(()))
        });
        match r {
            Err(db::Error::Duplicate(_)) => refuse(format!(
                "wallet certificate {} is registered already",
                reg.cert_serial
            )),
            r => r?,
        }
    }

    /// Revokes every live certificate of token `serial` (or the one certificate with
    /// that serial); returns the certificate serials revoked.
    pub fn revoke(&self, serial: &str) -> Res<Vec<String>> {
        let rows = self.db.query(
            "UPDATE tokens SET revoked_at = $1
             WHERE (token_serial = $2 OR cert_serial = $2) AND revoked_at IS NULL
             RETURNING cert_serial",
            params![now(), serial],
        )?;
        Ok(rows.iter().map(|r| r.text(0)).collect::<db::Result<_>>()?)
    }

    /// The newest registration of token `serial` (revoked or not).
    pub fn token(&self, serial: &str) -> Res<Option<TokenReg>> {
        Ok(self.db.tx(Mode::ReadCommitted, |t| {
            // Registration order: SQLite's rowid, PostgreSQL's id.
            let order = match t.dialect() {
                Dialect::Sqlite => "rowid",
                Dialect::Postgres => "id",
            };
            t.query_opt(
                &format!(
                    "SELECT cert_serial, token_serial, account, cert, key_version, revoked_at
                     FROM tokens WHERE token_serial = $1
                     ORDER BY registered_at DESC, {order} DESC LIMIT 1"
                ),
                params![serial],
            )?
            .map(|r| reg_row(&r))
            .transpose()
        })?)
    }

    /// The load record of (serial, seq).
    pub fn load(&self, serial: &str, seq: u64) -> Res<Option<Load>> {
        Ok(self
            .db
            .tx(Mode::ReadCommitted, |t| load_in(t, serial, seq, false))?)
    }

    /// Every load record of token `serial` (by sequence number).
    pub fn loads(&self, serial: &str) -> Res<Vec<Load>> {
        let rows = self.db.query(
            &format!("SELECT {LOAD_COLUMNS} FROM loads WHERE token_serial = $1 ORDER BY seq"),
            params![serial],
        )?;
        Ok(rows.iter().map(load_row).collect::<db::Result<_>>()?)
    }

    /// Step 311: debits the account and records the load as debited, in one
    /// transaction. The same request again (same random, amount, account) while the
    /// load is debited returns the record (the permit is re-sent after a lost
    /// answer); any other reuse of the sequence number is a replay. `refusal`: a
    /// verified request the bank turns down (insufficient funds) burns the sequence
    /// number as cancelled.
    pub fn debit(&self, l: &Load) -> Res<Load> {
        self.step(|t| {
            // The account first: every step on this account waits here, so the load
            // record read next is the committed one.
            let account = lock_account(t, &l.account)?;
            if let Some(old) = load_in(t, &l.token_serial, l.seq, true)? {
                if old.state == LoadState::Debited
                    && old.random == l.random
                    && old.amount == l.amount
                    && old.account == l.account
                {
                    return Ok(Ok(old));
                }
                return Ok(refuse(format!(
                    "replayed request: load {} of token {} is already {}",
                    l.seq, l.token_serial, old.state
                )));
            }
            let Some(a) = account else {
                return Ok(refuse(format!("no account {}", l.account)));
            };
            let Some(left) = a.balance.checked_sub(l.amount) else {
                insert_load(t, l, LoadState::Cancelled)?;
                log(
                    t,
                    &l.account,
                    &l.token_serial,
                    l.seq,
                    "refused-insufficient",
                    l.amount,
                    a.balance,
                )?;
                return Ok(Err(StoreError::Funds(format!(
                    "insufficient funds in account {} ({} {})",
                    a.number, a.balance, a.currency
                ))));
            };
            set_balance(t, &l.account, left)?;
            insert_load(t, l, LoadState::Debited)?;
            log(
                t,
                &l.account,
                &l.token_serial,
                l.seq,
                "debit",
                l.amount,
                left,
            )?;
            Ok(Ok(Load {
                state: LoadState::Debited,
                ..l.clone()
            }))
        })
    }

    /// Burns a sequence number for a request refused before any debit.
    pub fn cancel_unseen(&self, l: &Load, why: &str) -> Res<()> {
        self.step(|t| {
            let account = lock_account(t, &l.account)?;
            let n = t.execute(
                &format!(
                    "INSERT INTO loads ({LOAD_COLUMNS}, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
                ),
                &load_params(l, LoadState::Cancelled),
            )?;
            if n == 1 {
                let bal = account.map(|a| a.balance).unwrap_or_default();
                log(t, &l.account, &l.token_serial, l.seq, why, l.amount, bal)?;
            }
            Ok(Ok(()))
        })
    }

    /// Steps 316–318 on a verified receipt (`confirm`) or a verified abort
    /// (`!confirm`): Debited → Confirmed, Debited → Refunded (the debit given back),
    /// or no record → Cancelled (`unseen`: the record to burn the number with). A
    /// final record answers with its state again; a receipt for a refunded load or
    /// an abort of a confirmed one cannot happen with an honest token and is
    /// refused.
    pub fn settle(
        &self,
        serial: &str,
        seq: u64,
        random: &[u8; 16],
        confirm: bool,
        unseen: Option<&Load>,
    ) -> Res<(LoadState, Amount)> {
        self.step(|t| {
            // Whose account: the record's (it never changes), else the one the
            // unseen load would be charged to; locked before the record is.
            let seen = load_in(t, serial, seq, false)?;
            let Some(number) = seen.as_ref().or(unseen).map(|l| l.account.clone()) else {
                return Ok(refuse(format!("no load {seq} of token {serial}")));
            };
            let account = lock_account(t, &number)?;
            let Some(l) = load_in(t, serial, seq, true)? else {
                let Some(u) = unseen.filter(|_| !confirm) else {
                    return Ok(refuse(format!("no load {seq} of token {serial}")));
                };
                insert_load(t, u, LoadState::Cancelled)?;
                let bal = account.map(|a| a.balance).unwrap_or_default();
                log(t, &u.account, serial, seq, "cancel", u.amount, bal)?;
                return Ok(Ok((LoadState::Cancelled, bal)));
            };
            if &l.random != random {
                return Ok(refuse(format!(
                    "load {seq} of token {serial}: the random does not match (replayed or forged)"
                )));
            }
            if l.account != number {
                // Cannot happen (a record's account never changes); refused rather
                // than settled under the wrong lock.
                return Ok(refuse(format!(
                    "load {seq} of token {serial} changed account"
                )));
            }
            let Some(a) = account else {
                return Ok(refuse(format!("no account {number}")));
            };
            let to = if confirm {
                LoadState::Confirmed
            } else {
                LoadState::Refunded
            };
            if l.state == to || (l.state == LoadState::Cancelled && !confirm) {
                return Ok(Ok((l.state, a.balance)));
            }
            let next = match l.state.advance(to) {
                Ok(n) => n,
                Err(e) => return Ok(refuse(e.to_string())),
            };
            let mut balance = a.balance;
            if next == LoadState::Refunded {
                let Some(b) = balance.checked_add(l.amount) else {
                    return Ok(refuse("the balance would overflow"));
                };
                balance = b;
                set_balance(t, &l.account, balance)?;
            }
            t.execute(
                "UPDATE loads SET state = $1, updated_at = $2 WHERE token_serial = $3 AND seq = $4",
                params![next.as_str(), now(), serial, seq as i64],
            )?;
            let op = if confirm { "confirm" } else { "refund" };
            log(t, &l.account, serial, seq, op, l.amount, balance)?;
            Ok(Ok((next, balance)))
        })
    }

    /// Records a verified purchase once: `false` when (payer, seq) was seen.
    pub fn record_purchase(
        &self,
        payer: &str,
        seq: u64,
        merchant: &str,
        amount: Amount,
    ) -> Res<bool> {
        let n = self.db.execute(
            "INSERT INTO purchases (payer, seq, merchant, amount, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
            params![payer, seq as i64, merchant, amount.as_i64(), now()],
        )?;
        Ok(n == 1)
    }

    /// Registers (or replaces) a card's purchase key.
    pub fn add_card(&self, number: &str, spki: &[u8]) -> Res<()> {
        self.db.execute(
            "INSERT INTO cards (number, spki, added_at) VALUES ($1, $2, $3)
             ON CONFLICT (number) DO UPDATE SET spki = excluded.spki, added_at = excluded.added_at",
            params![number, spki, now()],
        )?;
        Ok(())
    }

    /// A card's purchase key.
    pub fn card_spki(&self, number: &str) -> Res<Option<Vec<u8>>> {
        Ok(self
            .db
            .query_opt("SELECT spki FROM cards WHERE number = $1", params![number])?
            .map(|r| r.blob(0))
            .transpose()?)
    }

    /// The operation log of `account` (oldest first).
    pub fn oplog(&self, account: &str) -> Res<Vec<Op>> {
        let rows = self.db.query(
            "SELECT at, account, token_serial, seq, op, amount, balance FROM oplog
             WHERE account = $1 ORDER BY id",
            params![account],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Op {
                    at: r.int(0)?,
                    account: r.text(1)?,
                    token_serial: r.text(2)?,
                    seq: r.int(3)? as u64,
                    op: r.text(4)?,
                    amount: amount_of(r.int(5)?)?.to_string(),
                    balance: amount_of(r.int(6)?)?.to_string(),
                })
            })
            .collect::<db::Result<_>>()?)
    }
}

fn reg_row(r: &Row) -> db::Result<TokenReg> {
    Ok(TokenReg {
        cert_serial: r.text(0)?,
        token_serial: r.text(1)?,
        account: r.text(2)?,
        cert: r.blob(3)?,
        key_version: u32::try_from(r.int(4)?)
            .map_err(|_| db::Error::Data("key version out of range".into()))?,
        revoked: !matches!(r.0.get(5), None | Some(db::Value::Null)),
    })
}

const LOAD_COLUMNS: &str =
    "token_serial, seq, account, amount, random, cert_serial, state, host_date, host_time";

fn load_row(r: &Row) -> db::Result<Load> {
    let random = r.blob(4)?;
    Ok(Load {
        token_serial: r.text(0)?,
        seq: r.int(1)? as u64,
        account: r.text(2)?,
        amount: amount_of(r.int(3)?)?,
        random: random
            .as_slice()
            .try_into()
            .map_err(|_| db::Error::Data("a load's random is not 16 bytes".into()))?,
        cert_serial: r.text(5)?,
        state: LoadState::parse(&r.text(6)?).map_err(|e| db::Error::Data(e.to_string()))?,
        host_date: r.text(7)?,
        host_time: r.text(8)?,
    })
}

/// ` FOR UPDATE` on PostgreSQL (a row lock until the transaction ends); nothing on
/// SQLite, whose `BEGIN IMMEDIATE` transactions run one at a time.
fn for_update(t: &dyn Tx, lock: bool) -> &'static str {
    if lock && t.dialect() == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    }
}

fn load_in(t: &mut dyn Tx, serial: &str, seq: u64, lock: bool) -> db::Result<Option<Load>> {
    let sql = format!(
        "SELECT {LOAD_COLUMNS} FROM loads WHERE token_serial = $1 AND seq = $2{}",
        for_update(t, lock)
    );
    t.query_opt(&sql, params![serial, seq as i64])?
        .map(|r| load_row(&r))
        .transpose()
}

fn load_params(l: &Load, state: LoadState) -> Vec<db::Value> {
    params![
        &l.token_serial,
        l.seq as i64,
        &l.account,
        l.amount.as_i64(),
        &l.random[..],
        &l.cert_serial,
        state.as_str(),
        &l.host_date,
        &l.host_time,
        now()
    ]
    .to_vec()
}

fn insert_load(t: &mut dyn Tx, l: &Load, state: LoadState) -> db::Result<()> {
    t.execute(
        &format!(
            "INSERT INTO loads ({LOAD_COLUMNS}, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &load_params(l, state),
    )?;
    Ok(())
}

fn account_in(t: &mut dyn Tx, number: &str, lock: bool) -> db::Result<Option<Account>> {
    let sql = format!(
        "SELECT number, holder, balance, currency FROM accounts WHERE number = $1{}",
        for_update(t, lock)
    );
    t.query_opt(&sql, params![number])?
        .map(|r| {
            Ok(Account {
                number: r.text(0)?,
                holder: r.text(1)?,
                balance: amount_of(r.int(2)?)?,
                currency: r.text(3)?,
            })
        })
        .transpose()
}

/// The account, its row locked until the transaction ends (PostgreSQL).
fn lock_account(t: &mut dyn Tx, number: &str) -> db::Result<Option<Account>> {
    account_in(t, number, true)
}

fn set_balance(t: &mut dyn Tx, number: &str, balance: Amount) -> db::Result<()> {
    t.execute(
        "UPDATE accounts SET balance = $1 WHERE number = $2",
        params![balance.as_i64(), number],
    )?;
    Ok(())
}

fn log(
    t: &mut dyn Tx,
    account: &str,
    serial: &str,
    seq: u64,
    op: &str,
    amount: Amount,
    balance: Amount,
) -> db::Result<()> {
    t.execute(
        "INSERT INTO oplog (at, account, token_serial, seq, op, amount, balance)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        params![
            now(),
            account,
            serial,
            seq as i64,
            op,
            amount.as_i64(),
            balance.as_i64()
        ],
    )?;
    Ok(())
}

/// The bank database of directory `dir` (`database`: `--database`, default
/// `bank.db` in `dir`).
pub fn target(dir: &Path, database: Option<&str>) -> Res<Target> {
    Ok(Target::resolve(database, &dir.join(DB_FILE))?)
}
