//! Message digests (`CKM_SHA_1`, `CKM_SHA224` … `CKM_SHA512`), the hash algorithm
//! enum every other mechanism (HMAC, RSA padding, ECDSA, KDFs) shares, and the input
//! stage of the signature schemes ([`SignInput`]: a running hash or a buffer).

use cryptoki_sys::*;
use digest::{Digest, DynDigest};
use zeroize::Zeroizing;

use super::table::{MechEntry, Ops};
use super::{DigestOp, Mechanism, MAX_BUFFER};
use crate::error::{Error, Result};

const DIGEST: Ops = Ops {
    digest: Some(digest_init),
    ..Ops::NONE
};

/// The digest mechanisms (no key: key sizes 0).
pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(CKM_SHA_1, (0, 0), CKF_DIGEST, DIGEST),
    MechEntry::new(CKM_SHA224, (0, 0), CKF_DIGEST, DIGEST),
    MechEntry::new(CKM_SHA256, (0, 0), CKF_DIGEST, DIGEST),
    MechEntry::new(CKM_SHA384, (0, 0), CKF_DIGEST, DIGEST),
    MechEntry::new(CKM_SHA512, (0, 0), CKF_DIGEST, DIGEST),
];

/// The hash functions the token implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The hash of a digest mechanism (`CKM_SHA256`, …); `None` for anything else.
    pub fn from_digest_mechanism(ty: CK_MECHANISM_TYPE) -> Option<Self> {
        Some(match ty {
            CKM_SHA_1 => HashAlg::Sha1,
            CKM_SHA224 => HashAlg::Sha224,
            CKM_SHA256 => HashAlg::Sha256,
            CKM_SHA384 => HashAlg::Sha384,
            CKM_SHA512 => HashAlg::Sha512,
            _ => return None,
        })
    }

    /// The hash of an MGF1 generator (`CKG_MGF1_SHA256`, …).
    pub fn from_mgf(mgf: CK_RSA_PKCS_MGF_TYPE) -> Option<Self> {
        Some(match mgf {
            CKG_MGF1_SHA1 => HashAlg::Sha1,
            CKG_MGF1_SHA224 => HashAlg::Sha224,
            CKG_MGF1_SHA256 => HashAlg::Sha256,
            CKG_MGF1_SHA384 => HashAlg::Sha384,
            CKG_MGF1_SHA512 => HashAlg::Sha512,
            _ => return None,
        })
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// A fresh boxed hasher.
    pub fn hasher(self) -> Box<dyn DynDigest + Send + Sync> {
        match self {
            HashAlg::Sha1 => Box::new(sha1::Sha1::new()),
            HashAlg::Sha224 => Box::new(sha2::Sha224::new()),
            HashAlg::Sha256 => Box::new(sha2::Sha256::new()),
            HashAlg::Sha384 => Box::new(sha2::Sha384::new()),
            HashAlg::Sha512 => Box::new(sha2::Sha512::new()),
        }
    }

    /// Hash of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        let mut h = self.hasher();
        for p in parts {
            h.update(p);
        }
        h.finalize().into_vec()
    }

    /// The DER `DigestInfo` prefix (everything before the hash value) used by
    /// PKCS#1 v1.5 signatures (RFC 8017 §9.2 note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha224 => &[
                0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x04, 0x05, 0x00, 0x04, 0x1c,
            ],
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// A running digest.
struct Hashing {
    alg: HashAlg,
    h: Box<dyn DynDigest + Send + Sync>,
}

impl DigestOp for Hashing {
    fn update(&mut self, data: &[u8]) {
        self.h.update(data);
    }

    fn finish(&mut self) -> Vec<u8> {
        self.h.finalize_reset().into_vec()
    }

    fn len(&self) -> usize {
        self.alg.output_len()
    }
}

/// Starts a digest (`C_DigestInit`).
fn digest_init(mech: &Mechanism) -> Result<Box<dyn DigestOp>> {
    let alg = HashAlg::from_digest_mechanism(mech.ty).ok_or(Error::MechanismInvalid(mech.ty))?;
    Ok(Box::new(Hashing {
        alg,
        h: alg.hasher(),
    }))
}

/// How the data reaches a signature primitive.
pub(super) enum SignInput {
    /// Single-part style: the data itself (raw RSA, PSS over a hash, raw ECDSA).
    Buffer(Zeroizing<Vec<u8>>),
    /// Hash-and-sign: a running hash.
    Hash(Box<dyn DynDigest + Send + Sync>),
}

impl SignInput {
    pub(super) fn new(prehash: Option<HashAlg>) -> Self {
        match prehash {
            Some(h) => SignInput::Hash(h.hasher()),
            None => SignInput::Buffer(Zeroizing::new(Vec::new())),
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            SignInput::Buffer(b) => {
                if b.len() + data.len() > MAX_BUFFER {
                    return Err(Error::DataLenRange);
                }
                b.extend_from_slice(data);
            }
            SignInput::Hash(h) => h.update(data),
        }
        Ok(())
    }

    /// The buffered data, or the hash of everything fed so far.
    pub(super) fn take(&mut self) -> Zeroizing<Vec<u8>> {
        match self {
            SignInput::Buffer(b) => std::mem::take(b),
            SignInput::Hash(h) => Zeroizing::new(h.finalize_reset().into_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::digest_init;

    fn sha(ty: CK_MECHANISM_TYPE, data: &[u8]) -> String {
        let mut d = digest_init(&Mechanism::new(ty)).unwrap();
        // Feed in two parts to exercise multi-part.
        let (a, b) = data.split_at(data.len() / 2);
        d.update(a);
        d.update(b);
        let out = d.finish();
        assert_eq!(out.len(), d.len());
        hex::encode(out)
    }

    /// FIPS 180-2 appendix examples ("abc" and the two-block message).
    #[test]
    fn fips180_known_answers() {
        assert_eq!(
            sha(CKM_SHA_1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            sha(CKM_SHA224, b"abc"),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
        assert_eq!(
            sha(CKM_SHA256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha(CKM_SHA384, b"abc"),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            sha(CKM_SHA512, b"abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(
            sha(
                CKM_SHA256,
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            ),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn unknown_digest_mechanism() {
        assert!(matches!(
            digest_init(&Mechanism::new(CKM_MD5)),
            Err(Error::MechanismInvalid(CKM_MD5))
        ));
    }

    #[test]
    fn digest_info_prefix_lengths() {
        for alg in [
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let p = alg.digest_info_prefix();
            assert_eq!(p[1] as usize + 2, p.len() + alg.output_len());
            assert_eq!(*p.last().unwrap() as usize, alg.output_len());
        }
    }
}
