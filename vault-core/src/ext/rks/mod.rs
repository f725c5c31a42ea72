//! Remote key download, token side (seed CN103714642A, SPEC K1–K5).
//!
//! **Device.** DIK2, the diversification factor and the root public key
//! RKS_RCRT_PK live outside the PKCS#11 object space, as the device identity key
//! does ([`super::identity`]): in the token header's extension map, sealed with
//! AES-256-GCM under a key derived from the master key (so only a logged-in user
//! can use them, and a file edited by someone else fails its check rather than
//! swapping the root). No PKCS#11 call can find, read, copy, use or delete them.
//! Downloaded terminal master keys become `CKO_SECRET_KEY` objects: sensitive,
//! never extractable, with the usage the server sent, the label and CKA_ID from
//! the server, and [`CKA_VTOKEN_RKS_UID`] so a key delivered twice is stored once.
//!
//! **Station** (the "local key mother POS", K2). DIK1 records arrive sealed to the
//! station token's device certificate (a V8 envelope) and are opened inside the
//! token ([`Token::open_sealed`]), then kept sealed in the header like the device
//! secrets; DIK2 is derived from them inside the station token (K3).

use serde::{Deserialize, Serialize};
use tracing::info;
use zeroize::{Zeroize, Zeroizing};

use crate::attr::Attributes;
use crate::error::{Error, Part, Result};
use crate::pkcs11::*;
use crate::session::SessionRef;
use crate::store::seal::{self, Key32};
use crate::store::MasterKeys;
use crate::token::{Token, UserType};

mod download;
mod inject;

pub use crate::vendor::CKA_VTOKEN_RKS_UID;
pub use inject::{Injected, INJECT_MAGIC};
pub use vtoken_rks::device::{Outcome, Received, Transport};
pub use vtoken_rks::tmk::{Tmk, TmkType};
pub use vtoken_rks::RksError;

/// Header extension of the device secrets.
const DEVICE_KEY: &str = "rks-device";
/// Header extension of the station's DIK1 records (by DSN or range).
const STATION_KEY: &str = "rks-station";
/// Header extension of the station's DIK1 batches (each with its member list):
/// apart from [`STATION_KEY`], so records written before batches existed keep
/// their shape and stay readable.
const STATION_BATCH_KEY: &str = "rks-station-batch";
const DEVICE_LABEL: &[u8] = b"vtoken rks device seal key";
const STATION_LABEL: &[u8] = b"vtoken rks station seal key";
/// Magic of a DIK1 export's plaintext (`vtoken-server rks dik1 export`), v1 (one
/// DSN or a range `FIRST..LAST`): `MAGIC ‖ u16 len DSN ‖ DSN ‖ DIK1(24)`.
pub const DIK1_EXPORT_MAGIC: &[u8] = b"vtoken rks dik1 v1\0";
/// v2 (a production batch): `MAGIC ‖ u16 len NAME ‖ NAME ‖ DIK1(24) ‖ u32 n ‖
/// n × 8-byte DSN` (the 16 hex digits as a big-endian u64).
pub const DIK1_EXPORT_MAGIC_V2: &[u8] = b"vtoken rks dik1 v2\0";
/// The most members a batch export may list (the header holds them all).
const MAX_BATCH: usize = 100_000;

/// What a provisioned device holds (SPEC K1).
#[derive(Serialize, Deserialize)]
struct DeviceRecord {
    dik2: [u8; 24],
    factor: Vec<u8>,
    root_spki: Vec<u8>,
}

impl Drop for DeviceRecord {
    fn drop(&mut self) {
        self.dik2.zeroize();
        self.factor.zeroize();
    }
}

/// The station's DIK1 records.
#[derive(Serialize, Deserialize, Default)]
struct StationRecord {
    dik1: Vec<(String, [u8; 24])>,
}

impl Drop for StationRecord {
    fn drop(&mut self) {
        for (_, k) in &mut self.dik1 {
            k.zeroize();
        }
    }
}

/// The environment variable of the download's test-only crash points
/// (`test-hooks` builds).
#[cfg(feature = "test-hooks")]
pub const EXIT_AT_ENV: &str = "VTOKEN_TEST_RKS_EXIT_AT";

/// A crash point for the download's client-killed tests (K5): in a build with the
/// cargo feature `test-hooks`, when `VTOKEN_TEST_RKS_EXIT_AT` names `step`, the
/// process ends at once (`std::process::exit(86)`: no destructor runs, no Error
/// frame reaches the server, as after a SIGKILL; what the token committed stays
/// committed). `vtoken rks download` names `factor` and `response` right before
/// those frames are sent, `stored` right before the first Ack (the key is
/// committed in the token, the server does not know it), and `ack` right after
/// the first Ack was answered (the server marked the key delivered). Inert (and
/// the variable's name absent) in every other build.
pub fn test_exit_point(step: &str) {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os(EXIT_AT_ENV).is_some_and(|v| v == step) {
        std::process::exit(86);
    }
    let _ = step;
}

/// The station's DIK1 batches: name, DIK1, member DSNs (as u64, sorted).
#[derive(Serialize, Deserialize, Default)]
struct StationBatches {
    batches: Vec<(String, [u8; 24], Vec<u64>)>,
}

impl Drop for StationBatches {
    fn drop(&mut self) {
        for (_, k, _) in &mut self.batches {
            k.zeroize();
        }
    }
}

/// A DSN of 16 hex digits as the u64 a batch lists it by.
fn dsn_u64(dsn: &str) -> Option<u64> {
    (dsn.len() == 16 && dsn.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(dsn, 16).ok())
        .flatten()
}

fn ad(what: &str, serial: &str) -> Vec<u8> {
    format!("vtoken rks {what} v1\0{serial}").into_bytes()
}

/// A header extension to write: (name, seal label, plaintext).
type SealedExt<'a> = (&'a str, &'a [u8], Zeroizing<Vec<u8>>);

/// postcard, in a zeroized buffer.
fn encode<T: Serialize>(v: &T) -> Result<Zeroizing<Vec<u8>>> {
    postcard::to_allocvec(v)
        .map(Zeroizing::new)
        .map_err(|e| Error::General(format!("rks record: {e}")))
}

fn key_of(keys: &MasterKeys, label: &[u8]) -> Key32 {
    keys.master.derive(label)
}

impl Token {
    fn rks_user_keys(&self) -> Result<std::sync::Arc<MasterKeys>> {
        self.rks_keys(UserType::User)
    }

    /// The master keys, when `who` is logged in.
    fn rks_keys(&self, who: UserType) -> Result<std::sync::Arc<MasterKeys>> {
        if self.logged_in() != Some(who) {
            return Err(Error::UserNotLoggedIn);
        }
        self.any_master_keys().ok_or(Error::UserNotLoggedIn)
    }

    fn rks_open<T: for<'de> Deserialize<'de>>(&self, ext: &str, label: &[u8]) -> Result<Option<T>> {
        let keys = self
            .any_master_keys()
            .filter(|_| self.logged_in().is_some())
            .ok_or(Error::UserNotLoggedIn)?;
        let sealed = {
            let mut st = self.store();
            st.header()?.ext.get(ext).cloned()
        };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = seal::open(&key_of(&keys, label), &ad(ext, self.serial()), &sealed)
            .ok_or_else(|| {
                Error::corrupt(Part::Identity, format!("{ext} fails its integrity check"))
            })?;
        postcard::from_bytes(&plain)
            .map(Some)
            .map_err(|e| Error::corrupt(Part::Identity, format!("{ext}: {e}")))
    }

    fn rks_write<T: Serialize>(&self, ext: &str, label: &[u8], v: &T) -> Result<()> {
        self.rks_write_all(&[(ext, label, encode(v)?)])
    }

    /// Seals each `(extension, seal label, plaintext)` and stores them all in one
    /// header write (one store transaction).
    fn rks_write_all(&self, items: &[SealedExt<'_>]) -> Result<()> {
        let keys = self
            .any_master_keys()
            .filter(|_| self.logged_in().is_some())
            .ok_or(Error::UserNotLoggedIn)?;
        let mut sealed = Vec::with_capacity(items.len());
        for (ext, label, plain) in items {
            sealed.push((
                ext.to_string(),
                seal::seal(&key_of(&keys, label), &ad(ext, self.serial()), plain)?,
            ));
        }
        let mut st = self.store();
        let mut h = st.header()?.clone();
        h.ext.extend(sealed);
        st.write_header(&h)
    }

    /// Device: whether it was provisioned for remote key download.
    pub fn rks_provisioned(&self) -> Result<bool> {
        let mut st = self.store();
        Ok(st.header()?.ext.contains_key(DEVICE_KEY))
    }

    /// Station: opens a DIK1 export sealed to this token inside it and keeps the
    /// record sealed (the user logged in). Returns what it serves: the DSN, the
    /// range `FIRST..LAST`, or `batch NAME (N DSNs)`.
    pub fn rks_station_load(&self, cms_der: &[u8]) -> Result<String> {
        self.rks_user_keys()?;
        let plain = self.open_sealed(cms_der)?;
        if let Some(rest) = plain.strip_prefix(DIK1_EXPORT_MAGIC_V2) {
            return self.rks_station_load_batch(rest);
        }
        let bad = || Error::envelope("not a DIK1 export of a remote key server".into());
        let rest = plain.strip_prefix(DIK1_EXPORT_MAGIC).ok_or_else(bad)?;
        if rest.len() < 2 {
            return Err(bad());
        }
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() != 2 + n + 24 {
            return Err(bad());
        }
        let dsn = String::from_utf8(rest[2..2 + n].to_vec()).map_err(|_| bad())?;
        let mut k = [0u8; 24];
        k.copy_from_slice(&rest[2 + n..]);
        let mut r: StationRecord = self
            .rks_open(STATION_KEY, STATION_LABEL)?
            .unwrap_or_default();
        r.dik1.retain(|(d, _)| d != &dsn);
        r.dik1.push((dsn.clone(), k));
        k.zeroize();
        self.rks_write(STATION_KEY, STATION_LABEL, &r)?;
        info!(serial = %self.serial(), %dsn, "DIK1 loaded into the station");
        Ok(dsn)
    }

    /// A v2 export: one batch's DIK1 and its member list. A batch of the same
    /// name is replaced; a member already in another batch here is refused (a
    /// device's batch must be unambiguous, as at the server).
    fn rks_station_load_batch(&self, rest: &[u8]) -> Result<String> {
        let bad = |why: &str| Error::envelope(format!("not a DIK1 batch export: {why}"));
        let take = |r: &mut &[u8], n: usize| -> Result<Vec<u8>> {
            if r.len() < n {
                return Err(bad("cut short"));
            }
            let (a, b) = r.split_at(n);
            *r = b;
            Ok(a.to_vec())
        };
        let mut r = rest;
        let n = take(&mut r, 2)?;
        let name = String::from_utf8(take(&mut r, u16::from_be_bytes([n[0], n[1]]) as usize)?)
            .map_err(|_| bad("name"))?;
        let mut k = Zeroizing::new([0u8; 24]);
        k.copy_from_slice(&take(&mut r, 24)?);
        let c = take(&mut r, 4)?;
        let count = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize;
        if count == 0 || count > MAX_BATCH || r.len() != count * 8 {
            return Err(bad("member list length"));
        }
        let mut members: Vec<u64> = r
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        members.sort_unstable();
        members.dedup();
        let mut b: StationBatches = self
            .rks_open(STATION_BATCH_KEY, STATION_LABEL)?
            .unwrap_or_default();
        b.batches.retain(|(n, _, _)| n != &name);
        for (other, _, m) in &b.batches {
            if let Some(d) = members.iter().find(|d| m.binary_search(d).is_ok()) {
                return Err(Error::ArgumentsBad(format!(
                    "DSN {d:016X} of batch {name} is already in batch {other} at this station"
                )));
            }
        }
        let what = format!("batch {name} ({} DSNs)", members.len());
        b.batches.push((name, *k, members));
        self.rks_write(STATION_BATCH_KEY, STATION_LABEL, &b)?;
        info!(serial = %self.serial(), %what, "DIK1 loaded into the station");
        Ok(what)
    }

    /// Station (K2, K3): DIK2 for a device, derived inside this token from the DIK1
    /// it holds for `dsn` (the user logged in).
    fn rks_station_derive(&self, dsn: &str, factor: &[u8]) -> Result<Zeroizing<[u8; 24]>> {
        let dsn = dsn.to_ascii_uppercase();
        let r: StationRecord = self
            .rks_open(STATION_KEY, STATION_LABEL)?
            .unwrap_or_default();
        // The device's own record first, then a range FIRST..LAST that holds it
        // (16 upper-case hex digits each: text order is numeric order).
        let in_range = |sel: &str| {
            sel.split_once("..").is_some_and(|(f, l)| {
                dsn.len() == 16
                    && f.len() == 16
                    && l.len() == 16
                    && f <= dsn.as_str()
                    && dsn.as_str() <= l
            })
        };
        // S306–S307's order, as at the server: the DSN's own record, then the
        // batch that lists it, then the range that holds it.
        let b: StationBatches = self
            .rks_open(STATION_BATCH_KEY, STATION_LABEL)?
            .unwrap_or_default();
        let in_batch = || {
            let d = dsn_u64(&dsn)?;
            b.batches
                .iter()
                .find(|(_, _, m)| m.binary_search(&d).is_ok())
                .map(|(_, k, _)| k)
        };
        let k = r
            .dik1
            .iter()
            .find(|(d, _)| d == &dsn)
            .map(|(_, k)| k)
            .or_else(in_batch)
            .or_else(|| r.dik1.iter().find(|(d, _)| in_range(d)).map(|(_, k)| k))
            .ok_or_else(|| {
                Error::ArgumentsBad(format!(
                    "this station holds no DIK1 for {dsn} (load it with `vtoken rks station-load`)"
                ))
            })?;
        vtoken_rks::derive_dik2(k, &dsn, factor).map_err(|e| Error::General(e.to_string()))
    }

    /// Device: whether a downloaded key with this server uid is stored.
    fn rks_holds(&self, uid: &[u8; 16]) -> Result<bool> {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set(CKA_VTOKEN_RKS_UID, uid.to_vec());
        Ok(!self.search(&t)?.is_empty())
    }

    /// Device (S320): stores a downloaded key as a sensitive, non-extractable
    /// `CKO_SECRET_KEY` token object (one store transaction), usable only as the
    /// server's usage bits allow. Returns its handle.
    fn rks_store_key(&self, sid: &SessionRef, k: &Tmk) -> Result<u64> {
        self.rks_user_keys()?;
        use vtoken_rks::tmk::{USE_DECRYPT, USE_ENCRYPT, USE_UNWRAP, USE_WRAP};
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_ulong(
            CKA_KEY_TYPE,
            match k.ty {
                TmkType::Des3 => CKK_DES3,
                TmkType::Aes256 => CKK_AES,
            },
        );
        t.set_bool(CKA_TOKEN, true);
        t.set_bool(CKA_PRIVATE, true);
        t.set_bool(CKA_SENSITIVE, true);
        t.set_bool(CKA_EXTRACTABLE, false);
        t.set_bool(CKA_ENCRYPT, k.usage & USE_ENCRYPT != 0);
        t.set_bool(CKA_DECRYPT, k.usage & USE_DECRYPT != 0);
        t.set_bool(CKA_WRAP, k.usage & USE_WRAP != 0);
        t.set_bool(CKA_UNWRAP, k.usage & USE_UNWRAP != 0);
        t.set_bool(CKA_SIGN, false);
        t.set_bool(CKA_VERIFY, false);
        t.set_bool(CKA_DERIVE, false);
        t.set(CKA_LABEL, k.label.as_bytes().to_vec());
        t.set(CKA_ID, k.id.clone());
        t.set(CKA_VALUE, k.value.to_vec());
        let mut attrs =
            crate::object::build(&t, crate::object::Origin::Create, &Attributes::new())?;
        // Received, not made here: never extractable since it arrived, and set
        // sensitive by the token (so "always sensitive" in this token's life).
        attrs.set_bool(CKA_ALWAYS_SENSITIVE, true);
        attrs.set_bool(CKA_NEVER_EXTRACTABLE, true);
        attrs.set(CKA_VTOKEN_RKS_UID, k.uid.to_vec());
        let id = self.store_object(sid, attrs)?;
        info!(serial = %self.serial(), label = %k.label, "remote key stored");
        Ok(id)
    }
}
