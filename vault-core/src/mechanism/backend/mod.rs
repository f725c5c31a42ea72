//! The asymmetric backend seam (DESIGN.md: "Plan the seam from the first line of
//! crypto code").
//!
//! Every RSA, ECDSA and ECDH operation of the token goes through the four traits
//! below. The rest of [`crate::mechanism`] only sees the concrete types re-exported
//! at the bottom of this file ([`RsaPrivateKey`], [`RsaPublicKey`], [`EcPrivateKey`],
//! [`EcPublicKey`]), so adding another implementation (aws-lc-rs behind a cargo
//! feature `aws-lc`) means one new file `backend/awslc.rs` implementing these traits
//! and one `cfg` on the `mod`/`pub use` lines at the end of this file.
//!
//! Contract shared by all implementations:
//! - inputs and outputs are big-endian byte strings; signatures have the fixed
//!   PKCS#11 form (RSA: modulus length; ECDSA: `r || s`, each the field length);
//! - private-key RSA operations are blinded (RUSTSEC-2023-0071);
//! - errors use the PKCS#11 meaning of [`Error`](crate::error::Error):
//!   input too long → `DataLenRange`, bad signature → `SignatureInvalid`,
//!   wrong signature length → `SignatureLenRange`, failed decryption →
//!   `EncryptedDataInvalid`, wrong ciphertext length → `EncryptedDataLenRange`,
//!   unusable key material → `AttributeValueInvalid(CKA_…)` or `KeySizeRange`.
//!
//! Key *encodings* (PKCS#8, SPKI, X.509 in [`super::encoding`]) are format code, not
//! cryptography, and use the RustCrypto DER crates whichever backend is active.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::HashAlg;
use crate::error::Result;

/// The named curves the token supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (secp256r1, prime256v1), OID 1.2.840.10045.3.1.7.
    P256,
    /// NIST P-384 (secp384r1), OID 1.3.132.0.34.
    P384,
    /// NIST P-521 (secp521r1), OID 1.3.132.0.35. Its order has 521 bits, not a
    /// whole number of bytes: see [`Curve::order_bits`].
    P521,
}

/// DER of OID 1.2.840.10045.3.1.7.
const P256_OID_DER: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of OID 1.3.132.0.34.
const P384_OID_DER: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER of OID 1.3.132.0.35.
const P521_OID_DER: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

impl Curve {
    /// Length in bytes of a field element (and of the group order).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// Bit length of the group order (what `CKM_EC_KEY_PAIR_GEN` info reports, and
    /// how many leftmost bits of a hash ECDSA uses, FIPS 186-5 §6.4.1).
    pub fn order_bits(self) -> usize {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }

    /// Size in bits (what `CKM_EC_KEY_PAIR_GEN` info reports).
    pub fn bits(self) -> usize {
        self.order_bits()
    }

    /// The FIPS 186-5 integer of `hash` for ECDSA as a field-length big-endian
    /// byte string: the leftmost [`Curve::order_bits`] bits of the hash when it is
    /// longer, the whole hash left-padded with zeros when not. For P-256/P-384 the
    /// truncation falls on a byte boundary; for P-521 (66-byte field, 521-bit
    /// order) a hash of 66 or more bytes is shifted right by 7 bits.
    pub fn hash_to_field(self, hash: &[u8]) -> Vec<u8> {
        let fl = self.field_len();
        let nbits = self.order_bits();
        if hash.len() * 8 <= nbits {
            let mut out = vec![0u8; fl - hash.len()];
            out.extend_from_slice(hash);
            return out;
        }
        let mut out = hash[..fl].to_vec();
        let shift = fl * 8 - nbits;
        if shift > 0 {
            for i in (0..fl).rev() {
                let hi = if i > 0 { out[i - 1] << (8 - shift) } else { 0 };
                out[i] = (out[i] >> shift) | hi;
            }
        }
        out
    }

    /// `CKA_EC_PARAMS` value: the DER-encoded curve OID.
    pub fn ec_params(self) -> &'static [u8] {
        match self {
            Curve::P256 => P256_OID_DER,
            Curve::P384 => P384_OID_DER,
            Curve::P521 => P521_OID_DER,
        }
    }

    /// The curve named by a `CKA_EC_PARAMS` value: a DER OBJECT IDENTIFIER, or a
    /// DER PrintableString holding a curve name (PKCS#11 3.0 §2.3.3).
    pub fn from_ec_params(params: &[u8]) -> Option<Curve> {
        if params == P256_OID_DER {
            return Some(Curve::P256);
        }
        if params == P384_OID_DER {
            return Some(Curve::P384);
        }
        if params == P521_OID_DER {
            return Some(Curve::P521);
        }
        // PrintableString (0x13) or UTF8String (0x0c), short form length.
        if let [0x13 | 0x0c, len, name @ ..] = params {
            if *len as usize == name.len() {
                let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
                return match name.as_str() {
                    "prime256v1" | "secp256r1" | "p-256" | "nistp256" => Some(Curve::P256),
                    "secp384r1" | "prime384v1" | "p-384" | "nistp384" => Some(Curve::P384),
                    "secp521r1" | "p-521" | "nistp521" => Some(Curve::P521),
                    _ => None,
                };
            }
        }
        None
    }
}

/// RSA key components as big-endian unsigned integers without leading zeros
/// (the PKCS#11 attribute encoding). Zeroized on drop.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct RsaComponents {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Vec<u8>,
    pub p: Vec<u8>,
    pub q: Vec<u8>,
    /// d mod (p-1)
    pub dp: Vec<u8>,
    /// d mod (q-1)
    pub dq: Vec<u8>,
    /// q^-1 mod p
    pub qinv: Vec<u8>,
}

/// The smallest and largest RSA modulus (bits) the token accepts.
pub const RSA_MIN_BITS: usize = 1024;
/// See [`RSA_MIN_BITS`].
pub const RSA_MAX_BITS: usize = 4096;

/// An RSA private key ready for use.
pub trait RsaPrivateOps: Sized + Send + Sync {
    /// The matching public key type.
    type Public: RsaPublicOps;

    /// Builds a key from `n`, `e`, `d` and optionally `(p, q)` (recovered from
    /// `n, e, d` when absent).
    fn from_components(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        primes: Option<(&[u8], &[u8])>,
    ) -> Result<Self>;
    /// Generates a fresh key pair of `bits` with public exponent `e`.
    fn generate(bits: usize, e: &[u8]) -> Result<RsaComponents>;
    /// All components (for encodings).
    fn components(&self) -> RsaComponents;
    /// The public half.
    fn public(&self) -> Self::Public;
    /// Modulus length in bytes (signature / ciphertext length).
    fn modulus_len(&self) -> usize;
    /// PKCS#1 v1.5 type-1 padded signature over `msg` (a DigestInfo or any data
    /// up to `k - 11` bytes).
    fn sign_pkcs1(&self, msg: &[u8]) -> Result<Vec<u8>>;
    /// RSASSA-PSS over the hash `mhash` with the given hash, MGF1 hash and salt length.
    fn sign_pss(
        &self,
        mhash: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
    ) -> Result<Vec<u8>>;
    /// RSAES-PKCS1-v1_5 decryption.
    fn decrypt_pkcs1(&self, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// RSAES-OAEP decryption.
    fn decrypt_oaep(
        &self,
        ct: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>>;
    /// Raw `input^d mod n` (input at most `k` bytes and below `n`, else
    /// `DataLenRange`); output is `k` bytes.
    fn raw(&self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// An RSA public key ready for use.
pub trait RsaPublicOps: Sized + Send + Sync {
    /// Builds a key from modulus and public exponent.
    fn new(n: &[u8], e: &[u8]) -> Result<Self>;
    /// Modulus length in bytes.
    fn modulus_len(&self) -> usize;
    /// Verifies a PKCS#1 v1.5 signature over `msg` (DigestInfo or raw data).
    fn verify_pkcs1(&self, msg: &[u8], sig: &[u8]) -> Result<()>;
    /// Verifies an RSASSA-PSS signature over the hash `mhash`.
    fn verify_pss(
        &self,
        mhash: &[u8],
        sig: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
    ) -> Result<()>;
    /// RSAES-PKCS1-v1_5 encryption.
    fn encrypt_pkcs1(&self, msg: &[u8]) -> Result<Vec<u8>>;
    /// RSAES-OAEP encryption.
    fn encrypt_oaep(
        &self,
        msg: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
    ) -> Result<Vec<u8>>;
    /// Raw `input^e mod n` (input at most `k` bytes and below `n`, else
    /// `DataLenRange`); output is `k` bytes.
    fn raw(&self, input: &[u8]) -> Result<Vec<u8>>;
}

/// An EC private key (P-256, P-384 or P-521).
pub trait EcPrivateOps: Sized + Send + Sync {
    /// The matching public key type.
    type Public: EcPublicOps;

    /// From a big-endian scalar (shorter inputs are left-padded).
    fn from_scalar(curve: Curve, scalar: &[u8]) -> Result<Self>;
    /// A fresh random key.
    fn generate(curve: Curve) -> Result<Self>;
    /// The curve.
    fn curve(&self) -> Curve;
    /// The scalar, big-endian, field length.
    fn scalar(&self) -> Zeroizing<Vec<u8>>;
    /// The public half.
    fn public(&self) -> Self::Public;
    /// ECDSA over a hash of any length (FIPS 186-4 §6.4: longer inputs are truncated
    /// to the order's bit length, shorter ones read as a smaller integer); `r || s`.
    fn sign_prehash(&self, hash: &[u8]) -> Result<Vec<u8>>;
    /// ECDH: the x-coordinate of `d·Q` for the peer's SEC1 point `peer`.
    fn ecdh(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// An EC public key (P-256, P-384 or P-521).
pub trait EcPublicOps: Sized + Send + Sync {
    /// From a SEC1 point (uncompressed or compressed).
    fn from_point(curve: Curve, point: &[u8]) -> Result<Self>;
    /// The curve.
    fn curve(&self) -> Curve;
    /// The uncompressed SEC1 point `04 || X || Y`.
    fn point(&self) -> Vec<u8>;
    /// Verifies an `r || s` ECDSA signature over a hash (same rule as
    /// [`EcPrivateOps::sign_prehash`]).
    fn verify_prehash(&self, hash: &[u8], sig: &[u8]) -> Result<()>;
}

// The one place that chooses the backend. RustCrypto is always compiled: the
// `aws-lc` backend falls back to it for the RSA combinations aws-lc-rs lacks
// (see `backend/awslc.rs`).
#[cfg_attr(feature = "aws-lc", allow(dead_code))]
mod rustcrypto;
#[cfg(not(feature = "aws-lc"))]
pub use rustcrypto::{EcPrivateKey, EcPublicKey, RsaPrivateKey, RsaPublicKey};

#[cfg(feature = "aws-lc")]
mod awslc;
#[cfg(feature = "aws-lc")]
pub use awslc::{EcPrivateKey, EcPublicKey, RsaPrivateKey, RsaPublicKey};

/// Whether legacy mechanisms (single DES) are offered: `[policy]
/// legacy_mechanisms`, applied when a token opens.
static LEGACY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Applies `[policy] legacy_mechanisms`.
pub fn set_legacy_mechanisms(on: bool) {
    LEGACY.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether legacy mechanisms are offered (see [`set_legacy_mechanisms`]).
pub fn legacy_mechanisms_allowed() -> bool {
    #[cfg(test)]
    if let Some(on) = TEST_LEGACY.get() {
        return on;
    }
    LEGACY.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
thread_local! {
    pub(crate) static TEST_LEGACY: std::cell::Cell<Option<bool>> =
        const { std::cell::Cell::new(None) };
}

/// Whether RSAES-PKCS1-v1_5 decryption and unwrap (`CKM_RSA_PKCS`) are on. The
/// pure-Rust `rsa` crate's private-key operation is not constant-time (the Marvin
/// attack, RUSTSEC-2023-0071: a padding oracle's timing recovers plaintexts), so in
/// a build without `aws-lc` they are off unless `[policy] rsa_pkcs1_decrypt = true`.
/// With `aws-lc` they are always on.
static RSA_PKCS1_DECRYPT: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(cfg!(feature = "aws-lc"));

/// Applies `[policy] rsa_pkcs1_decrypt` (ignored with `aws-lc`: always on there).
pub fn set_rsa_pkcs1_decrypt(on: bool) {
    RSA_PKCS1_DECRYPT.store(
        on || cfg!(feature = "aws-lc"),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Whether `CKM_RSA_PKCS` decryption and unwrap are on (see [`set_rsa_pkcs1_decrypt`]).
pub fn rsa_pkcs1_decrypt_allowed() -> bool {
    #[cfg(test)]
    if let Some(on) = TEST_RSA_PKCS1_DECRYPT.get() {
        return on;
    }
    RSA_PKCS1_DECRYPT.load(std::sync::atomic::Ordering::Relaxed)
}

// Unit tests run in parallel threads and any of them may open a token (which applies
// its policy to the process-wide flag), so a test that needs a given setting pins it
// for its own thread only.
#[cfg(test)]
thread_local! {
    pub(crate) static TEST_RSA_PKCS1_DECRYPT: std::cell::Cell<Option<bool>> =
        const { std::cell::Cell::new(None) };
}

/// `Ok` when `CKM_RSA_PKCS` decryption (or unwrap) may run; else
/// `MechanismInvalid`, logged with how to turn it on.
pub fn check_rsa_pkcs1_decrypt() -> Result<()> {
    if rsa_pkcs1_decrypt_allowed() {
        return Ok(());
    }
    tracing::warn!(
        "CKM_RSA_PKCS decryption/unwrap refused: this pure-Rust build's RSA is not \
         constant-time (Marvin attack, RUSTSEC-2023-0071); use the aws-lc build, or set \
         `[policy] rsa_pkcs1_decrypt = true` in the configuration to accept the risk"
    );
    Err(crate::error::Error::MechanismInvalid(
        cryptoki_sys::CKM_RSA_PKCS,
    ))
}

/// Name of the active asymmetric backend (for diagnostics and benchmarks).
pub const BACKEND: &str = if cfg!(feature = "aws-lc") {
    "aws-lc-rs"
} else {
    "rustcrypto"
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_params() {
        assert_eq!(Curve::from_ec_params(P256_OID_DER), Some(Curve::P256));
        assert_eq!(Curve::from_ec_params(P384_OID_DER), Some(Curve::P384));
        assert_eq!(
            Curve::from_ec_params(b"\x13\x0aprime256v1"),
            Some(Curve::P256)
        );
        assert_eq!(
            Curve::from_ec_params(b"\x13\x09secp384r1"),
            Some(Curve::P384)
        );
        assert_eq!(Curve::from_ec_params(P521_OID_DER), Some(Curve::P521));
        assert_eq!(
            Curve::from_ec_params(b"\x13\x09secp521r1"),
            Some(Curve::P521)
        );
        // secp256k1 (1.3.132.0.10) is not supported.
        assert_eq!(
            Curve::from_ec_params(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]),
            None
        );
        assert_eq!(Curve::from_ec_params(b""), None);
    }

    #[test]
    fn hash_to_field_takes_the_leftmost_order_bits() {
        // Shorter than the order: the whole hash, left-padded.
        let z = Curve::P521.hash_to_field(&[0xff; 64]);
        assert_eq!(z.len(), 66);
        assert_eq!(&z[..2], &[0, 0]);
        assert_eq!(&z[2..], &[0xff; 64][..]);
        // 66 bytes (528 bits): the leftmost 521 bits, i.e. shifted right by 7.
        let mut h = vec![0u8; 66];
        h[0] = 0x80;
        h[65] = 0x7f; // falls off
        let z = Curve::P521.hash_to_field(&h);
        assert_eq!(z[0], 0x01);
        assert!(z[1..].iter().all(|&b| b == 0));
        let h: Vec<u8> = (0..70u8).collect();
        let z = Curve::P521.hash_to_field(&h);
        // Big-integer check: z == int(h[..66]) >> 7.
        let want = rsa::BigUint::from_bytes_be(&h[..66]) >> 7usize;
        assert_eq!(rsa::BigUint::from_bytes_be(&z), want);
        // P-256/P-384: byte truncation, as the byte boundary is the bit boundary.
        assert_eq!(Curve::P256.hash_to_field(&h), h[..32].to_vec());
        assert_eq!(Curve::P384.hash_to_field(&h[..20])[28..], h[..20]);
    }
}
