//! Token-to-token backup (SPEC V11).
//!
//! 1. Mutual device authentication ([`authenticate_pair`]): each side sends a random,
//!    the other signs it with its device key and returns its certificate chain; both
//!    chains must lead to the same root. Any failure stops everything.
//! 2. The source collects what may travel ([`collect`]): vault entries, OTP
//!    credentials, certificates, public keys, other data objects, and keys whose
//!    policy allows it — extractable keys always; non-extractable ones only if the
//!    source token was initialized to allow key backup (`vtoken init
//!    --allow-key-backup`), since the target is always an authenticated vtoken.
//! 3. The bundle ([`export_bundle`]) is a CMS SignedData by the source's device key
//!    over an AuthEnvelopedData sealed to the target's device certificate: only the
//!    target opens it, and any change breaks the signature.
//! 4. The target ([`import_bundle`]) checks the signer against the root (and the
//!    expected source serial), opens the envelope inside the token, shows what it
//!    will store through the trusted prompt, and stores it only on confirmation.
//!    If storing fails half-way, what was stored is removed again.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::info;
use vault_core::otp::CKA_VTOKEN_OTP;
use vault_core::pkcs11::*;
use vault_core::prompt::Request;
use vault_core::token::Token;
use vault_core::Attributes;
use zeroize::Zeroizing;

use crate::{attest, new_nonce, rejected, verify_attestation, verify_device_chain, Error, Result};

/// Payload format version.
const VERSION: u32 = 1;

/// What travels (postcard, inside the sealed envelope).
#[derive(Serialize, Deserialize)]
struct Payload {
    version: u32,
    source_serial: String,
    target_serial: String,
    created: u64,
    items: Vec<Attributes>,
}

/// Counts of what a bundle holds (shown before storing, reported after).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Source token serial.
    pub source_serial: String,
    /// Password-vault entries.
    pub vault_entries: usize,
    /// HOTP/TOTP credentials.
    pub otp_credentials: usize,
    /// X.509 certificates.
    pub certificates: usize,
    /// Private and secret keys.
    pub keys: usize,
    /// Of those, keys that could not be exported otherwise (non-extractable).
    pub non_extractable_keys: usize,
    /// Public keys.
    pub public_keys: usize,
    /// Other data objects.
    pub data_objects: usize,
    /// Keys left behind because the source's policy keeps them on the token.
    pub skipped_keys: usize,
    /// Labels, in order.
    pub labels: Vec<String>,
}

impl Summary {
    fn add(&mut self, a: &Attributes) {
        match a.class() {
            Some(CKO_DATA) if vault_core::vault::is_vault_object(a) => self.vault_entries += 1,
            Some(CKO_SECRET_KEY) if a.contains(CKA_VTOKEN_OTP) => self.otp_credentials += 1,
            Some(CKO_CERTIFICATE) => self.certificates += 1,
            Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY) => {
                self.keys += 1;
                if !a.bool_or(CKA_EXTRACTABLE, false) {
                    self.non_extractable_keys += 1;
                }
            }
            Some(CKO_PUBLIC_KEY) => self.public_keys += 1,
            _ => self.data_objects += 1,
        }
        self.labels.push(a.label().to_string());
    }

    /// The text the target's prompt shows.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "Restore a backup from token {} into this token:\n  {} vault entries, {} OTP credentials, \
             {} certificates, {} keys ({} non-extractable), {} public keys, {} data objects",
            self.source_serial,
            self.vault_entries,
            self.otp_credentials,
            self.certificates,
            self.keys,
            self.non_extractable_keys,
            self.public_keys,
            self.data_objects
        );
        if !self.labels.is_empty() {
            s.push_str("\nLabels: ");
            s.push_str(&self.labels.join(", "));
        }
        s
    }
}

/// Step 1 for two tokens in one process: each attests to the other's random; both
/// chains must lead to `root_der`. Returns the target's chain (leaf first).
pub fn authenticate_pair(
    source: &Token,
    target: &Token,
    root_der: &[u8],
    now: SystemTime,
) -> Result<Vec<Vec<u8>>> {
    if source.serial() == target.serial() {
        return rejected("source and target are the same token");
    }
    // The source challenges the target ...
    let n_source = new_nonce()?;
    let from_target = attest(target, &n_source)?;
    verify_attestation(&from_target, root_der, &n_source, now)
        .map_err(|e| Error::Rejected(format!("target token not authenticated: {e}")))?;
    // ... and the target challenges the source.
    let n_target = new_nonce()?;
    let from_source = attest(source, &n_target)?;
    verify_attestation(&from_source, root_der, &n_target, now)
        .map_err(|e| Error::Rejected(format!("source token not authenticated: {e}")))?;
    info!(source = %source.serial(), target = %target.serial(), "backup: mutual device authentication done");
    Ok(target.device_info()?.chain)
}

/// Step 2: the objects that travel (user logged in on `source`) and their summary.
pub fn collect(source: &Token) -> Result<(Vec<Attributes>, Summary)> {
    let allow_nx = source.key_backup_allowed()?;
    let mut summary = Summary {
        source_serial: source.serial().to_string(),
        ..Summary::default()
    };
    let mut q = Attributes::new();
    q.set_bool(CKA_TOKEN, true);
    let mut items = Vec::new();
    for id in source.search(&q)? {
        let a = source.attributes(id)?;
        let secret = matches!(a.class(), Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY))
            && !a.contains(CKA_VTOKEN_OTP);
        if secret && !a.bool_or(CKA_EXTRACTABLE, false) && !allow_nx {
            summary.skipped_keys += 1;
            continue;
        }
        summary.add(&a);
        items.push((*a).clone());
    }
    Ok((items, summary))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Step 3: a bundle for the target whose certificate chain is `target_chain`
/// (checked against `root_der` first: a target not certified by the root gets
/// nothing). The source must be certified and logged in.
pub fn export_bundle(
    source: &Token,
    target_chain: &[Vec<u8>],
    root_der: &[u8],
    now: SystemTime,
) -> Result<(Vec<u8>, Summary)> {
    let target = verify_device_chain(target_chain, root_der, now)
        .map_err(|e| Error::Rejected(format!("target certificate rejected: {e}")))?;
    if target.token_serial == source.serial() {
        return rejected("source and target are the same token");
    }
    let info = source.device_info()?;
    let Some(source_leaf) = info.chain.first() else {
        return rejected("the source token has no device certificate (vtoken device certify)");
    };
    let (items, summary) = collect(source)?;
    let payload = Payload {
        version: VERSION,
        source_serial: source.serial().to_string(),
        target_serial: target.token_serial.clone(),
        created: now_secs(),
        items,
    };
    let plain = Zeroizing::new(
        postcard::to_allocvec(&payload)
            .map_err(|e| Error::Rejected(format!("backup payload: {e}")))?,
    );
    drop(payload);
    let bundle = vault_core::sealed::seal_signed(&target_chain[0], source_leaf, &plain, |attrs| {
        source.device_sign_cms(attrs)
    })?;
    info!(source = %source.serial(), target = %target.token_serial, items = summary.labels.len(), "backup bundle made");
    Ok((bundle, summary))
}

/// Step 4 (user logged in on `target`, `sid` a R/W session): verifies, opens,
/// asks, stores. `expected_source` pins the source serial when known. Nothing is
/// stored unless every check passed and the user confirmed.
pub fn import_bundle(
    target: &Token,
    sid: u64,
    bundle: &[u8],
    root_der: &[u8],
    expected_source: Option<&str>,
    now: SystemTime,
) -> Result<Summary> {
    let info = target.device_info()?;
    let Some(my_leaf) = info.chain.first() else {
        return rejected("the target token has no device certificate (vtoken device certify)");
    };
    let mut signer_serial = String::new();
    let plain = vault_core::sealed::open_signed(
        bundle,
        |signer| {
            let v = verify_device_chain(&[signer.to_vec()], root_der, now).map_err(|e| {
                vault_core::Error::Envelope(format!("source certificate rejected: {e}"))
            })?;
            if v.token_serial == target.serial() {
                return Err(vault_core::Error::Envelope(
                    "the bundle was signed by this token".into(),
                ));
            }
            if let Some(s) = expected_source {
                if !v.token_serial.eq_ignore_ascii_case(s) {
                    return Err(vault_core::Error::Envelope(format!(
                        "the bundle comes from token {}, not {s}",
                        v.token_serial
                    )));
                }
            }
            signer_serial = v.token_serial;
            Ok(())
        },
        |kt, enc| target.device_unwrap_cek(kt, enc),
        Some(my_leaf),
    )?;
    let payload: Payload = postcard::from_bytes(&plain)
        .map_err(|e| Error::Rejected(format!("backup payload unreadable: {e}")))?;
    drop(plain);
    if payload.version != VERSION {
        return rejected(format!(
            "backup payload version {} not supported",
            payload.version
        ));
    }
    if payload.source_serial != signer_serial || payload.target_serial != target.serial() {
        return rejected("the bundle's serials do not match its signer and this token");
    }
    let mut summary = Summary {
        source_serial: payload.source_serial.clone(),
        ..Summary::default()
    };
    for a in &payload.items {
        summary.add(a);
    }
    target.confirm(&Request {
        title: "Restore backup?".into(),
        description: summary.describe(),
    })?;
    let mut stored = Vec::new();
    for a in payload.items {
        match target.restore_object(sid, a) {
            Ok(id) => stored.push(id),
            Err(e) => {
                for id in stored {
                    let _ = target.destroy_object(sid, id);
                }
                return Err(e.into());
            }
        }
    }
    info!(source = %summary.source_serial, target = %target.serial(), objects = stored.len(), "backup restored");
    Ok(summary)
}

/// Both token files on one machine: authenticate, export, import (both logged in;
/// `target_sid` a R/W session on the target).
pub fn backup_local(
    source: &Token,
    target: &Token,
    target_sid: u64,
    root_der: &[u8],
) -> Result<Summary> {
    let now = SystemTime::now();
    let chain = authenticate_pair(source, target, root_der, now)?;
    let (bundle, _) = export_bundle(source, &chain, root_der, now)?;
    import_bundle(
        target,
        target_sid,
        &bundle,
        root_der,
        Some(source.serial()),
        now,
    )
}
