//! `vtoken`: the command-line administration tool for vtoken software tokens
//! (SPEC T6). It drives a token through `vault-core` exactly as a PKCS#11 client
//! would (sessions, logins, templates), in the manner of `softhsm2-util` and `ykman`.
//!
//! Output contract: results on stdout (text, or JSON with `--json`), diagnostics on
//! stderr, failures as one `error: …` line with exit status 1; secrets are never
//! printed.

mod cli;
mod context;
mod device;
mod enroll;
mod error;
mod gate;
mod keys;
mod objects;
mod otp;
mod output;
mod pin;
mod prompt;
mod sign;
mod tokens;
mod vault;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, KeyCommand, ObjectsCommand};
use context::Ctx;
use error::Result;
use output::outln;

fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx::load(cli.token.clone())?;
    let json = cli.json;
    match &cli.command {
        Command::Init {
            label,
            so,
            user,
            vault,
            device,
        } => tokens::init(&ctx, json, label, so, user, vault, device)?,
        Command::List => tokens::list(&ctx, json)?,
        Command::Info => tokens::info(&ctx, json)?,
        Command::Pin(p) => tokens::pin(&ctx, p)?,
        Command::Key(KeyCommand::Generate {
            kind,
            label,
            id,
            extractable,
            gate,
            user,
        }) => keys::generate(&ctx, json, *kind, label, id, *extractable, *gate, user)?,
        Command::Import {
            file,
            label,
            id,
            gate,
            user,
        } => keys::import(&ctx, json, file, label, id, *gate, user)?,
        Command::Export {
            select,
            kind,
            der,
            out,
            user,
        } => keys::export(&ctx, json, select, *kind, *der, out.as_deref(), user)?,
        Command::Objects(ObjectsCommand::List { user }) => keys::list(&ctx, json, user)?,
        Command::Delete {
            select,
            token_file,
            force,
            user,
        } => {
            if *token_file {
                tokens::delete_token(&ctx, json, *force)?
            } else {
                keys::delete(&ctx, json, select, *force, user)?
            }
        }
        Command::Otp(c) => otp::run(&ctx, json, c)?,
        Command::Vault(c) => vault::run(&ctx, json, c)?,
        Command::Gate(c) => gate::run(&ctx, json, c)?,
        Command::Reattach(r) => gate::reattach(&ctx, json, r)?,
        Command::Prompt(c) => prompt::run(&ctx, json, c)?,
        Command::Ca(c) => device::ca(&ctx, json, c)?,
        Command::Device(c) => device::device(&ctx, json, c)?,
        Command::Backup(b) => device::backup(&ctx, json, b)?,
        Command::Enroll(args) => return enroll::run(&ctx, json, args),
        Command::Sign {
            select,
            mechanism,
            input,
            out,
            der,
            user,
        } => sign::sign(&ctx, select, mechanism, input, out.as_deref(), *der, user)?,
        Command::Verify {
            select,
            mechanism,
            input,
            signature,
            der,
            user,
        } => {
            let valid = sign::verify(&ctx, select, mechanism, input, signature, *der, user)?;
            if json {
                output::print_json(&serde_json::json!({ "valid": valid }))?;
            }
            if !valid {
                eprintln!("error: signature invalid");
                return Ok(ExitCode::FAILURE);
            }
            if !json {
                outln!("signature valid");
            }
        }
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
    // SAFETY: setrlimit and prctl with these arguments only change this
    // process's own limits and flags; no pointers outlive the calls.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
            eprintln!(
                "warning: cannot turn core dumps off: {}",
                std::io::Error::last_os_error()
            );
        }
        #[cfg(target_os = "linux")]
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            eprintln!(
                "warning: cannot mark the process non-dumpable: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn main() -> ExitCode {
    protect_process();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
