//! `vtoken enroll`: the issuing station's command line (SPEC E1–E5, E9, E10). The
//! workflow is the `vtoken-enroll` library; this module parses the flags, resolves
//! and prompts for PINs, draws the progress and prints the summary.

mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use vtoken_enroll::{
    select_tokens, Error as EnrollError, Operator, PinSource, Selection, Station, StationConfig,
    Trust,
};
use vtoken_pki::{client, Usage};

use crate::args::UserPin;
use crate::context::Ctx;
use crate::error::{bail, CliError, Result};
use crate::output::{outln, print_json};
use crate::pin::{self, Pin, Role};

use report::{cli_error, summary, Progress, Row};

const ENROLL_HELP: &str = "\
What it does, for each token:
  1. opens the token and logs in with its user PIN (a preset PIN, or one derived from
     the token serial, see below); a locked or uninitialised token is reported;
  2. if the token already holds a valid certificate of this CA for its serial and the
     requested usage, reports \"already enrolled\" and goes on;
  3. takes a free key pair (a private key whose CKA_ID no certificate carries; several
     pairs and certificates may coexist) or generates one (--key-type, --key-label);
  4. builds a PKCS#10 request (public key, subject CN=vtoken SERIAL + serialNumber=SERIAL,
     requested usage; no personal data) signed inside the token (ECDSA-SHA256/384 or
     RSA PKCS#1 v1.5 SHA-256);
  5. sends it to --ca (the CA or a relay), verifies the certificate with the CA
     certificate (signature, validity, token serial, public key, usage) and creates it
     on the token with the key's CKA_ID and label, so NSS and Firefox pair them.
A failure on one token is reported and the run goes on; nothing is written to a token
whose certificate did not verify. Progress goes to stderr, the summary table to stdout
(--json: a JSON object). Exit status 1 if any token failed.

Operator (E1, seed 001 step 201): --operator names the operator's token; the run starts
only after a login with its user PIN (--operator-pin-file, --operator-pin,
VTOKEN_OPERATOR_PIN, or a prompt) AND a check that it is an authorised operator token:
it holds an operator certificate of this CA (chain, validity, the operator profile,
checked here), the CA still honours it (registered, not revoked), and its key answers a
fresh one-time challenge of the CA inside the token. A token whose PIN is known but
that lacks such a certificate is refused. The operator token is never enrolled. It holds the operator credential (a key
and the certificate labelled vtoken-operator, made once with `vtoken enroll
operator-request` and `operator-install`, registered with the CA): every request to the
CA or relay is signed with it inside the token, and the CA refuses unsigned requests and
operators it does not know. The usage asked for (--usage) must be one the CA's policy
for this operator allows.

CA certificate: --ca-cert FILE (PEM or DER; trusted as given), else fetched from the CA
(EST cacerts) and its SHA-256 fingerprint printed on stderr; --ca-fingerprint pins it.

Derived PINs (--pin-from-serial SECRET_FILE):
  PIN = HOTP-style decimal truncation (RFC 4226 5.3) of HMAC-SHA256(secret, serial):
    h      = HMAC-SHA256(key = secret, message = token serial, ASCII upper-case hex)
    offset = h[31] & 0x0f
    v      = (h[offset] & 0x7f) << 24 | h[offset+1] << 16 | h[offset+2] << 8 | h[offset+3]
    PIN    = v mod 10^digits, left-padded with zeros to --pin-digits digits (default 8)
  The secret is the file's content without trailing whitespace (at least 16 bytes).
  `vtoken enroll derive-pin` prints the PIN of a serial, for initialising tokens.

Modes: --mode sequential (default) enrols one token at a time (request, certificate,
write); --mode batch builds every request first, sends them in one call and matches
the certificates back to the tokens by the serial they carry; --mode submit sends the
batch and writes nothing: the CA publishes the certificates to its certificate server
and `vtoken enroll collect` loads them later (E8, seed 001 steps 310-311).

Examples:
  vtoken enroll --ca http://ca.example:8440 --operator station-1 --all \\
      --pin-from-serial /etc/vtoken/station.secret --operator-pin-file op.pin
  vtoken enroll --ca http://relay:8441 --ca-cert ca.pem --operator station-1 \\
      --tokens 00000000000000A1,00000000000000A2 --pin 123456 --usage client --mode batch
  vtoken enroll derive-pin --serial 00000000000000A1 --secret-file station.secret
  vtoken init --label t1 --so-pin 12345678 --pin 00000000   # then, with its serial S:
  vtoken --token t1 pin change --old-pin 00000000 \\
      --new-pin \"$(vtoken enroll derive-pin --serial S --secret-file station.secret)\"";

/// `vtoken enroll`.
#[derive(Debug, Args)]
#[command(
    after_help = ENROLL_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct EnrollArgs {
    #[command(subcommand)]
    pub action: Option<EnrollAction>,

    /// Base URL of the CA (`vtoken-server ca serve`) or of a relay, e.g. http://127.0.0.1:8440.
    #[arg(long, value_name = "URL", required = true)]
    pub ca: Option<String>,
    /// The CA certificate (PEM or DER, may hold intermediates) to verify certificates
    /// with [default: fetched from --ca, fingerprint printed].
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// SHA-256 fingerprint (hex, colons allowed) the fetched CA certificate must have.
    #[arg(long, value_name = "HEX", conflicts_with = "ca_cert")]
    pub ca_fingerprint: Option<String>,
    /// For an https:// --ca: trust only these PEM root certificates for the server's
    /// TLS certificate [default: the Mozilla roots].
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,

    /// The operator's token (label or serial); the run needs its user PIN.
    #[arg(long, value_name = "LABEL|SERIAL", required = true)]
    pub operator: Option<String>,
    /// The operator token's PIN (visible in the process list: prefer the file or the variable).
    #[arg(
        long,
        env = "VTOKEN_OPERATOR_PIN",
        hide_env_values = true,
        value_name = "PIN"
    )]
    pub operator_pin: Option<String>,
    /// Read the operator PIN from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub operator_pin_file: Option<PathBuf>,

    /// Tokens to enrol, by serial or label, comma-separated [default: --token].
    #[arg(long, value_name = "SERIAL,...", value_delimiter = ',', num_args = 1..)]
    pub tokens: Vec<String>,
    /// Enrol every token in the token directory except the operator's.
    #[arg(long, conflicts_with = "tokens")]
    pub all: bool,

    /// The tokens' user PIN, the same for all (preset PIN).
    #[arg(long, value_name = "PIN", conflicts_with_all = ["pin_file", "pin_from_serial"])]
    pub pin: Option<String>,
    /// Read the preset user PIN from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "pin_from_serial")]
    pub pin_file: Option<PathBuf>,
    /// Derive each token's PIN from its serial with the station secret in this file
    /// (algorithm below).
    #[arg(long, value_name = "SECRET_FILE")]
    pub pin_from_serial: Option<PathBuf>,
    /// Digits of a derived PIN.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(4..=9))]
    pub pin_digits: u32,

    /// Certificate profile to ask the CA for: device, client or signing (the CA issues
    /// it only if its policy for this operator allows it; 403 otherwise).
    #[arg(long, default_value = "device", value_parser = parse_usage)]
    pub usage: Usage,
    /// Key type to generate when a token has no free key pair.
    #[arg(long, value_enum, default_value = "ec-p256")]
    pub key_type: EnrollKeyType,
    /// Label of a generated key pair (and of its certificate) [default: enroll-USAGE].
    #[arg(long, value_name = "LABEL")]
    pub key_label: Option<String>,
    /// One token at a time, or every request in one batch call.
    #[arg(long, value_enum, default_value = "sequential")]
    pub mode: Mode,
}

/// The operator token and its PIN (E1).
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The operator's token (label or serial).
    #[arg(long, value_name = "LABEL|SERIAL")]
    pub operator: String,
    /// The operator token's PIN (visible in the process list: prefer the file or the variable).
    #[arg(
        long,
        env = "VTOKEN_OPERATOR_PIN",
        hide_env_values = true,
        value_name = "PIN"
    )]
    pub operator_pin: Option<String>,
    /// Read the operator PIN from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub operator_pin_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum EnrollAction {
    /// Make the operator credential's key on the operator token (EC P-256, labelled
    /// vtoken-operator, never leaves the token) if it has none, and write a PKCS#10
    /// request for it, signed inside the token, for the CA to register
    /// (`vtoken-server ca operator add --csr FILE`).
    #[command(after_help = "\
Example:
  vtoken enroll operator-request --operator station-1 --operator-pin-file op.pin -o station-1.csr
  vtoken-server ca operator add --dir ca --name station-1 --csr station-1.csr -o station-1.pem
  vtoken enroll operator-install --operator station-1 --operator-pin-file op.pin --cert station-1.pem")]
    OperatorRequest {
        #[command(flatten)]
        op: OperatorArgs,
        /// Where to write the request (DER).
        #[arg(short = 'o', long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Store the operator certificate the CA issued (or registered) on the operator
    /// token, beside its key: `vtoken enroll` signs every request with it.
    #[command(after_help = "\
Example:
  vtoken enroll operator-install --operator station-1 --operator-pin-file op.pin --cert station-1.pem")]
    OperatorInstall {
        #[command(flatten)]
        op: OperatorArgs,
        /// The operator certificate (PEM or DER); its key must be on the token.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
    },
    /// Load the certificates the CA published to its certificate server into the
    /// tokens, matched by token serial (E8, seed 001 steps 310-311): for batches
    /// sent with `--mode submit` (or whose answers were lost).
    #[command(after_help = COLLECT_HELP)]
    Collect(CollectArgs),
    /// Print the PIN derived from a token serial (see `vtoken enroll --help`), to
    /// initialise tokens for --pin-from-serial. It prints a PIN: mind where it goes.
    #[command(after_help = "\
Example:
  vtoken enroll derive-pin --serial 00000000000000A1 --secret-file station.secret")]
    DerivePin {
        /// The token serial (hex; case does not matter).
        #[arg(long)]
        serial: String,
        /// The station secret file.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// Digits of the PIN.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(4..=9))]
        pin_digits: u32,
    },
}

const COLLECT_HELP: &str = "\
What it does (seed 001 steps 310-311): the CA, started with `--publish-to URL`, sends
every certificate it issues to the certificate server (`vtoken-server certs serve`),
which records a \"certificate ready\" notice. This command polls the notices (up to
--wait seconds for every selected token), then for each token: if it holds a valid
certificate of this CA already, reports \"already enrolled\" and writes nothing (a
rerun is harmless); if no notice came, reports it not ready; else fetches the newest
certificate published for its serial, verifies it with --ca-cert (chain, validity,
serial, usage) and writes it beside the private key it certifies. Exit status 1 if any
token failed or is not ready.

Examples:
  vtoken enroll --ca http://ca:8440 --operator station-1 --operator-pin-file op.pin \\
      --all --pin-from-serial station.secret --mode submit
  vtoken enroll collect --from http://certs:8442 --ca-cert ca.pem --all \\
      --pin-from-serial station.secret --wait 60";

/// `vtoken enroll collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Base URL of the certificate server (`vtoken-server certs serve`).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The CA certificate (PEM or DER) the certificates must chain to.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// Tokens, by serial or label, comma-separated [default: --token].
    #[arg(long, value_name = "SERIAL,...", value_delimiter = ',', num_args = 1..)]
    pub tokens: Vec<String>,
    /// Every token in the token directory (but --skip).
    #[arg(long, conflicts_with = "tokens")]
    pub all: bool,
    /// A token never to touch (the operator's), label or serial.
    #[arg(long, value_name = "LABEL|SERIAL")]
    pub skip: Option<String>,
    /// The tokens' user PIN, the same for all (preset PIN).
    #[arg(long, value_name = "PIN", conflicts_with_all = ["pin_file", "pin_from_serial"])]
    pub pin: Option<String>,
    /// Read the preset user PIN from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "pin_from_serial")]
    pub pin_file: Option<PathBuf>,
    /// Derive each token's PIN from its serial with the station secret in this file.
    #[arg(long, value_name = "SECRET_FILE")]
    pub pin_from_serial: Option<PathBuf>,
    /// Digits of a derived PIN.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(4..=9))]
    pub pin_digits: u32,
    /// The certificate profile the certificates must carry.
    #[arg(long, default_value = "device", value_parser = parse_usage)]
    pub usage: Usage,
    /// Seconds to wait for the notices of every selected token.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub wait: u64,
}

/// Key types the station generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnrollKeyType {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
}

/// How requests go to the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One token at a time: request, certificate, write.
    Sequential,
    /// Every request first, one batch call, certificates matched back by serial.
    Batch,
    /// Asynchronous issuance: the batch is sent and no certificate written now;
    /// the CA publishes them to its certificate server and `vtoken enroll collect`
    /// loads them later.
    Submit,
}

fn parse_usage(s: &str) -> std::result::Result<Usage, String> {
    s.parse().map_err(|e: vtoken_pki::Error| e.to_string())
}

impl From<EnrollKeyType> for vtoken_enroll::KeyType {
    fn from(k: EnrollKeyType) -> Self {
        match k {
            EnrollKeyType::EcP256 => vtoken_enroll::KeyType::EcP256,
            EnrollKeyType::EcP384 => vtoken_enroll::KeyType::EcP384,
            EnrollKeyType::Rsa2048 => vtoken_enroll::KeyType::Rsa2048,
            EnrollKeyType::Rsa3072 => vtoken_enroll::KeyType::Rsa3072,
        }
    }
}

impl From<Mode> for vtoken_enroll::Mode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Sequential => vtoken_enroll::Mode::Sequential,
            Mode::Batch => vtoken_enroll::Mode::Batch,
            Mode::Submit => vtoken_enroll::Mode::Submit,
        }
    }
}

// ------------------------------------------------------------------ the operator

/// Finds the operator token, resolves its PIN (file, flag, variable or prompt) and
/// logs in (E1); a wrong PIN stops everything.
fn operator_login(
    ctx: &Ctx,
    operator: &str,
    pin: &Option<String>,
    pin_file: &Option<PathBuf>,
) -> Result<Operator> {
    let entry = Operator::find(&ctx.registry, operator).map_err(cli_error)?;
    let op_pin = match pin::user_given(&UserPin {
        pin: pin.clone(),
        pin_file: pin_file.clone(),
    })? {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => {
            pin::flag_or_prompt(&None, Role::User, "operator PIN", false)?
        }
        None => bail!(
            "no operator PIN given: use --operator-pin-file, --operator-pin or \
             VTOKEN_OPERATOR_PIN"
        ),
    };
    Operator::login(&ctx.registry, &entry, &op_pin).map_err(cli_error)
}

/// `vtoken enroll operator-request`: the operator key (made if missing) and its request.
fn operator_request(ctx: &Ctx, args: &OperatorArgs, out: &Path) -> Result<()> {
    let op = operator_login(
        ctx,
        &args.operator,
        &args.operator_pin,
        &args.operator_pin_file,
    )?;
    let req = op.request().map_err(cli_error)?;
    std::fs::write(out, &req.csr)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", out.display())))?;
    eprintln!(
        "operator request for token {} written to {} ({} key {}); register it with \
         `vtoken-server ca operator add --csr {}`",
        op.serial(),
        out.display(),
        if req.generated { "new" } else { "existing" },
        hex::encode(&req.key_id),
        out.display()
    );
    Ok(())
}

/// `vtoken enroll operator-install`: the operator certificate beside its key.
fn operator_install(ctx: &Ctx, args: &OperatorArgs, cert_file: &Path) -> Result<()> {
    let data = std::fs::read(cert_file)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", cert_file.display())))?;
    let cert = match std::str::from_utf8(&data) {
        Ok(t) if t.contains("-----BEGIN") => vtoken_pki::certs_from_pem(t)
            .map_err(|e| CliError::new(format!("{}: {e}", cert_file.display())))?
            .remove(0),
        _ => data,
    };
    vtoken_pki::cert_spki(&cert)
        .map_err(|e| CliError::new(format!("{}: {e}", cert_file.display())))?;
    let op = operator_login(
        ctx,
        &args.operator,
        &args.operator_pin,
        &args.operator_pin_file,
    )?;
    match op.install(&cert) {
        Ok(()) => {}
        Err(EnrollError::OperatorKeyMissing { label }) => bail!(
            "{} certifies a key that is not on the operator token '{label}' (make the request \
             with `vtoken enroll operator-request` on this token)",
            cert_file.display()
        ),
        Err(e) => return Err(cli_error(e)),
    }
    eprintln!(
        "operator certificate (SHA-256 {}) installed on token {}",
        vtoken_pki::auth::fingerprint(&cert),
        op.serial()
    );
    Ok(())
}

// ------------------------------------------------------------------ the command

/// `vtoken enroll derive-pin`.
fn derive_pin(json: bool, serial: &str, secret_file: &Path, digits: u32) -> Result<ExitCode> {
    let serial = serial.trim();
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--serial {serial:?} is not a token serial (hex digits)");
    }
    let secret = vtoken_enroll::read_secret(secret_file).map_err(cli_error)?;
    let pin = vtoken_enroll::derive_pin(&secret, serial, digits);
    if json {
        print_json(&serde_json::json!({
            "serial": serial.to_ascii_uppercase(),
            "pin": pin.as_str(),
        }))?;
    } else {
        outln!("{}", pin.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

/// The tokens' PINs (E2): derived from the serial, or one preset PIN (given or asked).
fn pin_source(args: &EnrollArgs) -> Result<PinSource> {
    pins_from(
        &args.pin_from_serial,
        args.pin_digits,
        &args.pin,
        &args.pin_file,
    )
}

fn pins_from(
    from_serial: &Option<PathBuf>,
    digits: u32,
    pin: &Option<String>,
    pin_file: &Option<PathBuf>,
) -> Result<PinSource> {
    if let Some(f) = from_serial {
        return Ok(PinSource::Derived {
            secret: vtoken_enroll::read_secret(f).map_err(cli_error)?,
            digits,
        });
    }
    let given: Option<Pin> = pin::user_given(&UserPin {
        pin: pin.clone(),
        pin_file: pin_file.clone(),
    })?;
    Ok(match given {
        Some(p) => PinSource::Preset(p),
        None if std::io::stdin().is_terminal() => PinSource::Preset(pin::flag_or_prompt(
            &None,
            Role::User,
            "the tokens' user PIN",
            false,
        )?),
        None => bail!(
            "no token PIN given: use --pin or --pin-file (one PIN for every token) \
             or --pin-from-serial SECRET_FILE"
        ),
    })
}

/// `vtoken enroll collect` (E8, step 311).
fn collect(ctx: &Ctx, json: bool, args: &CollectArgs) -> Result<ExitCode> {
    let pins = pins_from(
        &args.pin_from_serial,
        args.pin_digits,
        &args.pin,
        &args.pin_file,
    )?;
    let trust = Trust::from_file(&args.ca_cert).map_err(cli_error)?;
    let selection = if args.all {
        Selection::All
    } else if args.tokens.is_empty() {
        match &ctx.token {
            Some(t) => Selection::Named(vec![t.clone()]),
            None => bail!("name the tokens with --tokens SERIAL,... or --all"),
        }
    } else {
        Selection::Named(args.tokens.clone())
    };
    let skip = match &args.skip {
        Some(name) => ctx.registry.find(name)?.serial,
        None => String::new(),
    };
    let (entries, mut outcomes) =
        select_tokens(&ctx.registry, &selection, &skip).map_err(cli_error)?;
    let station = Station::new(
        &ctx.registry,
        StationConfig {
            url: args.from.clone(),
            trust,
            pins,
            usage: args.usage,
            key_type: vtoken_enroll::KeyType::EcP256,
            key_label: format!("enroll-{}", args.usage),
            credential: None,
        },
    );
    let mut progress = Progress::new(entries.len() + outcomes.len());
    for o in &outcomes {
        vtoken_enroll::Progress::row(&mut progress, o);
    }
    station.collect(
        &args.from,
        &entries,
        std::time::Duration::from_secs(args.wait),
        &mut progress,
        &mut outcomes,
    );
    progress.finish();
    let rows: Vec<Row> = outcomes.iter().map(Row::of).collect();
    summary(json, &station, &rows)
}

/// `vtoken enroll` and its subcommands.
pub fn run(ctx: &Ctx, json: bool, args: &EnrollArgs) -> Result<ExitCode> {
    match &args.action {
        Some(EnrollAction::DerivePin {
            serial,
            secret_file,
            pin_digits,
        }) => return derive_pin(json, serial, secret_file, *pin_digits),
        Some(EnrollAction::OperatorRequest { op, out }) => {
            operator_request(ctx, op, out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(EnrollAction::OperatorInstall { op, cert }) => {
            operator_install(ctx, op, cert)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(EnrollAction::Collect(c)) => return collect(ctx, json, c),
        None => {}
    }
    let url = args
        .ca
        .clone()
        .ok_or_else(|| CliError::new("--ca URL is required"))?;
    if let Some(f) = &args.tls_ca {
        let pem = std::fs::read(f)
            .map_err(|e| CliError::new(format!("--tls-ca {}: {e}", f.display())))?;
        client::trust_tls_roots(&pem)
            .map_err(|e| CliError::new(format!("--tls-ca {}: {e}", f.display())))?;
    }
    let operator = args
        .operator
        .as_deref()
        .ok_or_else(|| CliError::new("--operator LABEL|SERIAL is required"))?;

    // The tokens' PINs (E2), before anything touches a token.
    let pins = pin_source(args)?;

    let trust = match &args.ca_cert {
        Some(path) => Trust::from_file(path),
        None => Trust::fetch(&url, args.ca_fingerprint.as_deref()),
    }
    .map_err(cli_error)?;
    eprintln!(
        "CA certificate: {} (SHA-256 {})",
        trust.subject(),
        trust.fingerprint()
    );

    // The operator (E1, step 201): nothing happens without this login, an operator
    // certificate of this CA on the token, and the token's answer to the CA's
    // challenge.
    let op = operator_login(ctx, operator, &args.operator_pin, &args.operator_pin_file)?;
    let name = op.authorise(&url, &trust).map_err(cli_error)?;
    eprintln!(
        "operator {name} authorised by the CA (token {})",
        op.serial()
    );
    let credential = op.credential(args.usage).map_err(cli_error)?;

    // Which tokens.
    let selection = if args.all {
        Selection::All
    } else if args.tokens.is_empty() {
        match &ctx.token {
            Some(t) => Selection::Named(vec![t.clone()]),
            None => bail!("name the tokens to enrol with --tokens SERIAL,... or --all"),
        }
    } else {
        Selection::Named(args.tokens.clone())
    };
    let (entries, mut outcomes) =
        select_tokens(&ctx.registry, &selection, &op.entry().serial).map_err(cli_error)?;

    let station = Station::new(
        &ctx.registry,
        StationConfig {
            url,
            trust,
            pins,
            usage: args.usage,
            key_type: args.key_type.into(),
            key_label: args
                .key_label
                .clone()
                .unwrap_or_else(|| format!("enroll-{}", args.usage)),
            credential: Some(credential),
        },
    );

    let mut progress = Progress::new(entries.len() + outcomes.len());
    for o in &outcomes {
        vtoken_enroll::Progress::row(&mut progress, o);
    }
    station.run(&entries, args.mode.into(), &mut progress, &mut outcomes);
    progress.finish();
    drop(op);
    let rows: Vec<Row> = outcomes.iter().map(Row::of).collect();
    summary(json, &station, &rows)
}
