//! Shared by the remote key download tests (`rks_download.rs`, `rks_failures.rs`):
//! the real `vtoken-server rks serve` on 127.0.0.1, the real `vtoken` CLI, a
//! station token and a device token provisioned the real way (CA, device
//! certificates, DIK1 sealed to the station, station-load, provision/inject), and
//! an HTTP relay on 127.0.0.1 that can cut, pad, replay or reorder frames and kill
//! the server between two steps.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub const SO_PIN: &str = "12345678";
pub const USER_PIN: &str = "123456";
pub const TMK1: &str = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567";
pub const TMK2: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
pub const FACTOR: &str = "00112233445566778899AABBCCDDEEFF";
pub const DIK1_A: &str = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567";

/// A running `vtoken-server rks serve`; killed (SIGKILL) on drop.
pub struct Rks {
    child: Child,
    pub url: String,
}

impl Rks {
    pub fn start(dir: &Path) -> Rks {
        let mut child = Command::new(vtoken_testsupport::artifacts::server())
            .args(["rks", "serve", "--dir", dir.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("VTOKEN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vtoken-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Rks { child, url }
    }

    /// SIGKILL: no destructor, no flush, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rks {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `vtoken-server ARGS`: (success, stdout, stderr).
pub fn server_try(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(vtoken_testsupport::artifacts::server())
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `vtoken-server ARGS`: stdout, or a panic with stderr.
pub fn server(args: &[&str]) -> String {
    let (ok, out, err) = server_try(args);
    assert!(ok, "vtoken-server {args:?}: {err}");
    out
}

/// `vtoken ARGS` with this config: (success, stdout, stderr).
pub fn cli(conf: &Path, args: &[&str]) -> (bool, String, String) {
    cli_with(vtoken_testsupport::artifacts::cli(), conf, args, &[])
}

/// `PROGRAM ARGS` (a `vtoken` build) with this config and `env`: (success,
/// stdout, stderr).
pub fn cli_with(
    program: &Path,
    conf: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut c = vtoken_testsupport::env::command(program, conf);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.args(args).stdin(Stdio::null()).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn cli_ok(conf: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli(conf, args);
    assert!(ok, "vtoken {args:?}: {err}");
    out
}

/// The world of one test: token directory, RKS directory, a station holding the
/// device's DIK1, a provisioned device (token label `device`).
pub struct World {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub rks: PathBuf,
    pub dsn: String,
}

/// A fresh temp directory with a test config (no PKCS#11 module loaded: these
/// tests drive the CLI and the server only, so they may run in parallel).
pub fn temp_world_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("vtoken.toml");
    vtoken_testsupport::env::write_config(&conf, &t.path().join("tokens"), "");
    (t, conf)
}

pub fn world(dir: &Path, conf: &Path) -> World {
    world_with(dir, conf, None)
}

/// As [`world`]; with `range`, the device's DIK1 is a range's (added, exported
/// to the station and loaded there as a range).
pub fn world_with(dir: &Path, conf: &Path, range: Option<&str>) -> World {
    let c = |a: &[&str]| cli_ok(conf, a);
    c(&[
        "init", "--label", "station", "--so-pin", SO_PIN, "--pin", USER_PIN,
    ]);
    c(&[
        "init", "--label", "device", "--so-pin", SO_PIN, "--pin", USER_PIN,
    ]);
    let ca = dir.join("ca");
    c(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    for t in ["station", "device"] {
        c(&[
            "--token",
            t,
            "device",
            "certify",
            "--ca-dir",
            ca.to_str().unwrap(),
            "--pin",
            USER_PIN,
        ]);
    }
    let station_pem = dir.join("station.pem");
    c(&[
        "--token",
        "station",
        "device",
        "cert",
        "-o",
        station_pem.to_str().unwrap(),
    ]);
    let dsn = serial_of(conf, "device");
    let rks = dir.join("rks");
    let r = rks.to_str().unwrap();
    server(&["rks", "init", "--dir", r]);
    let (sel, val) = match range {
        Some(rg) => ("--range", rg.to_string()),
        None => ("--dsn", dsn.clone()),
    };
    server(&["rks", "dik1", "add", "--dir", r, sel, &val, "--key", DIK1_A]);
    let w = World {
        dir: dir.to_path_buf(),
        conf: conf.to_path_buf(),
        rks: rks.clone(),
        dsn,
    };
    station_load(&w, &rks, &[sel, &val]);
    provision(&w, &rks.join("root.pem"), false);
    w
}

/// The RKS in `rks` exports the DIK1 selected by `sel` (`--dsn D`, `--range R`,
/// `--batch B`) sealed to the station; the station token loads it.
pub fn station_load(w: &World, rks: &Path, sel: &[&str]) {
    let cms = w.dir.join("dik1.cms");
    let mut a = vec!["rks", "dik1", "export", "--dir", rks.to_str().unwrap()];
    a.extend_from_slice(sel);
    let station_pem = w.dir.join("station.pem");
    a.extend_from_slice(&[
        "--to-cert",
        station_pem.to_str().unwrap(),
        "-o",
        cms.to_str().unwrap(),
    ]);
    server(&a);
    // The export is a CMS envelope: DIK1 is not in it in the clear.
    assert!(std::fs::read(&cms).unwrap().len() > 300);
    cli_ok(
        &w.conf,
        &[
            "--token",
            "station",
            "rks",
            "station-load",
            "--in",
            cms.to_str().unwrap(),
            "--pin",
            USER_PIN,
        ],
    );
    // The server never overwrites an export: the next one gets the name again.
    std::fs::remove_file(&cms).unwrap();
}

/// The station provisions the device token (`--token device`) with `root` as
/// RKS_RCRT_PK (DIK2 derived inside the station, injected with the SO PIN).
pub fn provision(w: &World, root: &Path, replace: bool) {
    provision_token(w, "device", root, replace);
}

pub fn provision_token(w: &World, token: &str, root: &Path, replace: bool) {
    let mut a = vec![
        "--token",
        token,
        "rks",
        "provision",
        "--station",
        "station",
        "--factor",
        FACTOR,
        "--root",
        root.to_str().unwrap(),
        "--so-pin",
        SO_PIN,
        "--station-pin",
        USER_PIN,
    ];
    if replace {
        a.push("--replace");
    }
    cli_ok(&w.conf, &a);
}

pub fn serial_of(conf: &Path, label: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&cli_ok(conf, &["--token", label, "--json", "info"])).unwrap();
    v["serial"].as_str().unwrap().to_string()
}

/// The RKS's `status --json` entry for `dsn`.
pub fn status_of(rks: &Path, dsn: &str) -> serde_json::Value {
    let s: serde_json::Value = serde_json::from_str(&server(&[
        "rks",
        "status",
        "--dir",
        rks.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    s.as_array()
        .unwrap()
        .iter()
        .find(|e| e["dsn"] == dsn)
        .cloned()
        .unwrap_or_else(|| panic!("{dsn} not in {s}"))
}

pub fn status(w: &World) -> serde_json::Value {
    status_of(&w.rks, &w.dsn)
}

/// The RKS's audit log (`status --audit --json`): one object per line.
pub fn audit(rks: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&server(&[
        "rks",
        "status",
        "--dir",
        rks.to_str().unwrap(),
        "--audit",
        "--json",
    ]))
    .unwrap();
    v.as_array().unwrap().clone()
}

/// The audit log as text (`status --audit`).
pub fn audit_text(rks: &Path) -> String {
    server(&["rks", "status", "--dir", rks.to_str().unwrap(), "--audit"])
}

pub fn queue(w: &World, label: &str, ty: &str, value: &str) {
    queue_for(&w.rks, &w.dsn, label, ty, value);
}

pub fn queue_for(rks: &Path, dsn: &str, label: &str, ty: &str, value: &str) {
    server(&[
        "rks",
        "queue",
        "--dir",
        rks.to_str().unwrap(),
        "--dsn",
        dsn,
        "--label",
        label,
        "--type",
        ty,
        "--value",
        value,
        "--id",
        "01",
    ]);
}

/// `vtoken --token T --json rks download --server URL`: (success, stdout, stderr).
pub fn download(w: &World, token: &str, url: &str) -> (bool, String, String) {
    cli(
        &w.conf,
        &[
            "--token", token, "--json", "rks", "download", "--server", url, "--pin", USER_PIN,
        ],
    )
}

/// The labels of the token's objects, listed through the CLI (`objects list`).
pub fn object_labels(w: &World, token: &str) -> Vec<String> {
    let out = cli_ok(
        &w.conf,
        &[
            "--token", token, "--json", "objects", "list", "--pin", USER_PIN,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut l: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|o| o["label"].as_str().unwrap_or("").to_string())
        .collect();
    l.sort();
    l
}

/// Which way a frame travels through the [`Relay`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dir {
    /// Device → server.
    Up,
    /// Server → device.
    Down,
}

/// What the [`Relay`] does to one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// Drop the last 5 bytes.
    Cut,
    /// Append 5 bytes.
    Pad,
    /// Send the same step's frame of an earlier session instead.
    Replay,
    /// Send this session's previous frame (same direction) again instead.
    Reorder,
}

/// One exchange as the relay saw it: (request as forwarded, answer as received
/// from the server).
pub type Exchange = (Vec<u8>, Vec<u8>);

/// Called after the server answered exchange `n`, before the answer goes back:
/// may kill the server and return the URL of another one.
pub type AfterAnswer = Box<dyn FnMut(usize) -> Option<String> + Send>;

/// An HTTP relay on 127.0.0.1 between `vtoken rks download` and the RKS, one
/// frame per request each way (as the real client and server speak). Exchange `n`
/// (0: Hello/ServerCert, 1: Factor/Challenge, 2: Response/first Key, ...) may be
/// tampered with in one direction.
pub struct Relay {
    pub url: String,
    pub log: Arc<Mutex<Vec<Exchange>>>,
}

impl Relay {
    pub fn start(
        upstream: &str,
        tamper: Option<(Dir, usize, Op)>,
        earlier: Vec<Exchange>,
        mut after: Option<AfterAnswer>,
    ) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let log2 = log.clone();
        let mut upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { return };
                let Some((_, mut req)) = read_http(&mut c) else {
                    continue;
                };
                let n = log2.lock().unwrap().len();
                let pick = |d: Dir, log: &[Exchange], cur: Vec<u8>| -> Vec<u8> {
                    match tamper {
                        Some((td, tn, op)) if td == d && tn == n => {
                            let side = |e: &Exchange| match d {
                                Dir::Up => e.0.clone(),
                                Dir::Down => e.1.clone(),
                            };
                            match op {
                                Op::Cut => cur[..cur.len() - 5].to_vec(),
                                Op::Pad => [cur, b"extra".to_vec()].concat(),
                                Op::Replay => side(&earlier[n]),
                                Op::Reorder => side(&log[n - 1]),
                            }
                        }
                        _ => cur,
                    }
                };
                let cur_log = log2.lock().unwrap().clone();
                req = pick(Dir::Up, &cur_log, req);
                let Some(answer) = post(&upstream, &req) else {
                    // The server is gone: so is the connection.
                    continue;
                };
                if let Some(f) = after.as_mut() {
                    if let Some(u) = f(n) {
                        upstream = u;
                    }
                }
                let answer_out = pick(Dir::Down, &cur_log, answer.clone());
                log2.lock().unwrap().push((req, answer));
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    answer_out.len()
                );
                let _ = c.write_all(&answer_out);
            }
        });
        Relay { url, log }
    }

    /// The exchanges so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1.1 message with a content-length: (head, body).
fn read_http(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = c.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = c.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&b[..n]);
    }
    body.truncate(len);
    Some((head, body))
}

/// POSTs one frame to the RKS at `url` (`http://HOST:PORT`): its answer frame.
fn post(url: &str, frame: &[u8]) -> Option<Vec<u8>> {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut c = TcpStream::connect(host).ok()?;
    write!(
        c,
        "POST /api/v1/rks HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/octet-stream\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        frame.len()
    )
    .ok()?;
    c.write_all(frame).ok()?;
    read_http(&mut c).map(|(_, b)| b)
}
