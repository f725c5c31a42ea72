//! Mechanisms: every cryptographic operation the token performs (SPEC T4).
//!
//! This module is pure computation over key material; it knows nothing of sessions,
//! PINs or storage. The token ([`crate::token`]) checks usage attributes
//! (`CKA_SIGN`, …) and login state, then calls in here.
//!
//! Layout: one file per family (`rsa`, `ecdsa`, `ecdh`, `aes`, `gcm`, `kw`, `des3`,
//! `hmac`, `digest`), each declaring its mechanisms once in an `ENTRIES` table (type,
//! key sizes, `CKF_` flags, the functions that run them); `table.rs` gathers the
//! entries, and `C_GetMechanismList`/`C_GetMechanismInfo` and every dispatch
//! function (`sign_init`, `encrypt_init`, `wrap`, …) read the same entries.
//!
//! Asymmetric primitives (RSA, ECDSA, ECDH) go through the backend seam in
//! [`backend`], so another implementation (aws-lc-rs) can be swapped in behind a
//! cargo feature; symmetric ciphers, MACs and digests are RustCrypto directly.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A mechanism with its parameter, already converted from the C structures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mechanism {
    /// `CKM_*` value.
    pub ty: CK_MECHANISM_TYPE,
    /// Decoded parameter.
    pub param: MechParam,
}

impl Mechanism {
    /// A mechanism without parameter.
    pub fn new(ty: CK_MECHANISM_TYPE) -> Self {
        Mechanism {
            ty,
            param: MechParam::None,
        }
    }
}

/// Mechanism parameters, decoded by the adapter from `CK_MECHANISM.pParameter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MechParam {
    /// No parameter.
    None,
    /// A plain byte string: the IV of CBC modes, the data of
    /// `CK_KEY_DERIVATION_STRING_DATA`, or any opaque parameter.
    Bytes(Vec<u8>),
    /// `CK_GCM_PARAMS`.
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: u64,
    },
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: u64,
    },
    /// `CK_RSA_PKCS_OAEP_PARAMS` (`source` is the label when `CKZ_DATA_SPECIFIED`).
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        source: Vec<u8>,
    },
    /// `CK_AES_CTR_PARAMS`: the counter block and how many of its low bits count.
    Ctr { counter_bits: u64, cb: [u8; 16] },
    /// `CK_EDDSA_PARAMS`.
    Eddsa { prehash: bool, context: Vec<u8> },
    /// `CK_OBJECT_HANDLE`: the second key of `CKM_CONCATENATE_BASE_AND_KEY`.
    KeyHandle(u64),
    /// `CK_EXTRACT_PARAMS`: the first bit `CKM_EXTRACT_KEY_FROM_KEY` takes.
    Extract(u64),
    /// `CK_AES_CBC_ENCRYPT_DATA_PARAMS` / `CK_DES_CBC_ENCRYPT_DATA_PARAMS`.
    CbcEncryptData { iv: Vec<u8>, data: Vec<u8> },
    /// `CK_SALSA20_CHACHA20_POLY1305_PARAMS`.
    ChaChaPoly { nonce: Vec<u8>, aad: Vec<u8> },
    /// `CK_HKDF_PARAMS`.
    Hkdf(Box<hkdf::Params>),
    /// `CK_SP800_108_KDF_PARAMS` / `CK_SP800_108_FEEDBACK_KDF_PARAMS`.
    Kbkdf(Box<kbkdf::Params>),
    /// `CK_SIGN_ADDITIONAL_CONTEXT` (ML-DSA; `hash` is `None`), or
    /// `CK_HASH_SIGN_ADDITIONAL_CONTEXT` (`CKM_HASH_ML_DSA`: the pre-hash).
    SignContext {
        hedge: CK_HEDGE_TYPE,
        context: Vec<u8>,
        hash: Option<CK_MECHANISM_TYPE>,
    },
    /// `CK_ECDH1_DERIVE_PARAMS`.
    Ecdh1 {
        kdf: CK_EC_KDF_TYPE,
        shared_data: Vec<u8>,
        public_data: Vec<u8>,
    },
}

/// The parameter of one AEAD message (PKCS#11 3.0 message-based encryption,
/// `crate::session::message`): `CK_GCM_MESSAGE_PARAMS`, or
/// `CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS` mapped onto the same fields. The token may write `iv` (a generated IV)
/// and writes `tag` after an encryption; the caller copies both back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AeadParams {
    pub iv: Vec<u8>,
    /// Leading IV bits the caller fixes; the generator fills the rest.
    pub iv_fixed_bits: u64,
    /// `CKG_NO_GENERATE`, `CKG_GENERATE`, `CKG_GENERATE_COUNTER`,
    /// `CKG_GENERATE_RANDOM` (encryption; decryption ignores it).
    pub generator: u64,
    /// The tag: written by encryption, read by decryption.
    pub tag: Vec<u8>,
    pub tag_bits: u64,
}

/// What `C_GetMechanismInfo` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MechInfo {
    pub min_key_size: u64,
    pub max_key_size: u64,
    pub flags: CK_FLAGS,
}

mod aes;
pub mod backend;
mod chacha;
mod cmac;
mod ctr;
mod des3;
mod digest;
mod ecdh;
mod ecdsa;
mod ed25519ctx;
pub mod ed448;
pub mod eddsa;
pub mod encoding;
mod gcm;
pub mod hkdf;
mod hmac;
pub mod kbkdf;
pub mod kdf;
mod keys;
mod kw;
pub mod mldsa;
pub mod mlkem;
mod names;
mod rsa;
mod sealed_envelope;
mod table;
pub mod x25519;

pub(crate) use chacha::seal_or_open as chacha_seal_or_open;
pub use digest::HashAlg;
pub use keys::Key;
pub use names::mechanism_name;
pub use table::{
    decapsulate, decrypt_init, derive, digest_init, encapsulate, encrypt_init, generate_key,
    generate_key_pair, mechanism_info, mechanism_list, sign_init, unwrap, verify_init, wrap,
};

#[cfg(test)]
#[path = "tests/support.rs"]
mod test_support;

/// A signature or MAC in progress (single- or multi-part).
pub trait SignOp: Send {
    /// Feeds more data (multi-part).
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Produces the signature. Called once.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// The signature length this operation will produce (for the length query).
    fn sig_len(&self) -> usize;
    /// Whether only `C_Sign` may run it (`C_SignUpdate` ends it with
    /// `CKR_OPERATION_NOT_INITIALIZED`).
    fn single_part(&self) -> bool {
        false
    }
}

/// A verification in progress.
pub trait VerifyOp: Send {
    /// Feeds more data.
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Checks `signature` over everything fed so far.
    fn finish(&mut self, signature: &[u8]) -> Result<()>;
    /// Whether only `C_Verify` may run it (see [`SignOp::single_part`]).
    fn single_part(&self) -> bool {
        false
    }
}

/// An encryption or decryption in progress.
pub trait CipherOp: Send {
    /// Processes a part; returns whatever output is ready.
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>>;
    /// Finishes (padding, tag); returns the remaining output.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// An upper bound of the output for `input_len` more bytes plus finishing
    /// (for the length query).
    fn max_output_len(&self, input_len: usize) -> usize;
    /// Single-part operation over all of `data` (may be faster than update+finish
    /// and is the only form for RSA and GCM decryption).
    fn once(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = self.update(data)?;
        out.extend_from_slice(&self.finish()?);
        Ok(out)
    }
    /// Single-part operation writing into `out`, which holds at least
    /// `max_output_len(data.len())` bytes; returns the length written. Bulk
    /// mechanisms override it to work in the caller's buffer with no allocation of
    /// their own (a MiB-sized temporary costs a fresh mapping and its page faults on
    /// every call). On error nothing of the result is left in `out`.
    fn once_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize> {
        let v = zeroize::Zeroizing::new(self.once(data)?);
        let dst = out
            .get_mut(..v.len())
            .ok_or_else(|| Error::General("output longer than its announced bound".into()))?;
        dst.copy_from_slice(&v);
        Ok(v.len())
    }
}

/// A digest in progress.
pub trait DigestOp: Send {
    fn update(&mut self, data: &[u8]);
    fn finish(&mut self) -> Vec<u8>;
    fn len(&self) -> usize;
    /// Always false: a digest has a fixed, non-zero length.
    fn is_empty(&self) -> bool {
        false
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<()> {
    use rand_core::RngCore;
    rand_core::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::General(format!("OS random generator failed: {e}")))
}

/// Random bytes in a zeroizing buffer.
pub fn random_secret(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Zeroizing::new(vec![0u8; len]);
    random(&mut v)?;
    Ok(v)
}

/// Upper limit for data buffered by single-part style mechanisms (raw ECDSA input,
/// GCM, key wrap): keeps a misbehaving client from exhausting memory.
pub(crate) const MAX_BUFFER: usize = 64 << 20;

/// Checks a MAC (HMAC, CMAC) against the `expected` one of length `len`, in
/// constant time; a wrong length is `SignatureLenRange`.
fn check_mac(
    len: usize,
    expected: impl FnOnce() -> Result<Vec<u8>>,
    signature: &[u8],
) -> Result<()> {
    use subtle::ConstantTimeEq;
    if signature.len() != len {
        return Err(Error::SignatureLenRange);
    }
    if bool::from(expected()?.ct_eq(signature)) {
        Ok(())
    } else {
        Err(Error::SignatureInvalid)
    }
}

fn param_err(msg: &str) -> Error {
    Error::MechanismParamInvalid(msg.into())
}

/// `n % m == 0` (`usize::is_multiple_of` needs Rust 1.87; the workspace MSRV is 1.80).
#[allow(clippy::manual_is_multiple_of)]
fn multiple_of(n: usize, m: usize) -> bool {
    n % m == 0
}

/// Big-endian `v` left-padded with zeros to `k` bytes.
fn left_pad(v: &[u8], k: usize) -> Vec<u8> {
    let mut out = vec![0u8; k.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}
