//! The PostgreSQL backend: `tokio-postgres` behind a `deadpool-postgres` pool, driven
//! from the roles' blocking code (the HTTP layer runs backends on blocking threads)
//! by the pool's own small runtime, so the CLI commands and the servers use it alike.
//!
//! Failures: a lost connection or a PostgreSQL that is down is
//! [`Error::Unavailable`] (the transaction is gone, nothing of it applied; the pool
//! drops the dead connection and opens a new one on the next request); a
//! serialization failure or deadlock is [`Error::Conflict`], retried by [`Pg::tx`].

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{IsolationLevel, NoTls};

use super::{Dialect, Error, Mode, Result, Row, Tx, Value};

/// Connections each server instance keeps at most.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection (pool exhausted or database down).
const WAIT: Duration = Duration::from_secs(10);
/// How long opening one connection may take.
const CONNECT: Duration = Duration::from_secs(5);
/// Attempts of a SERIALIZABLE transaction before its conflict is reported.
const ATTEMPTS: u32 = 20;

/// A role's PostgreSQL database: the pool and the runtime that drives it.
pub struct Pg {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    describe: String,
}

impl Drop for Pg {
    fn drop(&mut self) {
        // The servers drop their role inside their own runtime, where a blocking
        // shutdown is not allowed; the pool's tasks need no orderly end.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(v) => v.as_str().to_sql(ty, out),
            Value::Blob(v) => v.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in to_sql (the wrong type is an error there).
        true
    }

    to_sql_checked!();
}

/// Classify a driver error: unavailable (no connection), conflict (retry),
/// duplicate key, or PostgreSQL's refusal with its SQLSTATE.
fn err(e: tokio_postgres::Error) -> Error {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Error::Conflict(e.to_string())
        }
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => Error::Duplicate(db_message(&e)),
        // Administrator shutdown, crash shutdown, cannot connect now, ...
        Some(c) if c.code().starts_with("57P") || c.code().starts_with("08") => {
            Error::Unavailable(db_message(&e))
        }
        Some(c) => Error::Postgres(format!("{} (SQLSTATE {})", db_message(&e), c.code())),
        None => Error::Unavailable(e.to_string()),
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

fn pool_err(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => err(e),
        e => Error::Unavailable(e.to_string()),
    }
}

impl Pg {
    /// Connect to `url` with the role's schema first on the search path, and open
    /// one connection now, so a wrong URL or a database that is down fails at start.
    pub fn connect(url: &str, schema: &str) -> Result<Pg> {
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| Error::Config(format!("database URL: {e}")))?;
        cfg.options(format!("-c search_path={schema}"));
        cfg.application_name("vtoken-server");
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT);
        }
        let describe = describe(&cfg);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vtoken-db")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("database runtime: {e}")))?;
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            // Verified: a pooled connection answers a query before it is handed out.
            // `Fast` only asks whether the client noticed a close, and a connection
            // PostgreSQL just terminated (a restart, `pg_terminate_backend`, a failover)
            // may not be noticed yet: the next request would fail with a 503 although
            // a fresh connection would serve it. One round trip per checkout buys that.
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = {
            let _in = rt.enter();
            Pool::builder(mgr)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(WAIT))
                .create_timeout(Some(CONNECT))
                .recycle_timeout(Some(CONNECT))
                .build()
                .map_err(|e| Error::Config(format!("database pool: {e}")))?
        };
        // The first connection, back to the pool at once.
        drop(rt.block_on(pool.get()).map_err(|e| match pool_err(e) {
            Error::Unavailable(m) => Error::Unavailable(format!("{describe}: {m}")),
            e => e,
        })?);
        Ok(Pg {
            rt: Some(rt),
            pool,
            describe,
        })
    }

    /// `user@host:port/db`, for logs (never the password).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The pool's state (`/metrics`).
    pub fn status(&self) -> crate::ops::PoolStatus {
        let s = self.pool.status();
        crate::ops::PoolStatus {
            max: s.max_size,
            open: s.size,
            idle: s.available,
            waiting: s.waiting,
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("runtime present until drop")
    }

    /// `f` in one transaction at `mode`'s isolation; retried on a serialization
    /// failure in [`Mode::Serializable`].
    pub fn tx<T>(&self, mode: Mode, mut f: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_tx(mode, &mut f) {
                Err(Error::Conflict(m)) if mode == Mode::Serializable && attempt < ATTEMPTS => {
                    tracing::debug!(attempt, "serialization conflict, retrying: {m}");
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 2));
                }
                r => return r,
            }
        }
    }

    fn try_tx<T>(&self, mode: Mode, f: &mut impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let rt = self.rt();
        let mut client = rt.block_on(self.pool.get()).map_err(pool_err)?;
        let level = match mode {
            Mode::ReadCommitted => IsolationLevel::ReadCommitted,
            Mode::Serializable => IsolationLevel::Serializable,
        };
        let tx = rt
            .block_on(client.build_transaction().isolation_level(level).start())
            .map_err(err)?;
        let mut t = PgTx { rt, tx };
        // On an error the transaction is dropped: tokio-postgres rolls it back.
        let v = f(&mut t)?;
        rt.block_on(t.tx.commit()).map_err(err)?;
        Ok(v)
    }
}

fn describe(cfg: &tokio_postgres::Config) -> String {
    let host = cfg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or(""),
        cfg.get_dbname().unwrap_or("")
    )
}

struct PgTx<'a> {
    rt: &'a tokio::runtime::Runtime,
    tx: deadpool_postgres::Transaction<'a>,
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn row(r: &tokio_postgres::Row) -> Result<Row> {
    let mut out = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let get_err = |e: tokio_postgres::Error| Error::Data(format!("column {}: {e}", c.name()));
        let v = match *c.type_() {
            Type::INT8 => r
                .try_get::<_, Option<i64>>(i)
                .map_err(get_err)?
                .map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)
                .map_err(get_err)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)
                .map_err(get_err)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)
                .map_err(get_err)?
                .map(|v| Value::Int(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => r
                .try_get::<_, Option<String>>(i)
                .map_err(get_err)?
                .map(Value::Text),
            Type::BYTEA => r
                .try_get::<_, Option<Vec<u8>>>(i)
                .map_err(get_err)?
                .map(Value::Blob),
            // VOID (what pg_advisory_xact_lock returns) and anything not read.
            _ => None,
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

impl Tx for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let tx = &self.tx;
        self.rt
            .block_on(async {
                let st = tx.prepare_cached(sql).await?;
                tx.execute(&st, &refs(params)).await
            })
            .map_err(err)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let tx = &self.tx;
        let rows = self
            .rt
            .block_on(async {
                let st = tx.prepare_cached(sql).await?;
                tx.query(&st, &refs(params)).await
            })
            .map_err(err)?;
        rows.iter().map(row).collect()
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.rt.block_on(self.tx.batch_execute(sql)).map_err(err)
    }
}
