//! Device identity commands (SPEC V7, V8): `vtoken ca init` and `vtoken device …`.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Subcommand, ValueEnum};
use cryptoki_sys::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use vault_core::mechanism::encoding;
use vault_core::token::UserType;
use vault_core::Attributes;
use vtoken_device::Attestation;
use vtoken_pki::{cert_der_to_pem, LocalCa};

use crate::args::UserPin;
use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::identity::{self, dev, read_certs, root_of};
use crate::output::{outln, print_json, read_in, write_out};
use crate::pin;

/// `vtoken ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a local root CA (ECDSA P-256) for certifying device keys on one machine.
    #[command(after_help = "\
Writes ca.pem (the root certificate: give it to whoever verifies tokens) and ca.key
(mode 0600) into DIR; refuses to overwrite. For many machines, run a CA server
instead (vtoken-server ca init / ca serve) and enroll tokens with `vtoken enroll`.

Examples:
  vtoken ca init --dir ~/.local/share/vtoken/ca
  vtoken device certify --ca-dir ~/.local/share/vtoken/ca")]
    Init {
        /// Directory for ca.pem and ca.key [default: `ca` beside the token directory].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The root's common name.
        #[arg(long, default_value = "vtoken local root")]
        name: String,
    },
}

/// `vtoken device …`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Show the token's device identity: public key fingerprint and certificate.
    Info,
    /// Write the device certificate (PEM) for clients that seal data to this token.
    Cert {
        /// Output file [default: stdout].
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// Include the issuers (chain, leaf first).
        #[arg(long)]
        chain: bool,
    },
    /// Certify the device key with the local root made by `vtoken ca init`.
    Certify {
        /// The local root's directory [default: `ca` beside the token directory].
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Answer a challenge: sign NONCE with the device key; prints JSON with the chain.
    #[command(after_help = "\
Example (the verifier picks the nonce and keeps it):
  nonce=$(openssl rand -hex 32)
  vtoken device attest --nonce $nonce > answer.json
  vtoken device verify --root ca.pem --attestation answer.json --nonce $nonce")]
    Attest {
        /// The challenge, hex (16 to 1024 bytes).
        #[arg(long, value_name = "HEX")]
        nonce: String,
        /// Output file [default: stdout].
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Client side: check that a token is genuine (certified by ROOT).
    #[command(after_help = "\
Without --attestation, challenges the selected local token with a fresh random nonce
(needs its user PIN). With --attestation FILE --nonce HEX, checks an answer made
elsewhere by `vtoken device attest`. Checks: the chain leads to ROOT, the
certificate names the token's serial, the nonce is yours (no replay), the signature
verifies with the certified key. Exit status 1 on any failure.")]
    Verify {
        /// The trusted root certificate (PEM or DER).
        #[arg(long, value_name = "ROOT.pem")]
        root: PathBuf,
        /// An answer from `vtoken device attest`.
        #[arg(long, value_name = "FILE", requires = "nonce")]
        attestation: Option<PathBuf>,
        /// The nonce sent with the challenge (hex).
        #[arg(long, value_name = "HEX")]
        nonce: Option<String>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Client side: seal a file to a token's device certificate (CMS, RSA-OAEP + AES-256-GCM).
    #[command(after_help = "\
The output is a DER CMS AuthEnvelopedData that only the token can open (`vtoken device
open`). OpenSSL makes the same: openssl cms -encrypt -binary -outform DER -aes-256-gcm
-recip token.pem -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -in F -out F.cms")]
    Seal {
        /// The token's device certificate (`vtoken device cert`).
        #[arg(long, value_name = "CERT.pem")]
        to: PathBuf,
        /// The data to seal.
        #[arg(long = "in", short = 'i', value_name = "FILE")]
        input: PathBuf,
        /// The envelope [default: stdout].
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// The data encrypted directly to the device key: a bare RSA-OAEP-SHA256
        /// ciphertext instead of CMS (at most 190 bytes); `vtoken device open`
        /// opens both.
        #[arg(long)]
        direct: bool,
    },
    /// Open data sealed to this token, inside it, straight into an object.
    #[command(after_help = "\
Both delivery options of `vtoken device seal` open (SPEC V8): a CMS envelope, or data
encrypted directly to the device key (`seal --direct`). The plaintext never leaves
the token: it becomes a private key (--as key: PKCS#8 DER), an AES key (--as secret:
16, 24 or 32 bytes) or a vault entry (--as vault): an entry as JSON (any kind with
all its fields, as `vtoken vault show --json` prints it; --label renames it) or a
bare password (a custom entry titled --label). A vault entry is shown through the
prompt agent and stored only once the user confirms. Envelopes must use RSA-OAEP key
transport; PKCS#1 v1.5 is refused.

Examples:
  vtoken device open --in key.cms --as key --label imported
  vtoken device open --in pw.bin --as vault --label \"mail password\"
  vtoken device open --in card.cms --as vault")]
    Open {
        /// The sealed data (DER or PEM CMS, or a `seal --direct` ciphertext).
        #[arg(long = "in", short = 'i', value_name = "FILE")]
        input: PathBuf,
        /// What the plaintext becomes.
        #[arg(long = "as", value_enum)]
        kind: OpenAs,
        /// CKA_LABEL (or the vault entry's title) [required except for a vault entry
        /// sent as JSON].
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        user: UserPin,
    },
}

/// What an opened envelope becomes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OpenAs {
    /// A PKCS#8 private key (RSA, EC P-256/P-384): private + public key objects.
    Key,
    /// An AES key (16, 24 or 32 bytes).
    Secret,
    /// A vault entry: JSON of any kind, or a password (secret field `password`).
    Vault,
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn pki(e: vtoken_pki::Error) -> CliError {
    CliError::new(e.to_string())
}

fn user_login(open: &Open, user: &UserPin) -> Result<()> {
    let pin = pin::user(user)?;
    open.login(UserType::User, &pin)
}

/// `vtoken ca init`.
pub fn ca(ctx: &Ctx, json: bool, c: &CaCommand) -> Result<()> {
    let CaCommand::Init { dir, name } = c;
    let dir = dir.clone().unwrap_or_else(|| identity::default_ca_dir(ctx));
    let ca = LocalCa::init(&dir, name).map_err(pki)?;
    let cert = dir.join(vtoken_pki::CA_CERT_FILE);
    if json {
        print_json(
            &json!({"dir": dir, "certificate": cert, "subject": ca.subject(),
            "sha256": fingerprint(ca.cert_der())}),
        )?;
    } else {
        outln!("Local root created in {}", dir.display());
        outln!("  certificate: {} ({})", cert.display(), ca.subject());
        outln!("  SHA-256:     {}", fingerprint(ca.cert_der()));
        outln!(
            "Certify tokens with `vtoken device certify --ca-dir {}`",
            dir.display()
        );
    }
    Ok(())
}

/// `vtoken device …`.
pub fn device(ctx: &Ctx, json: bool, c: &DeviceCommand) -> Result<()> {
    match c {
        DeviceCommand::Info => {
            let open = ctx.open()?;
            let info = open.token.identity_info()?;
            let leaf = info.chain.first();
            let subject = leaf.and_then(|c| vtoken_pki::cert_token_serial(c).ok());
            if json {
                print_json(&json!({
                    "serial": info.serial,
                    "key_sha256": fingerprint(&info.spki),
                    "certified": leaf.is_some(),
                    "certificate_sha256": leaf.map(|c| fingerprint(c)),
                    "chain_length": info.chain.len(),
                    "allow_key_backup": info.allow_key_backup,
                }))?;
            } else {
                outln!("Token serial:      {}", info.serial);
                outln!(
                    "Device key:        RSA-2048, SHA-256 {}",
                    fingerprint(&info.spki)
                );
                match leaf {
                    Some(c) => outln!(
                        "Certificate:       for serial {}, SHA-256 {} ({} in chain)",
                        subject.unwrap_or_default(),
                        fingerprint(c),
                        info.chain.len()
                    ),
                    None => {
                        outln!("Certificate:       none (vtoken device certify, or vtoken enroll)")
                    }
                }
                outln!(
                    "Key backup:        {}",
                    if info.allow_key_backup {
                        "non-extractable keys may be backed up to another vtoken"
                    } else {
                        "non-extractable keys stay on this token"
                    }
                );
            }
        }
        DeviceCommand::Cert { out, chain } => {
            let open = ctx.open()?;
            let info = open.token.identity_info()?;
            if info.chain.is_empty() {
                bail!(
                    "token {} has no device certificate yet (vtoken device certify)",
                    info.serial
                );
            }
            let n = if *chain { info.chain.len() } else { 1 };
            let pem: String = info.chain[..n].iter().map(|c| cert_der_to_pem(c)).collect();
            write_out(out.as_deref(), pem.as_bytes())?;
        }
        DeviceCommand::Certify { ca_dir, user } => {
            let open = ctx.open()?;
            user_login(&open, user)?;
            let dir = ca_dir
                .clone()
                .unwrap_or_else(|| identity::default_ca_dir(ctx));
            let leaf = identity::certify_with(&open.token, &dir)?;
            if json {
                print_json(
                    &json!({"serial": open.entry.serial, "certificate_sha256": fingerprint(&leaf)}),
                )?;
            } else {
                outln!(
                    "Device key of token {} certified by the root in {}",
                    open.entry.serial,
                    dir.display()
                );
            }
        }
        DeviceCommand::Attest { nonce, out, user } => {
            let nonce = hex::decode(nonce.trim())
                .map_err(|_| CliError::new("--nonce must be hex (e.g. openssl rand -hex 32)"))?;
            let open = ctx.open()?;
            user_login(&open, user)?;
            let att = vtoken_device::attest(&open.token, &nonce).map_err(dev)?;
            let text =
                serde_json::to_string_pretty(&att).map_err(|e| CliError::new(e.to_string()))?;
            write_out(out.as_deref(), format!("{text}\n").as_bytes())?;
        }
        DeviceCommand::Verify {
            root,
            attestation,
            nonce,
            user,
        } => {
            let root = root_of(root)?;
            let (att, nonce) = match attestation {
                Some(file) => {
                    let att: Attestation = serde_json::from_slice(&read_in(file)?)
                        .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
                    let nonce = hex::decode(nonce.as_deref().unwrap_or("").trim())
                        .map_err(|_| CliError::new("--nonce must be hex"))?;
                    (att, nonce)
                }
                None => {
                    let open = ctx.open()?;
                    user_login(&open, user)?;
                    let nonce = vtoken_device::new_nonce().map_err(dev)?;
                    (
                        vtoken_device::attest(&open.token, &nonce).map_err(dev)?,
                        nonce,
                    )
                }
            };
            let v = vtoken_device::verify_attestation(&att, &root, &nonce, SystemTime::now())
                .map_err(|e| CliError::new(format!("device NOT authenticated: {e}")))?;
            if json {
                print_json(&json!({"authenticated": true, "serial": v.token_serial,
                    "certificate_serial": v.cert_serial}))?;
            } else {
                outln!(
                    "device authenticated: token {} (certificate serial {})",
                    v.token_serial,
                    v.cert_serial
                );
            }
        }
        DeviceCommand::Seal {
            to,
            input,
            out,
            direct,
        } => {
            let cert = read_certs(to)?.remove(0);
            let data = zeroize::Zeroizing::new(read_in(input)?);
            let sealed = if *direct {
                vault_core::sealed::seal_direct(&cert, &data)?
            } else {
                vault_core::sealed::seal(&cert, &data)?
            };
            write_out(out.as_deref(), &sealed)?;
        }
        DeviceCommand::Open {
            input,
            kind,
            label,
            user,
        } => {
            let data = read_in(input)?;
            let open = ctx.open()?;
            user_login(&open, user)?;
            let handles = match (kind, label) {
                (OpenAs::Vault, label) => {
                    vec![open.token.vault_add_sealed(&data, label.as_deref())?]
                }
                (_, None) => bail!("--as key and --as secret need --label"),
                (_, Some(label)) => {
                    let plain = open.token.open_sealed(&data)?;
                    store_opened(&open, *kind, label, &plain)?
                }
            };
            if json {
                print_json(&json!({"stored": handles}))?;
            } else {
                outln!("Opened inside the token and stored as {kind:?} (handles {handles:?})");
            }
        }
    }
    Ok(())
}

fn store_opened(open: &Open, kind: OpenAs, label: &str, plain: &[u8]) -> Result<Vec<u64>> {
    let t = &open.token;
    match kind {
        OpenAs::Key => {
            let (mut p, mut s) = encoding::pkcs8_to_attributes(plain).map_err(|_| {
                CliError::new(
                    "the envelope does not hold a PKCS#8 private key (RSA, EC P-256/P-384)",
                )
            })?;
            let id = encoding::key_id(&p);
            for (a, private) in [(&mut p, false), (&mut s, true)] {
                a.set_bool(CKA_TOKEN, true);
                a.set_bool(CKA_PRIVATE, private);
                a.set(CKA_LABEL, label.as_bytes().to_vec());
                a.set(CKA_ID, id.clone());
            }
            s.set_bool(CKA_SENSITIVE, true);
            s.set_bool(CKA_EXTRACTABLE, false);
            let sh = t.create_object(&open.sid, &s)?;
            let ph = t.create_object(&open.sid, &p).inspect_err(|_| {
                let _ = t.destroy_object(&open.sid, sh);
            })?;
            Ok(vec![ph, sh])
        }
        OpenAs::Secret => {
            if ![16, 24, 32].contains(&plain.len()) {
                bail!(
                    "an AES key has 16, 24 or 32 bytes; the envelope holds {}",
                    plain.len()
                );
            }
            let mut a = Attributes::new();
            a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
            a.set_ulong(CKA_KEY_TYPE, CKK_AES);
            a.set_bool(CKA_TOKEN, true);
            a.set_bool(CKA_PRIVATE, true);
            a.set_bool(CKA_SENSITIVE, true);
            a.set_bool(CKA_EXTRACTABLE, false);
            a.set_bool(CKA_ENCRYPT, true);
            a.set_bool(CKA_DECRYPT, true);
            a.set(CKA_LABEL, label.as_bytes().to_vec());
            a.set(CKA_VALUE, plain.to_vec());
            Ok(vec![t.create_object(&open.sid, &a)?])
        }
        OpenAs::Vault => bail!("vault entries open through Token::vault_add_sealed"),
    }
}
