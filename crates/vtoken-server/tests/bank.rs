//! The bank (`vtoken-server bank`, SPEC W1–W7) through its real binary, SQLite
//! database and HTTP server on 127.0.0.1, with a P-256 key standing in for the
//! token's wallet key (the token itself is tested in `tests/tests/wallet_*.rs`).
//! Every refusal is checked against the account balance.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, BIN};
use p256::ecdsa::SigningKey;
use pkcs8::EncodePublicKey;
use vtoken_pki::{build_csr, SigAlg, Usage};
use vtoken_wallet::msg::{
    sign_der, LoadAbort, LoadPermit, LoadReceipt, LoadRequest, Outcome, Payer, Purchase,
    Settlement, ALG_ECDSA_P256_SHA256,
};
use vtoken_wallet::{api, keys, Amount, Envelope, Kind};

const SERIAL: &str = "00000000000000A1";

fn bank(args: &[&str]) -> String {
    let o = Command::new(BIN).arg("bank").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "bank {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn bank_fails(args: &[&str]) -> String {
    let o = Command::new(BIN).arg("bank").args(args).output().unwrap();
    assert!(!o.status.success(), "bank {args:?} succeeded");
    String::from_utf8(o.stderr).unwrap()
}

fn balance(dir: &Path, acc: &str) -> String {
    let out = bank(&[
        "account",
        "show",
        "--dir",
        s(dir),
        "--account",
        acc,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["balance"].as_str().unwrap().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn amt(s: &str) -> Amount {
    s.parse().unwrap()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    key: SigningKey,
    bank_vk: p256::ecdsa::VerifyingKey,
}

/// A bank with account ACC1 (1000.00) and ACC2 (5.00), the test key registered on
/// ACC1 as token SERIAL.
fn fixture(days: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    bank(&["init", "--dir", s(&dir)]);
    bank(&[
        "account",
        "open",
        "--dir",
        s(&dir),
        "--account",
        "ACC1",
        "--holder",
        "Li Lei",
        "--balance",
        "1000.00",
    ]);
    bank(&[
        "account",
        "open",
        "--dir",
        s(&dir),
        "--account",
        "ACC2",
        "--holder",
        "Han Meimei",
        "--balance",
        "5.00",
    ]);
    let key = SigningKey::random(&mut rand_core::OsRng);
    let spki = key.verifying_key().to_public_key_der().unwrap();
    let csr = build_csr(
        spki.as_bytes(),
        SERIAL,
        Usage::Signing,
        |tbs| Ok::<_, String>(sign_der(&key, tbs)),
        SigAlg::EcdsaSha256,
    )
    .unwrap();
    std::fs::write(tmp.path().join("w.csr"), &csr).unwrap();
    let out = tmp.path().join("w.pem");
    bank(&[
        "register",
        "--dir",
        s(&dir),
        "--account",
        "ACC1",
        "--csr",
        s(&tmp.path().join("w.csr")),
        "-o",
        s(&out),
        "--days",
        days,
    ]);
    let pem = std::fs::read(dir.join("bank.pem")).unwrap();
    let bank_vk = keys::verifying_key_of_cert(&keys::cert_der_of(&pem).unwrap()).unwrap();
    let cert = keys::cert_der_of(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(keys::spki_of_cert(&cert).unwrap(), spki.as_bytes());
    Fixture {
        _tmp: tmp,
        dir,
        key,
        bank_vk,
    }
}

fn request(seq: u64, account: &str, amount: &str) -> LoadRequest {
    LoadRequest {
        token_serial: SERIAL.into(),
        account: account.into(),
        amount: amt(amount),
        currency: "CNY".into(),
        wallet_balance: Amount::ZERO,
        seq,
        key_version: 1,
        alg: ALG_ECDSA_P256_SHA256.into(),
        random: [seq as u8; 16],
        time: 0,
    }
}

fn post(url: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, (u16, String)> {
    match ureq::post(&format!("{url}{path}")).send_bytes(body) {
        Ok(r) => {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut r.into_reader(), &mut v).unwrap();
            Ok(v)
        }
        Err(ureq::Error::Status(code, r)) => Err((code, r.into_string().unwrap())),
        Err(e) => panic!("{e}"),
    }
}

fn seal<T: serde::Serialize>(kind: Kind, body: &T, key: &SigningKey) -> Vec<u8> {
    Envelope::seal_with(kind, SERIAL, body, key)
        .unwrap()
        .to_bytes()
}

#[test]
fn admin_commands_and_amounts() {
    let f = fixture("730");
    assert_eq!(balance(&f.dir, "ACC1"), "1000.00");
    let out = bank(&[
        "account",
        "show",
        "--dir",
        s(&f.dir),
        "--account",
        "ACC1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["currency"], "CNY");
    assert_eq!(v["holder"], "Li Lei");
    bank(&[
        "account",
        "credit",
        "--dir",
        s(&f.dir),
        "--account",
        "ACC2",
        "--amount",
        "0.05",
    ]);
    assert_eq!(balance(&f.dir, "ACC2"), "5.05");
    // Bad input: a clear error, nothing changed.
    for bad in ["1.234", "-1", "abc", "1e3"] {
        let e = bank_fails(&[
            "account",
            "credit",
            "--dir",
            s(&f.dir),
            "--account",
            "ACC2",
            &format!("--amount={bad}"),
        ]);
        assert!(e.contains("not an amount"), "{e}");
    }
    assert_eq!(balance(&f.dir, "ACC2"), "5.05");
    let e = bank_fails(&[
        "account",
        "open",
        "--dir",
        s(&f.dir),
        "--account",
        "ACC1",
        "--holder",
        "x",
    ]);
    assert!(e.contains("exists"), "{e}");
    let e = bank_fails(&["account", "show", "--dir", s(&f.dir), "--account", "NOPE"]);
    assert!(e.contains("no account NOPE"), "{e}");
    assert!(bank_fails(&["init", "--dir", s(&f.dir)]).contains("exists"));
}

#[test]
fn load_permit_receipt_and_every_refusal_keep_the_money_right() {
    let f = fixture("730");
    let srv = Server::start(&["bank", "serve", "--dir", s(&f.dir)]);
    let url = srv.url.clone();
    let pem = ureq::get(&format!("{url}{}", api::BANK_PEM))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(
        pem.as_bytes(),
        std::fs::read(f.dir.join("bank.pem")).unwrap()
    );

    // The happy path: request -> permit (debit) -> receipt -> confirmed.
    let req = seal(Kind::LoadRequest, &request(1, "ACC1", "100.00"), &f.key);
    let permit = Envelope::from_bytes(&post(&url, api::LOAD, &req).unwrap()).unwrap();
    let p: LoadPermit = permit.open(Kind::LoadPermit, &f.bank_vk).unwrap();
    assert_eq!((p.seq, p.amount, p.random), (1, amt("100.00"), [1; 16]));
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");
    // The same request again while debited (a lost answer): the same permit, no
    // second debit.
    let again = Envelope::from_bytes(&post(&url, api::LOAD, &req).unwrap()).unwrap();
    assert_eq!(again.body, permit.body);
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");
    let receipt = LoadReceipt {
        token_serial: SERIAL.into(),
        seq: 1,
        random: [1; 16],
        amount: amt("100.00"),
        wallet_balance: amt("100.00"),
    };
    // A receipt signed by another key: refused, the debit stays pending.
    let other = SigningKey::random(&mut rand_core::OsRng);
    let (code, _) = post(
        &url,
        api::RECEIPT,
        &seal(Kind::LoadReceipt, &receipt, &other),
    )
    .unwrap_err();
    assert_eq!(code, 400);
    let st = Envelope::from_bytes(
        &post(
            &url,
            api::RECEIPT,
            &seal(Kind::LoadReceipt, &receipt, &f.key),
        )
        .unwrap(),
    )
    .unwrap();
    let st: Settlement = st.open(Kind::Settlement, &f.bank_vk).unwrap();
    assert_eq!(st.outcome, Outcome::Confirmed);
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");
    // Replay of the confirmed request: refused, no debit.
    let (code, msg) = post(&url, api::LOAD, &req).unwrap_err();
    assert_eq!(code, 409, "{msg}");
    // An abort after confirmation cannot refund.
    let abort = LoadAbort {
        token_serial: SERIAL.into(),
        seq: 1,
        random: [1; 16],
        reason: "late".into(),
    };
    assert!(post(&url, api::ABORT, &seal(Kind::LoadAbort, &abort, &f.key)).is_err());
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");

    // Debit then the token's abort (permit failed on the token, 313/315): refunded.
    post(
        &url,
        api::LOAD,
        &seal(Kind::LoadRequest, &request(2, "ACC1", "50.00"), &f.key),
    )
    .unwrap();
    assert_eq!(balance(&f.dir, "ACC1"), "850.00");
    let abort2 = LoadAbort {
        seq: 2,
        random: [2; 16],
        ..abort.clone()
    };
    // A forged abort (not the token's key) refunds nothing.
    assert_eq!(
        post(&url, api::ABORT, &seal(Kind::LoadAbort, &abort2, &other))
            .unwrap_err()
            .0,
        400
    );
    assert_eq!(balance(&f.dir, "ACC1"), "850.00");
    let st: Settlement = Envelope::from_bytes(
        &post(&url, api::ABORT, &seal(Kind::LoadAbort, &abort2, &f.key)).unwrap(),
    )
    .unwrap()
    .open(Kind::Settlement, &f.bank_vk)
    .unwrap();
    assert_eq!(st.outcome, Outcome::Refunded);
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");
    // The abort again: same answer, no second refund; a receipt now is refused.
    post(&url, api::ABORT, &seal(Kind::LoadAbort, &abort2, &f.key)).unwrap();
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");
    let r2 = LoadReceipt {
        seq: 2,
        random: [2; 16],
        amount: amt("50.00"),
        ..receipt.clone()
    };
    assert!(post(&url, api::RECEIPT, &seal(Kind::LoadReceipt, &r2, &f.key)).is_err());
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");

    // Bad signature on a request (another key; altered body): 400, no debit.
    assert_eq!(
        post(
            &url,
            api::LOAD,
            &seal(Kind::LoadRequest, &request(3, "ACC1", "1.00"), &other)
        )
        .unwrap_err()
        .0,
        400
    );
    let mut altered = Envelope::seal_with(
        Kind::LoadRequest,
        SERIAL,
        &request(3, "ACC1", "1.00"),
        &f.key,
    )
    .unwrap();
    altered.body = postcard::to_allocvec(&request(3, "ACC1", "999.00")).unwrap();
    assert_eq!(
        post(&url, api::LOAD, &altered.to_bytes()).unwrap_err().0,
        400
    );
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");
    // Wrong account (ACC2 is not the token's): 403, nothing debited anywhere.
    let (code, msg) = post(
        &url,
        api::LOAD,
        &seal(Kind::LoadRequest, &request(4, "ACC2", "1.00"), &f.key),
    )
    .unwrap_err();
    assert_eq!(code, 403, "{msg}");
    assert_eq!(balance(&f.dir, "ACC2"), "5.00");
    // Insufficient funds: 402, nothing debited; the sequence number is burnt.
    let big = seal(Kind::LoadRequest, &request(5, "ACC1", "900.01"), &f.key);
    let (code, msg) = post(&url, api::LOAD, &big).unwrap_err();
    assert_eq!(code, 402, "{msg}");
    assert_eq!(balance(&f.dir, "ACC1"), "900.00");
    bank(&[
        "account",
        "credit",
        "--dir",
        s(&f.dir),
        "--account",
        "ACC1",
        "--amount",
        "1.00",
    ]);
    assert_eq!(
        post(&url, api::LOAD, &big).unwrap_err().0,
        409,
        "replay after the refusal"
    );
    assert_eq!(balance(&f.dir, "ACC1"), "901.00");
    // A permit is not a request (another kind): refused.
    assert_eq!(
        post(&url, api::LOAD, &permit.to_bytes()).unwrap_err().0,
        400
    );

    // A wallet purchase record verifies once.
    let purchase = Purchase {
        payer: Payer::Token(SERIAL.into()),
        merchant: "shop-1".into(),
        amount: amt("3.00"),
        currency: "CNY".into(),
        seq: 1,
        date: "2026-12-04 14:00:00".into(),
        random: [9; 16],
    };
    let rec = seal(Kind::Purchase, &purchase, &f.key);
    let v: serde_json::Value =
        serde_json::from_slice(&post(&url, api::PURCHASE, &rec).unwrap()).unwrap();
    assert_eq!(v["amount"], "3.00");
    assert_eq!(post(&url, api::PURCHASE, &rec).unwrap_err().0, 409);
    assert_eq!(
        post(
            &url,
            api::PURCHASE,
            &seal(
                Kind::Purchase,
                &Purchase {
                    seq: 2,
                    ..purchase.clone()
                },
                &other
            )
        )
        .unwrap_err()
        .0,
        400
    );

    // Revoked: a new load is refused (403), no debit.
    bank(&["revoke", "--dir", s(&f.dir), "--serial", SERIAL]);
    let (code, msg) = post(
        &url,
        api::LOAD,
        &seal(Kind::LoadRequest, &request(6, "ACC1", "1.00"), &f.key),
    )
    .unwrap_err();
    assert_eq!(code, 403);
    assert!(msg.contains("revoked"), "{msg}");
    assert_eq!(balance(&f.dir, "ACC1"), "901.00");

    // The operation log holds every money move.
    let log: serde_json::Value = serde_json::from_str(&bank(&[
        "account",
        "log",
        "--dir",
        s(&f.dir),
        "--account",
        "ACC1",
        "--json",
    ]))
    .unwrap();
    let ops: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "open",
            "register",
            "debit",
            "confirm",
            "debit",
            "refund",
            "refused-insufficient",
            "credit"
        ]
    );
}

#[test]
fn expired_certificate_is_refused() {
    let f = fixture("0");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let srv = Server::start(&["bank", "serve", "--dir", s(&f.dir)]);
    let (code, msg) = post(
        &srv.url,
        api::LOAD,
        &seal(Kind::LoadRequest, &request(1, "ACC1", "1.00"), &f.key),
    )
    .unwrap_err();
    assert_eq!(code, 403);
    assert!(msg.contains("expired") || msg.contains("valid"), "{msg}");
    assert_eq!(balance(&f.dir, "ACC1"), "1000.00");
}

/// A `bank.db` from before the storage layer had versions (the same tables, no
/// `schema_version`, no `meta`) opens with its accounts, tokens and log, and is
/// brought to the current version in place.
#[test]
fn an_existing_bank_db_keeps_its_data() {
    let f = fixture("730");
    let db = f.dir.join("bank.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("DROP TABLE schema_version; DROP TABLE meta;")
            .unwrap();
    }
    assert_eq!(balance(&f.dir, "ACC1"), "1000.00");
    let srv = Server::start(&["bank", "serve", "--dir", s(&f.dir)]);
    // The token registered before the upgrade still loads.
    let req = seal(Kind::LoadRequest, &request(1, "ACC1", "10.00"), &f.key);
    let permit: LoadPermit = Envelope::from_bytes(&post(&srv.url, api::LOAD, &req).unwrap())
        .unwrap()
        .open(Kind::LoadPermit, &f.bank_vk)
        .unwrap();
    assert_eq!(permit.amount, amt("10.00"));
    assert_eq!(balance(&f.dir, "ACC1"), "990.00");
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = c
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    let ops: i64 = c
        .query_row(
            "SELECT count(*) FROM oplog WHERE account = 'ACC1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ops, 3, "open, register, debit");
}
