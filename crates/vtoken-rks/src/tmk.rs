//! A terminal master key as it travels (S319, inside AES-256-GCM under TK).
//!
//! ```text
//! uid(16) ‖ type(1: 1 = DES3-24, 2 = AES-256) ‖ usage(1: bits ENCRYPT 1, DECRYPT 2,
//! WRAP 4, UNWRAP 8) ‖ u16-len label ‖ u16-len id ‖ u16-len value
//! ```
//! `uid` is the server's identity of the queued key: the device stores it with the
//! key, so a key delivered again (its acknowledgement was lost) is recognised and
//! not stored twice.

use zeroize::Zeroizing;

use crate::frame::{put_field, Fields};
use crate::{Result, RksError};

/// Usage bit: CKA_ENCRYPT.
pub const USE_ENCRYPT: u8 = 1;
/// Usage bit: CKA_DECRYPT.
pub const USE_DECRYPT: u8 = 2;
/// Usage bit: CKA_WRAP.
pub const USE_WRAP: u8 = 4;
/// Usage bit: CKA_UNWRAP.
pub const USE_UNWRAP: u8 = 8;
/// Every usage bit.
pub const USE_ALL: u8 = 15;

/// The key types the RKS delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmkType {
    /// Three-key TDES, 24 bytes.
    Des3,
    /// AES-256, 32 bytes.
    Aes256,
}

impl TmkType {
    /// The value length.
    pub fn value_len(self) -> usize {
        match self {
            TmkType::Des3 => 24,
            TmkType::Aes256 => 32,
        }
    }

    /// The name on the command line and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TmkType::Des3 => "des3",
            TmkType::Aes256 => "aes256",
        }
    }

    /// Parses [`TmkType::as_str`].
    pub fn parse(s: &str) -> Result<TmkType> {
        match s {
            "des3" => Ok(TmkType::Des3),
            "aes256" => Ok(TmkType::Aes256),
            _ => Err(RksError::Local(format!(
                "unknown key type {s:?} (des3 or aes256)"
            ))),
        }
    }

    fn code(self) -> u8 {
        match self {
            TmkType::Des3 => 1,
            TmkType::Aes256 => 2,
        }
    }
}

/// One key to deliver.
pub struct Tmk {
    /// The server's identity of this queued key.
    pub uid: [u8; 16],
    /// Its type.
    pub ty: TmkType,
    /// Usage bits (`USE_*`): the policy the device applies.
    pub usage: u8,
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// The key value.
    pub value: Zeroizing<Vec<u8>>,
}

impl Tmk {
    /// The plaintext of a Key message.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64 + self.value.len()));
        out.extend_from_slice(&self.uid);
        out.push(self.ty.code());
        out.push(self.usage);
        put_field(&mut out, self.label.as_bytes());
        put_field(&mut out, &self.id);
        put_field(&mut out, &self.value);
        out
    }

    /// Parses [`Tmk::encode`], checking the value length against the type.
    pub fn decode(b: &[u8]) -> Result<Tmk> {
        let mut f = Fields::new(b);
        let uid: [u8; 16] = f.raw(16)?.try_into().expect("16 bytes");
        let ty = match f.u8()? {
            1 => TmkType::Des3,
            2 => TmkType::Aes256,
            t => return Err(RksError::BadMessage(format!("unknown key type {t}"))),
        };
        let usage = f.u8()?;
        if usage & !USE_ALL != 0 || usage == 0 {
            return Err(RksError::BadMessage(format!("bad usage bits {usage:#x}")));
        }
        let label = String::from_utf8(f.field()?.to_vec())
            .map_err(|_| RksError::BadMessage("the label is not UTF-8".into()))?;
        let id = f.field()?.to_vec();
        let value = Zeroizing::new(f.field()?.to_vec());
        f.end()?;
        if value.len() != ty.value_len() {
            return Err(RksError::BadMessage(format!(
                "a {} key has {} bytes, not {}",
                ty.as_str(),
                ty.value_len(),
                value.len()
            )));
        }
        Ok(Tmk {
            uid,
            ty,
            usage,
            label,
            id,
            value,
        })
    }
}
