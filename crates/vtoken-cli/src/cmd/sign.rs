//! `vtoken sign` and `vtoken verify`: mechanism names, key choice, and the
//! conversion between PKCS#11's raw ECDSA signatures (`r || s`) and ASN.1 DER.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use cryptoki_sys::*;
use der::asn1::UintRef;
use der::{Decode, Encode};
use vault_core::mechanism::{MechParam, Mechanism};
use vault_core::session::{OutLen, Output};
use vault_core::token::UserType;
use vault_core::{Attributes, Error};

use crate::args::{Selector, UserPin};
use crate::context::{Ctx, Open};
use crate::error::{bail, CliError, Result};
use crate::gated;
use crate::output::{outln, print_json, read_in, write_out};
use crate::pin;
use crate::select::{self, curve_of};

// `vtoken sign`. A plain comment: the help text is on the `Command` variant, and
// a doc comment here would become the subcommand's about text.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub select: Selector,
    /// Signature mechanism [default: from the key type].
    #[arg(long, short = 'm')]
    pub mechanism: Option<String>,
    /// Input file ("-" for stdin).
    #[arg(short = 'i', long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Output file [default: stdout].
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// ECDSA: write the signature as ASN.1 DER instead of raw r||s.
    #[arg(long)]
    pub der: bool,
    /// Write the binary signature to stdout even when it is a terminal.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub user: UserPin,
}
// `vtoken verify`. A plain comment: the help text is on the `Command` variant, and
// a doc comment here would become the subcommand's about text.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub select: Selector,
    /// Signature mechanism [default: from the key type].
    #[arg(long, short = 'm')]
    pub mechanism: Option<String>,
    /// Input file ("-" for stdin).
    #[arg(short = 'i', long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// The signature file.
    #[arg(long, short = 's', value_name = "FILE")]
    pub signature: PathBuf,
    /// ECDSA: the signature is ASN.1 DER (as OpenSSL writes it), not raw r||s.
    #[arg(long)]
    pub der: bool,
    #[command(flatten)]
    pub user: UserPin,
}

/// A signature mechanism as named on the command line.
struct Named {
    name: &'static str,
    mech: CK_MECHANISM_TYPE,
    /// The key type it needs (`None`: a secret key).
    key: Option<CK_KEY_TYPE>,
    /// PSS: hash mechanism, MGF and salt length.
    pss: Option<(CK_MECHANISM_TYPE, CK_RSA_PKCS_MGF_TYPE, u64)>,
}

const fn m(name: &'static str, mech: CK_MECHANISM_TYPE, key: Option<CK_KEY_TYPE>) -> Named {
    Named {
        name,
        mech,
        key,
        pss: None,
    }
}

const MECHANISMS: &[Named] = &[
    m("rsa-pkcs", CKM_RSA_PKCS, Some(CKK_RSA)),
    m("rsa-pkcs-sha1", CKM_SHA1_RSA_PKCS, Some(CKK_RSA)),
    m("rsa-pkcs-sha224", CKM_SHA224_RSA_PKCS, Some(CKK_RSA)),
    m("rsa-pkcs-sha256", CKM_SHA256_RSA_PKCS, Some(CKK_RSA)),
    m("rsa-pkcs-sha384", CKM_SHA384_RSA_PKCS, Some(CKK_RSA)),
    m("rsa-pkcs-sha512", CKM_SHA512_RSA_PKCS, Some(CKK_RSA)),
    Named {
        name: "rsa-pss-sha256",
        mech: CKM_SHA256_RSA_PKCS_PSS,
        key: Some(CKK_RSA),
        pss: Some((CKM_SHA256, CKG_MGF1_SHA256, 32)),
    },
    Named {
        name: "rsa-pss-sha384",
        mech: CKM_SHA384_RSA_PKCS_PSS,
        key: Some(CKK_RSA),
        pss: Some((CKM_SHA384, CKG_MGF1_SHA384, 48)),
    },
    Named {
        name: "rsa-pss-sha512",
        mech: CKM_SHA512_RSA_PKCS_PSS,
        key: Some(CKK_RSA),
        pss: Some((CKM_SHA512, CKG_MGF1_SHA512, 64)),
    },
    m("ecdsa", CKM_ECDSA, Some(CKK_EC)),
    m("ecdsa-sha1", CKM_ECDSA_SHA1, Some(CKK_EC)),
    m("ecdsa-sha224", CKM_ECDSA_SHA224, Some(CKK_EC)),
    m("ecdsa-sha256", CKM_ECDSA_SHA256, Some(CKK_EC)),
    m("ecdsa-sha384", CKM_ECDSA_SHA384, Some(CKK_EC)),
    m("ecdsa-sha512", CKM_ECDSA_SHA512, Some(CKK_EC)),
    m("hmac-sha1", CKM_SHA_1_HMAC, None),
    m("hmac-sha224", CKM_SHA224_HMAC, None),
    m("hmac-sha256", CKM_SHA256_HMAC, None),
    m("hmac-sha384", CKM_SHA384_HMAC, None),
    m("hmac-sha512", CKM_SHA512_HMAC, None),
];

fn lookup(name: &str) -> Result<&'static Named> {
    let n = name.to_ascii_lowercase();
    MECHANISMS.iter().find(|m| m.name == n).ok_or_else(|| {
        let all: Vec<&str> = MECHANISMS.iter().map(|m| m.name).collect();
        CliError::new(format!(
            "unknown mechanism '{name}'; known: {}",
            all.join(", ")
        ))
    })
}

/// The default mechanism for a key.
fn default_for(a: &Attributes) -> Result<&'static Named> {
    match a.key_type() {
        Some(CKK_RSA) => lookup("rsa-pkcs-sha256"),
        Some(CKK_EC) => match curve_of(a) {
            Some(c) if c.bits() == 384 => lookup("ecdsa-sha384"),
            Some(c) if c.bits() == 521 => lookup("ecdsa-sha512"),
            _ => lookup("ecdsa-sha256"),
        },
        _ if a.class() == Some(CKO_SECRET_KEY) => lookup("hmac-sha256"),
        _ => bail!("this key type cannot sign"),
    }
}

fn mechanism_of(n: &Named) -> Mechanism {
    match n.pss {
        Some((hash, mgf, salt_len)) => Mechanism {
            ty: n.mech,
            param: MechParam::Pss {
                hash,
                mgf,
                salt_len,
            },
        },
        None => Mechanism::new(n.mech),
    }
}

/// Picks exactly one key among `handles`.
fn one(open: &Open, handles: Vec<u64>, sel: &Selector, what: &str) -> Result<(u64, Attributes)> {
    match handles.len() {
        1 => Ok((handles[0], (*open.token.attributes(handles[0])?).clone())),
        0 => bail!("no {what} matches {}", select::describe_selector(sel)),
        n => {
            let hs: Vec<String> = handles.iter().map(|h| h.to_string()).collect();
            bail!(
                "{n} keys match (handles {}); choose one with --id or --handle",
                hs.join(", ")
            )
        }
    }
}

fn check_key(n: &Named, a: &Attributes) -> Result<()> {
    let ok = match n.key {
        Some(kt) => a.key_type() == Some(kt),
        None => a.class() == Some(CKO_SECRET_KEY),
    };
    if !ok {
        let kt = select::key_type_name(a.key_type()).unwrap_or("unknown");
        bail!("mechanism {} does not fit this {kt} key", n.name);
    }
    Ok(())
}

fn choose(a: &Attributes, mech: &Option<String>) -> Result<&'static Named> {
    let n = match mech {
        Some(m) => lookup(m)?,
        None => default_for(a)?,
    };
    check_key(n, a)?;
    Ok(n)
}

fn is_ecdsa(n: &Named) -> bool {
    n.key == Some(CKK_EC)
}

/// `vtoken sign`.
pub fn sign(ctx: &Ctx, args: &SignArgs) -> Result<()> {
    let SignArgs {
        select: sel,
        mechanism: mech,
        input,
        out,
        der: der_out,
        force,
        user,
    } = args;
    let (out, der_out) = (out.as_deref(), *der_out);
    {
        use std::io::IsTerminal;
        let to_stdout = out.is_none() || out == Some(Path::new("-"));
        if to_stdout && !force && std::io::stdout().is_terminal() {
            bail!(
                "a signature is binary and would garble the terminal: write it to a file \
                 with -o FILE, pipe it (| base64), or give --force"
            );
        }
    }
    let data = read_in(input)?;
    let open = ctx.open()?;
    open.login(UserType::User, &pin::user(user)?)?;
    let handles = select::select(&open, sel, &[CKO_PRIVATE_KEY, CKO_SECRET_KEY])?;
    let (h, attrs) = one(&open, handles, sel, "private or secret key")?;
    let n = choose(&attrs, mech)?;
    if der_out && !is_ecdsa(n) {
        bail!("--der applies to ECDSA signatures only");
    }
    // A gated key or class: the picture check on this terminal first (SPEC C1–C3).
    gated::before(
        ctx,
        &open,
        vault_core::gate::OpClass::Sign,
        Some(&attrs),
        &format!("sign with key \"{}\"", attrs.label()),
        input != Path::new("-"),
    )?;
    open.token.sign_init(&open.sid, &mechanism_of(n), h)?;
    let sig = match open
        .token
        .sign(&open.sid, &data, OutLen::Buffer(usize::MAX))?
    {
        Output::Bytes(b) => b,
        Output::Needed(_) => bail!("internal error: signature buffer too small"),
    };
    let sig = if der_out {
        ecdsa_raw_to_der(&sig)?
    } else {
        sig
    };
    write_out(out, &sig)?;
    if let Some(p) = out {
        eprintln!(
            "signed with {} (handle {h}), {} bytes written to {}",
            n.name,
            sig.len(),
            p.display()
        );
    }
    Ok(())
}

/// `vtoken verify`: `Ok(true)` when valid, `Ok(false)` when invalid.
#[allow(clippy::too_many_arguments)]
/// `vtoken verify`: exit status 0 for a valid signature, 1 for an invalid one.
pub fn verify(ctx: &Ctx, json: bool, args: &VerifyArgs) -> Result<ExitCode> {
    let valid = check(ctx, args)?;
    if json {
        print_json(&serde_json::json!({ "valid": valid }))?;
    }
    if !valid {
        eprintln!("error: signature invalid");
        return Ok(ExitCode::FAILURE);
    }
    if !json {
        outln!("signature valid");
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the signature of `args` verifies.
fn check(ctx: &Ctx, args: &VerifyArgs) -> Result<bool> {
    let VerifyArgs {
        select: sel,
        mechanism: mech,
        input,
        signature,
        der: der_in,
        user,
    } = args;
    let der_in = *der_in;
    let data = read_in(input)?;
    let sig = read_in(signature)?;
    let open = ctx.open()?;
    let logged_in = match pin::user_given(user)? {
        Some(p) => open.login(UserType::User, &p).map(|_| true)?,
        None => false,
    };
    let mut handles = select::select(&open, sel, &[CKO_PUBLIC_KEY, CKO_SECRET_KEY])?;
    if handles.is_empty() && !logged_in {
        // Perhaps a secret (HMAC) key, visible only after login.
        open.login(UserType::User, &pin::user(user)?)?;
        handles = select::select(&open, sel, &[CKO_PUBLIC_KEY, CKO_SECRET_KEY])?;
    }
    let (h, attrs) = one(&open, handles, sel, "public or secret key")?;
    let n = choose(&attrs, mech)?;
    if der_in && !is_ecdsa(n) {
        bail!("--der applies to ECDSA signatures only");
    }
    let sig = if der_in {
        let fl = curve_of(&attrs).map(|c| c.field_len()).unwrap_or(32);
        match ecdsa_der_to_raw(&sig, fl) {
            Some(s) => s,
            None => return Ok(false),
        }
    } else {
        sig
    };
    open.token.verify_init(&open.sid, &mechanism_of(n), h)?;
    match open.token.verify(&open.sid, &data, &sig) {
        Ok(()) => Ok(true),
        Err(Error::SignatureInvalid | Error::SignatureLenRange) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `r || s` → DER `SEQUENCE { INTEGER r, INTEGER s }`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || raw.len() & 1 == 1 {
        bail!("unexpected ECDSA signature length {}", raw.len());
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let seq = vec![
        UintRef::new(r).map_err(|e| CliError::new(format!("DER: {e}")))?,
        UintRef::new(s).map_err(|e| CliError::new(format!("DER: {e}")))?,
    ];
    seq.to_der().map_err(|e| CliError::new(format!("DER: {e}")))
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` → `r || s` with each half `field_len`
/// bytes; `None` if it does not parse or a value is too long.
pub fn ecdsa_der_to_raw(der: &[u8], field_len: usize) -> Option<Vec<u8>> {
    let seq: Vec<UintRef<'_>> = Vec::from_der(der).ok()?;
    if seq.len() != 2 {
        return None;
    }
    let mut out = vec![0u8; 2 * field_len];
    for (i, v) in seq.iter().enumerate() {
        let b = v.as_bytes();
        if b.len() > field_len {
            return None;
        }
        let end = (i + 1) * field_len;
        out[end - b.len()..end].copy_from_slice(b);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_round_trip() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero in DER
        raw[33] = 0x01; // s has leading zeros to strip
        raw[63] = 0x7f;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(ecdsa_der_to_raw(&der, 32).unwrap(), raw);
        assert!(ecdsa_der_to_raw(&der, 16).is_none());
        assert!(ecdsa_der_to_raw(b"\x30\x00", 32).is_none());
    }

    #[test]
    fn mechanism_names() {
        assert_eq!(
            lookup("RSA-PSS-SHA256").unwrap().mech,
            CKM_SHA256_RSA_PKCS_PSS
        );
        assert!(lookup("md5").is_err());
    }
}
