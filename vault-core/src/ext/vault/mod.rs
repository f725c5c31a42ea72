//! The vault: the token's second storage area (SPEC V1–V4, V9, V10).
//!
//! Vault entries are user data — bank cards, online-banking logins, website logins,
//! e-mail accounts and custom entries of named fields — kept on the token next to
//! its keys and certificates.
//!
//! # Storage
//!
//! Each entry is a private token object of class `CKO_DATA` with
//! `CKA_APPLICATION = "vtoken-vault"` ([`VAULT_APPLICATION`]), `CKA_LABEL` = the
//! entry's title and `CKA_VALUE` = the entry as JSON ([`Entry`]), so a PKCS#11
//! client reads it after login with
//! `pkcs11-tool --read-object --type data --application-label vtoken-vault`.
//! Private objects are sealed under the token master key by the store, so no vault
//! byte reaches the file in the clear.
//!
//! # Activation and enable (V4, S201/S202, ¶0083)
//!
//! The vault state lives in the token header (`ext["vault"]`, [`VaultState`]). The
//! factory setting ([`Token::vault_setup`]) is [`VaultMode::Available`] or
//! [`VaultMode::Optional`]. Either way the vault is switched on by its own step,
//! [`Token::vault_enable`] (the patent's enabling module 700): an available vault
//! skips only the activation, an optional one first needs its activation code
//! ([`Token::vault_activate`], the activation module 600; generated at
//! initialization and shown once, or supplied by the issuer; only an
//! Argon2id-wrapped verifier is stored). Activating never enables. Wrong codes are
//! counted *before* the check, like PINs; after [`ACTIVATION_MAX_TRIES`] the
//! activation is locked for good (only re-initializing the token resets it).
//! [`VaultStatus::state`] names the four states: absent (optional, not activated),
//! activated (never switched on), enabled, disabled (switched off again).
//! Tokens whose header has no vault state (made before the vault existed, or by
//! `C_InitToken`, which has no factory setting) keep their vault usable.
//!
//! While the vault is not usable every vault operation fails with
//! [`VaultError::Unavailable`] (`CKR_ACTION_PROHIBITED`), and vault objects are
//! invisible to PKCS#11 (`C_FindObjects` skips them, their handles are invalid).
//!
//! # Writes (V3, V5)
//!
//! Every write — add, edit, delete, import, and `C_CreateObject`,
//! `C_SetAttributeValue`, `C_CopyObject`, `C_DestroyObject` on a vault object —
//! needs the user logged in and is shown to the user through the prompt agent as
//! the token received it, secrets included ([`Entry::describe_received`]; ¶0087–0088:
//! the display is there to catch data changed on its way from the client), and
//! or, by token policy, each secret as a per-write fingerprint the client shows too
//! ([`SecretDisplay`]); deletions with secrets masked ([`MASK`]); a refusal, a timeout or no agent
//! writes nothing ([`Error::FunctionRejected`]).
//!
//! # Password output (V10)
//!
//! [`Token::vault_password`] returns a field's value in the clear, encrypted with
//! RSA-OAEP (SHA-256, MGF1-SHA-256, no label) to a public key the client names, or
//! as a dynamic password ([`otp_core::dynamic_password`] over the value, SPEC V9).

pub mod csv;
mod display;
mod entries;
mod entry;
mod hook;
pub mod interop;
mod on_token;
mod pick;
mod sealed;

pub use display::{fingerprint, SecretDisplay, WRITE_NONCE_LEN};
pub use entry::*;
pub use interop::{identity, ImportReport, Record, OTP_LINK};

pub(crate) use hook::VaultHook;

use std::sync::Arc;

use cryptoki_sys::*;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::attr::Attributes;
use crate::error::{Error, Part, Result, VaultError, VaultUnavailable};
use crate::store::seal::{Key32, WrappedKey};
use crate::store::{Header, Store};
use crate::token::{CachedObject, Token, UserType};

pub use crate::vendor::{is_vault_object, VAULT_APPLICATION};
/// The header extension key of the vault state.
const EXT_KEY: &str = "vault";
/// The failure counter of activation codes.
const COUNTER: &str = "vault_activation_failures";
/// Wrong activation codes allowed before the activation locks for good.
pub const ACTIVATION_MAX_TRIES: u32 = 5;
/// What secrets look like in confirmation prompts and masked listings.
pub const MASK: &str = "••••••";

/// Common banks offered for bank-card and online-banking entries (any other name is
/// allowed too; front ends ask for an explicit "other").
pub const BANKS: &[&str] = &[
    "Agricultural Bank of China",
    "Bank of America",
    "Bank of China",
    "Bank of Communications",
    "Barclays",
    "BNP Paribas",
    "China Construction Bank",
    "China Merchants Bank",
    "Chase",
    "Citibank",
    "Commerzbank",
    "Crédit Agricole",
    "Deutsche Bank",
    "HSBC",
    "ICBC",
    "ING",
    "Lloyds",
    "Postal Savings Bank of China",
    "Santander",
    "Société Générale",
    "Sparkasse",
    "UBS",
    "Wells Fargo",
];

// ---------------------------------------------------------------------- state

/// How the vault was set up at initialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultMode {
    /// The vault exists from the start; it is used once enabled.
    Available,
    /// The vault exists only after an activation code; then it is enabled.
    Optional,
}

impl std::str::FromStr for VaultMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<VaultMode> {
        match s {
            "available" => Ok(VaultMode::Available),
            "optional" => Ok(VaultMode::Optional),
            _ => Err(Error::ArgumentsBad(format!(
                "vault mode \"{s}\": expected available or optional"
            ))),
        }
    }
}

/// The vault state stored in the token header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultState {
    /// Set at initialization.
    pub mode: VaultMode,
    /// The activation code was entered (always true for `Available`).
    pub activated: bool,
    /// Switched on.
    pub enabled: bool,
    /// The activation code's verifier: a random key wrapped under the code.
    pub verifier: Option<WrappedKey>,
    /// Wrong codes allowed.
    pub max_tries: u32,
    /// Was ever switched on (tells "activated" from "disabled"). Last, so that a
    /// header written before it existed decodes through [`VaultStateV1`].
    pub ever_enabled: bool,
}

/// The vault state as headers stored it before `ever_enabled` (then activation
/// also enabled, so an activated vault counts as once enabled).
#[derive(Deserialize)]
struct VaultStateV1 {
    mode: VaultMode,
    activated: bool,
    enabled: bool,
    verifier: Option<WrappedKey>,
    max_tries: u32,
}

impl VaultState {
    /// The factory state of an available vault: activated, not yet enabled (S202).
    fn available() -> VaultState {
        VaultState {
            mode: VaultMode::Available,
            activated: true,
            enabled: false,
            verifier: None,
            max_tries: ACTIVATION_MAX_TRIES,
            ever_enabled: false,
        }
    }

    /// A header without vault state: a token from before the vault (or from
    /// `C_InitToken`); its vault stays usable as it always was.
    fn legacy() -> VaultState {
        VaultState {
            enabled: true,
            ever_enabled: true,
            ..VaultState::available()
        }
    }

    /// Absent, activated, enabled or disabled.
    pub fn phase(&self) -> VaultPhase {
        match (self.activated, self.enabled, self.ever_enabled) {
            (false, _, _) => VaultPhase::Absent,
            (true, true, _) => VaultPhase::Enabled,
            (true, false, false) => VaultPhase::Activated,
            (true, false, true) => VaultPhase::Disabled,
        }
    }
}

/// The vault's state as `vtoken info` and `vtoken vault status` show it (V4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultPhase {
    /// Optional and not activated: the vault does not exist yet.
    Absent,
    /// Activated (or available from the factory) but never switched on.
    Activated,
    /// Switched on: vault operations work.
    Enabled,
    /// Switched off after being on: entries kept, invisible.
    Disabled,
}

impl VaultPhase {
    /// `absent`, `activated`, `enabled` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            VaultPhase::Absent => "absent",
            VaultPhase::Activated => "activated",
            VaultPhase::Enabled => "enabled",
            VaultPhase::Disabled => "disabled",
        }
    }
}

/// What [`Token::vault_status`] reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VaultStatus {
    /// Absent, activated, enabled or disabled.
    pub state: VaultPhase,
    pub mode: VaultMode,
    pub activated: bool,
    pub enabled: bool,
    /// Wrong activation codes so far.
    pub activation_failures: u32,
    pub activation_max_tries: u32,
    /// Activation locked after too many wrong codes.
    pub activation_locked: bool,
    /// Activated and enabled: vault operations work.
    pub usable: bool,
}

fn state_of(h: &Header) -> Result<VaultState> {
    match h.ext.get(EXT_KEY) {
        None => Ok(VaultState::legacy()),
        Some(b) => decode_state(b),
    }
}

/// Decodes the header's vault state, in the current layout or the one before
/// `ever_enabled`.
fn decode_state(b: &[u8]) -> Result<VaultState> {
    postcard::from_bytes(b).or_else(|_| {
        postcard::from_bytes::<VaultStateV1>(b)
            .map(|o| VaultState {
                ever_enabled: o.activated,
                mode: o.mode,
                activated: o.activated,
                enabled: o.enabled,
                verifier: o.verifier,
                max_tries: o.max_tries,
            })
            .map_err(|e| Error::corrupt(Part::VaultState, format!("damaged: {e}")))
    })
}

fn put_state(h: &mut Header, s: &VaultState) -> Result<()> {
    let b = postcard::to_allocvec(s).map_err(|e| Error::General(format!("vault state: {e}")))?;
    h.ext.insert(EXT_KEY.to_string(), b);
    Ok(())
}

fn code_ad(serial: &str) -> Vec<u8> {
    format!("vtoken-vault-activation-v1\0{serial}").into_bytes()
}

/// The alphabet of generated activation codes: Crockford's base32 (no I, L, O, U),
/// so no two characters look alike.
const CODE_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Normalizes an activation code as Crockford base32 reads it: upper case, spaces
/// and dashes dropped, and the look-alikes folded (O → 0, I and L → 1), so a
/// look-alike typo is the same code and never costs one of the tries.
fn normalize_code(code: &str) -> Zeroizing<String> {
    // Sized up front so growing never leaves partial copies in freed memory.
    let mut s = Zeroizing::new(String::with_capacity(code.len() * 3 + 4));
    for c in code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(|c| c.to_uppercase())
    {
        s.push(match c {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        });
    }
    s
}

/// The code as normalized before look-alikes were folded: the verifier of a
/// token set up then (RFC 4648 alphabet codes, which hold I, L and O) was made
/// over this form.
fn normalize_code_unfolded(code: &str) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(code.len() * 3 + 4));
    for c in code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(|c| c.to_uppercase())
    {
        s.push(c);
    }
    s
}

/// A fresh activation code: 4 groups of 5 Crockford base32 characters (100 bits).
fn new_code() -> Result<Zeroizing<String>> {
    let mut r = Zeroizing::new([0u8; 20]);
    crate::mechanism::random(&mut r[..])?;
    let mut s = Zeroizing::new(String::with_capacity(23));
    for (i, b) in r.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            s.push('-');
        }
        s.push(CODE_ALPHABET[(b & 31) as usize] as char);
    }
    Ok(s)
}

fn unavailable(s: &VaultState, failures: u32) -> Option<Error> {
    if !s.activated {
        if failures >= s.max_tries {
            return Some(Error::Vault(VaultError::Unavailable(
                VaultUnavailable::ActivationLocked {
                    max_tries: s.max_tries,
                },
            )));
        }
        return Some(Error::Vault(VaultError::Unavailable(
            VaultUnavailable::NotActivated,
        )));
    }
    if !s.enabled {
        return Some(Error::Vault(VaultError::Unavailable(
            VaultUnavailable::Disabled,
        )));
    }
    None
}

// ---------------------------------------------------------------------- helpers

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn entry_attributes(e: &Entry) -> Result<Attributes> {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_DATA);
    a.set_bool(CKA_TOKEN, true);
    a.set_bool(CKA_PRIVATE, true);
    a.set_bool(CKA_MODIFIABLE, true);
    a.set_bool(CKA_COPYABLE, false);
    a.set_bool(CKA_DESTROYABLE, true);
    a.set(CKA_APPLICATION, VAULT_APPLICATION.to_vec());
    a.set(CKA_LABEL, e.title.as_bytes().to_vec());
    a.set(CKA_OBJECT_ID, Vec::new());
    a.set(CKA_VALUE, e.to_json()?.to_vec());
    Ok(a)
}

fn entry_of(a: &Attributes) -> Result<Entry> {
    Entry::from_json(a.get(CKA_VALUE).unwrap_or(&[]))
}

impl Token {
    pub(super) fn vault_state(&self) -> Result<(VaultState, u32)> {
        let mut st = self.store();
        let s = state_of(st.header()?)?;
        let failures = if s.activated { 0 } else { st.counter(COUNTER)? };
        Ok((s, failures))
    }

    /// The vault state.
    pub fn vault_status(&self) -> Result<VaultStatus> {
        let (s, failures) = self.vault_state()?;
        Ok(VaultStatus {
            state: s.phase(),
            mode: s.mode,
            activated: s.activated,
            enabled: s.enabled,
            activation_failures: failures,
            activation_max_tries: s.max_tries,
            activation_locked: !s.activated && failures >= s.max_tries,
            usable: s.activated && s.enabled,
        })
    }

    /// Whether the vault is activated and enabled (false on any error).
    pub fn vault_usable(&self) -> bool {
        let mut st = self.store();
        vault_usable_in(&mut st)
    }

    /// `Ok` when the vault is usable, else the reason.
    pub fn vault_require(&self) -> Result<()> {
        self.gate_ensure_unlocked()?;
        let (s, failures) = self.vault_state()?;
        match unavailable(&s, failures) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(super) fn vault_require_user(&self) -> Result<std::sync::Arc<crate::store::MasterKeys>> {
        self.vault_require()?;
        self.master_keys().ok_or(Error::UserNotLoggedIn)
    }

    /// Sets the vault up (factory setting, V4): the SO must be logged in (the CLI does
    /// it at `vtoken init`, after setting the user PIN). `Optional` generates an
    /// activation code and returns it — the only time it is ever shown.
    pub fn vault_setup(&self, mode: VaultMode) -> Result<Option<String>> {
        match mode {
            VaultMode::Available => {
                self.vault_setup_with_code(mode, None)?;
                Ok(None)
            }
            VaultMode::Optional => {
                let code = new_code()?;
                self.vault_setup_with_code(mode, Some(&code))?;
                Ok(Some(code.to_string()))
            }
        }
    }

    /// Like [`Token::vault_setup`] with an activation code supplied by the issuer
    /// (`Optional` only; at least 8 characters once spaces and dashes are removed).
    pub fn vault_setup_with_code(&self, mode: VaultMode, code: Option<&str>) -> Result<()> {
        if self.logged_in() != Some(UserType::So) {
            return Err(Error::UserNotLoggedIn);
        }
        let mut st = self.store();
        let mut h = st.header()?.clone();
        let state = match (mode, code) {
            (VaultMode::Available, None) => VaultState::available(),
            (VaultMode::Available, Some(_)) => {
                return Err(Error::ArgumentsBad(
                    "an activation code only makes sense with the vault optional".into(),
                ))
            }
            (VaultMode::Optional, None) => {
                return Err(Error::ArgumentsBad(
                    "an optional vault needs an activation code".into(),
                ))
            }
            (VaultMode::Optional, Some(code)) => {
                let code = normalize_code(code);
                if code.len() < 8 {
                    return Err(Error::ArgumentsBad(
                        "an activation code has at least 8 characters".into(),
                    ));
                }
                let kdf = h.so.kdf;
                VaultState {
                    mode,
                    activated: false,
                    enabled: false,
                    verifier: Some(WrappedKey::wrap(
                        &Key32::random()?,
                        code.as_bytes(),
                        kdf,
                        &code_ad(&h.serial),
                    )?),
                    max_tries: ACTIVATION_MAX_TRIES,
                    ever_enabled: false,
                }
            }
        };
        put_state(&mut h, &state)?;
        st.write_header(&h)?;
        st.set_counter(COUNTER, 0)?;
        info!(serial = %self.serial(), ?mode, "vault set up");
        Ok(())
    }

    /// Enters the activation code (user logged in; S201). Each try is counted before
    /// the code is checked; after [`ACTIVATION_MAX_TRIES`] wrong codes the activation
    /// is locked for good. A right code activates the vault; switching it on is the
    /// separate step [`Token::vault_enable`] (S202, ¶0083).
    pub fn vault_activate(&self, code: &str) -> Result<()> {
        if self.master_keys().is_none() {
            return Err(Error::UserNotLoggedIn);
        }
        let mut st = self.store();
        let h = st.header()?.clone();
        let mut s = state_of(&h)?;
        if s.activated {
            return Err(Error::ArgumentsBad("the vault is already activated".into()));
        }
        let failures = st.counter(COUNTER)?;
        if failures >= s.max_tries {
            return Err(unavailable(&s, failures).expect("locked"));
        }
        let verifier = s.verifier.clone().ok_or_else(|| {
            Error::corrupt(Part::VaultState, "optional vault without activation code")
        })?;
        let n = st.increment_counter(COUNTER)?;
        // One try, two readings: the folded form (codes set up with look-alikes
        // folded), then, when folding changed it, the unfolded form a token set up
        // before folding stored its verifier over.
        let unfolded = normalize_code_unfolded(code);
        let code = normalize_code(code);
        let mut opened = verifier.unwrap(code.as_bytes(), &code_ad(&h.serial))?;
        if opened.is_none() && *code != *unfolded {
            opened = verifier.unwrap(unfolded.as_bytes(), &code_ad(&h.serial))?;
        }
        match opened {
            Some(_) => {
                s.activated = true;
                let mut h = st.header()?.clone();
                put_state(&mut h, &s)?;
                st.write_header(&h)?;
                st.set_counter(COUNTER, 0)?;
                info!(serial = %self.serial(), "vault activated");
                Ok(())
            }
            None => {
                warn!(serial = %self.serial(), failures = n, max = s.max_tries, "wrong vault activation code");
                if n >= s.max_tries {
                    Err(unavailable(&s, n).expect("locked"))
                } else {
                    Err(Error::Vault(VaultError::CodeIncorrect {
                        tries_left: s.max_tries - n,
                    }))
                }
            }
        }
    }

    pub(super) fn vault_switch(&self, on: bool) -> Result<()> {
        if self.master_keys().is_none() {
            return Err(Error::UserNotLoggedIn);
        }
        let mut st = self.store();
        let mut h = st.header()?.clone();
        let mut s = state_of(&h)?;
        if !s.activated {
            let failures = st.counter(COUNTER)?;
            return Err(unavailable(&s, failures).expect("not activated"));
        }
        s.enabled = on;
        s.ever_enabled |= on;
        put_state(&mut h, &s)?;
        st.write_header(&h)?;
        info!(serial = %self.serial(), enabled = on, "vault switched");
        Ok(())
    }

    /// Switches an activated (or factory-available) vault on (user logged in; S202).
    pub fn vault_enable(&self) -> Result<()> {
        self.vault_switch(true)
    }

    /// Switches the vault off (user logged in): its entries stay, invisible.
    pub fn vault_disable(&self) -> Result<()> {
        self.vault_switch(false)
    }
}

/// Token re-initialization returns the vault to its factory state: an optional
/// vault to "absent" (the wiped counters give the activation code its tries back),
/// an available one to "activated", to be enabled again; the entries are erased
/// with every other object.
pub(crate) fn reset_for_reinit(old: &Header, new: &mut Header) -> Result<()> {
    if !old.ext.contains_key(EXT_KEY) {
        return Ok(());
    }
    let mut s = state_of(old)?;
    s.activated = s.mode == VaultMode::Available;
    s.enabled = false;
    s.ever_enabled = false;
    put_state(new, &s)
}

/// Whether the vault of the token in `st` is usable (false on any error).
pub(crate) fn vault_usable_in(st: &mut Store) -> bool {
    match st.header().and_then(state_of) {
        Ok(s) => s.activated && s.enabled,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Crockford reading: case, dashes, spaces and the look-alikes O/0, I/L/1 do
    /// not matter; generated codes use no look-alike at all.
    #[test]
    fn activation_codes_read_leniently() {
        let a = normalize_code("0I1L-abcd");
        for typo in ["OI1L-ABCD", "o l i 1 abcd", "01-11ABCD", "0111abcd"] {
            assert_eq!(*normalize_code(typo), *a, "{typo}");
        }
        assert_ne!(*normalize_code("0111ABCE"), *a);
        for _ in 0..50 {
            let c = new_code().unwrap();
            assert_eq!(c.len(), 23);
            assert!(!c.contains(['I', 'L', 'O', 'U']), "{}", *c);
            assert_eq!(*normalize_code(&c), c.replace('-', ""));
        }
    }

    /// A header without `ever_enabled` (written by a version whose activation also
    /// enabled) still decodes: an activated vault counts as once enabled, so a
    /// switched-off one reads as "disabled", and an optional one not yet activated
    /// as "absent".
    #[test]
    fn state_from_before_ever_enabled_decodes() {
        #[derive(Serialize)]
        struct V1 {
            mode: VaultMode,
            activated: bool,
            enabled: bool,
            verifier: Option<WrappedKey>,
            max_tries: u32,
        }
        for (activated, enabled, phase) in [
            (true, true, VaultPhase::Enabled),
            (true, false, VaultPhase::Disabled),
            (false, false, VaultPhase::Absent),
        ] {
            let b = postcard::to_allocvec(&V1 {
                mode: VaultMode::Optional,
                activated,
                enabled,
                verifier: None,
                max_tries: 5,
            })
            .unwrap();
            let s = decode_state(&b).unwrap();
            assert_eq!(s.phase(), phase);
            assert_eq!((s.mode, s.max_tries), (VaultMode::Optional, 5));
        }
        let now = VaultState::available();
        let b = postcard::to_allocvec(&now).unwrap();
        assert_eq!(decode_state(&b).unwrap(), now);
        assert!(decode_state(&[0xff, 0xff]).is_err());
    }
}
