//! OTP credentials, as a YubiKey's OATH applet keeps them: HOTP (RFC 4226) and TOTP
//! (RFC 6238) secrets stored on the token, codes computed inside it.
//!
//! A credential is an ordinary token object, so PKCS#11 clients see it too: a
//! private, sensitive, unextractable `CKO_SECRET_KEY` of type `CKK_GENERIC_SECRET`
//! with no usage attribute set (every PKCS#11 operation's init refuses it, so codes
//! come only from [`Token::otp_code`], which commits the counter), `CKA_LABEL` = the
//! credential's name (`issuer:account`, or `account`), `CKA_ID` = `otp:` + name,
//! `CKA_VALUE` = the secret, and the vendor attribute [`CKA_VTOKEN_OTP`] holding the
//! parameters ([`OtpParams`], JSON). Only the token changes that attribute
//! (`C_SetAttributeValue` refuses it); the objects are neither modifiable nor
//! copyable, so no client can fork an HOTP counter.
//!
//! HOTP counters never repeat: [`Token::otp_code`] reads the object fresh from the
//! file, increments the counter and commits it with a compare-and-swap on the
//! object's generation (atomic across processes) *before* the code is computed, so
//! a process killed at any point has at worst burned a counter, never reused one.

use std::sync::Arc;

use cryptoki_sys::*;
use otp_core::{Algorithm, OtpKind, OtpUri};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::attr::Attributes;
use crate::error::{Error, Part, Result, StoreError};
use crate::object::{self, Origin};
use crate::prompt::Request;
use crate::store::MasterKeys;
use crate::token::{CachedObject, Token, UserType};

pub use crate::vendor::CKA_VTOKEN_OTP;

/// `CKA_ID` of a credential is this prefix followed by its name.
pub const OTP_ID_PREFIX: &[u8] = b"otp:";

/// How many times a counter update is retried when other processes keep winning.
const MAX_RETRIES: usize = 10_000;

/// The parameters of one credential, as stored in [`CKA_VTOKEN_OTP`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpParams {
    /// `hotp` or `totp`.
    pub kind: String,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Code length, 6 to 10.
    pub digits: u32,
    /// TOTP time step in seconds.
    pub period: u64,
    /// TOTP start time `T0` (Unix seconds).
    #[serde(default)]
    pub t0: u64,
    /// HOTP: the counter of the *next* code.
    pub counter: u64,
    /// The provider, if any.
    pub issuer: Option<String>,
    /// The account name.
    pub account: String,
    /// Ask the user (prompt agent) before every use.
    #[serde(default)]
    pub confirm: bool,
}

impl OtpParams {
    fn from_uri(uri: &OtpUri, confirm: bool) -> OtpParams {
        OtpParams {
            kind: uri.kind.as_str().to_string(),
            algorithm: uri.algorithm.as_str().to_string(),
            digits: uri.digits,
            period: uri.period,
            t0: 0,
            counter: uri.counter,
            issuer: uri.issuer.clone(),
            account: uri.account.clone(),
            confirm,
        }
    }

    /// The parameters of an OTP object; `None` for any other object.
    pub fn from_attributes(attrs: &Attributes) -> Result<Option<OtpParams>> {
        match attrs.get(CKA_VTOKEN_OTP) {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v)
                .map(Some)
                .map_err(|e| Error::corrupt(Part::Otp, format!("parameters unreadable: {e}"))),
        }
    }

    fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::General(format!("OTP parameters: {e}")))
    }

    /// `hotp` or `totp`, typed.
    pub fn kind(&self) -> Result<OtpKind> {
        match self.kind.as_str() {
            "hotp" => Ok(OtpKind::Hotp),
            "totp" => Ok(OtpKind::Totp),
            k => Err(Error::corrupt(Part::Otp, format!("unknown kind {k:?}"))),
        }
    }

    /// The HMAC hash, typed.
    pub fn algorithm(&self) -> Result<Algorithm> {
        self.algorithm.parse().map_err(|_| {
            Error::corrupt(Part::Otp, format!("unknown algorithm {:?}", self.algorithm))
        })
    }

    /// `issuer:account`, or `account` without an issuer.
    pub fn name(&self) -> String {
        match &self.issuer {
            Some(i) => format!("{i}:{}", self.account),
            None => self.account.clone(),
        }
    }
}

/// One credential as `vtoken otp list` shows it (no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtpSummary {
    /// Object handle.
    pub id: u64,
    /// `issuer:account` (the `CKA_LABEL`).
    pub name: String,
    /// The provider, if any.
    pub issuer: Option<String>,
    /// The account name.
    pub account: String,
    /// HOTP or TOTP.
    pub kind: OtpKind,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: u32,
    /// TOTP time step (seconds).
    pub period: u64,
    /// HOTP: the counter of the next code (0 for TOTP).
    pub counter: u64,
    /// Whether each use needs the user's confirmation.
    pub confirm: bool,
}

fn otp_err(e: otp_core::Error) -> Error {
    Error::ArgumentsBad(e.to_string())
}

fn otp_id(name: &str) -> Vec<u8> {
    let mut id = OTP_ID_PREFIX.to_vec();
    id.extend_from_slice(name.as_bytes());
    id
}

fn secret_of(attrs: &Attributes) -> Result<Zeroizing<Vec<u8>>> {
    attrs
        .get(CKA_VALUE)
        .map(|v| Zeroizing::new(v.to_vec()))
        .ok_or_else(|| Error::corrupt(Part::Otp, "no secret"))
}

impl Token {
    /// The master keys of the logged-in user, or `UserNotLoggedIn`.
    fn otp_keys(&self) -> Result<std::sync::Arc<MasterKeys>> {
        self.gate_ensure_unlocked()?;
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        self.master_keys().ok_or(Error::UserNotLoggedIn)
    }

    /// The handle of the credential called `name`, if there is one.
    fn otp_lookup(&self, name: &str) -> Result<Option<u64>> {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set(CKA_ID, otp_id(name));
        for id in self.search(&t)? {
            if self.object(id)?.attrs.contains(CKA_VTOKEN_OTP) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn otp_find(&self, name: &str) -> Result<(u64, Arc<CachedObject>, OtpParams)> {
        let id = self
            .otp_lookup(name)?
            .ok_or_else(|| Error::ArgumentsBad(format!("no OTP credential named {name:?}")))?;
        let o = self.object(id)?;
        let p = OtpParams::from_attributes(&o.attrs)?.ok_or(Error::ObjectHandleInvalid)?;
        Ok((id, o, p))
    }

    fn otp_confirm(&self, what: &str, name: &str, p: &OtpParams) -> Result<()> {
        // The credential's own flag, or `otp-code` in `[prompt] confirm`.
        if !p.confirm && !self.needs_confirmation("otp-code") {
            return Ok(());
        }
        self.confirm(&Request {
            title: what.to_string(),
            description: format!(
                "OTP credential \"{name}\" ({}, {} digits)",
                p.kind.to_uppercase(),
                p.digits
            ),
        })
    }

    /// Adds an OTP credential from a parsed `otpauth://` URI (its name is the URI's
    /// label, `issuer:account`). Needs the user logged in and a writable token.
    /// `confirm`: every later use asks the user through the prompt agent first.
    /// Returns the object handle.
    pub fn otp_add(&self, uri: &OtpUri, confirm: bool) -> Result<u64> {
        let keys = self.otp_keys()?;
        uri.validate().map_err(otp_err)?;
        let name = uri.name();
        if self.otp_lookup(&name)?.is_some() {
            return Err(Error::ArgumentsBad(format!(
                "an OTP credential named {name:?} exists already (delete it first)"
            )));
        }
        let params = OtpParams::from_uri(uri, confirm);
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        t.set_bool(CKA_TOKEN, true);
        t.set_bool(CKA_PRIVATE, true);
        t.set_bool(CKA_SENSITIVE, true);
        t.set_bool(CKA_EXTRACTABLE, false);
        // No usage at all: codes come only from `Token::otp_code` (committed
        // counter, `otp-code` gate); the PKCS#11 inits refuse OTP credentials anyway.
        for f in [
            CKA_SIGN,
            CKA_VERIFY,
            CKA_ENCRYPT,
            CKA_DECRYPT,
            CKA_WRAP,
            CKA_UNWRAP,
            CKA_DERIVE,
        ] {
            t.set_bool(f, false);
        }
        t.set_bool(CKA_MODIFIABLE, false);
        t.set_bool(CKA_COPYABLE, false);
        t.set(CKA_LABEL, name.as_bytes().to_vec());
        t.set(CKA_ID, otp_id(&name));
        t.set(CKA_VALUE, uri.secret.clone());
        t.set(CKA_VTOKEN_OTP, params.encode()?);
        let mut attrs = object::build(&t, Origin::Create, &Attributes::new())?;
        attrs.set(
            CKA_UNIQUE_ID,
            hex::encode(crate::mechanism::random_secret(16)?.as_slice()).into_bytes(),
        );
        let mut st = self.store();
        let row = st.insert_object(true, &attrs, Some(&keys))?;
        let dv = st.data_version()?;
        drop(st);
        tracing::info!(serial = %self.serial(), id = row.id, kind = %params.kind, "OTP credential added");
        self.cache_put(row.id, row.gen, dv, attrs);
        Ok(row.id)
    }

    fn cache_put(&self, id: u64, gen: i64, dv: i64, attrs: Attributes) {
        let o = Arc::new(CachedObject {
            gen,
            attrs: Arc::new(attrs),
            key: Default::default(),
        });
        self.cache_write().objects.insert(id, (dv, o));
    }

    /// Every OTP credential, sorted by name. Needs the user logged in.
    pub fn otp_list(&self) -> Result<Vec<OtpSummary>> {
        self.otp_keys()?;
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_bool(CKA_TOKEN, true);
        let mut out = Vec::new();
        for id in self.search(&t)? {
            let o = self.object(id)?;
            let Some(p) = OtpParams::from_attributes(&o.attrs)? else {
                continue;
            };
            out.push(OtpSummary {
                id,
                name: p.name(),
                kind: p.kind()?,
                algorithm: p.algorithm()?,
                digits: p.digits,
                period: p.period,
                counter: if p.kind()? == OtpKind::Hotp {
                    p.counter
                } else {
                    0
                },
                confirm: p.confirm,
                issuer: p.issuer,
                account: p.account,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The current code of credential `name`: for TOTP at `unix_time`; for HOTP at
    /// the stored counter, which is incremented and committed to the token file
    /// before the code is computed (atomically across processes, so no counter is
    /// ever used twice). A credential flagged `confirm` asks the user first
    /// (`FunctionRejected` on refusal, and an HOTP counter is then left untouched).
    pub fn otp_code(&self, name: &str, unix_time: u64) -> Result<String> {
        let keys = self.otp_keys()?;
        let (id, o, p) = self.otp_find(name)?;
        self.gate_check(
            crate::gate::OpClass::OtpCode,
            Some(&o.attrs),
            &format!("generate a one-time password for \"{name}\""),
        )?;
        self.otp_confirm("Generate a one-time password?", name, &p)?;
        let alg = p.algorithm()?;
        match p.kind()? {
            OtpKind::Totp => {
                let secret = secret_of(&o.attrs)?;
                otp_core::totp(&secret, unix_time, p.period, p.t0, p.digits, alg).map_err(otp_err)
            }
            OtpKind::Hotp => {
                drop(o);
                for _ in 0..MAX_RETRIES {
                    // Fresh from the file (not the cache): another process may have
                    // used the credential since.
                    let mut st = self.store();
                    let (row, mut attrs) = st
                        .load_object(id, Some(&keys))?
                        .ok_or(Error::ObjectHandleInvalid)?;
                    let mut p =
                        OtpParams::from_attributes(&attrs)?.ok_or(Error::ObjectHandleInvalid)?;
                    let counter = p.counter;
                    p.counter = counter.checked_add(1).ok_or_else(|| {
                        Error::ArgumentsBad(format!("the HOTP counter of {name:?} is exhausted"))
                    })?;
                    attrs.set(CKA_VTOKEN_OTP, p.encode()?);
                    let Some(new) =
                        st.update_object_if_gen(id, row.gen, row.private, &attrs, Some(&keys))?
                    else {
                        continue; // another process won the race: read again
                    };
                    let dv = st.data_version()?;
                    drop(st);
                    // Committed: only now is the code computed and handed out.
                    let secret = secret_of(&attrs)?;
                    self.cache_put(id, new.gen, dv, attrs);
                    return otp_core::hotp(&secret, counter, p.digits, alg).map_err(otp_err);
                }
                Err(Error::Store(StoreError::Busy(
                    "the HOTP counter is too contended; try again",
                )))
            }
        }
    }

    /// Deletes credential `name`. Needs the user logged in.
    pub fn otp_delete(&self, name: &str) -> Result<()> {
        self.otp_keys()?;
        let (id, _, _) = self.otp_find(name)?;
        self.store().delete_object(id)?;
        self.cache_write().objects.remove(&id);
        tracing::info!(serial = %self.serial(), id, "OTP credential deleted");
        Ok(())
    }

    /// The credential as an `otpauth://` description, secret included (for
    /// enrolling a phone; an HOTP URI carries the next counter). Needs the user
    /// logged in; a credential flagged `confirm` asks the user first.
    pub fn otp_uri(&self, name: &str) -> Result<OtpUri> {
        self.otp_keys()?;
        let (_, o, p) = self.otp_find(name)?;
        self.gate_check(
            crate::gate::OpClass::KeyExport,
            Some(&o.attrs),
            &format!("reveal the OTP secret of \"{name}\""),
        )?;
        self.otp_confirm("Reveal an OTP secret?", name, &p)?;
        uri_of(&o.attrs, &p)
    }

    /// Whether a credential named like `uri` exists with the same secret and
    /// parameters (`Some(true)`), with others (`Some(false)`), or not at all
    /// (`None`). Secrets are compared in constant time. User logged in.
    pub(crate) fn otp_matches(&self, uri: &OtpUri) -> Result<Option<bool>> {
        self.otp_keys()?;
        let Some(id) = self.otp_lookup(&uri.name())? else {
            return Ok(None);
        };
        let o = self.object(id)?;
        let p = OtpParams::from_attributes(&o.attrs)?.ok_or(Error::ObjectHandleInvalid)?;
        Ok(Some(same_credential(&uri_of(&o.attrs, &p)?, uri)))
    }

    /// Credential `name`'s URI for an export whose caller already passed the gate
    /// and the user's confirmation for every secret it carries (the vault export,
    /// [`crate::vault::Record`]); `None` when no such credential exists (deleted
    /// since the entry linked it).
    pub(crate) fn otp_uri_confirmed(&self, name: &str) -> Result<Option<OtpUri>> {
        self.otp_keys()?;
        let Some(id) = self.otp_lookup(name)? else {
            return Ok(None);
        };
        let o = self.object(id)?;
        let p = OtpParams::from_attributes(&o.attrs)?.ok_or(Error::ObjectHandleInvalid)?;
        uri_of(&o.attrs, &p).map(Some)
    }
}

/// Whether two descriptions are the same credential: kind, algorithm, digits,
/// period and secret (constant time); names and HOTP counters aside.
pub(crate) fn same_credential(a: &OtpUri, b: &OtpUri) -> bool {
    use subtle::ConstantTimeEq;
    let secret: bool = a.secret.ct_eq(&b.secret).into();
    secret
        && a.kind == b.kind
        && a.algorithm == b.algorithm
        && a.digits == b.digits
        && (a.kind == OtpKind::Hotp || a.period == b.period)
}

/// The `otpauth://` description of a credential object (secret included; an HOTP
/// URI carries the next counter).
fn uri_of(attrs: &Attributes, p: &OtpParams) -> Result<OtpUri> {
    let secret = secret_of(attrs)?;
    let mut uri = match p.kind()? {
        OtpKind::Totp => OtpUri::new_totp(p.issuer.as_deref(), &p.account, secret.to_vec()),
        OtpKind::Hotp => {
            OtpUri::new_hotp(p.issuer.as_deref(), &p.account, secret.to_vec(), p.counter)
        }
    };
    uri.algorithm = p.algorithm()?;
    uri.digits = p.digits;
    uri.period = p.period;
    Ok(uri)
}
