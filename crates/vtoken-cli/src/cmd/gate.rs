//! `vtoken gate …` and `vtoken reattach`: the picture-verification gate (SPEC C1–C6).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use vault_core::gate::{GatePolicy, OpClass};

use crate::args::{SoPin, UserPin};
use crate::context::{pin_error, Ctx};
use crate::error::{bail, CliError, Result};
use crate::gated::picture_check;
use crate::output::{outln, print_json};
use crate::pin;

/// `vtoken reattach` / `vtoken gate reattach`.
#[derive(Debug, Args, Clone, Default)]
pub struct ReattachArgs {
    #[command(flatten)]
    pub so: SoPin,
    /// Not accepted: the user PIN cannot clear a gate lock (named only to say so).
    #[arg(long, hide = true, value_name = "PIN")]
    pub pin: Option<String>,
    /// Not accepted: see --pin.
    #[arg(long, hide = true, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Show the gate: state (initial, pin-verified, locked), policy and chances left.
    Status,
    /// Change the gate policy (needs the user PIN; weakening it also needs a picture
    /// check; with --so, the SO PIN sets any policy without a picture).
    #[command(after_help = "\
High-privilege requests must pass a picture check after the PIN: a key flagged at
creation (`vtoken key generate --gate`, `vtoken import --gate`) for any private
use, and every key for the operation classes listed here.

Classes: sign, decrypt, unwrap, derive, vault-password, otp-code, key-export
(or `none`). Options not given keep their current value.

Making the policy weaker (--off, dropping a class, more chances, a longer
lifetime, a shorter string) asks for a picture check first, so a program that
knows the PIN cannot switch the gate off. With --so the security officer sets
any policy with the SO PIN and no picture (a user who cannot pass the picture is
never trapped).

Examples:
  vtoken gate configure --classes sign,decrypt
  vtoken gate configure --chances 3 --lifetime 5
  vtoken gate configure --off
  vtoken gate configure --so --off --so-pin-file so-pin.txt")]
    Configure {
        /// Gated operation classes, comma-separated (replaces the list; `none` clears it).
        #[arg(long, value_name = "LIST")]
        classes: Option<String>,
        /// Failed pictures in a row before the token locks (1-10).
        #[arg(long, value_name = "N")]
        chances: Option<u32>,
        /// Seconds the user has to answer a picture (1-120).
        #[arg(long, value_name = "SECS")]
        lifetime: Option<f64>,
        /// Extra seconds allowed for transport (0-10).
        #[arg(long, value_name = "SECS")]
        transport: Option<f64>,
        /// Characters per picture (4-12).
        #[arg(long, value_name = "N")]
        length: Option<u32>,
        /// Characters pictures are drawn from (letters and digits, at least 10).
        #[arg(long, value_name = "CHARS")]
        alphabet: Option<String>,
        /// Switch the gate off (nothing is gated, not even flagged keys).
        #[arg(long, conflicts_with = "on")]
        off: bool,
        /// Switch the gate back on.
        #[arg(long)]
        on: bool,
        /// Act as the security officer: the SO PIN sets any policy, no picture.
        #[arg(long)]
        so: bool,
        #[command(flatten)]
        user: UserPin,
        #[command(flatten)]
        so_pin: SoPin,
    },
    /// Clear the lock after too many failed picture checks with the SO PIN (same as
    /// `vtoken reattach`).
    Reattach(ReattachArgs),
}

/// `vtoken gate …`.
pub fn run(ctx: &Ctx, json: bool, cmd: &GateCommand) -> Result<()> {
    match cmd {
        GateCommand::Status => status(ctx, json),
        GateCommand::Configure {
            classes,
            chances,
            lifetime,
            transport,
            length,
            alphabet,
            off,
            on,
            so,
            user,
            so_pin,
        } => {
            let open = ctx.open()?;
            let so_pin = if *so { Some(pin::so(so_pin)?) } else { None };
            if so_pin.is_none() {
                open.login(vault_core::token::UserType::User, &pin::user(user)?)?;
            }
            let mut p = open.token.gate_policy()?;
            if let Some(list) = classes {
                p.classes = parse_classes(list)?;
            }
            if let Some(n) = chances {
                p.chances = *n;
            }
            if let Some(s) = lifetime {
                p.lifetime_ms = secs_to_ms(*s, "--lifetime")?;
            }
            if let Some(s) = transport {
                p.transport_ms = secs_to_ms(*s, "--transport")?;
            }
            if let Some(n) = length {
                p.length = *n;
            }
            if let Some(a) = alphabet {
                p.alphabet = a.clone();
            }
            if *off {
                p.enabled = false;
            }
            if *on {
                p.enabled = true;
            }
            let p = p.validated()?;
            if let Some(so_pin) = so_pin {
                open.token
                    .gate_configure_so(so_pin.as_bytes(), p)
                    .map_err(|e| pin_error(&open.token, vault_core::token::UserType::So, e))?;
                drop(open);
                return status(ctx, json);
            }
            if open.token.gate_policy()?.weakened_by(&p) {
                eprintln!("This change weakens the gate: a picture check comes first.");
                picture_check(&open, OpClass::Configure, "weaken the picture-check policy")?;
            }
            open.token.gate_configure(p)?;
            drop(open);
            status(ctx, json)
        }
        GateCommand::Reattach(r) => reattach(ctx, json, r),
    }
}

fn secs_to_ms(s: f64, flag: &str) -> Result<u32> {
    if !s.is_finite() || !(0.0..=3600.0).contains(&s) {
        bail!("{flag}: a number of seconds");
    }
    Ok((s * 1000.0).round() as u32)
}

fn parse_classes(list: &str) -> Result<Vec<OpClass>> {
    if list.trim().eq_ignore_ascii_case("none") || list.trim().is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|c| OpClass::parse(c).map_err(CliError::from))
        .collect()
}

fn policy_json(p: &GatePolicy) -> serde_json::Value {
    json!({
        "enabled": p.enabled,
        "classes": p.classes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "chances": p.chances,
        "lifetime_ms": p.lifetime_ms,
        "transport_ms": p.transport_ms,
        "length": p.length,
        "alphabet": p.alphabet,
    })
}

/// `vtoken gate status`.
pub fn status(ctx: &Ctx, json: bool) -> Result<()> {
    let entry = ctx.entry()?;
    let token = ctx.registry.open(&entry)?;
    let s = token.gate_status()?;
    if json {
        return print_json(&json!({
            "state": s.state.as_str(),
            "locked": s.locked,
            "locked_at": s.locked_at,
            "failures": s.failures,
            "chances_left": s.chances_left,
            "policy": policy_json(&s.policy),
        }));
    }
    let p = &s.policy;
    outln!("Token '{}' ({})", entry.label, entry.serial);
    outln!("  state:          {}", s.state);
    if s.locked {
        outln!("  LOCKED after too many failed picture checks: this machine may be compromised.");
        outln!("  Check it, then run `vtoken reattach` (needs the SO PIN).");
    }
    outln!("  gate:           {}", if p.enabled { "on" } else { "off" });
    outln!(
        "  gated classes:  {}",
        if p.classes.is_empty() {
            "none (only keys flagged --gate)".to_string()
        } else {
            p.classes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }
    );
    outln!("  chances:        {} of {} left", s.chances_left, p.chances);
    outln!(
        "  lifetime:       {} s (+{} s transport)",
        p.lifetime_ms as f64 / 1000.0,
        p.transport_ms as f64 / 1000.0
    );
    outln!("  challenge:      {} of {}", p.length, p.alphabet);
    Ok(())
}

/// `vtoken reattach`: clears the lock with the SO PIN (never the user PIN).
pub fn reattach(ctx: &Ctx, json: bool, r: &ReattachArgs) -> Result<()> {
    if r.pin.is_some() || r.pin_file.is_some() {
        bail!(
            "the user PIN cannot clear a gate lock: `vtoken reattach` needs the SO PIN \
             (--so-pin, VTOKEN_SO_PIN, --so-pin-file or the prompt); the token stays as it is"
        );
    }
    let entry = ctx.entry()?;
    let token = ctx.registry.open(&entry)?;
    let was = token.gate_locked()?;
    let p = pin::so(&r.so).map_err(|e| {
        CliError::new(format!(
            "{e} (clearing a gate lock needs the SO PIN; the user PIN cannot clear it)"
        ))
    })?;
    token
        .gate_reattach(p.as_bytes())
        .map_err(|e| pin_error(&token, vault_core::token::UserType::So, e))?;
    if json {
        return print_json(&json!({ "reattached": true, "was_locked": was }));
    }
    if was {
        outln!("Token '{}' reattached: the lock is cleared.", entry.label);
    } else {
        outln!(
            "Token '{}' was not locked; the picture-check chances are reset.",
            entry.label
        );
    }
    Ok(())
}
