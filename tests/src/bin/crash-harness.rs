//! `crash-harness`: crash-consistency campaign of the token store.
//!
//! ```text
//! crash-harness [--kills 1000] [--seed S] [--dir D] [--child PATH]
//! ```
//!
//! Creates a token (cheap KDF, `user_max_tries = 1000000` so wrong PINs never lock)
//! with an HOTP credential, then `--kills` times: starts `vt-crash` (the mixed
//! workload, found beside this program unless `--child` names it), lets it work for
//! a random 2–60 ms after its start-up (one run in ten is killed during start-up
//! instead), kills it with `SIGKILL`, and checks the token in this process:
//!
//! - the file opens and every record reads (`corrupt`);
//! - every acknowledged create / update / delete / vault write is there with its
//!   exact value (`lost`);
//! - the operation in flight when the child died is either wholly applied or not at
//!   all; nothing else appeared (`partial`);
//! - the persisted wrong-PIN counter holds every acknowledged wrong PIN since the
//!   last acknowledged right one (`forgotten_pin_failures`);
//! - the stored HOTP counter is past every acknowledged code's counter, and no
//!   counter was used twice in the whole run (`repeated_hotp`);
//! - anything else inconsistent (the child failing by itself, a code that does not
//!   match its counter, a counter too high) is `other`.
//!
//! The token is opened only between runs, never while a child works. The last line
//! on stdout is the summary; the exit status is 1 on any violation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vault_core::config::Config;
use vault_core::pkcs11::*;
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};

#[path = "../crash_model.rs"]
mod crash_model;
use crash_model::*;

type Res<T> = std::result::Result<T, String>;

fn ctx<T>(what: &str, r: vault_core::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e} ({e:?})"))
}

// ------------------------------------------------------------------ options

struct Opts {
    kills: usize,
    seed: u64,
    dir: Option<PathBuf>,
    child: PathBuf,
}

fn usage() -> ! {
    eprintln!("usage: crash-harness [--kills N] [--seed S] [--dir D] [--child PATH]");
    std::process::exit(2);
}

fn opts() -> Opts {
    let mut o = Opts {
        kills: 1000,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        dir: None,
        child: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("vt-crash")))
            .unwrap_or_else(|| PathBuf::from("vt-crash")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--kills" => o.kills = val().parse().unwrap_or_else(|_| usage()),
            "--seed" => o.seed = val().parse().unwrap_or_else(|_| usage()),
            "--dir" => o.dir = Some(PathBuf::from(val())),
            "--child" => o.child = PathBuf::from(val()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    o
}

// ------------------------------------------------------------------ model

/// The operation a child had started but not acknowledged when it died.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Login,
    Logout,
    Create(String),
    Update(String, u64),
    Delete(String),
    PinFail(u64),
    Hotp(u64),
    HotpCode(String, u64),
    Vault(String),
    VaultDel(String),
}

fn parse_op(s: &str) -> Option<Op> {
    let w: Vec<&str> = s.split(' ').collect();
    let num = |i: usize| w.get(i).and_then(|x| x.parse::<u64>().ok());
    let text = |i: usize| w.get(i).map(|x| x.to_string());
    Some(match (w[0], w.len()) {
        ("login", 1) => Op::Login,
        ("logout", 1) => Op::Logout,
        ("create", 2) => Op::Create(text(1)?),
        ("update", 3) => Op::Update(text(1)?, num(2)?),
        ("delete", 2) => Op::Delete(text(1)?),
        ("pinfail", 2) => Op::PinFail(num(1)?),
        ("hotp", 2) => Op::Hotp(num(1)?),
        ("hotp", 3) => Op::HotpCode(text(1)?, num(2)?),
        ("vault", 2) => Op::Vault(text(1)?),
        ("vaultdel", 2) => Op::VaultDel(text(1)?),
        _ => return None,
    })
}

/// What the token must hold, from the last check plus the acknowledgements since.
#[derive(Default)]
struct Model {
    /// label -> version
    objects: BTreeMap<String, u64>,
    vault: BTreeSet<String>,
    /// Labels and titles whose delete was acknowledged (they must stay away).
    deleted: BTreeSet<String>,
    /// The persisted wrong-PIN counter.
    pin: u64,
    /// The stored HOTP counter (the next code's).
    hotp_next: u64,
    /// counter -> code, over the whole campaign.
    hotp_used: HashMap<u64, String>,
}

#[derive(Default)]
struct Counts {
    kills: usize,
    corrupt: usize,
    lost: usize,
    partial: usize,
    forgotten_pin: usize,
    repeated_hotp: usize,
    other: usize,
    acked: usize,
    /// Kills that came before the child's `ready`.
    early: usize,
    /// In-flight operations found applied / not applied after the kill.
    in_flight_applied: usize,
    in_flight_absent: usize,
    /// Distinct counters that happened to give the same code (chance; informational).
    code_collisions: usize,
    pinfails: usize,
    hotps: usize,
}

impl Counts {
    fn violations(&self) -> usize {
        self.corrupt
            + self.lost
            + self.partial
            + self.forgotten_pin
            + self.repeated_hotp
            + self.other
    }
}

macro_rules! violation {
    ($c:expr, $field:ident, $run:expr, $($fmt:tt)*) => {{
        $c.$field += 1;
        eprintln!("VIOLATION run {} [{}]: {}", $run, stringify!($field), format!($($fmt)*));
    }};
}

/// Applies the acknowledgements of one run to the model; returns the operation in
/// flight at the kill.
fn apply_acks(run: usize, lines: &[String], m: &mut Model, c: &mut Counts) -> Option<Op> {
    let mut in_flight = None;
    let mut codes: HashMap<String, u64> =
        m.hotp_used.iter().map(|(k, v)| (v.clone(), *k)).collect();
    for l in lines {
        if l == "ready" {
            continue;
        }
        if let Some(i) = l.strip_prefix("> ") {
            match parse_op(i) {
                Some(op) => in_flight = Some(op),
                None => violation!(c, other, run, "unparsable child line {l:?}"),
            }
            continue;
        }
        let Some(op) = parse_op(l) else {
            violation!(c, other, run, "unparsable child line {l:?}");
            continue;
        };
        c.acked += 1;
        in_flight = None;
        match op {
            Op::Login => m.pin = 0,
            Op::Logout => {}
            Op::Create(label) => {
                if m.objects.insert(label.clone(), 0).is_some() {
                    violation!(c, other, run, "create of existing object {label}");
                }
            }
            Op::Update(label, ver) => match m.objects.get_mut(&label) {
                Some(v) if *v + 1 == ver => *v = ver,
                other => {
                    violation!(
                        c,
                        other,
                        run,
                        "update {label} to {ver}, model has {other:?}"
                    );
                    m.objects.insert(label, ver);
                }
            },
            Op::Delete(label) => {
                if m.objects.remove(&label).is_none() {
                    violation!(c, other, run, "delete of unknown object {label}");
                }
                m.deleted.insert(label);
            }
            Op::PinFail(n) => {
                c.pinfails += 1;
                if n != m.pin + 1 {
                    violation!(c, other, run, "pinfail {n} acked, model counter {}", m.pin);
                }
                m.pin = n;
            }
            Op::HotpCode(code, ctr) => {
                c.hotps += 1;
                if let Some(prev) = m.hotp_used.get(&ctr) {
                    violation!(
                        c,
                        repeated_hotp,
                        run,
                        "HOTP counter {ctr} used twice (codes {prev} and {code})"
                    );
                } else if ctr < m.hotp_next {
                    violation!(
                        c,
                        repeated_hotp,
                        run,
                        "HOTP counter went back: code for {ctr}, stored counter was {}",
                        m.hotp_next
                    );
                } else if ctr != m.hotp_next {
                    violation!(
                        c,
                        other,
                        run,
                        "HOTP counter skipped: {ctr} after {}",
                        m.hotp_next
                    );
                }
                match otp_core::hotp(OTP_SECRET, ctr, OTP_DIGITS, otp_core::Algorithm::Sha1) {
                    Ok(want) if want == code => {}
                    want => {
                        violation!(
                            c,
                            other,
                            run,
                            "HOTP code {code} for {ctr}, expected {want:?}"
                        )
                    }
                }
                if codes.insert(code.clone(), ctr).is_some() {
                    c.code_collisions += 1;
                }
                m.hotp_used.insert(ctr, code);
                m.hotp_next = m.hotp_next.max(ctr + 1);
            }
            Op::Hotp(_) => violation!(c, other, run, "unexpected child line {l:?}"),
            Op::Vault(title) => {
                if !m.vault.insert(title.clone()) {
                    violation!(c, other, run, "vault add of existing {title}");
                }
            }
            Op::VaultDel(title) => {
                if !m.vault.remove(&title) {
                    violation!(c, other, run, "vault delete of unknown {title}");
                }
                m.deleted.insert(title);
            }
        }
    }
    in_flight
}

// ------------------------------------------------------------------ checks

fn open(reg: &Registry, serial: &str) -> Res<Arc<Token>> {
    let e = ctx("find token", reg.find(serial))?;
    ctx("open token", reg.open(&e))
}

/// Checks the token against the model after a kill, then makes the model what the
/// token holds (the in-flight operation resolved one way or the other).
/// `Err` when the token cannot be read at all (counted as corrupt by the caller).
fn check(
    run: usize,
    reg: &Registry,
    serial: &str,
    m: &mut Model,
    in_flight: Option<&Op>,
    c: &mut Counts,
) -> Res<()> {
    let t = open(reg, serial)?;
    let info = ctx("info", t.info())?;

    // Wrong-PIN counter (read before our own login resets it).
    let now = info.user_pin.failures as u64;
    let allowed: Vec<u64> = match in_flight {
        Some(Op::PinFail(_)) => vec![m.pin, m.pin + 1],
        Some(Op::Login) => vec![m.pin, m.pin + 1, 0],
        _ => vec![m.pin],
    };
    if !allowed.contains(&now) {
        if now < m.pin {
            violation!(
                c,
                forgotten_pin,
                run,
                "PIN counter {now}, acked failures {}",
                m.pin
            );
        } else {
            violation!(
                c,
                other,
                run,
                "PIN counter {now}, expected one of {allowed:?}"
            );
        }
    }
    match in_flight {
        Some(Op::PinFail(_)) if now == m.pin + 1 => c.in_flight_applied += 1,
        Some(Op::PinFail(_)) => c.in_flight_absent += 1,
        _ => {}
    }
    ctx("login", t.login(UserType::User, USER_PIN.as_bytes()))?;
    m.pin = 0;

    // Data objects.
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    for id in ctx("search", t.search(&obj_search()))? {
        let a = ctx("read object", t.attributes(id))?;
        let label = a.label();
        let value = a.get(CKA_VALUE).unwrap_or(&[]);
        let Some(ver) = value_version(&label, value) else {
            violation!(c, partial, run, "object {id} ({label}) has a foreign value");
            continue;
        };
        if value != obj_value(&label, ver).as_slice()
            || a.get(CKA_OBJECT_ID) != Some(obj_oid(&label, ver).as_slice())
            || a.get_bool(CKA_PRIVATE).ok().flatten() != Some(obj_private(&label))
        {
            violation!(
                c,
                partial,
                run,
                "object {label} v{ver} is not exactly as written"
            );
        }
        if found.insert(label.clone(), ver).is_some() {
            violation!(c, partial, run, "object {label} is there twice");
        }
    }
    for (label, &ver) in &found {
        match (m.objects.get(label), in_flight) {
            (Some(&want), _) if want == ver => {
                if matches!(in_flight, Some(Op::Update(l, _)) if l == label) {
                    c.in_flight_absent += 1;
                }
                if matches!(in_flight, Some(Op::Delete(l)) if l == label) {
                    c.in_flight_absent += 1;
                }
            }
            (Some(_), Some(Op::Update(l, v))) if l == label && *v == ver => {
                c.in_flight_applied += 1
            }
            (Some(&want), _) if ver < want => {
                violation!(c, lost, run, "object {label} is at v{ver}, acked v{want}")
            }
            (Some(&want), _) => {
                violation!(
                    c,
                    partial,
                    run,
                    "object {label} is at v{ver}, acked v{want}"
                )
            }
            (None, Some(Op::Create(l))) if l == label && ver == 0 => c.in_flight_applied += 1,
            (None, _) if m.deleted.contains(label) => {
                violation!(c, lost, run, "object {label}: its acked delete is lost")
            }
            (None, _) => violation!(c, partial, run, "object {label} v{ver} was never acked"),
        }
    }
    for label in m.objects.keys() {
        if !found.contains_key(label) {
            if matches!(in_flight, Some(Op::Delete(l)) if l == label) {
                c.in_flight_applied += 1;
            } else {
                violation!(c, lost, run, "acked object {label} is missing");
            }
        }
    }
    if matches!(in_flight, Some(Op::Create(l)) if !found.contains_key(l)) {
        c.in_flight_absent += 1;
    }
    m.objects = found;

    // HOTP counter.
    let name = otp_name();
    let stored = ctx("otp list", t.otp_list())?
        .into_iter()
        .find(|o| o.name == name)
        .ok_or("the HOTP credential is gone")?
        .counter;
    let hotp_flight = matches!(in_flight, Some(Op::Hotp(_)));
    if stored < m.hotp_next {
        violation!(
            c,
            repeated_hotp,
            run,
            "stored HOTP counter {stored} is behind acked use of {}",
            m.hotp_next - 1
        );
    } else if stored > m.hotp_next + u64::from(hotp_flight) {
        violation!(
            c,
            other,
            run,
            "stored HOTP counter {stored}, expected {}",
            m.hotp_next
        );
    } else if hotp_flight {
        if stored > m.hotp_next {
            c.in_flight_applied += 1;
        } else {
            c.in_flight_absent += 1;
        }
    }
    m.hotp_next = stored;

    // Vault entries.
    let mut titles = BTreeSet::new();
    for (id, s) in ctx("vault list", t.vault_list())? {
        let e = ctx("vault get", t.vault_get(id))?;
        if !vault_entry_matches(&s.title, &e) {
            violation!(c, partial, run, "vault entry {} is not as written", s.title);
        }
        if !titles.insert(s.title.clone()) {
            violation!(c, partial, run, "vault entry {} is there twice", s.title);
        }
    }
    for title in &titles {
        if !m.vault.contains(title) {
            if matches!(in_flight, Some(Op::Vault(v)) if v == title) {
                c.in_flight_applied += 1;
            } else if m.deleted.contains(title) {
                violation!(
                    c,
                    lost,
                    run,
                    "vault entry {title}: its acked delete is lost"
                );
            } else {
                violation!(c, partial, run, "vault entry {title} was never acked");
            }
        } else if matches!(in_flight, Some(Op::VaultDel(v)) if v == title) {
            c.in_flight_absent += 1;
        }
    }
    for title in &m.vault {
        if !titles.contains(title) {
            if matches!(in_flight, Some(Op::VaultDel(v)) if v == title) {
                c.in_flight_applied += 1;
            } else {
                violation!(c, lost, run, "acked vault entry {title} is missing");
            }
        }
    }
    if matches!(in_flight, Some(Op::Vault(v)) if !titles.contains(v)) {
        c.in_flight_absent += 1;
    }
    m.vault = titles;

    ctx("logout", t.logout())?;
    Ok(())
}

// ------------------------------------------------------------------ runs

fn sigkill(child: &mut Child) -> Res<std::process::ExitStatus> {
    // `Child::kill` sends SIGKILL on Unix, to our own not-yet-reaped child.
    child
        .kill()
        .map_err(|e| format!("kill({}): {e}", child.id()))?;
    child.wait().map_err(|e| format!("wait: {e}"))
}

/// One run: spawn, wait, kill; returns the child's complete stdout lines and
/// whether the kill came before `ready`.
fn one_run(
    o: &Opts,
    conf: &Path,
    serial: &str,
    run: usize,
    rng: &mut StdRng,
    c: &mut Counts,
) -> Res<(Vec<String>, bool)> {
    let mut child = Command::new(&o.child)
        .args([serial, &format!("r{run}"), &rng.gen::<u64>().to_string()])
        .env("VTOKEN_CONF", conf)
        .env_remove("VTOKEN_LOG")
        .env_remove("VTOKEN_PROMPT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", o.child.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut s = String::new();
            loop {
                s.clear();
                match r.read_line(&mut s) {
                    Ok(n) if n > 0 && s.ends_with('\n') => {
                        s.pop();
                        if s == "ready" {
                            let _ = tx.send(());
                        }
                        lines
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(s.clone());
                    }
                    // End of file, or a last line cut off by the kill.
                    _ => break,
                }
            }
        })
    };
    let early = rng.gen_ratio(1, 10);
    if early {
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..8_000)));
    } else {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => std::thread::sleep(Duration::from_micros(rng.gen_range(2_000..=60_000))),
            Err(_) => {
                let _ = sigkill(&mut child);
                let _ = reader.join();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                violation!(c, other, run, "child never got ready: {}", err.trim());
                let v = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
                return Ok((v, true));
            }
        }
    }
    let status = sigkill(&mut child)?;
    let _ = reader.join();
    if status.signal() != Some(libc::SIGKILL) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        violation!(
            c,
            other,
            run,
            "child ended by itself ({status}): {}",
            err.trim()
        );
    }
    let v = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let was_early = !v.iter().any(|l| l == "ready");
    Ok((v, was_early))
}

fn setup(dir: &Path) -> Res<(PathBuf, Registry, String)> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let conf = dir.join("vtoken.toml");
    let text = format!(
        "token_dir = \"{}\"\nkdf = \"test\"\n[pin]\nuser_max_tries = 1000000\n",
        dir.join("tokens").display()
    );
    std::fs::write(&conf, text).map_err(|e| format!("write config: {e}"))?;
    let config = ctx("config", Config::from_file(&conf))?;
    let reg = Registry::new(config);
    let e = ctx("create token", reg.create("crash", SO_PIN.as_bytes(), None))?;
    let t = ctx("open", reg.open(&e))?;
    ctx("SO login", t.login(UserType::So, SO_PIN.as_bytes()))?;
    ctx("init PIN", t.init_pin(USER_PIN.as_bytes()))?;
    ctx("SO logout", t.logout())?;
    ctx("login", t.login(UserType::User, USER_PIN.as_bytes()))?;
    let mut uri = otp_core::OtpUri::new_hotp(Some(OTP_ISSUER), OTP_ACCOUNT, OTP_SECRET.to_vec(), 0);
    uri.digits = OTP_DIGITS;
    ctx("otp add", t.otp_add(&uri, false))?;
    ctx("vault", t.vault_require())?;
    ctx("logout", t.logout())?;
    Ok((conf, reg, e.serial))
}

fn main() {
    let o = opts();
    let tmp;
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    eprintln!(
        "crash-harness: seed {} (repeat with --seed {}), dir {}",
        o.seed,
        o.seed,
        dir.display()
    );
    let (conf, reg, serial) = match setup(&dir) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("crash-harness: setup: {e}");
            std::process::exit(2);
        }
    };
    let mut rng = StdRng::seed_from_u64(o.seed);
    let mut m = Model::default();
    let mut c = Counts::default();
    let start = Instant::now();
    for run in 0..o.kills {
        let (lines, early) = match one_run(&o, &conf, &serial, run, &mut rng, &mut c) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("crash-harness: run {run}: {e}");
                std::process::exit(2);
            }
        };
        c.kills += 1;
        c.early += usize::from(early);
        let in_flight = apply_acks(run, &lines, &mut m, &mut c);
        if let Err(e) = check(run, &reg, &serial, &mut m, in_flight.as_ref(), &mut c) {
            violation!(
                c,
                corrupt,
                run,
                "the token cannot be read after the kill: {e}"
            );
            break;
        }
        if (run + 1) % 100 == 0 {
            eprintln!(
                "crash-harness: {} kills, {} acked ops, {} violations, {} objects, {} vault \
                 entries, HOTP counter {}, {:.1?}",
                run + 1,
                c.acked,
                c.violations(),
                m.objects.len(),
                m.vault.len(),
                m.hotp_next,
                start.elapsed()
            );
        }
    }
    eprintln!(
        "crash-harness: {:.1?}; kills before ready {}; in-flight ops found applied {} / \
         absent {}; acked wrong PINs {}; acked HOTP codes {}; equal codes for distinct \
         counters (chance) {}",
        start.elapsed(),
        c.early,
        c.in_flight_applied,
        c.in_flight_absent,
        c.pinfails,
        c.hotps,
        c.code_collisions
    );
    println!(
        "kills={} corrupt={} lost={} forgotten_pin_failures={} repeated_hotp={} partial={} \
         other={} acked_ops={}",
        c.kills, c.corrupt, c.lost, c.forgotten_pin, c.repeated_hotp, c.partial, c.other, c.acked
    );
    if c.violations() > 0 || c.kills < o.kills {
        std::process::exit(1);
    }
}
