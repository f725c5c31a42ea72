//! DES: triple DES (three-key, `CKK_DES3`) and, as a legacy mechanism under
//! `[policy] legacy_mechanisms`, single DES (`CKK_DES`): key generation and ECB,
//! CBC and CBC-PAD over the block-mode engine of [`super::aes`].

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::aes::{block_op, Blk};
use super::keys::{check_template_type, secret_key_attributes, secret_of};
use super::table::{unwrap_with, wrap_with, MechEntry, Ops, ED, WU};
use super::{multiple_of, random_secret, CipherOp, Key, Mechanism};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// DES3 key size in bytes.
const BYTES: (u64, u64) = (24, 24);
/// Single DES key size in bytes.
const DES_BYTES: (u64, u64) = (8, 8);

const CIPHER_WRAP: Ops = Ops {
    encrypt: Some(encrypt_init),
    decrypt: Some(decrypt_init),
    wrap: Some(wrap),
    unwrap: Some(unwrap),
    ..Ops::NONE
};

const GENERATE: Ops = Ops {
    generate: Some(generate),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(CKM_DES3_KEY_GEN, BYTES, CKF_GENERATE, GENERATE),
    MechEntry::new(CKM_DES3_ECB, BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_DES3_CBC, BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_DES3_CBC_PAD, BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_DES_KEY_GEN, DES_BYTES, CKF_GENERATE, GENERATE).legacy(),
    MechEntry::new(CKM_DES_ECB, DES_BYTES, ED | WU, CIPHER_WRAP).legacy(),
    MechEntry::new(CKM_DES_CBC, DES_BYTES, ED | WU, CIPHER_WRAP).legacy(),
    MechEntry::new(CKM_DES_CBC_PAD, DES_BYTES, ED | WU, CIPHER_WRAP).legacy(),
];

/// The key type, key length, ECB and padded mechanisms of a DES mechanism.
struct Variant {
    key_type: CK_KEY_TYPE,
    len: usize,
    ecb: CK_MECHANISM_TYPE,
    cbc_pad: CK_MECHANISM_TYPE,
}

fn variant(ty: CK_MECHANISM_TYPE) -> Variant {
    match ty {
        CKM_DES_KEY_GEN | CKM_DES_ECB | CKM_DES_CBC | CKM_DES_CBC_PAD => Variant {
            key_type: CKK_DES,
            len: 8,
            ecb: CKM_DES_ECB,
            cbc_pad: CKM_DES_CBC_PAD,
        },
        _ => Variant {
            key_type: CKK_DES3,
            len: 24,
            ecb: CKM_DES3_ECB,
            cbc_pad: CKM_DES3_CBC_PAD,
        },
    }
}

/// Sets odd parity on every byte (DES keys).
fn set_des_parity(key: &mut [u8]) {
    for b in key {
        let high7 = *b & 0xfe;
        *b = high7 | ((high7.count_ones() as u8 + 1) & 1);
    }
}

/// `CKM_DES3_KEY_GEN` / `CKM_DES_KEY_GEN`: 24 or 8 random bytes with odd parity
/// (`CKA_VALUE_LEN`, if given, must say so).
fn generate(mech: &Mechanism, template: &Attributes) -> Result<Attributes> {
    let v = variant(mech.ty);
    check_template_type(template, CKO_SECRET_KEY, &[v.key_type])?;
    if let Some(l) = template.get_ulong(CKA_VALUE_LEN)? {
        if l as usize != v.len {
            return Err(Error::TemplateInconsistent(format!(
                "{} keys are {} bytes",
                if v.len == 8 { "DES" } else { "DES3" },
                v.len
            )));
        }
    }
    let mut value = random_secret(v.len)?;
    set_des_parity(&mut value);
    Ok(secret_key_attributes(v.key_type, &value, false))
}

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let v = variant(mech.ty);
    let value = secret_of(key, &[v.key_type])?;
    let blk = if v.key_type == CKK_DES {
        Blk::des(value)?
    } else {
        Blk::des3(value)?
    };
    block_op(mech, blk, encrypt, mech.ty != v.ecb, mech.ty == v.cbc_pad)
}

fn encrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, true)
}

fn decrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, false)
}

/// Without padding the wrapped key must be a non-empty multiple of the block.
fn wrap(
    mech: &Mechanism,
    key: &Key,
    _class: Option<CK_OBJECT_CLASS>,
    data: &[u8],
) -> Result<Vec<u8>> {
    if mech.ty != variant(mech.ty).cbc_pad && (!multiple_of(data.len(), 8) || data.is_empty()) {
        return Err(Error::KeySizeRange);
    }
    wrap_with(encrypt_init(mech, key), data)
}

fn unwrap(mech: &Mechanism, key: &Key, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    unwrap_with(decrypt_init(mech, key), wrapped)
}

#[cfg(test)]
#[path = "tests/des3.rs"]
mod tests;
