//! Device identity (SPEC V7, V8, V11): every token has an RSA-2048 **device key
//! pair**, made when its user PIN is first set (`C_InitPIN`, `vtoken init`), and,
//! once certified, the device certificate chain (leaf first).
//!
//! The device key lives outside the PKCS#11 object space: clients never see, use,
//! export or delete it (as a hardware token's attestation key). It is kept in the
//! token header's extension map: the public key and the certificates in clear
//! (readable without a PIN, like a certificate on a smart card), the private key
//! sealed with AES-256-GCM under a key derived from the token's master key (so only
//! a logged-in user or SO can use it; a stolen file does not reveal it).
//!
//! What the key does, each with its own domain separation so one use cannot stand
//! in for another:
//! * [`Token::attest`]: signs `ATTEST_CONTEXT || serial || nonce`
//!   (RSA PKCS#1 v1.5, SHA-256) — the answer to a client's challenge;
//! * [`Token::identity_sign_cms`]: signs the DER `SET OF` signed attributes of a CMS
//!   SignedData (a backup bundle) — input must be such a SET;
//! * [`Token::identity_sign_backup_digest`] signs
//!   `BACKUP_DIGEST_CONTEXT || serial || SHA-256(backup plaintext)`;
//! * [`Token::open_sealed`]: opens a CMS envelope sealed to the device certificate
//!   ([`crate::sealed`]); only RSA-OAEP key transport is accepted (PKCS#1 v1.5 is
//!   refused: RUSTSEC-2023-0071).

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tracing::info;
use zeroize::Zeroizing;

use crate::attr::Attributes;
use crate::error::{Error, IdentityError, Part, Result};
use crate::mechanism::{self, HashAlg, Key, MechParam, Mechanism};
use crate::pkcs11::*;
use crate::sealed::KeyTransport;
use crate::session::SessionRef;
use crate::store::seal::{self, Key32};
use crate::store::MasterKeys;
use crate::token::{Token, UserType};

/// The header extension holding the device identity.
const EXT_KEY: &str = "device";
/// Authenticated data of the sealed private key.
const PRIVATE_AD: &[u8] = b"vtoken device private key v1";
/// Label of the key that seals the private key (derived from the master key).
const SEAL_LABEL: &[u8] = b"vtoken device seal key";
/// Prefix of every attestation signature.
pub const ATTEST_CONTEXT: &[u8] = b"vtoken device attestation v1\0";
/// Device key size.
pub const IDENTITY_KEY_BITS: usize = 2048;
/// Attestation nonces: at least this many bytes (a replay must not be guessable).
pub const MIN_NONCE_LEN: usize = 16;

/// What the header keeps.
#[derive(Clone, Serialize, Deserialize)]
struct Record {
    /// SubjectPublicKeyInfo DER.
    spki: Vec<u8>,
    /// postcard of the private key's attributes, sealed (see module docs).
    sealed_private: Vec<u8>,
    /// Device certificate, then its issuers (leaf first); empty until certified.
    chain: Vec<Vec<u8>>,
}

/// The public part of a token's device identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdentityInfo {
    /// Token serial.
    pub serial: String,
    /// Device public key, SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
    /// Certificate chain, leaf first (empty: not certified yet).
    pub chain: Vec<Vec<u8>>,
    /// Whether non-extractable keys may travel in a backup to another vtoken.
    pub allow_key_backup: bool,
}

/// Prefix of a source token's signature over the digest of a backup's plaintext
/// (SPEC V11, ¶0106): distinct from [`ATTEST_CONTEXT`], so an attestation answer
/// can never pass for it, nor the reverse.
pub const BACKUP_DIGEST_CONTEXT: &[u8] = b"vtoken backup plaintext digest v1\0";

/// The bytes a backup source signs over its plaintext's SHA-256 `digest`.
pub fn backup_digest_message(serial: &str, digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(BACKUP_DIGEST_CONTEXT.len() + serial.len() + 33);
    m.extend_from_slice(BACKUP_DIGEST_CONTEXT);
    m.extend_from_slice(serial.as_bytes());
    m.push(0);
    m.extend_from_slice(digest);
    m
}

/// The bytes an attestation signs (the verifier rebuilds them).
pub fn attestation_message(serial: &str, nonce: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ATTEST_CONTEXT.len() + serial.len() + 1 + nonce.len());
    m.extend_from_slice(ATTEST_CONTEXT);
    m.extend_from_slice(serial.as_bytes());
    m.push(0);
    m.extend_from_slice(nonce);
    m
}

fn record_of(h: &crate::store::Header) -> Result<Option<Record>> {
    match h.ext.get(EXT_KEY) {
        None => Ok(None),
        Some(b) => postcard::from_bytes(b)
            .map(Some)
            .map_err(|e| Error::corrupt(Part::Identity, format!("damaged: {e}"))),
    }
}

fn seal_key(keys: &MasterKeys) -> Key32 {
    keys.master.derive(SEAL_LABEL)
}

fn ck_hash(h: HashAlg) -> (CK_MECHANISM_TYPE, CK_RSA_PKCS_MGF_TYPE) {
    match h {
        HashAlg::Sha1 => (CKM_SHA_1, CKG_MGF1_SHA1),
        HashAlg::Sha224 => (CKM_SHA224, CKG_MGF1_SHA224),
        HashAlg::Sha256 => (CKM_SHA256, CKG_MGF1_SHA256),
        HashAlg::Sha384 => (CKM_SHA384, CKG_MGF1_SHA384),
        HashAlg::Sha512 => (CKM_SHA512, CKG_MGF1_SHA512),
    }
}

/// The header extension holding the sealed device root (see [`Token::identity_root`]).
const ROOT_KEY: &str = "identity_root";
/// Label of the key that authenticates the device root (derived from the master key).
const ROOT_LABEL: &[u8] = b"vtoken device root binding key";
/// The header extension listing pending backup request nonces.
const REQUESTS_KEY: &str = "backup_requests";
/// Pending backup requests kept at most.
pub const MAX_BACKUP_REQUESTS: usize = 16;
/// Seconds a backup request stays valid.
pub const BACKUP_REQUEST_LIFETIME: u64 = 7 * 24 * 3600;

pub use crate::vendor::CKA_VTOKEN_BACKUP_ORIGIN;

/// The device identity as a lifecycle hook: the key is made with the token's first
/// user PIN (SPEC V7).
pub(crate) struct IdentityHook;

impl crate::token::hooks::LifecycleHook for IdentityHook {
    fn user_pin_set(&self, t: &Token) -> Result<()> {
        t.identity_ensure().map(|_| ())
    }

    /// Nothing of the identity outlives re-initialization: the key pair, its
    /// certificates and pending requests go with the old master key.
    fn reinitialize(&self, _: &crate::store::Header, _: &mut crate::store::Header) -> Result<()> {
        Ok(())
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct PendingRequest {
    nonce: Vec<u8>,
    created: u64,
}

fn pending_of(h: &crate::store::Header) -> Result<Vec<PendingRequest>> {
    match h.ext.get(REQUESTS_KEY) {
        None => Ok(Vec::new()),
        Some(b) => postcard::from_bytes(b)
            .map_err(|e| Error::corrupt(Part::BackupRequests, format!("damaged: {e}"))),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn root_key(keys: &MasterKeys) -> Key32 {
    keys.master.derive(ROOT_LABEL)
}

fn root_ad(serial: &str) -> Vec<u8> {
    let mut ad = b"vtoken device root v1\0".to_vec();
    ad.extend_from_slice(serial.as_bytes());
    ad
}

/// The header extension recording the key-backup policy chosen at initialization.
const BACKUP_POLICY_KEY: &str = "key_backup";

impl Token {
    /// Whether non-extractable keys may travel in a backup to another authenticated
    /// vtoken (chosen at initialization, SPEC V11; default no).
    pub fn key_backup_allowed(&self) -> Result<bool> {
        let mut st = self.store();
        Ok(st
            .header()?
            .ext
            .get(BACKUP_POLICY_KEY)
            .map(|v| v.as_slice())
            == Some(&[1u8][..]))
    }

    /// Sets the key-backup policy: only during initialization (the SO logged in,
    /// the user PIN not set yet); afterwards it is fixed (`ActionProhibited`).
    pub fn set_key_backup_allowed(&self, allow: bool) -> Result<()> {
        if self.logged_in() != Some(UserType::So) {
            return Err(Error::UserNotLoggedIn);
        }
        let mut st = self.store();
        let mut h = st.header()?.clone();
        if h.user.is_some() {
            // Fixed once the user PIN is set.
            return Err(Error::ActionProhibited);
        }
        h.ext
            .insert(BACKUP_POLICY_KEY.to_string(), vec![allow as u8]);
        st.write_header(&h)
    }

    fn identity_record(&self) -> Result<Option<Record>> {
        let mut st = self.store();
        record_of(st.header()?)
    }

    /// The master keys of whoever is logged in (user or SO).
    fn identity_keys(&self) -> Result<std::sync::Arc<MasterKeys>> {
        self.any_master_keys().ok_or(Error::UserNotLoggedIn)
    }

    /// Makes the device key pair if the token has none (user or SO logged in).
    /// Called by `C_InitPIN`; returns whether a key was made.
    pub fn identity_ensure(&self) -> Result<bool> {
        if self.identity_record()?.is_some() {
            return Ok(false);
        }
        let keys = self.identity_keys()?;
        let mut pub_t = Attributes::new();
        pub_t.set_ulong(CKA_MODULUS_BITS, IDENTITY_KEY_BITS as CK_ULONG);
        let (public, private) = mechanism::generate_key_pair(
            &Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &pub_t,
            &Attributes::new(),
        )?;
        let spki = mechanism::encoding::public_key_spki(&public)?;
        let plain = Zeroizing::new(
            postcard::to_allocvec(&private).map_err(|e| Error::General(format!("device: {e}")))?,
        );
        let sealed_private = seal::seal(&seal_key(&keys), PRIVATE_AD, &plain)?;
        // Another handle may have made one meanwhile: keep the first.
        let mut st = self.store();
        let mut h = st.header()?.clone();
        if record_of(&h)?.is_some() {
            return Ok(false);
        }
        let r = Record {
            spki,
            sealed_private,
            chain: Vec::new(),
        };
        let b = postcard::to_allocvec(&r).map_err(|e| Error::General(format!("device: {e}")))?;
        h.ext.insert(EXT_KEY.to_string(), b);
        st.write_header(&h)?;
        info!(serial = %self.serial(), "device key pair made");
        Ok(true)
    }

    /// The device identity's public part (no login needed). `DeviceIdentityMissing`
    /// (`CKR_KEY_NEEDED`) when the token has none yet (user PIN never set).
    pub fn identity_info(&self) -> Result<IdentityInfo> {
        let r = self
            .identity_record()?
            .ok_or(Error::Identity(IdentityError::Missing))?;
        Ok(IdentityInfo {
            serial: self.serial().to_string(),
            spki: r.spki,
            chain: r.chain,
            allow_key_backup: self.key_backup_allowed()?,
        })
    }

    /// Stores the device certificate chain (leaf first; the user logged in). The
    /// leaf must certify this token's device key: the caller (who checked the chain
    /// against its root) passes the leaf's SubjectPublicKeyInfo as `leaf_spki`.
    pub fn identity_set_chain(&self, chain: Vec<Vec<u8>>, leaf_spki: &[u8]) -> Result<()> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        let mut r = self
            .identity_record()?
            .ok_or(Error::Identity(IdentityError::Missing))?;
        if chain.is_empty() || leaf_spki != r.spki.as_slice() {
            return Err(Error::envelope(
                "the certificate does not certify this token's device key".into(),
            ));
        }
        // The chain's last certificate is the root this token trusts for device
        // certificates (backup targets and sources must chain to it). It is bound
        // at the first certification, sealed under the master key, and fixed from
        // then on: a user-PIN holder cannot re-root the token to a CA of their own
        // and so make it trust (and back up to) a token of theirs.
        let root = match chain.as_slice() {
            [_, .., root] => root.clone(),
            _ => {
                return Err(Error::ArgumentsBad(
                    "a device certificate chain holds the leaf and its root".into(),
                ))
            }
        };
        let bound = self.identity_root()?;
        if let Some(b) = &bound {
            if b.as_slice() != root.as_slice() {
                return Err(Error::ArgumentsBad(
                    "this token's device root is fixed at its first certification; \
                     the new certificate chains to another root (re-initialize the token \
                     to move it to another CA)"
                        .into(),
                ));
            }
        }
        r.chain = chain;
        let keys = self.identity_keys()?;
        let sealed_root = seal::seal(&root_key(&keys), &root_ad(self.serial()), &root)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        let b = postcard::to_allocvec(&r).map_err(|e| Error::General(format!("device: {e}")))?;
        h.ext.insert(EXT_KEY.to_string(), b);
        if bound.is_none() {
            h.ext.insert(ROOT_KEY.to_string(), sealed_root);
        }
        st.write_header(&h)?;
        drop(st);
        info!(serial = %self.serial(), "device certificate stored");
        Ok(())
    }

    /// The device root this token trusts (DER), bound at its first certification
    /// and authenticated under the master key (user or SO logged in). `None` when
    /// the token was never certified (or certified before roots were bound: certify
    /// it again). A record that fails its check is `Corrupt`: the clear header is
    /// writable by anyone who can write the file, so it is never trusted unsealed.
    pub fn identity_root(&self) -> Result<Option<Vec<u8>>> {
        let sealed = {
            let mut st = self.store();
            st.header()?.ext.get(ROOT_KEY).cloned()
        };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let keys = self.identity_keys()?;
        let root =
            seal::open(&root_key(&keys), &root_ad(self.serial()), &sealed).ok_or_else(|| {
                Error::corrupt(Part::Identity, "the bound root fails its integrity check")
            })?;
        Ok(Some(root.to_vec()))
    }

    /// Target side of a backup (SPEC V11): a fresh 32-byte nonce the next bundle for
    /// this token must carry, remembered in the token (user logged in). At most
    /// [`MAX_BACKUP_REQUESTS`] stay pending (the oldest go first), each for
    /// [`BACKUP_REQUEST_LIFETIME`] seconds.
    pub fn backup_issue_nonce(&self) -> Result<Vec<u8>> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        let nonce = mechanism::random_secret(32)?.to_vec();
        let now = unix_now();
        let mut st = self.store();
        let mut h = st.header()?.clone();
        let mut pending = pending_of(&h)?;
        pending.retain(|p| now.saturating_sub(p.created) < BACKUP_REQUEST_LIFETIME);
        pending.push(PendingRequest {
            nonce: nonce.clone(),
            created: now,
        });
        let excess = pending.len().saturating_sub(MAX_BACKUP_REQUESTS);
        pending.drain(..excess);
        h.ext.insert(
            REQUESTS_KEY.to_string(),
            postcard::to_allocvec(&pending).map_err(|e| Error::General(format!("device: {e}")))?,
        );
        st.write_header(&h)?;
        info!(serial = %self.serial(), "backup request nonce issued");
        Ok(nonce)
    }

    /// Whether `nonce` was issued by [`Token::backup_issue_nonce`], is still
    /// pending and not expired (read only; [`Token::backup_take_nonce`] consumes).
    pub fn backup_nonce_pending(&self, nonce: &[u8]) -> Result<bool> {
        let now = unix_now();
        let mut st = self.store();
        let pending = pending_of(st.header()?)?;
        Ok(pending.iter().any(|p| {
            now.saturating_sub(p.created) < BACKUP_REQUEST_LIFETIME
                && bool::from(p.nonce.as_slice().ct_eq(nonce))
        }))
    }

    /// Consumes a pending backup nonce, once: `Ok` for exactly one caller across
    /// every process. The one-shot is a committed counter increment (one immediate
    /// SQLite transaction): whoever moves it from 0 to 1 owns the nonce; everyone
    /// else, including a replay after the pending list was restored, is refused.
    pub fn backup_take_nonce(&self, nonce: &[u8]) -> Result<()> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        let used = Error::ArgumentsBad(
            "this backup bundle was already imported, or its request expired or is unknown \
             to this token: make a new request (vtoken backup request)"
                .into(),
        );
        if !self.backup_nonce_pending(nonce)? {
            return Err(used);
        }
        let mut st = self.store();
        let name = format!("backup-nonce-{}", hex::encode(nonce));
        if st.increment_counter(&name)? != 1 {
            return Err(used);
        }
        let mut h = st.header()?.clone();
        let mut pending = pending_of(&h)?;
        pending.retain(|p| !bool::from(p.nonce.as_slice().ct_eq(nonce)));
        h.ext.insert(
            REQUESTS_KEY.to_string(),
            postcard::to_allocvec(&pending).map_err(|e| Error::General(format!("device: {e}")))?,
        );
        st.write_header(&h)?;
        Ok(())
    }

    fn identity_private(&self) -> Result<Key> {
        let keys = self.identity_keys()?;
        let r = self
            .identity_record()?
            .ok_or(Error::Identity(IdentityError::Missing))?;
        let plain = seal::open(&seal_key(&keys), PRIVATE_AD, &r.sealed_private)
            .ok_or_else(|| Error::corrupt(Part::Identity, "fails its integrity check"))?;
        let attrs: Attributes = postcard::from_bytes(&plain)
            .map_err(|e| Error::corrupt(Part::Identity, e.to_string()))?;
        Key::from_attributes(&attrs)
    }

    fn identity_sign_raw(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.gate_ensure_unlocked()?;
        let key = self.identity_private()?;
        let mut op = mechanism::sign_init(&Mechanism::new(CKM_SHA256_RSA_PKCS), &key)?;
        op.update(data)?;
        op.finish()
    }

    /// Answers a challenge: RSA PKCS#1 v1.5 / SHA-256 signature over
    /// [`attestation_message`]`(serial, nonce)` (user or SO logged in).
    pub fn attest(&self, nonce: &[u8]) -> Result<Vec<u8>> {
        if nonce.len() < MIN_NONCE_LEN || nonce.len() > 1024 {
            return Err(Error::ArgumentsBad(format!(
                "an attestation nonce has {MIN_NONCE_LEN} to 1024 bytes"
            )));
        }
        let sig = self.identity_sign_raw(&attestation_message(self.serial(), nonce))?;
        info!(serial = %self.serial(), "device attestation signed");
        Ok(sig)
    }

    /// Signs the SHA-256 digest of a backup's plaintext (V11, ¶0106: the source
    /// signs what it sends, not only the ciphertext): RSA PKCS#1 v1.5 / SHA-256 over
    /// [`backup_digest_message`]. User logged in.
    pub fn identity_sign_backup_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        self.identity_sign_raw(&backup_digest_message(self.serial(), digest))
    }

    /// Signs the DER signed attributes of a CMS SignedData (a backup bundle). The
    /// input must be a DER `SET` (tag 0x31): the device key signs nothing else.
    pub fn identity_sign_cms(&self, signed_attrs_der: &[u8]) -> Result<Vec<u8>> {
        if signed_attrs_der.first() != Some(&0x31) {
            return Err(Error::ArgumentsBad(
                "the device key signs only CMS signed attributes".into(),
            ));
        }
        self.identity_sign_raw(signed_attrs_der)
    }

    /// The key-transport step of opening an envelope sealed to this token: RSA-OAEP
    /// only (PKCS#1 v1.5 is refused: its decryption is not constant-time in the
    /// `rsa` crate, RUSTSEC-2023-0071).
    pub fn identity_unwrap_cek(&self, kt: &KeyTransport, enc: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.gate_ensure_unlocked()?;
        let (hash, mgf_hash, label) = match kt {
            KeyTransport::Oaep {
                hash,
                mgf_hash,
                label,
            } => (*hash, *mgf_hash, label.clone()),
            KeyTransport::Pkcs1v15 => {
                return Err(Error::envelope(
                    "RSA PKCS#1 v1.5 key transport is refused: seal with RSA-OAEP \
                     (openssl cms -encrypt -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256)"
                        .into(),
                ))
            }
        };
        let key = self.identity_private()?;
        let m = Mechanism {
            ty: CKM_RSA_PKCS_OAEP,
            param: MechParam::Oaep {
                hash: ck_hash(hash).0,
                mgf: ck_hash(mgf_hash).1,
                source: label,
            },
        };
        let mut op = mechanism::decrypt_init(&m, &key)?;
        Ok(Zeroizing::new(op.once(enc)?))
    }

    /// Opens data sealed to this token's device key, inside the token, in either of
    /// the two delivery options of SPEC V8: a CMS envelope (EnvelopedData /
    /// AuthEnvelopedData, [`crate::sealed::seal`] or `openssl cms -encrypt`) or the
    /// data encrypted directly to the device key (a bare RSA-OAEP-SHA256
    /// ciphertext, [`crate::sealed::seal_direct`]). Anything that is not a CMS
    /// `ContentInfo` is taken as a direct ciphertext; a tampered or foreign one
    /// fails OAEP decoding.
    pub fn open_sealed(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let info = self.identity_info()?;
        let leaf = info.chain.first().map(|c| c.as_slice());
        if crate::sealed::is_cms(sealed) {
            return crate::sealed::open(sealed, |kt, enc| self.identity_unwrap_cek(kt, enc), leaf);
        }
        let direct = KeyTransport::Oaep {
            hash: HashAlg::Sha256,
            mgf_hash: HashAlg::Sha256,
            label: Vec::new(),
        };
        self.identity_unwrap_cek(&direct, sealed).map_err(|e| match e {
            Error::Gate(_) | Error::UserNotLoggedIn => e,
            e => Error::envelope(format!(
                "neither a CMS envelope nor data encrypted directly to this token's                  device key (RSA-OAEP-SHA256): {e}"
            )),
        })
    }
}

impl Token {
    /// Restores an object exactly as it was on another token (SPEC V11: "restore
    /// keeps every attribute"): a token object written as given, without template
    /// rules (`CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE`, `CKA_NEVER_EXTRACTABLE`, values
    /// all kept), except `CKA_UNIQUE_ID`, which the token assigns. The user must be
    /// logged in with a R/W session. Used only after the backup bundle's signature
    /// and the user's confirmation were checked.
    pub fn restore_object(&self, sid: &SessionRef, mut attrs: Attributes) -> Result<u64> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        match attrs.class() {
            Some(
                CKO_DATA | CKO_CERTIFICATE | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY,
            ) => {}
            _ => {
                return Err(Error::TemplateInconsistent(
                    "not a restorable object".into(),
                ))
            }
        }
        if !attrs.bool_or(CKA_TOKEN, false) {
            return Err(Error::TemplateInconsistent(
                "only token objects are restored".into(),
            ));
        }
        attrs.remove(CKA_UNIQUE_ID);
        self.store_object(sid, attrs)
    }
}
