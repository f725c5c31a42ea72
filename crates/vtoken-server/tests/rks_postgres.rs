//! The remote key server on PostgreSQL (issue 21, SPEC K5): two real `vtoken-server
//! rks serve` processes on one real PostgreSQL database (the throwaway cluster of
//! `vtoken_testsupport::postgres`), the device side being the protocol crate's own
//! device logic with an in-memory key store (as in `tests/rks.rs`). Two downloads
//! for the same DSN race on the two instances: each queued key is acknowledged,
//! marked delivered, exactly once.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use common::{Server, BIN};
use vtoken_rks::device::{download, KeySink, Outcome, Provisioned};
use vtoken_rks::tmk::Tmk;
use vtoken_rks::{derive_dik2, Result, RksError};
use vtoken_testsupport::postgres::Postgres;
use zeroize::Zeroizing;

const DSN: &str = "00000000000000A1";
const DIK1: &str = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567";
const FACTOR: &[u8] = b"\x00\x11\x22\x33";

fn run(args: &[&str]) -> String {
    let o = std::process::Command::new(BIN).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// An RKS on the database at `url`, with DIK1 for DSN and `keys` keys queued; and
/// a second directory for the other instance (a copy: master key and root.pem).
fn rks(url: &str, keys: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("rks-a");
    let s = a.to_str().unwrap();
    run(&["rks", "init", "--dir", s, "--database", url]);
    run(&[
        "rks",
        "dik1",
        "add",
        "--dir",
        s,
        "--dsn",
        DSN,
        "--key",
        DIK1,
        "--database",
        url,
    ]);
    for i in 0..keys {
        run(&[
            "rks",
            "queue",
            "--dir",
            s,
            "--dsn",
            DSN,
            "--label",
            &format!("K{i}"),
            "--type",
            "des3",
            "--database",
            url,
        ]);
    }
    let b = t.path().join("rks-b");
    std::fs::create_dir(&b).unwrap();
    for f in ["master.key", "root.pem"] {
        std::fs::copy(a.join(f), b.join(f)).unwrap();
    }
    (t, a, b)
}

fn serve(dir: &Path, url: &str) -> Server {
    Server::start(&[
        "rks",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--database",
        url,
    ])
}

fn device(dir: &Path) -> Provisioned {
    let dik1: [u8; 24] = hex::decode(DIK1).unwrap().try_into().unwrap();
    let pem = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    Provisioned {
        dsn: DSN.into(),
        dik2: derive_dik2(&dik1, DSN, FACTOR).unwrap(),
        factor: Zeroizing::new(FACTOR.to_vec()),
        root_spki: base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    }
}

fn post(url: &str, frame: &[u8]) -> Result<Vec<u8>> {
    let r = ureq::post(&format!("{url}/api/v1/rks"))
        .send_bytes(frame)
        .map_err(|e| RksError::Local(e.to_string()))?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut out).unwrap();
    Ok(out)
}

#[derive(Default)]
struct Sink(Vec<[u8; 16]>);

impl KeySink for Sink {
    fn holds(&mut self, uid: &[u8; 16]) -> Result<bool> {
        Ok(self.0.contains(uid))
    }
    fn store(&mut self, key: &Tmk) -> Result<()> {
        self.0.push(key.uid);
        Ok(())
    }
}

/// One download through `url`; its first `lockstep` frames each wait for the
/// other racer at `barrier`.
fn racer(url: &str, p: &Provisioned, barrier: &Barrier, lockstep: usize) -> Result<Outcome> {
    let mut sink = Sink::default();
    let mut n = 0;
    download(
        p,
        &mut |b| {
            if n < lockstep {
                barrier.wait();
            }
            n += 1;
            post(url, b)
        },
        &mut sink,
    )
}

fn delivered(pg: &Postgres, db: &str) -> (String, String) {
    (
        pg.psql(
            db,
            "SELECT count(*) FROM rks.queue WHERE delivered_at IS NOT NULL",
        ),
        pg.psql(
            db,
            "SELECT count(*) FROM rks.queue WHERE delivered_at IS NULL",
        ),
    )
}

#[test]
fn racing_downloads_on_two_instances_deliver_each_key_once() {
    let pg = Postgres::start();
    let url = pg.database("rks_race");
    let (_t, a, b) = rks(&url, 2);
    let (sa, sb) = (serve(&a, &url), serve(&b, &url));
    let p = device(&a);

    // Both sessions reach the first acknowledgement together (Hello, Factor,
    // Response and Ack in lockstep): both were sent the first key, one Ack wins.
    let barrier = Arc::new(Barrier::new(2));
    let outcomes: Vec<Result<Outcome>> = std::thread::scope(|s| {
        let hs: Vec<_> = [&sa, &sb]
            .into_iter()
            .map(|srv| {
                let (barrier, p) = (barrier.clone(), &p);
                s.spawn(move || racer(&srv.url, p, &barrier, 4))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<&Outcome> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        outcomes
            .iter()
            .map(|o| o.as_ref().err())
            .collect::<Vec<_>>()
    );
    assert_eq!(won[0].keys.len(), 2, "the winner gets both keys");
    let lost = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert!(
        lost.to_string().contains("not an undelivered key"),
        "the second acknowledgement is refused: {lost}"
    );
    assert_eq!(delivered(&pg, "rks_race"), ("2".into(), "0".into()));
    // Each key carries the one session that acknowledged it.
    assert_eq!(
        pg.psql(
            "rks_race",
            "SELECT count(DISTINCT session) FROM rks.queue WHERE delivered_at IS NOT NULL"
        ),
        "1"
    );

    // Many more keys, six downloads at once over both instances (no lockstep): all
    // keys delivered, none twice, whatever sessions failed on the way.
    for i in 0..10 {
        run(&[
            "rks",
            "queue",
            "--dir",
            a.to_str().unwrap(),
            "--dsn",
            DSN,
            "--label",
            &format!("L{i}"),
            "--type",
            "aes256",
            "--database",
            &url,
        ]);
    }
    let barrier = Arc::new(Barrier::new(6));
    let acked: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let (barrier, p) = (barrier.clone(), &p);
                let srv = if i % 2 == 0 { &sa } else { &sb };
                s.spawn(move || {
                    racer(&srv.url, p, &barrier, 1)
                        .map(|o| o.keys.len())
                        .unwrap_or(0)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert!(acked <= 10, "{acked} keys counted by successful sessions");
    // What the failed sessions left undelivered, one more download collects.
    let rest = racer(&sa.url, &p, &Barrier::new(1), 0).unwrap();
    assert_eq!(delivered(&pg, "rks_race"), ("12".into(), "0".into()));
    assert!(acked + rest.keys.len() <= 10);
    // The audit log (shared) shows each key acknowledged by one session only.
    let st: serde_json::Value = serde_json::from_str(&run(&[
        "rks",
        "status",
        "--dir",
        b.to_str().unwrap(),
        "--database",
        &url,
        "--json",
    ]))
    .unwrap();
    assert_eq!(st[0]["delivered"], 12, "{st}");
}

#[test]
fn a_second_rks_init_on_the_same_database_is_refused() {
    let pg = Postgres::start();
    let url = pg.database("rks_twice");
    let (_t, _a, b) = rks(&url, 0);
    let o = std::process::Command::new(BIN)
        .args(["rks", "init", "--dir"])
        .arg(b.join("fresh"))
        .args(["--database", &url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already holds an RKS"), "{err}");
    assert!(!b.join("fresh").join("master.key").exists());
}
