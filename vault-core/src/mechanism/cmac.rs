//! AES-CMAC (`CKM_AES_CMAC`, NIST SP 800-38B) and `CKM_AES_CMAC_GENERAL`, whose
//! `CK_MAC_GENERAL_PARAMS` truncates the MAC to 1..=16 bytes.

use cmac::{Cmac, Mac};
use cryptoki_sys::*;

use super::aes::AES_BYTES;
use super::keys::secret_of;
use super::table::{MechEntry, Ops, SV};
use super::{param_err, Key, MechParam, Mechanism, SignOp, VerifyOp};
use crate::error::{Error, Result};

const SIGN: Ops = Ops {
    sign: Some(sign_init),
    verify: Some(verify_init),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(CKM_AES_CMAC, AES_BYTES, SV, SIGN),
    MechEntry::new(CKM_AES_CMAC_GENERAL, AES_BYTES, SV, SIGN),
];

enum State {
    Aes128(Cmac<aes::Aes128>),
    Aes192(Cmac<aes::Aes192>),
    Aes256(Cmac<aes::Aes256>),
}

struct CmacOp {
    state: Option<State>,
    len: usize,
}

fn start(mech: &Mechanism, key: &Key) -> Result<CmacOp> {
    let len = match (mech.ty, &mech.param) {
        (CKM_AES_CMAC, MechParam::None) => 16,
        (CKM_AES_CMAC_GENERAL, MechParam::Bytes(b)) if b.len() == size_of::<CK_ULONG>() => {
            let n = CK_ULONG::from_ne_bytes(b[..].try_into().expect("one CK_ULONG"));
            if !(1..=16).contains(&n) {
                return Err(param_err("the MAC length must be 1 to 16 bytes"));
            }
            n as usize
        }
        (CKM_AES_CMAC, _) => return Err(param_err("AES-CMAC takes no parameter")),
        _ => return Err(param_err("AES-CMAC-GENERAL needs CK_MAC_GENERAL_PARAMS")),
    };
    let k = secret_of(key, &[CKK_AES])?;
    let e = |_| Error::KeySizeRange;
    let state = match k.len() {
        16 => State::Aes128(Mac::new_from_slice(k).map_err(e)?),
        24 => State::Aes192(Mac::new_from_slice(k).map_err(e)?),
        32 => State::Aes256(Mac::new_from_slice(k).map_err(e)?),
        _ => return Err(Error::KeySizeRange),
    };
    Ok(CmacOp {
        state: Some(state),
        len,
    })
}

fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    Ok(Box::new(start(mech, key)?))
}

fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    Ok(Box::new(start(mech, key)?))
}

impl CmacOp {
    fn feed(&mut self, data: &[u8]) -> Result<()> {
        match self.state.as_mut().ok_or(Error::OperationNotInitialized)? {
            State::Aes128(m) => m.update(data),
            State::Aes192(m) => m.update(data),
            State::Aes256(m) => m.update(data),
        }
        Ok(())
    }

    fn mac(&mut self) -> Result<Vec<u8>> {
        let full = match self.state.take().ok_or(Error::OperationNotInitialized)? {
            State::Aes128(m) => m.finalize().into_bytes(),
            State::Aes192(m) => m.finalize().into_bytes(),
            State::Aes256(m) => m.finalize().into_bytes(),
        };
        Ok(full[..self.len].to_vec())
    }
}

impl SignOp for CmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        self.mac()
    }

    fn sig_len(&self) -> usize {
        self.len
    }
}

impl VerifyOp for CmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }

    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        super::check_mac(self.len, || self.mac(), signature)
    }
}

#[cfg(test)]
#[path = "tests/cmac.rs"]
mod tests;
