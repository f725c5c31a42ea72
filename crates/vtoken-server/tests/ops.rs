//! Operations of the server roles and the certificate server on the storage layer
//! (issue 21), against real `vtoken-server` processes and a real PostgreSQL (the
//! throwaway cluster of `vtoken_testsupport::postgres`):
//! - two certificate servers on one PostgreSQL database hand out notice numbers in
//!   commit order, each certificate once, while a station reads the notices;
//! - `/healthz`, `/readyz` (follows the database) and `/metrics` on the certificate
//!   server and the key server;
//! - every response carries a request id, and every log line of the request names
//!   it (JSON logs), in the blocking workers too;
//! - SIGTERM lets the request in flight finish before the process exits.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use vtoken_pki::client;
use vtoken_testsupport::postgres::Postgres;

/// A server process whose log (stderr) goes to a file the test reads.
struct Logged {
    server: Server,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Logged {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Logged {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("stderr.log");
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("VTOKEN_LOG", "warn")
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap());
        Logged {
            server: Server::spawn(cmd),
            log,
            _tmp: tmp,
        }
    }

    fn url(&self) -> &str {
        &self.server.url
    }

    fn child(&mut self) -> &mut Child {
        &mut self.server.child
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// A CA (SQLite) and `n` certificates it issued to tokens 0x5000.. through its API.
fn issued(n: u64) -> (tempfile::TempDir, PathBuf, Vec<Vec<u8>>) {
    let (tmp, dir) = init_ca();
    let op = Operator::register(&dir, "station", "device");
    let ca = Server::ca_with(&dir, &["--rate-limit", "1000000"]);
    let certs = (0..n)
        .map(|i| client::enroll(&ca.url, &Token::new(0x5000 + i).csr(), Some(&op.cred())).unwrap())
        .collect();
    (tmp, dir, certs)
}

fn certsrv(tmp: &Path, name: &str, ca_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Logged {
    let dir = tmp.join(name);
    let ca = ca_dir.join("ca.pem");
    let mut args = vec![
        "certs",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--ca-cert",
        ca.to_str().unwrap(),
    ];
    args.extend(extra);
    Logged::start(&args, env)
}

fn serial_of(ca_dir: &Path, cert: &[u8]) -> (String, String) {
    let root = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    let root = vtoken_pki::certs_from_pem(&root).unwrap().remove(0);
    let v = vtoken_pki::verify_chain(cert, &[], &root, SystemTime::now()).unwrap();
    (v.token_serial, v.cert_serial)
}

/// Two certificate servers on one PostgreSQL database, four publishers (each
/// certificate published once on each instance, as a CA retrying on another
/// instance would) and a station reading the notices from the second instance the
/// whole time: every certificate gets exactly one notice, the numbers are 1..=N
/// with no gap, republishing answers the same number, and the station's cursor
/// never skips a notice (numbers are given in commit order).
#[test]
fn certsrv_instances_on_postgres_notice_each_certificate_once_in_commit_order() {
    const N: u64 = 40;
    let pg = Postgres::start();
    let url = pg.database("certs");
    let (tmp, ca_dir, certs) = issued(N);
    let db = ["--database", url.as_str()];
    let a = certsrv(tmp.path(), "certs-a", &ca_dir, &db, &[]);
    let b = certsrv(tmp.path(), "certs-b", &ca_dir, &db, &[]);
    let urls = [a.url().to_string(), b.url().to_string()];

    let stop = Arc::new(AtomicBool::new(false));
    let station = {
        let (url, stop) = (b.url().to_string(), stop.clone());
        std::thread::spawn(move || {
            let (mut seen, mut cursor) = (Vec::new(), 0u64);
            loop {
                let last = stop.load(Ordering::SeqCst);
                for n in client::notices(&url, cursor).unwrap() {
                    assert!(n.id > cursor, "notice {} after cursor {cursor}", n.id);
                    cursor = n.id;
                    seen.push(n);
                }
                if last {
                    return seen;
                }
            }
        })
    };
    let certs = Arc::new(certs);
    let publishers: Vec<_> = (0..4usize)
        .map(|t| {
            let (certs, urls) = (certs.clone(), urls.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for (i, c) in certs.iter().enumerate().filter(|(i, _)| i % 4 == t) {
                    let first = client::publish(&urls[i % 2], c).unwrap();
                    let again = client::publish(&urls[(i + 1) % 2], c).unwrap();
                    assert_eq!(first.notice, again.notice, "republishing is a no-op");
                    got.push((first.notice, first.cert_serial));
                }
                got
            })
        })
        .collect();
    let mut published: Vec<(u64, String)> = publishers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let seen = station.join().unwrap();

    published.sort();
    let ids: Vec<u64> = published.iter().map(|p| p.0).collect();
    assert_eq!(ids, (1..=N).collect::<Vec<_>>(), "one number each, no gap");
    let by_station: Vec<(u64, String)> =
        seen.iter().map(|n| (n.id, n.cert_serial.clone())).collect();
    assert_eq!(by_station, published, "the station saw every notice once");
    let serials: BTreeSet<String> = certs.iter().map(|c| serial_of(&ca_dir, c).1).collect();
    assert_eq!(serials.len() as u64, N);
    assert_eq!(
        published
            .iter()
            .map(|p| p.1.clone())
            .collect::<BTreeSet<_>>(),
        serials
    );
    assert_eq!(
        pg.psql("certs", "SELECT count(*) FROM certsrv.published"),
        N.to_string()
    );
    // Either instance serves what the other stored.
    for c in certs.iter().take(3) {
        let (token, _) = serial_of(&ca_dir, c);
        assert_eq!(
            client::fetch_cert(a.url(), &token).unwrap().as_deref(),
            Some(&c[..])
        );
        assert_eq!(
            client::fetch_cert(b.url(), &token).unwrap().as_deref(),
            Some(&c[..])
        );
    }
}

/// The certificate server on PostgreSQL: ready while the database answers, 503 and
/// nothing stored while it is down, ready again after; the metrics count by route
/// pattern and show the pool. The key server on SQLite: ready, metrics without a
/// pool, its protocol route counted.
#[test]
fn certsrv_and_key_server_answer_health_readiness_and_metrics() {
    let mut pg = Postgres::start();
    let url = pg.database("certs_ops");
    let (tmp, ca_dir, certs) = issued(2);
    let s = certsrv(tmp.path(), "certs", &ca_dir, &["--database", &url], &[]);
    assert_eq!(get(&format!("{}/healthz", s.url())), (200, "ok\n".into()));
    assert_eq!(get(&format!("{}/readyz", s.url())), (200, "ready\n".into()));
    client::publish(s.url(), &certs[0]).unwrap();

    pg.stop();
    let (status, body) = get(&format!("{}/readyz", s.url()));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database unavailable"), "{body}");
    assert_eq!(get(&format!("{}/healthz", s.url())).0, 200);
    let e = client::publish(s.url(), &certs[1]).unwrap_err();
    assert!(
        matches!(e, vtoken_pki::Error::Http { status: 503, .. }),
        "{e}"
    );
    pg.start_again();
    assert_eq!(get(&format!("{}/readyz", s.url())).0, 200);
    assert_eq!(
        pg.psql("certs_ops", "SELECT count(*) FROM certsrv.published"),
        "1"
    );
    assert_eq!(client::publish(s.url(), &certs[1]).unwrap().notice, 2);

    let (status, m) = get(&format!("{}/metrics", s.url()));
    assert_eq!(status, 200);
    for line in [
        "vtoken_http_requests_total{route=\"/api/v1/publish\",status=\"200\"} 2",
        "vtoken_http_requests_total{route=\"/api/v1/publish\",status=\"503\"} 1",
        "vtoken_http_requests_total{route=\"/readyz\",status=\"503\"} 1",
        "vtoken_http_errors_total 2",
        "vtoken_db_pool_connections{state=\"max\"} 16",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
    }

    // The key server (SQLite).
    let rks_dir = tmp.path().join("rks");
    let out = Command::new(BIN)
        .args(["rks", "init", "--dir", rks_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rks = Logged::start(&["rks", "serve", "--dir", rks_dir.to_str().unwrap()], &[]);
    assert_eq!(get(&format!("{}/healthz", rks.url())), (200, "ok\n".into()));
    assert_eq!(
        get(&format!("{}/readyz", rks.url())),
        (200, "ready\n".into())
    );
    // A frame that is not one: the protocol refuses it in a frame of its own.
    let r = ureq::post(&format!("{}/api/v1/rks", rks.url()))
        .send_bytes(b"not a frame")
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, m) = get(&format!("{}/metrics", rks.url()));
    assert!(
        m.lines()
            .any(|l| l == "vtoken_http_requests_total{route=\"/api/v1/rks\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(!m.contains("vtoken_db_pool"), "{m}");
}

/// Every response carries `x-request-id` (a balancer's plausible id kept, anything
/// else replaced by a fresh random one), and with `--log-format json` every log line
/// of a request — the refusal logged by the middleware and the publication logged
/// by the blocking worker — is a JSON object naming that id.
#[test]
fn every_request_has_an_id_in_its_response_and_in_its_log_lines() {
    let (tmp, ca_dir, certs) = issued(1);
    let s = certsrv(
        tmp.path(),
        "certs",
        &ca_dir,
        &["--log-format", "json"],
        &[("VTOKEN_LOG", "info")],
    );
    let (status, _, id) = get_with(
        &format!("{}/api/v1/certs/00000000DEADBEEF", s.url()),
        &[("x-request-id", "lb-7f3a.1")],
    );
    assert_eq!((status, id.as_deref()), (404, Some("lb-7f3a.1")));
    let r = ureq::post(&format!("{}/api/v1/publish", s.url()))
        .set("x-request-id", "pub-42")
        .set("content-type", "application/json")
        .send_string(
            &serde_json::json!({
                "cert": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &certs[0])
            })
            .to_string(),
        )
        .unwrap();
    assert_eq!(r.header("x-request-id"), Some("pub-42"));

    // Implausible ids (too long, or characters a log reader would trip on) are
    // replaced; ids made here are 16 hex digits and differ per request.
    let long = "a".repeat(65);
    let mut made = BTreeSet::new();
    for h in [
        vec![("x-request-id", long.as_str())],
        vec![("x-request-id", "a b")],
        vec![],
        vec![],
    ] {
        let (_, _, id) = get_with(&format!("{}/healthz", s.url()), &h);
        let id = id.unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        made.insert(id);
    }
    assert_eq!(made.len(), 4);

    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let lines: Vec<serde_json::Value> = s
            .log()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let has = |id: &str, msg: &str| {
            lines
                .iter()
                .any(|v| v["span"]["id"] == id && v["fields"]["message"] == msg)
        };
        if has("lb-7f3a.1", "request refused") && has("pub-42", "published") {
            break lines;
        }
        assert!(Instant::now() < deadline, "log: {}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let refused = lines
        .iter()
        .find(|v| v["span"]["id"] == "lb-7f3a.1")
        .unwrap();
    assert_eq!(refused["fields"]["status"], 404);
    assert_eq!(refused["span"]["route"], "/api/v1/certs/:serial");
    assert_eq!(refused["level"], "INFO");
}

/// A psql session holding the advisory lock every publication takes, until dropped.
struct LockHolder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl LockHolder {
    fn take(pg: &Postgres, db: &str) -> LockHolder {
        let bin = pg_bin();
        let mut child = Command::new(bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port().to_string(),
                "-U",
                "vtoken",
                "-d",
                db,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            "SELECT pg_advisory_lock(hashtextextended('vtoken certsrv publish', 0));\n\\echo locked"
        )
        .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim() != "locked" {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "psql ended");
        }
        LockHolder {
            child,
            stdin: Some(stdin),
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        drop(self.stdin.take()); // psql ends its session: the lock is released
        let _ = self.child.wait();
    }
}

/// Debian's PostgreSQL client binaries, as the test support finds the server's.
fn pg_bin() -> PathBuf {
    if let Ok(d) = std::env::var("VTOKEN_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .map(|e| e.unwrap().path().join("bin"))
        .collect();
    versions.sort();
    versions.pop().unwrap()
}

/// SIGTERM while a publication waits inside the server (for a database lock a
/// test session holds): the server stops taking new connections but finishes the
/// request — the client gets its notice, the row is committed — and then exits 0.
#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let pg = Postgres::start();
    let url = pg.database("certs_term");
    let (tmp, ca_dir, certs) = issued(1);
    let mut s = certsrv(tmp.path(), "certs", &ca_dir, &["--database", &url], &[]);
    let lock = LockHolder::take(&pg, "certs_term");
    let cert = certs[0].clone();
    let target = s.url().to_string();
    let publisher = std::thread::spawn(move || client::publish(&target, &cert));
    // Wait until the publication waits for the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.psql(
        "certs_term",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the publication never waited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let term = Command::new("kill")
        .args(["-TERM", &s.child().id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.child().try_wait().unwrap().is_none(),
        "the server exited with a request in flight"
    );
    drop(lock);
    let published = publisher
        .join()
        .unwrap()
        .expect("the request in flight was answered");
    assert_eq!(published.notice, 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = s.child().try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}; log: {}", s.log());
    assert_eq!(
        pg.psql("certs_term", "SELECT count(*) FROM certsrv.published"),
        "1"
    );
}
