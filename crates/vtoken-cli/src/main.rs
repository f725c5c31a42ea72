//! `vtoken`: the command-line administration tool for vtoken software tokens
//! (SPEC T6). It drives a token through `vault-core` exactly as a PKCS#11 client
//! would (sessions, logins, templates), in the manner of `softhsm2-util` and `ykman`.
//!
//! Output contract: results on stdout (text, or JSON with `--json`), diagnostics on
//! stderr, failures as one `error: …` line with exit status 1; secrets are never
//! printed.

mod args;
mod cli;
mod cmd;
mod context;
mod error;
mod gated;
mod identity;
mod output;
mod pin;
mod select;

#[cfg(test)]
mod architecture;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use context::Ctx;
use error::Result;

/// Parses nothing and prints nothing itself: hands each command to its module.
fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Completions(a) = &cli.command {
        cmd::completions::run(a, <Cli as clap::CommandFactory>::command())?;
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = Ctx::load(cli.token.clone())?;
    pin::set_new_pin_len(ctx.config().pin.min_len, ctx.config().pin.max_len);
    let json = cli.json;
    match &cli.command {
        Command::Init(a) => cmd::init::run(&ctx, json, a)?,
        Command::List => cmd::tokens::list(&ctx, json)?,
        Command::Info(a) => cmd::tokens::info(&ctx, json, a)?,
        Command::Pin(c) => cmd::pin::run(&ctx, json, c)?,
        Command::Key(c) => cmd::keys::run(&ctx, json, c)?,
        Command::Import(a) => cmd::keys::import(&ctx, json, a)?,
        Command::Export(a) => cmd::keys::export(&ctx, json, a)?,
        Command::Objects(c) => cmd::objects::run(&ctx, json, c)?,
        Command::Delete(a) => cmd::delete::run(&ctx, json, a)?,
        Command::Otp(c) => cmd::otp::run(&ctx, json, c)?,
        Command::Vault(c) => cmd::vault::run(&ctx, json, c)?,
        Command::Wallet(c) => cmd::wallet::run(&ctx, json, c)?,
        Command::Card(c) => cmd::card::run(&ctx, json, c)?,
        Command::Gate(c) => cmd::gate::run(&ctx, json, c)?,
        Command::Reattach(r) => cmd::gate::reattach(&ctx, json, r)?,
        Command::Prompt(c) => cmd::prompt::run(&ctx, json, c)?,
        Command::Ca(c) => cmd::device::ca(&ctx, json, c)?,
        Command::Device(c) => cmd::device::device(&ctx, json, c)?,
        Command::Rks(c) => cmd::rks::run(&ctx, json, c)?,
        Command::Backup(b) => cmd::backup::run(&ctx, json, b)?,
        Command::Enroll(a) => return cmd::enroll::run(&ctx, json, a),
        Command::Sign(a) => cmd::sign::sign(&ctx, a)?,
        Command::Verify(a) => return cmd::sign::verify(&ctx, json, a),
        Command::Completions(_) => unreachable!("handled before the configuration is read"),
    }
    Ok(ExitCode::SUCCESS)
}

/// No core dump of this process, and no ptrace/`/proc/PID/mem` access by other
/// processes of the user that are not its parent-debuggers (`PR_SET_DUMPABLE` 0
/// also makes `/proc/PID/*` root-owned): the CLI holds PINs, master keys and vault
/// passwords in memory. Best effort: a failure is reported on stderr, not fatal.
/// (The PKCS#11 module does not do this: it runs inside its host, e.g. Firefox,
/// whose own choice it must not change.)
fn protect_process() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, none) {
        eprintln!("warning: cannot turn core dumps off: {e}");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("warning: cannot mark the process non-dumpable: {e}");
    }
}

/// `vtoken a b` for the subcommand path of `m` (`["vault", "export-csv"]`).
fn leaf_path(m: &clap::ArgMatches) -> Vec<String> {
    let mut path = Vec::new();
    let mut cur = m;
    while let Some((name, sub)) = cur.subcommand() {
        path.push(name.to_string());
        cur = sub;
    }
    path
}

/// `--json` given to a command it means nothing for ([`cli::JSON_REFUSED`]): the
/// error, before anything runs. Read leniently (missing arguments do not matter
/// here: the refusal comes first); help requests are left to clap.
fn json_refusal() -> Option<String> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return None;
    }
    let m = <Cli as clap::CommandFactory>::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    if !m.get_flag("json") {
        return None;
    }
    let path = leaf_path(&m).join(" ");
    cli::JSON_REFUSED
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(p, why)| {
            format!("--json is not available for `vtoken {p}`: {why}; run it without --json")
        })
}

fn main() -> ExitCode {
    protect_process();
    if let Some(e) = json_refusal() {
        eprintln!("{}", serde_json::json!({ "error": e }));
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if json {
                // Under --json a failure is one JSON object on stderr, for scripts.
                eprintln!("{}", serde_json::json!({ "error": e.message }));
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
