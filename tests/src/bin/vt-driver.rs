//! `vt-driver`: a small program that drives one token through `vault-core`, for the
//! process-level reliability tests (kill -9, concurrent writers, persisted PIN
//! counters). It reads the configuration from `VTOKEN_CONF`.
//!
//! Every line it prints on stdout reports an operation that has already returned,
//! and is flushed at once, so a test that reads a line knows the operation is done
//! (for writes: committed).
//!
//! ```text
//! vt-driver init LABEL SO_PIN USER_PIN        -> "serial S"
//! vt-driver create-objects SERIAL PIN N TAG [--sync]
//!     -> "ack TAG-i" per committed object, then "done N"; with --sync it first
//!        prints "ready" and waits for a line on stdin, and after "done" waits for
//!        another line, then prints "seen K" (data objects it can see)
//! vt-driver login-loop SERIAL PIN N [--step]  -> "fail k ERR" per failed login,
//!        "ok k" on success (then stops); with --step it waits for a stdin line
//!        before each attempt and stops at end of input
//! vt-driver login SERIAL PIN                  -> "ok" or "fail ERR"
//! vt-driver unlock SERIAL SO_PIN NEW_USER_PIN -> "ok" or "fail ERR"
//! vt-driver count SERIAL PIN                  -> "count N", then "label L" per object
//! vt-driver info SERIAL                       -> token info as JSON
//! ```
//! Exit status 0 on success, 2 on an unexpected error (message on stderr), 3 when an
//! object's value does not match its label.

use std::io::{BufRead, Write};
use std::sync::Arc;

use vault_core::config::Config;
use vault_core::pkcs11::*;
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::{Attributes, Error};
use vtoken_tests::{data_label, data_template, data_value};

type Res<T> = std::result::Result<T, String>;

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    // A closed pipe (the test stopped reading) is not this program's failure.
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn wait_stdin_line() -> bool {
    let mut s = String::new();
    matches!(std::io::stdin().lock().read_line(&mut s), Ok(n) if n > 0)
}

/// The variant name of an error (`PinIncorrect`, `Corrupt`, ...).
fn err_name(e: &Error) -> String {
    let d = format!("{e:?}");
    d.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

fn ctx<T>(what: &str, r: vault_core::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e} ({})", err_name(&e)))
}

fn registry() -> Res<Registry> {
    Ok(Registry::new(ctx("config", Config::load())?))
}

fn open(serial: &str) -> Res<Arc<Token>> {
    let reg = registry()?;
    let e = ctx("find token", reg.find(serial))?;
    ctx("open token", reg.open(&e))
}

fn arg<'a>(args: &'a [String], i: usize, name: &str) -> Res<&'a str> {
    args.get(i)
        .map(|s| s.as_str())
        .ok_or_else(|| format!("missing argument {name}"))
}

fn num(args: &[String], i: usize, name: &str) -> Res<usize> {
    arg(args, i, name)?
        .parse()
        .map_err(|e| format!("{name}: {e}"))
}

fn data_objects(t: &Token) -> Res<Vec<u64>> {
    let mut tpl = Attributes::new();
    tpl.set_ulong(CKA_CLASS, CKO_DATA);
    tpl.set_bool(CKA_TOKEN, true);
    ctx("search", t.search(&tpl))
}

fn init(args: &[String]) -> Res<()> {
    let (label, so, user) = (
        arg(args, 0, "LABEL")?,
        arg(args, 1, "SO_PIN")?,
        arg(args, 2, "USER_PIN")?,
    );
    let reg = registry()?;
    let e = ctx("create", reg.create(label, so.as_bytes(), None))?;
    let t = ctx("open", reg.open(&e))?;
    ctx("SO login", t.login(UserType::So, so.as_bytes()))?;
    ctx("init PIN", t.init_pin(user.as_bytes()))?;
    ctx("logout", t.logout())?;
    out(&format!("serial {}", e.serial));
    Ok(())
}

fn create_objects(args: &[String]) -> Res<()> {
    let (serial, pin) = (arg(args, 0, "SERIAL")?, arg(args, 1, "PIN")?);
    let n = num(args, 2, "N")?;
    let tag = arg(args, 3, "TAG")?;
    let sync = args.iter().any(|a| a == "--sync");
    let t = open(serial)?;
    ctx("login", t.login(UserType::User, pin.as_bytes()))?;
    let sid = &ctx("open session", t.open_session(true))?;
    if sync {
        out("ready");
        if !wait_stdin_line() {
            return Err("stdin closed before go".into());
        }
    }
    for i in 0..n {
        let label = data_label(tag, i);
        ctx(
            &format!("create {label}"),
            t.create_object(sid, &data_template(&label, true)),
        )?;
        out(&format!("ack {label}"));
    }
    out(&format!("done {n}"));
    if sync {
        if !wait_stdin_line() {
            return Err("stdin closed before count".into());
        }
        let ids = data_objects(&t)?;
        out(&format!("seen {}", ids.len()));
    }
    Ok(())
}

fn login_loop(args: &[String]) -> Res<()> {
    let (serial, pin) = (arg(args, 0, "SERIAL")?, arg(args, 1, "PIN")?);
    let n = num(args, 2, "N")?;
    let step = args.iter().any(|a| a == "--step");
    let t = open(serial)?;
    for k in 1..=n {
        if step && !wait_stdin_line() {
            break;
        }
        match t.login(UserType::User, pin.as_bytes()) {
            Ok(()) => {
                out(&format!("ok {k}"));
                ctx("logout", t.logout())?;
                return Ok(());
            }
            Err(e @ (Error::PinIncorrect | Error::PinLocked)) => {
                out(&format!("fail {k} {}", err_name(&e)))
            }
            Err(e) => return Err(format!("login {k}: {e} ({})", err_name(&e))),
        }
    }
    Ok(())
}

fn login(args: &[String]) -> Res<()> {
    let (serial, pin) = (arg(args, 0, "SERIAL")?, arg(args, 1, "PIN")?);
    let t = open(serial)?;
    match t.login(UserType::User, pin.as_bytes()) {
        Ok(()) => {
            out("ok");
            ctx("logout", t.logout())
        }
        Err(e) => {
            out(&format!("fail {}", err_name(&e)));
            Ok(())
        }
    }
}

fn unlock(args: &[String]) -> Res<()> {
    let (serial, so, new) = (
        arg(args, 0, "SERIAL")?,
        arg(args, 1, "SO_PIN")?,
        arg(args, 2, "NEW_PIN")?,
    );
    let t = open(serial)?;
    match t.unlock_user(so.as_bytes(), new.as_bytes()) {
        Ok(()) => out("ok"),
        Err(e) => out(&format!("fail {}", err_name(&e))),
    }
    Ok(())
}

fn count(args: &[String]) -> Res<()> {
    let (serial, pin) = (arg(args, 0, "SERIAL")?, arg(args, 1, "PIN")?);
    let t = open(serial)?;
    ctx("login", t.login(UserType::User, pin.as_bytes()))?;
    let ids = data_objects(&t)?;
    let mut labels = Vec::with_capacity(ids.len());
    for id in &ids {
        let a = ctx("attributes", t.attributes(*id))?;
        let label = a.label();
        if a.get(CKA_VALUE) != Some(&data_value(&label)[..]) {
            eprintln!("vt-driver: object {id} ({label}) has a wrong value");
            std::process::exit(3);
        }
        labels.push(label);
    }
    out(&format!("count {}", ids.len()));
    for l in labels {
        out(&format!("label {l}"));
    }
    Ok(())
}

fn info(args: &[String]) -> Res<()> {
    let t = open(arg(args, 0, "SERIAL")?)?;
    let i = ctx("info", t.info())?;
    out(&serde_json::to_string(&i).map_err(|e| e.to_string())?);
    Ok(())
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, args)) = all.split_first() else {
        eprintln!("usage: vt-driver init|create-objects|login-loop|login|unlock|count|info ARGS");
        std::process::exit(2);
    };
    let r = match cmd.as_str() {
        "init" => init(args),
        "create-objects" => create_objects(args),
        "login-loop" => login_loop(args),
        "login" => login(args),
        "unlock" => unlock(args),
        "count" => count(args),
        "info" => info(args),
        other => Err(format!("unknown command {other}")),
    };
    if let Err(e) = r {
        eprintln!("vt-driver {cmd}: {e}");
        std::process::exit(2);
    }
}
