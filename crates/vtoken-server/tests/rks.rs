//! SPEC K5 against the real `vtoken-server rks serve` on 127.0.0.1 (real SQLite,
//! real HTTP), for what a real token cannot do: a malicious device. Hand-made
//! frames send a wrong TK hash (S318), replay a finished session's frame, reorder
//! the steps, cut a frame short or pad it, each checked with the server's answer
//! and its audit log; `dik1_by_range` uses in-memory devices with chosen DSNs
//! (inside, outside and at the edge of a range), which real token serials are not.
//! The device side is the protocol crate's own device logic (the code the token
//! runs) with an in-memory key store.
//!
//! Every branch with a real token file as the device (forged working
//! certificate, wrong root, unknown DSN, frames replayed / reordered / cut /
//! padded by a relay in each direction, the server killed, the client killed) is
//! in `tests/tests/rks_failures.rs`; wrong DIK2 and the happy path with PKCS#11 in
//! `tests/tests/rks_download.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::{Server, BIN};
use vtoken_rks::crypto;
use vtoken_rks::derive::tdes_ecb_decrypt;
use vtoken_rks::device::{download, KeySink, Outcome, Provisioned};
use vtoken_rks::frame::{Fields, Frame, Kind};
use vtoken_rks::tmk::Tmk;
use vtoken_rks::{derive_dik2, Result, RksError};
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

/// An RKS with DIK1 for DSN and two keys queued.
fn rks() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("rks");
    let s = d.to_str().unwrap();
    run(&["rks", "init", "--dir", s]);
    run(&[
        "rks", "dik1", "add", "--dir", s, "--dsn", DSN, "--key", DIK1,
    ]);
    run(&[
        "rks", "queue", "--dir", s, "--dsn", DSN, "--label", "K1", "--type", "des3",
    ]);
    run(&[
        "rks", "queue", "--dir", s, "--dsn", DSN, "--label", "K2", "--type", "aes256",
    ]);
    (t, d)
}

fn serve(dir: &Path) -> Server {
    Server::start(&["rks", "serve", "--dir", dir.to_str().unwrap()])
}

fn root_spki(dir: &Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn device(dir: &Path) -> Provisioned {
    let dik1: [u8; 24] = hex::decode(DIK1).unwrap().try_into().unwrap();
    Provisioned {
        dsn: DSN.into(),
        dik2: derive_dik2(&dik1, DSN, FACTOR).unwrap(),
        factor: Zeroizing::new(FACTOR.to_vec()),
        root_spki: root_spki(dir),
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

fn fetch(url: &str, p: &Provisioned, sink: &mut Sink) -> Result<Outcome> {
    download(p, &mut |b| post(url, b), sink)
}

fn status(dir: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&run(&[
        "rks",
        "status",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|e| e["dsn"] == DSN)
        .cloned()
        .unwrap()
}

fn audit(dir: &Path) -> String {
    run(&["rks", "status", "--dir", dir.to_str().unwrap(), "--audit"])
}

/// Nothing delivered, the refusal logged with `why`; then a good rerun delivers
/// both keys exactly once.
fn assert_refused_then_rerun(dir: &Path, url: &str, why: &str) {
    let st = status(dir);
    assert_eq!(st["delivered"], 0, "{st}");
    assert_eq!(st["queued"], 2, "{st}");
    let log = audit(dir);
    assert!(log.contains("REFUSED") && log.contains(why), "{why}: {log}");
    let mut sink = Sink::default();
    let out = fetch(url, &device(dir), &mut sink).unwrap();
    assert_eq!(out.keys.len(), 2);
    assert_eq!(sink.0.len(), 2);
    let st = status(dir);
    assert_eq!(st["delivered"], 2, "{st}");
    assert_eq!(st["queued"], 0, "{st}");
}

/// A device that follows the protocol by hand up to S313: the server's cert frame,
/// the working key, AT and TK1.
fn manual_until_response(url: &str, p: &Provisioned) -> (Frame, Vec<u8>, Vec<u8>, Vec<u8>) {
    let hello = Frame::new(Kind::Hello, [0; 16], 0, p.dsn.as_bytes().to_vec());
    let cert = Frame::decode(&post(url, &hello.encode()).unwrap()).unwrap();
    let mut f = Fields::new(&cert.body);
    let spki = f.field().unwrap().to_vec();
    let factor = Frame::new(
        Kind::Factor,
        cert.session,
        2,
        crypto::oaep_encrypt(&spki, &p.factor).unwrap(),
    );
    let ch = Frame::decode(&post(url, &factor.encode()).unwrap()).unwrap();
    assert_eq!(ch.kind, Kind::Challenge);
    let plain = tdes_ecb_decrypt(&p.dik2, &ch.body).unwrap();
    (cert, spki, plain[..24].to_vec(), plain[24..].to_vec())
}

#[test]
fn tk_hash_mismatch() {
    let (_t, d) = rks();
    let s = serve(&d);
    let p = device(&d);
    let (cert, spki, at, _tk1) = manual_until_response(&s.url, &p);
    let mut resp = at.clone();
    resp.extend_from_slice(&[7u8; 24]); // TK2
    resp.extend_from_slice(&[0u8; 32]); // not SHA-256(TK1 xor TK2)
    let f = Frame::new(
        Kind::Response,
        cert.session,
        4,
        crypto::oaep_encrypt(&spki, &resp).unwrap(),
    );
    let a = Frame::decode(&post(&s.url, &f.encode()).unwrap()).unwrap();
    assert_eq!(a.kind, Kind::Error);
    let msg = String::from_utf8_lossy(&a.body).to_string();
    assert!(
        msg.contains("device authentication failed") && msg.contains("TK hash"),
        "{msg}"
    );
    assert_refused_then_rerun(&d, &s.url, "TK hash mismatch");
}

#[test]
fn replayed_reordered_cut_and_padded_messages() {
    let mut sent = Vec::new();
    let (_t2, d2) = rks();
    let s = serve(&d2);
    let p2 = device(&d2);
    let mut rec = |b: &[u8]| {
        sent.push(b.to_vec());
        post(&s.url, b)
    };
    let mut sink2 = Sink::default();
    // Cut the session after the Factor: the device stops talking.
    let _ = download(
        &p2,
        &mut |b| {
            if b[5] == Kind::Response as u8 {
                return Err(RksError::Local("client killed".into()));
            }
            rec(b)
        },
        &mut sink2,
    );
    // Replay that session's Factor: the session is over (the device reported its
    // failure), so the replay is refused.
    let old_factor = sent
        .iter()
        .find(|b| b[5] == Kind::Factor as u8)
        .unwrap()
        .clone();
    let a = Frame::decode(&post(&s.url, &old_factor).unwrap()).unwrap();
    assert_eq!(a.kind, Kind::Error);
    // Reordered: a Response where the Factor is expected.
    let hello = Frame::new(Kind::Hello, [0; 16], 0, DSN.as_bytes().to_vec());
    let cert = Frame::decode(&post(&s.url, &hello.encode()).unwrap()).unwrap();
    let early = Frame::new(Kind::Response, cert.session, 2, vec![0; 256]);
    let a = Frame::decode(&post(&s.url, &early.encode()).unwrap()).unwrap();
    assert_eq!(a.kind, Kind::Error);
    assert!(String::from_utf8_lossy(&a.body).contains("out of order"));
    // Cut short and padded frames end their session.
    for cut in [true, false] {
        let cert = Frame::decode(&post(&s.url, &hello.encode()).unwrap()).unwrap();
        let mut f = Fields::new(&cert.body);
        let spki = f.field().unwrap().to_vec();
        let mut b = Frame::new(
            Kind::Factor,
            cert.session,
            2,
            crypto::oaep_encrypt(&spki, FACTOR).unwrap(),
        )
        .encode();
        if cut {
            b.truncate(b.len() - 5);
        } else {
            b.extend_from_slice(b"extra");
        }
        let a = Frame::decode(&post(&s.url, &b).unwrap()).unwrap();
        assert_eq!(a.kind, Kind::Error);
        let msg = String::from_utf8_lossy(&a.body).to_string();
        assert!(
            msg.contains(if cut { "cut short" } else { "padded" }),
            "{msg}"
        );
        // The session is over: the well-formed frame is refused now.
        let good = Frame::new(
            Kind::Factor,
            cert.session,
            2,
            crypto::oaep_encrypt(&spki, FACTOR).unwrap(),
        );
        let a = Frame::decode(&post(&s.url, &good.encode()).unwrap()).unwrap();
        assert_eq!(a.kind, Kind::Error);
    }
    assert!(sink2.0.is_empty());
    assert_refused_then_rerun(&d2, &s.url, "padded");
    let log = audit(&d2);
    assert!(
        log.contains("out of order")
            && log.contains("cut short")
            && log.contains("unknown or finished session"),
        "{log}"
    );
}

/// S306–S307 with DIK1 by range (a batch of devices): a DSN inside the range
/// downloads with the range's DIK1 (its DIK2 still its own, K3 diversifies by
/// DSN); a DSN with a record of its own uses that record first; a DSN outside
/// every range is an unknown device; overlapping ranges are refused; `rks status`
/// shows the range and which DSNs it serves.
#[test]
fn dik1_by_range() {
    const RANGE_KEY: &str = "C1D0F8FB4958670DBA40AB1F3752EF0DC1D0F8FB4958670D";
    let (_t, d) = rks();
    let s = d.to_str().unwrap();
    // DSN (…A1) keeps its own record, inside the range.
    run(&[
        "rks",
        "dik1",
        "add",
        "--dir",
        s,
        "--range",
        "0000000000000000..00000000000000ff",
        "--key",
        RANGE_KEY,
    ]);
    for bad in [
        "00000000000000F0..0000000000000100",
        "0000000000000010..0000000000000020",
    ] {
        let o = std::process::Command::new(BIN)
            .args(["rks", "dik1", "add", "--dir", s, "--range", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("overlaps"),
            "{bad}: {err}"
        );
    }
    for bad in ["1..2", "00000000000000FF..0000000000000001", "X"] {
        let o = std::process::Command::new(BIN)
            .args(["rks", "dik1", "add", "--dir", s, "--range", bad])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{bad}");
    }
    const IN: &str = "0000000000000042";
    const OUT: &str = "0000000000000100";
    for dsn in [IN, OUT] {
        run(&[
            "rks", "queue", "--dir", s, "--dsn", dsn, "--label", "B1", "--type", "des3",
        ]);
    }
    let srv = serve(&d);
    let range_key: [u8; 24] = hex::decode(RANGE_KEY).unwrap().try_into().unwrap();
    let dev = |dsn: &str, dik1: &[u8; 24]| Provisioned {
        dsn: dsn.into(),
        dik2: derive_dik2(dik1, dsn, FACTOR).unwrap(),
        factor: Zeroizing::new(FACTOR.to_vec()),
        root_spki: root_spki(&d),
    };
    // Inside the range: the range's DIK1.
    let out = fetch(&srv.url, &dev(IN, &range_key), &mut Sink::default()).unwrap();
    assert_eq!(out.keys.len(), 1);
    // The exact record wins over the range: a device diversified from the range
    // key instead of its own record's is refused (AT mismatch); its own works.
    let e = fetch(&srv.url, &dev(DSN, &range_key), &mut Sink::default()).unwrap_err();
    assert!(
        e.to_string().contains("device authentication failed"),
        "{e}"
    );
    let out = fetch(&srv.url, &device(&d), &mut Sink::default()).unwrap();
    assert_eq!(out.keys.len(), 2);
    // Outside every range: unknown.
    let e = fetch(&srv.url, &dev(OUT, &range_key), &mut Sink::default()).unwrap_err();
    assert!(e.to_string().contains("unknown device"), "{e}");
    let v: serde_json::Value =
        serde_json::from_str(&run(&["rks", "status", "--dir", s, "--json"])).unwrap();
    let find = |dsn: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["dsn"] == dsn)
            .cloned()
            .unwrap_or_else(|| panic!("{dsn} in {v}"))
    };
    let r = find("0000000000000000..00000000000000FF");
    assert_eq!(r["kind"], "range", "{r}");
    assert_eq!(r["delivered"], 3, "{r}");
    let i = find(IN);
    assert_eq!(i["dik1"], true, "{i}");
    assert_eq!(i["dik1_range"], "0000000000000000..00000000000000FF", "{i}");
    assert_eq!(find(DSN)["dik1_range"], serde_json::Value::Null);
    let o = find(OUT);
    assert_eq!(o["dik1"], false, "{o}");
    assert_eq!(o["delivered"], 0, "{o}");
    let text = run(&["rks", "status", "--dir", s]);
    assert!(
        text.contains("0000000000000000..00000000000000FF range"),
        "{text}"
    );
}

/// S306–S307 with DIK1 by batch (a production batch's DSN list, ¶0049): the DSN
/// file's comments and blank lines are skipped; a DSN listed twice, a DSN in
/// another batch and a line that is no DSN are refused with the line number and
/// add nothing; a member downloads with the batch's DIK1; the DSN's own record
/// wins over its batch; a member also inside a range uses the batch; a DSN in no
/// batch or range is an unknown device; `rks status` shows the batch (kind
/// "batch", members, totals) and `dik1_batch` per DSN.
#[test]
fn dik1_by_batch() {
    const BATCH_KEY: &str = "111111111111111111111111111111111111111111111111";
    const RANGE_KEY: &str = "C1D0F8FB4958670DBA40AB1F3752EF0DC1D0F8FB4958670D";
    const M1: &str = "00000000000000C1";
    const M2: &str = "1000000000000042"; // also inside the range below
    const OUT: &str = "00000000000000D9";
    let (t, d) = rks();
    let s = d.to_str().unwrap();
    let file = |name: &str, text: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let add = |name: &str, f: &Path, key: &str| {
        std::process::Command::new(BIN)
            .args(["rks", "dik1", "add", "--dir", s, "--batch", name])
            .args(["--dsn-file", f.to_str().unwrap(), "--key", key])
            .output()
            .unwrap()
    };
    // DSN (…A1) has its own record and is listed in the batch too.
    let lot = file(
        "lot1.txt",
        &format!("# lot 1\n\n{M1}\n  {}\n{DSN}\n# end\n", M2.to_lowercase()),
    );
    let o = add("LOT-1", &lot, BATCH_KEY);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (text, want) in [
        (
            "00000000000000E1\n# x\n00000000000000E1\n".to_string(),
            "line 3",
        ),
        (format!("00000000000000E2\n{M1}\n"), "line 2"),
        ("00000000000000E3\nnot-a-dsn\n".to_string(), "line 2"),
        ("# nothing\n".to_string(), "no DSN"),
    ] {
        let f = file("bad.txt", &text);
        let o = add("LOT-2", &f, BATCH_KEY);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{text:?}: {err}");
    }
    // Nothing of the refused files was added: LOT-2 does not exist, E1..E3 are
    // in no batch, and the name is still free.
    let o = add("LOT-1", &file("again.txt", "00000000000000F1\n"), BATCH_KEY);
    assert!(!o.status.success(), "a batch is never replaced");
    run(&[
        "rks",
        "dik1",
        "add",
        "--dir",
        s,
        "--range",
        "1000000000000000..10000000000000FF",
        "--key",
        RANGE_KEY,
    ]);
    for dsn in [M1, M2, OUT] {
        run(&[
            "rks", "queue", "--dir", s, "--dsn", dsn, "--label", "B1", "--type", "des3",
        ]);
    }
    let srv = serve(&d);
    let key = |h: &str| -> [u8; 24] { hex::decode(h).unwrap().try_into().unwrap() };
    let dev = |dsn: &str, dik1: &[u8; 24]| Provisioned {
        dsn: dsn.into(),
        dik2: derive_dik2(dik1, dsn, FACTOR).unwrap(),
        factor: Zeroizing::new(FACTOR.to_vec()),
        root_spki: root_spki(&d),
    };
    // A member: the batch's DIK1.
    let out = fetch(&srv.url, &dev(M1, &key(BATCH_KEY)), &mut Sink::default()).unwrap();
    assert_eq!(out.keys.len(), 1);
    // A member inside a range: the batch, not the range.
    let e = fetch(&srv.url, &dev(M2, &key(RANGE_KEY)), &mut Sink::default()).unwrap_err();
    assert!(e.to_string().contains("AT mismatch"), "{e}");
    let out = fetch(&srv.url, &dev(M2, &key(BATCH_KEY)), &mut Sink::default()).unwrap();
    assert_eq!(out.keys.len(), 1);
    // Its own record wins over the batch.
    let e = fetch(&srv.url, &dev(DSN, &key(BATCH_KEY)), &mut Sink::default()).unwrap_err();
    assert!(e.to_string().contains("AT mismatch"), "{e}");
    let out = fetch(&srv.url, &device(&d), &mut Sink::default()).unwrap();
    assert_eq!(out.keys.len(), 2);
    // In no batch and no range: unknown.
    let e = fetch(&srv.url, &dev(OUT, &key(BATCH_KEY)), &mut Sink::default()).unwrap_err();
    assert!(e.to_string().contains("unknown device"), "{e}");

    let v: serde_json::Value =
        serde_json::from_str(&run(&["rks", "status", "--dir", s, "--json"])).unwrap();
    let find = |dsn: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["dsn"] == dsn)
            .cloned()
            .unwrap_or_else(|| panic!("{dsn} in {v}"))
    };
    let b = find("LOT-1");
    assert_eq!(b["kind"], "batch", "{b}");
    assert_eq!(b["members"], 3, "{b}");
    assert_eq!(b["delivered"], 4, "{b}");
    assert_eq!(b["queued"], 0, "{b}");
    assert_eq!(b["refusals"], 2, "{b}");
    assert_eq!(find(M1)["dik1_batch"], "LOT-1");
    assert_eq!(find(M2)["dik1_batch"], "LOT-1");
    assert_eq!(find(M2)["dik1_range"], serde_json::Value::Null);
    assert_eq!(find(DSN)["dik1_batch"], serde_json::Value::Null);
    assert_eq!(find(OUT)["dik1"], false);
    let text = run(&["rks", "status", "--dir", s]);
    assert!(
        text.contains("LOT-1") && text.contains("batch (3 DSNs)"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("batch ")),
        "the audit's batch lines are no DSN: {text}"
    );
    let help = std::process::Command::new(BIN)
        .args(["rks", "dik1", "add", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("own\nrecord, then the batch that lists it, then the range"),
        "{help}"
    );
}
