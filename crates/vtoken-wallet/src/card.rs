//! The virtual contactless card (the patent's smart card, SPEC W5, steps G–I): its
//! own file, sealed with AES-256-GCM under the card's chip key.
//!
//! A real card keeps its key, PIN counter and balance inside its chip; a virtual
//! card keeps the chip key in a key file beside the card file (`CARD.key`, mode
//! 0600) and everything else sealed in `CARD` under that key, so the card file
//! alone reveals nothing and cannot be altered (any change fails the GCM tag). The
//! card number is the associated data: a sealed state cannot be moved to another
//! card. What a file cannot do that a chip does: stop someone holding both files
//! from restoring an old copy (resetting the PIN counter or the balance). That is
//! the limit of a virtual card, stated in docs/wallet.md.
//!
//! Every change is written to a temporary file, synced and renamed over the card
//! file, so a crash leaves the old card or the new one, never a torn one.
//! Transfers in are keyed by (token serial, transfer id) and applied at most once:
//! that is what makes the token-to-card move atomic (see `vault_core::wallet`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use p256::ecdsa::SigningKey;
use pkcs8::EncodePublicKey;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::msg::{self, Envelope, Kind, Payer, Purchase};
use crate::{Amount, Error};

/// Wrong card PINs before the card blocks.
pub const CARD_PIN_TRIES: u32 = 3;
/// Shortest card PIN.
pub const MIN_CARD_PIN: usize = 4;
const MAGIC: &str = "vtoken-card-v1";

#[derive(Serialize, Deserialize)]
struct Outer {
    magic: String,
    number: String,
    nonce: [u8; 12],
    sealed: Vec<u8>,
}

#[derive(Clone, Serialize, Deserialize)]
struct State {
    number: String,
    currency: String,
    balance: Amount,
    pin_salt: [u8; 16],
    pin_hash: [u8; 32],
    tries_left: u32,
    trusted_serials: Vec<String>,
    /// Transfers applied, as (token serial, transfer id): each at most once.
    applied: Vec<(String, u64)>,
    /// The card's purchase key (P-256 scalar).
    key: [u8; 32],
    pay_seq: u64,
}

impl Drop for State {
    fn drop(&mut self) {
        self.key.zeroize();
        self.pin_hash.zeroize();
    }
}

/// An open card.
pub struct Card {
    path: PathBuf,
    chip_key: Zeroizing<[u8; 32]>,
    st: State,
}

fn io(p: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", p.display()))
}

/// The key file of card file `path`.
pub fn key_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".key");
    PathBuf::from(s)
}

fn pin_hash(pin: &[u8], salt: &[u8; 16]) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(pin, salt, &mut out)
        .map_err(|e| Error::Card(format!("PIN hash: {e}")))?;
    Ok(out)
}

fn check_number(n: &str) -> Result<(), Error> {
    if n.is_empty() || n.len() > 32 || !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::Card(format!(
            "{n:?} is not a card number (1 to 32 letters and digits)"
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename).
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Card {
    /// Makes a card file and its key file (neither may exist).
    pub fn create(
        path: &Path,
        number: &str,
        pin: &[u8],
        currency: &str,
        trusted_serials: Vec<String>,
    ) -> Result<Card, Error> {
        check_number(number)?;
        crate::amount::check_currency(currency)?;
        if pin.len() < MIN_CARD_PIN {
            return Err(Error::Card(format!(
                "a card PIN has at least {MIN_CARD_PIN} characters"
            )));
        }
        let kp = key_path(path);
        for p in [path, kp.as_path()] {
            if p.exists() {
                return Err(Error::Io(format!(
                    "{} exists (not overwritten)",
                    p.display()
                )));
            }
        }
        let mut chip_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(chip_key.as_mut());
        let mut pin_salt = [0u8; 16];
        OsRng.fill_bytes(&mut pin_salt);
        let key = SigningKey::random(&mut OsRng);
        let st = State {
            number: number.to_string(),
            currency: currency.to_string(),
            balance: Amount::ZERO,
            pin_salt,
            pin_hash: pin_hash(pin, &pin_salt)?,
            tries_left: CARD_PIN_TRIES,
            trusted_serials,
            applied: Vec::new(),
            key: key.to_bytes().into(),
            pay_seq: 0,
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&kp)
            .map_err(|e| io(&kp, e))?;
        f.write_all(chip_key.as_ref()).map_err(|e| io(&kp, e))?;
        f.sync_all().map_err(|e| io(&kp, e))?;
        let card = Card {
            path: path.to_path_buf(),
            chip_key,
            st,
        };
        card.save()?;
        Ok(card)
    }

    /// Opens a card file with its key file.
    pub fn open(path: &Path) -> Result<Card, Error> {
        let kp = key_path(path);
        let raw = Zeroizing::new(fs::read(&kp).map_err(|e| io(&kp, e))?);
        let chip_key: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::Card(format!("{} is not a card key", kp.display())))?;
        let chip_key = Zeroizing::new(chip_key);
        let bytes = fs::read(path).map_err(|e| io(path, e))?;
        let outer: Outer = postcard::from_bytes(&bytes)
            .map_err(|_| Error::Card(format!("{} is not a card file", path.display())))?;
        if outer.magic != MAGIC {
            return Err(Error::Card(format!(
                "{} is not a card file",
                path.display()
            )));
        }
        let plain = Zeroizing::new(
            Aes256Gcm::new(chip_key.as_ref().into())
                .decrypt(
                    Nonce::from_slice(&outer.nonce),
                    Payload {
                        msg: &outer.sealed,
                        aad: outer.number.as_bytes(),
                    },
                )
                .map_err(|_| {
                    Error::Card(format!(
                        "{} fails its integrity check (altered, or not this key file)",
                        path.display()
                    ))
                })?,
        );
        let st: State = postcard::from_bytes(&plain)
            .map_err(|e| Error::Card(format!("damaged card state: {e}")))?;
        if st.number != outer.number {
            return Err(Error::Card(
                "the card number does not match its state".into(),
            ));
        }
        Ok(Card {
            path: path.to_path_buf(),
            chip_key,
            st,
        })
    }

    fn save(&self) -> Result<(), Error> {
        let plain = Zeroizing::new(
            postcard::to_allocvec(&self.st).map_err(|e| Error::Card(e.to_string()))?,
        );
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let sealed = Aes256Gcm::new(self.chip_key.as_ref().into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: self.st.number.as_bytes(),
                },
            )
            .map_err(|_| Error::Card("sealing failed".into()))?;
        let outer = Outer {
            magic: MAGIC.into(),
            number: self.st.number.clone(),
            nonce,
            sealed,
        };
        let bytes = postcard::to_allocvec(&outer).map_err(|e| Error::Card(e.to_string()))?;
        write_atomic(&self.path, &bytes, 0o600)
    }

    /// The card number.
    pub fn number(&self) -> &str {
        &self.st.number
    }

    /// The balance.
    pub fn balance(&self) -> Amount {
        self.st.balance
    }

    /// The currency.
    pub fn currency(&self) -> &str {
        &self.st.currency
    }

    /// PIN tries left (0: blocked).
    pub fn tries_left(&self) -> u32 {
        self.st.tries_left
    }

    /// Step G (card side): whether the card trusts token `serial`.
    pub fn trusts(&self, serial: &str) -> bool {
        self.st.trusted_serials.iter().any(|s| s == serial)
    }

    /// The token serials the card trusts.
    pub fn trusted_serials(&self) -> &[String] {
        &self.st.trusted_serials
    }

    /// The card's purchase key, DER SubjectPublicKeyInfo (given to the bank or a
    /// merchant to verify `card pay` records).
    pub fn public_key_spki(&self) -> Result<Vec<u8>, Error> {
        let k = SigningKey::from_bytes((&self.st.key).into())
            .map_err(|e| Error::Card(e.to_string()))?;
        Ok(k.verifying_key()
            .to_public_key_der()
            .map_err(|e| Error::Card(e.to_string()))?
            .as_bytes()
            .to_vec())
    }

    /// Step I (card side): checks the card PIN. A wrong PIN uses a try (saved before
    /// the answer); the last wrong one blocks the card; a right one restores the
    /// tries.
    pub fn verify_pin(&mut self, pin: &[u8]) -> Result<(), Error> {
        if self.st.tries_left == 0 {
            return Err(Error::Card(
                "the card is blocked (too many wrong PINs)".into(),
            ));
        }
        let h = Zeroizing::new(pin_hash(pin, &self.st.pin_salt)?);
        if bool::from(h.ct_eq(&self.st.pin_hash)) {
            if self.st.tries_left != CARD_PIN_TRIES {
                self.st.tries_left = CARD_PIN_TRIES;
                self.save()?;
            }
            return Ok(());
        }
        self.st.tries_left -= 1;
        self.save()?;
        Err(Error::Card(match self.st.tries_left {
            0 => "wrong card PIN; the card is now blocked".to_string(),
            n => format!("wrong card PIN ({n} tries left)"),
        }))
    }

    /// Whether transfer `id` from token `serial` was applied.
    pub fn has_applied(&self, serial: &str, id: u64) -> bool {
        self.st.applied.iter().any(|(s, i)| s == serial && *i == id)
    }

    /// Step I (card side): stores `amount` from transfer `id` of token `serial`,
    /// once (a repeat is `Ok(false)` and changes nothing).
    pub fn credit(&mut self, serial: &str, id: u64, amount: Amount) -> Result<bool, Error> {
        if !self.trusts(serial) {
            return Err(Error::Card(format!(
                "the card does not trust token {serial}"
            )));
        }
        if self.has_applied(serial, id) {
            return Ok(false);
        }
        self.st.balance = self
            .st
            .balance
            .checked_add(amount)
            .ok_or_else(|| Error::Card("the card balance would overflow".into()))?;
        self.st.applied.push((serial.to_string(), id));
        self.save()?;
        Ok(true)
    }

    /// `vtoken card pay` (W7): checks the PIN, debits the card and returns the
    /// purchase record signed by the card key.
    pub fn pay(&mut self, pin: &[u8], merchant: &str, amount: Amount) -> Result<Envelope, Error> {
        self.verify_pin(pin)?;
        if amount.is_zero() {
            return Err(Error::Card("the amount must be more than 0.00".into()));
        }
        let left = self.st.balance.checked_sub(amount).ok_or_else(|| {
            Error::Card(format!(
                "insufficient card balance ({} {})",
                self.st.balance, self.st.currency
            ))
        })?;
        self.st.pay_seq += 1;
        let (d, t) = msg::utc_date_time(msg::unix_now());
        let mut random = [0u8; 16];
        OsRng.fill_bytes(&mut random);
        let p = Purchase {
            payer: Payer::Card(self.st.number.clone()),
            merchant: merchant.to_string(),
            amount,
            currency: self.st.currency.clone(),
            seq: self.st.pay_seq,
            date: format!("{d} {t}"),
            random,
        };
        let key = SigningKey::from_bytes((&self.st.key).into())
            .map_err(|e| Error::Card(e.to_string()))?;
        let env = Envelope::seal_with(Kind::Purchase, &self.st.number, &p, &key)?;
        self.st.balance = left;
        self.save()?;
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_counter_blocks_and_credit_is_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.vcard");
        let mut c = Card::create(&p, "6222001", b"2468", "CNY", vec!["A1".into()]).unwrap();
        assert!(Card::create(&p, "6222001", b"2468", "CNY", vec![]).is_err());
        assert!(c.verify_pin(b"0000").is_err());
        assert_eq!(Card::open(&p).unwrap().tries_left(), 2);
        c.verify_pin(b"2468").unwrap();
        assert_eq!(Card::open(&p).unwrap().tries_left(), 3);
        let a: Amount = "10.00".parse().unwrap();
        assert!(c.credit("A2", 1, a).is_err());
        assert!(c.credit("A1", 1, a).unwrap());
        assert!(!c.credit("A1", 1, a).unwrap());
        assert_eq!(Card::open(&p).unwrap().balance(), a);
        for _ in 0..3 {
            assert!(c.verify_pin(b"9999").is_err());
        }
        assert!(c.verify_pin(b"2468").is_err(), "blocked");
        assert_eq!(Card::open(&p).unwrap().tries_left(), 0);
    }

    #[test]
    fn altered_card_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.vcard");
        Card::create(&p, "6222001", b"2468", "CNY", vec![]).unwrap();
        let mut b = fs::read(&p).unwrap();
        let n = b.len();
        b[n - 5] ^= 1;
        fs::write(&p, &b).unwrap();
        assert!(Card::open(&p).is_err());
    }

    #[test]
    fn card_purchase_verifies_with_the_card_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.vcard");
        let mut c = Card::create(&p, "6222001", b"2468", "CNY", vec!["A1".into()]).unwrap();
        c.credit("A1", 1, "5.00".parse().unwrap()).unwrap();
        assert!(c.pay(b"2468", "shop", "6.00".parse().unwrap()).is_err());
        let e = c.pay(b"2468", "shop", "2.50".parse().unwrap()).unwrap();
        let vk = crate::keys::verifying_key_of_spki(&c.public_key_spki().unwrap()).unwrap();
        let r: Purchase = e.open(Kind::Purchase, &vk).unwrap();
        assert_eq!(r.amount.to_string(), "2.50");
        assert_eq!(Card::open(&p).unwrap().balance().to_string(), "2.50");
    }
}
