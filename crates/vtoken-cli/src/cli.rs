//! The command line: every subcommand, option and help text (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Configuration:
  VTOKEN_CONF names the configuration file (TOML); a file holding the single line
  token_dir = \"/some/dir\" is complete. VTOKEN_LOG=LEVEL[:FILE] turns on logging
  (stderr by default; never stdout).

PINs are taken, in this order, from a --pin-file / --so-pin-file (first line), the
--pin / --so-pin flag, the VTOKEN_PIN / VTOKEN_SO_PIN environment variables, or an
interactive prompt (only when stdin is a terminal). PINs are never printed.

Examples:
  vtoken init --label work --so-pin 12345678 --pin 123456
  vtoken list
  vtoken --token work key generate --type ec-p256 --label signing
  vtoken sign --label signing -i data.bin -o data.sig --der
  vtoken export --label signing -o signing.pub.pem
  openssl dgst -sha256 -verify signing.pub.pem -signature data.sig data.bin

Exit status: 0 on success, 1 on any failure (including an invalid signature),
2 on a usage error.";

/// vtoken: administer vtoken software tokens (PKCS#11).
#[derive(Debug, Parser)]
#[command(name = "vtoken", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The token to work on, by label or serial [default: the only token, if there is
    /// exactly one].
    #[arg(
        long,
        global = true,
        env = "VTOKEN_TOKEN",
        hide_env_values = true,
        value_name = "LABEL|SERIAL"
    )]
    pub token: Option<String>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The user PIN, for commands that log in as the user.
#[derive(Debug, Args, Clone, Default)]
pub struct UserPin {
    /// The user PIN (visible in the process list: prefer VTOKEN_PIN, --pin-file or the prompt).
    #[arg(long, env = "VTOKEN_PIN", hide_env_values = true, value_name = "PIN")]
    pub pin: Option<String>,
    /// Read the user PIN from the first line of this file (wins over --pin and VTOKEN_PIN).
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

/// The SO PIN, for commands that act as the security officer.
#[derive(Debug, Args, Clone, Default)]
pub struct SoPin {
    /// The security officer (SO) PIN.
    #[arg(
        long,
        env = "VTOKEN_SO_PIN",
        hide_env_values = true,
        value_name = "PIN"
    )]
    pub so_pin: Option<String>,
    /// Read the SO PIN from the first line of this file (wins over --so-pin and VTOKEN_SO_PIN).
    #[arg(long, value_name = "FILE")]
    pub so_pin_file: Option<PathBuf>,
}

/// Which objects a command works on. At least one selector is required.
#[derive(Debug, Args, Clone, Default)]
pub struct Selector {
    /// Objects with this CKA_LABEL.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Objects with this CKA_ID (hex, e.g. 01ab).
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,
    /// The object with this handle (as shown by `vtoken objects list`).
    #[arg(long, value_name = "N")]
    pub handle: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new token: sets its label, SO PIN and user PIN.
    #[command(after_help = "\
The token file is created in the configured token directory (the free slot), under
a random serial.

Examples:
  vtoken init --label work --so-pin 12345678 --pin 123456
  VTOKEN_SO_PIN=12345678 VTOKEN_PIN=123456 vtoken init --label work
  vtoken init --label work          # prompts for both PINs
  vtoken init --label work --vault optional   # prints the vault activation code once")]
    Init {
        /// Token label (at most 32 bytes).
        #[arg(long)]
        label: String,
        #[command(flatten)]
        so: SoPin,
        #[command(flatten)]
        user: UserPin,
        #[command(flatten)]
        vault: crate::vault::InitVault,
        #[command(flatten)]
        device: crate::device::InitDevice,
    },

    /// List tokens (with slot id, serial, label, PIN state, object counts) and the free slot.
    #[command(after_help = "\
With --json, prints a JSON array with one object per token:
  slot_id, serial, label, path, user_pin_initialized, user_pin_locked,
  so_pin_locked, user_pin_failures, so_pin_failures, objects {public, private}.")]
    List,

    /// Show the full token information of one token (C_GetTokenInfo, flags decoded).
    Info,

    /// Change, reset or unlock PINs.
    #[command(subcommand)]
    Pin(PinCommand),

    /// Generate keys on the token.
    #[command(subcommand)]
    Key(KeyCommand),

    /// Import a PKCS#8 private key, an X.509 certificate or a public key (PEM or DER).
    #[command(after_help = "\
Recognised inputs (PEM or DER):
  PRIVATE KEY (PKCS#8, RSA or EC P-256/P-384): imported as a private key object and a
      public key object sharing one CKA_ID (derived from the public key, as NSS does);
  RSA PRIVATE KEY (PKCS#1): as above;
  CERTIFICATE (X.509): a certificate object whose CKA_ID is derived from its public
      key, so it pairs with the matching key pair;
  PUBLIC KEY (SubjectPublicKeyInfo): a public key object.
Encrypted keys are not read: decrypt first (openssl pkcs8 -topk8 -nocrypt).

Examples:
  vtoken import --file key.pem --label web
  vtoken import --file cert.pem")]
    Import {
        /// The file to import.
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
        /// CKA_LABEL [default: a matching key's label, the certificate's CN, or the file name].
        #[arg(long)]
        label: Option<String>,
        /// CKA_ID in hex [default: derived from the public key].
        #[arg(long, value_name = "HEX")]
        id: Option<String>,
        /// Flag the private key as gated: every use needs a picture check after the PIN
        /// (see `vtoken gate`). Fixed at import.
        #[arg(long)]
        gate: bool,
        #[command(flatten)]
        user: UserPin,
    },

    /// Export a certificate or public key (PEM by default). Private and secret keys never leave the token.
    #[command(after_help = "\
Examples:
  vtoken export --label web -o web.pub.pem          # the public key
  vtoken export --label web --type cert -o web.crt
  vtoken export --id 01ab --type cert --der -o web.der")]
    Export {
        #[command(flatten)]
        select: Selector,
        /// What to export [default: the certificate if there is one, else the public key].
        #[arg(long = "type", value_enum)]
        kind: Option<ExportKind>,
        /// Write DER instead of PEM.
        #[arg(long)]
        der: bool,
        /// Output file [default: stdout].
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        user: UserPin,
    },

    /// List or inspect objects.
    #[command(subcommand)]
    Objects(ObjectsCommand),

    /// Delete objects, or (with --token-file) the whole token.
    #[command(after_help = "\
Objects: every object matching the selector is deleted (a key pair shares its label
and CKA_ID, so both halves go). Without --force, asks for confirmation on a terminal
and refuses otherwise.

The token: `vtoken --token LABEL delete --token-file --force` removes the token file
and everything in it, with no PIN. It is the only way out for a token whose SO PIN is
locked. It always requires --force.

Examples:
  vtoken delete --label old-key --force
  vtoken delete --handle 7 --force
  vtoken --token work delete --token-file --force")]
    Delete {
        #[command(flatten)]
        select: Selector,
        /// Delete the whole token file instead of objects.
        #[arg(long, conflicts_with_all = ["label", "id", "handle"])]
        token_file: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        user: UserPin,
    },

    /// Sign a file with a key on the token.
    #[command(after_help = "\
Mechanisms (--mechanism):
  rsa-pkcs-sha1|sha256|sha384|sha512   RSA PKCS#1 v1.5 with hashing (default for RSA)
  rsa-pss-sha256|sha384|sha512         RSA-PSS, MGF1 with the same hash, salt = hash length
  rsa-pkcs                             raw PKCS#1 v1.5 (input: a DigestInfo)
  ecdsa-sha1|sha256|sha384|sha512      ECDSA with hashing (default: sha256 for P-256, sha384 for P-384)
  ecdsa                                raw ECDSA (input: the hash)
  hmac-sha1|sha256|sha384|sha512       HMAC (default for secret keys: hmac-sha256)
ECDSA signatures are written as raw r||s (PKCS#11 form); --der writes the
ASN.1 DER form that OpenSSL expects.

Examples:
  vtoken sign --label rsa-key -i data.bin -o data.sig
  openssl dgst -sha256 -verify rsa-key.pub.pem -signature data.sig data.bin
  vtoken sign --label ec-key --der -i data.bin -o data.sig")]
    Sign {
        #[command(flatten)]
        select: Selector,
        /// Signature mechanism [default: from the key type].
        #[arg(long, short = 'm')]
        mechanism: Option<String>,
        /// Input file ("-" for stdin).
        #[arg(short = 'i', long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Output file [default: stdout].
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// ECDSA: write the signature as ASN.1 DER instead of raw r||s.
        #[arg(long)]
        der: bool,
        #[command(flatten)]
        user: UserPin,
    },

    /// Verify a signature with a key on the token (exit 0: valid, 1: invalid).
    #[command(after_help = "\
Uses the public key (or, for HMAC, the secret key, which needs the PIN). The
mechanisms are those of `vtoken sign`.

Examples:
  vtoken verify --label rsa-key -i data.bin --signature data.sig
  vtoken verify --label ec-key --der -i data.bin --signature data.sig")]
    Verify {
        #[command(flatten)]
        select: Selector,
        /// Signature mechanism [default: from the key type].
        #[arg(long, short = 'm')]
        mechanism: Option<String>,
        /// Input file ("-" for stdin).
        #[arg(short = 'i', long = "in", value_name = "FILE")]
        input: PathBuf,
        /// The signature file.
        #[arg(long, short = 's', value_name = "FILE")]
        signature: PathBuf,
        /// ECDSA: the signature is ASN.1 DER (as OpenSSL writes it), not raw r||s.
        #[arg(long)]
        der: bool,
        #[command(flatten)]
        user: UserPin,
    },

    /// OTP credentials (HOTP/TOTP, like a YubiKey's OATH applet): add, list, code, delete, show.
    #[command(subcommand)]
    Otp(crate::otp::OtpCommand),

    /// The vault: bank cards, logins and custom entries kept on the token (add, list,
    /// show, get, edit, delete, activate, enable, CSV import/export).
    #[command(subcommand)]
    Vault(Box<crate::vault::VaultCommand>),

    /// The picture-verification gate: high-privilege requests need a picture check
    /// after the PIN (status, configure, reattach).
    #[command(subcommand)]
    Gate(crate::gate::GateCommand),

    /// A local root CA for certifying device keys on one machine.
    #[command(subcommand)]
    Ca(crate::device::CaCommand),

    /// The token's device identity: certificate, attestation, sealed envelopes.
    #[command(subcommand)]
    Device(crate::device::DeviceCommand),

    /// Back up one token into another (mutual authentication, signed + sealed transfer).
    Backup(crate::device::Backup),

    /// Issuing station: enrol tokens with the CA (operator login, free or new key pair,
    /// PKCS#10 signed in the token, certificate verified and written back); batches.
    Enroll(Box<crate::enroll::EnrollArgs>),

    /// Clear the lock the gate sets after too many failed picture checks (needs the
    /// SO PIN). Only the user at the machine should do this, after checking it.
    #[command(after_help = "\
The user PIN does not clear the lock: a program that learnt it must not be able to
keep guessing pictures. Give the SO PIN (--so-pin, VTOKEN_SO_PIN, --so-pin-file or
the prompt).

Examples:
  vtoken reattach                 # prompts for the SO PIN
  vtoken reattach --so-pin-file so-pin.txt")]
    Reattach(ReattachArgs),

    /// The token's prompt policy: which agent asks the user, which operations ask
    /// (show; set needs the SO PIN).
    #[command(subcommand)]
    Prompt(crate::prompt::PromptCommand),
}

/// `vtoken reattach` / `vtoken gate reattach`.
#[derive(Debug, Args, Clone, Default)]
pub struct ReattachArgs {
    #[command(flatten)]
    pub so: SoPin,
    /// Not accepted: the user PIN cannot clear a gate lock (named only to say so).
    #[arg(long, hide = true, value_name = "PIN")]
    pub pin: Option<String>,
    /// Not accepted: see --pin.
    #[arg(long, hide = true, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Change the user PIN (or, with --so, the SO PIN), knowing the old one.
    #[command(after_help = "\
The old PIN comes from --old-pin, else VTOKEN_PIN / VTOKEN_SO_PIN, else a prompt; the
new PIN from --new-pin, else a prompt (asked twice).

Examples:
  vtoken pin change --old-pin 123456 --new-pin 567890
  vtoken pin change --so --old-pin 12345678 --new-pin 87654321")]
    Change {
        /// Change the SO PIN instead of the user PIN.
        #[arg(long)]
        so: bool,
        /// The current PIN.
        #[arg(long, value_name = "PIN")]
        old_pin: Option<String>,
        /// The new PIN.
        #[arg(long, value_name = "PIN")]
        new_pin: Option<String>,
    },
    /// Reset and unlock the user PIN with the SO PIN (after too many wrong tries).
    #[command(after_help = "\
Examples:
  vtoken pin unlock --so-pin 12345678 --new-pin 654321
If the SO PIN itself is locked, nothing can unlock the token: delete it with
`vtoken delete --token-file --force` and create a new one.")]
    Unlock {
        #[command(flatten)]
        so: SoPin,
        /// The new user PIN.
        #[arg(long, value_name = "PIN")]
        new_pin: Option<String>,
    },
}

/// Key types `vtoken key generate` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP384,
    Aes128,
    Aes256,
    /// A 32-byte generic secret for HMAC.
    Hmac,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a key pair or a secret key (token objects; private and secret keys are
    /// private and sensitive).
    #[command(after_help = "\
Examples:
  vtoken key generate --type rsa2048 --label web
  vtoken key generate --type ec-p256 --label signing --id 01
  vtoken key generate --type aes256 --label backup --extractable")]
    Generate {
        /// Key type.
        #[arg(long = "type", value_enum)]
        kind: KeyType,
        /// CKA_LABEL.
        #[arg(long)]
        label: String,
        /// CKA_ID in hex [default: derived from the public key; random for secret keys].
        #[arg(long, value_name = "HEX")]
        id: Option<String>,
        /// Allow the private or secret key to be wrapped out of the token (CKA_EXTRACTABLE).
        #[arg(long)]
        extractable: bool,
        /// Flag the key as gated: every private use (sign, decrypt, unwrap, derive,
        /// export) needs a picture check after the PIN (see `vtoken gate`). Fixed at
        /// creation.
        #[arg(long)]
        gate: bool,
        #[command(flatten)]
        user: UserPin,
    },
}

#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// List objects: public ones without a PIN, private ones too with --pin or VTOKEN_PIN.
    #[command(after_help = "\
Examples:
  vtoken objects list
  VTOKEN_PIN=123456 vtoken objects list --json")]
    List {
        #[command(flatten)]
        user: UserPin,
    },
}

/// What `vtoken export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// An X.509 certificate.
    Cert,
    /// A public key (SubjectPublicKeyInfo).
    Pubkey,
}
