//! `vtoken backup …`: one token into another, on one machine or across two (SPEC
//! V11): mutual authentication by device certificates, a signed and sealed transfer.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use serde_json::json;
use vault_core::token::UserType;
use vtoken_device::backup;

use crate::args::UserPin;
use crate::context::{login, Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::identity::{dev, root_of};
use crate::output::{outln, print_json, read_in, write_out};
use crate::pin::{self, Pin};

/// A PIN for one of the two tokens of a backup.
#[derive(Debug, Args, Clone, Default)]
pub struct BackupPins {
    /// The source token's user PIN.
    #[arg(
        long,
        env = "VTOKEN_FROM_PIN",
        hide_env_values = true,
        value_name = "PIN"
    )]
    pub from_pin: Option<String>,
    /// Read the source token's user PIN from this file.
    #[arg(long, value_name = "FILE")]
    pub from_pin_file: Option<PathBuf>,
    /// The target token's user PIN.
    #[arg(
        long,
        env = "VTOKEN_TO_PIN",
        hide_env_values = true,
        value_name = "PIN"
    )]
    pub to_pin: Option<String>,
    /// Read the target token's user PIN from this file.
    #[arg(long, value_name = "FILE")]
    pub to_pin_file: Option<PathBuf>,
}

/// `vtoken backup`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
Both tokens must be certified under the same root (vtoken ca init + vtoken device
certify). Each token trusts only the root it was itself certified under (bound to it
at certification): a target whose device certificate does not chain to the SOURCE
token's own root, or is not a device certificate, gets nothing. --root is only an
extra check and must name that same root.

Across machines, four steps (the patent's handshake, paragraphs 0104-0109):
  1. on the source:  vtoken backup start --from work -o work.start
     (enable backup: the source's PIN, a fresh random it remembers, its chain)
  2. on the target:  vtoken backup request --to spare --start work.start -o spare.req
     (verification passed: the target's PIN; it checks the source's certificate
     against its own root and signs the source's random and a fresh nonce of its own)
  3. on the source:  vtoken backup export --from work --request spare.req -o work.bundle
     (checks the target's certificate and signature; each answer is used once; passes
     the picture gate as key-export and vault-password and asks the source's prompt
     agent to confirm; signs the data's digest; nothing is sealed otherwise)
  4. on the target:  vtoken backup import --to spare --in work.bundle
     (checks both signatures, lists each object's kind and title through the target's
     prompt agent; the bundle imports once: a second import is refused)

On one machine, `vtoken backup --from work --to spare` runs the same steps.

What travels: vault entries, OTP credentials, certificates, public keys, data
objects, extractable keys, and non-extractable keys only if the source was
initialized with --allow-key-backup; keys left behind are named in a warning.
Importing a newer bundle of the same source updates what an earlier one stored
(no duplicates); OTP credentials already on the target keep their counter."
)]
pub struct Backup {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// Source token (label or serial).
    #[arg(long, value_name = "LABEL|SERIAL")]
    pub from: Option<String>,
    /// Target token (label or serial).
    #[arg(long, value_name = "LABEL|SERIAL")]
    pub to: Option<String>,
    /// Extra check: the root both tokens are bound to (must be their own root).
    #[arg(long, value_name = "ROOT.pem")]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub pins: BackupPins,
}

/// Backup across machines.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// On the source machine: the "enable backup" request (fresh random + device
    /// chain) for the target.
    Start {
        /// Source token (label or serial).
        #[arg(long, value_name = "LABEL|SERIAL")]
        from: String,
        /// The start message (JSON).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        pins: BackupPins,
    },
    /// On the target machine: "verification passed", answering the source's start
    /// (fresh nonce + signature over it and the source's random + device chain).
    Request {
        /// Target token (label or serial).
        #[arg(long, value_name = "LABEL|SERIAL")]
        to: String,
        /// The source's start (`vtoken backup start`).
        #[arg(long, value_name = "FILE")]
        start: PathBuf,
        /// The request (JSON).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        pins: BackupPins,
    },
    /// On the source machine: a bundle answering the target's request.
    Export {
        /// Source token (label or serial).
        #[arg(long, value_name = "LABEL|SERIAL")]
        from: String,
        /// The target's request (`vtoken backup request`).
        #[arg(long, value_name = "FILE")]
        request: Option<PathBuf>,
        /// No longer accepted: a certificate alone binds no nonce; use --request.
        #[arg(long, value_name = "CERT.pem", hide = true)]
        to_cert: Option<PathBuf>,
        /// Extra check: must be the source token's own device root.
        #[arg(long, value_name = "ROOT.pem")]
        root: Option<PathBuf>,
        /// Send the data in parts, each sealed to the target on its own (for large
        /// vaults, paragraph 0109) instead of one envelope; the import takes either.
        #[arg(long)]
        chunked: bool,
        /// Bytes per part with --chunked (at least 256).
        #[arg(
            long,
            value_name = "BYTES",
            default_value_t = 65536,
            requires = "chunked"
        )]
        chunk_size: usize,
        /// The bundle (DER CMS).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        pins: BackupPins,
    },
    /// On the target machine: check, show, and (on confirmation) store a bundle, once.
    Import {
        /// Target token (label or serial).
        #[arg(long, value_name = "LABEL|SERIAL")]
        to: String,
        /// The bundle.
        #[arg(long = "in", short = 'i', value_name = "FILE")]
        input: PathBuf,
        /// Extra check: must be the target token's own device root.
        #[arg(long, value_name = "ROOT.pem")]
        root: Option<PathBuf>,
        /// Accept only a bundle from this source serial.
        #[arg(long, value_name = "SERIAL")]
        from_serial: Option<String>,
        #[command(flatten)]
        pins: BackupPins,
    },
}

fn pin_of(value: &Option<String>, file: &Option<PathBuf>, which: &str) -> Result<Pin> {
    let u = UserPin {
        pin: value.clone(),
        pin_file: file.clone(),
    };
    // The options of this PIN, so an error names the ones that exist.
    let flags = if which.starts_with("source") {
        "--from-pin, VTOKEN_FROM_PIN or --from-pin-file"
    } else {
        "--to-pin, VTOKEN_TO_PIN or --to-pin-file"
    };
    match pin::user_given(&u)? {
        Some(p) => Ok(p),
        None => pin::prompt_named_with(which, flags),
    }
}

fn open_named(ctx: &Ctx, name: &str) -> Result<Open> {
    let entry = ctx.registry.find(name)?;
    let token = ctx.registry.open(&entry)?;
    let sid = token.open_session(true)?;
    Ok(Open { entry, token, sid })
}

fn print_summary(
    json: bool,
    verb: &str,
    s: &backup::Summary,
    extra: serde_json::Value,
) -> Result<()> {
    let warning = s.skipped_warning();
    if json {
        if let Some(w) = &warning {
            eprintln!("warning: {w}");
        }
        let mut v = serde_json::to_value(s).map_err(|e| CliError::new(e.to_string()))?;
        if let (Some(o), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(extra.clone());
            o.insert("warnings".into(), json!(warning.iter().collect::<Vec<_>>()));
        }
        return print_json(&v);
    }
    outln!(
        "{verb}: {} vault entries, {} OTP credentials, {} certificates, {} keys ({} non-extractable), {} public keys, {} data objects",
        s.vault_entries,
        s.otp_credentials,
        s.certificates,
        s.keys,
        s.non_extractable_keys,
        s.public_keys,
        s.data_objects
    );
    if s.created + s.updated + s.unchanged > 0 {
        outln!(
            "  {} stored new, {} replaced an older copy, {} already here",
            s.created,
            s.updated,
            s.unchanged
        );
    }
    if let Some(w) = &warning {
        outln!("WARNING: {w}");
    }
    Ok(())
}

fn root_opt(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>> {
    path.as_deref().map(root_of).transpose()
}

/// `vtoken backup …`.
pub fn run(ctx: &Ctx, json: bool, b: &Backup) -> Result<()> {
    let now = SystemTime::now();
    match &b.command {
        None => {
            let (Some(from), Some(to)) = (&b.from, &b.to) else {
                bail!(
                    "give --from and --to (or a subcommand: start, request, export, import); see \
                     --help"
                );
            };
            let root = root_opt(&b.root)?;
            let src = open_named(ctx, from)?;
            let dst = open_named(ctx, to)?;
            if src.entry.serial == dst.entry.serial {
                bail!("--from and --to name the same token");
            }
            let p = &b.pins;
            login(
                &src.token,
                UserType::User,
                &pin_of(&p.from_pin, &p.from_pin_file, "source token's user PIN")?,
            )
            .map_err(|e| CliError::new(format!("source token: {e}")))?;
            login(
                &dst.token,
                UserType::User,
                &pin_of(&p.to_pin, &p.to_pin_file, "target token's user PIN")?,
            )
            .map_err(|e| CliError::new(format!("target token: {e}")))?;
            let progress = crate::output::Progress::start("backing up…");
            let s = backup::backup_local(&src.token, &dst.token, &dst.sid, root.as_deref())
                .map_err(dev)?;
            drop(progress);
            print_summary(
                json,
                &format!("Backed up {} to {}", src.entry.serial, dst.entry.serial),
                &s,
                json!({}),
            )
        }
        Some(BackupCommand::Start { from, out, pins }) => {
            let src = open_named(ctx, from)?;
            login(
                &src.token,
                UserType::User,
                &pin_of(
                    &pins.from_pin,
                    &pins.from_pin_file,
                    "source token's user PIN",
                )?,
            )?;
            let st = backup::start(&src.token).map_err(dev)?;
            let text =
                serde_json::to_string_pretty(&st).map_err(|e| CliError::new(e.to_string()))?;
            write_out(Some(out), format!("{text}\n").as_bytes())?;
            if json {
                print_json(&json!({"start": out, "serial": src.entry.serial}))
            } else {
                outln!(
                    "Backup start of token {} written to {}: take it to the target \
                     (vtoken backup request --start ...)",
                    src.entry.serial,
                    out.display()
                );
                Ok(())
            }
        }
        Some(BackupCommand::Request {
            to,
            start,
            out,
            pins,
        }) => {
            let st: backup::BackupStart =
                serde_json::from_slice(&read_in(start)?).map_err(|e| {
                    CliError::new(format!("{}: not a backup start: {e}", start.display()))
                })?;
            let dst = open_named(ctx, to)?;
            login(
                &dst.token,
                UserType::User,
                &pin_of(&pins.to_pin, &pins.to_pin_file, "target token's user PIN")?,
            )?;
            let req = backup::request(&dst.token, &st, now).map_err(dev)?;
            let text =
                serde_json::to_string_pretty(&req).map_err(|e| CliError::new(e.to_string()))?;
            write_out(Some(out), format!("{text}\n").as_bytes())?;
            if json {
                print_json(&json!({"request": out, "serial": dst.entry.serial}))
            } else {
                outln!(
                    "Verification passed: token {} checked source {}; answer written to {} \
                     (valid for 7 days, for one bundle)",
                    dst.entry.serial,
                    st.serial,
                    out.display()
                );
                Ok(())
            }
        }
        Some(BackupCommand::Export {
            from,
            request,
            to_cert,
            root,
            chunked,
            chunk_size,
            out,
            pins,
        }) => {
            if to_cert.is_some() {
                bail!(
                    "--to-cert is no longer accepted: the target must make a request \
                     (vtoken backup request --to TARGET -o FILE) and the export answers it \
                     (--request FILE); nothing was exported"
                );
            }
            let Some(request) = request else {
                bail!("give --request FILE (made on the target by `vtoken backup request`)");
            };
            let root = root_opt(root)?;
            let req: backup::BackupRequest =
                serde_json::from_slice(&read_in(request)?).map_err(|e| {
                    CliError::new(format!("{}: not a backup request: {e}", request.display()))
                })?;
            let src = open_named(ctx, from)?;
            login(
                &src.token,
                UserType::User,
                &pin_of(
                    &pins.from_pin,
                    &pins.from_pin_file,
                    "source token's user PIN",
                )?,
            )?;
            let delivery = if *chunked {
                if *chunk_size < vtoken_device::chunked::MIN_CHUNK {
                    bail!(
                        "--chunk-size must be at least {} bytes",
                        vtoken_device::chunked::MIN_CHUNK
                    );
                }
                backup::Delivery::Chunked(*chunk_size)
            } else {
                backup::Delivery::Envelope
            };
            let (bundle, s) =
                backup::export_bundle_with(&src.token, &req, root.as_deref(), now, delivery)
                    .map_err(dev)?;
            write_out(Some(out), &bundle)?;
            print_summary(
                json,
                &format!(
                    "Bundle for token {} written to {}",
                    req.attestation.serial,
                    out.display()
                ),
                &s,
                json!({"bundle": out, "target_serial": req.attestation.serial}),
            )
        }
        Some(BackupCommand::Import {
            to,
            input,
            root,
            from_serial,
            pins,
        }) => {
            let root = root_opt(root)?;
            let bundle = read_in(input)?;
            let dst = open_named(ctx, to)?;
            login(
                &dst.token,
                UserType::User,
                &pin_of(&pins.to_pin, &pins.to_pin_file, "target token's user PIN")?,
            )?;
            let s = backup::import_bundle(
                &dst.token,
                &dst.sid,
                &bundle,
                root.as_deref(),
                from_serial.as_deref(),
                now,
            )
            .map_err(dev)?;
            print_summary(json, "Restored", &s, json!({}))
        }
    }
}
