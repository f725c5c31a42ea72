//! The sealed counters (SPEC T2: PIN retry counters and lockout; T5: several
//! processes): each a `u32` sealed under the public-record key and bound to its
//! token and name, read and written in immediate transactions so that processes
//! trying PINs at once never both see the same count.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::header::{ser, HEADER_AD};
use super::seal::{self, Key32};
use super::Store;
use crate::error::{Error, Part, Result};

/// Associated data of a sealed counter: a counter row copied to another name or
/// token fails to open.
pub(super) fn counter_ad(serial: &str, name: &str) -> Vec<u8> {
    format!("vtoken-counter-v1\0{serial}\0{name}").into_bytes()
}

fn open_counter(pub_key: &Key32, serial: &str, name: &str, sealed: &[u8]) -> Result<u32> {
    let p = seal::open(pub_key, &counter_ad(serial, name), sealed).ok_or_else(|| {
        Error::corrupt(Part::Counter(name.to_string()), "fails its integrity check")
    })?;
    <[u8; 4]>::try_from(&p[..])
        .map(u32::from_le_bytes)
        .map_err(|_| Error::corrupt(Part::Counter(name.to_string()), "damaged"))
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
        Ok(self
            .update_counter(name, |old| Ok(old.saturating_add(1)))?
            .1)
    }

    /// Atomically moves a counter forward to `to` and returns its old value; a
    /// counter already past `to` is left as it is and the error from `behind`
    /// (given the current value) returned. For counters that must never repeat a
    /// value (an event factor, SPEC V9).
    pub fn raise_counter(
        &mut self,
        name: &str,
        to: u32,
        behind: impl FnOnce(u32) -> Error,
    ) -> Result<u32> {
        Ok(self
            .update_counter(name, |old| if to < old { Err(behind(old)) } else { Ok(to) })?
            .0)
    }

    /// Reads a counter, computes its new value with `f` and writes it, in one
    /// immediate transaction; returns (old, new). Nothing is written when `f` fails.
    fn update_counter(
        &mut self,
        name: &str,
        f: impl FnOnce(u32) -> Result<u32>,
    ) -> Result<(u32, u32)> {
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
        let new = f(old)?;
        let s = seal::seal(&self.pub_key, &ad, &new.to_le_bytes())?;
        tx.execute(
            "INSERT INTO counters(name, v) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET v = excluded.v",
            params![name, s],
        )?;
        tx.commit()?;
        Ok((old, new))
    }
}
