//! `vtoken rks`: remote key download (seed CN103714642A, SPEC K1–K5): the K3
//! derivation, the key-loading station (DIK1 import, device provisioning) and the
//! device's download from a remote key server.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use vault_core::token::UserType;
use vtoken_rks::frame::Kind;
use vtoken_rks::RksError;

use crate::args::{SoPin, UserPin};

mod provision;

use crate::context::Ctx;
use crate::error::{bail, CliError, Result};
use crate::output::{outln, print_json};
use crate::pin;
/// The crash points of the download's client-killed tests (inert outside
/// `test-hooks` builds): `factor`, `response`, `stored`, `ack`.
use vault_core::ext::rks::test_exit_point as crash_point;

/// `vtoken rks …`.
#[derive(Debug, Subcommand)]
pub enum RksCommand {
    /// Compute DIK2 from DIK1, a token serial (DSN) and a factor (SPEC K3), for
    /// checking a station or a server against the published test vectors.
    #[command(after_help = "\
DATA1 = SHA-256(DSN)[0..24]; KEY1 = TDES-ECB-encrypt(DIK1, DATA1);
DATA2 = SHA-256(factor)[0..24]; DIK2 = TDES-ECB-decrypt(KEY1, DATA2)
(three-key DES-EDE, no padding; the DSN is the serial's upper-case ASCII).

Example:
  vtoken rks derive-dik2 --dik1 0123456789ABCDEFFEDCBA987654321089ABCDEF01234567 \\
      --dsn 00000000000000A1 --factor 00112233445566778899AABBCCDDEEFF
  # 403E3FD5BD6CB091407716185DCA3E3090E7392230A69352")]
    DeriveDik2 {
        /// DIK1, 24 bytes in hex.
        #[arg(long, value_name = "HEX")]
        dik1: String,
        /// The token serial (16 hex characters).
        #[arg(long, value_name = "SERIAL")]
        dsn: String,
        /// The diversification factor, hex (raw bytes).
        #[arg(long, value_name = "HEX")]
        factor: String,
    },
    /// Key-loading station: load a DIK1 export (`vtoken-server rks dik1 export`: a
    /// DSN's, a batch's with its member list, or a range's) into the station token
    /// (--token). It is opened inside the token and kept sealed there; DIK1 is
    /// never in the clear on disk.
    #[command(after_help = "\
Example:
  vtoken --token station rks station-load --in dik1.cms")]
    StationLoad {
        /// The sealed DIK1 export (DER or PEM CMS).
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        #[command(flatten)]
        pin: UserPin,
    },
    /// Key-loading station (K2): make an injection envelope for a device: DIK2 is
    /// derived inside the station token (--station) from the DIK1 it holds for the
    /// device's serial (the DSN, read from the device certificate: its own record,
    /// else the batch listing it, else the range holding it), then sealed
    /// with the factor and the root public key to the device's certificate and
    /// signed by the station. Nothing secret is in the clear outside the tokens.
    #[command(after_help = "\
Two machines (the device's certificate: vtoken --token device-1 device cert -o dev.pem):
  vtoken rks provision --station station --device-cert dev.pem --factor 00112233 \\
      --root /srv/vtoken-rks/root.pem -o device-1.vrks --station-pin 654321
  # on the device's machine, with the device's SO PIN:
  vtoken --token device-1 rks inject --in device-1.vrks

One machine (both tokens here; the same envelope, never written to disk):
  vtoken --token device-1 rks provision --station station --factor 00112233 \\
      --root /srv/vtoken-rks/root.pem --station-pin 654321 --so-pin 12345678

The device certificate must chain to the root the station's own certificate chains
to; the device checks the same of the station's.")]
    Provision {
        /// The station token (label or serial) holding the device's DIK1.
        #[arg(long, value_name = "LABEL|SERIAL")]
        station: String,
        /// The diversification factor, hex (1 to 64 bytes).
        #[arg(long, value_name = "HEX")]
        factor: String,
        /// RKS_RCRT_PK: the server's root.pem.
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
        /// The device's certificate (PEM or DER; `vtoken device cert`): make an
        /// envelope for another machine (with -o) instead of injecting into --token.
        #[arg(long, value_name = "FILE")]
        device_cert: Option<PathBuf>,
        /// Where to write the injection envelope (with --device-cert).
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// The station token's user PIN [default: VTOKEN_STATION_PIN, else a prompt].
        #[arg(
            long,
            env = "VTOKEN_STATION_PIN",
            hide_env_values = true,
            value_name = "PIN"
        )]
        station_pin: Option<String>,
        /// The device token's SO PIN (one-machine form: it injects).
        #[command(flatten)]
        so: SoPin,
        /// Replace an earlier provisioning of the device (one-machine form).
        #[arg(long)]
        replace: bool,
    },
    /// Device (K2): open an injection envelope (`vtoken rks provision -o`) inside
    /// this token (--token) and store DIK2, the factor and the root public key where
    /// no PKCS#11 call reaches them. Needs the token's SO PIN: installing the RKS
    /// root is the issuer's act, not the daily user's.
    #[command(after_help = "\
Example:
  vtoken --token device-1 rks inject --in device-1.vrks --so-pin 12345678

Refused: an envelope made for another token, a tampered one, one not signed by a
station certified under this token's own device root, one this token already took,
and a second provisioning unless --replace is given.")]
    Inject {
        /// The injection envelope.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        #[command(flatten)]
        so: SoPin,
        /// Replace the current provisioning (new DIK2, factor and root).
        #[arg(long)]
        replace: bool,
    },
    /// Device: download the keys queued for this token from a remote key server,
    /// with mutual authentication (patent steps S301–S324). Each key is stored
    /// before it is acknowledged; a rerun delivers what is left, each key once.
    #[command(after_help = "\
Example:
  vtoken --token device-1 rks download --server http://127.0.0.1:8450 --json
  vtoken --token device-1 objects list     # the keys, sensitive and non-extractable")]
    Download {
        /// The RKS base URL (http://HOST:PORT or https://...).
        #[arg(long, value_name = "URL")]
        server: String,
        #[command(flatten)]
        pin: UserPin,
    },
}

/// Parses a hex argument.
fn hex_arg(name: &str, v: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    match hex::decode(v.trim()) {
        Ok(b) => Ok(zeroize::Zeroizing::new(b)),
        Err(_) => bail!("--{name} is not hex (e.g. --{name} 00112233)"),
    }
}

fn rks_err(e: RksError) -> CliError {
    CliError::new(e.to_string())
}

/// Reads a PEM "PUBLIC KEY" (or DER) file: SPKI DER.
fn read_spki(path: &std::path::Path) -> Result<Vec<u8>> {
    let b = std::fs::read(path).map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    let Ok(text) = std::str::from_utf8(&b) else {
        return Ok(b);
    };
    if !text.contains("-----BEGIN") {
        return Ok(b);
    }
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| {
            CliError::new(format!(
                "{}: not a PEM public key (root.pem)",
                path.display()
            ))
        })
}

/// One frame over HTTP POST.
fn post(url: &str, frame: &[u8]) -> vtoken_rks::Result<Vec<u8>> {
    let resp = ureq::post(url)
        .set("content-type", "application/octet-stream")
        .send_bytes(frame)
        .map_err(|e| RksError::Local(format!("{url}: {e}")))?;
    let mut out = Vec::new();
    resp.into_reader()
        .take(64 << 10)
        .read_to_end(&mut out)
        .map_err(|e| RksError::Local(format!("{url}: {e}")))?;
    Ok(out)
}

/// Runs a `vtoken rks` command.
pub fn run(ctx: &Ctx, json: bool, cmd: &RksCommand) -> Result<()> {
    match cmd {
        RksCommand::StationLoad { input, pin: p } => {
            let b = std::fs::read(input)
                .map_err(|e| CliError::new(format!("{}: {e}", input.display())))?;
            let open = ctx.open()?;
            open.login(UserType::User, &pin::user(p)?)?;
            let dsn = open.token.rks_station_load(&b)?;
            if json {
                print_json(&json!({ "station": open.entry.serial, "dsn": dsn }))?;
            } else {
                outln!("DIK1 for {dsn} loaded into station {}", open.entry.serial);
            }
        }
        RksCommand::Provision {
            station,
            factor,
            root,
            device_cert,
            out,
            station_pin,
            so,
            replace,
        } => provision::provision(
            ctx,
            json,
            &provision::ProvisionArgs {
                station,
                factor,
                root,
                device_cert: device_cert.as_ref(),
                out: out.as_ref(),
                station_pin: station_pin.as_ref(),
                so,
                replace: *replace,
            },
        )?,
        RksCommand::Inject { input, so, replace } => {
            provision::inject(ctx, json, input, so, *replace)?
        }
        RksCommand::Download { server, pin: p } => {
            let open = ctx.open()?;
            open.login(UserType::User, &pin::user(p)?)?;
            let url = format!("{}/api/v1/rks", server.trim_end_matches('/'));
            let mut acked = false;
            // The protocol runs inside the token (DIK2, the factor, AT and TK never
            // leave it); this process only carries the frames over HTTP.
            let out = open
                .token
                .rks_download(&open.sid, &mut |b| {
                    // The frame kind is the header's sixth byte (docs/rks.md).
                    let kind = b.get(5).copied();
                    let first_ack = kind == Some(Kind::Ack as u8) && !acked;
                    match kind {
                        Some(k) if k == Kind::Factor as u8 => crash_point("factor"),
                        Some(k) if k == Kind::Response as u8 => crash_point("response"),
                        _ if first_ack => crash_point("stored"),
                        _ => {}
                    }
                    let answer = post(&url, b)?;
                    if first_ack {
                        acked = true;
                        crash_point("ack");
                    }
                    Ok(answer)
                })?
                .map_err(rks_err)?;
            let dsn = open.entry.serial.to_ascii_uppercase();
            if json {
                let keys: Vec<_> = out
                    .keys
                    .iter()
                    .map(|k| json!({ "label": k.label, "uid": k.uid, "stored": k.stored }))
                    .collect();
                print_json(&json!({ "dsn": dsn, "keys": keys }))?;
            } else if out.keys.is_empty() {
                outln!("no keys queued for {dsn}");
            } else {
                for k in &out.keys {
                    let what = if k.stored { "stored" } else { "already held" };
                    outln!(
                        "{}: {what} (uid {})",
                        crate::output::printable(&k.label),
                        k.uid
                    );
                }
            }
        }
        RksCommand::DeriveDik2 { dik1, dsn, factor } => {
            let k = hex_arg("dik1", dik1)?;
            let Ok(k): std::result::Result<[u8; 24], _> = k.as_slice().try_into() else {
                bail!(
                    "--dik1 has {} bytes; DIK1 is a 24-byte TDES key (48 hex digits)",
                    k.len()
                );
            };
            let k = zeroize::Zeroizing::new(k);
            let f = hex_arg("factor", factor)?;
            if f.is_empty() {
                bail!("--factor is empty; give at least one byte in hex");
            }
            let dik2 = vtoken_rks::derive_dik2(&k, dsn, &f)
                .map_err(|e| crate::error::CliError::new(e.to_string()))?;
            let h = zeroize::Zeroizing::new(hex::encode_upper(*dik2));
            if json {
                print_json(&json!({ "dsn": dsn.to_ascii_uppercase(), "dik2": h.as_str() }))?;
            } else {
                outln!("{}", h.as_str());
            }
        }
    }
    Ok(())
}
