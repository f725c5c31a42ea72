//! Post-quantum keys on a vtoken through PKCS#11 3.2, with the `cryptoki` crate
//! (any PKCS#11 application does the same): an ML-DSA-65 key pair signs and
//! verifies; an ML-KEM-768 key pair receives an AES-256 key by encapsulation,
//! and both ends encrypt and decrypt with it.
//!
//! Run: `cargo run -p vtoken-examples --bin post_quantum [path/to/libvtoken_pkcs11.so]`
//! (default `target/release/libvtoken_pkcs11.so`; build it first with
//! `cargo build --release -p vtoken-pkcs11`). A throw-away token is made in a
//! temporary directory; `VTOKEN_CONF` points the module at it.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, MlKemParameterSetType, ObjectClass,
};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let module = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/libvtoken_pkcs11.so".into());
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("vtoken.toml");
    std::fs::write(
        &conf,
        format!("token_dir = {:?}\n", dir.path().join("tokens")),
    )?;
    // Read by the module when it initializes; set before anything loads it.
    std::env::set_var("VTOKEN_CONF", &conf);

    let p11 = Pkcs11::new(&module)?;
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let info = p11.get_library_info()?;
    println!(
        "{} (Cryptoki {}.{})",
        info.library_description(),
        info.cryptoki_version().major(),
        info.cryptoki_version().minor()
    );
    // The free slot: make a token there, set its user PIN.
    let slot = p11.get_all_slots()?[0];
    let so = AuthPin::new("so-pin-123".into());
    let user = AuthPin::new("user-pin-123".into());
    p11.init_token(slot, &so, "pq-example")?;
    let s = p11.open_rw_session(slot)?;
    s.login(UserType::So, Some(&so))?;
    s.init_pin(&user)?;
    s.logout()?;
    s.login(UserType::User, Some(&user))?;

    // ML-DSA-65: sign with a context string, verify with the 3.2 functions.
    let (dsa_pub, dsa_priv) = s.generate_key_pair(
        &Mechanism::MlDsaKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_65.into()),
            Attribute::Label(b"pq-signing".to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Label(b"pq-signing".to_vec()),
        ],
    )?;
    let m = Mechanism::MlDsa(SignAdditionalContext::new(
        HedgeType::Preferred,
        Some(b"example"),
    ));
    let message = b"a message for the post-quantum age";
    let sig = s.sign(&m, dsa_priv, message)?;
    s.verify_signature_init(&m, dsa_pub, &sig)?;
    s.verify_signature(message)?;
    println!("ML-DSA-65: {}-byte signature verified", sig.len());

    // ML-KEM-768: the sender encapsulates an AES-256 key to the public key; the
    // holder of the private key decapsulates the same key.
    let (kem_pub, kem_priv) = s.generate_key_pair(
        &Mechanism::MlKemKeyPairGen,
        &[Attribute::ParameterSet(
            MlKemParameterSetType::ML_KEM_768.into(),
        )],
        &[],
    )?;
    let aes = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    let (ciphertext, sender_key) = s.encapsulate_key(&Mechanism::MlKem, kem_pub, &aes)?;
    let receiver_key = s.decapsulate_key(&Mechanism::MlKem, kem_priv, &aes, &ciphertext)?;
    let iv = [0u8; 16];
    let secret = b"sixteen byte msg";
    let sealed = s.encrypt(&Mechanism::AesCbc(iv), sender_key, secret)?;
    let opened = s.decrypt(&Mechanism::AesCbc(iv), receiver_key, &sealed)?;
    assert_eq!(&opened, secret);
    let len = match s.get_attributes(receiver_key, &[AttributeType::ValueLen])?[..] {
        [Attribute::ValueLen(n)] => u64::from(n),
        _ => 0,
    };
    println!(
        "ML-KEM-768: {}-byte ciphertext; both ends hold the same AES-{} key, whose \
         value never left the token",
        ciphertext.len(),
        len * 8
    );
    Ok(())
}
