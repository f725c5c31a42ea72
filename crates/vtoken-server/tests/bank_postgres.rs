//! The bank on PostgreSQL (issue 21, seed 004): a real PostgreSQL cluster (the
//! throwaway one of `vtoken_testsupport::postgres`) and two real `vtoken-server bank
//! serve` processes on one database. The wallet side is an honest token's protocol
//! logic with a P-256 key standing in for the token's wallet key, as in
//! `tests/bank.rs`: its key is registered through the real CLI, it signs each load
//! request with a fresh sequence number, credits its wallet only on a permit that
//! verifies with the bank key, then confirms with a receipt (sent again, to either
//! instance, until a settlement comes); a load that got no permit is settled by the
//! token's signed abort (a refund if the bank had debited, a burnt number if not).
//!
//! What every test checks at the end ([`audit`]): account balances plus what the
//! wallets credited equal the money the bank started with; no load is left debited;
//! every sequence number a token used has exactly one record and none other exists;
//! each account's balance is its opening balance less its debited and confirmed
//! loads, and the last line of its operation log says the same.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, BIN};
use p256::ecdsa::{SigningKey, VerifyingKey};
use pkcs8::EncodePublicKey;
use rand_core::RngCore;
use vtoken_pki::{build_csr, SigAlg, Usage};
use vtoken_testsupport::postgres::Postgres;
use vtoken_wallet::msg::{
    sign_der, LoadAbort, LoadPermit, LoadReceipt, LoadRequest, Outcome, Settlement,
    ALG_ECDSA_P256_SHA256,
};
use vtoken_wallet::{api, keys, Amount, Envelope, Kind};

/// Opening balance of the accounts of the many-loads test, minor units (1 000.00:
/// they run dry before the tokens stop asking).
const OPENING: i64 = 100_000;
/// Opening balance in the crash and outage tests (100 000.00: the loads go on).
const RICH: i64 = 10_000_000;

fn run(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A bank on the database `db` of `pg`: directory A made by `bank init`, B a copy
/// (key and certificates) for the second instance; `accounts` accounts of
/// `opening` each and `tokens` wallets, token `t` on account `t % accounts`.
struct Fixture {
    _tmp: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    url: String,
    db: String,
    bank_vk: VerifyingKey,
    wallets: Vec<Wallet>,
    accounts: usize,
    opening: i64,
}

impl Fixture {
    fn new(pg: &Postgres, db: &str, accounts: usize, tokens: usize, opening: i64) -> Fixture {
        let url = pg.database(db);
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("bank-a");
        run(&["bank", "init", "--dir", s(&a), "--database", &url]);
        let b = tmp.path().join("bank-b");
        std::fs::create_dir(&b).unwrap();
        for f in ["ca.key", "ca.pem", "bank.pem"] {
            std::fs::copy(a.join(f), b.join(f)).unwrap();
        }
        assert!(
            !a.join("bank.db").exists(),
            "no SQLite file beside PostgreSQL"
        );
        for i in 0..accounts {
            run(&[
                "bank",
                "account",
                "open",
                "--dir",
                s(&a),
                "--account",
                &account(i),
                "--holder",
                &format!("holder {i}"),
                "--balance",
                &Amount::from_i64(opening).unwrap().to_string(),
                "--database",
                &url,
            ]);
        }
        // Registered through the real CLI, four at a time, on either directory.
        let wallets: Vec<Wallet> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|part| {
                    let (tmp, a, b, url) = (tmp.path(), &a, &b, &url);
                    sc.spawn(move || {
                        (0..tokens)
                            .filter(|t| t % 4 == part)
                            .map(|t| {
                                let dir = if t % 2 == 0 { a } else { b };
                                Wallet::register(tmp, dir, url, t, &account(t % accounts))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut wallets = wallets;
        wallets.sort_by_key(|w| w.serial.clone());
        let pem = std::fs::read(a.join("bank.pem")).unwrap();
        let bank_vk = keys::verifying_key_of_cert(&keys::cert_der_of(&pem).unwrap()).unwrap();
        Fixture {
            _tmp: tmp,
            a,
            b,
            url,
            db: db.to_string(),
            bank_vk,
            wallets,
            accounts,
            opening,
        }
    }

    fn serve(&self, dir: &Path) -> Server {
        Server::start(&["bank", "serve", "--dir", s(dir), "--database", &self.url])
    }
}

fn account(i: usize) -> String {
    format!("ACC{i:02}")
}

/// An answer, or (status, message); status 0: no HTTP answer (connection refused
/// or cut: the instance is gone).
fn post(url: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, (u16, String)> {
    match ureq::post(&format!("{url}{path}"))
        .timeout(Duration::from_secs(60))
        .send_bytes(body)
    {
        Ok(r) => {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut r.into_reader(), &mut v)
                .map_err(|e| (0, e.to_string()))?;
            Ok(v)
        }
        Err(ureq::Error::Status(code, r)) => Err((code, r.into_string().unwrap_or_default())),
        Err(e) => Err((0, e.to_string())),
    }
}

/// How one load ended for the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Permit verified, wallet credited, receipt confirmed.
    Completed,
    /// 402: the account cannot pay; nothing debited, the number burnt.
    Refused,
    /// No permit (instance gone, database unavailable): settled by the abort.
    Interrupted(Outcome),
}

/// The token side: its wallet key, sequence counter and what its wallet received.
struct Wallet {
    serial: String,
    account: String,
    key: SigningKey,
    /// The last sequence number used.
    seq: u64,
    /// What the wallet credited (minor units).
    received: i64,
    /// Every load's end.
    ends: Vec<End>,
    /// The failures seen on the first try of a load request: (status, message).
    failures: Vec<(u16, String)>,
    /// A confirmed request (for the replay checks).
    confirmed_request: Option<Vec<u8>>,
    /// Loads sent to both instances at once that both answered with a permit.
    two_permits: usize,
}

impl Wallet {
    fn register(tmp: &Path, dir: &Path, url: &str, t: usize, account: &str) -> Wallet {
        let serial = format!("{:016X}", 0xB000 + t);
        let key = SigningKey::random(&mut rand_core::OsRng);
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let csr = build_csr(
            spki.as_bytes(),
            &serial,
            Usage::Signing,
            |tbs| Ok::<_, String>(sign_der(&key, tbs)),
            SigAlg::EcdsaSha256,
        )
        .unwrap();
        let (csr_file, cert_file) = (
            tmp.join(format!("{serial}.csr")),
            tmp.join(format!("{serial}.pem")),
        );
        std::fs::write(&csr_file, &csr).unwrap();
        run(&[
            "bank",
            "register",
            "--dir",
            s(dir),
            "--account",
            account,
            "--csr",
            s(&csr_file),
            "-o",
            s(&cert_file),
            "--database",
            url,
        ]);
        let cert = keys::cert_der_of(&std::fs::read(&cert_file).unwrap()).unwrap();
        assert_eq!(keys::spki_of_cert(&cert).unwrap(), spki.as_bytes());
        Wallet {
            serial,
            account: account.to_string(),
            key,
            seq: 0,
            received: 0,
            ends: Vec::new(),
            failures: Vec::new(),
            confirmed_request: None,
            two_permits: 0,
        }
    }

    fn seal<T: serde::Serialize>(&self, kind: Kind, body: &T) -> Vec<u8> {
        Envelope::seal_with(kind, &self.serial, body, &self.key)
            .unwrap()
            .to_bytes()
    }

    fn request(&self, seq: u64, random: [u8; 16], amount: Amount) -> Vec<u8> {
        self.seal(
            Kind::LoadRequest,
            &LoadRequest {
                token_serial: self.serial.clone(),
                account: self.account.clone(),
                amount,
                currency: "CNY".into(),
                wallet_balance: Amount::from_i64(self.received).unwrap(),
                seq,
                key_version: 1,
                alg: ALG_ECDSA_P256_SHA256.into(),
                random,
                time: 0,
            },
        )
    }

    /// Sends `body` to `path` on the instances in turn until a settlement comes
    /// (an instance may be gone, the database may be down for a while); only "no
    /// answer" and 503 are waited out.
    fn settle(
        &self,
        bank_vk: &VerifyingKey,
        urls: &[String],
        path: &str,
        body: &[u8],
    ) -> Settlement {
        let mut last = (0, String::new());
        for attempt in 0..1200 {
            match post(&urls[attempt % urls.len()], path, body) {
                Ok(b) => {
                    return Envelope::from_bytes(&b)
                        .unwrap()
                        .open(Kind::Settlement, bank_vk)
                        .unwrap()
                }
                Err((code, msg)) => {
                    assert!(code == 0 || code == 503, "{path}: {code} {msg}");
                    last = (code, msg);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        panic!("{path} never settled: {last:?}")
    }

    /// One load of `amount` minor units: the request to `urls[0]` (and, `race`, the
    /// same request at once to `urls[1]`), then the receipt or the abort.
    fn load(&mut self, bank_vk: &VerifyingKey, urls: &[String], amount: i64, race: bool) -> End {
        self.seq += 1;
        let seq = self.seq;
        let mut random = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut random);
        let amount = Amount::from_i64(amount).unwrap();
        let req = self.request(seq, random, amount);
        let answers: Vec<Result<Vec<u8>, (u16, String)>> = if race {
            std::thread::scope(|sc| {
                let hs: Vec<_> = urls[..2]
                    .iter()
                    .map(|u| {
                        let req = &req;
                        sc.spawn(move || post(u, api::LOAD, req))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            })
        } else {
            vec![post(&urls[0], api::LOAD, &req)]
        };
        let permits: Vec<LoadPermit> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok())
            .map(|b| {
                Envelope::from_bytes(b)
                    .unwrap()
                    .open(Kind::LoadPermit, bank_vk)
                    .unwrap()
            })
            .collect();
        if let Some(p) = permits.first() {
            // Two instances answering one request answer with the one record.
            assert!(permits.iter().all(|q| q == p), "{permits:?}");
            if permits.len() == 2 {
                self.two_permits += 1;
            }
            assert_eq!(
                (&p.token_serial, &p.account, p.amount, p.seq, p.random),
                (&self.serial, &self.account, amount, seq, random)
            );
            for a in &answers {
                if let Err((code, msg)) = a {
                    assert!(*code == 0 || *code == 503, "beside a permit: {code} {msg}");
                }
            }
            // The wallet credits (step 312), then confirms (314) until settled.
            self.received += amount.as_i64();
            let receipt = self.seal(
                Kind::LoadReceipt,
                &LoadReceipt {
                    token_serial: self.serial.clone(),
                    seq,
                    random,
                    amount,
                    wallet_balance: Amount::from_i64(self.received).unwrap(),
                },
            );
            let st = self.settle(bank_vk, urls, api::RECEIPT, &receipt);
            assert_eq!(
                (st.seq, st.random, st.outcome),
                (seq, random, Outcome::Confirmed)
            );
            if self.confirmed_request.is_none() {
                self.confirmed_request = Some(req);
            }
            return End::Completed;
        }
        let errors: Vec<(u16, String)> = answers.into_iter().filter_map(Result::err).collect();
        if errors.iter().any(|(c, _)| *c == 402) {
            // The other racer, if any, found the number burnt.
            for (code, msg) in &errors {
                assert!(
                    *code == 402
                        || (*code == 409 && msg.contains("cancelled"))
                        || *code == 0
                        || *code == 503,
                    "{code} {msg}"
                );
            }
            return End::Refused;
        }
        for (code, msg) in &errors {
            assert!(*code == 0 || *code == 503, "load {seq}: {code} {msg}");
        }
        self.failures.extend(errors);
        // No permit: the token aborts (313/315), signed; the bank refunds what it
        // debited or burns the number.
        let abort = self.seal(
            Kind::LoadAbort,
            &LoadAbort {
                token_serial: self.serial.clone(),
                seq,
                random,
                reason: "no permit".into(),
            },
        );
        let st = self.settle(bank_vk, urls, api::ABORT, &abort);
        assert_eq!((st.seq, st.random), (seq, random));
        assert!(
            matches!(st.outcome, Outcome::Refunded | Outcome::Cancelled),
            "{:?}",
            st.outcome
        );
        End::Interrupted(st.outcome)
    }
}

/// Load `i` of token `t`: 1.00 to 24.99, so the accounts run dry towards the end.
fn amount_of(t: usize, i: usize) -> i64 {
    100 + ((t * 37 + i * 91) % 2400) as i64
}

/// Every wallet runs `loads` loads (or until `stop`), load `i` of token `t` first
/// to `urls[(t + i) % 2]`; every `race_every`-th raced on both instances.
fn run_wallets(
    f: &mut Fixture,
    urls: &[String],
    loads: usize,
    race_every: usize,
    stop: Option<&AtomicBool>,
    during: impl FnOnce(),
) {
    let bank_vk = f.bank_vk;
    let bank_vk = &bank_vk;
    std::thread::scope(|sc| {
        for (t, w) in f.wallets.iter_mut().enumerate() {
            sc.spawn(move || {
                for i in 0..loads {
                    if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                        break;
                    }
                    let first = (t + i) % 2;
                    let order = [urls[first].clone(), urls[1 - first].clone()];
                    let race = race_every > 0 && i % race_every == race_every - 1;
                    let end = w.load(bank_vk, &order, amount_of(t, w.ends.len()), race);
                    w.ends.push(end);
                }
            });
        }
        during();
    });
}

fn psql_i64(pg: &Postgres, db: &str, sql: &str) -> i64 {
    pg.psql(db, sql)
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The invariants of the module comment, read from the database.
fn audit(pg: &Postgres, f: &Fixture) {
    let db = &f.db;
    let accounts = psql_i64(
        pg,
        db,
        "SELECT coalesce(sum(balance), 0) FROM bank.accounts",
    );
    let wallets: i64 = f.wallets.iter().map(|w| w.received).sum();
    assert_eq!(
        accounts + wallets,
        f.opening * f.accounts as i64,
        "accounts {accounts} + wallets {wallets}"
    );
    assert_eq!(
        psql_i64(
            pg,
            db,
            "SELECT count(*) FROM bank.loads WHERE state = 'debited'"
        ),
        0,
        "every load settled"
    );
    assert_eq!(
        psql_i64(
            pg,
            db,
            "SELECT coalesce(sum(amount), 0) FROM bank.loads WHERE state = 'confirmed'"
        ),
        wallets
    );
    for w in &f.wallets {
        // Numbers 1..=seq, each once, nothing else.
        let (n, lo, hi) = {
            let r = pg.psql(
                db,
                &format!(
                    "SELECT count(*) || ' ' || coalesce(min(seq), 0) || ' ' || coalesce(max(seq), 0) \
                     FROM bank.loads WHERE token_serial = '{}'",
                    w.serial
                ),
            );
            let v: Vec<u64> = r.split(' ').map(|x| x.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        };
        assert_eq!(
            (n, lo, hi),
            (w.seq, w.seq.min(1), w.seq),
            "token {}",
            w.serial
        );
        let confirmed = psql_i64(
            pg,
            db,
            &format!(
                "SELECT coalesce(sum(amount), 0) FROM bank.loads \
                 WHERE token_serial = '{}' AND state = 'confirmed'",
                w.serial
            ),
        );
        assert_eq!(confirmed, w.received, "token {}", w.serial);
        let completed = w.ends.iter().filter(|e| **e == End::Completed).count() as i64;
        assert_eq!(
            psql_i64(
                pg,
                db,
                &format!(
                    "SELECT count(*) FROM bank.loads WHERE token_serial = '{}' AND state = 'confirmed'",
                    w.serial
                )
            ),
            completed
        );
    }
    // Each account: opening less what is debited or confirmed; its log agrees.
    assert_eq!(
        psql_i64(
            pg,
            db,
            &format!(
                "SELECT count(*) FROM bank.accounts a WHERE a.balance <> {} - \
                 (SELECT coalesce(sum(amount), 0) FROM bank.loads l \
                  WHERE l.account = a.number AND l.state IN ('debited', 'confirmed'))",
                f.opening
            )
        ),
        0,
        "ledger"
    );
    assert_eq!(
        psql_i64(
            pg,
            db,
            "SELECT count(*) FROM bank.accounts a WHERE a.balance <> \
             (SELECT o.balance FROM bank.oplog o WHERE o.account = a.number ORDER BY o.id DESC LIMIT 1)"
        ),
        0,
        "operation log"
    );
}

fn count(f: &Fixture, pred: impl Fn(&End) -> bool) -> usize {
    f.wallets
        .iter()
        .flat_map(|w| w.ends.iter())
        .filter(|e| pred(e))
        .count()
}

/// Issue 21: 1 000 concurrent loads from 50 tokens spread over two instances, some
/// of each token's requests sent to both instances at once.
#[test]
fn a_thousand_concurrent_loads_on_two_instances_conserve_the_money() {
    let pg = Postgres::start();
    let mut f = Fixture::new(&pg, "bank_loads", 10, 50, OPENING);
    let (sa, sb) = (f.serve(&f.a), f.serve(&f.b));
    let urls = [sa.url.clone(), sb.url.clone()];
    let started = std::time::Instant::now();
    run_wallets(&mut f, &urls, 20, 5, None, || {});
    eprintln!("1000 loads on two instances: {:?}", started.elapsed());

    let total = count(&f, |_| true);
    assert_eq!(total, 1000);
    let completed = count(&f, |e| *e == End::Completed);
    let refused = count(&f, |e| *e == End::Refused);
    let two: usize = f.wallets.iter().map(|w| w.two_permits).sum();
    eprintln!("completed {completed}, refused for funds {refused}; {two} raced requests answered by both instances");
    // The race happened: both instances answered one request, with one record.
    assert!(two > 0);
    // Nothing failed on the way: every load completed or was refused for funds.
    assert_eq!(completed + refused, 1000);
    assert!(completed > 500 && refused > 0, "{completed} {refused}");
    audit(&pg, &f);

    // Replays: a confirmed request again, on either instance, is refused; so is a
    // used number with another random. Nothing moves.
    let before = pg.psql(&f.db, "SELECT sum(balance) FROM bank.accounts");
    let w = &f.wallets[0];
    let req = w.confirmed_request.clone().unwrap();
    for u in &urls {
        let (code, msg) = post(u, api::LOAD, &req).unwrap_err();
        assert_eq!(code, 409, "{msg}");
        assert!(msg.contains("replayed"), "{msg}");
        let (code, msg) = post(
            u,
            api::LOAD,
            &w.request(w.seq, [0xEE; 16], Amount::from_i64(100).unwrap()),
        )
        .unwrap_err();
        assert_eq!(code, 409, "{msg}");
    }
    assert_eq!(
        pg.psql(&f.db, "SELECT sum(balance) FROM bank.accounts"),
        before
    );
    audit(&pg, &f);
}

/// A `psql` session holding account `number`'s row lock until [`Held::release`].
struct Held(std::process::Child);

impl Held {
    fn take(pg: &Postgres, db: &str, number: &str) -> Held {
        use std::io::Write;
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &pg.port().to_string()])
            .args(["-U", vtoken_testsupport::postgres::USER, "-d", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql");
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "SET application_name = 'holder'; BEGIN; \
             SELECT balance FROM bank.accounts WHERE number = '{number}' FOR UPDATE;"
        )
        .unwrap();
        stdin.flush().unwrap();
        wait_for(
            pg,
            db,
            "application_name = 'holder' AND state = 'idle in transaction'",
            1,
        );
        Held(child)
    }

    fn release(mut self) {
        use std::io::Write;
        let mut stdin = self.0.stdin.take().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
        drop(stdin);
        assert!(self.0.wait().unwrap().success());
    }
}

/// Waits until `n` sessions on `db` match `cond` (a `pg_stat_activity` condition).
fn wait_for(pg: &Postgres, db: &str, cond: &str, n: i64) {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND {cond}");
    for _ in 0..600 {
        if psql_i64(pg, "postgres", &sql) >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never {n} sessions with {cond}");
}

/// kill -9 of an instance in the middle of load transactions, deterministically:
/// account ACC00's row is held by another session, so the debits of its tokens sent
/// to `victim` wait inside their transactions; `victim` is killed there. Its
/// transactions die with its connections: once the row is free, each token's abort
/// (through `other`) finds nothing debited, and no money moved.
fn kill_inside_transactions(
    pg: &Postgres,
    f: &mut Fixture,
    victim: &mut Option<Server>,
    other: &str,
) {
    let before = pg.psql(
        &f.db,
        "SELECT balance FROM bank.accounts WHERE number = 'ACC00'",
    );
    let held = Held::take(pg, &f.db, "ACC00");
    let urls = [victim.as_ref().unwrap().url.clone(), other.to_string()];
    let bank_vk = f.bank_vk;
    let on_acc00: Vec<&mut Wallet> = f
        .wallets
        .iter_mut()
        .filter(|w| w.account == "ACC00")
        .collect();
    let n = on_acc00.len();
    let db = f.db.clone();
    let ends: Vec<End> = std::thread::scope(|sc| {
        let hs: Vec<_> = on_acc00
            .into_iter()
            .map(|w| {
                let (urls, bank_vk) = (&urls, &bank_vk);
                sc.spawn(move || {
                    let end = w.load(bank_vk, urls, 500, false);
                    w.ends.push(end);
                    end
                })
            })
            .collect();
        // Every debit waits for the row, inside its transaction on the victim.
        wait_for(
            pg,
            &db,
            "wait_event_type = 'Lock' AND application_name = 'vtoken-server'",
            n as i64,
        );
        drop(victim.take());
        // The victim's sessions stay in the lock queue until the row is free (a
        // backend waiting for a lock does not read its socket); they cannot commit
        // then, for their client is gone. The aborts meanwhile reach the other
        // instance (and queue for the row, or find it free).
        std::thread::sleep(Duration::from_millis(300));
        held.release();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ends, vec![End::Interrupted(Outcome::Cancelled); n]);
    assert_eq!(
        pg.psql(
            &f.db,
            "SELECT balance FROM bank.accounts WHERE number = 'ACC00'"
        ),
        before
    );
}

/// Issue 21: kill -9 of either instance mid-load. Phase 1 kills A while the wallets
/// load through both: what A left debited is settled through B; A is restarted and
/// killed again inside waiting transactions. Phase 2 does the same to B, and the
/// restarted A settles.
#[test]
fn either_instance_killed_mid_load_every_interrupted_load_settles() {
    let pg = Postgres::start();
    let mut f = Fixture::new(&pg, "bank_kill", 4, 12, RICH);
    let mut sa = Some(f.serve(&f.a));
    let mut sb = Some(f.serve(&f.b));
    for phase in 0..2 {
        let urls = [
            sa.as_ref().unwrap().url.clone(),
            sb.as_ref().unwrap().url.clone(),
        ];
        let stop = AtomicBool::new(false);
        let victim = if phase == 0 { &mut sa } else { &mut sb };
        let before = count(&f, |e| matches!(e, End::Interrupted(_)));
        run_wallets(&mut f, &urls, 1000, 0, Some(&stop), || {
            std::thread::sleep(Duration::from_millis(1500));
            // Server's drop is Child::kill: SIGKILL, mid-transaction or mid-answer.
            drop(victim.take());
            std::thread::sleep(Duration::from_millis(1500));
            stop.store(true, Ordering::Relaxed);
        });
        let interrupted = count(&f, |e| matches!(e, End::Interrupted(_))) - before;
        eprintln!(
            "phase {phase}: {} loads, {interrupted} interrupted by the kill ({} refunded in all)",
            count(&f, |_| true),
            count(&f, |e| *e == End::Interrupted(Outcome::Refunded))
        );
        assert!(interrupted > 0, "the kill interrupted loads");
        audit(&pg, &f);
        // The killed instance comes back on the same database, and is killed again
        // inside transactions.
        let (victim, dir, other) = if phase == 0 {
            (&mut sa, f.a.clone(), urls[1].clone())
        } else {
            (&mut sb, f.b.clone(), urls[0].clone())
        };
        *victim = Some(f.serve(&dir));
        kill_inside_transactions(&pg, &mut f, victim, &other);
        audit(&pg, &f);
        *victim = Some(f.serve(&dir));
    }
    // Both serve again: loads complete on each.
    let urls = [
        sa.as_ref().unwrap().url.clone(),
        sb.as_ref().unwrap().url.clone(),
    ];
    let bank_vk = f.bank_vk;
    for (i, w) in f.wallets.iter_mut().enumerate().take(4) {
        let order = [urls[i % 2].clone(), urls[1 - i % 2].clone()];
        let end = w.load(&bank_vk, &order, 1, false);
        assert_eq!(end, End::Completed);
        w.ends.push(end);
    }
    audit(&pg, &f);
}

/// Issue 21, "killing the database connection or restarting PostgreSQL mid-run":
/// a clear 503 that changed nothing, the instances reconnect by themselves, and
/// loads succeed afterwards.
#[test]
fn database_connections_killed_and_postgres_restarted_mid_load() {
    let mut pg = Postgres::start();
    let mut f = Fixture::new(&pg, "bank_outage", 4, 8, RICH);
    let (sa, sb) = (f.serve(&f.a), f.serve(&f.b));
    let urls = [sa.url.clone(), sb.url.clone()];
    let bank_vk = f.bank_vk;
    run_wallets(&mut f, &urls, 3, 0, None, || {});

    // Every server connection cut: the next loads, on each instance, complete.
    assert!(pg.kill_connections(&f.db) >= 2);
    for (i, w) in f.wallets.iter_mut().enumerate().take(4) {
        let order = [urls[i % 2].clone(), urls[1 - i % 2].clone()];
        let end = w.load(&bank_vk, &order, 100, false);
        assert_eq!(
            end,
            End::Completed,
            "after the connections were cut: {:?}",
            w.failures
        );
        w.ends.push(end);
    }
    audit(&pg, &f);

    // PostgreSQL down: the load is refused with a clear 503; back up, the abort
    // finds nothing debited (the number is burnt, no refund needed).
    pg.stop();
    {
        let w = &mut f.wallets[0];
        w.seq += 1;
        let req = w.request(w.seq, [0x55; 16], Amount::from_i64(700).unwrap());
        for u in &urls {
            let (code, msg) = post(u, api::LOAD, &req).unwrap_err();
            assert_eq!(code, 503, "{msg}");
            assert!(msg.contains("database unavailable"), "{msg}");
            // The balancer's check follows the database; the process is up.
            let (code, msg) = common::get(&format!("{u}/readyz"));
            assert_eq!(code, 503, "{msg}");
            assert_eq!(common::get(&format!("{u}/healthz")).0, 200);
        }
        pg.start_again();
        for u in &urls {
            assert_eq!(common::get(&format!("{u}/readyz")), (200, "ready\n".into()));
            let (_, m) = common::get(&format!("{u}/metrics"));
            for line in [
                "vtoken_http_requests_total{route=\"/readyz\",status=\"503\"} 1",
                "vtoken_db_pool_connections{state=\"max\"} 16",
            ] {
                assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
            }
            let refused_loads: u64 = m
                .lines()
                .find_map(|l| {
                    l.strip_prefix(
                        "vtoken_http_requests_total{route=\"/wallet/v1/load\",status=\"503\"} ",
                    )
                })
                .unwrap_or_else(|| panic!("no 503 loads counted in:\n{m}"))
                .parse()
                .unwrap();
            assert!(refused_loads >= 1);
        }
        let abort = w.seal(
            Kind::LoadAbort,
            &LoadAbort {
                token_serial: w.serial.clone(),
                seq: w.seq,
                random: [0x55; 16],
                reason: "no permit".into(),
            },
        );
        let st = w.settle(&bank_vk, &urls, api::ABORT, &abort);
        assert_eq!(st.outcome, Outcome::Cancelled, "nothing was debited");
        w.ends.push(End::Interrupted(Outcome::Cancelled));
    }
    audit(&pg, &f);

    // Restarted while the wallets load through both instances.
    let stop = AtomicBool::new(false);
    let before = f.wallets.iter().map(|w| w.failures.len()).sum::<usize>();
    run_wallets(&mut f, &urls, 10_000, 0, Some(&stop), || {
        std::thread::sleep(Duration::from_millis(800));
        pg.stop();
        std::thread::sleep(Duration::from_millis(800));
        pg.start_again();
        std::thread::sleep(Duration::from_millis(800));
        stop.store(true, Ordering::Relaxed);
    });
    let failures: Vec<&(u16, String)> = f
        .wallets
        .iter()
        .flat_map(|w| w.failures.iter())
        .skip(before)
        .collect();
    assert!(!failures.is_empty(), "the restart was seen by some load");
    for (code, msg) in &failures {
        assert!(
            *code == 503 && msg.contains("database unavailable"),
            "{code} {msg}"
        );
    }
    assert!(count(&f, |e| *e == End::Completed) > 0);
    audit(&pg, &f);

    // Afterwards: loads complete at once on both instances.
    for (i, w) in f.wallets.iter_mut().enumerate().take(4) {
        let order = [urls[i % 2].clone(), urls[1 - i % 2].clone()];
        let n = w.failures.len();
        let end = w.load(&bank_vk, &order, 100, false);
        assert_eq!((end, w.failures.len()), (End::Completed, n));
        w.ends.push(end);
    }
    audit(&pg, &f);
}

/// A second `bank init` on a database that holds a bank is refused, before any
/// file is written; an instance with another bank's directory does not serve it.
#[test]
fn a_database_serves_one_bank() {
    let pg = Postgres::start();
    let f = Fixture::new(&pg, "bank_one", 1, 1, OPENING);
    let other = f._tmp.path().join("other");
    let o = Command::new(BIN)
        .args(["bank", "init", "--dir", s(&other), "--database", &f.url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already holds a bank"), "{err}");
    assert!(!other.join("ca.key").exists());
    // Another bank's directory (made on SQLite) on this database: refused.
    run(&["bank", "init", "--dir", s(&other)]);
    let o = Command::new(BIN)
        .args(["bank", "serve", "--dir", s(&other), "--database", &f.url])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("belongs to another bank"), "{err}");
    // The schema version is the binary's; a newer one is refused.
    assert_eq!(
        pg.psql(&f.db, "SELECT version FROM bank.schema_version"),
        "2"
    );
    pg.psql(&f.db, "UPDATE bank.schema_version SET version = 9");
    let o = Command::new(BIN)
        .args([
            "bank",
            "account",
            "show",
            "--dir",
            s(&f.a),
            "--account",
            "ACC00",
        ])
        .args(["--database", &f.url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("newer than this vtoken-server"), "{err}");
}
