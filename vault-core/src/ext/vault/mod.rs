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
//! # Activation and enable (V4)
//!
//! The vault state lives in the token header (`ext["vault"]`, [`VaultState`]). A
//! token is initialized with the vault [`VaultMode::Available`] (usable at once) or
//! [`VaultMode::Optional`]: then the vault does not exist until an activation code
//! is entered ([`Token::vault_activate`]; generated at initialization and shown
//! once, or supplied by the issuer; only an Argon2id-wrapped verifier is stored),
//! and then it must be switched on explicitly ([`Token::vault_enable`]). Wrong
//! codes are counted *before* the check, like PINs; after [`ACTIVATION_MAX_TRIES`]
//! the activation is locked for good (only re-initializing the token resets it).
//! Tokens created before the vault existed have no state and count as `Available`.
//!
//! While the vault is not usable every vault operation fails with
//! [`Error::VaultUnavailable`] (`CKR_ACTION_PROHIBITED`), and vault objects are
//! invisible to PKCS#11 (`C_FindObjects` skips them, their handles are invalid).
//!
//! # Writes (V3, V5)
//!
//! Every write — add, edit, delete, import, and `C_CreateObject`,
//! `C_SetAttributeValue`, `C_CopyObject`, `C_DestroyObject` on a vault object —
//! needs the user logged in and is shown to the user through the prompt agent with
//! secrets masked ([`MASK`]); a refusal, a timeout or no agent writes nothing
//! ([`Error::FunctionRejected`]).
//!
//! # Password output (V10)
//!
//! [`Token::vault_password`] returns a field's value in the clear, encrypted with
//! RSA-OAEP (SHA-256, MGF1-SHA-256, no label) to a public key the client names, or
//! as a dynamic password ([`otp_core::dynamic_password`] over the value, SPEC V9).

pub mod csv;
mod hook;

pub(crate) use hook::VaultHook;

use std::sync::Arc;

use cryptoki_sys::*;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::attr::Attributes;
use crate::error::{Error, Result};
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
    /// The vault exists from the start.
    Available,
    /// The vault exists only after an activation code, then an explicit enable.
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
}

impl VaultState {
    fn available() -> VaultState {
        VaultState {
            mode: VaultMode::Available,
            activated: true,
            enabled: true,
            verifier: None,
            max_tries: ACTIVATION_MAX_TRIES,
        }
    }
}

/// What [`Token::vault_status`] reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VaultStatus {
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
        None => Ok(VaultState::available()),
        Some(b) => {
            postcard::from_bytes(b).map_err(|e| Error::Corrupt(format!("vault state damaged: {e}")))
        }
    }
}

fn put_state(h: &mut Header, s: &VaultState) -> Result<()> {
    let b = postcard::to_allocvec(s).map_err(|e| Error::General(format!("vault state: {e}")))?;
    h.ext.insert(EXT_KEY.to_string(), b);
    Ok(())
}

fn code_ad(serial: &str) -> Vec<u8> {
    format!("vtoken-vault-activation-v1\0{serial}").into_bytes()
}

/// Normalizes an activation code: upper case, without spaces and dashes.
fn normalize_code(code: &str) -> Zeroizing<String> {
    // Sized up front so growing never leaves partial copies in freed memory.
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

/// A fresh activation code: 4 groups of 5 base32 characters (100 bits).
fn new_code() -> Result<Zeroizing<String>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut r = Zeroizing::new([0u8; 20]);
    crate::mechanism::random(&mut r[..])?;
    let mut s = Zeroizing::new(String::with_capacity(23));
    for (i, b) in r.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[(b & 31) as usize] as char);
    }
    Ok(s)
}

fn unavailable(s: &VaultState, failures: u32) -> Option<Error> {
    if !s.activated {
        if failures >= s.max_tries {
            return Some(Error::VaultUnavailable(format!(
                "the vault activation is locked after {} wrong activation codes; only \
                 re-initializing the token (which erases it) makes the vault available again",
                s.max_tries
            )));
        }
        return Some(Error::VaultUnavailable(
            "the vault is not activated: enter the activation code with `vtoken vault activate`"
                .into(),
        ));
    }
    if !s.enabled {
        return Some(Error::VaultUnavailable(
            "the vault is disabled: switch it on with `vtoken vault enable`".into(),
        ));
    }
    None
}

// ---------------------------------------------------------------------- entries

/// The kind of a vault entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Bank, card number, card PIN.
    BankCard,
    /// Bank, user name, password, URL.
    OnlineBanking,
    /// URL, user name, password, notes.
    Website,
    /// Address, password, server.
    Email,
    /// Any named fields.
    Custom,
}

impl Kind {
    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BankCard => "bank-card",
            Kind::OnlineBanking => "online-banking",
            Kind::Website => "website",
            Kind::Email => "email",
            Kind::Custom => "custom",
        }
    }

    /// The preset fields of this kind: (name, secret, required).
    pub fn preset(self) -> &'static [(&'static str, bool, bool)] {
        match self {
            Kind::BankCard => &[
                ("bank", false, true),
                ("card_number", true, true),
                ("card_pin", true, false),
            ],
            Kind::OnlineBanking => &[
                ("bank", false, true),
                ("username", false, true),
                ("password", true, true),
            ],
            Kind::Website => &[
                ("username", false, false),
                ("password", true, false),
                ("notes", false, false),
            ],
            Kind::Email => &[
                ("address", false, true),
                ("password", true, true),
                ("server", false, false),
            ],
            Kind::Custom => &[],
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind> {
        Ok(match s {
            "bank-card" => Kind::BankCard,
            "online-banking" => Kind::OnlineBanking,
            "website" => Kind::Website,
            "email" | "e-mail" => Kind::Email,
            "custom" => Kind::Custom,
            _ => {
                return Err(Error::ArgumentsBad(format!(
                    "vault entry kind \"{s}\": expected bank-card, online-banking, website, email or custom"
                )))
            }
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named field of an entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// Masked in listings and prompts; never shown without asking.
    #[serde(default)]
    pub secret: bool,
}

impl Field {
    /// A field.
    pub fn new(name: &str, value: &str, secret: bool) -> Field {
        Field {
            name: name.to_string(),
            value: value.to_string(),
            secret,
        }
    }

    /// The value, or [`MASK`] for a secret.
    pub fn shown(&self) -> &str {
        if self.secret {
            MASK
        } else {
            &self.value
        }
    }
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={:?}", self.name, self.shown())
    }
}

/// A vault entry (the JSON in `CKA_VALUE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub title: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Unix time (set by the token).
    #[serde(default)]
    pub created: u64,
    /// Unix time (set by the token).
    #[serde(default)]
    pub modified: u64,
}

impl Entry {
    /// An empty entry of `kind`.
    pub fn new(kind: Kind, title: &str) -> Entry {
        Entry {
            kind,
            title: title.to_string(),
            url: String::new(),
            fields: Vec::new(),
            created: 0,
            modified: 0,
        }
    }

    /// Adds or replaces field `name` (builder style).
    pub fn with(mut self, name: &str, value: &str, secret: bool) -> Entry {
        self.set(name, value, secret);
        self
    }

    /// Sets the URL (builder style).
    pub fn with_url(mut self, url: &str) -> Entry {
        self.url = url.to_string();
        self
    }

    /// Adds or replaces field `name`.
    pub fn set(&mut self, name: &str, value: &str, secret: bool) {
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                f.value.zeroize();
                f.value = value.to_string();
                f.secret = secret;
            }
            None => self.fields.push(Field::new(name, value, secret)),
        }
    }

    /// Removes field `name`; whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        let n = self.fields.len();
        self.fields.retain(|f| f.name != name);
        n != self.fields.len()
    }

    /// Field `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The user name-like field (`username`, `address`).
    pub fn username(&self) -> Option<&str> {
        self.field("username")
            .or_else(|| self.field("address"))
            .map(|f| f.value.as_str())
    }

    /// The field a password request means by default: `password`, else `card_pin`,
    /// else the first secret field.
    pub fn primary_secret(&self) -> Option<&Field> {
        self.field("password")
            .or_else(|| self.field("card_pin"))
            .or_else(|| self.fields.iter().find(|f| f.secret))
    }

    /// Checks the entry: a title, field names unique and non-empty, the required
    /// preset fields present; preset secret fields are forced secret.
    pub fn normalize(&mut self) -> Result<()> {
        let bad = |m: String| Error::TemplateInconsistent(format!("vault entry: {m}"));
        if self.title.trim().is_empty() {
            return Err(bad("a vault entry needs a title".into()));
        }
        if self.title.len() > 256 {
            return Err(bad("the title is longer than 256 bytes".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if f.name.trim().is_empty() {
                return Err(bad("a field has an empty name".into()));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(bad(format!("field \"{}\" appears twice", f.name)));
            }
        }
        for &(name, secret, required) in self.kind.preset() {
            match self.fields.iter_mut().find(|f| f.name == name) {
                Some(f) => f.secret |= secret,
                None if required => {
                    return Err(bad(format!(
                        "a {} entry needs the field \"{name}\"",
                        self.kind
                    )))
                }
                None => {}
            }
        }
        Ok(())
    }

    /// A description for the confirmation prompt, secrets masked.
    pub fn describe(&self) -> String {
        let mut s = format!("Kind: {}\nTitle: {}", self.kind, self.title);
        if !self.url.is_empty() {
            s.push_str(&format!("\nURL: {}", self.url));
        }
        for f in &self.fields {
            s.push_str(&format!("\n{}: {}", f.name, f.shown()));
        }
        s
    }

    /// The summary of this entry (no secrets).
    pub fn summary(&self) -> EntrySummary {
        EntrySummary {
            kind: self.kind,
            title: self.title.clone(),
            url: self.url.clone(),
            username: self.username().unwrap_or("").to_string(),
            modified: self.modified,
        }
    }

    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|e| Error::General(format!("vault entry: {e}")))
    }

    fn from_json(b: &[u8]) -> Result<Entry> {
        serde_json::from_slice(b).map_err(|e| {
            Error::TemplateInconsistent(format!("CKA_VALUE is not a vault entry (JSON): {e}"))
        })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.title.zeroize();
        self.url.zeroize();
    }
}

/// What listings show of an entry: no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntrySummary {
    pub kind: Kind,
    pub title: String,
    pub url: String,
    pub username: String,
    pub modified: u64,
}

/// A search: every given criterion must match.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Case-insensitive substring of the title or the URL.
    pub text: Option<String>,
    /// Case-insensitive substring of the URL only.
    pub url: Option<String>,
    pub kind: Option<Kind>,
}

/// How [`Token::vault_password`] returns a value.
#[derive(Clone, Debug)]
pub enum PasswordOutput {
    /// The value itself.
    Plain,
    /// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) to a public key: a public or
    /// private RSA key object on this token, or a SubjectPublicKeyInfo (DER).
    RsaOaep(PublicKeyRef),
    /// A dynamic password (SPEC V9) over the value.
    Dynamic {
        /// `(unix time, period seconds)`.
        time: Option<(u64, u64)>,
        counter: Option<u64>,
        digits: u32,
    },
}

/// The public key of [`PasswordOutput::RsaOaep`].
#[derive(Clone, Debug)]
pub enum PublicKeyRef {
    /// An RSA key object on this token (its handle).
    Object(u64),
    /// A SubjectPublicKeyInfo, DER.
    Spki(Vec<u8>),
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
    // ------------------------------------------------------------------ state

    fn vault_state(&self) -> Result<(VaultState, u32)> {
        let mut st = self.store();
        let s = state_of(st.header()?)?;
        let failures = if s.activated { 0 } else { st.counter(COUNTER)? };
        Ok((s, failures))
    }

    /// The vault state.
    pub fn vault_status(&self) -> Result<VaultStatus> {
        let (s, failures) = self.vault_state()?;
        Ok(VaultStatus {
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

    fn vault_require_user(&self) -> Result<std::sync::Arc<crate::store::MasterKeys>> {
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
                }
            }
        };
        put_state(&mut h, &state)?;
        st.write_header(&h)?;
        st.set_counter(COUNTER, 0)?;
        info!(serial = %self.serial(), ?mode, "vault set up");
        Ok(())
    }

    /// Enters the activation code (user logged in). Each try is counted before the
    /// code is checked; after [`ACTIVATION_MAX_TRIES`] wrong codes the activation is
    /// locked for good. A right code activates the vault and switches it on.
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
        let verifier = s
            .verifier
            .clone()
            .ok_or_else(|| Error::Corrupt("optional vault without activation code".into()))?;
        let n = st.increment_counter(COUNTER)?;
        let code = normalize_code(code);
        match verifier.unwrap(code.as_bytes(), &code_ad(&h.serial))? {
            Some(_) => {
                s.activated = true;
                s.enabled = true;
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
                    Err(Error::VaultCodeIncorrect {
                        tries_left: s.max_tries - n,
                    })
                }
            }
        }
    }

    fn vault_switch(&self, on: bool) -> Result<()> {
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
        put_state(&mut h, &s)?;
        st.write_header(&h)?;
        info!(serial = %self.serial(), enabled = on, "vault switched");
        Ok(())
    }

    /// Switches an activated vault on (user logged in).
    pub fn vault_enable(&self) -> Result<()> {
        self.vault_switch(true)
    }

    /// Switches the vault off (user logged in): its entries stay, invisible.
    pub fn vault_disable(&self) -> Result<()> {
        self.vault_switch(false)
    }

    // ------------------------------------------------------------------ entries

    fn vault_objects(&self) -> Result<Vec<(u64, Arc<CachedObject>)>> {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_DATA);
        t.set(CKA_APPLICATION, VAULT_APPLICATION.to_vec());
        t.set_bool(CKA_TOKEN, true);
        let ids = self.search(&t)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((id, self.object_unchecked(id)?));
        }
        Ok(out)
    }

    fn vault_object(&self, id: u64) -> Result<Arc<CachedObject>> {
        let o = self.object_unchecked(id)?;
        if !is_vault_object(&o.attrs) {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(o)
    }

    fn vault_insert(&self, attrs: Attributes) -> Result<u64> {
        let keys = self.master_keys().ok_or(Error::UserNotLoggedIn)?;
        let mut st = self.store();
        let row = st.insert_object(true, &attrs, Some(&keys))?;
        drop(st);
        info!(serial = %self.serial(), id = row.id, "vault entry stored");
        Ok(row.id)
    }

    /// Adds an entry (user logged in, confirmed by the user). Returns its id.
    pub fn vault_add(&self, entry: &Entry) -> Result<u64> {
        self.vault_require_user()?;
        let mut e = entry.clone();
        e.normalize()?;
        let t = now();
        e.created = t;
        e.modified = t;
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Store this vault entry?".into(),
                description: e.describe(),
            },
        )?;
        self.vault_insert(entry_attributes(&e)?)
    }

    /// Replaces entry `id` (user logged in, confirmed by the user).
    pub fn vault_update(&self, id: u64, entry: &Entry) -> Result<()> {
        self.vault_require_user()?;
        let o = self.vault_object(id)?;
        let old = entry_of(&o.attrs)?;
        let mut e = entry.clone();
        e.normalize()?;
        e.created = old.created;
        e.modified = now();
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Change this vault entry?".into(),
                description: format!("{}\n(was: {})", e.describe(), old.title),
            },
        )?;
        let mut attrs = (*o.attrs).clone();
        attrs.set(CKA_LABEL, e.title.as_bytes().to_vec());
        attrs.set(CKA_VALUE, e.to_json()?.to_vec());
        let keys = self.master_keys().ok_or(Error::UserNotLoggedIn)?;
        self.store().update_object(id, true, &attrs, Some(&keys))?;
        self.forget_cached(id);
        info!(serial = %self.serial(), id, "vault entry changed");
        Ok(())
    }

    /// Deletes entry `id` (user logged in, confirmed by the user).
    pub fn vault_delete(&self, id: u64) -> Result<()> {
        self.vault_require_user()?;
        let o = self.vault_object(id)?;
        let e = entry_of(&o.attrs)?;
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Delete this vault entry?".into(),
                description: e.describe(),
            },
        )?;
        self.store().delete_object(id)?;
        self.forget_cached(id);
        info!(serial = %self.serial(), id, "vault entry deleted");
        Ok(())
    }

    fn forget_cached(&self, id: u64) {
        self.cache_write().objects.remove(&id);
    }

    /// Every entry (id, summary), in id order.
    pub fn vault_list(&self) -> Result<Vec<(u64, EntrySummary)>> {
        self.vault_search(&Query::default())
    }

    /// Entries matching `q`.
    pub fn vault_search(&self, q: &Query) -> Result<Vec<(u64, EntrySummary)>> {
        self.vault_require_user()?;
        let text = q.text.as_ref().map(|s| s.to_lowercase());
        let url = q.url.as_ref().map(|s| s.to_lowercase());
        let mut out = Vec::new();
        for (id, o) in self.vault_objects()? {
            let e = match entry_of(&o.attrs) {
                Ok(e) => e,
                Err(_) => {
                    warn!(serial = %self.serial(), id, "vault object without a valid entry");
                    continue;
                }
            };
            if q.kind.is_some_and(|k| k != e.kind) {
                continue;
            }
            if let Some(t) = &text {
                if !e.title.to_lowercase().contains(t) && !e.url.to_lowercase().contains(t) {
                    continue;
                }
            }
            if let Some(u) = &url {
                if !e.url.to_lowercase().contains(u) {
                    continue;
                }
            }
            out.push((id, e.summary()));
        }
        Ok(out)
    }

    /// Entry `id` with its secrets (user logged in).
    pub fn vault_get(&self, id: u64) -> Result<Entry> {
        self.vault_require_user()?;
        entry_of(&self.vault_object(id)?.attrs)
    }

    /// Entry `id` with its secrets, to be shown in the clear (`vtoken vault show
    /// --reveal`): a read of vault secrets, so it passes the gate as
    /// [`crate::gate::OpClass::VaultPassword`] and, when the token's prompt policy
    /// lists `vault-read`, the user's confirmation. An entry without secrets passes
    /// neither (nothing secret leaves).
    pub fn vault_reveal(&self, id: u64) -> Result<Entry> {
        let e = self.vault_get(id)?;
        if e.fields.iter().any(|f| f.secret) {
            self.gate_check(
                crate::gate::OpClass::VaultPassword,
                None,
                &format!("reveal the secrets of vault entry \"{}\"", e.title),
            )?;
            self.confirm_for(
                "vault-read",
                &crate::prompt::Request {
                    title: "Reveal a vault secret?".into(),
                    description: format!("the secrets of \"{}\" ({})", e.title, e.kind),
                },
            )?;
        }
        Ok(e)
    }

    /// Entries whose title is exactly `title`.
    pub fn vault_find_title(&self, title: &str) -> Result<Vec<u64>> {
        Ok(self
            .vault_list()?
            .into_iter()
            .filter(|(_, s)| s.title == title)
            .map(|(id, _)| id)
            .collect())
    }

    /// A value of entry `id` (`field`, default [`Entry::primary_secret`]) in the
    /// requested form (V10). Returns the bytes: the value (UTF-8), the RSA-OAEP
    /// ciphertext, or the dynamic password's digits.
    pub fn vault_password(
        &self,
        id: u64,
        field: Option<&str>,
        output: &PasswordOutput,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let e = self.vault_get(id)?;
        self.gate_check(
            crate::gate::OpClass::VaultPassword,
            None,
            &format!("output a password of vault entry \"{}\"", e.title),
        )?;
        let f = match field {
            Some(n) => e.field(n).ok_or_else(|| {
                Error::ArgumentsBad(format!("the entry \"{}\" has no field \"{n}\"", e.title))
            })?,
            None => e.primary_secret().ok_or_else(|| {
                Error::ArgumentsBad(format!("the entry \"{}\" has no password", e.title))
            })?,
        };
        if matches!(output, PasswordOutput::Plain) && f.secret {
            // `[prompt] confirm` may list "vault-read": a secret leaves the token in
            // the clear only after the user agrees.
            self.confirm_for(
                "vault-read",
                &crate::prompt::Request {
                    title: "Reveal a vault secret?".into(),
                    description: format!("{} of \"{}\" ({})", f.name, e.title, e.kind),
                },
            )?;
        }
        let value = Zeroizing::new(f.value.as_bytes().to_vec());
        match output {
            PasswordOutput::Plain => Ok(value),
            PasswordOutput::RsaOaep(key) => {
                let spki = match key {
                    PublicKeyRef::Spki(d) => d.clone(),
                    PublicKeyRef::Object(kid) => {
                        let o = self.object(*kid).map_err(|_| Error::KeyHandleInvalid)?;
                        if o.attrs.key_type() != Some(CKK_RSA) {
                            return Err(Error::KeyTypeInconsistent);
                        }
                        crate::mechanism::encoding::public_key_spki(&o.attrs)?
                    }
                };
                rsa_oaep_encrypt(&spki, &value)
            }
            PasswordOutput::Dynamic {
                time,
                counter,
                digits,
            } => {
                let data = Zeroizing::new(f.value.clone());
                let code = otp_core::dynamic_password(&data, *time, *counter, *digits)
                    .map_err(|e| Error::ArgumentsBad(format!("dynamic password: {e}")))?;
                Ok(Zeroizing::new(code.into_bytes()))
            }
        }
    }

    // ------------------------------------------------------------------ PKCS#11 hooks

    /// Checks a vault object about to be created, copied or changed through PKCS#11
    /// (`attrs` is the complete new object): the vault must be usable, the user
    /// logged in, the object private and on the token, `CKA_VALUE` a valid entry;
    /// the title becomes `CKA_LABEL`; then the user confirms.
    /// `old` is the object before a change or copy: an object cannot move into or
    /// out of the vault (`CKA_APPLICATION` is fixed), and a changed `CKA_LABEL`
    /// renames the entry.
    pub(crate) fn vault_before_write(
        &self,
        old: Option<&Attributes>,
        attrs: &mut Attributes,
        what: &str,
    ) -> Result<()> {
        self.vault_require_user()?;
        if let Some(old) = old {
            if is_vault_object(old) != is_vault_object(attrs) {
                return Err(Error::TemplateInconsistent(
                    "an object cannot move into or out of the vault (CKA_APPLICATION)".into(),
                ));
            }
        }
        if !attrs.bool_or(CKA_PRIVATE, true) || !attrs.bool_or(CKA_TOKEN, false) {
            return Err(Error::TemplateInconsistent(
                "vault entries are private token objects (CKA_PRIVATE and CKA_TOKEN true)".into(),
            ));
        }
        let mut e = entry_of(attrs)?;
        if let Some(old) = old {
            if attrs.get(CKA_LABEL) != old.get(CKA_LABEL)
                && attrs.get(CKA_VALUE) == old.get(CKA_VALUE)
            {
                e.title = attrs.label();
            }
        }
        e.normalize()?;
        let t = now();
        if e.created == 0 {
            e.created = t;
        }
        e.modified = t;
        attrs.set(CKA_LABEL, e.title.as_bytes().to_vec());
        attrs.set(CKA_VALUE, e.to_json()?.to_vec());
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: format!("{what} this vault entry?"),
                description: e.describe(),
            },
        )
    }

    /// Checks the deletion of a vault object through PKCS#11 (the user confirms).
    pub(crate) fn vault_before_destroy(&self, attrs: &Attributes) -> Result<()> {
        self.vault_require_user()?;
        let description = match entry_of(attrs) {
            Ok(e) => e.describe(),
            Err(_) => format!("Title: {}", attrs.label()),
        };
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Delete this vault entry?".into(),
                description,
            },
        )
    }

    // ------------------------------------------------------------------ CSV

    /// Imports a KeePassXC CSV export as website entries (user logged in; one
    /// confirmation for the whole file). Returns the new ids.
    pub fn vault_import_csv(&self, text: &str) -> Result<Vec<u64>> {
        self.vault_require_user()?;
        let mut entries = csv::parse_keepassxc(text)?;
        let t = now();
        let mut description = format!("{} entries:", entries.len());
        for e in entries.iter_mut() {
            e.normalize()?;
            if e.created == 0 {
                e.created = t;
            }
            if e.modified == 0 {
                e.modified = t;
            }
            description.push_str(&format!(
                "\n- {} ({}{}{})",
                e.title,
                e.username().unwrap_or(""),
                if e.url.is_empty() { "" } else { ", " },
                e.url
            ));
        }
        self.confirm_for(
            "vault-write",
            &crate::prompt::Request {
                title: "Import these vault entries?".into(),
                description,
            },
        )?;
        let mut ids = Vec::with_capacity(entries.len());
        for e in &entries {
            ids.push(self.vault_insert(entry_attributes(e)?)?);
        }
        Ok(ids)
    }

    /// Exports every entry in KeePassXC's CSV format. With `secrets` the passwords
    /// and other secret values are included, after the gate (class
    /// [`crate::gate::OpClass::VaultPassword`]: every secret of the vault leaves) and
    /// the user's confirmation; without, they are left empty.
    pub fn vault_export_csv(&self, secrets: bool) -> Result<Zeroizing<String>> {
        self.vault_require_user()?;
        let mut entries = Vec::new();
        for (id, _) in self.vault_list()? {
            entries.push(self.vault_get(id)?);
        }
        if secrets {
            self.gate_check(
                crate::gate::OpClass::VaultPassword,
                None,
                &format!("export {} vault entries with their secrets", entries.len()),
            )?;
            self.confirm(&crate::prompt::Request {
                title: "Export the vault WITH its secrets?".into(),
                description: format!(
                    "{} entries, passwords in the clear, will leave the token:\n{}",
                    entries.len(),
                    entries
                        .iter()
                        .map(|e| format!("- {}", e.title))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            })?;
        }
        Ok(csv::write_keepassxc(&entries, secrets))
    }
}

/// Token re-initialization: an optional vault returns to "not activated" (its
/// entries are erased with every other object, and the wiped counters give the
/// activation code its tries back).
pub(crate) fn reset_for_reinit(h: &mut Header) -> Result<()> {
    let mut s = state_of(h)?;
    if s.mode == VaultMode::Optional {
        s.activated = false;
        s.enabled = false;
        put_state(h, &s)?;
    }
    Ok(())
}

/// Whether the vault of the token in `st` is usable (false on any error).
pub(crate) fn vault_usable_in(st: &mut Store) -> bool {
    match st.header().and_then(state_of) {
        Ok(s) => s.activated && s.enabled,
        Err(_) => false,
    }
}

fn rsa_oaep_encrypt(spki: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(spki)
        .map_err(|e| Error::ArgumentsBad(format!("not an RSA public key: {e}")))?;
    let ct = key
        .encrypt(
            &mut rand_core::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            data,
        )
        .map_err(|e| match e {
            rsa::Error::MessageTooLong => Error::DataLenRange,
            e => Error::General(format!("RSA-OAEP: {e}")),
        })?;
    Ok(Zeroizing::new(ct))
}
