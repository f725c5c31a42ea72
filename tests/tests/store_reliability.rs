//! Process-level reliability tests of the token store (DESIGN.md "Storage"):
//! real processes (`vt-driver`), real `SIGKILL`s, concurrent writers, a persisted
//! wrong-PIN counter, tampering with the file, and secrets never reaching the disk.
//!
//! Random choices are seeded; the seed is printed (`VT_SEED=... cargo test ...`
//! repeats a run). Run with `--nocapture` to see the numbers of each run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vault_core::error::StoreError;
use vault_core::pkcs11::*;
use vault_core::token::{Token, UserType};
use vault_core::{Attributes, Error};
use vtoken_tests::{
    data_label, data_template, data_value, file_set, find_bytes, seed, stderr_of, Lines, TestEnv,
};

const DRIVER: &str = env!("CARGO_BIN_EXE_vt-driver");
const SO_PIN: &str = "so-pin-4711";
const USER_PIN: &str = "user-pin-0815";
const WRONG_PIN: &str = "wrong-pin-999";

// ------------------------------------------------------------------ helpers

fn driver(env: &TestEnv, args: &[&str]) -> Command {
    let mut c = Command::new(DRIVER);
    c.args(args)
        .env("VTOKEN_CONF", &env.conf)
        .env_remove("VTOKEN_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn spawn(env: &TestEnv, args: &[&str], stdin: bool) -> Child {
    let mut c = driver(env, args);
    if stdin {
        c.stdin(Stdio::piped());
    }
    c.spawn().expect("spawn vt-driver")
}

/// Runs the driver to completion; it must exit 0. Returns its stdout lines.
fn run(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let o = driver(env, args).output().expect("run vt-driver");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "vt-driver {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// Creates a token with an SO and a user PIN through the driver; returns its serial.
fn init_token(env: &TestEnv, label: &str) -> String {
    let lines = run(env, &["init", label, SO_PIN, USER_PIN]);
    let serial = lines
        .iter()
        .find_map(|l| l.strip_prefix("serial "))
        .unwrap_or_else(|| panic!("no serial in {lines:?}"))
        .to_string();
    assert_eq!(serial.len(), 16, "serial {serial}");
    serial
}

/// Sends a real `SIGKILL` and reaps the child; it must have died of that signal.
fn sigkill(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on the pid of our own child, which is not yet reaped
    // (so the pid cannot have been reused).
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(
        rc,
        0,
        "kill({pid}) failed: {}",
        std::io::Error::last_os_error()
    );
    let status = child.wait().expect("wait");
    if status.signal() != Some(libc::SIGKILL) {
        panic!(
            "vt-driver was not killed but exited with {status}: {}",
            stderr_of(child)
        );
    }
}

fn finish(child: &mut Child) {
    drop(child.stdin.take());
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "vt-driver exited with {status}: {}",
        stderr_of(child)
    );
}

fn send(child: &mut Child, line: &str) {
    let i = child.stdin.as_mut().expect("piped stdin");
    writeln!(i, "{line}").expect("write to vt-driver");
    i.flush().expect("flush");
}

fn user_flags(flags: u64) -> (bool, bool, bool) {
    let f = flags as CK_FLAGS;
    (
        f & CKF_USER_PIN_COUNT_LOW != 0,
        f & CKF_USER_PIN_FINAL_TRY != 0,
        f & CKF_USER_PIN_LOCKED != 0,
    )
}

fn all_data(t: &Token) -> vault_core::Result<Vec<u64>> {
    let mut tpl = Attributes::new();
    tpl.set_ulong(CKA_CLASS, CKO_DATA);
    t.search(&tpl)
}

/// Label → number of acked `ack TAG-i` lines, checking they come in order 0, 1, ...
fn count_acks(tag: &str, lines: &[String]) -> usize {
    let mut n = 0;
    for l in lines {
        if let Some(label) = l.strip_prefix("ack ") {
            assert_eq!(label, data_label(tag, n), "acks out of order: {lines:?}");
            n += 1;
        } else {
            panic!("unexpected driver output {l:?}");
        }
    }
    n
}

// ------------------------------------------------------------------ 1. lockout

#[test]
fn lockout_persists_across_restart_and_so_unlocks() {
    let env = TestEnv::new("");
    let serial = init_token(&env, "lockout");
    // An object made before the lockout must still be readable after the SO reset.
    assert_eq!(
        run(&env, &["create-objects", &serial, USER_PIN, "1", "keep"]),
        ["ack keep-0", "done 1"]
    );

    let observer = env.open(&serial);
    let i = observer.info().unwrap();
    assert_eq!((i.user_pin.failures, i.user_pin.max_tries), (0, 5));
    assert_eq!(user_flags(i.flags), (false, false, false));

    // Five wrong PINs in one process, one at a time, checking the flags in between.
    let mut child = spawn(
        &env,
        &["login-loop", &serial, WRONG_PIN, "5", "--step"],
        true,
    );
    let mut lines = Lines::of(&mut child);
    for k in 1..=5u32 {
        send(&mut child, "next");
        let want = if k < 5 {
            format!("fail {k} PinIncorrect")
        } else {
            format!("fail {k} PinLocked")
        };
        assert_eq!(lines.next_line().as_deref(), Some(want.as_str()));
        let i = observer.info().unwrap();
        assert_eq!(
            i.user_pin.failures, k,
            "persisted counter after {k} wrong PINs"
        );
        let (low, fin, locked) = user_flags(i.flags);
        assert_eq!(low, k < 5, "COUNT_LOW after {k}");
        assert_eq!(fin, k == 4, "FINAL_TRY after {k}");
        assert_eq!(locked, k == 5, "LOCKED after {k}");
        assert_eq!(
            (
                i.user_pin.count_low,
                i.user_pin.final_try,
                i.user_pin.locked
            ),
            (low, fin, locked)
        );
    }
    finish(&mut child);

    // A new process: the right PIN is refused, and refusing does not count.
    assert_eq!(run(&env, &["login", &serial, USER_PIN]), ["fail PinLocked"]);
    let fresh = env.open(&serial);
    assert!(matches!(
        fresh.login(UserType::User, USER_PIN.as_bytes()),
        Err(Error::PinLocked)
    ));
    let i = fresh.info().unwrap();
    assert_eq!(i.user_pin.failures, 5);
    assert_eq!(user_flags(i.flags), (false, false, true));
    drop(fresh);

    // The SO unlock: a wrong SO PIN counts against the SO and changes nothing.
    let new_pin = "user-pin-new-42";
    assert_eq!(
        run(&env, &["unlock", &serial, WRONG_PIN, new_pin]),
        ["fail PinIncorrect"]
    );
    let i = observer.info().unwrap();
    assert_eq!((i.so_pin.failures, i.user_pin.failures), (1, 5));
    assert_ne!(i.flags as CK_FLAGS & CKF_SO_PIN_COUNT_LOW, 0);
    assert_eq!(run(&env, &["unlock", &serial, SO_PIN, new_pin]), ["ok"]);
    let i = observer.info().unwrap();
    assert_eq!((i.so_pin.failures, i.user_pin.failures), (0, 0));
    assert_eq!(user_flags(i.flags), (false, false, false));
    assert_eq!(i.flags as CK_FLAGS & CKF_SO_PIN_COUNT_LOW, 0);

    // The old PIN is gone, the new one works, and the data survived the reset.
    assert_eq!(
        run(&env, &["login", &serial, USER_PIN]),
        ["fail PinIncorrect"]
    );
    assert_eq!(observer.info().unwrap().user_pin.failures, 1);
    assert_eq!(run(&env, &["login", &serial, new_pin]), ["ok"]);
    assert_eq!(observer.info().unwrap().user_pin.failures, 0);
    assert_eq!(
        run(&env, &["count", &serial, new_pin]),
        ["count 1", "label keep-0"]
    );
}

// ------------------------------------------------------------------ 2. kill during PIN checks

#[test]
fn sigkill_during_pin_checks_never_loses_a_try() {
    let env = TestEnv::new("[pin]\nuser_max_tries = 1000\n");
    let serial = init_token(&env, "pinkill");
    let mut rng = StdRng::seed_from_u64(seed("pin-kill"));
    let kills = 10;
    let mut acked_total = 0u32;
    let mut persisted = 0u32;
    let mut in_flight_counted = 0u32;
    for round in 1..=kills {
        let mut child = spawn(&env, &["login-loop", &serial, WRONG_PIN, "100000"], false);
        let mut lines = Lines::of(&mut child);
        // The process is inside its loop once it reports its first failure.
        let first = lines.next_line();
        assert_eq!(
            first.as_deref(),
            Some("fail 1 PinIncorrect"),
            "{}",
            stderr_of(&mut child)
        );
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..30_000)));
        sigkill(&mut child);
        let mut acked = 1u32;
        for l in lines.rest() {
            acked += 1;
            assert_eq!(l, format!("fail {acked} PinIncorrect"));
        }
        acked_total += acked;
        let t = env.open(&serial);
        let now = t.info().unwrap().user_pin.failures;
        // Every acknowledged failure is persisted; at most the one in flight more.
        assert!(
            now >= persisted + acked && now <= persisted + acked + 1,
            "round {round}: counter {persisted} -> {now} after {acked} acknowledged failures"
        );
        assert!(
            now >= acked_total && now <= acked_total + round,
            "total: {now} vs acked {acked_total}"
        );
        in_flight_counted += now - persisted - acked;
        persisted = now;
    }
    eprintln!(
        "pin-kill: {kills} kills, {acked_total} acknowledged failures, counter {persisted} \
         ({in_flight_counted} in-flight attempts counted but not reported)"
    );
    // The right PIN still works below the limit, and resets the counter.
    assert_eq!(run(&env, &["login", &serial, USER_PIN]), ["ok"]);
    assert_eq!(env.open(&serial).info().unwrap().user_pin.failures, 0);
}

// ------------------------------------------------------------------ 3. concurrent writers

#[test]
fn two_processes_write_concurrently() {
    let env = TestEnv::new("");
    let serial = init_token(&env, "concurrent");
    let per = 200usize;
    let n = per.to_string();
    let mut a = spawn(
        &env,
        &["create-objects", &serial, USER_PIN, &n, "A", "--sync"],
        true,
    );
    let mut b = spawn(
        &env,
        &["create-objects", &serial, USER_PIN, &n, "B", "--sync"],
        true,
    );
    let mut la = Lines::of(&mut a);
    let mut lb = Lines::of(&mut b);
    assert_eq!(
        la.next_line().as_deref(),
        Some("ready"),
        "{}",
        stderr_of(&mut a)
    );
    assert_eq!(
        lb.next_line().as_deref(),
        Some("ready"),
        "{}",
        stderr_of(&mut b)
    );
    let start = Instant::now();
    send(&mut a, "go");
    send(&mut b, "go");
    for (tag, lines, child) in [("A", &mut la, &mut a), ("B", &mut lb, &mut b)] {
        let mut got = Vec::new();
        loop {
            match lines.next_line() {
                Some(l) if l == format!("done {per}") => break,
                Some(l) => got.push(l),
                None => panic!(
                    "{tag} stopped early after {} acks: {}",
                    got.len(),
                    stderr_of(child)
                ),
            }
        }
        assert_eq!(count_acks(tag, &got), per);
    }
    let took = start.elapsed();
    // Both are done: each must now see the other's objects as well as its own.
    send(&mut a, "count");
    send(&mut b, "count");
    let want = format!("seen {}", 2 * per);
    assert_eq!(la.next_line().as_deref(), Some(want.as_str()));
    assert_eq!(lb.next_line().as_deref(), Some(want.as_str()));
    finish(&mut a);
    finish(&mut b);

    // A third process counts them all, with the right labels and values.
    let lines = run(&env, &["count", &serial, USER_PIN]);
    assert_eq!(lines[0], format!("count {}", 2 * per));
    let got: BTreeSet<&str> = lines[1..]
        .iter()
        .map(|l| l.strip_prefix("label ").unwrap())
        .collect();
    let want: BTreeSet<String> = ["A", "B"]
        .iter()
        .flat_map(|t| (0..per).map(move |i| data_label(t, i)))
        .collect();
    assert_eq!(got, want.iter().map(String::as_str).collect());

    // How interleaved were the writes? (ids are allocated in commit order)
    let t = env.open(&serial);
    t.login(UserType::User, USER_PIN.as_bytes()).unwrap();
    let order: String = all_data(&t)
        .unwrap()
        .iter()
        .map(|id| t.attributes(*id).unwrap().label().chars().next().unwrap())
        .collect();
    let switches = order.as_bytes().windows(2).filter(|w| w[0] != w[1]).count();
    eprintln!(
        "concurrent: {} objects in {took:?}, writer switched {switches} times",
        2 * per
    );
}

// ------------------------------------------------------------------ 4. kills during writes

#[test]
fn random_sigkills_during_writes_lose_no_acked_object() {
    let env = TestEnv::new("");
    let serial = init_token(&env, "writekill");
    let mut rng = StdRng::seed_from_u64(seed("write-kill"));
    let kills = 50;
    let mut acks: Vec<(String, usize)> = Vec::new();
    let mut total_acked = 0usize;
    for k in 0..kills {
        let tag = format!("k{k}");
        let mut child = spawn(
            &env,
            &["create-objects", &serial, USER_PIN, "1000000", &tag],
            false,
        );
        let mut lines = Lines::of(&mut child);
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..=200)));
        sigkill(&mut child);
        let n = count_acks(&tag, &lines.rest());
        total_acked += n;
        acks.push((tag, n));
        // The file opens after every kill, and holds every acked object.
        let present = env.open(&serial).info().unwrap().private_objects as usize;
        assert!(
            present >= total_acked && present <= total_acked + k + 1,
            "after kill {k}: {present} objects, {total_acked} acked"
        );
    }

    // Every acked object is there with its value; per killed writer at most the one
    // in flight beyond its acks, and nothing else.
    let t = env.open(&serial);
    t.login(UserType::User, USER_PIN.as_bytes()).unwrap();
    let mut present: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for id in all_data(&t).unwrap() {
        let a = t.attributes(id).unwrap();
        let label = a.label();
        assert_eq!(
            a.get(CKA_VALUE),
            Some(&data_value(&label)[..]),
            "value of {label}"
        );
        let (tag, i) = label.rsplit_once('-').unwrap();
        assert!(present
            .entry(tag.to_string())
            .or_default()
            .insert(i.parse().unwrap()));
    }
    let mut in_flight = 0;
    for (tag, n) in &acks {
        let got = present.remove(tag).unwrap_or_default();
        let m = got.len();
        assert!(m == *n || m == n + 1, "{tag}: {n} acked, {m} present");
        assert_eq!(
            got,
            (0..m).collect(),
            "{tag}: objects present are not a prefix"
        );
        in_flight += m - n;
    }
    assert!(
        present.is_empty(),
        "objects of unknown writers: {present:?}"
    );
    let total = total_acked + in_flight;
    // A separate process agrees.
    assert_eq!(
        run(&env, &["count", &serial, USER_PIN])[0],
        format!("count {total}")
    );
    eprintln!(
        "write-kill: {kills} kills, {total_acked} acked writes, {total} objects present \
         ({in_flight} unacknowledged in-flight writes committed), writers with no ack: {}",
        acks.iter().filter(|(_, n)| *n == 0).count()
    );
}

// ------------------------------------------------------------------ 5. tampering

struct Tamper {
    cases: PathBuf,
    pristine: PathBuf,
    other: PathBuf,
    config: vault_core::config::Config,
    /// id -> (label, private)
    objects: BTreeMap<u64, (String, bool)>,
}

/// Makes a token with two public and two private data objects, a used user-PIN
/// counter row (reset to 0) and an SO counter at 1. Returns its file and the ids.
fn tamper_token(env: &TestEnv, label: &str) -> (PathBuf, BTreeMap<u64, (String, bool)>) {
    let reg = env.registry();
    let e = reg.create(label, SO_PIN.as_bytes(), None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO_PIN.as_bytes()).unwrap();
    t.init_pin(USER_PIN.as_bytes()).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, USER_PIN.as_bytes()).unwrap();
    let sid = &t.open_session(true).unwrap();
    let mut objects = BTreeMap::new();
    for (l, private) in [
        ("pub1", false),
        ("pub2", false),
        ("priv1", true),
        ("priv2", true),
    ] {
        let id = t.create_object(sid, &data_template(l, private)).unwrap();
        objects.insert(id, (l.to_string(), private));
    }
    t.close_session(sid).unwrap();
    assert!(matches!(
        t.login(UserType::User, WRONG_PIN.as_bytes()),
        Err(Error::PinIncorrect)
    ));
    t.login(UserType::User, USER_PIN.as_bytes()).unwrap();
    t.logout().unwrap();
    assert!(matches!(
        t.login(UserType::So, WRONG_PIN.as_bytes()),
        Err(Error::PinIncorrect)
    ));
    drop(t);
    // Fold the WAL into the file so a plain copy of the file is the whole token.
    let c = rusqlite::Connection::open(&e.path).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    (e.path, objects)
}

impl Tamper {
    fn id_of(&self, label: &str) -> u64 {
        *self
            .objects
            .iter()
            .find(|(_, (l, _))| l == label)
            .unwrap()
            .0
    }

    /// A copy of the pristine token changed by `f` (run on a connection to the copy
    /// with the other token attached as `other`).
    fn case(&self, name: &str, f: impl FnOnce(&rusqlite::Connection)) -> PathBuf {
        let p = self.cases.join(format!("{name}.vtoken"));
        std::fs::copy(&self.pristine, &p).unwrap();
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute(
            "ATTACH DATABASE ?1 AS other",
            [self.other.to_str().unwrap()],
        )
        .unwrap();
        f(&c);
        c.execute("DETACH DATABASE other", []).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        drop(c);
        p
    }

    fn open(&self, p: &Path) -> vault_core::Result<Arc<Token>> {
        Token::open(p, &self.config)
    }

    /// Reads every object of a tampered copy: the search and every listed object
    /// must fail with `Corrupt` or `ObjectHandleInvalid` for the tampered `bad`
    /// ids (`Corrupt` for at least the first), and any object read successfully
    /// must carry exactly its own data.
    fn expect_corrupt(&self, name: &str, p: &Path, bad: &[u64], logged_in: bool) {
        let t = self.open(p).unwrap_or_else(|e| panic!("{name}: open: {e}"));
        if logged_in {
            t.login(UserType::User, USER_PIN.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: login: {e}"));
        }
        // Logged in, a template of indexed attributes only is answered from the
        // index columns (nothing decrypted): the damage shows when the objects are
        // read. A search that must open the records reports it at once.
        match t.search(&Attributes::new()) {
            Err(Error::Store(StoreError::Corrupt { .. })) => {}
            Ok(_) if logged_in => {}
            other => panic!("{name}: search gave {other:?}, expected Corrupt"),
        }
        let mut q = Attributes::new();
        q.set_bool(CKA_MODIFIABLE, true);
        match t.search(&q) {
            Err(Error::Store(StoreError::Corrupt { .. })) => {}
            other => panic!("{name}: search by CKA_MODIFIABLE gave {other:?}, expected Corrupt"),
        }
        let mut ids: BTreeSet<u64> = self.objects.keys().copied().collect();
        ids.extend(bad);
        for id in ids {
            match t.attributes(id) {
                Ok(a) => {
                    assert!(
                        !bad.contains(&id),
                        "{name}: tampered object {id} read without error"
                    );
                    let (label, private) = &self.objects[&id];
                    assert!(
                        logged_in || !private,
                        "{name}: private object {id} read without login"
                    );
                    assert_eq!(a.label(), *label, "{name}: object {id} has another label");
                    assert_eq!(
                        a.get(CKA_VALUE),
                        Some(&data_value(label)[..]),
                        "{name}: object {id} value"
                    );
                }
                Err(Error::Store(StoreError::Corrupt { .. })) => {
                    assert!(bad.contains(&id), "{name}: untouched object {id} corrupt")
                }
                Err(Error::ObjectHandleInvalid) => {
                    assert!(
                        id != bad[0] && (bad.contains(&id) || (!logged_in && self.objects[&id].1)),
                        "{name}: {id}"
                    )
                }
                Err(e) => panic!("{name}: object {id}: unexpected {e:?}"),
            }
        }
    }

    /// A PIN check (and the token info) on the copy must report `Corrupt`.
    fn expect_counter_corrupt(&self, name: &str, p: &Path, who: UserType) {
        let t = self.open(p).unwrap_or_else(|e| panic!("{name}: open: {e}"));
        assert!(
            matches!(t.info(), Err(Error::Store(StoreError::Corrupt { .. }))),
            "{name}: info"
        );
        let pin = if who == UserType::User {
            USER_PIN
        } else {
            SO_PIN
        };
        match t.login(who, pin.as_bytes()) {
            Err(Error::Store(StoreError::Corrupt { .. })) => {}
            other => panic!("{name}: login gave {other:?}, expected Corrupt"),
        }
        assert!(
            matches!(
                t.login(who, WRONG_PIN.as_bytes()),
                Err(Error::Store(StoreError::Corrupt { .. }))
            ),
            "{name}: wrong PIN"
        );
    }
}

/// Where in a record of a given length to flip a byte.
type Pos = fn(usize) -> usize;

fn flip(c: &rusqlite::Connection, id: u64, pos: impl Fn(usize) -> usize, what: &str) {
    let mut blob: Vec<u8> = c
        .query_row("SELECT blob FROM objects WHERE id = ?1", [id as i64], |r| {
            r.get(0)
        })
        .unwrap();
    let at = pos(blob.len());
    assert!(
        at < blob.len(),
        "{what}: position {at} outside {}",
        blob.len()
    );
    blob[at] ^= 0x01;
    assert_eq!(
        c.execute(
            "UPDATE objects SET blob = ?2 WHERE id = ?1",
            rusqlite::params![id as i64, blob]
        )
        .unwrap(),
        1
    );
}

fn exec(c: &rusqlite::Connection, sql: &str) {
    let n = c.execute_batch(sql);
    n.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[test]
fn tampered_records_are_reported_corrupt() {
    let env = TestEnv::new("");
    let (pristine, objects) = tamper_token(&env, "tamper");
    let (other, other_objects) = tamper_token(&env, "other");
    assert_eq!(objects, other_objects, "both tokens hold the same ids");
    let cases = env.dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    let tm = Tamper {
        cases,
        pristine,
        other,
        config: env.config.clone(),
        objects,
    };

    // Control: an untouched copy reads back exactly.
    let p = tm.case("control", |_| {});
    let t = tm.open(&p).unwrap();
    assert_eq!(
        t.search(&Attributes::new()).unwrap().len(),
        2,
        "public objects before login"
    );
    t.login(UserType::User, USER_PIN.as_bytes()).unwrap();
    assert_eq!(t.search(&Attributes::new()).unwrap().len(), 4);
    for (id, (label, _)) in &tm.objects {
        assert_eq!(
            t.attributes(*id).unwrap().get(CKA_VALUE),
            Some(&data_value(label)[..])
        );
    }
    drop(t);

    let mut n = 0;
    for target in ["pub1", "priv1"] {
        let id = tm.id_of(target);
        let private = target.starts_with("priv");
        let sibling = tm.id_of(if private { "priv2" } else { "pub2" });
        let cross = tm.id_of(if private { "pub1" } else { "priv1" });
        // Byte flips in every part of the record: nonce, ciphertext, tag.
        let flips: [(&str, Pos); 6] = [
            ("nonce0", |_| 0),
            ("nonce11", |_| 11),
            ("ct0", |_| 12),
            ("ct-mid", |l| 12 + (l - 28) / 2),
            ("tag0", |l| l - 16),
            ("tag15", |l| l - 1),
        ];
        for (what, pos) in flips {
            let name = format!("{target}-flip-{what}");
            let p = tm.case(&name, |c| flip(c, id, pos, &name));
            tm.expect_corrupt(&name, &p, &[id], true);
            if !private {
                tm.expect_corrupt(&format!("{name}-nologin"), &p, &[id], false);
            }
            n += 1;
        }
        let i = id as i64;
        let (s, x) = (sibling as i64, cross as i64);
        let sql_cases: Vec<(String, String, Vec<u64>)> = vec![
            ("truncated".into(), format!("UPDATE objects SET blob = substr(blob, 1, length(blob) - 1) WHERE id = {i}"), vec![id]),
            ("moved".into(), format!("UPDATE objects SET id = id + 100 WHERE id = {i}"), vec![id + 100, id]),
            (
                "swapped-blobs".into(),
                format!(
                    "CREATE TEMP TABLE t AS SELECT id, blob FROM objects WHERE id IN ({i}, {s});
                     UPDATE objects SET blob = (SELECT blob FROM t WHERE t.id = {s}) WHERE id = {i};
                     UPDATE objects SET blob = (SELECT blob FROM t WHERE t.id = {i}) WHERE id = {s};"
                ),
                vec![id, sibling],
            ),
            (
                "swapped-rows".into(),
                format!(
                    "UPDATE objects SET id = 999 WHERE id = {i}; UPDATE objects SET id = {i} WHERE id = {s};
                     UPDATE objects SET id = {s} WHERE id = 999;"
                ),
                vec![id, sibling],
            ),
            (
                "blob-of-other-privacy".into(),
                format!("UPDATE objects SET blob = (SELECT blob FROM objects WHERE id = {x}) WHERE id = {i}"),
                vec![id],
            ),
            ("private-flag".into(), format!("UPDATE objects SET private = 1 - private WHERE id = {i}"), vec![id]),
            ("class".into(), format!("UPDATE objects SET class = {CKO_SECRET_KEY} WHERE id = {i}"), vec![id]),
            (
                "label-tag".into(),
                format!("UPDATE objects SET label_tag = (SELECT label_tag FROM objects WHERE id = {s}) WHERE id = {i}"),
                vec![id],
            ),
            (
                "row-from-other-token".into(),
                format!(
                    "DELETE FROM objects WHERE id = {i};
                     INSERT INTO objects SELECT * FROM other.objects WHERE id = {i};"
                ),
                vec![id],
            ),
            (
                "blob-from-other-token".into(),
                format!("UPDATE objects SET blob = (SELECT blob FROM other.objects WHERE id = {i}) WHERE id = {i}"),
                vec![id],
            ),
        ];
        for (what, sql, bad) in sql_cases {
            let name = format!("{target}-{what}");
            let p = tm.case(&name, |c| exec(c, &sql));
            tm.expect_corrupt(&name, &p, &bad, true);
            n += 1;
        }
    }

    // A process holding the token open: a record changed under it (with a new
    // generation, so the cache cannot hide it) is reported, never served wrongly.
    let p = tm.case("live", |_| {});
    let priv1 = tm.id_of("priv1");
    let t = tm.open(&p).unwrap();
    t.login(UserType::User, USER_PIN.as_bytes()).unwrap();
    assert_eq!(t.attributes(priv1).unwrap().label(), "priv1");
    let c = rusqlite::Connection::open(&p).unwrap();
    flip(&c, priv1, |l| l / 2, "live");
    match t.attributes(priv1) {
        // same generation: the cached (correct) copy may still be served
        Ok(a) => assert_eq!(a.get(CKA_VALUE), Some(&data_value("priv1")[..])),
        Err(e) => assert!(
            matches!(e, Error::Store(StoreError::Corrupt { .. })),
            "live: {e:?}"
        ),
    }
    exec(
        &c,
        &format!("UPDATE objects SET gen = gen + 1 WHERE id = {priv1}"),
    );
    // Attribute reads trust a look at the file for up to LOOK_WINDOW (the cached,
    // untampered copy until then); after it, the change is seen.
    std::thread::sleep(vault_core::store::LOOK_WINDOW * 2);
    assert!(
        matches!(
            t.attributes(priv1),
            Err(Error::Store(StoreError::Corrupt { .. }))
        ),
        "live tamper with a new generation"
    );
    let mut q = Attributes::new();
    q.set_bool(CKA_MODIFIABLE, true);
    assert!(
        matches!(t.search(&q), Err(Error::Store(StoreError::Corrupt { .. }))),
        "live search (records opened)"
    );
    drop((t, c));
    n += 1;

    // The header, the public-record key and the format record.
    let header_cases: [(&str, &str); 5] = [
        ("header-flip", ""), // done in Rust below
        (
            "header-from-other-token",
            "UPDATE meta SET v = (SELECT v FROM other.meta WHERE k = 'header') WHERE k = 'header'",
        ),
        (
            "pubkey-flip",
            "UPDATE meta SET v = zeroblob(40) WHERE k = 'pubkey'",
        ),
        (
            "format-damaged",
            "UPDATE meta SET v = x'010000' WHERE k = 'format'",
        ),
        ("header-missing", "DELETE FROM meta WHERE k = 'header'"),
    ];
    for (name, sql) in header_cases {
        let p = tm.case(name, |c| {
            if name == "header-flip" {
                let mut v: Vec<u8> = c
                    .query_row("SELECT v FROM meta WHERE k = 'header'", [], |r| r.get(0))
                    .unwrap();
                let at = v.len() / 2;
                v[at] ^= 0x80;
                c.execute("UPDATE meta SET v = ?1 WHERE k = 'header'", [v])
                    .unwrap();
            } else {
                exec(c, sql)
            }
        });
        match tm.open(&p) {
            Err(Error::Store(StoreError::Corrupt { .. })) => {}
            Err(e) => panic!("{name}: open gave {e:?}, expected Corrupt"),
            Ok(_) => panic!("{name}: tampered file opened"),
        }
        n += 1;
    }
    // Header and public key transplanted together: the file now claims the other
    // token's identity, and nothing of this token's opens under it.
    let p = tm.case("identity-from-other-token", |c| {
        exec(
            c,
            "UPDATE meta SET v = (SELECT v FROM other.meta WHERE k = 'header') WHERE k = 'header';
             UPDATE meta SET v = (SELECT v FROM other.meta WHERE k = 'pubkey') WHERE k = 'pubkey';",
        )
    });
    tm.expect_counter_corrupt("identity-from-other-token", &p, UserType::User);
    n += 1;

    // Counter rows: flipped, renamed (SO counter as user counter), from another token.
    let counter_cases: [(&str, &str, UserType); 4] = [
        ("user-counter-flip", "", UserType::User), // done in Rust below
        (
            "so-counter-as-user",
            "UPDATE counters SET v = (SELECT v FROM counters WHERE name = 'so_pin_failures') WHERE name = 'user_pin_failures'",
            UserType::User,
        ),
        (
            "user-counter-from-other-token",
            "UPDATE counters SET v = (SELECT v FROM other.counters WHERE name = 'user_pin_failures') WHERE name = 'user_pin_failures'",
            UserType::User,
        ),
        (
            "so-counter-from-other-token",
            "UPDATE counters SET v = (SELECT v FROM other.counters WHERE name = 'so_pin_failures') WHERE name = 'so_pin_failures'",
            UserType::So,
        ),
    ];
    for (name, sql, who) in counter_cases {
        let p = tm.case(name, |c| {
            let before: Vec<u8> = c
                .query_row(
                    "SELECT v FROM counters WHERE name = 'user_pin_failures'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if sql.is_empty() {
                let mut v = before.clone();
                v[14] ^= 0x01;
                c.execute(
                    "UPDATE counters SET v = ?1 WHERE name = 'user_pin_failures'",
                    [v],
                )
                .unwrap();
            } else {
                exec(c, sql);
            }
            let after: Vec<u8> = c
                .query_row(
                    "SELECT v FROM counters WHERE name = 'user_pin_failures'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(
                who == UserType::So || before != after,
                "{name}: the tampering changed nothing"
            );
        });
        tm.expect_counter_corrupt(name, &p, who);
        n += 1;
    }
    eprintln!("tamper: {n} tampered copies, every one reported Corrupt");
}

// ------------------------------------------------------------------ 6. no secrets on disk

/// Reads a file in another process (`cat`): opening and closing a descriptor of a
/// token file in a process that has it open would drop that process's SQLite locks.
fn read_elsewhere(f: &Path) -> Vec<u8> {
    let o = Command::new("cat").arg(f).output().expect("run cat");
    assert!(
        o.status.success(),
        "cat {}: {}",
        f.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn assert_absent(what: &str, files: &[PathBuf], needles: &[(&str, Vec<u8>)]) {
    let mut scanned = 0;
    for f in files {
        let bytes = read_elsewhere(f);
        scanned += bytes.len();
        for (name, needle) in needles {
            assert!(
                find_bytes(&bytes, needle).is_none(),
                "{what}: {name} found in {} at {:?}",
                f.display(),
                find_bytes(&bytes, needle)
            );
        }
    }
    eprintln!(
        "secrets: {what}: {} files, {scanned} bytes scanned, {} needles absent",
        files.len(),
        needles.len()
    );
}

#[test]
fn no_pin_key_or_private_value_in_the_files() {
    let env = TestEnv::new("");
    let so_pin = "SoPin~Qx7!Zr2";
    let user_pin = "UsrPin~Kd9#Wm4";
    let new_pin = "NewPin~Tb3$Hv8";
    let aes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(29).wrapping_add(0xA5))
        .collect();
    let marker = b"MARKER-private-value-8c1f0e77d2a94b35".to_vec();
    let aes_label = "LABEL-aes-key-private-3f9e";
    let data_label_s = "LABEL-data-private-6b2d";
    let aes_id = b"ID-aes-key-5e1c".to_vec();

    let reg = env.registry();
    let e = reg.create("secrets", so_pin.as_bytes(), None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, so_pin.as_bytes()).unwrap();
    t.init_pin(user_pin.as_bytes()).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, user_pin.as_bytes()).unwrap();
    let sid = &t.open_session(true).unwrap();
    let mut key = Attributes::new();
    key.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    key.set_ulong(CKA_KEY_TYPE, CKK_AES);
    key.set_bool(CKA_TOKEN, true);
    key.set_bool(CKA_PRIVATE, true);
    key.set(CKA_VALUE, aes.clone());
    key.set(CKA_LABEL, aes_label.as_bytes().to_vec());
    key.set(CKA_ID, aes_id.clone());
    let kid = t.create_object(sid, &key).unwrap();
    let mut data = Attributes::new();
    data.set_ulong(CKA_CLASS, CKO_DATA);
    data.set_bool(CKA_TOKEN, true);
    data.set_bool(CKA_PRIVATE, true);
    data.set(CKA_LABEL, data_label_s.as_bytes().to_vec());
    data.set(CKA_VALUE, marker.clone());
    t.create_object(sid, &data).unwrap();
    // Change the user PIN as well: neither the old nor the new one may be stored.
    t.set_pin(user_pin.as_bytes(), new_pin.as_bytes()).unwrap();
    assert_eq!(
        t.attributes(kid).unwrap().get(CKA_VALUE),
        Some(&aes[..]),
        "the key is really stored"
    );

    let mut needles: Vec<(&str, Vec<u8>)> = vec![
        ("SO PIN", so_pin.as_bytes().to_vec()),
        ("user PIN", user_pin.as_bytes().to_vec()),
        ("new user PIN", new_pin.as_bytes().to_vec()),
        ("AES key", aes.clone()),
        ("AES key (first half)", aes[..16].to_vec()),
        ("AES key (hex)", hex::encode(&aes).into_bytes()),
        ("AES key (HEX)", hex::encode_upper(&aes).into_bytes()),
        ("marker", marker.clone()),
        ("AES label", aes_label.as_bytes().to_vec()),
        ("data label", data_label_s.as_bytes().to_vec()),
        ("AES CKA_ID", aes_id.clone()),
    ];
    let files = file_set(&e.path);
    let wal = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-wal"))
        .expect("a WAL while the token is open");
    assert!(
        std::fs::metadata(wal).unwrap().len() > 0,
        "the WAL holds the writes"
    );
    // The scan itself works: the SQLite magic is found in the main file.
    assert!(find_bytes(&read_elsewhere(&e.path), b"SQLite format 3\0").is_some());
    assert_absent("token open (WAL)", &files, &needles);

    t.close_session(sid).unwrap();
    drop(t);
    assert_absent("token closed", &file_set(&e.path), &needles);

    // A writer killed mid-way leaves a WAL behind: it holds no private value either.
    let lines = run(&env, &["init", "killed", so_pin, user_pin]);
    let serial = lines[0].strip_prefix("serial ").unwrap().to_string();
    let mut child = spawn(
        &env,
        &["create-objects", &serial, user_pin, "1000000", "SECRETTAG"],
        false,
    );
    let mut out = Lines::of(&mut child);
    for i in 0..5 {
        assert_eq!(
            out.next_line(),
            Some(format!("ack {}", data_label("SECRETTAG", i))),
            "{}",
            stderr_of(&mut child)
        );
    }
    sigkill(&mut child);
    let acked = 5 + count_acks_from(5, "SECRETTAG", &out.rest());
    let files = file_set(&env.token_path(&serial));
    assert!(
        files.iter().any(|p| p.to_string_lossy().ends_with("-wal")),
        "a killed writer leaves its WAL"
    );
    let values: Vec<(String, Vec<u8>)> = (0..acked)
        .flat_map(|i| {
            let l = data_label("SECRETTAG", i);
            [
                (format!("value of {l}"), data_value(&l)),
                (format!("label {l}"), l.into_bytes()),
            ]
        })
        .collect();
    needles.extend(values.iter().map(|(n, v)| (n.as_str(), v.clone())));
    assert_absent("killed writer", &files, &needles);
}

fn count_acks_from(start: usize, tag: &str, lines: &[String]) -> usize {
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("ack {}", data_label(tag, start + k)));
    }
    lines.len()
}

// ------------------------------------------------------------------ 7. a second handle in one process

/// A long-lived handle (a PKCS#11 module in a browser) while the same process lists
/// the token directory (opening every token file again) and another process writes
/// and exits: the handle must keep seeing the other process's commits, and neither
/// side's acknowledged write may be lost. (POSIX locks are per process and file: any
/// other descriptor of the file closed in this process — e.g. a writability probe
/// through `std::fs` — drops the long-lived connection's locks, and an exiting writer
/// then deletes the WAL under it. So `Store::open` never opens the file outside SQLite.)
#[test]
fn listing_in_a_process_keeps_its_open_handle_safe() {
    let env = TestEnv::new("");
    let serial = init_token(&env, "twohandles");
    let reg = env.registry();
    let entry = reg.find(&serial).unwrap();
    let long = reg.open(&entry).unwrap();
    long.login(UserType::User, USER_PIN.as_bytes()).unwrap();
    let sid = &long.open_session(true).unwrap();
    long.create_object(sid, &data_template("P-0", true))
        .unwrap();
    for round in 0..3 {
        // The same process lists the slots and opens the token a second time.
        assert_eq!(reg.tokens().unwrap().len(), 1);
        drop(reg.open(&entry).unwrap());
        let tag = format!("D{round}");
        assert_eq!(
            run(&env, &["create-objects", &serial, USER_PIN, "1", &tag]),
            [format!("ack {tag}-0"), "done 1".into()]
        );
        long.create_object(sid, &data_template(&format!("P-{}", round + 1), true))
            .unwrap();
        assert_eq!(
            all_data(&long).unwrap().len(),
            2 * round + 3,
            "round {round}: the open handle sees every object"
        );
        assert_eq!(long.info().unwrap().private_objects, 2 * round as u64 + 3);
    }
    let want: BTreeSet<String> = ["P-0", "P-1", "P-2", "P-3", "D0-0", "D1-0", "D2-0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let count = |env: &TestEnv| -> BTreeSet<String> {
        let lines = run(env, &["count", &serial, USER_PIN]);
        lines[1..]
            .iter()
            .map(|l| l.strip_prefix("label ").unwrap().to_string())
            .collect()
    };
    assert_eq!(count(&env), want, "while the handle is open");
    drop(long);
    assert_eq!(count(&env), want, "after it closed");
}
