//! `vt-crash`: the workload `crash-harness` kills with `SIGKILL` at random moments.
//!
//! ```text
//! VTOKEN_CONF=... vt-crash SERIAL RUN SEED
//! ```
//!
//! It opens the token through `vault-core`, logs in and then runs a random mix of
//! operations until it is killed: data-object create / update / delete, wrong user
//! PINs (at login and as a context-specific re-verification) and right ones, HOTP
//! codes, vault entry adds and deletes. The object contents come from
//! `crash_model.rs`, shared with the harness.
//!
//! Protocol on stdout, each line flushed at once:
//! - `> OP ARGS` before an operation starts (the operation "in flight");
//! - `OP ARGS` only after it has returned `Ok` (an acknowledgement);
//! - `ready` once the start-up (login, scan of the token) is done.
//!
//! Acknowledgements: `login`, `logout`, `create LABEL`, `update LABEL VER`,
//! `delete LABEL`, `pinfail N` (a wrong PIN returned `PinIncorrect`; `N` = wrong
//! PINs since the last successful login, which is what the persisted counter must
//! hold), `hotp CODE COUNTER`, `vault TITLE`, `vaultdel TITLE`.
//!
//! Any unexpected error ends the program with status 2 and a message on stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vault_core::config::Config;
use vault_core::pkcs11::*;
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::session::SessionRef;
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::Error;

#[path = "../crash_model.rs"]
mod crash_model;
use crash_model::*;

type Res<T> = std::result::Result<T, String>;

/// Confirms every request: this program tests the store, not the prompt.
struct AlwaysConfirm;

impl Prompt for AlwaysConfirm {
    fn confirm(&self, _req: &Request) -> vault_core::Result<Answer> {
        Ok(Answer::Confirmed)
    }
    fn name(&self) -> &str {
        "vt-crash-confirm"
    }
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn ctx<T>(what: &str, r: vault_core::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e} ({e:?})"))
}

struct Work {
    t: Arc<Token>,
    sid: Option<SessionRef>,
    rng: StdRng,
    run: String,
    seq: u64,
    /// label -> (handle, version)
    objects: BTreeMap<String, (u64, u64)>,
    /// title -> id
    vault: BTreeMap<String, u64>,
    hotp_next: u64,
    /// Wrong PINs since the last successful login.
    pin_failures: u64,
    logged_in: bool,
    /// Negative control: acknowledge before doing (the harness must then fail).
    early_ack: bool,
}

impl Work {
    /// The session opened after login (set before any operation runs).
    fn sid(&self) -> &SessionRef {
        self.sid.as_ref().expect("session opened")
    }

    /// Announces the operation about to start (and, as a negative control with
    /// `VT_CRASH_EARLY_ACK=1`, acknowledges it before it is done).
    fn begin(&self, op: &str) {
        out(&format!("> {op}"));
        if self.early_ack {
            out(op);
        }
    }

    /// Acknowledges an operation that has returned `Ok`.
    fn ack(&self, op: &str) {
        if !self.early_ack {
            out(op);
        }
    }

    fn login(&mut self) -> Res<()> {
        self.begin("login");
        ctx("login", self.t.login(UserType::User, USER_PIN.as_bytes()))?;
        self.pin_failures = 0;
        self.logged_in = true;
        self.ack("login");
        Ok(())
    }

    fn logout(&mut self) -> Res<()> {
        self.begin("logout");
        ctx("logout", self.t.logout())?;
        self.logged_in = false;
        self.ack("logout");
        Ok(())
    }

    fn wrong_pin(&mut self) -> Res<()> {
        let n = self.pin_failures + 1;
        self.begin(&format!("pinfail {n}"));
        let r = if self.logged_in {
            self.t.verify_user_pin(WRONG_PIN.as_bytes())
        } else {
            self.t.login(UserType::User, WRONG_PIN.as_bytes())
        };
        match r {
            Err(Error::PinIncorrect) => {
                self.pin_failures = n;
                self.ack(&format!("pinfail {n}"));
                Ok(())
            }
            other => Err(format!("wrong PIN: expected PinIncorrect, got {other:?}")),
        }
    }

    /// A right PIN as a context-specific re-verification (resets the counter).
    fn verify(&mut self) -> Res<()> {
        self.begin("login");
        ctx("verify", self.t.verify_user_pin(USER_PIN.as_bytes()))?;
        self.pin_failures = 0;
        self.ack("login");
        Ok(())
    }

    fn scan(&mut self) -> Res<()> {
        for id in ctx("search", self.t.search(&obj_search()))? {
            let a = ctx("attributes", self.t.attributes(id))?;
            let label = a.label();
            let ver = value_version(&label, a.get(CKA_VALUE).unwrap_or(&[]))
                .ok_or_else(|| format!("object {label} has a foreign value"))?;
            self.objects.insert(label, (id, ver));
        }
        for (id, s) in ctx("vault list", self.t.vault_list())? {
            self.vault.insert(s.title.clone(), id);
        }
        let name = otp_name();
        self.hotp_next = ctx("otp list", self.t.otp_list())?
            .into_iter()
            .find(|o| o.name == name)
            .ok_or("no HOTP credential")?
            .counter;
        Ok(())
    }

    fn pick<T: Clone>(&mut self, m: &BTreeMap<String, T>) -> (String, T) {
        let i = self.rng.gen_range(0..m.len());
        let (k, v) = m.iter().nth(i).expect("index in range");
        (k.clone(), v.clone())
    }

    fn create(&mut self) -> Res<()> {
        self.seq += 1;
        let label = format!("{}-{}", self.run, self.seq);
        self.begin(&format!("create {label}"));
        let id = ctx(
            "create",
            self.t.create_object(self.sid(), &obj_template(&label)),
        )?;
        self.objects.insert(label.clone(), (id, 0));
        self.ack(&format!("create {label}"));
        Ok(())
    }

    fn update(&mut self) -> Res<()> {
        let objects = std::mem::take(&mut self.objects);
        let (label, (id, ver)) = self.pick(&objects);
        self.objects = objects;
        let ver = ver + 1;
        self.begin(&format!("update {label} {ver}"));
        ctx(
            "update",
            self.t
                .set_attributes(self.sid(), id, &obj_update(&label, ver)),
        )?;
        self.objects.insert(label.clone(), (id, ver));
        self.ack(&format!("update {label} {ver}"));
        Ok(())
    }

    fn delete(&mut self) -> Res<()> {
        let objects = std::mem::take(&mut self.objects);
        let (label, (id, _)) = self.pick(&objects);
        self.objects = objects;
        self.begin(&format!("delete {label}"));
        ctx("delete", self.t.destroy_object(self.sid(), id))?;
        self.objects.remove(&label);
        self.ack(&format!("delete {label}"));
        Ok(())
    }

    fn hotp(&mut self) -> Res<()> {
        let c = self.hotp_next;
        out(&format!("> hotp {c}"));
        let code = ctx("otp code", self.t.otp_code(&otp_name(), 0))?;
        self.hotp_next = c + 1;
        out(&format!("hotp {code} {c}"));
        Ok(())
    }

    fn vault_add(&mut self) -> Res<()> {
        self.seq += 1;
        let title = format!("v{}-{}", self.run, self.seq);
        self.begin(&format!("vault {title}"));
        let id = ctx("vault add", self.t.vault_add(&vault_entry(&title)))?;
        self.vault.insert(title.clone(), id);
        self.ack(&format!("vault {title}"));
        Ok(())
    }

    fn vault_delete(&mut self) -> Res<()> {
        let vault = std::mem::take(&mut self.vault);
        let (title, id) = self.pick(&vault);
        self.vault = vault;
        self.begin(&format!("vaultdel {title}"));
        ctx("vault delete", self.t.vault_delete(id))?;
        self.vault.remove(&title);
        self.ack(&format!("vaultdel {title}"));
        Ok(())
    }

    fn step(&mut self) -> Res<()> {
        if !self.logged_in {
            // After a burst of wrong PINs: more of them, or the right one.
            return if self.rng.gen_bool(0.4) {
                self.wrong_pin()
            } else {
                self.login()
            };
        }
        let n = self.objects.len();
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=24 if n < 60 => self.create(),
            0..=24 => self.delete(),
            25..=49 if n > 0 => self.update(),
            25..=49 => self.create(),
            50..=61 if n > 0 => self.delete(),
            50..=61 => self.create(),
            62..=69 => self.wrong_pin(),
            70..=72 => {
                // Log out, then wrong PINs at login until `step` logs in again.
                self.logout()?;
                self.wrong_pin()
            }
            73..=77 => self.verify(),
            78..=80 => {
                self.logout()?;
                self.login()
            }
            81..=91 => self.hotp(),
            _ if self.vault.len() < 25 => self.vault_add(),
            _ => self.vault_delete(),
        }
    }
}

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [serial, run, seed] = &args[..] else {
        return Err("usage: vt-crash SERIAL RUN SEED".into());
    };
    let seed: u64 = seed.parse().map_err(|e| format!("SEED: {e}"))?;
    let reg = Registry::new(ctx("config", Config::load())?);
    let entry = ctx("find token", reg.find(serial))?;
    let t = ctx("open token", reg.open(&entry))?;
    t.set_prompt(Arc::new(AlwaysConfirm));
    let mut w = Work {
        sid: None,
        t: t.clone(),
        rng: StdRng::seed_from_u64(seed),
        run: run.clone(),
        seq: 0,
        objects: BTreeMap::new(),
        vault: BTreeMap::new(),
        hotp_next: 0,
        pin_failures: 0,
        logged_in: false,
        early_ack: std::env::var_os("VT_CRASH_EARLY_ACK").is_some_and(|v| v == "1"),
    };
    w.login()?;
    w.sid = Some(ctx("open session", t.open_session(true))?);
    w.scan()?;
    out("ready");
    loop {
        w.step()?;
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("vt-crash: {e}");
        std::process::exit(2);
    }
}
