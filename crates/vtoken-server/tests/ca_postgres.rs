//! The CA on PostgreSQL (issue 21): a real PostgreSQL cluster (Debian's package, a
//! temporary data directory, an unprivileged user, 127.0.0.1) and two or more real
//! `vtoken-server ca serve` processes on one database. Also the schema versioning of
//! both backends: an existing SQLite `ca.db` from before versioning keeps its data,
//! and a database newer than the binary is refused.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::SystemTime;

use common::*;
use vtoken_pki::{client, verify_chain, Error};
use vtoken_testsupport::postgres::Postgres;

/// Requests a minute each instance allows: high enough that the tests below are
/// never rate-limited.
const NO_LIMIT: &[&str] = &["--rate-limit", "1000000"];

/// `ca init --database URL` in a fresh directory; returns (tempdir, CA dir).
fn init_pg_ca(url: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = Command::new(BIN)
        .args(["ca", "init", "--dir", dir.to_str().unwrap()])
        .args(["--name", "Test Token CA", "--database", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, dir)
}

/// `n` CA instances on the database at `url`.
fn instances(dir: &Path, url: &str, n: usize) -> Vec<Server> {
    (0..n)
        .map(|_| {
            let mut extra = vec!["--database", url];
            extra.extend(NO_LIMIT);
            Server::ca_with(dir, &extra)
        })
        .collect()
}

fn serial_of(ca_dir: &Path, cert: &[u8]) -> String {
    let root = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    let root = vtoken_pki::certs_from_pem(&root).unwrap().remove(0);
    verify_chain(cert, &[], &root, SystemTime::now())
        .unwrap()
        .cert_serial
}

/// `vtoken-server ARGS`: (success, stderr).
fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serials_are_unique_and_monotonic_across_instances() {
    let pg = Postgres::start();
    let url = pg.database("ca_serials");
    let (_tmp, dir) = init_pg_ca(&url);
    let op = Operator::register_with(&dir, "station", "device", &["--database", &url]);
    let cas = instances(&dir, &url, 2);
    let cred = op.cred();

    // One after the other, alternating instances: each serial above the last.
    let mut last = String::new();
    for i in 0..12u64 {
        let token = Token::new(0x100 + i);
        let cert = client::enroll(&cas[i as usize % 2].url, &token.csr(), Some(&cred)).unwrap();
        let serial = serial_of(&dir, &cert);
        assert!(serial > last, "serial {serial} after {last}");
        last = serial;
    }

    // Concurrently, 4 threads on each instance: every serial distinct.
    let serials: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let (url, op, dir) = (&cas[t as usize % 2].url, &op, &dir);
                s.spawn(move || {
                    let cred = op.cred();
                    (0..10u64)
                        .map(|i| {
                            let token = Token::new(0x1000 + t * 100 + i);
                            let cert = client::enroll(url, &token.csr(), Some(&cred)).unwrap();
                            serial_of(dir, &cert)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: BTreeSet<_> = serials.iter().collect();
    assert_eq!(distinct.len(), 80);
    assert!(serials.iter().all(|s| s > &last));
    assert_eq!(pg.psql("ca_serials", "SELECT count(*) FROM ca.certs"), "92");
    assert_eq!(
        pg.psql(
            "ca_serials",
            "SELECT count(DISTINCT cert_serial) FROM ca.certs"
        ),
        "92"
    );
}

#[test]
fn a_token_never_gets_two_live_certificates_for_different_keys() {
    let pg = Postgres::start();
    let url = pg.database("ca_onekey");
    let (_tmp, dir) = init_pg_ca(&url);
    let op = Operator::register_with(&dir, "station", "device", &["--database", &url]);
    let cas = instances(&dir, &url, 2);

    // For each token serial, two different keys race on the two instances.
    for n in 0..15u64 {
        let serial = 0x2000 + n;
        let barrier = Arc::new(Barrier::new(2));
        let outcomes: Vec<Result<Vec<u8>, Error>> = std::thread::scope(|s| {
            let hs: Vec<_> = cas
                .iter()
                .map(|ca| {
                    let (barrier, op) = (barrier.clone(), &op);
                    s.spawn(move || {
                        let csr = Token::new(serial).csr();
                        let cred = op.cred();
                        barrier.wait();
                        client::enroll(&ca.url, &csr, Some(&cred))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(won, 1, "token {serial:X}: {outcomes:?}");
        for o in &outcomes {
            if let Err(e) = o {
                assert!(
                    matches!(e, Error::Http { status: 409, .. }),
                    "the loser is told to revoke first: {e}"
                );
            }
        }
    }
    assert_eq!(
        pg.psql(
            "ca_onekey",
            "SELECT count(*) FROM ca.certs WHERE revoked_at IS NULL"
        ),
        "15"
    );
    assert_eq!(
        pg.psql(
            "ca_onekey",
            "SELECT count(*) FROM (SELECT token_serial FROM ca.certs WHERE revoked_at IS NULL \
             GROUP BY token_serial HAVING count(DISTINCT spki_sha256) > 1) x"
        ),
        "0"
    );

    // Revoked on one instance (the CLI on the shared database), a new key enrolls on
    // the other.
    let token = Token::new(0x2000);
    let (ok, err) = run(&[
        "ca",
        "revoke",
        "--dir",
        dir.to_str().unwrap(),
        "--database",
        &url,
        "--serial",
        &token.serial,
    ]);
    assert!(ok, "{err}");
    client::enroll(&cas[1].url, &token.csr(), Some(&op.cred())).unwrap();
}

#[test]
fn a_batch_split_across_instances_issues_each_certificate_once() {
    let pg = Postgres::start();
    let url = pg.database("ca_batch");
    let (_tmp, dir) = init_pg_ca(&url);
    let op = Operator::register_with(&dir, "station", "device", &["--database", &url]);
    let cas = instances(&dir, &url, 3);

    let tokens: Vec<Token> = (0..60u64).map(|i| Token::new(0x3000 + i)).collect();
    let csrs: Vec<Vec<u8>> = tokens.iter().map(Token::csr).collect();
    // Three slices on three instances at once: the first two the same (a station
    // that retried its batch against another instance while the first was still
    // running: both race on every token), the third overlapping them.
    let slices = [&csrs[0..40], &csrs[0..40], &csrs[30..60]];
    let barrier = Arc::new(Barrier::new(3));
    let results: Vec<Vec<client::BatchOutcome>> = std::thread::scope(|s| {
        let hs: Vec<_> = slices
            .iter()
            .zip(&cas)
            .map(|(slice, ca)| {
                let (barrier, op) = (barrier.clone(), &op);
                s.spawn(move || {
                    let cred = op.cred();
                    barrier.wait();
                    client::enroll_batch(&ca.url, slice.to_vec(), Some(&cred)).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_token: HashMap<String, Vec<u8>> = HashMap::new();
    for (serial, outcome) in results.into_iter().flatten() {
        let cert = outcome.unwrap_or_else(|e| panic!("{serial}: {e}"));
        if let Some(before) = by_token.insert(serial.clone(), cert.clone()) {
            assert_eq!(before, cert, "token {serial} got two certificates");
        }
    }
    assert_eq!(by_token.len(), 60);
    assert_eq!(pg.psql("ca_batch", "SELECT count(*) FROM ca.certs"), "60");

    // Re-enrollment is idempotent on every instance: the same certificates, none new.
    for ca in &cas {
        let again = client::enroll_batch(&ca.url, csrs.clone(), Some(&op.cred())).unwrap();
        for (serial, outcome) in again {
            assert_eq!(outcome.unwrap(), by_token[&serial]);
        }
    }
    assert_eq!(pg.psql("ca_batch", "SELECT count(*) FROM ca.certs"), "60");
    // Published on every instance (E8).
    for ca in &cas {
        assert_eq!(
            client::fetch_cert(&ca.url, &tokens[7].serial).unwrap(),
            Some(by_token[&tokens[7].serial].clone())
        );
    }
}

#[test]
fn a_postgres_database_newer_than_the_binary_is_refused() {
    let pg = Postgres::start();
    let url = pg.database("ca_newer");
    let (tmp, dir) = init_pg_ca(&url);
    assert_eq!(
        pg.psql("ca_newer", "SELECT version FROM ca.schema_version"),
        "2"
    );
    // A second `ca init` on a database that holds a CA is refused.
    Operator::register_with(&dir, "station", "device", &["--database", &url]);
    let other = tmp.path().join("other-ca");
    let (ok, err) = run(&[
        "ca",
        "init",
        "--dir",
        other.to_str().unwrap(),
        "--database",
        &url,
    ]);
    assert!(
        !ok && err.contains("already holds a CA (0 certificates, 1 operators)"),
        "{err}"
    );
    assert!(!other.join("ca.key").exists());
    // A second start migrates nothing and changes nothing.
    drop(instances(&dir, &url, 2));
    assert_eq!(
        pg.psql("ca_newer", "SELECT count(*) FROM ca.schema_version"),
        "1"
    );
    pg.psql("ca_newer", "UPDATE ca.schema_version SET version = 99");
    let (ok, err) = run(&[
        "ca",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--database",
        &url,
        "--serial-range",
        RANGE,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        err.contains("schema version 99, newer than this vtoken-server"),
        "{err}"
    );
    let (ok, err) = run(&[
        "ca",
        "operator",
        "list",
        "--dir",
        dir.to_str().unwrap(),
        "--database",
        &url,
    ]);
    assert!(
        !ok && err.contains("newer than this vtoken-server"),
        "{err}"
    );
    // Nothing was changed by the refused starts.
    assert_eq!(
        pg.psql("ca_newer", "SELECT version FROM ca.schema_version"),
        "99"
    );
}

#[test]
fn a_wrong_database_url_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let (ok, err) = run(&[
        "ca",
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--database",
        "mysql://localhost/ca",
    ]);
    assert!(!ok && err.contains("give a postgres://"), "{err}");
    // Nobody listens on port 1: refused at start, and no half-made CA left behind.
    let (ok, err) = run(&[
        "ca",
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--database",
        "postgres://vtoken@127.0.0.1:1/ca",
    ]);
    assert!(!ok && err.contains("database unavailable"), "{err}");
    assert!(!dir.join("ca.key").exists());
}

#[test]
fn a_sqlite_database_newer_than_the_binary_is_refused() {
    let (_tmp, dir) = init_ca();
    let db = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    let v: i64 = db
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    db.execute("UPDATE schema_version SET version = 7", [])
        .unwrap();
    drop(db);
    let (ok, err) = run(&[
        "ca",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--serial-range",
        RANGE,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        err.contains("schema version 7, newer than this vtoken-server"),
        "{err}"
    );
}

/// The `ca.db` schema as the CA made it before versioning (no `schema_version`, no
/// `revoked_at`, no `client`).
const OLD_SCHEMA: &str = "
CREATE TABLE certs (id INTEGER PRIMARY KEY, cert_serial TEXT NOT NULL UNIQUE,
    token_serial TEXT NOT NULL, spki_sha256 TEXT NOT NULL, usage TEXT NOT NULL,
    cert BLOB NOT NULL, issued_at INTEGER NOT NULL);
CREATE TABLE requests (id INTEGER PRIMARY KEY, at INTEGER NOT NULL,
    token_serial TEXT NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE operators (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL UNIQUE, cert BLOB NOT NULL, profiles TEXT NOT NULL,
    added_at INTEGER NOT NULL);
CREATE TABLE nonces (nonce TEXT PRIMARY KEY, at INTEGER NOT NULL);
";

#[test]
fn an_existing_sqlite_database_keeps_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = vtoken_pki::LocalCa::init(&dir, "Test Token CA").unwrap();
    let token = Token::new(0x4242);
    let old_cert = ca
        .issue_for_spki(&token.spki(), &token.serial, vtoken_pki::Usage::Device)
        .unwrap();
    {
        let db = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
        db.execute_batch(OLD_SCHEMA).unwrap();
        db.execute(
            "INSERT INTO certs (cert_serial, token_serial, spki_sha256, usage, cert, issued_at)
             VALUES ('AA01', ?1, 'x', 'device', ?2, 1)",
            rusqlite::params![token.serial, old_cert],
        )
        .unwrap();
    }
    let op = Operator::register(&dir, "station", "device");
    let server = Server::ca(&dir);
    // The certificate stored before versioning is still published.
    assert_eq!(
        client::fetch_cert(&server.url, &token.serial).unwrap(),
        Some(old_cert)
    );
    // The upgraded database issues (serials from the new counter) and logs.
    let other = Token::new(0x4243);
    let cert = client::enroll(&server.url, &other.csr(), Some(&op.cred())).unwrap();
    assert!(serial_of(&dir, &cert).starts_with("010000000000000001"));
    assert_eq!(cert_count(&dir), 2);
    assert_eq!(request_count(&dir), 1);
    let db = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    let v: i64 = db
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

/// Issue 21, "killing the database connection or restarting PostgreSQL mid-run":
/// every answer is a certificate that is stored, or a clear 503 that changed
/// nothing; connections cut by PostgreSQL are replaced on the next request, and the
/// server serves again once PostgreSQL is back, without a restart of its own.
#[test]
fn database_connections_killed_and_postgres_restarted_mid_run() {
    let mut pg = Postgres::start();
    let url = pg.database("ca_outage");
    let (_tmp, dir) = init_pg_ca(&url);
    let op = Operator::register_with(&dir, "station", "device", &["--database", &url]);
    let cas = instances(&dir, &url, 2);
    let cred = op.cred();
    client::enroll(&cas[0].url, &Token::new(0x5000).csr(), Some(&cred)).unwrap();

    // Every server connection cut: the next requests reconnect and succeed.
    assert!(pg.kill_connections("ca_outage") >= 2);
    for (i, ca) in cas.iter().enumerate() {
        client::enroll(&ca.url, &Token::new(0x5001 + i as u64).csr(), Some(&cred))
            .unwrap_or_else(|e| panic!("after the connections were cut: {e}"));
    }

    // PostgreSQL down: a clear 503, nothing stored.
    pg.stop();
    let token = Token::new(0x5010);
    match client::enroll(&cas[1].url, &token.csr(), Some(&cred)) {
        Err(Error::Http {
            status: 503,
            message,
        }) => {
            assert!(message.contains("database unavailable"), "{message}")
        }
        other => panic!("with PostgreSQL down: {other:?}"),
    }
    assert_eq!(
        client::fetch_cert(&cas[0].url, &token.serial)
            .ok()
            .flatten(),
        None
    );
    pg.start_again();
    let cert = client::enroll(&cas[1].url, &token.csr(), Some(&cred)).unwrap();

    // Restarted while 4 clients enroll: whatever each got, the database agrees.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let got: Vec<(Token, Result<Vec<u8>, Error>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let (ca, op, stop) = (&cas[t as usize % 2], &op, &stop);
                s.spawn(move || {
                    let cred = op.cred();
                    let mut out = Vec::new();
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 200 {
                        let token = Token::new(0x6000 + t * 1000 + i);
                        let r = client::enroll(&ca.url, &token.csr(), Some(&cred));
                        out.push((token, r));
                        i += 1;
                    }
                    out
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(500));
        pg.stop();
        std::thread::sleep(std::time::Duration::from_millis(500));
        pg.start_again();
        std::thread::sleep(std::time::Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failed = got.iter().filter(|(_, r)| r.is_err()).count();
    assert!(failed > 0, "the restart was seen by some request");
    assert!(failed < got.len(), "requests succeeded around the restart");
    for (token, r) in &got {
        match r {
            // A certificate a client holds is the stored one.
            Ok(cert) => assert_eq!(
                client::fetch_cert(&cas[0].url, &token.serial)
                    .unwrap()
                    .as_ref(),
                Some(cert)
            ),
            Err(Error::Http { status, message }) => {
                assert!(
                    *status == 503 && message.contains("database unavailable"),
                    "{status} {message}"
                );
                // The retry gets the certificate (the stored one if the commit
                // made it before the cut), and only one.
                let again = client::enroll(&cas[1].url, &token.csr(), Some(&cred)).unwrap();
                assert_eq!(
                    client::fetch_cert(&cas[0].url, &token.serial).unwrap(),
                    Some(again)
                );
            }
            Err(e) => panic!("{}: {e}", token.serial),
        }
    }
    let n = got.len() + 4;
    assert_eq!(
        pg.psql("ca_outage", "SELECT count(*) FROM ca.certs"),
        n.to_string()
    );
    assert_eq!(
        client::fetch_cert(&cas[0].url, &token.serial).unwrap(),
        Some(cert)
    );
}

/// `GET url`: (status, body).
/// `/healthz`, `/readyz` (follows the database) and `/metrics` (Prometheus text:
/// requests by route and status, errors, latency histogram, the pool).
#[test]
fn health_readiness_and_metrics() {
    let mut pg = Postgres::start();
    let url = pg.database("ca_ops");
    let (_tmp, dir) = init_pg_ca(&url);
    let op = Operator::register_with(&dir, "station", "device", &["--database", &url]);
    let ca = instances(&dir, &url, 1).remove(0);
    assert_eq!(get(&format!("{}/healthz", ca.url)), (200, "ok\n".into()));
    assert_eq!(get(&format!("{}/readyz", ca.url)), (200, "ready\n".into()));
    client::enroll(&ca.url, &Token::new(0x7000).csr(), Some(&op.cred())).unwrap();
    assert_eq!(
        client::fetch_cert(&ca.url, "00000000DEADBEEF").unwrap(),
        None
    );

    pg.stop();
    let (status, body) = get(&format!("{}/readyz", ca.url));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database unavailable"), "{body}");
    assert_eq!(get(&format!("{}/healthz", ca.url)).0, 200);
    let e = client::enroll(&ca.url, &Token::new(0x7001).csr(), Some(&op.cred())).unwrap_err();
    assert!(matches!(e, Error::Http { status: 503, .. }), "{e}");
    pg.start_again();
    assert_eq!(get(&format!("{}/readyz", ca.url)).0, 200);

    let (status, m) = get(&format!("{}/metrics", ca.url));
    assert_eq!(status, 200);
    for line in [
        "vtoken_http_requests_total{route=\"/api/v1/enroll\",status=\"200\"} 1",
        "vtoken_http_requests_total{route=\"/api/v1/enroll\",status=\"503\"} 1",
        // The route pattern, not the serial asked for.
        "vtoken_http_requests_total{route=\"/api/v1/certs/:serial\",status=\"404\"} 1",
        "vtoken_http_requests_total{route=\"/readyz\",status=\"503\"} 1",
        "vtoken_http_errors_total 2",
        "vtoken_db_pool_connections{state=\"max\"} 16",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
    }
    assert!(m.contains("vtoken_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(m.contains("vtoken_http_request_duration_seconds_count"));

    // SQLite: ready, no pool.
    let (_tmp2, dir2) = init_ca();
    let ca2 = Server::ca(&dir2);
    assert_eq!(get(&format!("{}/readyz", ca2.url)).0, 200);
    let (_, m2) = get(&format!("{}/metrics", ca2.url));
    assert!(!m2.contains("vtoken_db_pool"), "{m2}");
}

/// One of two instances killed (SIGKILL) while clients enroll through it: its open
/// transactions roll back with its connections, so every token ends with exactly
/// one certificate once the failed requests are retried on the other instance, and
/// every certificate a client received is the stored one.
#[test]
fn an_instance_killed_mid_run_leaves_no_half_enrollment() {
    let pg = Postgres::start();
    let url = pg.database("ca_kill");
    let (_tmp, dir) = init_pg_ca(&url);
    let op = Operator::register_with(&dir, "station", "device", &["--database", &url]);
    let mut cas = instances(&dir, &url, 2);
    let (a, b) = (cas[0].url.clone(), cas[1].url.clone());
    let got: Vec<(Token, Result<Vec<u8>, Error>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let (a, op) = (&a, &op);
                s.spawn(move || {
                    let cred = op.cred();
                    (0..60u64)
                        .map(|i| {
                            let token = Token::new(0x8000 + t * 1000 + i);
                            let r = client::enroll(a, &token.csr(), Some(&cred));
                            (token, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(400));
        // Server's drop is Child::kill: SIGKILL.
        drop(cas.remove(0));
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failed = got.iter().filter(|(_, r)| r.is_err()).count();
    assert!(
        failed > 0 && failed < got.len(),
        "{failed} of {}",
        got.len()
    );
    let cred = op.cred();
    for (token, r) in &got {
        let again = client::enroll(&b, &token.csr(), Some(&cred)).unwrap();
        if let Ok(cert) = r {
            assert_eq!(
                &again, cert,
                "re-enrollment returns the certificate received"
            );
        }
        assert_eq!(client::fetch_cert(&b, &token.serial).unwrap(), Some(again));
    }
    assert_eq!(
        pg.psql("ca_kill", "SELECT count(*) FROM ca.certs"),
        got.len().to_string()
    );
}
