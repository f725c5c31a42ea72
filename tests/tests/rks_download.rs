//! SPEC K1–K5 end to end (seed CN103714642A): a real `vtoken-server rks` on
//! 127.0.0.1, a station token and a device token made by the real CLI, DIK1 sealed
//! to the station, the device provisioned, the keys downloaded, then used through
//! the real PKCS#11 module (cryptoki) and checked against `openssl enc`.

#[allow(unused_imports)]
mod pkcs11_common;
mod rks_common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use pkcs11_common::{pin, Ctx};
use rks_common::*;

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
    // DIK2, the factor and the root key are no objects at all: not listed, not
    // found by value, not in any readable attribute, and not in the token file in
    // the clear (the device protocol ran inside the token: no public call of the
    // token core hands DIK2 out).
    let all = s.find_objects(&[]).unwrap();
    assert_eq!(all.len(), 2, "only the two keys are objects");
    let dik2 = cli_ok(
        &w.conf,
        &[
            "rks",
            "derive-dik2",
            "--dik1",
            DIK1_A,
            "--dsn",
            &w.dsn,
            "--factor",
            FACTOR,
        ],
    );
    let dik2 = hex::decode(dik2.trim()).unwrap();
    for class in [ObjectClass::SECRET_KEY, ObjectClass::DATA] {
        let found = s
            .find_objects(&[Attribute::Class(class), Attribute::Value(dik2.clone())])
            .unwrap();
        assert!(found.is_empty(), "DIK2 found by value");
    }
    for h in &all {
        let a = s
            .get_attributes(
                *h,
                &[
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::Value,
                    AttributeType::Class,
                ],
            )
            .unwrap_or_default();
        let text = format!("{a:?}");
        assert!(!text.contains(&hex::encode(&dik2)), "{text}");
    }
    let mut files = 0;
    for e in std::fs::read_dir(ctx.dir.path().join("tokens")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let b = std::fs::read(&p).unwrap();
            assert!(
                !b.windows(24).any(|x| x == dik2.as_slice()),
                "{}",
                p.display()
            );
            files += 1;
        }
    }
    assert!(files > 0);
}

/// DIK1 by range with real tokens: the range's DIK1 is exported sealed to the
/// station, loaded there, the device (whose serial lies in the range) is
/// provisioned from it and downloads; the server finds the range at S306–S307.
#[test]
fn dik1_range_through_the_station() {
    let ctx = Ctx::uninitialized();
    let w = world_with(
        ctx.dir.path(),
        &ctx.conf.clone(),
        Some("0000000000000000..FFFFFFFFFFFFFFFF"),
    );
    queue(&w, "TMK1", "des3", TMK1);
    let st = status(&w);
    assert_eq!(
        st["dik1_range"], "0000000000000000..FFFFFFFFFFFFFFFF",
        "{st}"
    );
    let srv = Rks::start(&w.rks);
    let out = cli_ok(
        &w.conf,
        &[
            "--token", "device", "--json", "rks", "download", "--server", &srv.url, "--pin",
            USER_PIN,
        ],
    );
    assert!(out.contains("TMK1"), "{out}");
    assert_eq!(status(&w)["delivered"], 1);
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

/// `vtoken --token T rks inject --in F [extra]`: (success, stdout, stderr).
fn inject(conf: &Path, token: &str, env: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut a = vec!["--token", token, "--json", "rks", "inject", "--in"];
    a.push(env.to_str().unwrap());
    a.extend_from_slice(extra);
    cli(conf, &a)
}

/// Whether the token is provisioned: `rks download` on an unprovisioned token
/// says so before any network step.
fn provisioned(conf: &Path, token: &str) -> bool {
    let (_, _, err) = cli(
        conf,
        &[
            "--token",
            token,
            "rks",
            "download",
            "--server",
            "http://127.0.0.1:9",
            "--pin",
            USER_PIN,
        ],
    );
    !err.contains("not provisioned")
}

/// K2 across machines: the station writes an injection envelope for the device's
/// certificate, the device opens it with its SO PIN, and every attack on the
/// envelope fails with real token files through the CLI: an envelope made for
/// another device (or replayed to a second one), a tampered or cut envelope, a
/// wrong PIN (or the user PIN), a second injection without --replace, a replay
/// of an envelope already taken, and a forged envelope from a station outside the
/// device's root naming a fake RKS root. After all that the download still works.
#[test]
fn sealed_injection_and_its_attacks() {
    let ctx = Ctx::uninitialized();
    let dir = ctx.dir.path();
    let conf = ctx.conf.clone();
    let c = |a: &[&str]| cli_ok(&conf, a);
    let ca = dir.join("ca");
    c(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    for label in ["station", "dev-a", "dev-b"] {
        c(&[
            "init", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN,
        ]);
        c(&[
            "--token",
            label,
            "device",
            "certify",
            "--ca-dir",
            ca.to_str().unwrap(),
            "--pin",
            USER_PIN,
        ]);
    }
    let pem = |label: &str| {
        let p = dir.join(format!("{label}.pem"));
        c(&[
            "--token",
            label,
            "device",
            "cert",
            "-o",
            p.to_str().unwrap(),
        ]);
        p
    };
    let (station_pem, a_pem, b_pem) = (pem("station"), pem("dev-a"), pem("dev-b"));
    let (dsn_a, dsn_b) = (serial_of(&conf, "dev-a"), serial_of(&conf, "dev-b"));
    let rks = dir.join("rks");
    let r = rks.to_str().unwrap();
    server(&["rks", "init", "--dir", r]);
    server(&[
        "rks", "dik1", "add", "--dir", r, "--dsn", &dsn_a, "--key", DIK1_A,
    ]);
    server(&["rks", "dik1", "add", "--dir", r, "--dsn", &dsn_b]);
    for dsn in [&dsn_a, &dsn_b] {
        let cms = dir.join(format!("{dsn}.cms"));
        server(&[
            "rks",
            "dik1",
            "export",
            "--dir",
            r,
            "--dsn",
            dsn,
            "--to-cert",
            station_pem.to_str().unwrap(),
            "-o",
            cms.to_str().unwrap(),
        ]);
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
    }
    let root = rks.join("root.pem");
    let make = |cert: &Path, out: &Path| {
        c(&[
            "rks",
            "provision",
            "--station",
            "station",
            "--device-cert",
            cert.to_str().unwrap(),
            "--factor",
            FACTOR,
            "--root",
            root.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--station-pin",
            USER_PIN,
        ]);
        std::fs::read(out).unwrap()
    };
    let env_a = dir.join("a.vrks");
    let bytes_a = make(&a_pem, &env_a);
    // DIK2 is derived inside the station: it is nowhere in the envelope in the clear.
    let dik2 = c(&[
        "rks",
        "derive-dik2",
        "--dik1",
        DIK1_A,
        "--dsn",
        &dsn_a,
        "--factor",
        FACTOR,
    ]);
    let dik2 = hex::decode(dik2.trim()).unwrap();
    assert!(!bytes_a.windows(24).any(|w| w == dik2.as_slice()));
    // Without the device certificate's chain to the station's root: refused.
    let (ok, _, err) = cli(
        &conf,
        &[
            "rks",
            "provision",
            "--station",
            "station",
            "--device-cert",
            root.to_str().unwrap(),
            "--factor",
            FACTOR,
            "--root",
            root.to_str().unwrap(),
            "-o",
            dir.join("x.vrks").to_str().unwrap(),
            "--station-pin",
            USER_PIN,
        ],
    );
    assert!(!ok, "a non-certificate as --device-cert: {err}");

    // The envelope for dev-a, replayed to dev-b: it does not open there.
    let (ok, _, err) = inject(&conf, "dev-b", &env_a, &["--so-pin", SO_PIN]);
    assert!(!ok && err.contains("injection refused"), "{err}");
    assert!(!provisioned(&conf, "dev-b"));
    // Wrong SO PIN, and the user PIN in its place.
    for p in ["87654321", USER_PIN] {
        let (ok, _, err) = inject(&conf, "dev-a", &env_a, &["--so-pin", p]);
        assert!(!ok && err.contains("SO PIN"), "{err}");
    }
    // Tampered (one byte in the middle, in the sealed content, at the end) or cut.
    for at in [bytes_a.len() / 2, bytes_a.len() - 300, bytes_a.len() - 1] {
        let mut t = bytes_a.clone();
        t[at] ^= 0x01;
        let p = dir.join("tampered.vrks");
        std::fs::write(&p, &t).unwrap();
        let (ok, _, err) = inject(&conf, "dev-a", &p, &["--so-pin", SO_PIN]);
        assert!(!ok && err.contains("injection refused"), "byte {at}: {err}");
    }
    let p = dir.join("cut.vrks");
    std::fs::write(&p, &bytes_a[..bytes_a.len() - 20]).unwrap();
    let (ok, _, err) = inject(&conf, "dev-a", &p, &["--so-pin", SO_PIN]);
    assert!(!ok && err.contains("injection refused"), "{err}");
    assert!(!provisioned(&conf, "dev-a"), "nothing stored on a refusal");

    // The honest injection.
    let (ok, out, err) = inject(&conf, "dev-a", &env_a, &["--so-pin", SO_PIN]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["device"], dsn_a.to_uppercase().as_str(), "{out}");
    assert_eq!(v["replaced"], false, "{out}");
    assert!(provisioned(&conf, "dev-a"));
    // Again: refused without --replace, and a replay even with it.
    let (ok, _, err) = inject(&conf, "dev-a", &env_a, &["--so-pin", SO_PIN]);
    assert!(!ok && err.contains("--replace"), "{err}");
    let (ok, _, err) = inject(&conf, "dev-a", &env_a, &["--so-pin", SO_PIN, "--replace"]);
    assert!(!ok && err.contains("already used"), "{err}");
    // A fresh envelope replaces it only with --replace.
    let env_a2 = dir.join("a2.vrks");
    make(&a_pem, &env_a2);
    let (ok, _, err) = inject(&conf, "dev-a", &env_a2, &["--so-pin", SO_PIN]);
    assert!(!ok && err.contains("--replace"), "{err}");
    let (ok, out, err) = inject(&conf, "dev-a", &env_a2, &["--so-pin", SO_PIN, "--replace"]);
    assert!(ok && out.contains("\"replaced\": true"), "{out}{err}");
    // dev-b with its own envelope.
    let env_b = dir.join("b.vrks");
    make(&b_pem, &env_b);
    let (ok, _, err) = inject(&conf, "dev-b", &env_b, &["--so-pin", SO_PIN]);
    assert!(ok, "{err}");

    // A forged envelope: an attacker's station, certified under the attacker's own
    // CA, holding a DIK1 for dev-a from the attacker's own RKS, seals a fake root
    // to dev-a's (public) certificate. Our CLI refuses at the station already (the
    // device certificate is not under the attacker's root), so the attacker calls
    // the token API directly; dev-a refuses the signer.
    let evil_ca = dir.join("evil-ca");
    c(&["ca", "init", "--dir", evil_ca.to_str().unwrap()]);
    c(&[
        "init", "--label", "evil", "--so-pin", SO_PIN, "--pin", USER_PIN,
    ]);
    c(&[
        "--token",
        "evil",
        "device",
        "certify",
        "--ca-dir",
        evil_ca.to_str().unwrap(),
        "--pin",
        USER_PIN,
    ]);
    let evil_pem = pem("evil");
    let evil_rks = dir.join("evil-rks");
    let e = evil_rks.to_str().unwrap();
    server(&["rks", "init", "--dir", e]);
    server(&["rks", "dik1", "add", "--dir", e, "--dsn", &dsn_a]);
    let cms = dir.join("evil.cms");
    server(&[
        "rks",
        "dik1",
        "export",
        "--dir",
        e,
        "--dsn",
        &dsn_a,
        "--to-cert",
        evil_pem.to_str().unwrap(),
        "-o",
        cms.to_str().unwrap(),
    ]);
    c(&[
        "--token",
        "evil",
        "rks",
        "station-load",
        "--in",
        cms.to_str().unwrap(),
        "--pin",
        USER_PIN,
    ]);
    let (ok, _, err) = cli(
        &conf,
        &[
            "rks",
            "provision",
            "--station",
            "evil",
            "--device-cert",
            a_pem.to_str().unwrap(),
            "--factor",
            FACTOR,
            "--root",
            evil_rks.join("root.pem").to_str().unwrap(),
            "-o",
            dir.join("evil.vrks").to_str().unwrap(),
            "--station-pin",
            USER_PIN,
        ],
    );
    assert!(!ok && err.contains("device certificate refused"), "{err}");
    let forged = {
        use vault_core::token::UserType;
        let reg =
            vault_core::slots::Registry::new(vault_core::config::Config::from_file(&conf).unwrap());
        let t = reg.open(&reg.find("evil").unwrap()).unwrap();
        let sid = &t.open_session(true).unwrap();
        t.login(UserType::User, USER_PIN.as_bytes()).unwrap();
        let a_der = der_of(&["x509"], &a_pem);
        let fake_root = der_of(&["pkey", "-pubin"], &evil_rks.join("root.pem"));
        let env = t
            .rks_station_seal(&a_der, &dsn_a, &hex::decode(FACTOR).unwrap(), &fake_root)
            .unwrap();
        t.close_session(sid).unwrap();
        env
    };
    let p = dir.join("forged.vrks");
    std::fs::write(&p, &forged).unwrap();
    let (ok, _, err) = inject(&conf, "dev-a", &p, &["--so-pin", SO_PIN, "--replace"]);
    assert!(
        !ok && err.contains("station certificate refused"),
        "a forged envelope: {err}"
    );

    // dev-a still trusts the real RKS only: the download works.
    let w = World {
        dir: dir.to_path_buf(),
        conf: conf.clone(),
        rks: rks.clone(),
        dsn: dsn_a.clone(),
    };
    queue(&w, "TMK1", "des3", TMK1);
    let srv = Rks::start(&rks);
    let out = cli_ok(
        &conf,
        &[
            "--token", "dev-a", "--json", "rks", "download", "--server", &srv.url, "--pin",
            USER_PIN,
        ],
    );
    assert!(out.contains("TMK1"), "{out}");
}

/// DER of a PEM certificate (`x509`) or public key (`pkey -pubin`), by openssl.
fn der_of(what: &[&str], pem: &Path) -> Vec<u8> {
    let o = Command::new("openssl")
        .args(what)
        .args(["-in", pem.to_str().unwrap(), "-outform", "DER"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// K5 with a real token file on the device side, wrong DIK2 (AT mismatch): the
/// station is loaded with a DIK1 for the device's DSN from another RKS and
/// re-provisions the device (`--replace`) with the DIK2 derived from it. The real
/// RKS refuses ("device authentication failed"), the token stores nothing, the
/// server delivers nothing and logs why; after the station reloads the right DIK1
/// and re-provisions, the rerun delivers the key exactly once.
#[test]
fn wrong_dik2_on_a_real_token_then_rerun() {
    let ctx = Ctx::uninitialized();
    let dir = ctx.dir.path();
    let w = world(dir, &ctx.conf.clone());
    queue(&w, "TMK1", "des3", TMK1);
    let other = dir.join("other-rks");
    let o = other.to_str().unwrap();
    server(&["rks", "init", "--dir", o]);
    server(&["rks", "dik1", "add", "--dir", o, "--dsn", &w.dsn]);
    let load = |rks: &str, name: &str| {
        let cms = dir.join(name);
        server(&[
            "rks",
            "dik1",
            "export",
            "--dir",
            rks,
            "--dsn",
            &w.dsn,
            "--to-cert",
            dir.join("station.pem").to_str().unwrap(),
            "-o",
            cms.to_str().unwrap(),
        ]);
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
    };
    let provision = || {
        cli_ok(
            &w.conf,
            &[
                "--token",
                "device",
                "rks",
                "provision",
                "--station",
                "station",
                "--factor",
                FACTOR,
                "--root",
                w.rks.join("root.pem").to_str().unwrap(),
                "--so-pin",
                SO_PIN,
                "--station-pin",
                USER_PIN,
                "--replace",
            ],
        )
    };
    load(o, "wrong.cms");
    provision();
    let srv = Rks::start(&w.rks);
    let download = || {
        cli(
            &w.conf,
            &[
                "--token", "device", "--json", "rks", "download", "--server", &srv.url, "--pin",
                USER_PIN,
            ],
        )
    };
    let (ok, _, err) = download();
    assert!(!ok && err.contains("device authentication failed"), "{err}");
    let objects = cli_ok(
        &w.conf,
        &[
            "--token", "device", "--json", "objects", "list", "--pin", USER_PIN,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&objects).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(0), "{objects}");
    let st = status(&w);
    assert_eq!(st["delivered"], 0, "{st}");
    assert_eq!(st["queued"], 1, "{st}");
    let log = server(&["rks", "status", "--dir", w.rks.to_str().unwrap(), "--audit"]);
    assert!(
        log.contains("REFUSED") && log.contains("device authentication failed"),
        "{log}"
    );
    // The right DIK1 again: the rerun delivers the key once.
    load(w.rks.to_str().unwrap(), "right.cms");
    provision();
    let (ok, out, err) = download();
    assert!(ok && out.contains("TMK1"), "{out}{err}");
    let (ok, out, _) = download();
    assert!(ok && out.contains("\"keys\": []"), "{out}");
    let st = status(&w);
    assert_eq!(st["delivered"], 1, "{st}");
}

/// DIK1 by batch with real tokens (S306–S307, ¶0049): a batch of 3001 DSNs
/// (the device among them) is exported sealed to the station with its member
/// list and loaded there; a token outside the batch cannot be provisioned from
/// it; the device downloads with the batch's DIK1. A range over every DSN added
/// on both sides changes nothing for the batch's member (the batch comes first)
/// and serves the other token; the device's own record, added last, wins over its
/// batch. Each download succeeds only if the station and the server picked the
/// same DIK1 (else AT mismatch).
#[test]
fn dik1_batch_through_the_station() {
    const BATCH_KEY: &str = "111111111111111111111111111111111111111111111111";
    const RANGE_KEY: &str = "C1D0F8FB4958670DBA40AB1F3752EF0DC1D0F8FB4958670D";
    const OWN_KEY: &str = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567";
    let (t, conf) = temp_world_dir();
    let dir = t.path();
    let c = |a: &[&str]| cli_ok(&conf, a);
    let ca = dir.join("ca");
    c(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    for label in ["station", "device", "dev2"] {
        c(&[
            "init", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN,
        ]);
        c(&[
            "--token",
            label,
            "device",
            "certify",
            "--ca-dir",
            ca.to_str().unwrap(),
            "--pin",
            USER_PIN,
        ]);
    }
    c(&[
        "--token",
        "station",
        "device",
        "cert",
        "-o",
        dir.join("station.pem").to_str().unwrap(),
    ]);
    let rks = dir.join("rks");
    let r = rks.to_str().unwrap();
    server(&["rks", "init", "--dir", r]);
    let w = World {
        dir: dir.to_path_buf(),
        conf: conf.clone(),
        rks: rks.clone(),
        dsn: serial_of(&conf, "device"),
    };
    let dsn2 = serial_of(&conf, "dev2");
    let root = rks.join("root.pem");
    let mut list = "# production lot 7\n\n".to_string();
    for i in 0..3000u64 {
        list += &format!("{:016X}\n", 0xF0E1_D2C3_0000_0000 + i);
    }
    list += &format!("{}\n", w.dsn.to_lowercase());
    let f = dir.join("lot7.txt");
    std::fs::write(&f, list).unwrap();
    let out = server(&[
        "rks",
        "dik1",
        "add",
        "--dir",
        r,
        "--batch",
        "LOT-7",
        "--dsn-file",
        f.to_str().unwrap(),
        "--key",
        BATCH_KEY,
    ]);
    assert!(out.contains("3001 DSNs"), "{out}");
    station_load(&w, &rks, &["--batch", "LOT-7"]);
    // dev2 is in no batch the station holds.
    let (ok, _, err) = cli(
        &conf,
        &[
            "--token",
            "dev2",
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
        ],
    );
    assert!(!ok && err.contains("holds no DIK1"), "{err}");
    provision(&w, &root, false);
    queue(&w, "TMK1", "des3", TMK1);
    let srv = Rks::start(&rks);
    let (ok, out, err) = download(&w, "device", &srv.url);
    assert!(ok && out.contains("TMK1"), "{out}{err}");
    let st = status(&w);
    assert_eq!(st["dik1_batch"], "LOT-7", "{st}");
    let b = status_of(&rks, "LOT-7");
    assert_eq!(b["kind"], "batch", "{b}");
    assert_eq!(b["members"], 3001, "{b}");
    assert_eq!(b["delivered"], 1, "{b}");

    // A range over every DSN, with another DIK1, on both sides.
    server(&[
        "rks",
        "dik1",
        "add",
        "--dir",
        r,
        "--range",
        "0000000000000000..FFFFFFFFFFFFFFFF",
        "--key",
        RANGE_KEY,
    ]);
    station_load(&w, &rks, &["--range", "0000000000000000..FFFFFFFFFFFFFFFF"]);
    provision(&w, &root, true);
    queue(&w, "TMK2", "aes256", TMK2);
    let (ok, out, err) = download(&w, "device", &srv.url);
    assert!(
        ok && out.contains("TMK2"),
        "the batch, not the range: {out}{err}"
    );
    provision_token(&w, "dev2", &root, false);
    queue_for(&rks, &dsn2, "TMK1", "des3", TMK1);
    let (ok, out, err) = download(&w, "dev2", &srv.url);
    assert!(ok && out.contains("TMK1"), "dev2 by the range: {out}{err}");
    assert_eq!(
        status_of(&rks, &dsn2)["dik1_range"],
        "0000000000000000..FFFFFFFFFFFFFFFF"
    );

    // The device's own record, on both sides: it wins over the batch.
    server(&[
        "rks", "dik1", "add", "--dir", r, "--dsn", &w.dsn, "--key", OWN_KEY,
    ]);
    station_load(&w, &rks, &["--dsn", &w.dsn]);
    provision(&w, &root, true);
    queue(&w, "TMK3", "des3", TMK1);
    let (ok, out, err) = download(&w, "device", &srv.url);
    assert!(ok && out.contains("TMK3"), "its own record: {out}{err}");
    assert_eq!(status(&w)["dik1_batch"], serde_json::Value::Null);
    assert_eq!(object_labels(&w, "device"), ["TMK1", "TMK2", "TMK3"]);
    assert_eq!(status(&w)["delivered"], 3);
}

/// A station-load of a batch export (v2) that is malformed (its member count
/// says more than it lists, or it is cut inside the name) is refused; one whose
/// member already belongs to another batch at the station is refused with that
/// DSN; a batch of the same name replaces the old one. (v1 exports, one DSN or a
/// range, load as before: the other tests here.)
#[test]
fn station_refuses_bad_batch_exports() {
    let (t, conf) = temp_world_dir();
    let dir = t.path();
    let c = |a: &[&str]| cli_ok(&conf, a);
    let ca = dir.join("ca");
    c(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    c(&[
        "init", "--label", "station", "--so-pin", SO_PIN, "--pin", USER_PIN,
    ]);
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
    let pem = dir.join("station.pem");
    c(&[
        "--token",
        "station",
        "device",
        "cert",
        "-o",
        pem.to_str().unwrap(),
    ]);
    let cert = der_of(&["x509"], &pem);
    let v2 = |name: &str, members: &[u64], count: u32| {
        let mut p = b"vtoken rks dik1 v2\0".to_vec();
        p.extend_from_slice(&(name.len() as u16).to_be_bytes());
        p.extend_from_slice(name.as_bytes());
        p.extend_from_slice(&[0x11; 24]);
        p.extend_from_slice(&count.to_be_bytes());
        for m in members {
            p.extend_from_slice(&m.to_be_bytes());
        }
        p
    };
    let load = |plain: &[u8]| {
        let f = dir.join("x.cms");
        std::fs::write(&f, vault_core::sealed::seal(&cert, plain).unwrap()).unwrap();
        cli(
            &conf,
            &[
                "--token",
                "station",
                "rks",
                "station-load",
                "--in",
                f.to_str().unwrap(),
                "--pin",
                USER_PIN,
            ],
        )
    };
    let (ok, out, err) = load(&v2("A", &[1, 2], 2));
    assert!(ok && out.contains("batch A (2 DSNs)"), "{out}{err}");
    for bad in [v2("B", &[3], 2), v2("B", &[3, 4], 1), v2("B", &[], 0)] {
        let (ok, _, err) = load(&bad);
        assert!(!ok && err.contains("not a DIK1 batch export"), "{err}");
    }
    let mut cut = v2("LONGNAME", &[5], 1);
    cut.truncate(24);
    let (ok, _, err) = load(&cut);
    assert!(!ok && err.contains("cut short"), "{err}");
    let (ok, _, err) = load(&v2("C", &[7, 2], 2));
    assert!(
        !ok && err.contains("0000000000000002") && err.contains("batch A"),
        "{err}"
    );
    // A batch of the same name replaces the old one.
    let (ok, out, err) = load(&v2("A", &[2, 9], 2));
    assert!(ok && out.contains("batch A (2 DSNs)"), "{out}{err}");
}
