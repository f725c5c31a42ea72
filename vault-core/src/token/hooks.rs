//! How feature extensions plug into the kernel (the kernel never names them). A
//! [`Hooks`] registry is built once per opened token
//! (by `crate::extensions`, the one place that names the extensions) and never
//! changes afterwards, so the kernel reads it without a lock.
//!
//! - [`ObjectHook`]: an extension that owns some objects (the vault's entries) sees
//!   them become visible or hidden, and is asked before each write, destroy and
//!   value read of one of them.
//! - [`KeyUseHook`]: asked when an operation's init looks a key up; its answer for
//!   the file's current version is a [`KeyVerdict`] the session keeps with the key,
//!   so a reused key (the per-session fast path, [`super::fresh`]) asks nothing.
//!   The picture-verification gate is this hook. A hook may also block the whole
//!   token (every call fails with its error): the kernel keeps the "blocked as last
//!   seen" flag and the unblocked mark itself, so the per-call check stays one
//!   atomic load with no call into the hook.
//! - [`LifecycleHook`]: told when the user PIN is set by the SO (the device
//!   identity key is made then, SPEC V7) and when the token is re-initialized
//!   (the vault returns to its factory state).

use std::any::Any;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::attr::Attributes;
use crate::error::{Error, Result};
use crate::store::Header;
use crate::token::Token;
use cryptoki_sys::CK_MECHANISM_TYPE;
use zeroize::Zeroizing;

/// A class of high-privilege key use (SPEC C1): what a [`KeyUseHook`] is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpClass {
    /// `C_SignInit` (and `vtoken sign`).
    Sign,
    /// `C_DecryptInit`.
    Decrypt,
    /// `C_UnwrapKey` (the unwrapping key).
    Unwrap,
    /// `C_DeriveKey` (the base key).
    Derive,
    /// `Token::vault_password` (`vtoken vault get`).
    VaultPassword,
    /// `Token::otp_code` (`vtoken otp code`).
    OtpCode,
    /// A key leaving the token: `C_WrapKey` (the wrapped key), `CKA_VALUE` of an
    /// extractable key, an OTP secret (`Token::otp_uri`).
    KeyExport,
    /// Weakening the gate policy itself (never listed in the classes: always gated
    /// while the gate is on).
    Configure,
}

impl OpClass {
    /// The classes a policy may list.
    pub const CONFIGURABLE: [OpClass; 7] = [
        OpClass::Sign,
        OpClass::Decrypt,
        OpClass::Unwrap,
        OpClass::Derive,
        OpClass::VaultPassword,
        OpClass::OtpCode,
        OpClass::KeyExport,
    ];

    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OpClass::Sign => "sign",
            OpClass::Decrypt => "decrypt",
            OpClass::Unwrap => "unwrap",
            OpClass::Derive => "derive",
            OpClass::VaultPassword => "vault-password",
            OpClass::OtpCode => "otp-code",
            OpClass::KeyExport => "key-export",
            OpClass::Configure => "configure",
        }
    }

    /// Parses a configurable class name.
    pub fn parse(s: &str) -> Result<OpClass> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        OpClass::CONFIGURABLE
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = OpClass::CONFIGURABLE.iter().map(|c| c.as_str()).collect();
                Error::ArgumentsBad(format!(
                    "unknown gate class {s:?} (known: {})",
                    all.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for OpClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extension that owns some objects. Every method but [`ObjectHook::claims`] is
/// called only for objects the hook claims.
pub trait ObjectHook: Send + Sync {
    /// Whether the object with these attributes belongs to this extension (cheap: it
    /// runs on every lookup by handle and, while the extension hides its objects, on
    /// every search result).
    fn claims(&self, attrs: &Attributes) -> bool;
    /// Whether the extension's objects are visible now (false: their handles are
    /// invalid and searches skip them). `user`: whether the user's keys are at
    /// hand (a search by someone else never shows them).
    fn visible(&self, t: &Token, user: bool) -> bool;
    /// Before an object is stored (`old` `None`), copied from `old` or changed from
    /// `old`: may refuse, ask the user or complete `new`. `verb` names the request
    /// to the user (`Store`, `Copy`, `Change`).
    fn before_write(
        &self,
        t: &Token,
        old: Option<&Attributes>,
        new: &mut Attributes,
        verb: &str,
    ) -> Result<()>;
    /// Before an object is destroyed.
    fn before_destroy(&self, t: &Token, attrs: &Attributes) -> Result<()>;
    /// Before `CKA_VALUE` of an object is handed out (`C_GetAttributeValue`).
    fn before_value_read(&self, t: &Token, attrs: &Attributes) -> Result<()>;
}

/// A [`KeyUseHook`]'s answer for one version of the token file: kept with a key the
/// session reuses, and asked again only when the key's use changes.
pub trait KeyVerdict: Send + Sync {
    /// Whether the token is blocked (every operation fails).
    fn blocks(&self) -> bool;
    /// Whether a use of `class` (`None`: a use the hook never stops) of the key with
    /// attributes `key` goes through without asking anything.
    fn lets_through(&self, class: Option<OpClass>, key: &Attributes) -> bool;
}

/// Asked when a key is used.
pub trait KeyUseHook: Send + Sync {
    /// The verdict as of the file's version (looked at within the look window), with
    /// that `data_version`. Records whether the token is blocked with
    /// [`Token::set_blocked_seen`]. An error refuses the operation.
    fn fresh(&self, t: &Token) -> Result<(i64, Arc<dyn KeyVerdict>)>;
    /// Whether the header records the token as blocked (an unreadable record
    /// blocks).
    fn blocked_in(&self, h: &Header) -> bool;
    /// The full check of a use `verdict` does not let through: may ask the user
    /// (blocking). `verb` describes the request ("sign").
    fn check(
        &self,
        t: &Token,
        class: OpClass,
        key: &Attributes,
        verdict: &dyn KeyVerdict,
        verb: &str,
    ) -> Result<()>;
    /// The check of a request of `class` that names no key session operation holds
    /// (`key`: the object it concerns, if any): `what` describes it to the user.
    fn check_request(
        &self,
        t: &Token,
        class: OpClass,
        key: Option<&Attributes>,
        what: &str,
    ) -> Result<()>;
    /// The check before `CKA_VALUE` of a key object is handed out (a key export).
    fn check_value_read(&self, t: &Token, attrs: &Attributes) -> Result<()>;
    /// The hook itself, for the extension's own token methods to find their state.
    fn as_any(&self) -> &dyn Any;
}

/// Told about a token's lifecycle.
pub trait LifecycleHook: Send + Sync {
    /// After the SO set the user PIN (`C_InitPIN`).
    fn user_pin_set(&self, t: &Token) -> Result<()>;
    /// While the token is re-initialized (`C_InitToken`): `new` is the header being
    /// written with the wiped file, already reset to what a new token has (no
    /// extension state, the configuration's prompt policy); `old` is the header
    /// before. A hook copies over only what outlives re-initialization.
    fn reinitialize(&self, old: &Header, new: &mut Header) -> Result<()>;
}

/// Runs a vendor unwrap mechanism with a key the extension keeps outside the
/// object space (the device key of a sealed envelope, SPEC V8).
pub trait UnwrapHook: Send + Sync {
    /// The mechanism it runs.
    fn mechanism(&self) -> CK_MECHANISM_TYPE;
    /// The plaintext of `wrapped`; `unwrapping` is the handle the caller gave.
    fn unwrap(&self, t: &Token, unwrapping: u64, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// The extensions of one opened token.
pub struct Hooks {
    pub(crate) objects: Box<[Arc<dyn ObjectHook>]>,
    pub(crate) key_use: Arc<dyn KeyUseHook>,
    pub(crate) lifecycle: Box<[Arc<dyn LifecycleHook>]>,
    pub(crate) unwrap: Box<[Arc<dyn UnwrapHook>]>,
}

impl Hooks {
    /// The registry: one key-use hook (its verdict is cached per key, so there is
    /// one), any number of object and lifecycle hooks.
    pub fn new(
        objects: Vec<Arc<dyn ObjectHook>>,
        key_use: Arc<dyn KeyUseHook>,
        lifecycle: Vec<Arc<dyn LifecycleHook>>,
    ) -> Hooks {
        assert!(
            objects.len() <= 64,
            "at most 64 object hooks (a search keeps a mask)"
        );
        Hooks {
            objects: objects.into(),
            key_use,
            lifecycle: lifecycle.into(),
            unwrap: Box::new([]),
        }
    }

    /// Adds the unwrap hooks (vendor mechanisms whose key is no object).
    pub fn with_unwrap(mut self, unwrap: Vec<Arc<dyn UnwrapHook>>) -> Hooks {
        self.unwrap = unwrap.into();
        self
    }

    /// The unwrap hook of mechanism `ty`, if an extension runs it.
    pub(crate) fn unwrapper(&self, ty: CK_MECHANISM_TYPE) -> Option<&dyn UnwrapHook> {
        self.unwrap
            .iter()
            .find(|h| h.mechanism() == ty)
            .map(|h| h.as_ref())
    }

    /// The object hook that claims `attrs`, if any.
    pub(crate) fn owner(&self, attrs: &Attributes) -> Option<&dyn ObjectHook> {
        self.objects
            .iter()
            .find(|h| h.claims(attrs))
            .map(|h| h.as_ref())
    }

    /// The object hooks whose objects are hidden now, as a mask of their indices
    /// (0: none, the common case; a search asks once, not per object).
    pub(crate) fn hidden(&self, t: &Token, user: bool) -> u64 {
        self.objects
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.visible(t, user))
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Whether a hook of the `hidden` mask claims `attrs`.
    pub(crate) fn hidden_claims(&self, hidden: u64, attrs: &Attributes) -> bool {
        self.objects
            .iter()
            .enumerate()
            .any(|(i, h)| hidden >> i & 1 == 1 && h.claims(attrs))
    }

    /// The key-use hook's own value, for its extension.
    pub fn key_use_any(&self) -> &dyn Any {
        self.key_use.as_any()
    }
}
