//! The token's e-wallet (SPEC W1–W7; patent CN101211451A steps 301–318, G–I).
//!
//! Everything the wallet has lives in one record of the token header's extension
//! map, sealed with AES-256-GCM under a key derived from the master key (so only a
//! logged-in user reads or changes it; a stolen file shows nothing): the wallet
//! key pair (P-256, made here, never leaving the token), the wallet certificate,
//! the bank's certificate, the balance (integer minor units), the next online
//! sequence number, the key version, the pending load and transfer, the trusted
//! card numbers and the transaction log. Every step rewrites the record with one
//! header write, which is one SQLite transaction: a crash leaves the step done or
//! not done.
//!
//! The wallet key is outside the PKCS#11 object space: no `C_Sign`, no handle, no
//! export. It signs only what this module builds — wallet protocol messages (each
//! prefixed with `vtoken_wallet::msg::CONTEXT`) and the certification request of
//! its own public key ([`Token::wallet_sign_csr`] checks the request is that).
//!
//! - [`load`]: the load (steps 301–318) and its settlement after a crash;
//! - [`card`]: trusted cards, the token-to-card transfer (G–I) and payments (W7).

mod card;
mod load;
mod lock;

use p256::ecdsa::SigningKey;
use pkcs8::EncodePublicKey;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use vtoken_wallet::msg::{Envelope, LoadRequest};
use vtoken_wallet::{Amount, LoadState};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::store::seal::{self, Key32};
use crate::store::{Header, MasterKeys};
use crate::token::{Token, UserType};

pub use card::PendingTransfer;
pub use lock::WalletLock;

/// The header extension holding the sealed wallet.
const EXT_KEY: &str = "wallet";
/// A header extension present (value `[1]`) while the wallet holds value: a
/// balance, or a load or card transfer not yet settled. Outside the seal, so
/// re-initialization (which has no master key) sees it and refuses (W4: a
/// wallet with money on it is not wiped by accident). It tells a reader of the
/// file only that the wallet is not empty.
const HOLDS_KEY: &str = "wallet.holds";
/// Label of the sealing key (derived from the master key).
const SEAL_LABEL: &[u8] = b"vtoken wallet seal key";
/// Transaction log entries kept (oldest dropped first).
pub const LOG_KEEP: usize = 1000;

/// A load the token has started and not yet settled with the bank.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingLoad {
    pub(crate) req: LoadRequest,
    /// The signed request (re-sent unchanged after a lost answer).
    pub(crate) request: Envelope,
    /// `Requested`, `Credited` (receipt out) or `Refunded` (abort out).
    pub(crate) state: LoadState,
    /// The receipt (Credited) or the abort (Refunded) to deliver.
    pub(crate) answer: Option<Envelope>,
}

/// One line of the wallet's transaction log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletLogEntry {
    /// Unix seconds.
    pub at: u64,
    /// `load`, `transfer`, `pay`.
    pub kind: String,
    /// The online sequence number (load), transfer id or purchase sequence.
    pub seq: u64,
    /// The amount.
    pub amount: Amount,
    /// The state reached (`requested`, `credited`, `confirmed`, `refunded`, ...).
    pub state: String,
    /// The wallet balance after the step.
    pub balance: Amount,
    /// The account, card number or merchant.
    pub counterpart: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct State {
    key: [u8; 32],
    spki: Vec<u8>,
    cert: Option<Vec<u8>>,
    bank_cert: Vec<u8>,
    currency: String,
    balance: Amount,
    next_seq: u64,
    key_version: u32,
    pending: Option<PendingLoad>,
    trusted_cards: Vec<String>,
    next_transfer: u64,
    transfer: Option<PendingTransfer>,
    pay_seq: u64,
    log: Vec<WalletLogEntry>,
}

impl Drop for State {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl State {
    /// A balance, or money in flight (a pending load or transfer).
    fn holds_value(&self) -> bool {
        !self.balance.is_zero() || self.pending.is_some() || self.transfer.is_some()
    }

    fn signing_key(&self) -> Result<SigningKey> {
        SigningKey::from_bytes((&self.key).into())
            .map_err(|_| Error::General("wallet: the wallet key is damaged".into()))
    }

    fn log(&mut self, kind: &str, seq: u64, amount: Amount, state: &str, counterpart: &str) {
        self.log.push(WalletLogEntry {
            at: vtoken_wallet::msg::unix_now(),
            kind: kind.into(),
            seq,
            amount,
            state: state.into(),
            balance: self.balance,
            counterpart: counterpart.into(),
        });
        if self.log.len() > LOG_KEEP {
            let drop = self.log.len() - LOG_KEEP;
            self.log.drain(..drop);
        }
    }
}

/// What `vtoken wallet balance` shows.
#[derive(Clone, Debug, Serialize)]
pub struct WalletInfo {
    pub serial: String,
    pub balance: Amount,
    pub currency: String,
    /// The next online transaction sequence number.
    pub next_seq: u64,
    pub key_version: u32,
    /// Whether the wallet certificate is installed.
    pub certified: bool,
    /// The unsettled load, as (sequence number, state).
    pub pending_load: Option<(u64, LoadState)>,
    /// The unsettled card transfer, as (id, card number, amount).
    pub pending_transfer: Option<(u64, String, Amount)>,
    pub trusted_cards: Vec<String>,
}

fn wallet_err(m: impl Into<String>) -> Error {
    Error::General(format!("wallet: {}", m.into()))
}

fn ad(serial: &str) -> Vec<u8> {
    let mut a = b"vtoken wallet v1\0".to_vec();
    a.extend_from_slice(serial.as_bytes());
    a
}

fn seal_key(keys: &MasterKeys) -> Key32 {
    keys.master.derive(SEAL_LABEL)
}

/// The wallet as a lifecycle hook: re-initializing the token drops an empty wallet
/// (its record is sealed under the old master key and could never be opened
/// again) and refuses while the wallet holds value.
pub(crate) struct WalletHook;

impl crate::token::hooks::LifecycleHook for WalletHook {
    fn user_pin_set(&self, _: &Token) -> Result<()> {
        Ok(())
    }

    /// Refused while the wallet holds value (a balance, an unsettled load or
    /// transfer): like a bank card, a token with money on it is not wiped. Empty,
    /// nothing of the wallet outlives re-initialization (the kernel starts the new
    /// header without it; its key was under the old master key anyway).
    fn reinitialize(&self, old: &Header, _: &mut Header) -> Result<()> {
        if old.ext.contains_key(HOLDS_KEY) {
            return Err(Error::Prohibited(
                "the token's e-wallet holds value (a balance or an unsettled load or transfer): \
                 spend or move it first (`vtoken wallet transfer`/`pay`, `vtoken wallet settle`), \
                 or give it up with `vtoken wallet discard --so-pin ...`"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Token {
    fn wallet_keys(&self) -> Result<std::sync::Arc<MasterKeys>> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        self.any_master_keys().ok_or(Error::UserNotLoggedIn)
    }

    /// Reads the wallet, applies `f` and, when `f` says so, writes it back with one
    /// header write (one SQLite transaction). The wallet lock ([`lock`]) and the
    /// store guard are held throughout, so no other process or thread changes the
    /// record between the read (a fresh one: the store reloads a header another
    /// process committed) and the write. `None`: no wallet.
    pub(crate) fn wallet_update<T>(
        &self,
        f: impl FnOnce(&mut Option<State>) -> Result<(T, bool)>,
    ) -> Result<T> {
        let keys = self.wallet_keys()?;
        // A read-only token file cannot be written anyway: reading it needs no lock
        // (and its directory may not take a lock file).
        let _lock = match lock::acquire(self.path()) {
            Ok(l) => Some(l),
            Err(_) if std::fs::metadata(self.path()).is_ok_and(|m| m.permissions().readonly()) => {
                None
            }
            Err(e) => return Err(e),
        };
        let sk = seal_key(&keys);
        let ad = ad(self.serial());
        let mut st = self.store();
        let mut h = st.header()?.clone();
        let mut state = match h.ext.get(EXT_KEY) {
            None => None,
            Some(b) => {
                let plain = seal::open(&sk, &ad, b)
                    .ok_or_else(|| wallet_err("the wallet record fails its integrity check"))?;
                Some(
                    postcard::from_bytes::<State>(&plain)
                        .map_err(|e| wallet_err(format!("damaged wallet record: {e}")))?,
                )
            }
        };
        let (out, write) = f(&mut state)?;
        if write {
            match &state {
                None => {
                    h.ext.remove(EXT_KEY);
                    h.ext.remove(HOLDS_KEY);
                }
                Some(s) => {
                    if s.holds_value() {
                        h.ext.insert(HOLDS_KEY.to_string(), vec![1]);
                    } else {
                        h.ext.remove(HOLDS_KEY);
                    }
                    let plain = Zeroizing::new(
                        postcard::to_allocvec(s).map_err(|e| wallet_err(e.to_string()))?,
                    );
                    h.ext
                        .insert(EXT_KEY.to_string(), seal::seal(&sk, &ad, &plain)?);
                }
            }
            st.write_header(&h)?;
        }
        Ok(out)
    }

    /// Reads the wallet (no change).
    pub(crate) fn wallet_read<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        self.wallet_update(|s| {
            let s = s.as_ref().ok_or_else(no_wallet)?;
            Ok((f(s)?, false))
        })
    }

    /// Whether the wallet holds value (a balance, an unsettled load or transfer):
    /// then re-initializing or deleting the token is refused. Needs no login.
    pub fn wallet_holds_value(&self) -> Result<bool> {
        Ok(self.store().header()?.ext.contains_key(HOLDS_KEY))
    }

    /// Gives the wallet up, whatever it holds (the SO's explicit choice, before
    /// re-initializing or deleting the token): checks the SO PIN (a wrong one uses
    /// a try), then removes the wallet record in one header write. The balance and
    /// any unsettled load or transfer are lost to the user (the bank still holds
    /// its side of an unsettled load).
    pub fn wallet_discard(&self, so_pin: &[u8]) -> Result<bool> {
        let _lock = lock::acquire(self.path())?;
        let master = self.verify_pin(UserType::So, so_pin)?;
        drop(master);
        let mut st = self.store();
        let mut h = st.header()?.clone();
        let had = h.ext.remove(EXT_KEY).is_some();
        h.ext.remove(HOLDS_KEY);
        if had {
            st.write_header(&h)?;
            tracing::warn!(serial = %self.serial(), "e-wallet discarded by the SO");
        }
        Ok(had)
    }

    /// Whether this token has a wallet (the user logged in).
    pub fn wallet_exists(&self) -> Result<bool> {
        self.wallet_update(|s| Ok((s.is_some(), false)))
    }

    /// Makes the wallet (W2): a fresh P-256 key pair, the bank certificate the token
    /// will trust (step 301) and the currency; balance 0, sequence 1, key version 1.
    /// Returns the wallet public key (DER SubjectPublicKeyInfo). Refused when the
    /// token has a wallet already.
    pub fn wallet_init(&self, bank_cert_der: &[u8], currency: &str) -> Result<Vec<u8>> {
        vtoken_wallet::keys::verifying_key_of_cert(bank_cert_der)
            .map_err(|e| wallet_err(format!("bank certificate: {e}")))?;
        vtoken_wallet::amount::check_currency(currency).map_err(|e| wallet_err(e.to_string()))?;
        let key = SigningKey::random(&mut rand_core::OsRng);
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| wallet_err(e.to_string()))?
            .as_bytes()
            .to_vec();
        let state = State {
            key: key.to_bytes().into(),
            spki: spki.clone(),
            cert: None,
            bank_cert: bank_cert_der.to_vec(),
            currency: currency.to_string(),
            balance: Amount::ZERO,
            next_seq: 1,
            key_version: 1,
            pending: None,
            trusted_cards: Vec::new(),
            next_transfer: 1,
            transfer: None,
            pay_seq: 0,
            log: Vec::new(),
        };
        self.wallet_update(move |s| {
            if s.is_some() {
                return Err(wallet_err(
                    "this token has a wallet already (re-initialize the token to start over)",
                ));
            }
            *s = Some(state);
            Ok(((), true))
        })?;
        tracing::info!(serial = %self.serial(), "wallet key pair made");
        Ok(spki)
    }

    /// Signs the certification request of the wallet key: `tbs` must be a DER
    /// CertificationRequestInfo whose public key is the wallet's (nothing else is
    /// ever signed with it outside the protocol). Returns a DER ECDSA signature.
    pub fn wallet_sign_csr(&self, tbs: &[u8]) -> Result<Vec<u8>> {
        use der::{Decode, Encode};
        let info = x509_cert::request::CertReqInfo::from_der(tbs)
            .map_err(|_| wallet_err("not a certification request"))?;
        let spki = info
            .public_key
            .to_der()
            .map_err(|e| wallet_err(e.to_string()))?;
        self.wallet_read(|s| {
            if !bool::from(spki.ct_eq(&s.spki)) {
                return Err(wallet_err("the request is not for the wallet key"));
            }
            Ok(vtoken_wallet::msg::sign_der(&s.signing_key()?, tbs))
        })
    }

    /// Installs the wallet certificate the bank issued (it must certify the wallet
    /// key; the caller checked it chains to the bank).
    pub fn wallet_install(&self, cert_der: &[u8]) -> Result<()> {
        let spki =
            vtoken_wallet::keys::spki_of_cert(cert_der).map_err(|e| wallet_err(e.to_string()))?;
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            if !bool::from(spki.ct_eq(&s.spki)) {
                return Err(wallet_err("the certificate is not for this wallet's key"));
            }
            s.cert = Some(cert_der.to_vec());
            Ok(((), true))
        })
    }

    /// The wallet's state.
    pub fn wallet_info(&self) -> Result<WalletInfo> {
        self.wallet_read(|s| {
            Ok(WalletInfo {
                serial: self.serial().to_string(),
                balance: s.balance,
                currency: s.currency.clone(),
                next_seq: s.next_seq,
                key_version: s.key_version,
                certified: s.cert.is_some(),
                pending_load: s.pending.as_ref().map(|p| (p.req.seq, p.state)),
                pending_transfer: s
                    .transfer
                    .as_ref()
                    .map(|t| (t.id, t.card.clone(), t.amount)),
                trusted_cards: s.trusted_cards.clone(),
            })
        })
    }

    /// The transaction log (oldest first).
    pub fn wallet_log(&self) -> Result<Vec<WalletLogEntry>> {
        self.wallet_read(|s| Ok(s.log.clone()))
    }

    /// The bank certificate the wallet trusts (DER).
    pub fn wallet_bank_cert(&self) -> Result<Vec<u8>> {
        self.wallet_read(|s| Ok(s.bank_cert.clone()))
    }

    /// The wallet certificate (DER), once installed.
    pub fn wallet_cert(&self) -> Result<Option<Vec<u8>>> {
        self.wallet_read(|s| Ok(s.cert.clone()))
    }
}

/// The environment variable of the test-only exit point (`test-hooks` builds).
#[cfg(feature = "test-hooks")]
pub const EXIT_AT_ENV: &str = "VTOKEN_TEST_WALLET_EXIT_AT";

/// A crash point for the wallet's crash tests: in a build with the cargo feature
/// `test-hooks`, when `VTOKEN_TEST_WALLET_EXIT_AT` names `step`, the process ends
/// at once (`std::process::exit(86)`: no destructor runs, nothing is flushed or
/// closed, as after a SIGKILL; what the token committed stays committed). The
/// callers name the point right after a token write or right before a message is
/// sent. Inert (and the variable's name absent) in every other build.
pub fn test_exit_point(step: &str) {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os(EXIT_AT_ENV).is_some_and(|v| v == step) {
        std::process::exit(86);
    }
    let _ = step;
}

fn no_wallet() -> Error {
    wallet_err("this token has no wallet (create one with `vtoken wallet init`)")
}
