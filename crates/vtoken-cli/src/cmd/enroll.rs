//! `vtoken enroll`: the issuing station (SPEC E1–E5, E9, E10).
//!
//! The operator logs in to an operator token (E1). For each token the station checks
//! it is present and usable with a preset PIN or a PIN derived from its serial (E2),
//! finds a free key pair — a private key whose `CKA_ID` no certificate carries — or
//! generates one (E3), reads the serial (E4), builds a PKCS#10 request signed inside
//! the token (E5), sends it to the CA or a relay, verifies the certificate with the CA
//! certificate and writes it into the token whose serial it carries, under the key's
//! `CKA_ID` so NSS pairs them (E9). Many tokens go one after another or as one batch
//! whose certificates are matched back by serial (E10). A failing token is reported
//! and never stops or touches the others; nothing is written to a token unless its
//! certificate verified, and the certificate object is created in one step.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use cryptoki_sys::*;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use vault_core::mechanism::backend::Curve;
use vault_core::mechanism::{encoding, Mechanism};
use vault_core::session::{OutLen, Output};
use vault_core::slots::TokenEntry;
use vault_core::token::UserType;
use vault_core::Attributes;
use vtoken_pki::auth::Credential;
use vtoken_pki::{client, SigAlg, Usage};
use zeroize::Zeroizing;

use crate::args::UserPin;
use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::output::{outln, print_json};
use crate::pin::{self, Pin, Role};

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

Operator (E1): --operator names the operator's token; the run starts only after a login
with its user PIN (--operator-pin-file, --operator-pin, VTOKEN_OPERATOR_PIN, or a
prompt). The operator token is never enrolled. It holds the operator credential (a key
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
the certificates back to the tokens by the serial they carry.

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
}

fn parse_usage(s: &str) -> std::result::Result<Usage, String> {
    s.parse().map_err(|e: vtoken_pki::Error| e.to_string())
}

// ------------------------------------------------------------------ derived PINs (E2)

/// Smallest station secret accepted.
const MIN_SECRET: usize = 16;

/// Reads the station secret: the file's bytes without trailing whitespace.
fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        CliError::new(format!(
            "cannot read the station secret {}: {e}",
            path.display()
        ))
    })?);
    while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
        bytes.pop();
    }
    if bytes.len() < MIN_SECRET {
        bail!(
            "the station secret in {} is shorter than {MIN_SECRET} bytes",
            path.display()
        );
    }
    Ok(bytes)
}

/// RFC 4226 dynamic truncation of a MAC to `digits` decimal digits.
fn truncate(mac: &[u8], digits: u32) -> String {
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let v = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let code = u64::from(v) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The PIN of token `serial` under the station `secret` (algorithm in the help text).
pub fn derive_pin(secret: &[u8], serial: &str, digits: u32) -> Pin {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(serial.trim().to_ascii_uppercase().as_bytes());
    let h = Zeroizing::new(mac.finalize().into_bytes().to_vec());
    Zeroizing::new(truncate(&h, digits))
}

/// Where the tokens' PINs come from.
enum PinSource {
    Preset(Pin),
    Derived {
        secret: Zeroizing<Vec<u8>>,
        digits: u32,
    },
}

impl PinSource {
    fn for_serial(&self, serial: &str) -> Pin {
        match self {
            PinSource::Preset(p) => p.clone(),
            PinSource::Derived { secret, digits } => derive_pin(secret, serial, *digits),
        }
    }
}

// ------------------------------------------------------------------ the CA certificate

struct Trust {
    root: Vec<u8>,
    intermediates: Vec<Vec<u8>>,
    subject: String,
    fingerprint: String,
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Trust {
    /// The self-issued certificate is the root; the others are intermediates.
    fn from_certs(certs: Vec<Vec<u8>>, origin: &str) -> Result<Trust> {
        use der::{Decode, Encode};
        let mut parsed = Vec::new();
        for der in certs {
            let c = x509_cert::Certificate::from_der(&der)
                .map_err(|e| CliError::new(format!("{origin}: not an X.509 certificate: {e}")))?;
            let tbs = &c.tbs_certificate;
            let self_issued = tbs.subject.to_der().ok() == tbs.issuer.to_der().ok();
            parsed.push((der, tbs.subject.to_string(), self_issued));
        }
        let root_at = match parsed.iter().position(|p| p.2) {
            Some(i) => i,
            None if parsed.is_empty() => bail!("{origin}: no certificate"),
            None => parsed.len() - 1,
        };
        let (root, subject, _) = parsed.remove(root_at);
        Ok(Trust {
            fingerprint: fingerprint(&root),
            root,
            intermediates: parsed.into_iter().map(|p| p.0).collect(),
            subject,
        })
    }

    fn load(args: &EnrollArgs, url: &str) -> Result<Trust> {
        if let Some(path) = &args.ca_cert {
            let data = std::fs::read(path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
            let certs = match std::str::from_utf8(&data) {
                Ok(t) if t.contains("-----BEGIN") => vtoken_pki::certs_from_pem(t)
                    .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?,
                _ => vec![data],
            };
            return Trust::from_certs(certs, &path.display().to_string());
        }
        let certs = client::ca_certs(url).map_err(|e| {
            CliError::new(format!("cannot fetch the CA certificate from {url}: {e}"))
        })?;
        let trust = Trust::from_certs(certs, url)?;
        if let Some(want) = &args.ca_fingerprint {
            let norm = |s: &str| -> String {
                s.chars()
                    .filter(|c| c.is_ascii_hexdigit())
                    .collect::<String>()
                    .to_ascii_uppercase()
            };
            if norm(want) != norm(&trust.fingerprint) {
                bail!(
                    "the CA certificate from {url} has SHA-256 fingerprint {}, not the \
                     expected {want}: refusing to enrol",
                    trust.fingerprint
                );
            }
        }
        Ok(trust)
    }

    /// Verifies a certificate issued for `serial`'s key `spki` with usage `usage`.
    fn check(
        &self,
        cert: &[u8],
        serial: &str,
        spki: &[u8],
        usage: Usage,
    ) -> std::result::Result<vtoken_pki::VerifiedCert, String> {
        let v = vtoken_pki::verify_chain(cert, &self.intermediates, &self.root, SystemTime::now())
            .map_err(|e| format!("the certificate does not verify: {e}"))?;
        if !v.token_serial.eq_ignore_ascii_case(serial) {
            return Err(format!(
                "the certificate is for token {}, not {serial}",
                v.token_serial
            ));
        }
        if v.spki != spki {
            return Err("the certificate certifies another public key".into());
        }
        if v.usage != usage {
            return Err(format!(
                "the certificate's usage is {}, not the requested {usage}",
                v.usage
            ));
        }
        Ok(v)
    }
}

// ------------------------------------------------------------------ results

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Enrolled,
    AlreadyEnrolled,
    Failed,
}

impl Status {
    fn text(self) -> &'static str {
        match self {
            Status::Enrolled => "enrolled",
            Status::AlreadyEnrolled => "already enrolled",
            Status::Failed => "FAILED",
        }
    }
}

/// One line of the summary.
#[derive(Debug, Serialize)]
struct Row {
    serial: String,
    label: String,
    result: Status,
    /// Certificate serial number (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_serial: Option<String>,
    /// The key pair's CKA_ID (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    /// Whether the key pair was generated by this run.
    key_generated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Row {
    fn failed(serial: &str, label: &str, error: impl Into<String>) -> Row {
        Row {
            serial: serial.to_string(),
            label: label.to_string(),
            result: Status::Failed,
            cert_serial: None,
            key_id: None,
            key_generated: false,
            error: Some(error.into()),
        }
    }

    fn detail(&self) -> String {
        match (&self.error, &self.cert_serial) {
            (Some(e), _) => e.clone(),
            (None, Some(c)) => format!("certificate {c}"),
            (None, None) => String::new(),
        }
    }
}

/// Progress on stderr: a redrawn bar on a terminal, one line per token otherwise.
struct Progress {
    total: usize,
    done: usize,
    tty: bool,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// A note that does not advance the count (phases of a batch).
    fn note(&self, msg: &str) {
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K");
        }
        let _ = writeln!(e, "{msg}");
        if self.tty {
            self.draw(&mut e, "");
        }
    }

    fn row(&mut self, row: &Row) {
        self.done += 1;
        let line = format!(
            "[{}/{}] {} ({}): {}{}",
            self.done,
            self.total,
            row.serial,
            row.label,
            row.result.text(),
            match row.result {
                Status::Failed => format!(": {}", row.detail()),
                _ => row
                    .cert_serial
                    .as_ref()
                    .map(|c| format!(", certificate {c}"))
                    .unwrap_or_default(),
            }
        );
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K");
            if row.result == Status::Failed {
                let _ = writeln!(e, "{line}");
            }
            let tail = format!("{} {}", row.serial, row.result.text());
            self.draw(&mut e, &tail);
        } else {
            let _ = writeln!(e, "{line}");
        }
    }

    /// On a terminal, shows what is going on without advancing the count.
    fn tick(&self, tail: &str) {
        if self.tty {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K");
            self.draw(&mut e, tail);
        }
    }

    fn draw(&self, e: &mut impl Write, tail: &str) {
        const WIDTH: usize = 30;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        let _ = write!(
            e,
            "\r[{}{}] {}/{} {tail}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.done,
            self.total
        );
        let _ = e.flush();
    }

    fn finish(&self) {
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K");
        }
        let _ = writeln!(
            e,
            "done: {} token(s) in {:.1} s",
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}

// ------------------------------------------------------------------ one token

/// Everything the run needs per token.
struct Station<'a> {
    ctx: &'a Ctx,
    trust: Trust,
    pins: PinSource,
    usage: Usage,
    key_type: EnrollKeyType,
    key_label: String,
    url: String,
    /// The operator credential every request is signed with.
    credential: Credential,
}

/// A request ready to send, or a token that needs none.
enum Prepared {
    Already {
        cert_serial: String,
        key_id: Vec<u8>,
    },
    Request(Request),
}

struct Request {
    serial: String,
    key_id: Vec<u8>,
    key_label: String,
    spki: Vec<u8>,
    generated: bool,
    csr: Vec<u8>,
}

/// A token's free key pair.
struct KeyPair {
    private: u64,
    id: Vec<u8>,
    label: String,
    spki: Vec<u8>,
    generated: bool,
}

fn cli_err(e: impl std::fmt::Display) -> CliError {
    CliError::new(e.to_string())
}

fn search(open: &Open, class: CK_OBJECT_CLASS, id: Option<&[u8]>) -> Result<Vec<u64>> {
    let mut t = Attributes::new();
    t.set_ulong(CKA_CLASS, class);
    t.set_bool(CKA_TOKEN, true);
    if let Some(id) = id {
        t.set(CKA_ID, id.to_vec());
    }
    Ok(open.token.search(&t)?)
}

/// Generates a token key pair labelled `label` (sign-only private key, never
/// extractable); the token derives its CKA_ID from the public key.
fn generate_key_pair(open: &Open, key_type: EnrollKeyType, label: &str) -> Result<KeyPair> {
    let label = label.as_bytes().to_vec();
    let template = |class: CK_OBJECT_CLASS, kt: CK_KEY_TYPE| {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, class);
        t.set_ulong(CKA_KEY_TYPE, kt);
        t.set_bool(CKA_TOKEN, true);
        t.set(CKA_LABEL, label.clone());
        t
    };
    let rsa = matches!(key_type, EnrollKeyType::Rsa2048 | EnrollKeyType::Rsa3072);
    let kt = if rsa { CKK_RSA } else { CKK_EC };
    let mut p = template(CKO_PUBLIC_KEY, kt);
    let mut s = template(CKO_PRIVATE_KEY, kt);
    p.set_bool(CKA_PRIVATE, false);
    p.set_bool(CKA_VERIFY, true);
    s.set_bool(CKA_PRIVATE, true);
    s.set_bool(CKA_SENSITIVE, true);
    s.set_bool(CKA_EXTRACTABLE, false);
    s.set_bool(CKA_SIGN, true);
    let mech = if rsa {
        let bits = if key_type == EnrollKeyType::Rsa2048 {
            2048
        } else {
            3072
        };
        p.set_ulong(CKA_MODULUS_BITS, bits);
        p.set(CKA_PUBLIC_EXPONENT, vec![1, 0, 1]);
        p.set_bool(CKA_ENCRYPT, true);
        p.set_bool(CKA_WRAP, true);
        s.set_bool(CKA_DECRYPT, true);
        s.set_bool(CKA_UNWRAP, true);
        CKM_RSA_PKCS_KEY_PAIR_GEN
    } else {
        let curve = if key_type == EnrollKeyType::EcP256 {
            Curve::P256
        } else {
            Curve::P384
        };
        p.set(CKA_EC_PARAMS, curve.ec_params().to_vec());
        s.set_bool(CKA_DERIVE, true);
        CKM_EC_KEY_PAIR_GEN
    };
    let (ph, sh) = open
        .token
        .generate_key_pair(open.sid, &Mechanism::new(mech), &p, &s)?;
    let pa = open.token.attributes(ph)?;
    let sa = open.token.attributes(sh)?;
    Ok(KeyPair {
        private: sh,
        id: sa.get(CKA_ID).unwrap_or_default().to_vec(),
        label: sa.label(),
        spki: encoding::public_key_spki(&pa)?,
        generated: true,
    })
}

/// A PKCS#10 request for `key` naming the token serial and `usage`, signed inside
/// the token (E5).
fn sign_request(open: &Open, key: &KeyPair, usage: Usage) -> Result<Vec<u8>> {
    let alg = SigAlg::for_spki(&key.spki).map_err(cli_err)?;
    let mech = mechanism_for(alg)?;
    let sign = |tbs: &[u8]| token_sign(&open.token, open.sid, key.private, mech, tbs);
    vtoken_pki::build_csr(&key.spki, open.token.serial(), usage, sign, alg)
        .map_err(|e| CliError::new(format!("building the request: {e}")))
}

impl Station<'_> {
    /// Opens the token and logs in as its user (E2).
    fn open(&self, entry: &TokenEntry) -> Result<Open> {
        let token = self.ctx.registry.open(entry)?;
        let info = token.info()?;
        if !info.user_pin_initialized {
            bail!("the token has no user PIN yet (not initialised for issuance)");
        }
        if info.read_only {
            bail!("the token is read-only (its file cannot be written)");
        }
        if info.user_pin.locked {
            bail!("the user PIN is locked (unlock it with `vtoken pin unlock`)");
        }
        let sid = token.open_session(true)?;
        let open = Open {
            entry: entry.clone(),
            token,
            sid,
        };
        let pin = self.pins.for_serial(open.token.serial());
        open.login(UserType::User, &pin)?;
        Ok(open)
    }

    /// A valid certificate of this CA for this token, its serial and usage, paired
    /// with a private key of the token.
    fn enrolled(&self, open: &Open) -> Result<Option<(String, Vec<u8>)>> {
        let serial = open.token.serial();
        for h in search(open, CKO_CERTIFICATE, None)? {
            let a = open.token.attributes(h)?;
            let (Some(value), Some(id)) = (a.get(CKA_VALUE), a.get(CKA_ID)) else {
                continue;
            };
            let Ok(spki) = vtoken_pki::cert_spki(value) else {
                continue;
            };
            let Ok(v) = self.trust.check(value, serial, &spki, self.usage) else {
                continue;
            };
            if !search(open, CKO_PRIVATE_KEY, Some(id))?.is_empty() {
                return Ok(Some((v.cert_serial, id.to_vec())));
            }
        }
        Ok(None)
    }

    /// A private key that signs, is not gated, and whose CKA_ID no certificate carries (E3).
    fn free_key(&self, open: &Open) -> Result<Option<KeyPair>> {
        for h in search(open, CKO_PRIVATE_KEY, None)? {
            let a = open.token.attributes(h)?;
            let id = a.get(CKA_ID).unwrap_or_default().to_vec();
            if id.is_empty()
                || !a.bool_or(CKA_SIGN, false)
                || a.bool_or(vault_core::gate::CKA_VTOKEN_GATED, false)
                || !matches!(a.key_type(), Some(CKK_EC | CKK_RSA))
                || !search(open, CKO_CERTIFICATE, Some(&id))?.is_empty()
            {
                continue;
            }
            let spki = search(open, CKO_PUBLIC_KEY, Some(&id))?
                .into_iter()
                .find_map(|p| {
                    let pa = open.token.attributes(p).ok()?;
                    encoding::public_key_spki(&pa).ok()
                })
                .or_else(|| encoding::public_key_spki(&a).ok());
            let Some(spki) = spki else { continue };
            // Only keys the request can be signed with (P-256, P-384, RSA).
            if SigAlg::for_spki(&spki).is_err() {
                continue;
            }
            return Ok(Some(KeyPair {
                private: h,
                id,
                label: a.label(),
                spki,
                generated: false,
            }));
        }
        Ok(None)
    }

    /// Generates a token key pair; the token derives its CKA_ID from the public key.
    fn generate(&self, open: &Open) -> Result<KeyPair> {
        generate_key_pair(open, self.key_type, &self.key_label)
    }

    /// Builds the PKCS#10 request, signed by the token (E5).
    fn request(&self, open: &Open, key: &KeyPair) -> Result<Vec<u8>> {
        sign_request(open, key, self.usage)
    }

    /// Steps 1–5 up to the request.
    fn prepare(&self, open: &Open) -> Result<Prepared> {
        if let Some((cert_serial, key_id)) = self.enrolled(open)? {
            return Ok(Prepared::Already {
                cert_serial,
                key_id,
            });
        }
        let key = match self.free_key(open)? {
            Some(k) => k,
            None => self.generate(open)?,
        };
        let csr = self.request(open, &key)?;
        Ok(Prepared::Request(Request {
            serial: open.token.serial().to_string(),
            key_id: key.id,
            key_label: if key.label.is_empty() {
                self.key_label.clone()
            } else {
                key.label
            },
            spki: key.spki,
            generated: key.generated,
            csr,
        }))
    }

    /// Verifies `cert` and writes it into the token of `req` in one object creation (E9).
    fn store(&self, open: &Open, req: &Request, cert: &[u8]) -> Result<String> {
        let v = self
            .trust
            .check(cert, open.token.serial(), &req.spki, self.usage)
            .map_err(CliError::new)?;
        let mut dup = Attributes::new();
        dup.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
        dup.set(CKA_VALUE, cert.to_vec());
        if open.token.search(&dup)?.is_empty() {
            let mut t = encoding::certificate_attributes(cert)?;
            t.set(CKA_ID, req.key_id.clone());
            t.set(CKA_LABEL, req.key_label.as_bytes().to_vec());
            t.set_bool(CKA_TOKEN, true);
            t.set_bool(CKA_PRIVATE, false);
            open.token.create_object(open.sid, &t)?;
        }
        Ok(v.cert_serial)
    }

    fn row_for(&self, entry: &TokenEntry, req: &Request, r: Result<String>) -> Row {
        let mut row = match r {
            Ok(cert_serial) => Row {
                serial: req.serial.clone(),
                label: entry.label.clone(),
                result: Status::Enrolled,
                cert_serial: Some(cert_serial),
                key_id: None,
                key_generated: false,
                error: None,
            },
            Err(e) => Row::failed(&req.serial, &entry.label, e.message),
        };
        row.key_id = Some(hex::encode(&req.key_id));
        row.key_generated = req.generated;
        row
    }

    fn already(entry: &TokenEntry, cert_serial: String, key_id: &[u8]) -> Row {
        Row {
            serial: entry.serial.clone(),
            label: entry.label.clone(),
            result: Status::AlreadyEnrolled,
            cert_serial: Some(cert_serial),
            key_id: Some(hex::encode(key_id)),
            key_generated: false,
            error: None,
        }
    }

    /// Sequential mode: one token from start to finish.
    fn one(&self, entry: &TokenEntry) -> Row {
        let open = match self.open(entry) {
            Ok(o) => o,
            Err(e) => return Row::failed(&entry.serial, &entry.label, e.message),
        };
        let req = match self.prepare(&open) {
            Ok(Prepared::Already {
                cert_serial,
                key_id,
            }) => return Station::already(entry, cert_serial, &key_id),
            Ok(Prepared::Request(r)) => r,
            Err(e) => return Row::failed(&entry.serial, &entry.label, e.message),
        };
        let result = client::enroll(&self.url, &req.csr, Some(&self.credential))
            .map_err(|e| CliError::new(format!("CA: {e}")))
            .and_then(|cert| self.store(&open, &req, &cert));
        self.row_for(entry, &req, result)
    }

    /// Batch mode (E10): every request, one call per `MAX_BATCH`, certificates matched
    /// back by the serial they carry.
    fn batch(&self, entries: &[TokenEntry], progress: &mut Progress, rows: &mut Vec<Row>) {
        let mut pending: Vec<(TokenEntry, Request)> = Vec::new();
        progress.note(&format!("building {} request(s)", entries.len()));
        for (i, entry) in entries.iter().enumerate() {
            progress.tick(&format!(
                "request {}/{}: {}",
                i + 1,
                entries.len(),
                entry.serial
            ));
            let prepared = self.open(entry).and_then(|open| self.prepare(&open));
            match prepared {
                Ok(Prepared::Request(r)) => pending.push((entry.clone(), r)),
                Ok(Prepared::Already {
                    cert_serial,
                    key_id,
                }) => {
                    let row = Station::already(entry, cert_serial, &key_id);
                    progress.row(&row);
                    rows.push(row);
                }
                Err(e) => {
                    let row = Row::failed(&entry.serial, &entry.label, e.message);
                    progress.row(&row);
                    rows.push(row);
                }
            }
        }
        for chunk in pending.chunks(vtoken_pki::api::MAX_BATCH) {
            progress.note(&format!("sending {} request(s) in one batch", chunk.len()));
            let csrs = chunk.iter().map(|(_, r)| r.csr.clone()).collect();
            let answers = match client::enroll_batch(&self.url, csrs, Some(&self.credential)) {
                Ok(a) => a,
                Err(e) => {
                    for (entry, req) in chunk {
                        let row = self.row_for(entry, req, Err(CliError::new(format!("CA: {e}"))));
                        progress.row(&row);
                        rows.push(row);
                    }
                    continue;
                }
            };
            // Match by serial: a certificate by the serial it carries, a refusal by
            // the serial of its request.
            let by_serial: HashMap<String, usize> = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, r))| (r.serial.to_ascii_uppercase(), i))
                .collect();
            let mut outcome: Vec<Option<std::result::Result<Vec<u8>, String>>> =
                vec![None; chunk.len()];
            for (serial, answer) in answers {
                let carried = match &answer {
                    Ok(cert) => vtoken_pki::cert_token_serial(cert).unwrap_or(serial),
                    Err(_) => serial,
                };
                match by_serial.get(&carried.to_ascii_uppercase()) {
                    Some(&i) if outcome[i].is_none() => outcome[i] = Some(answer),
                    Some(_) => progress.note(&format!(
                        "warning: a second answer for token {carried} was ignored"
                    )),
                    None => progress.note(&format!(
                        "warning: the CA answered for token {carried}, which was not asked for"
                    )),
                }
            }
            for ((entry, req), answer) in chunk.iter().zip(outcome) {
                let result = match answer {
                    None => Err(CliError::new("the CA gave no answer for this token")),
                    Some(Err(refusal)) => Err(CliError::new(format!("CA refused: {refusal}"))),
                    Some(Ok(cert)) => self
                        .trust
                        .check(&cert, &req.serial, &req.spki, self.usage)
                        .map_err(CliError::new)
                        .and_then(|_| self.open(entry))
                        .and_then(|open| self.store(&open, req, &cert)),
                };
                let row = self.row_for(entry, req, result);
                progress.row(&row);
                rows.push(row);
            }
        }
    }
}

// ------------------------------------------------------------------ the operator

/// Label of the operator credential's key and certificate on the operator token.
pub const OPERATOR_LABEL: &str = "vtoken-operator";

/// Opens the operator token and logs in (E1); a wrong PIN stops everything.
fn operator_login(
    ctx: &Ctx,
    operator: &str,
    pin: &Option<String>,
    pin_file: &Option<PathBuf>,
) -> Result<Open> {
    let op_entry = ctx
        .registry
        .find(operator)
        .map_err(|e| CliError::new(format!("operator token: {}", CliError::from(e).message)))?;
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
    let op_token = ctx.registry.open(&op_entry)?;
    let op_sid = op_token.open_session(true)?;
    let op = Open {
        entry: op_entry.clone(),
        token: op_token,
        sid: op_sid,
    };
    op.login(UserType::User, &op_pin).map_err(|e| {
        CliError::new(format!(
            "operator authentication failed on token '{}': {}; nothing was enrolled",
            op_entry.label, e.message
        ))
    })?;
    Ok(op)
}

fn mechanism_for(alg: SigAlg) -> Result<CK_MECHANISM_TYPE> {
    Ok(match alg {
        SigAlg::EcdsaSha256 => CKM_ECDSA_SHA256,
        SigAlg::EcdsaSha384 => CKM_ECDSA_SHA384,
        SigAlg::RsaPkcs1Sha256 => CKM_SHA256_RSA_PKCS,
        other => bail!("no token mechanism for {other:?}"),
    })
}

/// Signs with private key `key` inside the token (the key never leaves it).
fn token_sign(
    token: &vault_core::token::Token,
    sid: u64,
    key: u64,
    mech: CK_MECHANISM_TYPE,
    msg: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    token
        .sign_init(sid, &Mechanism::new(mech), key)
        .map_err(|e| format!("signing in the token: {e}"))?;
    match token.sign(sid, msg, OutLen::Buffer(usize::MAX)) {
        Ok(Output::Bytes(b)) => Ok(b),
        Ok(Output::Needed(_)) => Err("signature buffer too small".into()),
        Err(e) => Err(format!("signing in the token: {e}")),
    }
}

/// The operator credential on the logged-in operator token: the certificate labelled
/// [`OPERATOR_LABEL`] and the private key with its CKA_ID, signing inside the token.
fn operator_credential(op: &Open, profile: Usage) -> Result<Credential> {
    let mut t = Attributes::new();
    t.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    t.set(CKA_LABEL, OPERATOR_LABEL.as_bytes().to_vec());
    for h in op.token.search(&t)?.into_iter().rev() {
        let a = op.token.attributes(h)?;
        let (Some(cert), Some(id)) = (a.get(CKA_VALUE), a.get(CKA_ID)) else {
            continue;
        };
        let Some(&key) = search(op, CKO_PRIVATE_KEY, Some(id))?.first() else {
            continue;
        };
        let spki = vtoken_pki::cert_spki(cert).map_err(cli_err)?;
        let mech = mechanism_for(SigAlg::for_spki(&spki).map_err(cli_err)?)?;
        let (token, sid) = (op.token.clone(), op.sid);
        let mut cred = Credential::new(
            cert.to_vec(),
            Box::new(move |msg| token_sign(&token, sid, key, mech, msg)),
        )
        .map_err(cli_err)?;
        cred.profile = Some(profile);
        return Ok(cred);
    }
    bail!(
        "the operator token '{}' holds no operator credential (a certificate labelled \
         {OPERATOR_LABEL} with its key): make one with `vtoken enroll operator-request`, \
         have the CA register it (`vtoken-server ca operator add --csr`), then \
         `vtoken enroll operator-install`; nothing was enrolled",
        op.entry.label
    )
}

/// `vtoken enroll operator-request`: the operator key (made if missing) and its request.
fn operator_request(ctx: &Ctx, args: &OperatorArgs, out: &Path) -> Result<()> {
    let op = operator_login(
        ctx,
        &args.operator,
        &args.operator_pin,
        &args.operator_pin_file,
    )?;
    let mut t = Attributes::new();
    t.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    t.set(CKA_LABEL, OPERATOR_LABEL.as_bytes().to_vec());
    let existing = op.token.search(&t)?;
    let key = match existing.first() {
        Some(&h) => {
            let a = op.token.attributes(h)?;
            let id = a.get(CKA_ID).unwrap_or_default().to_vec();
            let spki = search(&op, CKO_PUBLIC_KEY, Some(&id))?
                .into_iter()
                .find_map(|p| {
                    let pa = op.token.attributes(p).ok()?;
                    encoding::public_key_spki(&pa).ok()
                })
                .map_or_else(|| encoding::public_key_spki(&a), Ok)?;
            KeyPair {
                private: h,
                id,
                label: OPERATOR_LABEL.into(),
                spki,
                generated: false,
            }
        }
        None => generate_key_pair(&op, EnrollKeyType::EcP256, OPERATOR_LABEL)?,
    };
    let csr = sign_request(&op, &key, Usage::Operator)?;
    std::fs::write(out, &csr)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", out.display())))?;
    eprintln!(
        "operator request for token {} written to {} ({} key {}); register it with \
         `vtoken-server ca operator add --csr {}`",
        op.token.serial(),
        out.display(),
        if key.generated { "new" } else { "existing" },
        hex::encode(&key.id),
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
    let spki = vtoken_pki::cert_spki(&cert)
        .map_err(|e| CliError::new(format!("{}: {e}", cert_file.display())))?;
    let op = operator_login(
        ctx,
        &args.operator,
        &args.operator_pin,
        &args.operator_pin_file,
    )?;
    let mut id = None;
    for p in search(&op, CKO_PUBLIC_KEY, None)? {
        let a = op.token.attributes(p)?;
        if encoding::public_key_spki(&a).ok().as_deref() == Some(&spki[..]) {
            let pid = a.get(CKA_ID).unwrap_or_default().to_vec();
            if !search(&op, CKO_PRIVATE_KEY, Some(&pid))?.is_empty() {
                id = Some(pid);
                break;
            }
        }
    }
    let Some(id) = id else {
        bail!(
            "{} certifies a key that is not on the operator token '{}' (make the request \
             with `vtoken enroll operator-request` on this token)",
            cert_file.display(),
            op.entry.label
        );
    };
    let mut dup = Attributes::new();
    dup.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    dup.set(CKA_VALUE, cert.clone());
    if op.token.search(&dup)?.is_empty() {
        let mut t = encoding::certificate_attributes(&cert)?;
        t.set(CKA_ID, id);
        t.set(CKA_LABEL, OPERATOR_LABEL.as_bytes().to_vec());
        t.set_bool(CKA_TOKEN, true);
        t.set_bool(CKA_PRIVATE, false);
        op.token.create_object(op.sid, &t)?;
    }
    eprintln!(
        "operator certificate (SHA-256 {}) installed on token {}",
        vtoken_pki::auth::fingerprint(&cert),
        op.token.serial()
    );
    Ok(())
}

// ------------------------------------------------------------------ the command

/// `vtoken enroll` and `vtoken enroll derive-pin`.
pub fn run(ctx: &Ctx, json: bool, args: &EnrollArgs) -> Result<std::process::ExitCode> {
    if let Some(EnrollAction::DerivePin {
        serial,
        secret_file,
        pin_digits,
    }) = &args.action
    {
        let serial = serial.trim();
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--serial {serial:?} is not a token serial (hex digits)");
        }
        let secret = read_secret(secret_file)?;
        let pin = derive_pin(&secret, serial, *pin_digits);
        if json {
            print_json(&serde_json::json!({
                "serial": serial.to_ascii_uppercase(),
                "pin": pin.as_str(),
            }))?;
        } else {
            outln!("{}", pin.as_str());
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    match &args.action {
        Some(EnrollAction::OperatorRequest { op, out }) => {
            operator_request(ctx, op, out)?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Some(EnrollAction::OperatorInstall { op, cert }) => {
            operator_install(ctx, op, cert)?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        _ => {}
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
    let pins =
        match &args.pin_from_serial {
            Some(f) => PinSource::Derived {
                secret: read_secret(f)?,
                digits: args.pin_digits,
            },
            None => {
                let given = pin::user_given(&UserPin {
                    pin: args.pin.clone(),
                    pin_file: args.pin_file.clone(),
                })?;
                match given {
                    Some(p) => PinSource::Preset(p),
                    None if std::io::stdin().is_terminal() => PinSource::Preset(
                        pin::flag_or_prompt(&None, Role::User, "the tokens' user PIN", false)?,
                    ),
                    None => bail!(
                        "no token PIN given: use --pin or --pin-file (one PIN for every token) \
                     or --pin-from-serial SECRET_FILE"
                    ),
                }
            }
        };

    // The operator (E1): nothing happens without this login and its credential.
    let op = operator_login(ctx, operator, &args.operator_pin, &args.operator_pin_file)?;
    let op_entry = op.entry.clone();
    let credential = operator_credential(&op, args.usage)?;

    // Which tokens.
    let mut rows = Vec::new();
    let mut entries = Vec::new();
    if args.all {
        for e in ctx.registry.tokens()? {
            if e.serial != op_entry.serial {
                entries.push(e);
            }
        }
        for (path, e) in ctx.registry.problems()? {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            rows.push(Row::failed(
                &name,
                "",
                format!("unreadable token file: {e}"),
            ));
        }
    } else {
        let names: Vec<String> = if args.tokens.is_empty() {
            match &ctx.token {
                Some(t) => vec![t.clone()],
                None => bail!("name the tokens to enrol with --tokens SERIAL,... or --all"),
            }
        } else {
            args.tokens.clone()
        };
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            match ctx.registry.find(name) {
                Ok(e) if e.serial == op_entry.serial => {
                    bail!("{name} is the operator token; it is never enrolled")
                }
                Ok(e) => {
                    if !entries.iter().any(|x: &TokenEntry| x.serial == e.serial) {
                        entries.push(e)
                    }
                }
                Err(e) => rows.push(Row::failed(name, "", CliError::from(e).message)),
            }
        }
    }
    if entries.is_empty() && rows.is_empty() {
        bail!("no token to enrol in {}", ctx.config().token_dir.display());
    }

    let trust = Trust::load(args, &url)?;
    eprintln!(
        "CA certificate: {} (SHA-256 {})",
        trust.subject, trust.fingerprint
    );
    let station = Station {
        ctx,
        trust,
        pins,
        usage: args.usage,
        key_type: args.key_type,
        key_label: args
            .key_label
            .clone()
            .unwrap_or_else(|| format!("enroll-{}", args.usage)),
        url,
        credential,
    };

    let mut progress = Progress::new(entries.len() + rows.len());
    for row in &rows {
        progress.row(row);
    }
    match args.mode {
        Mode::Sequential => {
            for entry in &entries {
                let row = station.one(entry);
                progress.row(&row);
                rows.push(row);
            }
        }
        Mode::Batch => station.batch(&entries, &mut progress, &mut rows),
    }
    progress.finish();
    drop(op);
    summary(json, &station, &rows)
}

fn summary(json: bool, station: &Station<'_>, rows: &[Row]) -> Result<std::process::ExitCode> {
    let count = |s: Status| rows.iter().filter(|r| r.result == s).count();
    let (ok, already, failed) = (
        count(Status::Enrolled),
        count(Status::AlreadyEnrolled),
        count(Status::Failed),
    );
    if json {
        print_json(&serde_json::json!({
            "ca": { "subject": station.trust.subject, "sha256": station.trust.fingerprint },
            "usage": station.usage,
            "tokens": rows,
            "enrolled": ok,
            "already_enrolled": already,
            "failed": failed,
        }))?;
    } else {
        let w =
            |f: &dyn Fn(&Row) -> usize, min: usize| rows.iter().map(f).max().unwrap_or(0).max(min);
        let ws = w(&|r| r.serial.len(), 6);
        let wl = w(&|r| r.label.len(), 5);
        let wr = w(&|r| r.result.text().len(), 6);
        outln!(
            "{:ws$}  {:wl$}  {:wr$}  DETAIL",
            "SERIAL",
            "LABEL",
            "RESULT"
        );
        for r in rows {
            outln!(
                "{:ws$}  {:wl$}  {:wr$}  {}",
                r.serial,
                r.label,
                r.result.text(),
                r.detail()
            );
        }
        outln!(
            "{} token(s): {ok} enrolled, {already} already enrolled, {failed} failed",
            rows.len()
        );
    }
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_matches_rfc4226_example() {
        // RFC 4226 section 5.4: this HMAC-SHA-1 value truncates to 0x50ef7f19 (872921).
        let h = hex::decode("1f8698690e02ca16618550ef7f19da8e945b555a").unwrap();
        assert_eq!(truncate(&h, 6), "872921");
        assert_eq!(
            truncate(&h, 9),
            &format!("{:09}", 0x50ef7f19u32 % 1_000_000_000)[..]
        );
    }

    #[test]
    fn derived_pin_is_stable_and_case_insensitive() {
        let secret = b"0123456789abcdef-station";
        let a = derive_pin(secret, "00000000000000a1", 8);
        let b = derive_pin(secret, "00000000000000A1", 8);
        assert_eq!(*a, *b);
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(*a, *derive_pin(secret, "00000000000000A2", 8));
        assert_ne!(
            *a,
            *derive_pin(b"another-secret-0123", "00000000000000A1", 8)
        );
    }
}
