//! The protocol messages (SPEC W4, W6; patent steps 309, 311, 314, 315–318) and
//! their envelope.
//!
//! Every message travels as an [`Envelope`]: its kind, the user identity (the token
//! serial the wallet certificate names, or a card number), the postcard body, a
//! check code and the sender's signature. The check code (W6) is SHA-256 over the
//! domain-separated bytes; the signature (ECDSA P-256, SHA-256) covers the same
//! bytes, so a message of one kind can never stand in for another, and a body
//! cannot be moved to another user. Replay and reordering are refused by the
//! receiver's state (the load record keyed by token serial and sequence number,
//! and the request's random echoed in every later message).

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Amount, Error};

/// Prefix of every signed message (a certificate's TBS DER starts with 0x30, never
/// with this).
pub const CONTEXT: &[u8] = b"vtoken wallet message v1\0";
/// The one algorithm identifier requests name (step 309's "algorithm identifier").
pub const ALG_ECDSA_P256_SHA256: &str = "ECDSA-P256-SHA256";

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Token → bank, step 309.
    LoadRequest,
    /// Bank → token, step 311.
    LoadPermit,
    /// Token → bank, step 314 (the execution receipt).
    LoadReceipt,
    /// Token → bank, steps 313/315: the token will never credit this load.
    LoadAbort,
    /// Bank → token, steps 316–318: how the load ended.
    Settlement,
    /// Token or card → merchant/bank: a purchase (W7).
    Purchase,
}

/// A signed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The kind the body decodes as.
    pub kind: Kind,
    /// The user identity (token serial or card number).
    pub user: String,
    /// postcard of the body.
    pub body: Vec<u8>,
    /// The check code: SHA-256 of [`signed_bytes`].
    pub check: [u8; 32],
    /// ECDSA P-256 / SHA-256 signature over [`signed_bytes`], DER.
    pub sig: Vec<u8>,
}

/// The bytes the check code and the signature cover.
pub fn signed_bytes(kind: Kind, user: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 8 + user.len() + body.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&(kind as u32).to_be_bytes());
    m.extend_from_slice(&(user.len() as u32).to_be_bytes());
    m.extend_from_slice(user.as_bytes());
    m.extend_from_slice(body);
    m
}

impl Envelope {
    /// Seals `body` as a `kind` message of `user`, signed by `sign` (which gets the
    /// bytes to sign and returns a DER ECDSA signature).
    pub fn seal<T: Serialize, E>(
        kind: Kind,
        user: &str,
        body: &T,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Envelope, E>
    where
        E: From<Error>,
    {
        let body = postcard::to_allocvec(body).map_err(|e| Error::Message(e.to_string()))?;
        let tbs = signed_bytes(kind, user, &body);
        let check: [u8; 32] = Sha256::digest(&tbs).into();
        let sig = sign(&tbs)?;
        Ok(Envelope {
            kind,
            user: user.to_string(),
            body,
            check,
            sig,
        })
    }

    /// Seals with a P-256 key held here (the bank's, a card's).
    pub fn seal_with<T: Serialize>(
        kind: Kind,
        user: &str,
        body: &T,
        key: &SigningKey,
    ) -> Result<Envelope, Error> {
        Envelope::seal(kind, user, body, |tbs| Ok::<_, Error>(sign_der(key, tbs)))
    }

    /// Checks the kind, the check code and the signature with `key`, and decodes the
    /// body. Any mismatch is [`Error::BadMessage`].
    pub fn open<T: DeserializeOwned>(&self, kind: Kind, key: &VerifyingKey) -> Result<T, Error> {
        if self.kind != kind {
            return Err(Error::BadMessage(format!(
                "expected a {kind:?}, got a {:?}",
                self.kind
            )));
        }
        let tbs = signed_bytes(self.kind, &self.user, &self.body);
        let check: [u8; 32] = Sha256::digest(&tbs).into();
        if !bool::from(check.ct_eq(&self.check)) {
            return Err(Error::BadMessage("the check code does not match".into()));
        }
        let sig = Signature::from_der(&self.sig)
            .map_err(|_| Error::BadMessage("the signature is malformed".into()))?;
        key.verify(&tbs, &sig)
            .map_err(|_| Error::BadMessage("the signature does not verify".into()))?;
        postcard::from_bytes(&self.body)
            .map_err(|e| Error::BadMessage(format!("the body does not decode: {e}")))
    }

    /// Encodes for the wire (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("an envelope encodes")
    }

    /// Decodes from the wire.
    pub fn from_bytes(b: &[u8]) -> Result<Envelope, Error> {
        postcard::from_bytes(b).map_err(|e| Error::BadMessage(format!("not a message: {e}")))
    }
}

/// ECDSA P-256 / SHA-256 over `tbs`, DER.
pub fn sign_der(key: &SigningKey, tbs: &[u8]) -> Vec<u8> {
    let sig: Signature = key.sign(tbs);
    sig.to_der().as_bytes().to_vec()
}

/// Step 309: the load request the token signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRequest {
    /// The token (the user identity the bank registered).
    pub token_serial: String,
    /// The bank account debited.
    pub account: String,
    /// How much to load.
    pub amount: Amount,
    /// The account's currency, as the token expects it.
    pub currency: String,
    /// The wallet balance before the load.
    pub wallet_balance: Amount,
    /// The online transaction sequence number (never reused by the token).
    pub seq: u64,
    /// The wallet key version.
    pub key_version: u32,
    /// [`ALG_ECDSA_P256_SHA256`].
    pub alg: String,
    /// A fresh random, echoed by every later message of this load.
    pub random: [u8; 16],
    /// The token's clock (Unix seconds; informative).
    pub time: u64,
}

/// Step 311: the bank debited the account and permits the load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadPermit {
    pub token_serial: String,
    pub account: String,
    pub amount: Amount,
    pub seq: u64,
    pub random: [u8; 16],
    /// Host date, `YYYY-MM-DD` (UTC).
    pub host_date: String,
    /// Host time, `HH:MM:SS` (UTC).
    pub host_time: String,
}

/// Step 314: the token credited the wallet (the execution receipt).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReceipt {
    pub token_serial: String,
    pub seq: u64,
    pub random: [u8; 16],
    pub amount: Amount,
    /// The wallet balance after the credit.
    pub wallet_balance: Amount,
}

/// Steps 313/315: the token did not and will never credit this load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadAbort {
    pub token_serial: String,
    pub seq: u64,
    pub random: [u8; 16],
    /// Why (shown in the bank's log).
    pub reason: String,
}

/// How a load ended at the bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The receipt verified: the debit stands.
    Confirmed,
    /// The debit was given back (step 318).
    Refunded,
    /// Nothing was debited; the sequence number is burnt.
    Cancelled,
}

/// Steps 316–318: the bank's last word on a load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub token_serial: String,
    pub seq: u64,
    pub random: [u8; 16],
    pub outcome: Outcome,
    /// The account balance after it.
    pub account_balance: Amount,
}

/// Who pays in a [`Purchase`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payer {
    /// The token's wallet (signed by the wallet key).
    Token(String),
    /// A card (signed by the card key).
    Card(String),
}

/// W7: a purchase record, signed by the wallet (or card) that paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    pub payer: Payer,
    pub merchant: String,
    pub amount: Amount,
    pub currency: String,
    /// The payer's purchase sequence number.
    pub seq: u64,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    pub date: String,
    pub random: [u8; 16],
}

/// `YYYY-MM-DD` and `HH:MM:SS` (UTC) of Unix time `secs`.
pub fn utc_date_time(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn permit() -> LoadPermit {
        LoadPermit {
            token_serial: "00000000000000A1".into(),
            account: "ACC1".into(),
            amount: "100.00".parse().unwrap(),
            seq: 1,
            random: [7; 16],
            host_date: "2026-12-04".into(),
            host_time: "14:00:00".into(),
        }
    }

    #[test]
    fn sealed_message_opens_with_the_senders_key_only() {
        let bank = SigningKey::random(&mut OsRng);
        let other = SigningKey::random(&mut OsRng);
        let e =
            Envelope::seal_with(Kind::LoadPermit, "00000000000000A1", &permit(), &bank).unwrap();
        let back = Envelope::from_bytes(&e.to_bytes()).unwrap();
        let p: LoadPermit = back.open(Kind::LoadPermit, bank.verifying_key()).unwrap();
        assert_eq!(p, permit());
        assert!(back
            .open::<LoadPermit>(Kind::LoadPermit, other.verifying_key())
            .is_err());
    }

    #[test]
    fn altered_messages_are_refused() {
        let bank = SigningKey::random(&mut OsRng);
        let e =
            Envelope::seal_with(Kind::LoadPermit, "00000000000000A1", &permit(), &bank).unwrap();
        let vk = bank.verifying_key();
        // Another amount in the body (check code recomputed by the attacker too).
        let mut p = permit();
        p.amount = "1000.00".parse().unwrap();
        let mut a = e.clone();
        a.body = postcard::to_allocvec(&p).unwrap();
        assert!(a.open::<LoadPermit>(Kind::LoadPermit, vk).is_err());
        a.check = Sha256::digest(signed_bytes(a.kind, &a.user, &a.body)).into();
        assert!(a.open::<LoadPermit>(Kind::LoadPermit, vk).is_err());
        // Another user, another kind, a flipped signature byte.
        let mut u = e.clone();
        u.user = "00000000000000A2".into();
        assert!(u.open::<LoadPermit>(Kind::LoadPermit, vk).is_err());
        let mut k = e.clone();
        k.kind = Kind::Settlement;
        assert!(k.open::<LoadPermit>(Kind::Settlement, vk).is_err());
        assert!(e.open::<LoadPermit>(Kind::Settlement, vk).is_err());
        let mut s = e.clone();
        let n = s.sig.len();
        s.sig[n - 1] ^= 1;
        assert!(s.open::<LoadPermit>(Kind::LoadPermit, vk).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(
            utc_date_time(0),
            ("1970-01-01".to_string(), "00:00:00".to_string())
        );
        assert_eq!(
            utc_date_time(1_796_392_800),
            ("2026-12-04".to_string(), "14:00:00".to_string())
        );
    }
}
