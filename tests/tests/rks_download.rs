//! SPEC K1–K5 end to end (seed CN103714642A): a real `vtoken-server rks` on
//! 127.0.0.1, a station token and a device token made by the real CLI, DIK1 sealed
//! to the station, the device provisioned, the keys downloaded, then used through
//! the real PKCS#11 module (cryptoki) and checked against `openssl enc`.

#[allow(unused_imports)]
mod pkcs11_common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use pkcs11_common::*;

const TMK1: &str = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567";
const TMK2: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
const FACTOR: &str = "00112233445566778899AABBCCDDEEFF";

/// A running `vtoken-server rks serve`; killed on drop.
struct Rks {
    child: Child,
    url: String,
}

impl Rks {
    fn start(dir: &Path) -> Rks {
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
}

impl Drop for Rks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vtoken-server ARGS`: stdout, or a panic with stderr.
fn server(args: &[&str]) -> String {
    let o = Command::new(vtoken_testsupport::artifacts::server())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "vtoken-server {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `vtoken ARGS` with this config: (success, stdout, stderr).
fn cli(conf: &Path, args: &[&str]) -> (bool, String, String) {
    let o = vtoken_testsupport::env::command(vtoken_testsupport::artifacts::cli(), conf)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn cli_ok(conf: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli(conf, args);
    assert!(ok, "vtoken {args:?}: {err}");
    out
}

fn openssl_enc(cipher: &str, key_hex: &str, data: &[u8]) -> Vec<u8> {
    let mut c = Command::new("openssl")
        .args(["enc", cipher, "-nopad", "-K", key_hex])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    o.stdout
}

/// The world of one test: token directory, RKS directory, a station holding the
/// device's DIK1, a provisioned device.
struct World {
    conf: std::path::PathBuf,
    rks: std::path::PathBuf,
    dsn: String,
}

fn world(dir: &Path, conf: &Path) -> World {
    let c = |a: &[&str]| cli_ok(conf, a);
    c(&[
        "init", "--label", "station", "--so-pin", SO_PIN, "--pin", USER_PIN,
    ]);
    c(&[
        "init", "--label", "device", "--so-pin", SO_PIN, "--pin", USER_PIN,
    ]);
    let ca = dir.join("ca");
    c(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    c(&[
        "--token",
        "station",
        "device",
        "certify",
        "--ca-dir",
        ca.to_str().unwrap(),
        "--pin",
        USER_PIN,
    ]);
    let station_pem = dir.join("station.pem");
    c(&[
        "--token",
        "station",
        "device",
        "cert",
        "-o",
        station_pem.to_str().unwrap(),
    ]);
    let info: serde_json::Value =
        serde_json::from_str(&c(&["--token", "device", "--json", "info"])).unwrap();
    let dsn = info["serial"].as_str().unwrap().to_string();
    let rks = dir.join("rks");
    let r = rks.to_str().unwrap();
    server(&["rks", "init", "--dir", r]);
    server(&["rks", "dik1", "add", "--dir", r, "--dsn", &dsn]);
    let cms = dir.join("dik1.cms");
    server(&[
        "rks",
        "dik1",
        "export",
        "--dir",
        r,
        "--dsn",
        &dsn,
        "--to-cert",
        station_pem.to_str().unwrap(),
        "-o",
        cms.to_str().unwrap(),
    ]);
    // The export is a CMS envelope: DIK1 is not in it in the clear.
    assert!(std::fs::read(&cms).unwrap().len() > 300);
    c(&[
        "--token",
        "station",
        "rks",
        "station-load",
        "--in",
        cms.to_str().unwrap(),
        "--pin",
        USER_PIN,
    ]);
    let root = rks.join("root.pem");
    c(&[
        "--token",
        "device",
        "rks",
        "provision",
        "--station",
        "station",
        "--factor",
        FACTOR,
        "--root",
        root.to_str().unwrap(),
        "--pin",
        USER_PIN,
        "--station-pin",
        USER_PIN,
    ]);
    World {
        conf: conf.to_path_buf(),
        rks,
        dsn,
    }
}

fn status(w: &World) -> serde_json::Value {
    let s: serde_json::Value = serde_json::from_str(&server(&[
        "rks",
        "status",
        "--dir",
        w.rks.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    s.as_array()
        .unwrap()
        .iter()
        .find(|e| e["dsn"] == w.dsn.as_str())
        .cloned()
        .unwrap()
}

fn queue(w: &World, label: &str, ty: &str, value: &str) {
    server(&[
        "rks",
        "queue",
        "--dir",
        w.rks.to_str().unwrap(),
        "--dsn",
        &w.dsn,
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

#[test]
fn download_then_use_through_pkcs11() {
    let mut ctx = Ctx::uninitialized();
    let w = world(ctx.dir.path(), &ctx.conf.clone());
    queue(&w, "TMK1", "des3", TMK1);
    queue(&w, "TMK2", "aes256", TMK2);
    let srv = Rks::start(&w.rks);
    let out = cli_ok(
        &w.conf,
        &[
            "--token", "device", "--json", "rks", "download", "--server", &srv.url, "--pin",
            USER_PIN,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 2, "{out}");
    let st = status(&w);
    assert_eq!(st["delivered"], 2, "{st}");
    assert_eq!(st["queued"], 0, "{st}");
    // A rerun finds nothing left.
    let out = cli_ok(
        &w.conf,
        &[
            "--token", "device", "--json", "rks", "download", "--server", &srv.url, "--pin",
            USER_PIN,
        ],
    );
    assert!(out.contains("\"keys\": []"), "{out}");

    // The keys through PKCS#11.
    ctx.reinit();
    let p11 = ctx.p11();
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).unwrap().label().trim() == "device")
        .expect("device slot");
    let s = p11.open_rw_session(slot).unwrap();
    s.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN)))
        .unwrap();
    let find = |label: &str| {
        let h = s
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(h.len(), 1, "{label}");
        h[0]
    };
    let data = b"0123456789abcdefFEDCBA9876543210";
    let k1 = find("TMK1");
    let ct = s.encrypt(&Mechanism::Des3Ecb, k1, data).unwrap();
    assert_eq!(ct, openssl_enc("-des-ede3", TMK1, data));
    let k2 = find("TMK2");
    let ct = s.encrypt(&Mechanism::AesEcb, k2, data).unwrap();
    assert_eq!(ct, openssl_enc("-aes-256-ecb", TMK2, data));
    for k in [k1, k2] {
        let e = s
            .get_attributes(k, &[AttributeType::Value])
            .map(|a| a.len());
        // CKA_VALUE of a sensitive key is unavailable (the module answers
        // CKR_ATTRIBUTE_SENSITIVE and returns no value).
        assert!(
            matches!(
                e,
                Err(Error::Pkcs11(RvError::AttributeSensitive, _)) | Ok(0)
            ),
            "{e:?}"
        );
        let a = s
            .get_attributes(
                k,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Id,
                ],
            )
            .unwrap();
        assert!(a.contains(&Attribute::Sensitive(true)), "{a:?}");
        assert!(a.contains(&Attribute::Extractable(false)), "{a:?}");
        assert!(a.contains(&Attribute::Id(vec![1])), "{a:?}");
    }
    // DIK2, the factor and the root key are no objects at all.
    let all = s.find_objects(&[]).unwrap();
    assert_eq!(all.len(), 2, "only the two keys are objects");
}

/// K5 on a real token: a server whose working key is not under the root the device
/// was provisioned with is refused ("server authentication failed"), the token
/// stores nothing, the server delivers nothing and logs why.
#[test]
fn refused_download_stores_nothing_on_the_token() {
    let ctx = Ctx::uninitialized();
    let w = world(ctx.dir.path(), &ctx.conf.clone());
    // Another RKS that knows the device's DSN but whose root the device never saw.
    let other = ctx.dir.path().join("other-rks");
    let o = other.to_str().unwrap();
    server(&["rks", "init", "--dir", o]);
    server(&["rks", "dik1", "add", "--dir", o, "--dsn", &w.dsn]);
    server(&[
        "rks", "queue", "--dir", o, "--dsn", &w.dsn, "--label", "EVIL", "--type", "des3",
    ]);
    let srv = Rks::start(&other);
    let (ok, _, err) = cli(
        &w.conf,
        &[
            "--token", "device", "rks", "download", "--server", &srv.url, "--pin", USER_PIN,
        ],
    );
    assert!(!ok);
    assert!(err.contains("server authentication failed"), "{err}");
    let objects = cli_ok(
        &w.conf,
        &[
            "--token", "device", "--json", "objects", "list", "--pin", USER_PIN,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&objects).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(0), "{objects}");
    let log = server(&["rks", "status", "--dir", o, "--audit"]);
    assert!(
        log.contains("REFUSED") && log.contains("server authentication failed"),
        "{log}"
    );
    let st: serde_json::Value =
        serde_json::from_str(&server(&["rks", "status", "--dir", o, "--json"])).unwrap();
    assert_eq!(st[0]["delivered"], 0, "{st}");
    assert_eq!(st[0]["queued"], 1, "{st}");
}
