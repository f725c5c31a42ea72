//! `vtoken-load`: the load generator of vtoken's servers (issue 21).
//!
//! For each role (the CA's enrollments, the key server's downloads, the bank's
//! wallet loads) and each storage layout (SQLite; PostgreSQL with one instance; two
//! instances on the same PostgreSQL database) it sets up a fresh server directory
//! and database with the real `vtoken-server` command line, starts real `serve`
//! processes on 127.0.0.1, and drives them with N concurrent clients speaking the
//! protocol through the project's own protocol crates (`vtoken-pki`'s signed
//! enrollment, `vtoken-rks`'s device side, `vtoken-wallet`'s messages), each client
//! on one keep-alive connection, clients spread round-robin over the instances.
//! A run is a fixed number of operations whose inputs (keys, requests, queued keys,
//! registered tokens) are made before the clock starts.
//!
//! Reported per cell (one JSON object per line): operations/s, latency p50/p99/max
//! from the sorted samples, CPU per operation of the server processes and of the
//! PostgreSQL cluster (from /proc), of this generator, the wall time the servers
//! spent inside database transactions (each instance logs it when it shuts down),
//! and the bare cost of the public-key operations the server performs per
//! operation, timed in this process with the same crates. After each run the
//! database is checked: every operation is stored exactly once (CA: one certificate
//! per request, distinct serials; key server: every queued key delivered; bank:
//! every account debited exactly its loads). The exit status is 1 when a request
//! failed or a check did not add up; timings are measured, never judged.

// The tool needs no unsafe code: the system calls go through nix.
#![forbid(unsafe_code)]

mod bank;
mod ca;
mod rks;
mod sys;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use vtoken_testsupport::postgres::Postgres;

/// Load generator for vtoken-server: throughput, latency and CPU per request of the
/// CA, the key server and the bank, on SQLite and PostgreSQL.
#[derive(Parser)]
#[command(
    name = "vtoken-load",
    after_help = "Examples:\n  vtoken-load --json results.jsonl\n  vtoken-load --roles ca --backends postgres --instances 2 --clients 16 --ca-ops 2000\n\nscripts/load runs the whole matrix and writes docs/bench-servers.md and .svg."
)]
struct Args {
    /// The vtoken-server binary [default: beside this one].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Roles to run: ca, rks, bank.
    #[arg(long, value_delimiter = ',', default_value = "ca,rks,bank")]
    roles: Vec<String>,
    /// Storage backends: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Instance counts on PostgreSQL (SQLite always runs one instance: its file
    /// belongs to one process).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    instances: Vec<usize>,
    /// Concurrent clients (threads, one connection each).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Enrollments per CA cell.
    #[arg(long, default_value_t = 4000)]
    ca_ops: usize,
    /// Key downloads per key-server cell (one queued key per device).
    #[arg(long, default_value_t = 1500)]
    rks_ops: usize,
    /// Wallet loads (request + receipt) per bank cell.
    #[arg(long, default_value_t = 4000)]
    bank_ops: usize,
    /// Tokens (wallets) of the bank cells, spread over the clients.
    #[arg(long, default_value_t = 50)]
    bank_tokens: usize,
    /// Run PostgreSQL as the tests do (fsync=off) instead of durably (fsync=on,
    /// the default here: SQLite runs with synchronous=FULL).
    #[arg(long)]
    pg_no_fsync: bool,
    /// Append the results (one JSON object per cell) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Where a cell keeps its state.
pub enum Backend<'a> {
    Sqlite,
    Postgres { pg: &'a Postgres, db: String },
}

impl Backend<'_> {
    /// `--database URL` for the server's commands (nothing on SQLite).
    pub fn args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite => vec![],
            Backend::Postgres { pg, db } => vec!["--database".into(), pg.url(db)],
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// One value of an SQL query: on PostgreSQL in the role's schema `schema`, on
    /// SQLite in the role's file `file`.
    pub fn count(&self, schema: &str, file: &Path, sql: &str) -> Result<i64, String> {
        match self {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(file).map_err(|e| e.to_string())?;
                c.query_row(sql, [], |r| r.get(0))
                    .map_err(|e| format!("{sql}: {e}"))
            }
            Backend::Postgres { pg, db } => {
                let sql = sql.replace("FROM ", &format!("FROM {schema}."));
                pg.psql(db, &sql).parse().map_err(|e| format!("{sql}: {e}"))
            }
        }
    }
}

/// A role's cell, set up and ready to run.
pub trait Cell: Sync {
    /// Arguments of each `vtoken-server … serve` instance (the same for all).
    fn serve_args(&self) -> Vec<String>;
    /// HTTP requests one operation makes.
    fn requests_per_op(&self) -> f64;
    /// Operation `i` by client `client` against `url` over `agent`.
    fn op(&self, agent: &ureq::Agent, url: &str, client: usize, i: usize) -> Result<(), String>;
    /// After the run: the database holds exactly what the `ok` operations did.
    fn check(&self, backend: &Backend, ok: usize) -> Result<String, String>;
}

#[derive(Serialize, Default)]
struct Result_ {
    role: String,
    backend: String,
    instances: usize,
    clients: usize,
    ops: usize,
    ok: usize,
    failed: usize,
    first_error: Option<String>,
    seconds: f64,
    ops_per_s: f64,
    mean_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    http_requests_per_op: f64,
    server_cpu_ms_per_op: f64,
    pg_cpu_ms_per_op: Option<f64>,
    client_cpu_ms_per_op: f64,
    db_ms_per_op: Option<f64>,
    db_tx_per_op: Option<f64>,
    crypto_ms_per_op: f64,
    crypto_what: String,
    check: String,
    check_ok: bool,
    skipped: Option<String>,
}

/// The per-cell timings of the driver.
struct Run {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    wall: Duration,
}

/// `clients` threads, each with its own keep-alive agent and instance (round-robin),
/// take operation indices 0..ops from a shared counter until none are left.
fn drive(cell: &dyn Cell, urls: &[String], clients: usize, ops: usize) -> Run {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let per_client: Vec<(Vec<Duration>, Vec<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|c| {
                let (next, url) = (&next, &urls[c % urls.len()]);
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(120))
                        .max_idle_connections_per_host(1)
                        .build();
                    let (mut lat, mut err) = (Vec::new(), Vec::new());
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= ops {
                            break;
                        }
                        let t = Instant::now();
                        match cell.op(&agent, url, c, i) {
                            Ok(()) => lat.push(t.elapsed()),
                            Err(e) => err.push(format!("op {i}: {e}")),
                        }
                    }
                    (lat, err)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let wall = start.elapsed();
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for (l, e) in per_client {
        latencies.extend(l);
        errors.extend(e);
    }
    latencies.sort();
    Run {
        latencies,
        errors,
        wall,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// Set up, run and check one cell.
#[allow(clippy::too_many_arguments)]
fn run_cell(
    bin: &Path,
    role: &str,
    backend: &Backend,
    instances: usize,
    clients: usize,
    ops: usize,
    args: &Args,
    crypto: (f64, &str),
) -> Result<Result_, String> {
    let tmp = tempfile::Builder::new()
        .prefix("vtoken-load-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    eprintln!(
        "== {role} on {} × {instances}, {clients} clients, {ops} operations: setting up",
        backend.name()
    );
    let cell: Box<dyn Cell> = match role {
        "ca" => Box::new(ca::CaCell::setup(bin, tmp.path(), backend, ops)?),
        "rks" => Box::new(rks::RksCell::setup(bin, tmp.path(), backend, ops)?),
        "bank" => Box::new(bank::BankCell::setup(
            bin,
            tmp.path(),
            backend,
            args.bank_tokens.max(clients),
            clients,
        )?),
        r => return Err(format!("unknown role {r:?} (ca, rks, bank)")),
    };
    let servers: Vec<sys::Server> = (0..instances)
        .map(|_| sys::Server::start(bin, &cell.serve_args()))
        .collect::<Result<_, _>>()?;
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let pg_pid = match backend {
        Backend::Postgres { pg, .. } => pg.pid(),
        Backend::Sqlite => None,
    };
    let server_cpu = |srv: &[sys::Server]| srv.iter().map(|s| sys::cpu_of(s.pid())).sum::<f64>();
    let (s0, p0, c0) = (
        server_cpu(&servers),
        pg_pid.map(sys::tree_cpu),
        sys::own_cpu(),
    );
    eprintln!(
        "   running; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let run = drive(cell.as_ref(), &urls, clients, ops);
    let (s1, p1, c1) = (
        server_cpu(&servers),
        pg_pid.map(sys::tree_cpu),
        sys::own_cpu(),
    );
    let mut db = None::<sys::DbTime>;
    for s in servers {
        if let Some(d) = s.stop() {
            let t = db.get_or_insert_with(sys::DbTime::default);
            t.transactions += d.transactions;
            t.seconds += d.seconds;
        }
    }
    let ok = run.latencies.len();
    let (check, check_ok) = match cell.check(backend, ok) {
        Ok(m) => (m, true),
        Err(m) => (m, false),
    };
    let per = |x: f64| if ok > 0 { x * 1e3 / ok as f64 } else { 0.0 };
    let secs = run.wall.as_secs_f64();
    Ok(Result_ {
        role: role.into(),
        backend: backend.name().into(),
        instances,
        clients,
        ops,
        ok,
        failed: run.errors.len(),
        first_error: run.errors.first().cloned(),
        seconds: secs,
        ops_per_s: ok as f64 / secs,
        mean_ms: if ok > 0 {
            run.latencies.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / ok as f64
        } else {
            0.0
        },
        p50_ms: percentile(&run.latencies, 0.50),
        p99_ms: percentile(&run.latencies, 0.99),
        max_ms: percentile(&run.latencies, 1.0),
        http_requests_per_op: cell.requests_per_op(),
        server_cpu_ms_per_op: per(s1 - s0),
        pg_cpu_ms_per_op: p0.zip(p1).map(|(a, b)| per(b - a)),
        client_cpu_ms_per_op: per(c1 - c0),
        db_ms_per_op: db.map(|d| per(d.seconds)),
        db_tx_per_op: db.map(|d| d.transactions as f64 / ok.max(1) as f64),
        crypto_ms_per_op: crypto.0,
        crypto_what: crypto.1.into(),
        check,
        check_ok,
        skipped: None,
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match real_main(&args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vtoken-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(args: &Args) -> Result<bool, String> {
    let bin = sys::server_bin(args.server.clone())?;
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let mut out = match &args.json {
        Some(f) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .map_err(|e| format!("{}: {e}", f.display()))?,
        ),
        None => None,
    };
    let want_pg = args.backends.iter().any(|b| b == "postgres");
    let pg = want_pg.then(|| {
        let fsync = if args.pg_no_fsync {
            "fsync=off"
        } else {
            "fsync=on"
        };
        eprintln!("== starting PostgreSQL ({fsync})");
        Postgres::start_with(&["-c", fsync])
    });
    let bank_pg = bank::supports_database(&bin);
    let mut all_ok = true;
    let mut n = 0;
    for role in &args.roles {
        let crypto = match role.as_str() {
            "ca" => ca::bare_crypto()?,
            "rks" => rks::bare_crypto()?,
            "bank" => bank::bare_crypto()?,
            r => return Err(format!("unknown role {r:?} (ca, rks, bank)")),
        };
        let ops = match role.as_str() {
            "ca" => args.ca_ops,
            "rks" => args.rks_ops,
            _ => args.bank_ops,
        };
        let mut layouts: Vec<(&str, usize)> = Vec::new();
        for b in &args.backends {
            match b.as_str() {
                "sqlite" => layouts.push(("sqlite", 1)),
                "postgres" => layouts.extend(args.instances.iter().map(|&i| ("postgres", i))),
                other => return Err(format!("unknown backend {other:?} (sqlite, postgres)")),
            }
        }
        for (b, instances) in layouts {
            n += 1;
            let backend = match (b, &pg) {
                ("postgres", Some(pg)) => {
                    let db = format!("load{n}_{role}");
                    pg.database(&db);
                    Backend::Postgres { pg, db }
                }
                _ => Backend::Sqlite,
            };
            let r = if role == "bank" && b == "postgres" && !bank_pg {
                Result_ {
                    role: role.clone(),
                    backend: b.into(),
                    instances,
                    clients: args.clients,
                    skipped: Some(
                        "this vtoken-server's bank has no --database option (SQLite only)".into(),
                    ),
                    check_ok: true,
                    ..Result_::default()
                }
            } else {
                run_cell(
                    &bin,
                    role,
                    &backend,
                    instances,
                    args.clients,
                    ops,
                    args,
                    (crypto.0, &crypto.1),
                )?
            };
            if let Some(s) = &r.skipped {
                eprintln!("   skipped: {s}");
            } else {
                eprintln!(
                    "   {:.1} ops/s, p50 {:.2} ms, p99 {:.2} ms; server CPU {:.2} ms/op, \
                     PostgreSQL CPU {} ms/op, database {} ms/op, crypto {:.2} ms/op; \
                     {} ok, {} failed; check: {}",
                    r.ops_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    r.server_cpu_ms_per_op,
                    r.pg_cpu_ms_per_op.map_or("-".into(), |v| format!("{v:.2}")),
                    r.db_ms_per_op.map_or("-".into(), |v| format!("{v:.2}")),
                    r.crypto_ms_per_op,
                    r.ok,
                    r.failed,
                    r.check
                );
                if let Some(e) = &r.first_error {
                    eprintln!("   first error: {e}");
                }
            }
            all_ok &= r.failed == 0 && r.check_ok && (r.skipped.is_some() || r.ok == r.ops);
            let line = serde_json::to_string(&r).map_err(|e| e.to_string())?;
            println!("{line}");
            if let Some(f) = out.as_mut() {
                use std::io::Write;
                writeln!(f, "{line}").map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(all_ok)
}

/// CPU seconds per call of `f` on this thread (its CPU clock, so other processes
/// on the same cores do not inflate it): the median of 5 rounds of `n` calls.
pub fn time_per_call(n: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let t = sys::thread_cpu();
        for _ in 0..n {
            f()?;
        }
        rounds.push((sys::thread_cpu() - t) / n as f64);
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[2])
}

/// POST `body` to `url`+`path` with `agent`; the answer body, or the status and the
/// server's message.
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut req = agent.post(&format!("{url}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut r.into_reader(), &mut v).map_err(|e| e.to_string())?;
            Ok(v)
        }
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "{path}: HTTP {code}: {}",
            r.into_string().unwrap_or_default()
        )),
        Err(e) => Err(format!("{path}: {e}")),
    }
}
