//! Quick start for the Rust API: create a token in a temporary directory, generate
//! an EC P-256 key pair on it, sign, verify, and show an OTP code from `otp-core`.
//!
//! Run: `cargo run -p vtoken-examples --bin quickstart`

use vault_core::config::Config;
use vault_core::mechanism::Mechanism;
use vault_core::pkcs11::*;
use vault_core::session::{OutLen, Output};
use vault_core::slots::Registry;
use vault_core::token::UserType;
use vault_core::Attributes;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // A throw-away token directory; real programs use Config::load() (VTOKEN_CONF).
    let reg = Registry::new(Config::for_dir(dir.path()));
    let entry = reg.create("example", b"so-pin-123", None)?;
    let token = reg.open(&entry)?;
    token.login(UserType::So, b"so-pin-123")?;
    token.init_pin(b"user-pin-123")?;
    token.logout()?;
    println!(
        "token {} (serial {}) in slot {}",
        entry.label, entry.serial, entry.slot_id
    );

    token.login(UserType::User, b"user-pin-123")?;
    let s = &token.open_session(true)?;
    let mut public = Attributes::new();
    public.set_bool(CKA_TOKEN, true);
    // DER of the P-256 OID, as CKA_EC_PARAMS carries it.
    public.set(CKA_EC_PARAMS, hex::decode("06082a8648ce3d030107")?);
    let mut private = Attributes::new();
    private.set_bool(CKA_TOKEN, true);
    private.set(CKA_LABEL, b"example-key".to_vec());
    let (pub_id, priv_id) =
        token.generate_key_pair(s, &Mechanism::new(CKM_EC_KEY_PAIR_GEN), &public, &private)?;
    println!(
        "key pair: CKA_ID {}",
        hex::encode(token.attributes(priv_id)?.get(CKA_ID).unwrap_or_default())
    );

    let message = b"hello from vtoken";
    token.sign_init(s, &Mechanism::new(CKM_ECDSA_SHA256), priv_id)?;
    let signature = match token.sign(s, message, OutLen::Buffer(usize::MAX))? {
        Output::Bytes(sig) => sig,
        Output::Needed(n) => unreachable!("an unlimited buffer never needs {n} bytes"),
    };
    token.verify_init(s, &Mechanism::new(CKM_ECDSA_SHA256), pub_id)?;
    token.verify(s, message, &signature)?;
    println!(
        "ECDSA-SHA256 signature ({} bytes) verified",
        signature.len()
    );

    let uri = otp_core::OtpUri::parse(
        "otpauth://totp/Example:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    )?;
    println!("TOTP for {} at t=59: {}", uri.name(), uri.code(59)?);
    Ok(())
}
