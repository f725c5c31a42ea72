//! `soak`: multi-process, multi-threaded soak of the PKCS#11 module on one token.
//!
//! ```text
//! soak [--seconds 120] [--processes 2] [--threads 4] [--module PATH] [--seed S]
//! ```
//!
//! The parent creates a token through the module (`C_InitToken` on the free slot,
//! user PIN, a P-256 signing key) in a temporary token directory (`VTOKEN_CONF`),
//! then starts `--processes` workers (this program with `--worker`). Each worker
//! loads the module (`--module`, else `VTOKEN_P11_MODULE`, else
//! `libvtoken_pkcs11.so` beside this program) through `cryptoki` and runs
//! `--threads` threads, each with its own R/W session, doing random operations for
//! `--seconds`: sign with the shared key, find by label, create a token data object
//! (label `wW-tT-SEQ`, half of them private) and acknowledge it on stdout, destroy
//! one of its own acknowledged objects and acknowledge that. Thread 0 of each
//! worker also logs out and in again (login state is per process): an operation of
//! another thread that fails with a not-logged-in class of error while a logout
//! overlapped it is an expected race, counted apart; every other error is
//! unexpected.
//!
//! At the end the parent reads the token's data objects through a fresh module
//! context and compares them with created-minus-destroyed acknowledgements. Prints
//! ops/s per operation and `unexpected_errors=N consistent=BOOL`; exit status 1
//! when either is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SO_PIN: &str = "soak-so-12345678";
const USER_PIN: &str = "soak-user-1234";
const LABEL: &str = "soak";
const KEY_LABEL: &str = "soak-key";
const APP: &[u8] = b"vtoken-soak";
/// DER of the P-256 curve OID.
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Operation names, in report order.
const OPS: [&str; 6] = ["sign", "find", "create", "destroy", "login", "logout"];

type Res<T> = std::result::Result<T, String>;

struct Opts {
    seconds: f64,
    processes: usize,
    threads: usize,
    module: PathBuf,
    seed: u64,
    worker: Option<usize>,
}

fn usage() -> ! {
    eprintln!("usage: soak [--seconds N] [--processes N] [--threads N] [--module PATH] [--seed S]");
    std::process::exit(2);
}

fn opts() -> Opts {
    let mut o = Opts {
        seconds: 120.0,
        processes: 2,
        threads: 4,
        module: std::env::var_os("VTOKEN_P11_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("libvtoken_pkcs11.so")))
                    .unwrap_or_else(|| PathBuf::from("libvtoken_pkcs11.so"))
            }),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        worker: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--seconds" => o.seconds = val().parse().unwrap_or_else(|_| usage()),
            "--processes" => o.processes = val().parse().unwrap_or_else(|_| usage()),
            "--threads" => o.threads = val().parse().unwrap_or_else(|_| usage()),
            "--module" => o.module = PathBuf::from(val()),
            "--seed" => o.seed = val().parse().unwrap_or_else(|_| usage()),
            "--worker" => o.worker = Some(val().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    if o.processes == 0 || o.threads == 0 {
        usage();
    }
    o
}

fn pin(s: &str) -> AuthPin {
    AuthPin::new(s.into())
}

fn ck<T>(what: &str, r: cryptoki::error::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

fn load(module: &std::path::Path) -> Res<Pkcs11> {
    let p = ck(&format!("load {}", module.display()), Pkcs11::new(module))?;
    ck(
        "C_Initialize",
        p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
    )?;
    Ok(p)
}

fn token_slot(p: &Pkcs11) -> Res<Slot> {
    for s in ck("C_GetSlotList", p.get_slots_with_token())? {
        let i = ck("C_GetTokenInfo", p.get_token_info(s))?;
        if i.token_initialized() && i.label().trim_end() == LABEL {
            return Ok(s);
        }
    }
    Err(format!("no token labelled {LABEL}"))
}

// ------------------------------------------------------------------ worker

#[derive(Default, Clone)]
struct Stats {
    ok: BTreeMap<&'static str, u64>,
    races: u64,
    /// `op:error` -> expected races of that kind.
    race_kinds: BTreeMap<String, u64>,
    unexpected: u64,
}

struct Shared {
    worker: usize,
    deadline: Instant,
    /// Odd while thread 0 is logging out / in (changes on every transition).
    epoch: AtomicU64,
    stats: Mutex<Stats>,
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

struct Thread<'a> {
    sh: &'a Shared,
    n: usize,
    s: Session,
    rng: StdRng,
    key: ObjectHandle,
    seq: u64,
    /// Own acknowledged objects: (label, handle, private).
    mine: Vec<(String, ObjectHandle, bool)>,
    st: Stats,
}

impl Thread<'_> {
    /// Records the outcome of `op` started at `epoch`: `Ok`, an expected race with a
    /// logout (a not-logged-in kind of error while a logout overlapped), or an
    /// unexpected error.
    fn outcome<T>(&mut self, op: &'static str, epoch: u64, r: &cryptoki::error::Result<T>) -> bool {
        match r {
            Ok(_) => {
                *self.st.ok.entry(op).or_default() += 1;
                true
            }
            Err(e) => {
                let overlapped = epoch % 2 == 1 || self.sh.epoch.load(Ordering::SeqCst) != epoch;
                let login_kind = matches!(
                    rv_of(e),
                    Some(
                        RvError::UserNotLoggedIn
                            | RvError::KeyHandleInvalid
                            | RvError::ObjectHandleInvalid
                            | RvError::OperationNotInitialized
                    )
                );
                if overlapped && login_kind && self.n != 0 {
                    self.st.races += 1;
                    let kind = format!("{op}:{:?}", rv_of(e).expect("a PKCS#11 error"));
                    *self.st.race_kinds.entry(kind).or_default() += 1;
                } else {
                    self.st.unexpected += 1;
                    eprintln!(
                        "soak worker {} thread {}: unexpected error in {op}: {e}",
                        self.sh.worker, self.n
                    );
                }
                false
            }
        }
    }

    fn epoch(&self) -> u64 {
        self.sh.epoch.load(Ordering::SeqCst)
    }

    fn sign(&mut self) {
        let data: [u8; 32] = self.rng.gen();
        let e = self.epoch();
        let r = self.s.sign(&Mechanism::Ecdsa, self.key, &data);
        if let Ok(sig) = &r {
            if sig.len() != 64 {
                self.st.unexpected += 1;
                eprintln!("soak: signature of {} bytes", sig.len());
                return;
            }
        }
        self.outcome("sign", e, &r);
    }

    fn find(&mut self) {
        // One of our own objects (must be found exactly once, unless it is private
        // and a logout overlapped), else the shared key's label.
        let e = self.epoch();
        if self.mine.is_empty() {
            let r = self.s.find_objects(&[Attribute::Label(KEY_LABEL.into())]);
            self.outcome("find", e, &r);
            return;
        }
        let i = self.rng.gen_range(0..self.mine.len());
        let (label, h, private) = self.mine[i].clone();
        let r = self.s.find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(label.clone().into_bytes()),
        ]);
        if let Ok(found) = &r {
            let overlapped = e % 2 == 1 || self.epoch() != e;
            if found.as_slice() != [h] && !(private && overlapped && found.is_empty()) {
                self.st.unexpected += 1;
                eprintln!(
                    "soak worker {} thread {}: find {label}: {found:?}, expected [{h:?}]",
                    self.sh.worker, self.n
                );
                return;
            }
        }
        self.outcome("find", e, &r);
    }

    fn create(&mut self) {
        self.seq += 1;
        let label = format!("w{}-t{}-{}", self.sh.worker, self.n, self.seq);
        let private = self.seq & 1 == 0;
        let mut value = label.clone().into_bytes();
        value.extend((0..self.rng.gen_range(16..200)).map(|_| self.rng.gen::<u8>()));
        let e = self.epoch();
        let r = self.s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(label.clone().into_bytes()),
            Attribute::Application(APP.to_vec()),
            Attribute::Value(value),
        ]);
        if let Ok(h) = &r {
            out(&format!("create {label}"));
            self.mine.push((label, *h, private));
        }
        self.outcome("create", e, &r);
    }

    fn destroy(&mut self) {
        if self.mine.is_empty() {
            return self.create();
        }
        let i = self.rng.gen_range(0..self.mine.len());
        let (label, h, _) = self.mine[i].clone();
        let e = self.epoch();
        let r = self.s.destroy_object(h);
        if r.is_ok() {
            out(&format!("destroy {label}"));
            self.mine.swap_remove(i);
        }
        self.outcome("destroy", e, &r);
    }

    fn relogin(&mut self) {
        let sh = self.sh;
        sh.epoch.fetch_add(1, Ordering::SeqCst);
        let r = self.s.logout();
        let ok = self.outcome("logout", 0, &r);
        std::thread::sleep(Duration::from_micros(self.rng.gen_range(0..2000)));
        if ok {
            let r = self.s.login(UserType::User, Some(&pin(USER_PIN)));
            self.outcome("login", 0, &r);
        }
        sh.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn run(&mut self) {
        while Instant::now() < self.sh.deadline {
            let roll = self.rng.gen_range(0..100);
            let many = self.mine.len() > 20;
            match roll {
                0..=29 => self.sign(),
                30..=54 => self.find(),
                55..=74 if many => self.destroy(),
                55..=74 => self.create(),
                75..=96 => self.destroy(),
                _ if self.n == 0 => self.relogin(),
                _ => self.sign(),
            }
        }
    }
}

fn worker(o: &Opts, w: usize) -> Res<()> {
    let p11 = load(&o.module)?;
    let slot = token_slot(&p11)?;
    // Thread 0's session logs in before anyone starts: the process starts logged in.
    let s0 = ck("C_OpenSession", p11.open_rw_session(slot))?;
    ck("C_Login", s0.login(UserType::User, Some(&pin(USER_PIN))))?;
    let key = *ck(
        "find key",
        s0.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(KEY_LABEL.into()),
        ]),
    )?
    .first()
    .ok_or("no signing key")?;
    let mut sessions = vec![s0];
    for _ in 1..o.threads {
        sessions.push(ck("C_OpenSession", p11.open_rw_session(slot))?);
    }
    out("ready");
    let mut go = String::new();
    if std::io::stdin().lock().read_line(&mut go).unwrap_or(0) == 0 {
        return Err("stdin closed before go".into());
    }
    let start = Instant::now();
    let sh = Shared {
        worker: w,
        deadline: start + Duration::from_secs_f64(o.seconds),
        epoch: AtomicU64::new(0),
        stats: Mutex::new(Stats::default()),
    };
    std::thread::scope(|scope| {
        for (n, s) in sessions.into_iter().enumerate() {
            let sh = &sh;
            let seed = o.seed ^ ((w as u64) << 32) ^ n as u64;
            scope.spawn(move || {
                let mut t = Thread {
                    sh,
                    n,
                    s,
                    rng: StdRng::seed_from_u64(seed),
                    key,
                    seq: 0,
                    mine: Vec::new(),
                    st: Stats::default(),
                };
                t.run();
                let mut all = sh.stats.lock().unwrap_or_else(|p| p.into_inner());
                for (k, v) in &t.st.ok {
                    *all.ok.entry(k).or_default() += v;
                }
                all.races += t.st.races;
                for (k, v) in &t.st.race_kinds {
                    *all.race_kinds.entry(k.clone()).or_default() += v;
                }
                all.unexpected += t.st.unexpected;
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let st = sh.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut line = format!("stats elapsed={elapsed:.3}");
    for op in OPS {
        line.push_str(&format!(" {op}={}", st.ok.get(op).copied().unwrap_or(0)));
    }
    line.push_str(&format!(" races={} unexpected={}", st.races, st.unexpected));
    out(&line);
    let kinds: Vec<String> = st
        .race_kinds
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    out(&format!("races {}", kinds.join(" ")));
    drop(sh);
    ck("C_Finalize", p11.finalize())?;
    Ok(())
}

// ------------------------------------------------------------------ parent

fn setup(module: &std::path::Path) -> Res<()> {
    let p = load(module)?;
    let slots = ck("C_GetSlotList", p.get_all_slots())?;
    let slot = *slots.last().ok_or("no slot")?;
    ck("C_InitToken", p.init_token(slot, &pin(SO_PIN), LABEL))?;
    let slot = token_slot(&p)?;
    let s = ck("C_OpenSession", p.open_rw_session(slot))?;
    ck("SO login", s.login(UserType::So, Some(&pin(SO_PIN))))?;
    ck("C_InitPIN", s.init_pin(&pin(USER_PIN)))?;
    ck("C_Logout", s.logout())?;
    ck("user login", s.login(UserType::User, Some(&pin(USER_PIN))))?;
    let public = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::EcParams(P256.to_vec()),
        Attribute::Verify(true),
        Attribute::Label(KEY_LABEL.into()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Label(KEY_LABEL.into()),
    ];
    ck(
        "C_GenerateKeyPair",
        s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private),
    )?;
    ck("C_Logout", s.logout())?;
    drop(s);
    ck("C_Finalize", p.finalize())
}

/// Labels of the soak's data objects on the token, through a fresh context.
fn final_labels(module: &std::path::Path) -> Res<Vec<String>> {
    let p = load(module)?;
    let slot = token_slot(&p)?;
    let s = ck("C_OpenSession", p.open_ro_session(slot))?;
    ck("login", s.login(UserType::User, Some(&pin(USER_PIN))))?;
    let mut labels = Vec::new();
    for h in ck(
        "find",
        s.find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Application(APP.to_vec()),
        ]),
    )? {
        let a = ck(
            "C_GetAttributeValue",
            s.get_attributes(h, &[cryptoki::object::AttributeType::Label]),
        )?;
        match a.first() {
            Some(Attribute::Label(l)) => labels.push(String::from_utf8_lossy(l).into_owned()),
            other => return Err(format!("object {h:?} without a label: {other:?}")),
        }
    }
    ck("logout", s.logout())?;
    drop(s);
    ck("C_Finalize", p.finalize())?;
    Ok(labels)
}

#[derive(Default)]
struct WorkerResult {
    created: Vec<String>,
    destroyed: Vec<String>,
    stats: Option<String>,
    races: Option<String>,
    other: Vec<String>,
}

fn parent(o: &Opts) -> Res<bool> {
    if !o.module.exists() {
        return Err(format!(
            "module {} not found (build it: cargo build --release -p vtoken-pkcs11, or \
             pass --module)",
            o.module.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let conf = dir.path().join("vtoken.toml");
    std::fs::write(
        &conf,
        format!(
            "token_dir = \"{}\"\nkdf = \"test\"\n",
            dir.path().join("tokens").display()
        ),
    )
    .map_err(|e| format!("write config: {e}"))?;
    std::env::set_var("VTOKEN_CONF", &conf);
    std::env::remove_var("VTOKEN_LOG");
    setup(&o.module)?;
    eprintln!(
        "soak: seed {}, {} processes x {} threads, {} s, module {}",
        o.seed,
        o.processes,
        o.threads,
        o.seconds,
        o.module.display()
    );

    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut children = Vec::new();
    for w in 0..o.processes {
        let mut c = Command::new(&exe)
            .arg("--worker")
            .arg(w.to_string())
            .args(["--seconds", &o.seconds.to_string()])
            .args(["--threads", &o.threads.to_string()])
            .arg("--module")
            .arg(&o.module)
            .args(["--seed", &o.seed.to_string()])
            .env("VTOKEN_CONF", &conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn worker: {e}"))?;
        let stdout = BufReader::new(c.stdout.take().expect("piped"));
        children.push((c, stdout));
    }
    // Everyone ready, then go at once.
    for (c, r) in children.iter_mut() {
        let mut l = String::new();
        r.read_line(&mut l)
            .map_err(|e| format!("read worker: {e}"))?;
        if l.trim_end() != "ready" {
            let _ = c.kill();
            return Err(format!("worker did not get ready: {l:?}"));
        }
    }
    let start = Instant::now();
    for (c, _) in children.iter_mut() {
        let i = c.stdin.as_mut().expect("piped");
        writeln!(i, "go").map_err(|e| format!("write worker: {e}"))?;
        i.flush().map_err(|e| format!("write worker: {e}"))?;
    }
    let mut readers = Vec::new();
    for (c, r) in children {
        readers.push((
            c,
            std::thread::spawn(move || {
                let mut res = WorkerResult::default();
                for l in r.lines() {
                    let Ok(l) = l else { break };
                    if let Some(x) = l.strip_prefix("create ") {
                        res.created.push(x.to_string());
                    } else if let Some(x) = l.strip_prefix("destroy ") {
                        res.destroyed.push(x.to_string());
                    } else if l.starts_with("stats ") {
                        res.stats = Some(l);
                    } else if l.starts_with("races") {
                        res.races = Some(l);
                    } else {
                        res.other.push(l);
                    }
                }
                res
            }),
        ));
    }
    let mut ok = true;
    let mut unexpected = 0u64;
    let mut races = 0u64;
    let mut race_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut live: BTreeSet<String> = BTreeSet::new();
    let (mut n_created, mut n_destroyed) = (0usize, 0usize);
    for (w, (mut c, h)) in readers.into_iter().enumerate() {
        let res = h.join().map_err(|_| "reader thread panicked".to_string())?;
        let status = c.wait().map_err(|e| format!("wait worker: {e}"))?;
        if !status.success() {
            eprintln!("soak: worker {w} exited with {status}");
            unexpected += 1;
        }
        for l in &res.other {
            eprintln!("soak: worker {w}: unexpected output {l:?}");
            unexpected += 1;
        }
        n_created += res.created.len();
        n_destroyed += res.destroyed.len();
        for l in res.created {
            if !live.insert(l.clone()) {
                eprintln!("soak: label {l} acknowledged twice");
                ok = false;
            }
        }
        for l in res.destroyed {
            if !live.remove(&l) {
                eprintln!("soak: destroy of {l} acknowledged without its create");
                ok = false;
            }
        }
        for kv in res.races.iter().flat_map(|l| l.split_whitespace().skip(1)) {
            if let Some((k, v)) = kv.rsplit_once('=') {
                *race_kinds.entry(k.to_string()).or_default() += v.parse().unwrap_or(0);
            }
        }
        match res.stats {
            Some(s) => {
                for kv in s.split_whitespace().skip(1) {
                    let Some((k, v)) = kv.split_once('=') else {
                        continue;
                    };
                    match k {
                        "elapsed" => {}
                        "races" => races += v.parse::<u64>().unwrap_or(0),
                        "unexpected" => unexpected += v.parse::<u64>().unwrap_or(0),
                        _ => *totals.entry(k.to_string()).or_default() += v.parse().unwrap_or(0),
                    }
                }
            }
            None => {
                eprintln!("soak: worker {w} reported no statistics");
                unexpected += 1;
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();

    let labels = final_labels(&o.module)?;
    let found: BTreeSet<String> = labels.iter().cloned().collect();
    if found.len() != labels.len() {
        eprintln!("soak: duplicate labels on the token");
        ok = false;
    }
    let missing: Vec<_> = live.difference(&found).collect();
    let extra: Vec<_> = found.difference(&live).collect();
    if !missing.is_empty() || !extra.is_empty() {
        eprintln!(
            "soak: final state differs: {} acked objects missing {:?}, {} unacked present {:?}",
            missing.len(),
            missing.iter().take(10).collect::<Vec<_>>(),
            extra.len(),
            extra.iter().take(10).collect::<Vec<_>>()
        );
        ok = false;
    }
    let total: u64 = totals.values().sum();
    for op in OPS {
        let n = totals.get(op).copied().unwrap_or(0);
        println!("{op:<8} {n:>9} ops {:>10.1} ops/s", n as f64 / o.seconds);
    }
    println!(
        "total    {total:>9} ops {:>10.1} ops/s ({} processes x {} threads, {:.1} s wall)",
        total as f64 / o.seconds,
        o.processes,
        o.threads,
        wall
    );
    println!(
        "created={n_created} destroyed={n_destroyed} final_objects={} expected_races={races}",
        found.len()
    );
    let kinds: Vec<String> = race_kinds.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("expected races with a logout: {}", kinds.join(" "));
    println!("unexpected_errors={unexpected} consistent={ok}");
    Ok(ok && unexpected == 0)
}

fn main() {
    let o = opts();
    if let Some(w) = o.worker {
        if let Err(e) = worker(&o, w) {
            eprintln!("soak worker {w}: {e}");
            std::process::exit(2);
        }
        return;
    }
    match parent(&o) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}
