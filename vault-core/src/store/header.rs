//! The token header (SPEC T1, T2): token-wide state (serial, label, PIN policy, the
//! master key wrapped under each PIN, the PIN flags) sealed under the public-record
//! key, and the encoding of that key in the file.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::seal::{self, Key32, WrappedKey};
use super::Store;
use crate::config::PinPolicy;
use crate::error::{Error, Part, Result};

/// Token-wide state, sealed under the public-record key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// 16 hex digits, unique per token.
    pub serial: String,
    /// Token label (at most 32 bytes).
    pub label: String,
    /// Unix time of initialization.
    pub created: u64,
    /// PIN policy fixed at initialization.
    pub pin_policy: PinPolicy,
    /// Master key under the SO PIN.
    pub so: WrappedKey,
    /// Master key under the user PIN, once `C_InitPIN` has run.
    pub user: Option<WrappedKey>,
    /// `CKF_USER_PIN_TO_BE_CHANGED`.
    pub user_pin_to_be_changed: bool,
    /// `CKF_SO_PIN_TO_BE_CHANGED`.
    pub so_pin_to_be_changed: bool,
    /// Room for later features (vault, gate) without a format bump.
    pub ext: std::collections::BTreeMap<String, Vec<u8>>,
}

/// Associated data binding a wrapped master key to its token and role.
pub fn wrap_ad(serial: &str, role: &str) -> Vec<u8> {
    format!("vtoken-mk-v1\0{serial}\0{role}").into_bytes()
}

/// Associated data of the sealed header.
pub(super) const HEADER_AD: &[u8] = b"vtoken-header-v1";

/// The public-record key as stored in `meta`: its 32 bytes and the first 8 bytes of
/// their SHA-256, so a damaged key is reported as such.
pub(super) fn pubkey_encode(k: &Key32) -> Vec<u8> {
    let mut v = k.0.to_vec();
    v.extend_from_slice(&Sha256::digest(k.0)[..8]);
    v
}

pub(super) fn pubkey_decode(v: &[u8]) -> Result<Key32> {
    if v.len() != 40 || Sha256::digest(&v[..32])[..8] != v[32..] {
        return Err(Error::corrupt(Part::PublicRecordKey, "damaged"));
    }
    let mut k = [0u8; 32];
    k.copy_from_slice(&v[..32]);
    Ok(Key32(k))
}

impl Store {
    pub(super) fn decode_header(pub_key: &Key32, sealed: &[u8]) -> Result<Header> {
        let plain = seal::open(pub_key, HEADER_AD, sealed)
            .ok_or_else(|| Error::corrupt(Part::Header, "fails its integrity check"))?;
        postcard::from_bytes(&plain).map_err(|e| Error::corrupt(Part::Header, e.to_string()))
    }

    /// Replaces the header.
    pub fn write_header(&mut self, h: &Header) -> Result<()> {
        self.writable()?;
        let sealed = seal::seal(
            &self.pub_key,
            HEADER_AD,
            &postcard::to_allocvec(h).map_err(ser)?,
        )?;
        self.conn
            .execute("UPDATE meta SET v = ?1 WHERE k = 'header'", [sealed])?;
        self.header = h.clone();
        self.header_gen += 1;
        self.header_version = self.data_version()?;
        Ok(())
    }
}

/// A serialization failure of something the token wrote itself (a bug, not a bad file).
pub(super) fn ser(e: postcard::Error) -> Error {
    Error::General(format!("serialization: {e}"))
}
