//! The token side of the e-wallet (`vault_core::wallet`, SPEC W1–W7, patent
//! CN101211451A steps 301–318, G–I) on a real token file, with a bank key made
//! here: the wallet key signs only its own certification request, the balance
//! never goes below zero, the online sequence number only moves forward and is
//! never reused, and a load moves only along Requested → Credited → Confirmed or
//! Requested → Refunded (anything out of order is refused and changes nothing).

use std::sync::Arc;
use std::time::Duration;

use der::{Decode, Encode};
use p256::ecdsa::SigningKey;
use rand_core::OsRng;
use vault_core::config::Config;
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::slots::{Registry, TokenEntry};
use vault_core::token::{Token, UserType};
use vtoken_wallet::msg::{Kind, LoadPermit, LoadReceipt, LoadRequest, Outcome, Settlement};
use vtoken_wallet::{Amount, Envelope, LoadState};

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";

struct Yes;

impl Prompt for Yes {
    fn confirm(&self, _: &Request) -> vault_core::Result<Answer> {
        Ok(Answer::Confirmed)
    }
    fn name(&self) -> &str {
        "yes"
    }
}

/// A self-signed certificate of `key` named `cn` (the bank's), or issued by
/// `issuer` (the wallet's).
fn cert(key: &SigningKey, cn: &str, issuer: Option<(&SigningKey, &str)>) -> Vec<u8> {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    let spki = SubjectPublicKeyInfoOwned::from_der(
        &pkcs8::EncodePublicKey::to_public_key_der(key.verifying_key())
            .unwrap()
            .into_vec(),
    )
    .unwrap();
    let subject: Name = format!("CN={cn}").parse().unwrap();
    let validity = Validity::from_now(Duration::from_secs(3600)).unwrap();
    let (signer, profile) = match issuer {
        None => (key, Profile::Root),
        Some((k, name)) => (
            k,
            Profile::Leaf {
                issuer: format!("CN={name}").parse().unwrap(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
        ),
    };
    let b = CertificateBuilder::new(
        profile,
        SerialNumber::from(7u32),
        validity,
        subject,
        spki,
        signer,
    )
    .unwrap();
    b.build::<p256::ecdsa::DerSignature>()
        .unwrap()
        .to_der()
        .unwrap()
}

/// A token with the user logged in, a prompt that says yes, and a certified
/// wallet trusting the bank key returned.
fn setup() -> (
    tempfile::TempDir,
    Registry,
    TokenEntry,
    Arc<Token>,
    SigningKey,
) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let e = reg.create("wallet", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, USER).unwrap();
    t.set_prompt(Arc::new(Yes));
    let bank = SigningKey::random(&mut OsRng);
    let bank_cert = cert(&bank, "bank", None);
    let spki = t.wallet_init(&bank_cert, "CNY").unwrap();
    // The wallet key's certificate (the bank's `register` in real life): only its
    // public key matters to the token.
    let _ = vtoken_wallet::keys::verifying_key_of_spki(&spki).unwrap();
    let stand_in = SigningKey::random(&mut OsRng);
    let wallet_cert = {
        // A certificate whose key is the wallet's: built around the wallet SPKI.
        use x509_cert::builder::{Builder, CertificateBuilder, Profile};
        use x509_cert::spki::SubjectPublicKeyInfoOwned;
        let b = CertificateBuilder::new(
            Profile::Leaf {
                issuer: "CN=bank".parse().unwrap(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            x509_cert::serial_number::SerialNumber::from(9u32),
            x509_cert::time::Validity::from_now(Duration::from_secs(3600)).unwrap(),
            format!("CN={}", t.serial()).parse().unwrap(),
            SubjectPublicKeyInfoOwned::from_der(&spki).unwrap(),
            &bank,
        )
        .unwrap();
        b.build::<p256::ecdsa::DerSignature>()
            .unwrap()
            .to_der()
            .unwrap()
    };
    // A certificate for another key is refused; the wallet's is installed.
    let other = cert(&stand_in, "other", Some((&bank, "bank")));
    assert!(t.wallet_install(&other).is_err());
    t.wallet_install(&wallet_cert).unwrap();
    (dir, reg, e, t, bank)
}

fn amount(s: &str) -> Amount {
    s.parse().unwrap()
}

/// The bank's permit for a request (what `vtoken-server bank` signs at step 311).
fn permit_for(req: &Envelope, bank: &SigningKey) -> Envelope {
    let r: LoadRequest = postcard::from_bytes(&req.body).unwrap();
    let p = LoadPermit {
        token_serial: r.token_serial.clone(),
        account: r.account,
        amount: r.amount,
        seq: r.seq,
        random: r.random,
        host_date: "2026-12-04".into(),
        host_time: "12:00:00".into(),
    };
    Envelope::seal_with(Kind::LoadPermit, &r.token_serial, &p, bank).unwrap()
}

fn settlement(req: &Envelope, outcome: Outcome, bank: &SigningKey) -> Envelope {
    let r: LoadRequest = postcard::from_bytes(&req.body).unwrap();
    let s = Settlement {
        token_serial: r.token_serial.clone(),
        seq: r.seq,
        random: r.random,
        outcome,
        account_balance: Amount::ZERO,
    };
    Envelope::seal_with(Kind::Settlement, &r.token_serial, &s, bank).unwrap()
}

/// Loads `a` all the way (request, permit, receipt, confirmed settlement).
fn load(t: &Token, bank: &SigningKey, a: &str) -> u64 {
    let req = t.wallet_load_request("ACC1", amount(a)).unwrap();
    let receipt = t.wallet_load_permit(&permit_for(&req, bank)).unwrap();
    let wallet =
        vtoken_wallet::keys::verifying_key_of_cert(&t.wallet_cert().unwrap().unwrap()).unwrap();
    let r: LoadReceipt = receipt.open(Kind::LoadReceipt, &wallet).unwrap();
    assert_eq!(r.amount, amount(a));
    assert_eq!(
        t.wallet_load_settled(&settlement(&req, Outcome::Confirmed, bank))
            .unwrap(),
        Outcome::Confirmed
    );
    r.seq
}

#[test]
fn wallet_sign_csr_signs_only_a_request_for_the_wallet_key() {
    let (_d, _r, _e, t, _bank) = setup();
    let spki_of = |k: &SigningKey| {
        x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(
            &pkcs8::EncodePublicKey::to_public_key_der(k.verifying_key())
                .unwrap()
                .into_vec(),
        )
        .unwrap()
    };
    let info = |spki| x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: "CN=someone".parse().unwrap(),
        public_key: spki,
        attributes: Default::default(),
    };
    // A request for a foreign key: refused, nothing signed.
    let foreign = SigningKey::random(&mut OsRng);
    let tbs = info(spki_of(&foreign)).to_der().unwrap();
    let e = t.wallet_sign_csr(&tbs).unwrap_err();
    assert!(e.to_string().contains("not for the wallet key"), "{e}");
    // Arbitrary bytes (a hash to sign, a protocol message): not a request.
    assert!(t.wallet_sign_csr(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
    assert!(t.wallet_sign_csr(b"sign me").is_err());
    // The wallet key's own request: signed, and the signature verifies.
    let cert = t.wallet_cert().unwrap().unwrap();
    let wallet_spki = vtoken_wallet::keys::spki_of_cert(&cert).unwrap();
    let tbs = info(x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&wallet_spki).unwrap())
        .to_der()
        .unwrap();
    let sig = t.wallet_sign_csr(&tbs).unwrap();
    let vk = vtoken_wallet::keys::verifying_key_of_spki(&wallet_spki).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
    p256::ecdsa::signature::Verifier::verify(&vk, &tbs, &sig).unwrap();
}

#[test]
fn the_wallet_needs_the_user_and_one_wallet_per_token() {
    let (_d, _r, _e, t, bank) = setup();
    assert!(t
        .wallet_init(&cert(&bank, "bank", None), "CNY")
        .unwrap_err()
        .to_string()
        .contains("has a wallet already"));
    t.logout().unwrap();
    assert!(matches!(
        t.wallet_info(),
        Err(vault_core::Error::UserNotLoggedIn)
    ));
    assert!(t.wallet_load_request("ACC1", amount("1.00")).is_err());
    t.login(UserType::User, USER).unwrap();
    assert_eq!(t.wallet_info().unwrap().balance, Amount::ZERO);
    // Step 301: another certificate than the bank's is refused.
    let other = SigningKey::random(&mut OsRng);
    assert!(t.wallet_check_bank(&cert(&other, "bank", None)).is_err());
    t.wallet_check_bank(&t.wallet_bank_cert().unwrap()).unwrap();
}

#[test]
fn the_balance_never_goes_below_zero() {
    let (_d, _r, _e, t, bank) = setup();
    load(&t, &bank, "10.00");
    t.wallet_trust_card("6222001").unwrap();
    // More than the balance: refused, nothing changed.
    for r in [
        t.wallet_pay("shop", amount("10.01")).map(|_| ()),
        t.wallet_transfer_begin("6222001", amount("10.01"))
            .map(|_| ()),
        t.wallet_pay("shop", Amount::ZERO).map(|_| ()),
        t.wallet_transfer_begin("6222001", Amount::ZERO).map(|_| ()),
    ] {
        assert!(r.is_err());
        assert_eq!(t.wallet_info().unwrap().balance, amount("10.00"));
    }
    // Exactly the balance: to zero, and then nothing more.
    t.wallet_pay("shop", amount("4.00")).unwrap();
    t.wallet_transfer_begin("6222001", amount("6.00")).unwrap();
    assert_eq!(t.wallet_info().unwrap().balance, Amount::ZERO);
    // A second transfer while one is pending: refused.
    assert!(t.wallet_transfer_begin("6222001", amount("0.01")).is_err());
    // The card never took it: the wallet gets it back, once.
    let back = t.wallet_transfer_finish(false).unwrap().unwrap();
    assert_eq!(back.amount, amount("6.00"));
    assert!(t.wallet_transfer_finish(false).unwrap().is_none());
    assert_eq!(t.wallet_info().unwrap().balance, amount("6.00"));
    assert!(t.wallet_pay("shop", amount("6.01")).is_err());
    // An untrusted card (step G) is refused before anything moves.
    assert!(t.wallet_transfer_begin("999", amount("1.00")).is_err());
    assert_eq!(t.wallet_info().unwrap().balance, amount("6.00"));
}

#[test]
fn the_sequence_number_only_moves_forward() {
    let (_d, _r, _e, t, bank) = setup();
    assert_eq!(t.wallet_info().unwrap().next_seq, 1);
    assert_eq!(load(&t, &bank, "1.00"), 1);
    // A second request while one is pending is refused and takes no number.
    let req = t.wallet_load_request("ACC1", amount("2.00")).unwrap();
    assert!(t.wallet_load_request("ACC1", amount("3.00")).is_err());
    assert_eq!(t.wallet_info().unwrap().next_seq, 3);
    // An aborted load keeps its number used up.
    t.wallet_load_abort("test").unwrap();
    t.wallet_load_settled(&settlement(&req, Outcome::Refunded, &bank))
        .unwrap();
    assert_eq!(load(&t, &bank, "1.00"), 3);
    let seqs: Vec<u64> = t
        .wallet_log()
        .unwrap()
        .iter()
        .filter(|e| e.state == "requested")
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(t.wallet_info().unwrap().next_seq, 4);
    assert_eq!(t.wallet_info().unwrap().balance, amount("2.00"));
}

#[test]
fn load_steps_out_of_order_are_refused_and_change_nothing() {
    let (_d, _r, _e, t, bank) = setup();
    let balance = || t.wallet_info().unwrap().balance;
    // Nothing pending: no permit, abort or settlement is taken.
    let old = t.wallet_load_request("ACC1", amount("1.00")).unwrap();
    let old_permit = permit_for(&old, &bank);
    t.wallet_load_abort("test").unwrap();
    t.wallet_load_settled(&settlement(&old, Outcome::Cancelled, &bank))
        .unwrap();
    assert!(t.wallet_load_permit(&old_permit).is_err());
    assert!(t.wallet_load_abort("x").is_err());
    assert!(t
        .wallet_load_settled(&settlement(&old, Outcome::Confirmed, &bank))
        .is_err());
    assert_eq!(balance(), Amount::ZERO);

    // Requested: the permit of another load (replay), a settlement before the
    // permit, a permit signed by another key, an altered one: all refused.
    let req = t.wallet_load_request("ACC1", amount("5.00")).unwrap();
    assert!(t.wallet_load_permit(&old_permit).is_err());
    assert!(t
        .wallet_load_settled(&settlement(&req, Outcome::Confirmed, &bank))
        .is_err());
    let forger = SigningKey::random(&mut OsRng);
    assert!(t.wallet_load_permit(&permit_for(&req, &forger)).is_err());
    let mut altered = permit_for(&req, &bank);
    altered.body[0] ^= 1;
    assert!(t.wallet_load_permit(&altered).is_err());
    assert_eq!(
        t.wallet_info().unwrap().pending_load,
        Some((2, LoadState::Requested))
    );
    assert_eq!(balance(), Amount::ZERO);

    // Credited: credited once; the same permit again, an abort and a refund
    // settlement are refused (the wallet has the money: never both).
    let permit = permit_for(&req, &bank);
    t.wallet_load_permit(&permit).unwrap();
    assert_eq!(balance(), amount("5.00"));
    assert!(t.wallet_load_permit(&permit).is_err());
    assert!(t.wallet_load_abort("late").is_err());
    assert!(t
        .wallet_load_settled(&settlement(&req, Outcome::Refunded, &bank))
        .is_err());
    assert_eq!(
        t.wallet_info().unwrap().pending_load,
        Some((2, LoadState::Credited))
    );
    assert_eq!(balance(), amount("5.00"));
    // The settlement of another load, or forged: refused.
    assert!(t
        .wallet_load_settled(&settlement(&old, Outcome::Confirmed, &bank))
        .is_err());
    assert!(t
        .wallet_load_settled(&settlement(&req, Outcome::Confirmed, &forger))
        .is_err());
    t.wallet_load_settled(&settlement(&req, Outcome::Confirmed, &bank))
        .unwrap();
    assert_eq!(t.wallet_info().unwrap().pending_load, None);

    // Refunded: after the abort, the permit is refused (never credited after it),
    // and a "confirmed" settlement is refused.
    let req = t.wallet_load_request("ACC1", amount("7.00")).unwrap();
    let abort = t.wallet_load_abort("test").unwrap();
    assert_eq!(t.wallet_load_abort("again").unwrap(), abort);
    assert!(t.wallet_load_permit(&permit_for(&req, &bank)).is_err());
    assert!(t
        .wallet_load_settled(&settlement(&req, Outcome::Confirmed, &bank))
        .is_err());
    t.wallet_load_settled(&settlement(&req, Outcome::Refunded, &bank))
        .unwrap();
    assert_eq!(balance(), amount("5.00"));
}

#[test]
fn the_wallet_survives_reopening_and_is_sealed() {
    let (d, reg, e, t, bank) = setup();
    load(&t, &bank, "3.00");
    drop(t);
    let t = reg.open(&e).unwrap();
    t.login(UserType::User, USER).unwrap();
    assert_eq!(t.wallet_info().unwrap().balance, amount("3.00"));
    // The balance is not in the clear in the token file.
    let mut found = false;
    for f in std::fs::read_dir(d.path().join("tokens")).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        found |= bytes
            .windows(7)
            .any(|w| w == b"ACC1\0\0\0" || w.starts_with(b"ACC1"));
    }
    assert!(!found, "the account number is readable in the token file");
}

#[test]
fn a_wallet_holding_value_is_not_wiped_by_re_initialization() {
    let (_d, _r, _e, t, bank) = setup();
    // Value in flight (a load requested, balance 0) counts as value.
    let req = t.wallet_load_request("ACC1", amount("3.00")).unwrap();
    t.logout().unwrap();
    let e = t.reinitialize(SO, "wiped").unwrap_err();
    assert_eq!(e.ckr(), vault_core::pkcs11::CKR_ACTION_PROHIBITED, "{e}");
    assert!(e.to_string().contains("holds value"), "{e}");
    assert!(t.wallet_holds_value().unwrap());
    t.login(UserType::User, USER).unwrap();
    t.wallet_load_permit(&permit_for(&req, &bank)).unwrap();
    t.wallet_load_settled(&settlement(&req, Outcome::Confirmed, &bank))
        .unwrap();
    // A balance: refused, and the wallet is intact.
    t.logout().unwrap();
    assert!(t.reinitialize(SO, "wiped").is_err());
    t.login(UserType::User, USER).unwrap();
    assert_eq!(t.wallet_info().unwrap().balance, amount("3.00"));
    // Spent to zero: the wallet no longer holds value; re-initialization may go on.
    t.wallet_pay("shop", amount("3.00")).unwrap();
    assert!(!t.wallet_holds_value().unwrap());
    t.logout().unwrap();
    t.reinitialize(SO, "wiped").unwrap();
}

#[test]
fn the_so_may_discard_a_funded_wallet_explicitly() {
    let (_d, _r, _e, t, bank) = setup();
    load(&t, &bank, "4.00");
    t.logout().unwrap();
    assert!(matches!(
        t.wallet_discard(b"wrong-so-pin"),
        Err(vault_core::Error::PinIncorrect)
    ));
    assert!(t.wallet_holds_value().unwrap());
    assert!(t.wallet_discard(SO).unwrap());
    assert!(!t.wallet_holds_value().unwrap());
    t.reinitialize(SO, "wiped").unwrap();
}
