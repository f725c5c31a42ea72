//! The command line: every subcommand, option and help text (clap derive).

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Configuration:
  VTOKEN_CONF names the configuration file (TOML); a file holding the single line
  token_dir = \"/some/dir\" is complete. VTOKEN_LOG=LEVEL[:FILE] turns on logging
  (stderr by default; never stdout).

PINs are taken, in this order, from a --pin-file / --so-pin-file (first line), the
--pin / --so-pin flag, the VTOKEN_PIN / VTOKEN_SO_PIN environment variables, or an
interactive prompt on the terminal (also when stdin is a pipe: it is read from
/dev/tty, as ssh and gpg do). PINs are never printed. Under --json an error is one
JSON object {\"error\": ...} on stderr.

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

/// The commands whose output is data of its own (a signature, PEM, CSV, a shell
/// script), for which `--json` means nothing: given, it is refused before anything
/// runs (never silently ignored). Every other command prints JSON under `--json`;
/// `tests/cli.rs` walks the command tree so a new command must be in one list or
/// the other.
pub const JSON_REFUSED: &[(&str, &str)] = &[
    (
        "sign",
        "it writes the signature's bytes (to -o FILE, or stdout)",
    ),
    ("completions", "it prints a shell completion script"),
    ("card key", "it writes the card's public key as PEM"),
    ("device cert", "it writes the device certificates as PEM"),
    ("device seal", "it writes the sealed bytes"),
    ("vault export-csv", "it writes the vault as CSV"),
];

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
    Init(crate::cmd::init::InitArgs),

    /// List tokens (with slot id, serial, label, PIN state, object counts) and the free slot.
    #[command(after_help = "\
With --json, prints a JSON array with one object per token:
  slot_id, serial, label, path, user_pin_initialized, user_pin_locked,
  so_pin_locked, user_pin_failures, so_pin_failures, objects {public, private}.")]
    List,

    /// Show the full token information of one token (C_GetTokenInfo, flags decoded)
    /// and its state (SPEC C6).
    #[command(after_help = crate::cmd::tokens::INFO_HELP)]
    Info(crate::cmd::tokens::InfoArgs),

    /// Change, reset or unlock PINs.
    #[command(subcommand)]
    Pin(crate::cmd::pin::PinCommand),

    /// Generate keys on the token.
    #[command(subcommand)]
    Key(crate::cmd::keys::KeyCommand),

    /// Import a PKCS#8 private key (plain or encrypted), an X.509 certificate or a
    /// public key (PEM or DER).
    #[command(after_help = "\
Recognised inputs (PEM or DER):
  PRIVATE KEY (PKCS#8, RSA or EC P-256/P-384): imported as a private key object and a
      public key object sharing one CKA_ID (derived from the public key, as NSS does);
  RSA PRIVATE KEY (PKCS#1): as above;
  CERTIFICATE (X.509): a certificate object whose CKA_ID is derived from its public
      key, so it pairs with the matching key pair;
  ENCRYPTED PRIVATE KEY (PKCS#8, PBES2 as `openssl pkcs8 -topk8` writes it): asked
      for its passphrase without echo (or --passphrase-file / VTOKEN_KEY_PASSPHRASE),
      then as PRIVATE KEY;
  PUBLIC KEY (SubjectPublicKeyInfo): a public key object.

Examples:
  vtoken import --file key.pem --label web
  vtoken import --file key-encrypted.pem --label web      # asks the passphrase
  vtoken import --file cert.pem")]
    Import(crate::cmd::keys::ImportArgs),

    /// Export a certificate or public key (PEM by default). Private and secret keys never leave the token.
    #[command(after_help = "\
Examples:
  vtoken export --label web -o web.pub.pem          # the public key
  vtoken export --label web --type cert -o web.crt
  vtoken export --id 01ab --type cert --der -o web.der")]
    Export(crate::cmd::keys::ExportArgs),

    /// List or inspect objects.
    #[command(subcommand)]
    Objects(crate::cmd::objects::ObjectsCommand),

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
    Delete(crate::cmd::delete::DeleteArgs),

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
ASN.1 DER form that OpenSSL expects. A signature is binary: it is not written to
a terminal (give -o FILE, pipe it, or --force). With -i - the data comes from
stdin and the PIN, if not given, is asked on the terminal (as ssh and gpg do).

Examples:
  vtoken sign --label rsa-key -i data.bin -o data.sig
  echo hello | vtoken sign --label ec-key -i - -o hello.sig
  openssl dgst -sha256 -verify rsa-key.pub.pem -signature data.sig data.bin
  vtoken sign --label ec-key --der -i data.bin -o data.sig")]
    Sign(crate::cmd::sign::SignArgs),

    /// Verify a signature with a key on the token (exit 0: valid, 1: invalid).
    #[command(after_help = "\
Uses the public key (or, for HMAC, the secret key, which needs the PIN). The
mechanisms are those of `vtoken sign`.

Examples:
  vtoken verify --label rsa-key -i data.bin --signature data.sig
  vtoken verify --label ec-key --der -i data.bin --signature data.sig")]
    Verify(crate::cmd::sign::VerifyArgs),

    /// Print shell completions (bash, zsh, fish) or the man page (man), generated
    /// from this command line.
    #[command(after_help = "\
Needs no configuration and no token.

Examples:
  vtoken completions bash > ~/.local/share/bash-completion/completions/vtoken
  vtoken completions zsh > ~/.zfunc/_vtoken      # a directory in $fpath
  vtoken completions fish > ~/.config/fish/completions/vtoken.fish
  vtoken completions man | man -l -
  vtoken completions man --dir ~/.local/share/man/man1   # vtoken-init.1, vtoken-key-generate.1, …")]
    Completions(crate::cmd::completions::CompletionsArgs),

    /// OTP credentials (HOTP/TOTP, like a YubiKey's OATH applet): add, list, code, codes,
    /// delete, show.
    #[command(subcommand)]
    Otp(crate::cmd::otp::OtpCommand),

    /// The vault: bank cards, logins and custom entries kept on the token (add, list,
    /// show, get, edit, delete, activate, enable, KeePassXC CSV and KDBX import/export).
    #[command(subcommand)]
    Vault(Box<crate::cmd::vault::VaultCommand>),

    /// The e-wallet: load from a bank, move value to a card, pay (SPEC W1-W7).
    #[command(subcommand)]
    Wallet(Box<crate::cmd::wallet::WalletCommand>),

    /// Virtual contactless cards: create, balance, pay (SPEC W5, W7).
    #[command(subcommand)]
    Card(crate::cmd::card::CardCommand),

    /// The picture-verification gate: high-privilege requests need a picture check
    /// after the PIN (status, configure, reattach).
    #[command(subcommand)]
    Gate(crate::cmd::gate::GateCommand),

    /// A local root CA for certifying device keys on one machine.
    #[command(subcommand)]
    Ca(crate::cmd::device::CaCommand),

    /// The token's device identity: certificate, attestation, sealed envelopes.
    #[command(subcommand)]
    Device(crate::cmd::device::DeviceCommand),

    /// Remote key download (SPEC K1–K5): station load and provisioning, download of
    /// terminal master keys from a remote key server, the K3 derivation.
    #[command(subcommand)]
    Rks(crate::cmd::rks::RksCommand),

    /// Back up one token into another (mutual authentication, signed + sealed transfer).
    Backup(crate::cmd::backup::Backup),

    /// Issuing station: enrol tokens with the CA (operator login, free or new key pair,
    /// PKCS#10 signed in the token, certificate verified and written back); batches.
    Enroll(Box<crate::cmd::enroll::EnrollArgs>),

    /// Clear the lock the gate sets after too many failed picture checks (needs the
    /// SO PIN). Only the user at the machine should do this, after checking it.
    #[command(after_help = "\
The user PIN does not clear the lock: a program that learnt it must not be able to
keep guessing pictures. Give the SO PIN (--so-pin, VTOKEN_SO_PIN, --so-pin-file or
the prompt).

Examples:
  vtoken reattach                 # prompts for the SO PIN
  vtoken reattach --so-pin-file so-pin.txt")]
    Reattach(crate::cmd::gate::ReattachArgs),

    /// The token's prompt policy: which agent asks the user, which operations ask
    /// (show; set needs the SO PIN).
    #[command(subcommand)]
    Prompt(crate::cmd::prompt::PromptCommand),
}
