//! `vtoken otp`: OTP credentials on the token, like a YubiKey's OATH applet
//! (`add`, `list`, `code`, `delete`, `show --qr`).

use clap::{Args, Subcommand, ValueEnum};
use otp_core::{Algorithm, OtpKind, OtpUri};
use serde_json::json;
use vault_core::otp::OtpSummary;
use vault_core::token::UserType;
use zeroize::Zeroizing;

use crate::args::UserPin;
use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::output::{outln, print_json};
use crate::pin;

/// HMAC hash of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl From<OtpAlgorithm> for Algorithm {
    fn from(a: OtpAlgorithm) -> Algorithm {
        match a {
            OtpAlgorithm::Sha1 => Algorithm::Sha1,
            OtpAlgorithm::Sha256 => Algorithm::Sha256,
            OtpAlgorithm::Sha512 => Algorithm::Sha512,
        }
    }
}

/// `vtoken otp add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// An otpauth:// URI (as in a QR code); the credential's name is its label,
    /// `issuer:account`.
    #[arg(long, value_name = "URI", conflicts_with_all = ["name", "secret", "issuer", "hotp", "counter", "digits", "period", "algorithm"])]
    pub uri: Option<String>,
    /// The credential's name: `account`, or `issuer:account` (without --issuer).
    #[arg(long, requires = "secret")]
    pub name: Option<String>,
    /// The shared secret in base32 (as providers show it).
    #[arg(long, value_name = "BASE32", requires = "name")]
    pub secret: Option<String>,
    /// The provider (the name becomes `issuer:NAME`).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Counter-based HOTP instead of time-based TOTP.
    #[arg(long)]
    pub hotp: bool,
    /// HOTP: the counter of the first code.
    #[arg(long, requires = "hotp", value_name = "C")]
    pub counter: Option<u64>,
    /// Code length (6 to 10).
    #[arg(long, default_value_t = 6)]
    pub digits: u32,
    /// TOTP time step in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub period: u64,
    /// HMAC hash.
    #[arg(long, value_enum, default_value_t = OtpAlgorithm::Sha1)]
    pub algorithm: OtpAlgorithm,
    /// Ask for confirmation (through the configured prompt agent) before every use.
    #[arg(long)]
    pub confirm: bool,
    #[command(flatten)]
    pub user: UserPin,
}

#[derive(Debug, Subcommand)]
pub enum OtpCommand {
    /// Add an HOTP or TOTP credential, from an otpauth:// URI or a base32 secret.
    #[command(after_help = "\
Examples:
  vtoken otp add --pin 123456 --uri 'otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME'
  vtoken otp add --name ACME:alice --secret JBSWY3DPEHPK3PXP
  vtoken otp add --name bob --issuer Bank --secret GEZDGNBV... --hotp --counter 0 --digits 8
  vtoken otp add --uri \"$URI\" --confirm     # every use asks the prompt agent")]
    Add(AddArgs),

    /// List OTP credentials (never their secrets).
    #[command(after_help = "\
With --json, prints an array of {name, issuer, account, kind, algorithm, digits,
period, counter, confirm}; counter is the next HOTP counter.")]
    List {
        #[command(flatten)]
        user: UserPin,
    },

    /// Print the current code of a credential (only the code, on stdout).
    #[command(after_help = "\
An HOTP counter is advanced and saved on the token before the code is shown, so no
counter is ever used twice, even if vtoken is killed.

Examples:
  vtoken otp code --pin 123456 ACME:alice
  vtoken otp code ACME:alice --time 1700000000     # TOTP at a given Unix time")]
    Code {
        /// The credential (`issuer:account`, as `vtoken otp list` shows it).
        name: String,
        /// TOTP: the Unix time to compute the code for [default: now].
        #[arg(long, value_name = "UNIX")]
        time: Option<u64>,
        #[command(flatten)]
        user: UserPin,
    },

    /// Delete a credential.
    Delete {
        /// The credential.
        name: String,
        #[command(flatten)]
        user: UserPin,
    },

    /// Show a credential's otpauth:// URI (it contains the secret), with --qr as a
    /// QR code for enrolling a phone.
    #[command(after_help = "\
Example:
  vtoken otp show ACME:alice --qr")]
    Show {
        /// The credential.
        name: String,
        /// Also draw the URI as a QR code in the terminal.
        #[arg(long)]
        qr: bool,
        #[command(flatten)]
        user: UserPin,
    },
}

/// Opens the token and logs in as the user (PIN given or prompted).
fn open_user(ctx: &Ctx, user: &UserPin) -> Result<Open> {
    let p = pin::user(user)?;
    let open = ctx.open()?;
    open.login(UserType::User, &p)?;
    Ok(open)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn otp_err(e: otp_core::Error) -> CliError {
    CliError::new(e.to_string())
}

fn kind_str(k: OtpKind) -> &'static str {
    k.as_str()
}

fn summary_json(s: &OtpSummary) -> serde_json::Value {
    json!({
        "name": s.name,
        "issuer": s.issuer,
        "account": s.account,
        "kind": kind_str(s.kind),
        "algorithm": s.algorithm.as_str(),
        "digits": s.digits,
        "period": s.period,
        "counter": s.counter,
        "confirm": s.confirm,
    })
}

/// The credential `vtoken otp add` describes.
fn uri_of(a: &AddArgs) -> Result<OtpUri> {
    if let Some(u) = &a.uri {
        let u = Zeroizing::new(u.clone());
        return OtpUri::parse(&u).map_err(otp_err);
    }
    let (Some(name), Some(secret)) = (&a.name, &a.secret) else {
        bail!("give --uri URI, or --name NAME and --secret BASE32");
    };
    let secret = otp_core::base32::decode(secret).map_err(otp_err)?;
    let (issuer, account) = match (&a.issuer, name.split_once(':')) {
        (Some(i), _) => (Some(i.as_str()), name.as_str()),
        (None, Some((i, acc))) => (Some(i), acc),
        (None, None) => (None, name.as_str()),
    };
    let mut u = if a.hotp {
        OtpUri::new_hotp(issuer, account, secret, a.counter.unwrap_or(0))
    } else {
        OtpUri::new_totp(issuer, account, secret)
    };
    u.digits = a.digits;
    u.period = a.period;
    u.algorithm = a.algorithm.into();
    u.validate().map_err(otp_err)?;
    Ok(u)
}

/// Runs one `vtoken otp` subcommand.
pub fn run(ctx: &Ctx, json: bool, cmd: &OtpCommand) -> Result<()> {
    match cmd {
        OtpCommand::Add(a) => {
            let uri = uri_of(a)?;
            let open = open_user(ctx, &a.user)?;
            open.token.otp_add(&uri, a.confirm)?;
            let name = uri.name();
            let list = open.token.otp_list()?;
            let s = list
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| CliError::new("the credential vanished after adding it"))?;
            if json {
                print_json(&json!({ "added": summary_json(s) }))?;
            } else {
                outln!(
                    "added {} credential {:?} ({}, {} digits{})",
                    kind_str(s.kind).to_uppercase(),
                    s.name,
                    s.algorithm,
                    s.digits,
                    if s.confirm { ", confirm each use" } else { "" }
                );
            }
        }
        OtpCommand::List { user } => {
            let open = open_user(ctx, user)?;
            let list = open.token.otp_list()?;
            if json {
                let v: Vec<_> = list.iter().map(summary_json).collect();
                print_json(&v)?;
            } else if list.is_empty() {
                outln!("no OTP credentials (add one with `vtoken otp add`)");
            } else {
                for s in &list {
                    let detail = match s.kind {
                        OtpKind::Totp => format!("every {}s", s.period),
                        OtpKind::Hotp => format!("counter {}", s.counter),
                    };
                    outln!(
                        "{}  {} {} {} digits, {}{}",
                        s.name,
                        kind_str(s.kind).to_uppercase(),
                        s.algorithm,
                        s.digits,
                        detail,
                        if s.confirm { ", confirm" } else { "" }
                    );
                }
            }
        }
        OtpCommand::Code { name, time, user } => {
            let open = open_user(ctx, user)?;
            let code = open
                .token
                .otp_code(name, time.unwrap_or_else(now))
                .map_err(|e| match e {
                    vault_core::Error::FunctionRejected => {
                        CliError::new(format!("use of {name:?} was not confirmed"))
                    }
                    e => e.into(),
                })?;
            if json {
                print_json(&json!({ "name": name, "code": code }))?;
            } else {
                outln!("{code}");
            }
        }
        OtpCommand::Delete { name, user } => {
            let open = open_user(ctx, user)?;
            open.token.otp_delete(name)?;
            if json {
                print_json(&json!({ "deleted": name }))?;
            } else {
                outln!("deleted OTP credential {name:?}");
            }
        }
        OtpCommand::Show { name, qr, user } => {
            let open = open_user(ctx, user)?;
            let uri = open.token.otp_uri(name)?;
            let text = Zeroizing::new(uri.to_uri());
            let drawn = if *qr { Some(qr_text(&text)?) } else { None };
            if json {
                print_json(&json!({ "name": name, "uri": *text, "qr": drawn }))?;
            } else {
                outln!("{}", *text);
                if let Some(d) = drawn {
                    outln!("{d}");
                }
            }
            eprintln!("note: the URI and QR code contain the secret; keep them private");
        }
    }
    Ok(())
}

/// `text` as a QR code in Unicode half blocks (two modules per character cell),
/// drawn for a dark terminal background, with its quiet zone.
pub fn qr_text(text: &str) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| CliError::new(format!("cannot draw a QR code: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
