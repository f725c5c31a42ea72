//! `vtoken card`: the virtual contactless card (SPEC W5, W7): an encrypted card
//! file with its PIN retry counter, balance and the token serials it trusts.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use vtoken_wallet::card::Card;
use vtoken_wallet::Amount;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{outln, print_json, write_out};

/// `vtoken card …`.
#[derive(Debug, Subcommand)]
pub enum CardCommand {
    /// Create a card file (and its key file FILE.key, mode 0600).
    #[command(after_help = "\
Example:
  vtoken card create --file card.vcard --number 6222001 --pin-file card.pin --trust 00000000000000A1
  vtoken wallet trust-card --number 6222001")]
    Create {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The card number (letters and digits).
        #[arg(long)]
        number: String,
        /// The card PIN, first line of this file (at least 4 characters).
        #[arg(long, value_name = "FILE")]
        pin_file: PathBuf,
        /// A token serial the card accepts transfers from (repeatable).
        #[arg(long, value_name = "SERIAL")]
        trust: Vec<String>,
        #[arg(long, default_value = "CNY")]
        currency: String,
    },
    /// Show the card balance.
    #[command(after_help = "With --json: {\"balance\": \"10.00\", \"currency\": \"CNY\", ...}.")]
    Balance {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Pay from the card: check its PIN, debit it and write a purchase record signed
    /// by the card key.
    #[command(after_help = "\
The bank verifies card records once it knows the card key:
  vtoken card key --file card.vcard -o card.pub.pem
  vtoken-server bank card-add --dir B --number 6222001 --key card.pub.pem
  vtoken card pay --file card.vcard --merchant shop-1 --amount 2.00 --pin-file card.pin -o p.rec
  vtoken-server bank verify --dir B --record p.rec")]
    Pay {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        amount: String,
        #[arg(long, value_name = "FILE")]
        pin_file: Option<PathBuf>,
        #[arg(short = 'o', long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write the card's purchase public key (PEM).
    Key {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[arg(short = 'o', long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Reads a secret's first line from `path`.
fn first_line(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>> {
    let raw = zeroize::Zeroizing::new(crate::output::read_in(path)?);
    let text = std::str::from_utf8(&raw)
        .map_err(|_| CliError::new(format!("{}: not text", path.display())))?;
    Ok(zeroize::Zeroizing::new(
        text.lines()
            .next()
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_string(),
    ))
}

fn cerr(e: vtoken_wallet::Error) -> CliError {
    CliError::new(e.to_string())
}

/// Runs one `card` subcommand.
pub fn run(_ctx: &Ctx, json: bool, cmd: &CardCommand) -> Result<()> {
    match cmd {
        CardCommand::Create {
            file,
            number,
            pin_file,
            trust,
            currency,
        } => {
            let pin = first_line(pin_file)?;
            let c = Card::create(file, number, pin.as_bytes(), currency, trust.clone())
                .map_err(cerr)?;
            if json {
                print_json(
                    &json!({"number": c.number(), "file": file, "balance": c.balance().to_string(), "currency": c.currency()}),
                )?;
            } else {
                outln!("card {} created in {}", c.number(), file.display());
            }
            Ok(())
        }
        CardCommand::Balance { file } => {
            let c = Card::open(file).map_err(cerr)?;
            if json {
                print_json(&json!({
                    "number": c.number(),
                    "balance": c.balance().to_string(),
                    "currency": c.currency(),
                    "pin_tries_left": c.tries_left(),
                    "trusted_serials": c.trusted_serials(),
                }))?;
            } else {
                outln!("{} {}", c.balance(), c.currency());
            }
            Ok(())
        }
        CardCommand::Pay {
            file,
            merchant,
            amount,
            pin_file,
            out,
        } => {
            let a: Amount = amount.parse().map_err(cerr)?;
            let mut c = Card::open(file).map_err(cerr)?;
            let pin = match pin_file {
                Some(f) => first_line(f)?,
                None => crate::pin::prompt_named("card PIN")?,
            };
            let rec = c.pay(pin.as_bytes(), merchant, a).map_err(cerr)?;
            write_out(Some(out), &rec.to_bytes())?;
            if json {
                print_json(
                    &json!({"paid": a.to_string(), "merchant": merchant, "record": out, "balance": c.balance().to_string(), "currency": c.currency()}),
                )?;
            } else {
                outln!(
                    "paid {a} {} to {merchant}; record in {}; card balance {} {}",
                    c.currency(),
                    out.display(),
                    c.balance(),
                    c.currency()
                );
            }
            Ok(())
        }
        CardCommand::Key { file, out } => {
            let c = Card::open(file).map_err(cerr)?;
            let spki = c.public_key_spki().map_err(cerr)?;
            let pem = der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &spki)
                .map_err(|e| CliError::new(e.to_string()))?;
            write_out(out.as_deref(), pem.as_bytes())
        }
    }
}
