//! `vtoken otp`: OTP credentials on the token, like a YubiKey's OATH applet
//! (`add`, `list`, `code`, `codes`, `delete`, `show --qr`).
//!
//! Credentials are named on the command line as `ykman oath` names them: the exact
//! name, else case-insensitively, else by a unique case-insensitive prefix of the
//! name or of its account part ([`resolve`]); an ambiguous prefix is an error
//! listing the matches, so a code is never computed for a credential the user did
//! not mean (an HOTP code spends a counter).

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
    #[arg(long, value_name = "URI", conflicts_with_all = ["name", "secret", "issuer", "hotp", "counter", "digits", "period", "algorithm", "qr_image"])]
    pub uri: Option<String>,
    /// A picture of the provider's QR code (PNG or JPEG, e.g. a screenshot): the
    /// otpauth:// URI in it is read here.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "secret", "issuer", "hotp", "counter", "digits", "period", "algorithm"])]
    pub qr_image: Option<std::path::PathBuf>,
    /// The credential's name: `account`, or `issuer:account` (without --issuer).
    #[arg(long)]
    pub name: Option<String>,
    /// The shared secret in base32 (as providers show it) [default: asked without
    /// echo on the terminal; it is visible in the process list when given here].
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
Give the credential as an otpauth:// URI, a QR code picture, or a name and its
base32 secret; without --secret the secret is asked for without echo (spaces and
case do not matter).

Examples:
  vtoken otp add --pin 123456 --uri 'otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME'
  vtoken otp add --qr-image github-qr.png
  vtoken otp add --name GitHub:alice              # asks for the secret
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

NAME is matched as `ykman oath accounts code` does: exactly, else ignoring case, else
as a unique prefix of the name or of its account (an ambiguous one lists the matches).

Examples:
  vtoken otp code --pin 123456 ACME:alice
  vtoken otp code github                           # GitHub:alice, if it is the only one
  vtoken otp code ACME:alice --time 1700000000     # TOTP at a given Unix time")]
    Code {
        /// The credential (`issuer:account` as `vtoken otp list` shows it, or a
        /// unique prefix, any case).
        name: String,
        /// TOTP: the Unix time to compute the code for [default: now].
        #[arg(long, value_name = "UNIX")]
        time: Option<u64>,
        #[command(flatten)]
        user: UserPin,
    },

    /// Every TOTP code with the seconds it stays valid (like `ykman oath accounts
    /// code`).
    #[command(after_help = "\
HOTP credentials are listed without a code: `codes` never advances a counter (use
`vtoken otp code NAME`). Credentials that ask for confirmation on each use are listed
without a code too. With --json: an array of {name, kind, code, valid_for}.

Examples:
  vtoken otp codes
  vtoken otp codes github                          # only names matching a prefix")]
    Codes {
        /// Only credentials whose name or account starts with this (any case).
        filter: Option<String>,
        #[command(flatten)]
        user: UserPin,
    },

    /// Delete a credential (asks first; --force does not).
    #[command(after_help = "\
Examples:
  vtoken otp delete github                         # asks \"Delete ...? [y/N]\"
  vtoken otp delete GitHub:alice --force           # scripts: no question")]
    Delete {
        /// The credential (name or unique prefix, as for `code`).
        name: String,
        /// Delete without asking.
        #[arg(long, short = 'f')]
        force: bool,
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
    if let Some(f) = &a.qr_image {
        let u = read_qr(f)?;
        return OtpUri::parse(&u).map_err(|e| {
            CliError::new(format!(
                "{}: the QR code is not an OTP credential: {e}",
                f.display()
            ))
        });
    }
    let Some(name) = &a.name else {
        bail!("give --uri URI, --qr-image FILE, or --name NAME (and its secret)");
    };
    let secret = match &a.secret {
        Some(s) => Zeroizing::new(s.clone()),
        None => ask_secret()?,
    };
    let secret = otp_core::base32::decode(&secret).map_err(otp_err)?;
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

/// The base32 secret, asked without echo on the terminal.
fn ask_secret() -> Result<Zeroizing<String>> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("no secret given and stdin is not a terminal: use --secret BASE32 or --uri URI");
    }
    loop {
        let s = rpassword::prompt_password("Secret (base32, as the provider shows it): ")
            .map(Zeroizing::new)
            .map_err(|e| CliError::new(format!("cannot read the secret: {e}")))?;
        let compact: Zeroizing<String> = Zeroizing::new(
            s.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect(),
        );
        match otp_core::base32::decode(&compact) {
            Ok(_) if !compact.is_empty() => return Ok(compact),
            Ok(_) => eprintln!("the secret is empty; try again (Ctrl-C gives up)"),
            Err(e) => eprintln!("{e}; try again (Ctrl-C gives up)"),
        }
    }
}

/// The text of the QR code in the picture `path`.
fn read_qr(path: &std::path::Path) -> Result<Zeroizing<String>> {
    let img = image::open(path)
        .map_err(|e| CliError::new(format!("{}: cannot read the picture: {e}", path.display())))?
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let Some(grid) = grids.first() else {
        bail!(
            "{}: no QR code found in the picture (crop it to the code, or use --uri)",
            path.display()
        );
    };
    let (_, content) = grid.decode().map_err(|e| {
        CliError::new(format!(
            "{}: the QR code is unreadable: {e}",
            path.display()
        ))
    })?;
    Ok(Zeroizing::new(content))
}

/// The one credential `sel` names: the exact name, else the name ignoring case,
/// else a unique case-insensitive prefix of the name or of its account.
pub fn resolve<'a>(list: &'a [OtpSummary], sel: &str) -> Result<&'a OtpSummary> {
    if let Some(s) = list.iter().find(|s| s.name == sel) {
        return Ok(s);
    }
    let low = sel.to_lowercase();
    let same: Vec<_> = list
        .iter()
        .filter(|s| s.name.to_lowercase() == low)
        .collect();
    if let [one] = same[..] {
        return Ok(one);
    }
    let hits: Vec<_> = if same.is_empty() {
        matching(list, &low)
    } else {
        same
    };
    match hits[..] {
        [one] => Ok(one),
        [] => bail!("no OTP credential named {sel:?} (see `vtoken otp list`)"),
        _ => bail!(
            "{sel:?} matches several OTP credentials: {}; give more of the name",
            hits.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Credentials whose name or account starts with `low` (lower case).
fn matching<'a>(list: &'a [OtpSummary], low: &str) -> Vec<&'a OtpSummary> {
    list.iter()
        .filter(|s| {
            s.name.to_lowercase().starts_with(low) || s.account.to_lowercase().starts_with(low)
        })
        .collect()
}

/// Asks "question [y/N]" on the terminal; a script must say --force.
fn confirm_on_terminal(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!(
            "stdin is not a terminal, so nobody can confirm: add --force to delete without asking"
        );
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
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
            let list = open.token.otp_list()?;
            let name = &resolve(&list, name)?.name;
            let code = open
                .token
                .otp_code(name, time.unwrap_or_else(now))
                .map_err(|e| match e {
                    vault_core::Error::FunctionRejected => crate::context::explain_rejection(
                        ctx,
                        CliError::new(format!("not confirmed: the use of {name:?}")),
                    ),
                    vault_core::Error::NotConfirmed(n) => {
                        CliError::new(format!("{n}; no code for {name:?} was made"))
                    }
                    e => e.into(),
                })?;
            if json {
                print_json(&json!({ "name": name, "code": code }))?;
            } else {
                outln!("{code}");
            }
        }
        OtpCommand::Codes { filter, user } => {
            let open = open_user(ctx, user)?;
            let list = open.token.otp_list()?;
            let shown = match filter {
                Some(f) => matching(&list, &f.to_lowercase()),
                None => list.iter().collect(),
            };
            codes(&open, &shown, json)?;
        }
        OtpCommand::Delete { name, force, user } => {
            let open = open_user(ctx, user)?;
            let list = open.token.otp_list()?;
            let name = &resolve(&list, name)?.name;
            if !*force && !confirm_on_terminal(&format!("Delete OTP credential {name:?}?"))? {
                bail!("not deleted (answer y to delete)");
            }
            open.token.otp_delete(name)?;
            if json {
                print_json(&json!({ "deleted": name }))?;
            } else {
                outln!("deleted OTP credential {name:?}");
            }
        }
        OtpCommand::Show { name, qr, user } => {
            let open = open_user(ctx, user)?;
            let list = open.token.otp_list()?;
            let name = &resolve(&list, name)?.name;
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

/// `vtoken otp codes`: each TOTP code with the seconds left in its step; HOTP and
/// confirm-each-use credentials without a code (no counter moves, nobody is asked).
fn codes(open: &Open, shown: &[&OtpSummary], json: bool) -> Result<()> {
    let t = now();
    let mut rows = Vec::new();
    for s in shown {
        let (code, left, note) = match s.kind {
            OtpKind::Hotp => (None, None, "HOTP: `vtoken otp code` advances the counter"),
            OtpKind::Totp if s.confirm => (None, None, "asks for confirmation: `vtoken otp code`"),
            OtpKind::Totp => match open.token.otp_code(&s.name, t) {
                Ok(c) => (Some(c), Some(s.period - t % s.period.max(1)), ""),
                Err(e) => {
                    eprintln!("{}: {}", s.name, crate::error::describe(&e));
                    (None, None, "no code")
                }
            },
        };
        rows.push((s, code, left, note));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(s, code, left, _)| {
                json!({ "name": s.name, "kind": kind_str(s.kind), "code": code, "valid_for": left })
            })
            .collect();
        return print_json(&v);
    }
    if rows.is_empty() {
        outln!("no OTP credentials (add one with `vtoken otp add`)");
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(s, ..)| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for (s, code, left, note) in rows {
        match (code, left) {
            (Some(c), Some(l)) => outln!("{:<width$}  {c}  ({l}s left)", s.name),
            _ => outln!("{:<width$}  [{note}]", s.name),
        }
    }
    Ok(())
}
