//! The bank's SQLite database (SPEC W1): accounts in integer minor units, the
//! registered tokens with their wallet certificates, the load records (keyed by
//! token serial and sequence number, see `vtoken_wallet::record`), the purchases
//! seen, and the operation log. Every step of a load is one transaction: the
//! balance, the load record and the log line move together or not at all.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use vtoken_wallet::{Amount, LoadState};

/// File name of the database in a bank directory.
pub const DB_FILE: &str = "bank.db";

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
    /// SQLite.
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Refused(m) | StoreError::Funds(m) => f.write_str(m),
            StoreError::Db(e) => write!(f, "database: {e}"),
        }
    }
}

type Res<T> = Result<T, StoreError>;

fn refuse<T>(m: impl Into<String>) -> Res<T> {
    Err(StoreError::Refused(m.into()))
}

fn amount_of(v: i64) -> rusqlite::Result<Amount> {
    Amount::from_i64(v).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            "negative amount".into(),
        )
    })
}

/// The bank database.
pub struct BankStore {
    conn: Connection,
}

impl BankStore {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<BankStore> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(BankStore { conn })
    }

    /// Opens an account with an opening balance.
    pub fn open_account(
        &mut self,
        number: &str,
        holder: &str,
        balance: Amount,
        currency: &str,
    ) -> Res<()> {
        let tx = self.conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row("SELECT 1 FROM accounts WHERE number = ?1", [number], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return refuse(format!("account {number} exists"));
        }
        tx.execute(
            "INSERT INTO accounts (number, holder, balance, currency, opened_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![number, holder, balance.as_i64(), currency, now()],
        )?;
        log(&tx, number, "", 0, "open", balance, balance)?;
        tx.commit()?;
        Ok(())
    }

    /// Credits an account (admin).
    pub fn credit_account(&mut self, number: &str, amount: Amount) -> Res<Amount> {
        let tx = self.conn.transaction()?;
        let a = account_in(&tx, number)?;
        let Some(b) = a.balance.checked_add(amount) else {
            return refuse("the balance would overflow");
        };
        tx.execute(
            "UPDATE accounts SET balance = ?1 WHERE number = ?2",
            params![b.as_i64(), number],
        )?;
        log(&tx, number, "", 0, "credit", amount, b)?;
        tx.commit()?;
        Ok(b)
    }

    /// The account `number`.
    pub fn account(&self, number: &str) -> Res<Account> {
        account_in(&self.conn, number)
    }

    /// Registers a wallet certificate bound to `account`.
    pub fn register(&mut self, reg: &TokenReg) -> Res<()> {
        let tx = self.conn.transaction()?;
        account_in(&tx, &reg.account)?;
        tx.execute(
            "INSERT INTO tokens (cert_serial, token_serial, account, cert, key_version, registered_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                reg.cert_serial,
                reg.token_serial,
                reg.account,
                reg.cert,
                reg.key_version,
                now()
            ],
        )?;
        log(
            &tx,
            &reg.account,
            &reg.token_serial,
            0,
            "register",
            Amount::ZERO,
            account_in(&tx, &reg.account)?.balance,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Revokes every live certificate of token `serial` (or the one certificate with
    /// that serial); returns the certificate serials revoked.
    pub fn revoke(&mut self, serial: &str) -> Res<Vec<String>> {
        let tx = self.conn.transaction()?;
        let ids: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT cert_serial FROM tokens WHERE (token_serial = ?1 OR cert_serial = ?1) AND revoked_at IS NULL",
            )?;
            let r = st.query_map([serial], |r| r.get(0))?;
            r.collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            tx.execute(
                "UPDATE tokens SET revoked_at = ?1 WHERE cert_serial = ?2",
                params![now(), id],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// The newest registration of token `serial` (revoked or not).
    pub fn token(&self, serial: &str) -> Res<Option<TokenReg>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cert_serial, token_serial, account, cert, key_version, revoked_at
                 FROM tokens WHERE token_serial = ?1 ORDER BY registered_at DESC, rowid DESC LIMIT 1",
                [serial],
                reg_row,
            )
            .optional()?)
    }

    /// The load record of (serial, seq).
    pub fn load(&self, serial: &str, seq: u64) -> Res<Option<Load>> {
        load_in(&self.conn, serial, seq)
    }

    /// Every load record of token `serial` (by sequence number).
    pub fn loads(&self, serial: &str) -> Res<Vec<Load>> {
        let mut st = self.conn.prepare(
            "SELECT token_serial, seq, account, amount, random, cert_serial, state, host_date, host_time
             FROM loads WHERE token_serial = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map([serial], load_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Step 311: debits the account and records the load as debited, in one
    /// transaction. The same request again (same random, amount, account) while the
    /// load is debited returns the record (the permit is re-sent after a lost
    /// answer); any other reuse of the sequence number is a replay. `refusal`: a
    /// verified request the bank turns down (wrong account, insufficient funds)
    /// burns the sequence number as cancelled.
    pub fn debit(&mut self, l: &Load) -> Res<Load> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(old) = load_in(&tx, &l.token_serial, l.seq)? {
            if old.state == LoadState::Debited
                && old.random == l.random
                && old.amount == l.amount
                && old.account == l.account
            {
                return Ok(old);
            }
            return refuse(format!(
                "replayed request: load {} of token {} is already {}",
                l.seq, l.token_serial, old.state
            ));
        }
        let a = account_in(&tx, &l.account)?;
        let Some(left) = a.balance.checked_sub(l.amount) else {
            insert_load(&tx, l, LoadState::Cancelled)?;
            log(
                &tx,
                &l.account,
                &l.token_serial,
                l.seq,
                "refused-insufficient",
                l.amount,
                a.balance,
            )?;
            tx.commit()?;
            return Err(StoreError::Funds(format!(
                "insufficient funds in account {} ({} {})",
                a.number, a.balance, a.currency
            )));
        };
        tx.execute(
            "UPDATE accounts SET balance = ?1 WHERE number = ?2",
            params![left.as_i64(), l.account],
        )?;
        insert_load(&tx, l, LoadState::Debited)?;
        log(
            &tx,
            &l.account,
            &l.token_serial,
            l.seq,
            "debit",
            l.amount,
            left,
        )?;
        tx.commit()?;
        Ok(Load {
            state: LoadState::Debited,
            ..l.clone()
        })
    }

    /// Burns a sequence number for a request refused before any debit.
    pub fn cancel_unseen(&mut self, l: &Load, why: &str) -> Res<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if load_in(&tx, &l.token_serial, l.seq)?.is_none() {
            insert_load(&tx, l, LoadState::Cancelled)?;
            let bal = account_in(&tx, &l.account)
                .map(|a| a.balance)
                .unwrap_or_default();
            log(&tx, &l.account, &l.token_serial, l.seq, why, l.amount, bal)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Steps 316–318 on a verified receipt (`confirm`) or a verified abort
    /// (`!confirm`): Debited → Confirmed, Debited → Refunded (the debit given back),
    /// or no record → Cancelled. A final record answers with its state again; a
    /// receipt for a refunded load or an abort of a confirmed one cannot happen with
    /// an honest token and is refused.
    pub fn settle(
        &mut self,
        serial: &str,
        seq: u64,
        random: &[u8; 16],
        confirm: bool,
        unseen: impl FnOnce() -> Option<Load>,
    ) -> Res<(LoadState, Amount)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(l) = load_in(&tx, serial, seq)? else {
            if confirm {
                return refuse(format!("no load {seq} of token {serial}"));
            }
            let Some(l) = unseen() else {
                return refuse(format!("no load {seq} of token {serial}"));
            };
            insert_load(&tx, &l, LoadState::Cancelled)?;
            let bal = account_in(&tx, &l.account)
                .map(|a| a.balance)
                .unwrap_or_default();
            log(&tx, &l.account, serial, seq, "cancel", l.amount, bal)?;
            tx.commit()?;
            return Ok((LoadState::Cancelled, bal));
        };
        if &l.random != random {
            return refuse(format!(
                "load {seq} of token {serial}: the random does not match (replayed or forged)"
            ));
        }
        let a = account_in(&tx, &l.account)?;
        let to = if confirm {
            LoadState::Confirmed
        } else {
            LoadState::Refunded
        };
        if l.state == to || (l.state == LoadState::Cancelled && !confirm) {
            return Ok((l.state, a.balance));
        }
        let next = l
            .state
            .advance(to)
            .map_err(|e| StoreError::Refused(e.to_string()))?;
        let mut balance = a.balance;
        if next == LoadState::Refunded {
            let Some(b) = balance.checked_add(l.amount) else {
                return refuse("the balance would overflow");
            };
            balance = b;
            tx.execute(
                "UPDATE accounts SET balance = ?1 WHERE number = ?2",
                params![balance.as_i64(), l.account],
            )?;
        }
        tx.execute(
            "UPDATE loads SET state = ?1, updated_at = ?2 WHERE token_serial = ?3 AND seq = ?4",
            params![next.as_str(), now(), serial, seq as i64],
        )?;
        let op = if confirm { "confirm" } else { "refund" };
        log(&tx, &l.account, serial, seq, op, l.amount, balance)?;
        tx.commit()?;
        Ok((next, balance))
    }

    /// Records a verified purchase once: `false` when (payer, seq) was seen.
    pub fn record_purchase(
        &mut self,
        payer: &str,
        seq: u64,
        merchant: &str,
        amount: Amount,
    ) -> Res<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO purchases (payer, seq, merchant, amount, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![payer, seq as i64, merchant, amount.as_i64(), now()],
        )?;
        Ok(n == 1)
    }

    /// Registers a card's purchase key.
    pub fn add_card(&mut self, number: &str, spki: &[u8]) -> Res<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO cards (number, spki, added_at) VALUES (?1, ?2, ?3)",
            params![number, spki, now()],
        )?;
        Ok(())
    }

    /// A card's purchase key.
    pub fn card_spki(&self, number: &str) -> Res<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT spki FROM cards WHERE number = ?1", [number], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// The operation log of `account` (oldest first).
    pub fn oplog(&self, account: &str) -> Res<Vec<Op>> {
        let mut st = self.conn.prepare(
            "SELECT at, account, token_serial, seq, op, amount, balance FROM oplog WHERE account = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([account], |r| {
            Ok(Op {
                at: r.get(0)?,
                account: r.get(1)?,
                token_serial: r.get(2)?,
                seq: r.get::<_, i64>(3)? as u64,
                op: r.get(4)?,
                amount: amount_of(r.get(5)?)?.to_string(),
                balance: amount_of(r.get(6)?)?.to_string(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn reg_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenReg> {
    Ok(TokenReg {
        cert_serial: r.get(0)?,
        token_serial: r.get(1)?,
        account: r.get(2)?,
        cert: r.get(3)?,
        key_version: r.get(4)?,
        revoked: r.get::<_, Option<i64>>(5)?.is_some(),
    })
}

fn load_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Load> {
    let random: Vec<u8> = r.get(4)?;
    let state: String = r.get(6)?;
    Ok(Load {
        token_serial: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        account: r.get(2)?,
        amount: amount_of(r.get(3)?)?,
        random: random.as_slice().try_into().unwrap_or([0; 16]),
        cert_serial: r.get(5)?,
        state: LoadState::parse(&state).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, e.into())
        })?,
        host_date: r.get(7)?,
        host_time: r.get(8)?,
    })
}

fn load_in(c: &Connection, serial: &str, seq: u64) -> Res<Option<Load>> {
    Ok(c.query_row(
        "SELECT token_serial, seq, account, amount, random, cert_serial, state, host_date, host_time
         FROM loads WHERE token_serial = ?1 AND seq = ?2",
        params![serial, seq as i64],
        load_row,
    )
    .optional()?)
}

fn insert_load(c: &Connection, l: &Load, state: LoadState) -> Res<()> {
    c.execute(
        "INSERT INTO loads (token_serial, seq, account, amount, random, cert_serial, state, host_date, host_time, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            l.token_serial,
            l.seq as i64,
            l.account,
            l.amount.as_i64(),
            &l.random[..],
            l.cert_serial,
            state.as_str(),
            l.host_date,
            l.host_time,
            now()
        ],
    )?;
    Ok(())
}

fn account_in(c: &Connection, number: &str) -> Res<Account> {
    c.query_row(
        "SELECT number, holder, balance, currency FROM accounts WHERE number = ?1",
        [number],
        |r| {
            Ok(Account {
                number: r.get(0)?,
                holder: r.get(1)?,
                balance: amount_of(r.get(2)?)?,
                currency: r.get(3)?,
            })
        },
    )
    .optional()?
    .map_or_else(|| refuse(format!("no account {number}")), Ok)
}

fn log(
    c: &Connection,
    account: &str,
    serial: &str,
    seq: u64,
    op: &str,
    amount: Amount,
    balance: Amount,
) -> Res<()> {
    c.execute(
        "INSERT INTO oplog (at, account, token_serial, seq, op, amount, balance) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![now(), account, serial, seq as i64, op, amount.as_i64(), balance.as_i64()],
    )?;
    Ok(())
}
