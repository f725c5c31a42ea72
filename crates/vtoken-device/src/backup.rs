//! Token-to-token backup (SPEC V11).
//!
//! Trust comes from the tokens, never from the caller: each token trusts only the
//! identity root bound to it when it was certified ([`crate::own_root`]), and a
//! certificate counts only with the identity profile ([`crate::check_identity_usage`]).
//!
//! The handshake follows ¶0104–0105, each step its own message:
//!
//! 1. The source, its user PIN verified, makes the "enable backup" request
//!    ([`BackupStart`], [`start`]): a fresh random it remembers and its device
//!    certificate chain.
//! 2. The target, its user PIN verified, checks the source's chain against the
//!    target's own root and answers "verification passed" ([`BackupRequest`],
//!    [`request`]): its own fresh nonce (it remembers it) and an attestation with
//!    its device key over `target nonce || source random`, with its chain.
//! 3. The source ([`export_bundle`]) checks that chain against the source's own
//!    root, the leaf is an identity certificate, the attestation verifies, and the
//!    source random is one it issued and has not used: so both devices proved
//!    themselves with fresh randoms, and a replayed answer is refused. Then it
//!    collects what may travel ([`collect`]): vault entries, OTP
//!    credentials, certificates, public keys, data objects, and keys whose policy
//!    allows it — extractable keys always; non-extractable ones only if the source
//!    was initialized with `--allow-key-backup`. Keys left behind are named.
//! 3. The export is a high-privilege act on the source: it passes the picture
//!    gate (C1) as `key-export` and `vault-password` and is confirmed through the
//!    source's trusted prompt (V5); nothing is sealed otherwise.
//! 4. The bundle is a CMS SignedData by the source's identity key over an
//!    AuthEnvelopedData sealed to the target's identity certificate (V8); the signed
//!    payload carries the target's nonce. Inside the envelope the source also signs
//!    the SHA-256 digest of the plaintext itself ([`BundleContent`], ¶0106).
//! 5. The target ([`import_bundle`]) checks the signer against its own root and
//!    usage, opens the envelope inside the token, checks that the nonce is one it
//!    issued and has not consumed, checks the source's signature over the
//!    plaintext's digest, shows what it will store (each object's kind and title),
//!    and on confirmation
//!    consumes the nonce (once, across processes) and stores. Objects carry a
//!    stable identity of their source object ([`CKA_VTOKEN_BACKUP_ORIGIN`]): a
//!    later bundle updates them instead of duplicating. If storing fails half-way,
//!    what was stored is removed again.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use vault_core::gate::OpClass;
use vault_core::identity::CKA_VTOKEN_BACKUP_ORIGIN;
use vault_core::otp::CKA_VTOKEN_OTP;
use vault_core::pkcs11::*;
use vault_core::prompt::Request;
use vault_core::session::SessionRef;
use vault_core::token::Token;
use vault_core::Attributes;
use zeroize::Zeroizing;

use crate::{
    attest, check_identity_usage, new_nonce, own_root, rejected, unhex, verify_attestation,
    verify_identity_chain, verify_identity_chain_for, Attestation, Error, Result,
};

/// Payload format version.
const VERSION: u32 = 3;
/// Request ("verification passed") format version.
pub const REQUEST_VERSION: u32 = 2;
/// Start ("enable backup") format version.
pub const START_VERSION: u32 = 1;
/// Nonce length of a request.
const NONCE_LEN: usize = 32;

/// The source's "enable backup" request (JSON, ¶0104–0105): a fresh random the
/// source remembers (it is used once, at the export) and its device chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStart {
    /// Format version ([`START_VERSION`]).
    pub version: u32,
    /// The source token's serial.
    pub serial: String,
    /// The source's random (hex, 32 bytes).
    pub random: String,
    /// The source's device chain, leaf first (hex DER).
    pub chain: Vec<String>,
}

/// The target's "verification passed" answer (JSON): the target's attestation
/// over `target nonce || source random` (the nonce the bundle will be bound to,
/// then the random of the source's [`BackupStart`]), with its identity chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    /// Format version ([`REQUEST_VERSION`]).
    pub version: u32,
    /// The target's attestation over its own nonce.
    #[serde(flatten)]
    pub attestation: Attestation,
}

/// What travels (postcard, inside the sealed envelope).
#[derive(Serialize, Deserialize)]
struct Payload {
    version: u32,
    source_serial: String,
    target_serial: String,
    /// The target's request nonce: the bundle imports once.
    nonce: Vec<u8>,
    created: u64,
    items: Vec<Attributes>,
}

/// What the envelope carries (postcard): the payload's plaintext bytes and the
/// source's signature over their SHA-256 digest
/// ([`Token::identity_sign_backup_digest`], V11 ¶0106). The CMS signature covers
/// the ciphertext; this one covers the data itself, checked by the target after
/// opening, against the same signer certificate.
#[derive(Serialize, Deserialize)]
pub struct BundleContent {
    /// `postcard` of the payload.
    pub payload: Vec<u8>,
    /// RSA PKCS#1 v1.5 / SHA-256 over
    /// [`vault_core::identity::backup_digest_message`].
    pub source_signature: Vec<u8>,
}

impl Drop for BundleContent {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.payload);
    }
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
    /// Their labels.
    pub skipped_labels: Vec<String>,
    /// Labels, in order.
    pub labels: Vec<String>,
    /// Each object as the target's prompt shows it: its kind and its title
    /// ("vault entry (website): mail"), in order; no secret.
    pub items: Vec<String>,
    /// On import: objects stored new.
    pub created: usize,
    /// On import: objects that replaced an older copy of the same source object.
    pub updated: usize,
    /// On import: objects the target already held unchanged (not stored again),
    /// and OTP credentials whose target copy was kept (its counter never goes back).
    pub unchanged: usize,
}

/// A label for messages (never empty).
fn label_of(a: &Attributes) -> String {
    let l = a.label();
    if !l.is_empty() {
        return l;
    }
    match a.get(CKA_ID) {
        Some(id) if !id.is_empty() => format!("(no label, id {})", hex::encode(id)),
        _ => "(no label)".to_string(),
    }
}

/// What kind of object `a` is, for the prompt: a vault entry with its entry kind,
/// a key with its key type.
fn kind_of(a: &Attributes) -> String {
    let key_type = || match a.key_type() {
        Some(CKK_RSA) => "RSA",
        Some(CKK_EC) => "EC",
        Some(CKK_EC_EDWARDS) => "Ed25519",
        Some(CKK_AES) => "AES",
        Some(CKK_GENERIC_SECRET) => "generic secret",
        _ => "other",
    };
    match a.class() {
        Some(CKO_DATA) if vault_core::vault::is_vault_object(a) => {
            match serde_json::from_slice::<vault_core::vault::Entry>(
                a.get(CKA_VALUE).unwrap_or(&[]),
            ) {
                Ok(e) => format!("vault entry ({})", e.kind),
                Err(_) => "vault entry".into(),
            }
        }
        Some(CKO_SECRET_KEY) if a.contains(CKA_VTOKEN_OTP) => "OTP credential".into(),
        Some(CKO_CERTIFICATE) => "certificate".into(),
        Some(CKO_PRIVATE_KEY) => format!("private key ({})", key_type()),
        Some(CKO_SECRET_KEY) => format!("secret key ({})", key_type()),
        Some(CKO_PUBLIC_KEY) => format!("public key ({})", key_type()),
        _ => "data object".into(),
    }
}

impl Summary {
    fn add(&mut self, a: &Attributes) {
        self.items.push(format!("{}: {}", kind_of(a), label_of(a)));
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
        self.labels.push(label_of(a));
    }

    fn counts(&self) -> String {
        format!(
            "{} vault entries, {} OTP credentials, {} certificates, {} keys ({} non-extractable), \
             {} public keys, {} data objects",
            self.vault_entries,
            self.otp_credentials,
            self.certificates,
            self.keys,
            self.non_extractable_keys,
            self.public_keys,
            self.data_objects
        )
    }

    /// The text the target's prompt shows.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "Restore a backup from token {} into this token:\n  {}\n  {} new, {} replacing an \
             older copy, {} already here",
            self.source_serial,
            self.counts(),
            self.created,
            self.updated,
            self.unchanged
        );
        // The data itself, object by object (V11: the target shows what it is
        // about to store, not only counts).
        for item in &self.items {
            s.push_str("\n  - ");
            s.push_str(item);
        }
        s
    }

    /// The warning about keys that stay on the source (None when none stay).
    pub fn skipped_warning(&self) -> Option<String> {
        (!self.skipped_labels.is_empty()).then(|| {
            format!(
                "{} non-extractable key{} NOT in the backup (the source was initialized without \
                 --allow-key-backup): {}",
                self.skipped_labels.len(),
                if self.skipped_labels.len() == 1 {
                    " is"
                } else {
                    "s are"
                },
                self.skipped_labels.join(", ")
            )
        })
    }
}

/// Mutual authentication of two tokens in one process (V11 over V7): each attests to the
/// other's random, and each checks the other against the root IT trusts (its own
/// bound identity root) and for the identity profile. Returns the target's chain.
pub fn authenticate_pair(source: &Token, target: &Token, now: SystemTime) -> Result<Vec<Vec<u8>>> {
    if source.serial() == target.serial() {
        return rejected("source and target are the same token");
    }
    let check = |verifier: &Token, prover: &Token, who: &str| -> Result<()> {
        let n = new_nonce()?;
        let att = attest(prover, &n)?;
        let chain: Vec<Vec<u8>> = att
            .chain
            .iter()
            .map(|c| unhex("certificate", c))
            .collect::<Result<_>>()?;
        verify_identity_chain_for(verifier, &chain, now)
            .and_then(|_| verify_attestation(&att, &own_root(verifier)?, &n, now))
            .map_err(|e| Error::Rejected(format!("{who} token not authenticated: {e}")))?;
        Ok(())
    };
    check(source, target, "target")?;
    check(target, source, "source")?;
    info!(source = %source.serial(), target = %target.serial(), "backup: mutual device authentication done");
    Ok(target.identity_info()?.chain)
}

/// Source side, step 1 (user logged in on `source`: the first PIN check): the
/// "enable backup" request with a fresh random the source remembers.
pub fn start(source: &Token) -> Result<BackupStart> {
    let info = source.identity_info()?;
    if info.chain.is_empty() {
        return rejected("the source token has no device certificate (vtoken device certify)");
    }
    own_root(source)?;
    let random = source.backup_issue_nonce()?;
    info!(serial = %source.serial(), "backup: enable request made");
    Ok(BackupStart {
        version: START_VERSION,
        serial: info.serial,
        random: hex::encode(random),
        chain: info.chain.iter().map(hex::encode).collect(),
    })
}

/// Target side, step 2 (user logged in on `target`: the second PIN check): checks
/// the source's chain against the target's own root and answers "verification
/// passed" — a fresh nonce the target remembers and an attestation over it and the
/// source's random.
pub fn request(target: &Token, start: &BackupStart, now: SystemTime) -> Result<BackupRequest> {
    if start.version != START_VERSION {
        return rejected(format!(
            "backup start version {} not supported",
            start.version
        ));
    }
    if target.identity_info()?.chain.is_empty() {
        return rejected("the target token has no device certificate (vtoken device certify)");
    }
    // Checked here too, so a token that cannot verify a bundle issues no request.
    own_root(target)?;
    let random = unhex("random", &start.random)?;
    if random.len() != NONCE_LEN {
        return rejected("the backup start's random is not 32 bytes");
    }
    let chain: Vec<Vec<u8>> = start
        .chain
        .iter()
        .map(|c| unhex("certificate", c))
        .collect::<Result<_>>()?;
    let v = verify_identity_chain_for(target, &chain, now)
        .map_err(|e| Error::Rejected(format!("source certificate refused: {e}")))?;
    if v.token_serial != start.serial {
        return rejected(format!(
            "the source certificate is for token {}, the request claims {}",
            v.token_serial, start.serial
        ));
    }
    if v.token_serial == target.serial() {
        return rejected("source and target are the same token");
    }
    let nonce = target.backup_issue_nonce()?;
    let mut signed = nonce.clone();
    signed.extend_from_slice(&random);
    info!(serial = %target.serial(), source = %v.token_serial, "backup: verification passed");
    Ok(BackupRequest {
        version: REQUEST_VERSION,
        attestation: attest(target, &signed)?,
    })
}

/// The objects that travel (user logged in on `source`) and their summary.
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
            summary.skipped_labels.push(label_of(&a));
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

/// A target's answer, checked.
struct Checked {
    /// The target's chain, leaf first.
    chain: Vec<Vec<u8>>,
    /// The target's serial.
    serial: String,
    /// The target's nonce (the bundle is bound to it).
    nonce: Vec<u8>,
    /// The source's random it answers.
    random: Vec<u8>,
}

/// Checks `request` against the source's own root and for the identity profile,
/// and that it answers a pending start of this source.
fn check_request(source: &Token, request: &BackupRequest, now: SystemTime) -> Result<Checked> {
    if request.version != REQUEST_VERSION {
        return rejected(format!(
            "backup request version {} not supported",
            request.version
        ));
    }
    let att = &request.attestation;
    let signed = unhex("nonce", &att.nonce)?;
    if signed.len() != 2 * NONCE_LEN {
        return rejected("the backup request's nonce is not 64 bytes");
    }
    let (nonce, random) = signed.split_at(NONCE_LEN);
    let chain: Vec<Vec<u8>> = att
        .chain
        .iter()
        .map(|c| unhex("certificate", c))
        .collect::<Result<_>>()?;
    let v = verify_identity_chain_for(source, &chain, now)
        .map_err(|e| Error::Rejected(format!("target certificate refused: {e}")))?;
    verify_attestation(att, &own_root(source)?, &signed, now)
        .map_err(|e| Error::Rejected(format!("target not authenticated: {e}")))?;
    if !source.backup_nonce_pending(random)? {
        return rejected(
            "this request answers no pending backup start of this token (replayed, expired, \
             already used, or for another source): run `vtoken backup start` again",
        );
    }
    Ok(Checked {
        chain,
        serial: v.token_serial,
        nonce: nonce.to_vec(),
        random: random.to_vec(),
    })
}

/// The gate for an export: it reveals keys and vault secrets, so it is gated when
/// the policy covers `key-export` or `vault-password`, or any key that travels is
/// itself gated. One picture check covers the export.
fn gate_export(source: &Token, items: &[Attributes], what: &str) -> Result<()> {
    for class in [OpClass::KeyExport, OpClass::VaultPassword] {
        if source.gate_applies(class, None)? {
            return Ok(source.gate_check(class, None, what)?);
        }
    }
    if let Some(k) = items.iter().find(|a| {
        source
            .gate_applies(OpClass::KeyExport, Some(a))
            .unwrap_or(true)
    }) {
        return Ok(source.gate_check(OpClass::KeyExport, Some(k), what)?);
    }
    // Not gated: still refuse while the gate is locked.
    Ok(source.gate_check(OpClass::KeyExport, None, what)?)
}

/// A bundle answering the target's `request` (user logged in on `source`).
///
/// The target's certificate must chain to the source's own identity root and be a
/// identity certificate; `expect_root`, when given, must be that same root (an
/// extra check, never a substitute). Then the gate (C1) and the source's prompt (V5);
/// nothing is sealed unless every check passed and the user confirmed.
pub fn export_bundle(
    source: &Token,
    request: &BackupRequest,
    expect_root: Option<&[u8]>,
    now: SystemTime,
) -> Result<(Vec<u8>, Summary)> {
    export_bundle_with(source, request, expect_root, now, Delivery::Envelope)
}

/// How the data travels (¶0108 or ¶0109).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One envelope sealed to the target (¶0108).
    Envelope,
    /// Parts of this many bytes, each sealed to the target ([`crate::chunked`],
    /// ¶0109), for large vaults.
    Chunked(usize),
}

/// [`export_bundle`] with the delivery chosen.
pub fn export_bundle_with(
    source: &Token,
    request: &BackupRequest,
    expect_root: Option<&[u8]>,
    now: SystemTime,
    delivery: Delivery,
) -> Result<(Vec<u8>, Summary)> {
    let root = own_root(source)?;
    if expect_root.is_some_and(|r| r != root.as_slice()) {
        return rejected(
            "the root given is not the device root this source token trusts: a backup goes \
             only to tokens certified under the source's own root",
        );
    }
    let Checked {
        chain: target_chain,
        serial: target_serial,
        nonce,
        random,
    } = check_request(source, request, now)?;
    if target_serial == source.serial() {
        return rejected("source and target are the same token");
    }
    let info = source.identity_info()?;
    let Some(source_leaf) = info.chain.first() else {
        return rejected("the source token has no device certificate (vtoken device certify)");
    };
    let (items, summary) = collect(source)?;
    let what = format!(
        "export a backup of {} objects to token {target_serial}",
        items.len()
    );
    gate_export(source, &items, &what)?;
    let mut description = format!(
        "Send a backup of this token to token {target_serial}:\n  {}",
        summary.counts()
    );
    if let Some(w) = summary.skipped_warning() {
        description.push('\n');
        description.push_str(&w);
    }
    source.confirm(&Request {
        title: "Export a backup?".into(),
        description,
    })?;
    // The source's random is used once (one committed transaction): the same
    // answer can never be exported to again.
    source.backup_take_nonce(&random).map_err(|_| {
        Error::Rejected("this request was already answered: run `vtoken backup start` again".into())
    })?;
    let payload = Payload {
        version: VERSION,
        source_serial: source.serial().to_string(),
        target_serial: target_serial.clone(),
        nonce,
        created: now_secs(),
        items,
    };
    let payload = postcard::to_allocvec(&payload)
        .map_err(|e| Error::Rejected(format!("backup payload: {e}")))?;
    let digest: [u8; 32] = Sha256::digest(&payload).into();
    let content = BundleContent {
        source_signature: source.identity_sign_backup_digest(&digest)?,
        payload,
    };
    let plain = Zeroizing::new(
        postcard::to_allocvec(&content)
            .map_err(|e| Error::Rejected(format!("backup payload: {e}")))?,
    );
    drop(content);
    let sign = |attrs: &[u8]| source.identity_sign_cms(attrs);
    let bundle = match delivery {
        Delivery::Envelope => {
            vault_core::sealed::seal_signed(&target_chain[0], source_leaf, &plain, sign)?
        }
        Delivery::Chunked(n) => {
            crate::chunked::seal(&target_chain[0], source_leaf, &plain, n, sign)?
        }
    };
    info!(source = %source.serial(), target = %target_serial, items = summary.labels.len(), "backup bundle made");
    Ok((bundle, summary))
}

/// SHA-256 over every attribute but the token-assigned identity ones.
fn content_hash(a: &Attributes) -> Result<[u8; 32]> {
    let mut c = a.clone();
    c.remove(CKA_UNIQUE_ID);
    c.remove(CKA_VTOKEN_BACKUP_ORIGIN);
    let b = Zeroizing::new(
        postcard::to_allocvec(&c).map_err(|e| Error::Rejected(format!("object: {e}")))?,
    );
    Ok(Sha256::digest(&*b).into())
}

/// The stable identity of a source object: its serial and `CKA_UNIQUE_ID` (or its
/// content, for an object without one).
fn origin_of(source_serial: &str, a: &Attributes) -> Result<Vec<u8>> {
    let mut h = Sha256::new();
    h.update(b"vtoken backup origin v1\0");
    h.update(source_serial.as_bytes());
    h.update([0]);
    match a.get(CKA_UNIQUE_ID) {
        Some(u) if !u.is_empty() => h.update(u),
        _ => h.update(content_hash(a)?),
    }
    Ok(h.finalize().to_vec())
}

enum Plan {
    New(Attributes),
    Replace(Attributes, u64),
    Keep,
}

/// Import (user logged in on `target`, `sid` a R/W session): verifies, opens,
/// asks, stores. The signer must chain to the target's own identity root (
/// `expect_root`, when given, must equal it) with the identity profile;
/// `expected_source` pins the source serial when known. Nothing is stored unless
/// every check passed and the user confirmed; the bundle's nonce is consumed with
/// the import, so the same bundle never imports twice (V11: the target shows the
/// data and stores it only on the user's confirmation).
pub fn import_bundle(
    target: &Token,
    sid: &SessionRef,
    bundle: &[u8],
    expect_root: Option<&[u8]>,
    expected_source: Option<&str>,
    now: SystemTime,
) -> Result<Summary> {
    let root = own_root(target)?;
    if expect_root.is_some_and(|r| r != root.as_slice()) {
        return rejected("the root given is not the device root this target token trusts");
    }
    let info = target.identity_info()?;
    let Some(my_leaf) = info.chain.first() else {
        return rejected("the target token has no device certificate (vtoken device certify)");
    };
    let mut signer_serial = String::new();
    let mut signer_spki = Vec::new();
    let mut check_signer = |signer: &[u8]| {
        let v = verify_identity_chain(&[signer.to_vec()], &root, now)
            .and_then(|v| {
                if v.usage != vtoken_pki::Usage::Device {
                    return rejected(format!("its usage is {}, not device", v.usage));
                }
                check_identity_usage(signer)?;
                Ok(v)
            })
            .map_err(|e| {
                vault_core::Error::envelope(format!("source certificate rejected: {e}"))
            })?;
        if v.token_serial == target.serial() {
            return Err(vault_core::Error::envelope(
                "the bundle was signed by this token".into(),
            ));
        }
        if let Some(s) = expected_source {
            if !v.token_serial.eq_ignore_ascii_case(s) {
                return Err(vault_core::Error::envelope(format!(
                    "the bundle comes from token {}, not {s}",
                    v.token_serial
                )));
            }
        }
        signer_serial = v.token_serial;
        signer_spki = v.spki;
        Ok(())
    };
    let unwrap =
        |kt: &vault_core::sealed::KeyTransport, enc: &[u8]| target.identity_unwrap_cek(kt, enc);
    // The chunked form (¶0109) or the one envelope (¶0108).
    let plain = match crate::chunked::open(bundle, &mut check_signer, unwrap, my_leaf) {
        Some(r) => r?,
        None => vault_core::sealed::open_signed(bundle, check_signer, unwrap, Some(my_leaf))?,
    };
    let content: BundleContent = postcard::from_bytes(&plain)
        .map_err(|e| Error::Rejected(format!("backup payload unreadable: {e}")))?;
    drop(plain);
    // The source's signature over the data itself (¶0106), by the certificate
    // that signed the bundle.
    let digest: [u8; 32] = Sha256::digest(&content.payload).into();
    crate::verify_identity_signature(
        &signer_spki,
        &vault_core::identity::backup_digest_message(&signer_serial, &digest),
        &content.source_signature,
    )
    .map_err(|_| {
        Error::Rejected(
            "the source's signature over the backup's data does not verify: the data was \
             changed after the source signed it"
                .into(),
        )
    })?;
    let payload: Payload = postcard::from_bytes(&content.payload)
        .map_err(|e| Error::Rejected(format!("backup payload unreadable: {e}")))?;
    drop(content);
    if payload.version != VERSION {
        return rejected(format!(
            "backup payload version {} not supported",
            payload.version
        ));
    }
    if payload.source_serial != signer_serial || payload.target_serial != target.serial() {
        return rejected("the bundle's serials do not match its signer and this token");
    }
    if !target.backup_nonce_pending(&payload.nonce)? {
        return rejected(
            "this bundle was already imported, or its request expired or was not made by this \
             token: make a new request (vtoken backup request) and a new bundle",
        );
    }

    // What the target holds already, by source identity and by content.
    let mut by_origin: HashMap<Vec<u8>, (u64, [u8; 32])> = HashMap::new();
    let mut contents: HashSet<[u8; 32]> = HashSet::new();
    let mut q = Attributes::new();
    q.set_bool(CKA_TOKEN, true);
    for id in target.search(&q)? {
        let a = target.attributes(id)?;
        let h = content_hash(&a)?;
        contents.insert(h);
        if let Some(o) = a.get(CKA_VTOKEN_BACKUP_ORIGIN) {
            by_origin.entry(o.to_vec()).or_insert((id, h));
        }
    }
    let mut summary = Summary {
        source_serial: payload.source_serial.clone(),
        ..Summary::default()
    };
    let mut plan = Vec::with_capacity(payload.items.len());
    for mut a in payload.items {
        summary.add(&a);
        let origin = origin_of(&payload.source_serial, &a)?;
        let h = content_hash(&a)?;
        a.set(CKA_VTOKEN_BACKUP_ORIGIN, origin.clone());
        let p = match by_origin.get(&origin) {
            _ if contents.contains(&h) => Plan::Keep,
            // The target's OTP credential keeps its counter: never moved back.
            Some(_) if a.contains(CKA_VTOKEN_OTP) => Plan::Keep,
            Some(&(old, _)) => Plan::Replace(a, old),
            None => Plan::New(a),
        };
        match &p {
            Plan::New(_) => summary.created += 1,
            Plan::Replace(..) => summary.updated += 1,
            Plan::Keep => summary.unchanged += 1,
        }
        plan.push(p);
    }
    target.confirm(&Request {
        title: "Restore backup?".into(),
        description: summary.describe(),
    })?;
    // Consumed before anything is written: a second import (even a concurrent one
    // in another process) is refused here, and a failure below removes what was
    // stored, so the nonce is spent for nothing at worst, never twice.
    target.backup_take_nonce(&payload.nonce)?;
    let mut stored = Vec::new();
    let mut replaced = Vec::new();
    for p in plan {
        let (a, old) = match p {
            Plan::New(a) => (a, None),
            Plan::Replace(a, old) => (a, Some(old)),
            Plan::Keep => continue,
        };
        match target.restore_object(sid, a) {
            Ok(id) => {
                stored.push(id);
                replaced.extend(old);
            }
            Err(e) => {
                for id in stored {
                    let _ = target.destroy_object(sid, id);
                }
                return Err(e.into());
            }
        }
    }
    // The new copies are in: the older ones go.
    for old in replaced {
        if let Err(e) = target.destroy_object(sid, old) {
            warn!(serial = %target.serial(), id = old, error = %e, "backup: an older copy could not be removed");
        }
    }
    info!(source = %summary.source_serial, target = %target.serial(), objects = stored.len(), "backup restored");
    Ok(summary)
}

/// Both token files on one machine (both logged in; `target_sid` a R/W session on
/// the target): the same steps as across machines — mutual authentication, the
/// target's request, the export (gated and confirmed on the source), the import.
pub fn backup_local(
    source: &Token,
    target: &Token,
    target_sid: &SessionRef,
    expect_root: Option<&[u8]>,
) -> Result<Summary> {
    let now = SystemTime::now();
    authenticate_pair(source, target, now)?;
    let st = start(source)?;
    let req = request(target, &st, now)?;
    let (bundle, exported) = export_bundle(source, &req, expect_root, now)?;
    let mut s = import_bundle(
        target,
        target_sid,
        &bundle,
        expect_root,
        Some(source.serial()),
        now,
    )?;
    s.skipped_keys = exported.skipped_keys;
    s.skipped_labels = exported.skipped_labels;
    Ok(s)
}
