//! SPEC K3: DIK2 = one-way derivation of DIK1, the device serial (DSN) and the
//! diversification factor (patent: "DIK2 derivation").
//!
//! ```text
//! DATA1 = SHA-256(DSN)[0..24]
//! KEY1  = TDES-ECB-encrypt(key DIK1, DATA1)
//! DATA2 = SHA-256(factor)[0..24]
//! DIK2  = TDES-ECB-decrypt(key KEY1, DATA2)
//! ```
//! TDES is three-key DES-EDE (24-byte keys, `openssl enc -des-ede3`), no padding:
//! 24 bytes are exactly three blocks. DSN bytes are the ASCII of the token serial in
//! upper-case hex; the factor is raw bytes.

use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::TdesEde3;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Result, RksError};

/// Length of DIK1, KEY1 and DIK2 (three-key TDES).
pub const DIK_LEN: usize = 24;

/// TDES-ECB (three-key EDE) over whole 8-byte blocks, in place.
fn tdes_ecb(key: &[u8], data: &mut [u8], encrypt: bool) -> Result<()> {
    if !data.chunks_exact(8).remainder().is_empty() {
        return Err(RksError::BadMessage(format!(
            "TDES-ECB data of {} bytes is not a whole number of 8-byte blocks",
            data.len()
        )));
    }
    let c = TdesEde3::new_from_slice(key)
        .map_err(|_| RksError::Local("a TDES key has 24 bytes".into()))?;
    for b in data.chunks_exact_mut(8) {
        let b = cipher::generic_array::GenericArray::from_mut_slice(b);
        if encrypt {
            c.encrypt_block(b);
        } else {
            c.decrypt_block(b);
        }
    }
    Ok(())
}

/// TDES-ECB encryption, no padding (`data` a multiple of 8 bytes).
pub fn tdes_ecb_encrypt(key: &[u8; DIK_LEN], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(data.to_vec());
    tdes_ecb(key, &mut out, true)?;
    Ok(out)
}

/// TDES-ECB decryption, no padding (`data` a multiple of 8 bytes).
pub fn tdes_ecb_decrypt(key: &[u8; DIK_LEN], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(data.to_vec());
    tdes_ecb(key, &mut out, false)?;
    Ok(out)
}

fn first24(data: &[u8]) -> [u8; DIK_LEN] {
    let h = Sha256::digest(data);
    let mut out = [0u8; DIK_LEN];
    out.copy_from_slice(&h[..DIK_LEN]);
    out
}

/// The device serial as the derivation reads it: upper-case ASCII.
pub fn dsn_bytes(serial: &str) -> Vec<u8> {
    serial.trim().to_ascii_uppercase().into_bytes()
}

/// K3: DIK2 from DIK1, the DSN (token serial, upper-cased) and the factor.
pub fn derive_dik2(
    dik1: &[u8; DIK_LEN],
    dsn: &str,
    factor: &[u8],
) -> Result<Zeroizing<[u8; DIK_LEN]>> {
    let data1 = first24(&dsn_bytes(dsn));
    let key1 = tdes_ecb_encrypt(dik1, &data1)?;
    let key1: Zeroizing<[u8; DIK_LEN]> =
        Zeroizing::new(key1.as_slice().try_into().expect("24 bytes in, 24 out"));
    let data2 = first24(factor);
    let dik2 = tdes_ecb_decrypt(&key1, &data2)?;
    Ok(Zeroizing::new(
        dik2.as_slice().try_into().expect("24 bytes in, 24 out"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_is_upper_cased() {
        let k = [0x11u8; 24];
        let a = derive_dik2(&k, "00000000000000ab", b"f").unwrap();
        let b = derive_dik2(&k, "00000000000000AB", b"f").unwrap();
        assert_eq!(*a, *b);
        let c = derive_dik2(&k, "00000000000000AC", b"f").unwrap();
        assert_ne!(*a, *c);
    }

    #[test]
    fn partial_blocks_are_refused() {
        assert!(tdes_ecb_encrypt(&[1u8; 24], &[0u8; 7]).is_err());
    }
}
