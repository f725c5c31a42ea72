//! `vtoken rks`: remote key download (seed CN103714642A, SPEC K1–K5): the K3
//! derivation, the key-loading station (DIK1 import, device provisioning) and the
//! device's download from a remote key server.

use clap::Subcommand;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{bail, Result};
use crate::output::{outln, print_json};

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
}

/// Parses a hex argument.
fn hex_arg(name: &str, v: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    match hex::decode(v.trim()) {
        Ok(b) => Ok(zeroize::Zeroizing::new(b)),
        Err(_) => bail!("--{name} is not hex (e.g. --{name} 00112233)"),
    }
}

/// Runs a `vtoken rks` command.
pub fn run(_ctx: &Ctx, json: bool, cmd: &RksCommand) -> Result<()> {
    match cmd {
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
