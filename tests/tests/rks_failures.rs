//! SPEC K5 with a real token file as the device: every failure branch of the
//! remote key download (seed CN103714642A, steps S301–S324) against the real
//! `vtoken-server rks serve` on 127.0.0.1 and the real `vtoken rks download`
//! process, the device provisioned the real way (station-load, provision, inject).
//! A relay on 127.0.0.1 cuts, pads, replays or reorders a frame in each direction
//! or kills the server (SIGKILL) between two steps; the test-hooks CLI dies at its
//! crash points (`VTOKEN_TEST_RKS_EXIT_AT`).
//!
//! In every case: a clear error on the client, nothing stored on the token (its
//! objects listed through the CLI; after a kill past S320 exactly the one key,
//! never twice), nothing marked delivered, the audit log says why, and a rerun
//! delivers each key exactly once. Wrong DIK2 on a real token is
//! `rks_download.rs` `wrong_dik2_on_a_real_token_then_rerun`; a TK hash mismatch
//! needs a malicious device and stays with hand-made frames in
//! `crates/vtoken-server/tests/rks.rs`.

mod rks_common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rks_common::*;

/// A world with TMK1 (des3) and TMK2 (aes256) queued for the device.
fn world2() -> (tempfile::TempDir, World) {
    let (t, conf) = temp_world_dir();
    let w = world(t.path(), &conf);
    queue(&w, "TMK1", "des3", TMK1);
    queue(&w, "TMK2", "aes256", TMK2);
    (t, w)
}

/// The audit entries added since `before` entries: at least one refusal whose
/// event contains `why`.
fn assert_audit_refused(w: &World, before: usize, why: &str) {
    let log = audit(&w.rks);
    let new = &log[before..];
    assert!(
        new.iter()
            .any(|e| e["ok"] == false && e["event"].as_str().unwrap().contains(why)),
        "audit should say {why:?}: {new:#?}"
    );
    assert!(
        !new.iter()
            .any(|e| e["event"].as_str().unwrap().starts_with("S322")),
        "{new:#?}"
    );
}

/// The refused run: nothing stored, nothing delivered, both keys still queued.
fn assert_nothing_happened(w: &World) {
    assert_eq!(object_labels(w, "device"), Vec::<String>::new());
    let st = status(w);
    assert_eq!(st["delivered"], 0, "{st}");
    assert_eq!(st["queued"], 2, "{st}");
}

/// A good rerun delivers both keys once; a second finds nothing; the token holds
/// each key once.
fn assert_rerun_delivers_once(w: &World, url: &str) {
    let (ok, out, err) = download(w, "device", url);
    assert!(ok, "rerun: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        !v["keys"].as_array().unwrap().is_empty(),
        "the rerun delivers: {out}"
    );
    let (ok, out, err) = download(w, "device", url);
    assert!(ok && out.contains("\"keys\": []"), "{out}{err}");
    assert_eq!(object_labels(w, "device"), ["TMK1", "TMK2"]);
    let st = status(w);
    assert_eq!(st["delivered"], 2, "{st}");
    assert_eq!(st["queued"], 0, "{st}");
}

fn set_working_sig(rks: &Path, sig: &[u8]) {
    let db = rusqlite::Connection::open(rks.join("rks.db")).unwrap();
    db.execute(
        "UPDATE meta SET value = ?1 WHERE name = 'working_sig'",
        [sig],
    )
    .unwrap();
}

/// S303, forged working certificate: the server's stored signature over its
/// working key edited in its database. The real token refuses at S303 ("server
/// authentication failed") and reports it; the restored server delivers.
#[test]
fn forged_working_certificate() {
    let (_t, w) = world2();
    let db = rusqlite::Connection::open(w.rks.join("rks.db")).unwrap();
    let good: Vec<u8> = db
        .query_row(
            "SELECT value FROM meta WHERE name = 'working_sig'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(db);
    let mut forged = good.clone();
    forged[10] ^= 1;
    set_working_sig(&w.rks, &forged);
    let before = audit(&w.rks).len();
    let srv = Rks::start(&w.rks);
    let (ok, _, err) = download(&w, "device", &srv.url);
    assert!(!ok && err.contains("server authentication failed"), "{err}");
    assert_nothing_happened(&w);
    assert_audit_refused(&w, before, "server authentication failed");
    drop(srv);
    set_working_sig(&w.rks, &good);
    let srv = Rks::start(&w.rks);
    assert_rerun_delivers_once(&w, &srv.url);
}

/// S303, the right certificate under a wrong root: the device provisioned with
/// another RKS's root.pem refuses the real RKS; provisioned again with the right
/// root, it downloads.
#[test]
fn right_certificate_under_a_wrong_root() {
    let (_t, w) = world2();
    let other = w.dir.join("other-rks");
    server(&["rks", "init", "--dir", other.to_str().unwrap()]);
    provision(&w, &other.join("root.pem"), true);
    let before = audit(&w.rks).len();
    let srv = Rks::start(&w.rks);
    let (ok, _, err) = download(&w, "device", &srv.url);
    assert!(!ok && err.contains("server authentication failed"), "{err}");
    assert_nothing_happened(&w);
    assert_audit_refused(&w, before, "server authentication failed");
    provision(&w, &w.rks.join("root.pem"), true);
    assert_rerun_delivers_once(&w, &srv.url);
}

/// S306–S307, unknown DSN: the RKS has no DIK1 for the device (its record
/// removed after the station provisioned the device). Refused ("unknown
/// device"), logged under the DSN; once the record is added back, the rerun
/// delivers.
#[test]
fn unknown_dsn() {
    let (_t, w) = world2();
    let db = rusqlite::Connection::open(w.rks.join("rks.db")).unwrap();
    assert_eq!(
        db.execute("DELETE FROM dik1 WHERE dsn = ?1", [&w.dsn])
            .unwrap(),
        1
    );
    drop(db);
    let before = audit(&w.rks).len();
    let srv = Rks::start(&w.rks);
    let (ok, _, err) = download(&w, "device", &srv.url);
    assert!(!ok && err.contains("unknown device"), "{err}");
    assert_nothing_happened(&w);
    assert_audit_refused(&w, before, "no DIK1");
    assert!(audit(&w.rks)[before..]
        .iter()
        .any(|e| e["dsn"] == w.dsn.as_str() && e["ok"] == false));
    assert_eq!(status(&w)["dik1"], false);
    server(&[
        "rks",
        "dik1",
        "add",
        "--dir",
        w.rks.to_str().unwrap(),
        "--dsn",
        &w.dsn,
        "--key",
        DIK1_A,
    ]);
    assert_rerun_delivers_once(&w, &srv.url);
}

/// Replayed, reordered, cut and padded frames in each direction, by a relay
/// between the real client and the real server, at the Factor/Challenge and the
/// Response/first-Key exchanges. "Replay" sends the same step's frame of an
/// earlier session; "reorder" sends this session's previous frame again.
#[test]
fn relay_replays_reorders_cuts_and_pads_each_direction() {
    let (_t, w) = world2();
    let srv = Rks::start(&w.rks);
    // An earlier session to replay from: the first Key cut on its way down (the
    // device refuses it before storing anything, and reports).
    let relay = Relay::start(&srv.url, Some((Dir::Down, 2, Op::Cut)), vec![], None);
    let before = audit(&w.rks).len();
    let (ok, _, err) = download(&w, "device", &relay.url);
    assert!(!ok && err.contains("cut short"), "{err}");
    assert_nothing_happened(&w);
    assert_audit_refused(&w, before, "cut short");
    let earlier = relay.exchanges();
    assert!(earlier.len() >= 3, "{}", earlier.len());

    for dir in [Dir::Up, Dir::Down] {
        for n in [1, 2] {
            for op in [Op::Cut, Op::Pad, Op::Replay, Op::Reorder] {
                let want = match (dir, op) {
                    (_, Op::Cut) => "cut short",
                    (_, Op::Pad) => "padded",
                    (Dir::Up, Op::Replay) => "unknown or finished session",
                    (Dir::Down, Op::Replay) => "of another session (replayed)",
                    _ => "out of order",
                };
                let relay = Relay::start(&srv.url, Some((dir, n, op)), earlier.clone(), None);
                let before = audit(&w.rks).len();
                let (ok, _, err) = download(&w, "device", &relay.url);
                let case = format!("{op:?} {dir:?} at exchange {n}");
                assert!(!ok, "{case}");
                assert!(err.contains(want), "{case}: {err}");
                assert!(err.lines().count() <= 2, "{case}: one clear line: {err}");
                assert_nothing_happened(&w);
                assert_audit_refused(&w, before, want);
            }
        }
    }
    assert_rerun_delivers_once(&w, &srv.url);
}

/// The server killed (SIGKILL) right after each of its answers in turn (the
/// ServerCert, the Challenge, the first Key) and started again: the device's next
/// frame meets a server without its session ("unknown or finished session").
/// Killed after the first Key, the token has stored that key (S320) but its Ack
/// is refused: exactly one key on the token, nothing delivered; the same again
/// does not store it twice; the rerun delivers both, each stored once.
#[test]
fn server_killed_between_steps() {
    let (_t, w) = world2();
    let srv = Arc::new(Mutex::new(Rks::start(&w.rks)));
    for kill_after in [0, 1, 2, 2] {
        let url = srv.lock().unwrap().url.clone();
        let (s2, dir) = (srv.clone(), w.rks.clone());
        let after: AfterAnswer = Box::new(move |n| {
            if n != kill_after {
                return None;
            }
            let mut g = s2.lock().unwrap();
            g.kill();
            *g = Rks::start(&dir);
            Some(g.url.clone())
        });
        let relay = Relay::start(&url, None, vec![], Some(after));
        let before = audit(&w.rks).len();
        let (ok, _, err) = download(&w, "device", &relay.url);
        assert!(
            !ok && err.contains("unknown or finished session"),
            "killed after answer {kill_after}: {err}"
        );
        let want: &[&str] = if kill_after == 2 { &["TMK1"] } else { &[] };
        assert_eq!(object_labels(&w, "device"), want, "after {kill_after}");
        let st = status(&w);
        assert_eq!(st["delivered"], 0, "{st}");
        assert_eq!(st["queued"], 2, "{st}");
        assert_audit_refused(&w, before, "unknown or finished session");
    }
    let url = srv.lock().unwrap().url.clone();
    assert_rerun_delivers_once(&w, &url);
    // The relay thread keeps its handle on the server: end it here.
    srv.lock().unwrap().kill();
}

/// The client killed between two steps (`VTOKEN_TEST_RKS_EXIT_AT`, the test-hooks
/// CLI: `process::exit(86)`, no destructor, no Error frame): before its Factor,
/// before its Response, after storing the first key but before its Ack
/// (`stored`, twice: the key is not stored again), and right after the first Ack
/// was answered (`ack`: that key delivered, the other not). The server's log
/// shows each session stopped unfinished; the rerun delivers what is left, each
/// key once.
#[test]
fn client_killed_between_steps() {
    let (_t, w) = world2();
    let srv = Rks::start(&w.rks);
    let hooked = vtoken_testsupport::artifacts::hooked_cli();
    let cases: [(&str, &[&str], u64, &str); 5] = [
        ("factor", &[], 0, "S301"),
        ("response", &[], 0, "S301"),
        ("stored", &["TMK1"], 0, "S319 key \"TMK1\""),
        ("stored", &["TMK1"], 0, "S319 key \"TMK1\""),
        ("ack", &["TMK1"], 1, "S319 key \"TMK2\""),
    ];
    for (point, held, delivered, last) in cases {
        let before = audit(&w.rks).len();
        let o = vtoken_testsupport::env::command(hooked, &w.conf)
            .args([
                "--token", "device", "--json", "rks", "download", "--server", &srv.url, "--pin",
                USER_PIN,
            ])
            .env("VTOKEN_TEST_RKS_EXIT_AT", point)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(86),
            "{point}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(object_labels(&w, "device"), held, "{point}");
        let st = status(&w);
        assert_eq!(st["delivered"], delivered, "{point}: {st}");
        // The server's side of the killed session: started, stopped at `last`,
        // never finished (no S322), nothing refused (the client said nothing).
        let log = audit(&w.rks);
        let new = &log[before..];
        assert!(!new.is_empty(), "{point}");
        assert!(
            new.iter()
                .all(|e| e["ok"] == true && !e["event"].as_str().unwrap().starts_with("S322")),
            "{point}: {new:#?}"
        );
        assert!(
            new.last().unwrap()["event"]
                .as_str()
                .unwrap()
                .starts_with(last),
            "{point}: {new:#?}"
        );
    }
    assert_rerun_delivers_once(&w, &srv.url);
}
