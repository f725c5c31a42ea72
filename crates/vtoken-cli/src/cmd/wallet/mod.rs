//! `vtoken wallet`: the e-wallet on the token (SPEC W1–W7, patent CN101211451A):
//! make the wallet key and its request, install the bank's certificate for it,
//! load from a bank account (steps 301–318), move value to a card (G–I), pay.

mod net;

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;
use vault_core::token::{Token, UserType};
use vault_core::wallet::WalletLock;
use vault_core::Error as CoreError;
use vtoken_pki::{build_csr, SigAlg, Usage};
use vtoken_wallet::card::Card;
use vtoken_wallet::msg::Outcome;
use vtoken_wallet::{api, Amount, Envelope, LoadState};
use zeroize::Zeroizing;

use crate::args::{SoPin, UserPin};
use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::output::{outln, print_json, read_in, write_out};
use crate::pin;

use net::{NoAnswer, Reply};

/// The crash points of the wallet's crash tests (inert outside `test-hooks` builds):
/// each names the token write just committed or the message about to be sent.
use vault_core::wallet::test_exit_point as crash_point;

/// `vtoken wallet …`.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Make the wallet: a key pair inside the token, the bank certificate it trusts,
    /// and a certification request for the bank.
    #[command(after_help = "\
The wallet key never leaves the token and signs only wallet messages (no PKCS#11
call can use it). Give the request to the bank:
  vtoken wallet init --bank-cert B/bank.pem -o wallet.csr
  vtoken-server bank register --dir B --account ACC --csr wallet.csr -o wallet.pem
  vtoken wallet install --cert wallet.pem")]
    Init {
        /// The bank's certificate (PEM or DER): the only server the wallet talks to.
        #[arg(long, value_name = "FILE")]
        bank_cert: PathBuf,
        /// Where to write the request (DER PKCS#10).
        #[arg(short = 'o', long, value_name = "FILE")]
        out: PathBuf,
        /// The wallet's currency (the account's).
        #[arg(long, default_value = "CNY")]
        currency: String,
        #[command(flatten)]
        user: UserPin,
    },
    /// Install the wallet certificate the bank issued.
    Install {
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        #[command(flatten)]
        user: UserPin,
    },
    /// Load the wallet from a bank account (signed online load).
    #[command(after_help = "\
Steps: the bank's certificate is checked against the one the wallet holds; the user
PIN is checked on the token; the token shows the load through its prompt agent (the
agent the token's policy names: `vtoken prompt show`; for scripts the SO sets
`vtoken prompt set --agent command:PATH`) — refused or unanswered, nothing is sent;
the token signs the request; the bank debits and signs a permit; the token verifies
it, credits the wallet and signs a receipt; the bank confirms.

A load interrupted by a crash or a lost connection is settled at the next contact
(this command or `vtoken wallet settle`): confirmed if the wallet was credited,
refunded by the bank otherwise. Never both.

Example:
  vtoken wallet load --bank http://127.0.0.1:8450 --account ACC --amount 100.00
  vtoken wallet load --bank http://127.0.0.1:8450 --account ACC --amount 100.00 --encrypt")]
    Load {
        /// The bank's URL.
        #[arg(long, value_name = "URL")]
        bank: String,
        /// The account to debit (the one the wallet certificate is bound to).
        #[arg(long)]
        account: String,
        /// Major units (100.00).
        #[arg(long)]
        amount: String,
        /// Encrypt the signed request to the bank's certificate (step 309): the
        /// network sees neither account, amount nor balance, even without TLS.
        #[arg(long)]
        encrypt: bool,
        #[command(flatten)]
        user: UserPin,
    },
    /// Settle an interrupted load with the bank.
    Settle {
        #[arg(long, value_name = "URL")]
        bank: String,
        #[command(flatten)]
        user: UserPin,
    },
    /// Show the wallet balance.
    #[command(after_help = "With --json: {\"balance\": \"900.00\", \"currency\": \"CNY\", ...}.")]
    Balance {
        #[command(flatten)]
        user: UserPin,
    },
    /// Show the wallet's transaction log.
    Log {
        #[command(flatten)]
        user: UserPin,
    },
    /// Add a card number to the cards this wallet may transfer to.
    TrustCard {
        #[arg(long)]
        number: String,
        #[command(flatten)]
        user: UserPin,
    },
    /// Move value from the wallet to a card (steps G–I).
    #[command(after_help = "\
The token and the card check each other (the card number on the wallet's list: see
`vtoken wallet trust-card`; the token serial on the card's list), the card balance is
shown, the card PIN is checked by the card (wrong: a try is used; 3 block it), then
the wallet is debited and the card credited as one move: an interrupted transfer is
finished or undone by the next transfer with that card.

Example:
  vtoken wallet transfer --card card.vcard --amount 10.00 --card-pin-file card.pin")]
    Transfer {
        /// The card file.
        #[arg(long, value_name = "FILE")]
        card: PathBuf,
        #[arg(long)]
        amount: String,
        /// Read the card PIN from the first line of this file [default: asked].
        #[arg(long, value_name = "FILE")]
        card_pin_file: Option<PathBuf>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Give the wallet up (SO): needed before a token whose wallet holds value can be
    /// re-initialized (`C_InitToken`) or deleted.
    #[command(after_help = "\
A token whose wallet holds a balance or an unsettled load or transfer refuses
C_InitToken (CKR_ACTION_PROHIBITED) and `vtoken delete --token-file`, like a bank
card you cannot wipe with money on it. Spend or move the value first; or, as the SO,
give it up explicitly (the balance is lost):
  vtoken wallet discard --so-pin-file so.pin")]
    Discard {
        #[command(flatten)]
        so: SoPin,
    },
    /// Pay from the wallet: debit it and write a purchase record signed by the wallet key.
    #[command(after_help = "\
The merchant (or the bank) verifies the record:
  vtoken wallet pay --merchant shop-1 --amount 3.00 -o purchase.rec
  vtoken-server bank verify --dir B --record purchase.rec      # or POST it to the bank:
  vtoken wallet pay --merchant shop-1 --amount 3.00 -o purchase.rec --bank URL")]
    Pay {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        amount: String,
        /// Where to write the purchase record.
        #[arg(short = 'o', long, value_name = "FILE")]
        out: PathBuf,
        /// Also present the record to the bank at URL (it verifies and records it once).
        #[arg(long, value_name = "URL")]
        bank: Option<String>,
        #[command(flatten)]
        user: UserPin,
    },
}

fn open_user(ctx: &Ctx, user: &UserPin) -> Result<Open> {
    let p = pin::user(user)?;
    let open = ctx.open()?;
    open.login(UserType::User, &p)?;
    Ok(open)
}

/// [`open_user`] with the wallet locked for the whole command: another process's
/// `wallet load`/`pay`/`transfer` on this token waits until this one is done (no
/// lost update, no load settled as "interrupted" while it runs).
fn open_locked(ctx: &Ctx, user: &UserPin) -> Result<(Open, WalletLock)> {
    let o = open_user(ctx, user)?;
    let l = o.token.wallet_lock()?;
    Ok((o, l))
}

fn amount(s: &str) -> Result<Amount> {
    s.parse::<Amount>()
        .map_err(|e| CliError::new(e.to_string()))
}

/// Reads a secret's first line from `path`.
fn first_line(path: &Path) -> Result<Zeroizing<String>> {
    let raw = Zeroizing::new(read_in(path)?);
    let text = std::str::from_utf8(&raw)
        .map_err(|_| CliError::new(format!("{}: not text", path.display())))?;
    Ok(Zeroizing::new(
        text.lines()
            .next()
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_string(),
    ))
}

/// Runs one `wallet` subcommand.
pub fn run(ctx: &Ctx, json: bool, cmd: &WalletCommand) -> Result<()> {
    match cmd {
        WalletCommand::Init {
            bank_cert,
            out,
            currency,
            user,
        } => {
            let o = open_user(ctx, user)?;
            let der = vtoken_wallet::keys::cert_der_of(&read_in(bank_cert)?)
                .map_err(|e| CliError::new(format!("{}: {e}", bank_cert.display())))?;
            let spki = o.token.wallet_init(&der, currency)?;
            let csr = build_csr(
                &spki,
                o.token.serial(),
                Usage::Signing,
                |tbs| o.token.wallet_sign_csr(tbs).map_err(|e| e.to_string()),
                SigAlg::EcdsaSha256,
            )
            .map_err(|e| CliError::new(format!("wallet request: {e}")))?;
            write_out(Some(out), &csr)?;
            if json {
                print_json(&json!({"serial": o.token.serial(), "csr": out}))?;
            } else {
                outln!(
                    "wallet made on token {}; request written to {} (give it to the bank)",
                    o.token.serial(),
                    out.display()
                );
            }
            Ok(())
        }
        WalletCommand::Install { cert, user } => {
            let o = open_user(ctx, user)?;
            let der = vtoken_wallet::keys::cert_der_of(&read_in(cert)?)
                .map_err(|e| CliError::new(format!("{}: {e}", cert.display())))?;
            let bank = o.token.wallet_bank_cert()?;
            vtoken_pki::verify_chain(&der, &[], &bank, std::time::SystemTime::now()).map_err(
                |e| {
                    CliError::new(format!(
                        "{}: not issued by the wallet's bank: {e}",
                        cert.display()
                    ))
                },
            )?;
            o.token.wallet_install(&der)?;
            if json {
                return print_json(&json!({ "installed": true }));
            }
            outln!("wallet certificate installed");
            Ok(())
        }
        WalletCommand::Load {
            bank,
            account,
            amount: a,
            encrypt,
            user,
        } => {
            let a = amount(a)?;
            let (o, _lock) = open_locked(ctx, user)?;
            connect(&o.token, bank)?;
            settle(&o.token, bank, json)?;
            load(&o.token, bank, account, a, *encrypt, json)
        }
        WalletCommand::Settle { bank, user } => {
            let (o, _lock) = open_locked(ctx, user)?;
            connect(&o.token, bank)?;
            if !settle(&o.token, bank, json)? && !json {
                outln!("nothing to settle");
            }
            Ok(())
        }
        WalletCommand::Balance { user } => {
            let o = open_user(ctx, user)?;
            let i = o.token.wallet_info()?;
            if json {
                print_json(&json!({
                    "serial": i.serial,
                    "balance": i.balance.to_string(),
                    "currency": i.currency,
                    "next_seq": i.next_seq,
                    "key_version": i.key_version,
                    "certified": i.certified,
                    "pending_load": i.pending_load.map(|(s, st)| json!({"seq": s, "state": st.as_str()})),
                    "pending_transfer": i.pending_transfer.map(|(id, c, a)| json!({"id": id, "card": c, "amount": a.to_string()})),
                    "trusted_cards": i.trusted_cards,
                }))?;
            } else {
                outln!("{} {}", i.balance, i.currency);
                if let Some((s, st)) = i.pending_load {
                    outln!("load {s} is {st}: run `vtoken wallet settle --bank URL`");
                }
            }
            Ok(())
        }
        WalletCommand::Log { user } => {
            let o = open_user(ctx, user)?;
            let log = o.token.wallet_log()?;
            if json {
                let v: Vec<_> = log
                    .iter()
                    .map(|e| {
                        json!({
                            "at": e.at, "kind": e.kind, "seq": e.seq,
                            "amount": e.amount.to_string(), "state": e.state,
                            "balance": e.balance.to_string(), "counterpart": e.counterpart,
                        })
                    })
                    .collect();
                print_json(&v)?;
            } else {
                for e in log {
                    outln!(
                        "{} {:<8} {:>4} {:>12} {:<10} balance {:>12} {}",
                        e.at,
                        e.kind,
                        e.seq,
                        e.amount,
                        e.state,
                        e.balance,
                        e.counterpart
                    );
                }
            }
            Ok(())
        }
        WalletCommand::Discard { so } => {
            let p = pin::so(so)?;
            let o = ctx.open()?;
            let had = o.token.wallet_discard(p.as_bytes())?;
            if json {
                print_json(&json!({"discarded": had}))?;
            } else if had {
                outln!("wallet discarded");
            } else {
                outln!("this token has no wallet");
            }
            Ok(())
        }
        WalletCommand::TrustCard { number, user } => {
            let o = open_user(ctx, user)?;
            o.token.wallet_trust_card(number)?;
            if json {
                return print_json(&json!({ "trusted": number }));
            }
            outln!("card {number} trusted");
            Ok(())
        }
        WalletCommand::Transfer {
            card,
            amount: a,
            card_pin_file,
            user,
        } => {
            let a = amount(a)?;
            let (o, _lock) = open_locked(ctx, user)?;
            transfer(&o.token, card, a, card_pin_file.as_deref(), json)
        }
        WalletCommand::Pay {
            merchant,
            amount: a,
            out,
            bank,
            user,
        } => {
            let a = amount(a)?;
            let (o, _lock) = open_locked(ctx, user)?;
            let rec = o.token.wallet_pay(merchant, a).map_err(not_confirmed)?;
            write_out(Some(out), &rec.to_bytes())?;
            let verdict = match bank {
                Some(url) => Some(present(url, &rec)?),
                None => None,
            };
            let i = o.token.wallet_info()?;
            if json {
                print_json(&json!({
                    "paid": a.to_string(), "merchant": merchant, "record": out,
                    "balance": i.balance.to_string(), "currency": i.currency,
                    "bank": verdict,
                }))?;
            } else {
                outln!(
                    "paid {a} {} to {merchant}; record in {}; wallet balance {} {}",
                    i.currency,
                    out.display(),
                    i.balance,
                    i.currency
                );
            }
            Ok(())
        }
    }
}

fn not_confirmed(e: CoreError) -> CliError {
    match e {
        CoreError::FunctionRejected => CliError::new(
            "not confirmed on the token (refused or no answer in time): nothing was done; run the command again to retry",
        ),
        CoreError::NotConfirmed(n) => CliError::new(format!(
            "{n}; nothing was done"
        )),
        e => e.into(),
    }
}

fn no_answer(e: NoAnswer) -> CliError {
    CliError::new(format!(
        "no answer from the bank ({}); an unfinished load is settled at the next contact (`vtoken wallet settle`)",
        e.0
    ))
}

/// Step 301: the server's certificate must be the wallet's bank certificate.
fn connect(t: &Token, bank: &str) -> Result<()> {
    let der = net::bank_cert(bank).map_err(no_answer)?;
    t.wallet_check_bank(&der)?;
    Ok(())
}

/// Finishes the pending load, if any: a `Requested` load is aborted (the bank
/// refunds whatever it debited), a credited one's receipt or an aborted one's abort
/// is delivered. Returns whether there was one.
fn settle(t: &Token, bank: &str, json: bool) -> Result<bool> {
    let Some((state, _)) = t.wallet_pending()? else {
        return Ok(false);
    };
    let (path, env) = match state {
        LoadState::Requested => (
            api::ABORT,
            t.wallet_load_abort("interrupted load, settled at the next contact")?,
        ),
        LoadState::Refunded => (api::ABORT, t.wallet_load_abort("")?),
        _ => (api::RECEIPT, t.wallet_pending()?.expect("pending").1),
    };
    crash_point("settle-send");
    match net::post(bank, path, &env).map_err(no_answer)? {
        Reply::Message(m) => {
            crash_point("settlement");
            let out = t.wallet_load_settled(&m)?;
            if !json {
                outln!("settled the interrupted load: {}", outcome_word(out));
            }
            Ok(true)
        }
        Reply::Refused(code, msg) => {
            bail!("the bank refused to settle the pending load ({code}): {msg}")
        }
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Confirmed => "confirmed (the wallet keeps the amount)",
        Outcome::Refunded => "refunded to the account",
        Outcome::Cancelled => "cancelled (nothing was debited)",
    }
}

/// Steps 306–318.
fn load(t: &Token, bank: &str, account: &str, a: Amount, encrypt: bool, json: bool) -> Result<()> {
    let req = t.wallet_load_request(account, a).map_err(not_confirmed)?;
    crash_point("requested");
    let sent = if encrypt {
        let sealed = vtoken_wallet::seal::encrypt_to_cert(&t.wallet_bank_cert()?, &req.to_bytes())
            .map_err(|e| CliError::new(e.to_string()))?;
        net::post_bytes(bank, api::LOAD_SEALED, &sealed)
    } else {
        net::post(bank, api::LOAD, &req)
    };
    let permit = match sent.map_err(no_answer)? {
        Reply::Message(m) => m,
        Reply::Refused(code, msg) => {
            // Nothing was debited for a refused request: the token gives it up and
            // the bank burns the sequence number.
            let abort = t.wallet_load_abort(&msg)?;
            crash_point("aborted");
            if let Ok(Reply::Message(m)) = net::post(bank, api::ABORT, &abort) {
                let _ = t.wallet_load_settled(&m);
            }
            bail!("the bank refused the load ({code}): {msg}");
        }
    };
    crash_point("permit");
    // 313: a permit that fails verification is answered with the signed abort
    // (315): the bank refunds.
    let receipt = match t.wallet_load_permit(&permit) {
        Ok(r) => r,
        Err(e) => {
            let why = crate::error::describe(&e);
            let abort = t.wallet_load_abort(&why)?;
            crash_point("aborted");
            let refunded = match net::post(bank, api::ABORT, &abort) {
                Ok(Reply::Message(m)) => t.wallet_load_settled(&m).is_ok(),
                _ => false,
            };
            bail!(
                "the bank's permit was refused ({why}); {}",
                if refunded {
                    "the bank refunded the debit"
                } else {
                    "the refund is settled at the next contact"
                }
            );
        }
    };
    crash_point("credited");
    let settlement = match net::post(bank, api::RECEIPT, &receipt).map_err(no_answer)? {
        Reply::Message(m) => m,
        Reply::Refused(code, msg) => bail!(
            "the wallet is credited but the bank refused the receipt ({code}): {msg}; \
             `vtoken wallet settle` retries"
        ),
    };
    crash_point("settlement");
    let out = t.wallet_load_settled(&settlement)?;
    let i = t.wallet_info()?;
    if json {
        print_json(&json!({
            "loaded": a.to_string(),
            "balance": i.balance.to_string(),
            "currency": i.currency,
            "outcome": format!("{out:?}").to_lowercase(),
        }))?;
    } else {
        outln!(
            "loaded {a} {}: wallet balance {} {}",
            i.currency,
            i.balance,
            i.currency
        );
    }
    Ok(())
}

fn present(url: &str, rec: &Envelope) -> Result<serde_json::Value> {
    let u = format!("{}{}", url.trim_end_matches('/'), api::PURCHASE);
    match ureq::post(&u).send_bytes(&rec.to_bytes()) {
        Ok(r) => {
            let text = r
                .into_string()
                .map_err(|e| CliError::new(format!("{u}: {e}")))?;
            serde_json::from_str(&text).map_err(|e| CliError::new(format!("{u}: {e}")))
        }
        Err(ureq::Error::Status(code, r)) => {
            bail!(
                "the bank refused the purchase record ({code}): {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(e) => bail!("{u}: {e}"),
    }
}

/// Steps G–I.
fn transfer(t: &Token, path: &Path, a: Amount, pin_file: Option<&Path>, json: bool) -> Result<()> {
    let mut card = Card::open(path).map_err(|e| CliError::new(e.to_string()))?;
    // An earlier transfer to this card that did not finish: done if the card has
    // it, else the wallet gets it back.
    if let Some(p) = t.wallet_transfer_pending()? {
        if p.card == card.number() {
            let applied = card.has_applied(t.serial(), p.id);
            crash_point("transfer-settle");
            t.wallet_transfer_finish(applied)?;
            if !json {
                outln!(
                    "earlier transfer {} of {}: {}",
                    p.id,
                    p.amount,
                    if applied {
                        "completed"
                    } else {
                        "returned to the wallet"
                    }
                );
            }
        }
    }
    // G: each checks the other's identifier.
    if !t.wallet_trusts_card(card.number())? {
        bail!(
            "card {} is not on this wallet's list of trusted cards (add it: `vtoken wallet trust-card --number {}`)",
            card.number(),
            card.number()
        );
    }
    if !card.trusts(t.serial()) {
        bail!(
            "the card does not trust token {} (its list: {})",
            t.serial(),
            card.trusted_serials().join(", ")
        );
    }
    // H: the card balance, then the card PIN.
    if !json {
        outln!(
            "card {} balance: {} {}",
            card.number(),
            card.balance(),
            card.currency()
        );
    }
    let pin = match pin_file {
        Some(f) => first_line(f)?,
        None => pin::prompt_named("card PIN")?,
    };
    // I: the card checks its PIN, the wallet is debited, the card credited.
    card.verify_pin(pin.as_bytes())
        .map_err(|e| CliError::new(e.to_string()))?;
    let id = t.wallet_transfer_begin(card.number(), a)?;
    crash_point("transfer-debited");
    let applied = match card.credit(t.serial(), id, a) {
        Ok(_) => true,
        // What the card file holds decides (the in-memory card may be ahead of a
        // failed write); unreadable: the transfer stays pending for the next contact.
        Err(e) => match Card::open(path) {
            Ok(c) => c.has_applied(t.serial(), id),
            Err(_) => bail!(
                "the card did not answer ({e}); transfer {id} is settled by the next transfer with this card"
            ),
        },
    };
    crash_point("card-credited");
    t.wallet_transfer_finish(applied)?;
    if !applied {
        bail!("the card did not take the transfer; the wallet keeps the amount");
    }
    let i = t.wallet_info()?;
    if json {
        print_json(&json!({
            "transferred": a.to_string(), "card": card.number(),
            "card_balance": card.balance().to_string(),
            "balance": i.balance.to_string(), "currency": i.currency,
        }))?;
    } else {
        outln!(
            "moved {a} {}: wallet {} {}, card {} {}",
            i.currency,
            i.balance,
            i.currency,
            card.balance(),
            card.currency()
        );
    }
    Ok(())
}
