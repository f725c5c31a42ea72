//! Triple DES (three-key, `CKK_DES3`): key generation and ECB, CBC and CBC-PAD over
//! the block-mode engine of [`super::aes`].

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

const CIPHER_WRAP: Ops = Ops {
    encrypt: Some(encrypt_init),
    decrypt: Some(decrypt_init),
    wrap: Some(wrap),
    unwrap: Some(unwrap),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_DES3_KEY_GEN,
        BYTES,
        CKF_GENERATE,
        Ops {
            generate: Some(generate),
            ..Ops::NONE
        },
    ),
    MechEntry::new(CKM_DES3_ECB, BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_DES3_CBC, BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_DES3_CBC_PAD, BYTES, ED | WU, CIPHER_WRAP),
];

/// Sets odd parity on every byte (DES keys).
fn set_des_parity(key: &mut [u8]) {
    for b in key {
        let high7 = *b & 0xfe;
        *b = high7 | ((high7.count_ones() as u8 + 1) & 1);
    }
}

/// `CKM_DES3_KEY_GEN`: 24 random bytes with odd parity (no `CKA_VALUE_LEN`).
fn generate(_mech: &Mechanism, template: &Attributes) -> Result<Attributes> {
    check_template_type(template, CKO_SECRET_KEY, &[CKK_DES3])?;
    if let Some(l) = template.get_ulong(CKA_VALUE_LEN)? {
        if l != 24 {
            return Err(Error::TemplateInconsistent("DES3 keys are 24 bytes".into()));
        }
    }
    let mut value = random_secret(24)?;
    set_des_parity(&mut value);
    Ok(secret_key_attributes(CKK_DES3, &value, false))
}

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let blk = Blk::des3(secret_of(key, &[CKK_DES3])?)?;
    block_op(
        mech,
        blk,
        encrypt,
        mech.ty != CKM_DES3_ECB,
        mech.ty == CKM_DES3_CBC_PAD,
    )
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
    if mech.ty != CKM_DES3_CBC_PAD && (!multiple_of(data.len(), 8) || data.is_empty()) {
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
