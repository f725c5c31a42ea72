//! Key and certificate commands: `key generate`, `import`, `export`.

mod p12;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use cryptoki_sys::*;
use der::Encode;
use serde_json::json;
use vault_core::mechanism::backend::Curve;
use vault_core::mechanism::{encoding, random, Mechanism};
use vault_core::token::UserType;
use vault_core::Attributes;

use crate::args::{Selector, UserPin};
use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::output::{outln, print_json, read_in, write_out};
use crate::pin;
use crate::select::{self, parse_id, ObjectInfo};

/// Key types `vtoken key generate` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP384,
    EcP521,
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

// `vtoken import`. A plain comment: the help text is on the `Command` variant, and
// a doc comment here would become the subcommand's about text.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,
    /// CKA_LABEL [default: a matching key's label, the certificate's CN, or the file name].
    #[arg(long)]
    pub label: Option<String>,
    /// CKA_ID in hex [default: derived from the public key].
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,
    /// Flag the private key as gated: every use needs a picture check after the PIN
    /// (see `vtoken gate`). Fixed at import.
    #[arg(long)]
    pub gate: bool,
    /// Read the passphrase of an encrypted private key from this file's first line.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The passphrase of an encrypted private key (prefer the prompt or the file).
    #[arg(
        long,
        env = "VTOKEN_KEY_PASSPHRASE",
        hide_env_values = true,
        hide = true
    )]
    pub passphrase: Option<String>,
    #[command(flatten)]
    pub user: UserPin,
}
// `vtoken export`. A plain comment: the help text is on the `Command` variant, and
// a doc comment here would become the subcommand's about text.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub select: Selector,
    /// What to export [default: the certificate if there is one, else the public key].
    #[arg(long = "type", value_enum)]
    pub kind: Option<ExportKind>,
    /// Write DER instead of PEM.
    #[arg(long)]
    pub der: bool,
    /// Output file [default: stdout].
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub user: UserPin,
}

/// What `vtoken export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// An X.509 certificate.
    Cert,
    /// A public key (SubjectPublicKeyInfo).
    Pubkey,
}

/// Logs in as the user: PIN given or prompted.
fn login_user(open: &Open, user: &UserPin) -> Result<()> {
    let p = pin::user(user)?;
    open.login(UserType::User, &p)
}

/// Logs in as the user only if a PIN was given without prompting; returns whether.
fn login_if_given(open: &Open, user: &UserPin) -> Result<bool> {
    match pin::user_given(user)? {
        Some(p) => open.login(UserType::User, &p).map(|_| true),
        None => Ok(false),
    }
}

fn base_template(
    class: CK_OBJECT_CLASS,
    kt: CK_KEY_TYPE,
    label: &str,
    id: &Option<Vec<u8>>,
) -> Attributes {
    let mut t = Attributes::new();
    t.set_ulong(CKA_CLASS, class);
    t.set_ulong(CKA_KEY_TYPE, kt);
    t.set_bool(CKA_TOKEN, true);
    t.set(CKA_LABEL, label.as_bytes().to_vec());
    if let Some(id) = id {
        t.set(CKA_ID, id.clone());
    }
    t
}

fn print_created(open: &Open, json: bool, what: &str, handles: &[u64]) -> Result<()> {
    let infos: Vec<ObjectInfo> = handles
        .iter()
        .map(|h| open.token.attributes(*h).map(|a| ObjectInfo::new(*h, &a)))
        .collect::<std::result::Result<_, _>>()?;
    if json {
        return print_json(&json!({ "created": infos }));
    }
    outln!("{what}:");
    for i in &infos {
        outln!("{}", i.line());
    }
    Ok(())
}

/// `vtoken key …`.
pub fn run(ctx: &Ctx, json: bool, cmd: &KeyCommand) -> Result<()> {
    let KeyCommand::Generate {
        kind,
        label,
        id,
        extractable,
        gate,
        user,
    } = cmd;
    generate(ctx, json, *kind, label, id, *extractable, *gate, user)
}

/// `vtoken key generate`.
#[allow(clippy::too_many_arguments)]
fn generate(
    ctx: &Ctx,
    json: bool,
    kind: KeyType,
    label: &str,
    id: &Option<String>,
    extractable: bool,
    gate: bool,
    user: &UserPin,
) -> Result<()> {
    let id = id.as_deref().map(parse_id).transpose()?;
    let open = ctx.open()?;
    login_user(&open, user)?;
    warn_if_taken(&open, Some(label), id.as_deref());
    let pair = |kt: CK_KEY_TYPE| {
        let mut p = base_template(CKO_PUBLIC_KEY, kt, label, &id);
        p.set_bool(CKA_PRIVATE, false);
        p.set_bool(CKA_VERIFY, true);
        let mut s = base_template(CKO_PRIVATE_KEY, kt, label, &id);
        s.set_bool(CKA_PRIVATE, true);
        s.set_bool(CKA_SENSITIVE, true);
        s.set_bool(CKA_EXTRACTABLE, extractable);
        s.set_bool(CKA_SIGN, true);
        if gate {
            s.set_bool(vault_core::gate::CKA_VTOKEN_GATED, true);
        }
        (p, s)
    };
    let handles = match kind {
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let bits = match kind {
                KeyType::Rsa2048 => 2048,
                KeyType::Rsa3072 => 3072,
                _ => 4096,
            };
            let (mut p, mut s) = pair(CKK_RSA);
            p.set_ulong(CKA_MODULUS_BITS, bits);
            p.set(CKA_PUBLIC_EXPONENT, vec![1, 0, 1]);
            p.set_bool(CKA_ENCRYPT, true);
            p.set_bool(CKA_WRAP, true);
            s.set_bool(CKA_DECRYPT, true);
            s.set_bool(CKA_UNWRAP, true);
            let m = Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN);
            let progress =
                crate::output::Progress::start(&format!("generating an RSA-{bits} key pair…"));
            let (a, b) = open.token.generate_key_pair(&open.sid, &m, &p, &s)?;
            drop(progress);
            vec![a, b]
        }
        KeyType::EcP256 | KeyType::EcP384 | KeyType::EcP521 => {
            let curve = match kind {
                KeyType::EcP256 => Curve::P256,
                KeyType::EcP384 => Curve::P384,
                _ => Curve::P521,
            };
            let (mut p, mut s) = pair(CKK_EC);
            p.set(CKA_EC_PARAMS, curve.ec_params().to_vec());
            p.set_bool(CKA_ENCRYPT, false);
            p.set_bool(CKA_WRAP, false);
            s.set_bool(CKA_DECRYPT, false);
            s.set_bool(CKA_UNWRAP, false);
            s.set_bool(CKA_DERIVE, true);
            let m = Mechanism::new(CKM_EC_KEY_PAIR_GEN);
            let (a, b) = open.token.generate_key_pair(&open.sid, &m, &p, &s)?;
            vec![a, b]
        }
        KeyType::Aes128 | KeyType::Aes256 | KeyType::Hmac => {
            let (kt, len, mech) = match kind {
                KeyType::Aes128 => (CKK_AES, 16, CKM_AES_KEY_GEN),
                KeyType::Aes256 => (CKK_AES, 32, CKM_AES_KEY_GEN),
                _ => (CKK_GENERIC_SECRET, 32, CKM_GENERIC_SECRET_KEY_GEN),
            };
            // Secret keys have no public part to derive an id from: a random one.
            let id = match &id {
                Some(id) => id.clone(),
                None => {
                    let mut b = [0u8; 8];
                    random(&mut b)?;
                    b.to_vec()
                }
            };
            let mut t = base_template(CKO_SECRET_KEY, kt, label, &Some(id));
            t.set_bool(CKA_PRIVATE, true);
            t.set_bool(CKA_SENSITIVE, true);
            t.set_bool(CKA_EXTRACTABLE, extractable);
            t.set_ulong(CKA_VALUE_LEN, len);
            if gate {
                t.set_bool(vault_core::gate::CKA_VTOKEN_GATED, true);
            }
            t.set_bool(CKA_SIGN, true);
            t.set_bool(CKA_VERIFY, true);
            let aes = kt == CKK_AES;
            for a in [CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP] {
                t.set_bool(a, aes);
            }
            vec![open
                .token
                .generate_key(&open.sid, &Mechanism::new(mech), &t)?]
        }
    };
    print_created(&open, json, "Generated", &handles)
}

/// One decoded input block: its PEM label (or the DER guess) and bytes.
struct Block {
    label: Option<String>,
    der: Vec<u8>,
}

/// Splits a file into PEM blocks, or treats it as one DER blob.
fn blocks(data: &[u8]) -> Result<Vec<Block>> {
    let text = match std::str::from_utf8(data) {
        Ok(t) if t.contains("-----BEGIN ") => t,
        _ => {
            return Ok(vec![Block {
                label: None,
                der: data.to_vec(),
            }])
        }
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let end_marker = after
            .find("-----END ")
            .ok_or_else(|| CliError::new("unterminated PEM block"))?;
        let tail = &after[end_marker + 9..];
        let close = tail
            .find("-----")
            .ok_or_else(|| CliError::new("unterminated PEM block"))?;
        let block_len = end_marker + 9 + close + 5;
        let pem = &after[..block_len];
        let (label, der) = der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| CliError::new(format!("invalid PEM: {e}")))?;
        out.push(Block {
            label: Some(label.to_string()),
            der,
        });
        rest = &after[block_len..];
    }
    Ok(out)
}

/// PKCS#1 `RSAPrivateKey` DER wrapped into a PKCS#8 `PrivateKeyInfo`.
fn pkcs1_to_pkcs8(der: &[u8]) -> Result<Vec<u8>> {
    const RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let info = pkcs8::PrivateKeyInfo::new(
        spki::AlgorithmIdentifierRef {
            oid: RSA,
            parameters: Some(der::asn1::AnyRef::NULL),
        },
        der,
    );
    info.to_der()
        .map_err(|e| CliError::new(format!("cannot re-encode the RSA key: {e}")))
}

/// What an input block holds.
enum Material {
    PrivateKey(Attributes, Attributes),
    Certificate(Attributes),
    PublicKey(Attributes),
}

fn classify(block: &Block) -> Result<Material> {
    let key = |der: &[u8]| {
        encoding::pkcs8_to_attributes(der)
            .map(|(p, s)| Material::PrivateKey(p, s))
            .map_err(|_| {
                CliError::new(
                    "the private key is not a supported PKCS#8 key (RSA, EC P-256, P-384 or P-521)",
                )
            })
    };
    let cert = |der: &[u8]| {
        encoding::certificate_attributes(der)
            .map(Material::Certificate)
            .map_err(|_| CliError::new("the certificate does not parse as X.509"))
    };
    let public = |der: &[u8]| {
        encoding::spki_to_attributes(der)
            .map(Material::PublicKey)
            .map_err(|_| {
                CliError::new(
                    "the public key is not a supported RSA or EC (P-256, P-384, P-521) key",
                )
            })
    };
    match block.label.as_deref() {
        Some("PRIVATE KEY") => key(&block.der),
        Some("RSA PRIVATE KEY") => key(&pkcs1_to_pkcs8(&block.der)?),
        Some("CERTIFICATE") | Some("X509 CERTIFICATE") | Some("TRUSTED CERTIFICATE") => cert(&block.der),
        Some("PUBLIC KEY") => public(&block.der),
        Some("ENCRYPTED PRIVATE KEY") => {
            bail!("internal error: an encrypted private key reached the import undecrypted")
        }
        Some("EC PRIVATE KEY") => bail!(
            "SEC1 'EC PRIVATE KEY' files are not read: convert with `openssl pkcs8 -topk8 -nocrypt -in FILE -out key.pem`"
        ),
        Some(other) => bail!("unsupported PEM block '{other}' (expected PRIVATE KEY, CERTIFICATE or PUBLIC KEY)"),
        // OpenSSL 3.0 writes RSA keys in DER as PKCS#1: try that form too.
        None => key(&block.der)
            .or_else(|e| pkcs1_to_pkcs8(&block.der).and_then(|p8| key(&p8)).map_err(|_| e))
            .or_else(|_| cert(&block.der))
            .or_else(|_| public(&block.der))
            .map_err(|_| {
                CliError::new("the file is neither a PKCS#8 private key, an X.509 certificate nor a public key (DER)")
            }),
    }
}

/// Encrypted PKCS#8 blocks decrypted (PBES2: PBKDF2 or scrypt with AES-CBC, as
/// OpenSSL writes them) with the passphrase, asked without echo once for all.
fn decrypt_blocks(list: Vec<Block>, args: &ImportArgs) -> Result<Vec<Block>> {
    use der::Decode;
    if !list
        .iter()
        .any(|b| b.label.as_deref() == Some("ENCRYPTED PRIVATE KEY"))
    {
        return Ok(list);
    }
    let pass = key_passphrase(args)?;
    list.into_iter()
        .map(|b| {
            if b.label.as_deref() != Some("ENCRYPTED PRIVATE KEY") {
                return Ok(b);
            }
            let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&b.der).map_err(|e| {
                CliError::new(format!("the encrypted private key does not parse: {e}"))
            })?;
            let doc = info.decrypt(pass.as_bytes()).map_err(|_| {
                CliError::new(
                    "cannot decrypt the private key: wrong passphrase, or a cipher other than \
                     PBES2 with AES (re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`)",
                )
            })?;
            Ok(Block {
                label: Some("PRIVATE KEY".into()),
                der: doc.as_bytes().to_vec(),
            })
        })
        .collect()
}

/// A PKCS#12 file's keys and certificates as blocks (passphrase as for an
/// encrypted key).
fn p12_blocks(data: &[u8], args: &ImportArgs) -> Result<Vec<Block>> {
    let pass = key_passphrase(args)?;
    let c = p12::open(data, &pass)?;
    if c.keys.is_empty() && c.certs.is_empty() {
        bail!("the PKCS#12 file holds no private key and no certificate");
    }
    let mut out: Vec<Block> = c
        .keys
        .iter()
        .map(|k| Block {
            label: Some("PRIVATE KEY".into()),
            der: k.to_vec(),
        })
        .collect();
    out.extend(c.certs.into_iter().map(|der| Block {
        label: Some("CERTIFICATE".into()),
        der,
    }));
    Ok(out)
}

fn key_passphrase(args: &ImportArgs) -> Result<zeroize::Zeroizing<String>> {
    if let Some(f) = &args.passphrase_file {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
            CliError::new(format!("cannot read passphrase file {}: {e}", f.display()))
        })?);
        return Ok(zeroize::Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Some(p) = args.passphrase.as_ref().filter(|p| !p.is_empty()) {
        return Ok(zeroize::Zeroizing::new(p.clone()));
    }
    if !pin::can_prompt() {
        bail!(
            "the file is encrypted and there is no terminal to ask its passphrase on: \
             use --passphrase-file FILE or VTOKEN_KEY_PASSPHRASE"
        );
    }
    rpassword::prompt_password(format!(
        "Passphrase of {}: ",
        args.file
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    ))
    .map(zeroize::Zeroizing::new)
    .map_err(|e| CliError::new(format!("cannot read the passphrase: {e}")))
}

/// An existing object of `class` with CKA_ID `id`, if any.
fn existing(open: &Open, class: CK_OBJECT_CLASS, id: &[u8]) -> Result<Option<u64>> {
    let mut t = Attributes::new();
    t.set_ulong(CKA_CLASS, class);
    t.set(CKA_ID, id.to_vec());
    Ok(open.token.search(&t)?.into_iter().next())
}

/// Warns (stderr, not an error: PKCS#11 allows it) when a key with this label or
/// CKA_ID is on the token already: applications picking a key by label or ID
/// would then find two.
fn warn_if_taken(open: &Open, label: Option<&str>, id: Option<&[u8]>) {
    let taken = |attr: CK_ATTRIBUTE_TYPE, value: &[u8]| {
        [CKO_PRIVATE_KEY, CKO_SECRET_KEY, CKO_PUBLIC_KEY]
            .into_iter()
            .any(|class| {
                let mut t = vault_core::Attributes::new();
                t.set_ulong(CKA_CLASS, class);
                t.set(attr, value.to_vec());
                open.token.search(&t).is_ok_and(|ids| !ids.is_empty())
            })
    };
    if let Some(l) = label.filter(|l| taken(CKA_LABEL, l.as_bytes())) {
        eprintln!(
            "warning: a key labelled \"{l}\" is on the token already; the new one has the \
             same label (applications choosing by label may take either)"
        );
    }
    if let Some(i) = id.filter(|i| taken(CKA_ID, i)) {
        eprintln!(
            "warning: a key with ID {} is on the token already; the new one has the same ID",
            hex::encode(i)
        );
    }
}

/// The label of a key already on the token with CKA_ID `id`.
fn key_label(open: &Open, id: &[u8]) -> Option<String> {
    for class in [CKO_PRIVATE_KEY, CKO_PUBLIC_KEY] {
        if let Ok(Some(h)) = existing(open, class, id) {
            if let Ok(a) = open.token.attributes(h) {
                if !a.label().is_empty() {
                    return Some(a.label());
                }
            }
        }
    }
    None
}

/// `vtoken import`.
pub fn import(ctx: &Ctx, json: bool, args: &ImportArgs) -> Result<()> {
    let ImportArgs {
        file,
        label,
        id,
        gate,
        user,
        ..
    } = args;
    let gate = *gate;
    let id = id.as_deref().map(parse_id).transpose()?;
    let data = zeroize::Zeroizing::new(read_in(file)?);
    let list = if p12::is_pfx(&data) {
        p12_blocks(&data, args)?
    } else {
        decrypt_blocks(blocks(&data)?, args)?
    };
    if list.is_empty() {
        bail!("{}: no PEM block found", file.display());
    }
    let materials = list.iter().map(classify).collect::<Result<Vec<_>>>()?;
    let open = ctx.open()?;
    let needs_login = materials
        .iter()
        .any(|m| matches!(m, Material::PrivateKey(..)));
    if needs_login {
        login_user(&open, user)?;
    } else {
        login_if_given(&open, user)?;
    }
    let file_label = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut handles = Vec::new();
    for m in materials {
        match m {
            Material::PrivateKey(mut p, mut s) => {
                let kid = id.clone().unwrap_or_else(|| encoding::key_id(&p));
                if existing(&open, CKO_PRIVATE_KEY, &kid)?.is_some() {
                    bail!(
                        "a private key with CKA_ID {} is on the token already",
                        hex::encode(&kid)
                    );
                }
                let l = label.clone().unwrap_or_else(|| file_label.clone());
                warn_if_taken(&open, Some(&l), None);
                for (a, private) in [(&mut p, false), (&mut s, true)] {
                    a.set_bool(CKA_TOKEN, true);
                    a.set_bool(CKA_PRIVATE, private);
                    a.set(CKA_LABEL, l.as_bytes().to_vec());
                    a.set(CKA_ID, kid.clone());
                }
                s.set_bool(CKA_SENSITIVE, true);
                s.set_bool(CKA_EXTRACTABLE, false);
                if gate {
                    s.set_bool(vault_core::gate::CKA_VTOKEN_GATED, true);
                }
                if s.key_type() == Some(CKK_EC) {
                    // EC keys sign and derive; they do not encrypt or wrap.
                    for a in [CKA_DECRYPT, CKA_UNWRAP] {
                        s.set_bool(a, false);
                    }
                    s.set_bool(CKA_DERIVE, true);
                    for a in [CKA_ENCRYPT, CKA_WRAP] {
                        p.set_bool(a, false);
                    }
                }
                let sh = open.token.create_object(&open.sid, &s)?;
                if existing(&open, CKO_PUBLIC_KEY, &kid)?.is_none() {
                    match open.token.create_object(&open.sid, &p) {
                        Ok(ph) => handles.push(ph),
                        Err(e) => {
                            let _ = open.token.destroy_object(&open.sid, sh);
                            return Err(e.into());
                        }
                    }
                }
                handles.push(sh);
            }
            Material::Certificate(mut c) => {
                if let Some(id) = &id {
                    c.set(CKA_ID, id.clone());
                }
                let cid = c.get(CKA_ID).unwrap_or_default().to_vec();
                if let Some(value) = c.get(CKA_VALUE).map(|v| v.to_vec()) {
                    let mut t = Attributes::new();
                    t.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
                    t.set(CKA_VALUE, value);
                    if let Some(h) = open.token.search(&t)?.first() {
                        bail!("this certificate is on the token already (handle {h})");
                    }
                }
                let l = label
                    .clone()
                    .or_else(|| key_label(&open, &cid))
                    .or_else(|| c.get(CKA_SUBJECT).and_then(common_name))
                    .unwrap_or_else(|| file_label.clone());
                c.set_bool(CKA_TOKEN, true);
                c.set_bool(CKA_PRIVATE, false);
                c.set(CKA_LABEL, l.into_bytes());
                handles.push(open.token.create_object(&open.sid, &c)?);
            }
            Material::PublicKey(mut p) => {
                let kid = id.clone().unwrap_or_else(|| encoding::key_id(&p));
                if existing(&open, CKO_PUBLIC_KEY, &kid)?.is_some() {
                    bail!(
                        "a public key with CKA_ID {} is on the token already",
                        hex::encode(&kid)
                    );
                }
                let l = label
                    .clone()
                    .or_else(|| key_label(&open, &kid))
                    .unwrap_or_else(|| file_label.clone());
                p.set_bool(CKA_TOKEN, true);
                p.set_bool(CKA_PRIVATE, false);
                p.set(CKA_LABEL, l.into_bytes());
                p.set(CKA_ID, kid);
                handles.push(open.token.create_object(&open.sid, &p)?);
            }
        }
    }
    print_created(&open, json, "Imported", &handles)
}

/// The CN of a DER-encoded Name.
fn common_name(name_der: &[u8]) -> Option<String> {
    use der::Decode;
    const CN: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("2.5.4.3");
    let name = x509_cert::name::Name::from_der(name_der).ok()?;
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == CN {
                let s = atv.value.decode_as::<String>().ok().or_else(|| {
                    std::str::from_utf8(atv.value.value())
                        .ok()
                        .map(|s| s.to_string())
                });
                if s.is_some() {
                    return s;
                }
            }
        }
    }
    None
}

/// `vtoken export`.
pub fn export(ctx: &Ctx, json: bool, args: &ExportArgs) -> Result<()> {
    let ExportArgs {
        select,
        kind,
        der: der_out,
        out,
        user,
    } = args;
    let (kind, der_out, out) = (*kind, *der_out, out.as_deref());
    let open = ctx.open()?;
    login_if_given(&open, user)?;
    let all = select::select(&open, select, &[])?;
    let mut certs = Vec::new();
    let mut pubs = Vec::new();
    let mut secret = Vec::new();
    for h in all {
        let a = open.token.attributes(h)?;
        match a.class() {
            Some(CKO_CERTIFICATE) => certs.push((h, a)),
            Some(CKO_PUBLIC_KEY) => pubs.push((h, a)),
            Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY) => secret.push((h, a)),
            _ => {}
        }
    }
    let chosen = match kind {
        Some(ExportKind::Cert) => &certs,
        Some(ExportKind::Pubkey) => &pubs,
        None if !certs.is_empty() => &certs,
        None => &pubs,
    };
    let (handle, attrs) = match chosen.len() {
        1 => &chosen[0],
        0 if !secret.is_empty() => {
            let what = match secret[0].1.class() {
                Some(CKO_SECRET_KEY) => "secret key",
                _ => "private key",
            };
            bail!(
                "refusing to export a {what}: private and secret keys never leave the token \
                 (export the public key or certificate instead)"
            )
        }
        0 => bail!(
            "no {} matches {}",
            export_noun(kind),
            select::describe_selector(select)
        ),
        n => {
            let hs: Vec<String> = chosen.iter().map(|(h, _)| h.to_string()).collect();
            bail!(
                "{n} objects match (handles {}); choose one with --handle or --id",
                hs.join(", ")
            )
        }
    };
    let (der_bytes, pem_label) = match attrs.class() {
        Some(CKO_CERTIFICATE) => (attrs.require(CKA_VALUE)?.to_vec(), "CERTIFICATE"),
        _ => {
            let spki = match attrs.get(CKA_PUBLIC_KEY_INFO).filter(|v| !v.is_empty()) {
                Some(v) => v.to_vec(),
                None => encoding::public_key_spki(attrs)?,
            };
            (spki, "PUBLIC KEY")
        }
    };
    let bytes = if der_out {
        der_bytes
    } else {
        der::pem::encode_string(pem_label, der::pem::LineEnding::LF, &der_bytes)
            .map_err(|e| CliError::new(format!("PEM: {e}")))?
            .into_bytes()
    };
    if json && out.is_some() {
        write_out(out, &bytes)?;
        return print_json(&json!({"exported": ObjectInfo::new(*handle, attrs), "file": out}));
    }
    write_out(out, &bytes)?;
    if let Some(p) = out {
        eprintln!(
            "wrote {} (handle {handle}) to {}",
            pem_label.to_lowercase(),
            p.display()
        );
    }
    Ok(())
}

fn export_noun(kind: Option<ExportKind>) -> &'static str {
    match kind {
        Some(ExportKind::Cert) => "certificate",
        Some(ExportKind::Pubkey) => "public key",
        None => "certificate or public key",
    }
}
