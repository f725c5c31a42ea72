//! The SQLite backend: one connection per role file (WAL, synchronous FULL), every
//! transaction `BEGIN IMMEDIATE`, so one writer at a time and a crash leaves either
//! all of a step or none of it.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, TransactionBehavior};

use super::{Dialect, Error, Result, Row, Tx, Value};

/// A role's SQLite database.
pub struct Sqlite {
    conn: Mutex<Connection>,
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

/// SQLite's unique-key failures become [`Error::Duplicate`]; the rest stay as they are.
pub(super) fn err(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Error::Duplicate(msg.clone().unwrap_or_else(|| e.to_string()))
        }
        _ => Error::Sqlite(e),
    }
}

/// `$N` placeholders (PostgreSQL's, the roles' one spelling) as SQLite's `?N`, which
/// binds by number exactly as PostgreSQL does.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl Sqlite {
    /// Open (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Sqlite> {
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        Ok(Sqlite {
            conn: Mutex::new(conn),
        })
    }

    /// `f` in one IMMEDIATE transaction (the write lock taken at BEGIN).
    pub fn tx<T>(&self, mut f: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        // A panic while holding the lock leaves no half-written state (the
        // transaction rolls back when dropped), so a poisoned lock is still usable.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut t = SqliteTx { tx: &tx };
        let v = f(&mut t)?;
        tx.commit().map_err(err)?;
        Ok(v)
    }
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut st = self.tx.prepare_cached(&placeholders(sql)).map_err(err)?;
        let n = st
            .execute(rusqlite::params_from_iter(params))
            .map_err(err)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut st = self.tx.prepare_cached(&placeholders(sql)).map_err(err)?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(params)).map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i).map_err(err)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Int(v as i64),
                    ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                    ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.tx.execute_batch(sql).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_bind_by_number() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = $2 AND c = $1 AND d = '$'"),
            "SELECT a FROM t WHERE b = ?2 AND c = ?1 AND d = '$'"
        );
    }
}
