//! The bank (SPEC W1–W7; patent CN101211451A steps 310–311 and 316–318):
//! `vtoken-server bank …`.
//!
//! A bank directory holds the bank's ECDSA P-256 key pair and self-signed
//! certificate (made by the same code as the CA: `ca.key`, mode 0600, and
//! `ca.pem`, copied to `bank.pem` for the tokens), and `bank.db` (see
//! [`crate::bank_store`]), or, with `--database postgres://...` on every command,
//! the bank's schema in a PostgreSQL database that several `bank serve` instances
//! share (each with a copy of the directory). The one key issues the tokens' wallet certificates and
//! signs the bank's protocol messages; a message never has a certificate's shape
//! (every one starts with `vtoken_wallet::msg::CONTEXT`), so one use cannot stand
//! in for the other.
//!
//! What the bank checks on a load request (step 310): the token is registered, its
//! newest certificate is not revoked, chains to the bank and is within its
//! validity; the request's signature and check code verify with that certificate;
//! the request names the account the certificate is bound to, in its currency.
//! Then it debits (311). A receipt (314) confirms the debit; the token's signed
//! abort (313/315) refunds it. Nothing unauthenticated ever refunds: the token may
//! already have credited, and money must move once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use clap::Subcommand;
use p256::ecdsa::SigningKey;
use pkcs8::DecodePrivateKey;
use serde_json::json;
use vtoken_pki::{LocalCa, Usage};
use vtoken_wallet::msg::{
    self, LoadAbort, LoadPermit, LoadReceipt, LoadRequest, Outcome, Payer, Purchase, Settlement,
    ALG_ECDSA_P256_SHA256,
};
use vtoken_wallet::{keys, Amount, Envelope, Kind, LoadState};

use crate::bank_store::{self, BankStore, Load, StoreError, TokenReg};
use crate::db::{DatabaseArgs, Target};
use crate::http::Refusal;

/// The bank certificate handed to tokens.
pub const BANK_CERT_FILE: &str = "bank.pem";
/// The wallet key version the bank registers (one key per token so far).
pub const KEY_VERSION: u32 = 1;
/// Validity of a wallet certificate, days.
pub const DEFAULT_WALLET_DAYS: u32 = 730;

const EXAMPLES: &str = "\
Examples:
  vtoken-server bank init --dir B
  vtoken-server bank account open --dir B --account ACC --holder 'Li Lei' --balance 1000.00
  vtoken wallet init --token T --bank-cert B/bank.pem -o wallet.csr      # on the user's PC
  vtoken-server bank register --dir B --account ACC --csr wallet.csr -o wallet.pem
  vtoken wallet install --token T --cert wallet.pem
  vtoken-server bank serve --dir B --listen 127.0.0.1:8450
  vtoken wallet load --token T --bank http://127.0.0.1:8450 --account ACC --amount 100.00
  vtoken-server bank account show --dir B --account ACC --json";

/// `vtoken-server bank …`.
#[derive(Subcommand)]
pub enum BankCommand {
    /// Create a bank: key pair and certificate (bank.pem) in DIR, and its database
    /// (bank.db in DIR, or the PostgreSQL database of --database).
    #[command(after_help = EXAMPLES)]
    Init {
        /// Directory (created if missing; an existing bank is never overwritten).
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        /// The bank's name (its certificate's CN).
        #[arg(long, default_value = "vtoken bank")]
        name: String,
    },
    /// Open, credit, show accounts and their operation log.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Issue a token's wallet certificate from its request (signed inside the token)
    /// and bind it to an account.
    #[command(after_help = "\
The request comes from `vtoken wallet init`; the certificate (PEM) goes back with
`vtoken wallet install`. Registering again (a new wallet key) replaces the binding.

Example:
  vtoken-server bank register --dir B --account ACC --csr wallet.csr -o wallet.pem")]
    Register {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        /// The account the token loads from.
        #[arg(long)]
        account: String,
        /// The wallet's PKCS#10 request (DER or PEM).
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// Where to write the wallet certificate (PEM).
        #[arg(short = 'o', long, value_name = "FILE")]
        out: PathBuf,
        /// Validity in days (0: expires at once, for tests of expiry).
        #[arg(long, default_value_t = DEFAULT_WALLET_DAYS)]
        days: u32,
    },
    /// Revoke a token's wallet certificates (by token serial or certificate serial):
    /// its loads are refused.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long)]
        serial: String,
    },
    /// Register a card's purchase key (from `vtoken card key`) so the bank verifies
    /// `vtoken card pay` records.
    CardAdd {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        /// The card number.
        #[arg(long)]
        number: String,
        /// The card's public key (PEM or DER SubjectPublicKeyInfo).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Verify a purchase record (from `vtoken wallet pay` or `vtoken card pay`) and
    /// record it once (a second presentation is refused).
    Verify {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        /// The purchase record file.
        #[arg(long, value_name = "FILE")]
        record: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The load records of a token (its online transactions, by sequence number).
    Loads {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        /// The token serial.
        #[arg(long)]
        serial: String,
        #[arg(long)]
        json: bool,
    },
    /// Serve the wallet protocol on LISTEN.
    #[command(after_help = "\
Endpoints (bodies and answers are postcard-encoded signed messages; refusals are
JSON {\"error\": ...}: 400 bad message or signature, 402 insufficient funds, 403
unknown, revoked or expired certificate or wrong account, 409 replay):
  GET  /wallet/v1/bank.pem    the bank certificate (step 301)
  POST /wallet/v1/load        load request (309) -> permit (311)
  POST /wallet/v1/receipt     execution receipt (314) -> settlement (316-318)
  POST /wallet/v1/abort       the token's abort (313/315) -> settlement (refund)
  POST /wallet/v1/purchase    purchase record -> JSON verdict

Examples:
  vtoken-server bank serve --dir B --listen 127.0.0.1:8450
  # several instances on one PostgreSQL database (each with a copy of the bank
  # directory: ca.key, ca.pem, bank.pem; `bank init --database` made it):
  vtoken-server bank serve --dir B --database postgres://vtoken@db.example.org/vtoken")]
    Serve {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8450")]
        listen: String,
        /// Serve HTTPS with this PEM certificate chain.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

/// `vtoken-server bank account …`.
#[derive(Subcommand)]
pub enum AccountCommand {
    /// Open an account.
    #[command(after_help = "\
Example:
  vtoken-server bank account open --dir B --account ACC --holder 'Li Lei' --balance 1000.00")]
    Open {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long)]
        account: String,
        /// The holder's name (the user identity).
        #[arg(long)]
        holder: String,
        /// Opening balance, major units (1000.00).
        #[arg(long, default_value = "0.00")]
        balance: String,
        /// ISO 4217 currency code.
        #[arg(long, default_value = "CNY")]
        currency: String,
    },
    /// Credit an account (a deposit).
    Credit {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long)]
        account: String,
        /// Major units.
        #[arg(long)]
        amount: String,
    },
    /// Show an account.
    Show {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long)]
        account: String,
        /// Print JSON (`"balance": "900.00"`, a decimal string).
        #[arg(long)]
        json: bool,
    },
    /// The account's operation log.
    Log {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
    },
}

/// The bank database of `dir` (`db`: `--database`, default `bank.db` in `dir`),
/// which must exist: a SQLite file made by `bank init`, or, on PostgreSQL, a bank
/// directory (its certificate) next to a database `bank init` claimed.
fn db(dir: &Path, db: &DatabaseArgs) -> Result<BankStore, String> {
    let target = bank_store::target(dir, db.database.as_deref()).map_err(|e| e.to_string())?;
    let made = match &target {
        Target::Sqlite(p) => p.exists(),
        Target::Postgres(_) => dir.join(BANK_CERT_FILE).exists(),
    };
    if !made {
        return Err(format!(
            "{} is not a bank (create one with `vtoken-server bank init --dir {}`)",
            dir.display(),
            dir.display()
        ));
    }
    BankStore::open(&target).map_err(|e| e.to_string())
}

fn amount(s: &str) -> Result<Amount, String> {
    s.parse::<Amount>().map_err(|e| e.to_string())
}

/// Runs one `bank` subcommand.
pub fn run(cmd: BankCommand) -> Result<(), String> {
    match cmd {
        BankCommand::Init { dir, name, db } => {
            if dir.join(bank_store::DB_FILE).exists() || dir.join(BANK_CERT_FILE).exists() {
                return Err(format!(
                    "a bank exists in {} (not overwritten)",
                    dir.display()
                ));
            }
            // The database first: a wrong --database, or one that holds a bank,
            // leaves no half-made bank directory behind.
            let target =
                bank_store::target(&dir, db.database.as_deref()).map_err(|e| e.to_string())?;
            if let Target::Postgres(_) = target {
                let store = BankStore::open(&target).map_err(|e| e.to_string())?;
                if store.bank_cert().map_err(|e| e.to_string())?.is_some() {
                    return Err(format!(
                        "{} already holds a bank; it is never overwritten (the other \
                         instances of that bank need a copy of its directory)",
                        store.describe()
                    ));
                }
            }
            let ca = LocalCa::init(&dir, &name).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(BANK_CERT_FILE), ca.cert_pem())
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let store = BankStore::open(&target).map_err(|e| e.to_string())?;
            if !store.claim(ca.cert_der()).map_err(|e| e.to_string())? {
                return Err(format!(
                    "{} was claimed by another bank while this one was made",
                    store.describe()
                ));
            }
            println!(
                "created bank {} in {} ({BANK_CERT_FILE}, {}; database {})",
                ca.subject(),
                dir.display(),
                vtoken_pki::CA_KEY_FILE,
                store.describe()
            );
            Ok(())
        }
        BankCommand::Account(c) => account_command(c),
        BankCommand::Register {
            dir,
            account,
            csr,
            out,
            days,
            db: d,
        } => {
            let ca = LocalCa::load(&dir).map_err(|e| e.to_string())?;
            let store = db(&dir, &d)?;
            store.account(&account).map_err(|e| e.to_string())?;
            let raw = std::fs::read(&csr).map_err(|e| format!("{}: {e}", csr.display()))?;
            let der = pem_or_der(&raw, "CERTIFICATE REQUEST")?;
            let mut info =
                vtoken_pki::verify_csr(&der).map_err(|e| format!("{}: {e}", csr.display()))?;
            // The bank decides the usage: a wallet key signs messages.
            info.usage = Usage::Signing;
            let cert = ca.issue(&info, days).map_err(|e| e.to_string())?;
            let cert_serial = cert_serial_of(&cert)?;
            store
                .register(&TokenReg {
                    cert_serial: cert_serial.clone(),
                    token_serial: info.serial.clone(),
                    account: account.clone(),
                    cert: cert.clone(),
                    key_version: KEY_VERSION,
                    revoked: false,
                })
                .map_err(|e| e.to_string())?;
            std::fs::write(&out, vtoken_pki::cert_der_to_pem(&cert))
                .map_err(|e| format!("{}: {e}", out.display()))?;
            println!(
                "registered token {} on account {account} (certificate {}, {})",
                info.serial,
                cert_serial,
                out.display()
            );
            Ok(())
        }
        BankCommand::Revoke { dir, serial, db: d } => {
            let revoked = db(&dir, &d)?
                .revoke(serial.trim())
                .map_err(|e| e.to_string())?;
            if revoked.is_empty() {
                return Err(format!("no live wallet certificate {serial}"));
            }
            for s in revoked {
                println!("revoked wallet certificate {s}");
            }
            Ok(())
        }
        BankCommand::CardAdd {
            dir,
            number,
            key,
            db: d,
        } => {
            let raw = std::fs::read(&key).map_err(|e| format!("{}: {e}", key.display()))?;
            let spki = pem_or_der(&raw, "PUBLIC KEY")?;
            keys::verifying_key_of_spki(&spki).map_err(|e| e.to_string())?;
            db(&dir, &d)?
                .add_card(&number, &spki)
                .map_err(|e| e.to_string())?;
            println!("card {number} registered");
            Ok(())
        }
        BankCommand::Verify {
            dir,
            record,
            json,
            db: d,
        } => {
            let bank = Bank::open(&dir, &d)?;
            let raw = std::fs::read(&record).map_err(|e| format!("{}: {e}", record.display()))?;
            let v = bank.purchase(&raw).map_err(|r| r.message)?;
            if json {
                println!("{v}");
            } else {
                println!(
                    "verified purchase: {} {} to {} by {} (sequence {})",
                    v["amount"].as_str().unwrap_or_default(),
                    v["currency"].as_str().unwrap_or_default(),
                    v["merchant"].as_str().unwrap_or_default(),
                    v["payer"].as_str().unwrap_or_default(),
                    v["seq"]
                );
            }
            Ok(())
        }
        BankCommand::Loads {
            dir,
            serial,
            json,
            db: d,
        } => {
            let loads = db(&dir, &d)?.loads(&serial).map_err(|e| e.to_string())?;
            if json {
                let v: Vec<serde_json::Value> = loads
                    .iter()
                    .map(|l| {
                        json!({
                            "seq": l.seq,
                            "account": l.account,
                            "amount": l.amount.to_string(),
                            "state": l.state.as_str(),
                            "host_date": l.host_date,
                            "host_time": l.host_time,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::from(v));
            } else {
                for l in loads {
                    println!(
                        "{:>6} {:<10} {:>12} {} {} {}",
                        l.seq, l.state, l.amount, l.account, l.host_date, l.host_time
                    );
                }
            }
            Ok(())
        }
        BankCommand::Serve {
            dir,
            listen,
            tls_cert,
            tls_key,
            db: d,
        } => {
            let bank = Arc::new(Bank::open(&dir, &d)?);
            tracing::info!(database = %bank.database(), "bank loaded");
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(crate::http::Tls { cert, key }),
                _ => None,
            };
            let router = crate::bank_http::router(bank);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the runtime: {e}"))?
                .block_on(crate::http::serve("bank", &listen, router, tls.as_ref()))
                .map_err(|e| format!("{listen}: {e}"))
        }
    }
}

/// The serial number of a DER certificate, hex.
fn cert_serial_of(cert: &[u8]) -> Result<String, String> {
    use der::Decode;
    let c = x509_cert::Certificate::from_der(cert).map_err(|e| e.to_string())?;
    Ok(hex::encode_upper(
        c.tbs_certificate.serial_number.as_bytes(),
    ))
}

fn pem_or_der(raw: &[u8], label: &str) -> Result<Vec<u8>, String> {
    if raw.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(raw).map_err(|_| "not PEM text".to_string())?;
        let (l, der) = der::pem::decode_vec(text.as_bytes()).map_err(|e| e.to_string())?;
        if l != label {
            return Err(format!("expected a {label}, found a {l}"));
        }
        Ok(der)
    } else {
        Ok(raw.to_vec())
    }
}

fn account_command(c: AccountCommand) -> Result<(), String> {
    match c {
        AccountCommand::Open {
            dir,
            account,
            holder,
            balance,
            currency,
            db: d,
        } => {
            vtoken_wallet::amount::check_currency(&currency).map_err(|e| e.to_string())?;
            if account.is_empty()
                || !account
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(format!(
                    "{account:?} is not an account number (letters, digits, -)"
                ));
            }
            let b = amount(&balance)?;
            db(&dir, &d)?
                .open_account(&account, &holder, b, &currency)
                .map_err(|e| e.to_string())?;
            println!("opened account {account} for {holder}: {b} {currency}");
            Ok(())
        }
        AccountCommand::Credit {
            dir,
            account,
            amount: a,
            db: d,
        } => {
            let a = amount(&a)?;
            let b = db(&dir, &d)?
                .credit_account(&account, a)
                .map_err(|e| e.to_string())?;
            println!("credited {a} to {account}: balance {b}");
            Ok(())
        }
        AccountCommand::Show {
            dir,
            account,
            json,
            db: d,
        } => {
            let a = db(&dir, &d)?.account(&account).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    json!({
                        "account": a.number,
                        "holder": a.holder,
                        "balance": a.balance.to_string(),
                        "currency": a.currency,
                    })
                );
            } else {
                println!(
                    "account {} ({}): {} {}",
                    a.number, a.holder, a.balance, a.currency
                );
            }
            Ok(())
        }
        AccountCommand::Log {
            dir,
            account,
            json,
            db: d,
        } => {
            let ops = db(&dir, &d)?.oplog(&account).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&ops).map_err(|e| e.to_string())?
                );
            } else {
                for o in ops {
                    println!(
                        "{} {:<22} {:>12} balance {:>12} token {} seq {}",
                        o.at, o.op, o.amount, o.balance, o.token_serial, o.seq
                    );
                }
            }
            Ok(())
        }
    }
}

/// The bank as a protocol party.
pub struct Bank {
    cert_der: Vec<u8>,
    cert_pem: String,
    key: SigningKey,
    store: BankStore,
}

/// `/readyz` and `/metrics` of the bank ask its database.
impl crate::ops::Probe for Bank {
    fn ready(&self) -> Result<(), Refusal> {
        crate::ops::Probe::ready(self.store.db())
    }
    fn pool_status(&self) -> Option<crate::ops::PoolStatus> {
        self.store.db().pool_status()
    }
}

fn refused(status: u16, m: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: m.into(),
    }
}

/// 409 replay or conflict, 402 funds; 503 when the database is unreachable (nothing
/// was changed: the client may send the same message again), 500 otherwise.
fn store_refusal(e: StoreError) -> Refusal {
    match e {
        StoreError::Refused(m) => refused(409, m),
        StoreError::Funds(m) => refused(402, m),
        StoreError::Db(e) => {
            tracing::error!("database: {e}");
            let status = if matches!(e, crate::db::Error::Unavailable(_)) {
                503
            } else {
                500
            };
            refused(status, format!("bank database: {e}"))
        }
    }
}

impl Bank {
    /// Opens the bank in `dir` on its database (`db`: `--database`).
    pub fn open(dir: &Path, db_args: &DatabaseArgs) -> Result<Bank, String> {
        let ca = LocalCa::load(dir).map_err(|e| e.to_string())?;
        let key_path = dir.join(vtoken_pki::CA_KEY_FILE);
        let pem = zeroize::Zeroizing::new(
            std::fs::read_to_string(&key_path)
                .map_err(|e| format!("{}: {e}", key_path.display()))?,
        );
        let key =
            SigningKey::from_pkcs8_pem(&pem).map_err(|e| format!("{}: {e}", key_path.display()))?;
        let store = db(dir, db_args)?;
        // A database claimed by a bank serves that bank only (a copy of another
        // bank's directory would sign permits the tokens do not trust).
        if let Some(claimed) = store.bank_cert().map_err(|e| e.to_string())? {
            if claimed != ca.cert_der() {
                return Err(format!(
                    "{} belongs to another bank (its certificate is not {}'s)",
                    store.describe(),
                    dir.display()
                ));
            }
        }
        Ok(Bank {
            cert_der: ca.cert_der().to_vec(),
            cert_pem: ca.cert_pem(),
            key,
            store,
        })
    }

    /// Which database the bank uses (for the log).
    pub fn database(&self) -> &str {
        self.store.describe()
    }

    /// The bank certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn store(&self) -> &BankStore {
        &self.store
    }

    fn seal<T: serde::Serialize>(
        &self,
        kind: Kind,
        user: &str,
        body: &T,
    ) -> Result<Vec<u8>, Refusal> {
        Envelope::seal_with(kind, user, body, &self.key)
            .map(|e| e.to_bytes())
            .map_err(|e| Refusal::internal(e.to_string()))
    }

    /// The registration of `serial` and its key, for a message from it. `live`: the
    /// certificate must also be unrevoked and valid now (a load); a receipt or an
    /// abort only needs the key (it settles money already moved).
    fn sender(
        &self,
        serial: &str,
        live: bool,
    ) -> Result<(TokenReg, p256::ecdsa::VerifyingKey), Refusal> {
        let reg = self
            .store()
            .token(serial)
            .map_err(store_refusal)?
            .ok_or_else(|| {
                refused(
                    403,
                    format!("token {serial} is not registered with this bank"),
                )
            })?;
        if live {
            if reg.revoked {
                return Err(refused(
                    403,
                    format!("the wallet certificate of token {serial} is revoked"),
                ));
            }
            vtoken_pki::verify_chain(&reg.cert, &[], &self.cert_der, SystemTime::now()).map_err(
                |e| {
                    refused(
                        403,
                        format!("the wallet certificate of token {serial}: {e}"),
                    )
                },
            )?;
        }
        let vk =
            keys::verifying_key_of_cert(&reg.cert).map_err(|e| Refusal::internal(e.to_string()))?;
        Ok((reg, vk))
    }

    /// Steps 309–311 with the request encrypted to the bank (`vtoken_wallet::seal`):
    /// decrypted with the bank key, then exactly [`Bank::load`]. What does not
    /// decrypt is refused before anything is looked up or debited.
    pub fn load_sealed(&self, body: &[u8]) -> Result<Vec<u8>, Refusal> {
        let plain = zeroize::Zeroizing::new(
            vtoken_wallet::seal::decrypt_with(&self.key, body)
                .map_err(|e| Refusal::bad_request(e.to_string()))?,
        );
        self.load(&plain)
    }

    /// Steps 310–311.
    pub fn load(&self, body: &[u8]) -> Result<Vec<u8>, Refusal> {
        let env = Envelope::from_bytes(body).map_err(|e| Refusal::bad_request(e.to_string()))?;
        let (reg, vk) = self.sender(&env.user, true)?;
        let req: LoadRequest = env
            .open(Kind::LoadRequest, &vk)
            .map_err(|e| Refusal::bad_request(e.to_string()))?;
        if req.token_serial != env.user {
            return Err(Refusal::bad_request("the request names another token"));
        }
        if req.alg != ALG_ECDSA_P256_SHA256 || req.key_version != reg.key_version {
            return Err(Refusal::bad_request(format!(
                "algorithm {} / key version {} not accepted (expected {ALG_ECDSA_P256_SHA256} / {})",
                req.alg, req.key_version, reg.key_version
            )));
        }
        if req.amount.is_zero() {
            return Err(Refusal::bad_request("the amount must be more than 0.00"));
        }
        let (host_date, host_time) = msg::utc_date_time(msg::unix_now());
        let l = Load {
            token_serial: req.token_serial.clone(),
            seq: req.seq,
            account: req.account.clone(),
            amount: req.amount,
            random: req.random,
            cert_serial: reg.cert_serial.clone(),
            state: LoadState::Debited,
            host_date,
            host_time,
        };
        if req.account != reg.account {
            let _ = self.store().cancel_unseen(&l, "refused-wrong-account");
            return Err(refused(
                403,
                format!(
                    "token {} is not bound to account {}",
                    req.token_serial, req.account
                ),
            ));
        }
        let acc = self.store().account(&reg.account).map_err(store_refusal)?;
        if acc.currency != req.currency {
            let _ = self.store().cancel_unseen(&l, "refused-currency");
            return Err(Refusal::bad_request(format!(
                "account {} is in {}, not {}",
                acc.number, acc.currency, req.currency
            )));
        }
        let done = self.store().debit(&l).map_err(store_refusal)?;
        tracing::info!(token = %done.token_serial, seq = done.seq, amount = %done.amount, "load debited");
        let permit = LoadPermit {
            token_serial: done.token_serial.clone(),
            account: done.account,
            amount: done.amount,
            seq: done.seq,
            random: done.random,
            host_date: done.host_date,
            host_time: done.host_time,
        };
        self.seal(Kind::LoadPermit, &done.token_serial, &permit)
    }

    fn settlement(
        &self,
        serial: &str,
        seq: u64,
        random: [u8; 16],
        st: LoadState,
        bal: Amount,
    ) -> Result<Vec<u8>, Refusal> {
        let outcome = match st {
            LoadState::Confirmed => Outcome::Confirmed,
            LoadState::Refunded => Outcome::Refunded,
            LoadState::Cancelled => Outcome::Cancelled,
            s => return Err(Refusal::internal(format!("load left {s}"))),
        };
        let s = Settlement {
            token_serial: serial.to_string(),
            seq,
            random,
            outcome,
            account_balance: bal,
        };
        self.seal(Kind::Settlement, serial, &s)
    }

    /// Steps 316–317: a verified receipt confirms the debit.
    pub fn receipt(&self, body: &[u8]) -> Result<Vec<u8>, Refusal> {
        let env = Envelope::from_bytes(body).map_err(|e| Refusal::bad_request(e.to_string()))?;
        let (_, vk) = self.sender(&env.user, false)?;
        let r: LoadReceipt = env
            .open(Kind::LoadReceipt, &vk)
            .map_err(|e| Refusal::bad_request(e.to_string()))?;
        if r.token_serial != env.user {
            return Err(Refusal::bad_request("the receipt names another token"));
        }
        let rec = self
            .store()
            .load(&r.token_serial, r.seq)
            .map_err(store_refusal)?
            .ok_or_else(|| {
                refused(
                    409,
                    format!("no load {} of token {}", r.seq, r.token_serial),
                )
            })?;
        if rec.amount != r.amount {
            return Err(Refusal::bad_request(
                "the receipt's amount is not the load's",
            ));
        }
        let (st, bal) = self
            .store()
            .settle(&r.token_serial, r.seq, &r.random, true, None)
            .map_err(store_refusal)?;
        tracing::info!(token = %r.token_serial, seq = r.seq, state = %st, "load settled");
        self.settlement(&r.token_serial, r.seq, r.random, st, bal)
    }

    /// Steps 315/318: the token's signed abort refunds the debit (or burns the
    /// sequence number when nothing was debited).
    pub fn abort(&self, body: &[u8]) -> Result<Vec<u8>, Refusal> {
        let env = Envelope::from_bytes(body).map_err(|e| Refusal::bad_request(e.to_string()))?;
        let (reg, vk) = self.sender(&env.user, false)?;
        let a: LoadAbort = env
            .open(Kind::LoadAbort, &vk)
            .map_err(|e| Refusal::bad_request(e.to_string()))?;
        if a.token_serial != env.user {
            return Err(Refusal::bad_request("the abort names another token"));
        }
        let (d, t) = msg::utc_date_time(msg::unix_now());
        let unseen = Load {
            token_serial: a.token_serial.clone(),
            seq: a.seq,
            account: reg.account.clone(),
            amount: Amount::ZERO,
            random: a.random,
            cert_serial: reg.cert_serial.clone(),
            state: LoadState::Cancelled,
            host_date: d,
            host_time: t,
        };
        let (st, bal) = self
            .store()
            .settle(&a.token_serial, a.seq, &a.random, false, Some(&unseen))
            .map_err(store_refusal)?;
        tracing::info!(token = %a.token_serial, seq = a.seq, state = %st, reason = %a.reason, "load aborted by the token");
        self.settlement(&a.token_serial, a.seq, a.random, st, bal)
    }

    /// W7: verifies a purchase record (wallet or card) and records it once.
    pub fn purchase(&self, body: &[u8]) -> Result<serde_json::Value, Refusal> {
        let env = Envelope::from_bytes(body).map_err(|e| Refusal::bad_request(e.to_string()))?;
        let p: Purchase = match env.kind {
            Kind::Purchase => {
                let unverified: Purchase = postcard::from_bytes(&env.body)
                    .map_err(|e| Refusal::bad_request(format!("not a purchase: {e}")))?;
                let vk = match &unverified.payer {
                    Payer::Token(s) => self.sender(s, true)?.1,
                    Payer::Card(n) => {
                        let spki = self
                            .store()
                            .card_spki(n)
                            .map_err(store_refusal)?
                            .ok_or_else(|| {
                                refused(403, format!("card {n} is not registered with this bank"))
                            })?;
                        keys::verifying_key_of_spki(&spki)
                            .map_err(|e| Refusal::internal(e.to_string()))?
                    }
                };
                env.open(Kind::Purchase, &vk)
                    .map_err(|e| Refusal::bad_request(e.to_string()))?
            }
            k => {
                return Err(Refusal::bad_request(format!(
                    "a {k:?} is not a purchase record"
                )))
            }
        };
        let payer = match &p.payer {
            Payer::Token(s) => s.clone(),
            Payer::Card(n) => n.clone(),
        };
        if payer != env.user {
            return Err(Refusal::bad_request("the record names another payer"));
        }
        let key = match &p.payer {
            Payer::Token(s) => format!("token:{s}"),
            Payer::Card(n) => format!("card:{n}"),
        };
        if !self
            .store()
            .record_purchase(&key, p.seq, &p.merchant, p.amount)
            .map_err(store_refusal)?
        {
            return Err(refused(
                409,
                format!("purchase {} of {payer} was already presented", p.seq),
            ));
        }
        Ok(json!({
            "verified": true,
            "payer": payer,
            "kind": if matches!(p.payer, Payer::Token(_)) { "wallet" } else { "card" },
            "merchant": p.merchant,
            "amount": p.amount.to_string(),
            "currency": p.currency,
            "seq": p.seq,
            "date": p.date,
        }))
    }
}
