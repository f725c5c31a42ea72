//! The `aws-lc` asymmetric backend: [aws-lc-rs](https://crates.io/crates/aws-lc-rs)
//! (AWS-LC: constant-time RSA, assembly-optimised P-256/P-384, P-521).
//!
//! What runs where:
//!
//! | operation | aws-lc-rs | RustCrypto fallback ([`super::rustcrypto`]) |
//! | --- | --- | --- |
//! | RSA PKCS#1 v1.5 sign | DigestInfo of SHA-256/384/512, keys ≥ 2048 bits | other DigestInfos (SHA-1, SHA-224), raw data (`CKM_RSA_PKCS` without DigestInfo), 1024–2047-bit keys |
//! | RSA-PSS sign | MGF1 hash = message hash ∈ SHA-256/384/512, salt length = hash length, keys ≥ 2048 bits | every other hash / MGF1 / salt combination |
//! | RSA PKCS#1 v1.5 / OAEP decrypt | PKCS#1 v1.5; OAEP with MGF1 hash = hash ∈ SHA-1/256/384/512 (any label) | other OAEP combinations, keys < 2048 bits |
//! | raw RSA (`CKM_RSA_X_509`) private | — | always (blinded) |
//! | RSA verify | PKCS#1 v1.5 DigestInfo of SHA-1/256/384/512, PSS as for signing | the rest |
//! | RSA public encryption, raw public op | — | always (public operations, no secret-dependent timing) |
//! | RSA key generation | 2048/3072/4096 bits with e = 65537 | other sizes and exponents |
//! | ECDSA P-256/P-384, ECDH (every curve), EC key generation | always | — |
//! | ECDSA P-521 | hashes of up to 64 bytes (every SHA-2) | raw `CKM_ECDSA` input of 65 bytes or more |
//!
//! The RustCrypto paths are blinded (RUSTSEC-2023-0071 mitigation) like in the default
//! backend; the advisory's constant-time fix only covers the aws-lc-rs paths above.
//!
//! Prehashed ECDSA: the FIPS 186-5 integer of the hash is formed here
//! ([`Curve::hash_to_field`]: the leftmost order-length bits, or the hash
//! left-padded), then handed to aws-lc-rs as a SHA-256 (P-256) / SHA-384 (P-384) /
//! SHA-512 (P-521) digest, which is the length its digest-signing API requires.
//! For P-521 that digest is 64 bytes while the integer may need 521 bits: a value
//! that does not fit (only a raw `CKM_ECDSA` input longer than 64 bytes) runs on
//! the RustCrypto `p521` fallback.

use std::sync::OnceLock;

use aws_lc_rs::{agreement, digest as lc_digest, encoding::AsBigEndian, rsa as lc_rsa, signature};
use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::rustcrypto as rc;
use super::{
    Curve, EcPrivateOps, EcPublicOps, RsaComponents, RsaPrivateOps, RsaPublicOps, RSA_MAX_BITS,
    RSA_MIN_BITS,
};
use crate::error::{Error, Result};
use crate::mechanism::HashAlg;

/// Smallest modulus aws-lc-rs accepts for private-key operations and PSS.
const LC_MIN_BITS: usize = 2048;

/// Big-endian `v` left-padded with zeros to `k` bytes.
fn left_pad(v: &[u8], k: usize) -> Vec<u8> {
    let mut out = vec![0u8; k.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

/// `v` without leading zero bytes (aws-lc-rs wants minimal public components).
fn strip(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    &v[first..]
}

fn lc_hash(h: HashAlg) -> Option<&'static lc_digest::Algorithm> {
    Some(match h {
        HashAlg::Sha1 => &lc_digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &lc_digest::SHA256,
        HashAlg::Sha384 => &lc_digest::SHA384,
        HashAlg::Sha512 => &lc_digest::SHA512,
        _ => return None,
    })
}

/// The hash and hash value of a PKCS#1 v1.5 DigestInfo (`msg` exactly
/// `prefix || hash`) for the hashes aws-lc-rs handles, else `None`.
fn split_digest_info(msg: &[u8]) -> Option<(HashAlg, &[u8])> {
    [
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Sha1,
    ]
    .into_iter()
    .find_map(|h| {
        let hash = msg.strip_prefix(h.digest_info_prefix())?;
        (hash.len() == h.output_len()).then_some((h, hash))
    })
}

fn import(hash: &[u8], alg: &'static lc_digest::Algorithm) -> Option<lc_digest::Digest> {
    lc_digest::Digest::import_less_safe(hash, alg).ok()
}

// ---------------------------------------------------------------------------
// RSA
// ---------------------------------------------------------------------------

/// The aws-lc-rs halves of an RSA private key.
struct LcRsa {
    pair: signature::RsaKeyPair,
    pkcs1: lc_rsa::Pkcs1PrivateDecryptingKey,
    oaep: lc_rsa::OaepPrivateDecryptingKey,
}

impl LcRsa {
    /// `None` when aws-lc-rs refuses the key (size below 2048 bits, unusual
    /// exponent, missing CRT values); the RustCrypto key then does everything.
    fn new(c: &RsaComponents) -> Option<LcRsa> {
        if c.dp.is_empty() || c.dq.is_empty() || c.qinv.is_empty() {
            return None;
        }
        let comps = lc_rsa::KeyPairComponents {
            public_key: lc_rsa::PublicKeyComponents {
                n: strip(&c.n),
                e: strip(&c.e),
            },
            d: &c.d[..],
            p: &c.p[..],
            q: &c.q[..],
            dP: &c.dp[..],
            dQ: &c.dq[..],
            qInv: &c.qinv[..],
        };
        let pair = signature::RsaKeyPair::from_components(&comps).ok()?;
        let pkcs8 =
            aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).ok()?;
        let dec = lc_rsa::PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref()).ok()?;
        Some(LcRsa {
            pair,
            pkcs1: lc_rsa::Pkcs1PrivateDecryptingKey::new(dec.clone()).ok()?,
            oaep: lc_rsa::OaepPrivateDecryptingKey::new(dec).ok()?,
        })
    }
}

/// RSA private key: aws-lc-rs where it applies, the RustCrypto key for the rest
/// (and for the components).
pub struct RsaPrivateKey {
    lc: Option<LcRsa>,
    rc: rc::RsaPrivateKey,
}

/// The verification parameter sets a public key is parsed for, in cache order.
const VERIFY_ALGS: [&signature::RsaParameters; 7] = [
    &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
    &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
    &signature::RSA_PKCS1_2048_8192_SHA384,
    &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
    &signature::RSA_PSS_2048_8192_SHA256,
    &signature::RSA_PSS_2048_8192_SHA384,
    &signature::RSA_PSS_2048_8192_SHA512,
];

/// RSA public key. Parsed aws-lc-rs keys are cached per verification algorithm
/// (each holds its own Montgomery context), built on first use.
pub struct RsaPublicKey {
    rc: rc::RsaPublicKey,
    n: Vec<u8>,
    e: Vec<u8>,
    bits: usize,
    parsed: [OnceLock<Option<signature::ParsedPublicKey>>; VERIFY_ALGS.len()],
}

impl RsaPublicKey {
    fn parsed(&self, idx: usize) -> Option<&signature::ParsedPublicKey> {
        self.parsed[idx]
            .get_or_init(|| {
                lc_rsa::PublicKeyComponents {
                    n: &self.n[..],
                    e: &self.e[..],
                }
                .to_parsed_public_key(VERIFY_ALGS[idx])
                .ok()
            })
            .as_ref()
    }
}

fn bit_len(v: &[u8]) -> usize {
    let v = strip(v);
    match v.first() {
        Some(&b) => v.len() * 8 - b.leading_zeros() as usize,
        None => 0,
    }
}

/// The aws-lc-rs PSS encoding for `(hash, mgf, salt_len)` when it has one.
fn lc_pss(hash: HashAlg, mgf: HashAlg, salt_len: usize) -> Option<usize> {
    if hash != mgf || salt_len != hash.output_len() {
        return None;
    }
    match hash {
        HashAlg::Sha256 => Some(0),
        HashAlg::Sha384 => Some(1),
        HashAlg::Sha512 => Some(2),
        _ => None,
    }
}

const PSS_SIGN: [&signature::RsaSignatureEncoding; 3] = [
    &signature::RSA_PSS_SHA256,
    &signature::RSA_PSS_SHA384,
    &signature::RSA_PSS_SHA512,
];

impl RsaPrivateOps for RsaPrivateKey {
    type Public = RsaPublicKey;

    fn from_components(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        primes: Option<(&[u8], &[u8])>,
    ) -> Result<Self> {
        let rc = rc::RsaPrivateKey::from_components(n, e, d, primes)?;
        let lc = LcRsa::new(&rc.components());
        Ok(RsaPrivateKey { lc, rc })
    }

    fn generate(bits: usize, e: &[u8]) -> Result<RsaComponents> {
        let size = match bits {
            2048 => Some(lc_rsa::KeySize::Rsa2048),
            3072 => Some(lc_rsa::KeySize::Rsa3072),
            4096 => Some(lc_rsa::KeySize::Rsa4096),
            _ => None,
        };
        match size {
            Some(size) if strip(e) == [1, 0, 1] => {
                let pair = signature::RsaKeyPair::generate(size)
                    .map_err(|_| Error::General("RSA key generation failed".into()))?;
                let der =
                    aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                        .map_err(|_| Error::General("RSA key export failed".into()))?;
                components_from_pkcs8(der.as_ref())
            }
            _ => rc::RsaPrivateKey::generate(bits, e),
        }
    }

    fn components(&self) -> RsaComponents {
        self.rc.components()
    }

    fn public(&self) -> RsaPublicKey {
        let c = self.rc.components();
        RsaPublicKey::from_rc(self.rc.public(), &c.n, &c.e)
    }

    fn modulus_len(&self) -> usize {
        self.rc.modulus_len()
    }

    fn sign_pkcs1(&self, msg: &[u8]) -> Result<Vec<u8>> {
        if let (Some(lc), Some((h, hash))) = (&self.lc, split_digest_info(msg)) {
            let enc: Option<&'static signature::RsaSignatureEncoding> = match h {
                HashAlg::Sha256 => Some(&signature::RSA_PKCS1_SHA256),
                HashAlg::Sha384 => Some(&signature::RSA_PKCS1_SHA384),
                HashAlg::Sha512 => Some(&signature::RSA_PKCS1_SHA512),
                _ => None,
            };
            if let (Some(enc), Some(d)) = (enc, lc_hash(h).and_then(|a| import(hash, a))) {
                let mut sig = vec![0u8; lc.pair.public_modulus_len()];
                lc.pair
                    .sign_digest(enc, &d, &mut sig)
                    .map_err(|_| Error::General("RSA signing failed".into()))?;
                return Ok(sig);
            }
        }
        self.rc.sign_pkcs1(msg)
    }

    fn sign_pss(
        &self,
        mhash: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
    ) -> Result<Vec<u8>> {
        if let (Some(lc), Some(i)) = (&self.lc, lc_pss(hash, mgf, salt_len)) {
            let alg = lc_hash(hash).ok_or(Error::DataLenRange)?;
            let d = import(mhash, alg).ok_or(Error::DataLenRange)?;
            let mut sig = vec![0u8; lc.pair.public_modulus_len()];
            lc.pair
                .sign_digest(PSS_SIGN[i], &d, &mut sig)
                .map_err(|_| Error::General("RSA-PSS signing failed".into()))?;
            return Ok(sig);
        }
        self.rc.sign_pss(mhash, hash, mgf, salt_len)
    }

    fn decrypt_pkcs1(&self, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let Some(lc) = &self.lc else {
            return self.rc.decrypt_pkcs1(ct);
        };
        let k = self.modulus_len();
        if ct.len() != k {
            return Err(Error::EncryptedDataLenRange);
        }
        let mut out = Zeroizing::new(vec![0u8; k]);
        let n = lc
            .pkcs1
            .decrypt(ct, &mut out)
            .map_err(|_| Error::EncryptedDataInvalid)?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn decrypt_oaep(
        &self,
        ct: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let alg = match (hash, mgf) {
            (HashAlg::Sha1, HashAlg::Sha1) => Some(&lc_rsa::OAEP_SHA1_MGF1SHA1),
            (HashAlg::Sha256, HashAlg::Sha256) => Some(&lc_rsa::OAEP_SHA256_MGF1SHA256),
            (HashAlg::Sha384, HashAlg::Sha384) => Some(&lc_rsa::OAEP_SHA384_MGF1SHA384),
            (HashAlg::Sha512, HashAlg::Sha512) => Some(&lc_rsa::OAEP_SHA512_MGF1SHA512),
            _ => None,
        };
        let (Some(lc), Some(alg)) = (&self.lc, alg) else {
            return self.rc.decrypt_oaep(ct, hash, mgf, label);
        };
        let k = self.modulus_len();
        if ct.len() != k {
            return Err(Error::EncryptedDataLenRange);
        }
        let mut out = Zeroizing::new(vec![0u8; k]);
        let label = (!label.is_empty()).then_some(label);
        let n = lc
            .oaep
            .decrypt(alg, ct, &mut out, label)
            .map_err(|_| Error::EncryptedDataInvalid)?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn raw(&self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.rc.raw(input)
    }
}

/// Components of a PKCS#8-wrapped RSAPrivateKey (what aws-lc-rs exports).
fn components_from_pkcs8(der: &[u8]) -> Result<RsaComponents> {
    use der::Decode;
    let bad = || Error::General("RSA key export could not be parsed".into());
    let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|_| bad())?;
    let k = pkcs1::RsaPrivateKey::from_der(info.private_key).map_err(|_| bad())?;
    let v = |u: pkcs1::UintRef<'_>| strip(u.as_bytes()).to_vec();
    let c = RsaComponents {
        n: v(k.modulus),
        e: v(k.public_exponent),
        d: v(k.private_exponent),
        p: v(k.prime1),
        q: v(k.prime2),
        dp: v(k.exponent1),
        dq: v(k.exponent2),
        qinv: v(k.coefficient),
    };
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bit_len(&c.n)) {
        return Err(Error::KeySizeRange);
    }
    Ok(c)
}

impl RsaPublicKey {
    fn from_rc(rc: rc::RsaPublicKey, n: &[u8], e: &[u8]) -> Self {
        RsaPublicKey {
            rc,
            n: strip(n).to_vec(),
            e: strip(e).to_vec(),
            bits: bit_len(n),
            parsed: Default::default(),
        }
    }

    /// Index into [`VERIFY_ALGS`] for a PKCS#1 v1.5 DigestInfo hash.
    fn pkcs1_alg(&self, h: HashAlg) -> Option<usize> {
        match h {
            HashAlg::Sha1 => Some(0),
            HashAlg::Sha256 => Some(1),
            HashAlg::Sha384 if self.bits >= LC_MIN_BITS => Some(2),
            HashAlg::Sha512 => Some(3),
            _ => None,
        }
    }
}

impl RsaPublicOps for RsaPublicKey {
    fn new(n: &[u8], e: &[u8]) -> Result<Self> {
        let rc = rc::RsaPublicKey::new(n, e)?;
        Ok(RsaPublicKey::from_rc(rc, n, e))
    }

    fn modulus_len(&self) -> usize {
        self.rc.modulus_len()
    }

    fn verify_pkcs1(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        let k = self.modulus_len();
        if msg.len() + 11 > k {
            return Err(Error::DataLenRange);
        }
        if sig.len() != k {
            return Err(Error::SignatureLenRange);
        }
        if let Some((h, hash)) = split_digest_info(msg) {
            let parsed = self.pkcs1_alg(h).and_then(|i| self.parsed(i));
            if let (Some(p), Some(d)) = (parsed, lc_hash(h).and_then(|a| import(hash, a))) {
                return p
                    .verify_digest_sig(&d, sig)
                    .map_err(|_| Error::SignatureInvalid);
            }
        }
        self.rc.verify_pkcs1(msg, sig)
    }

    fn verify_pss(
        &self,
        mhash: &[u8],
        sig: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
    ) -> Result<()> {
        if self.bits >= LC_MIN_BITS {
            if let Some(i) = lc_pss(hash, mgf, salt_len) {
                if sig.len() != self.modulus_len() {
                    return Err(Error::SignatureLenRange);
                }
                let alg = lc_hash(hash).ok_or(Error::DataLenRange)?;
                let d = import(mhash, alg).ok_or(Error::DataLenRange)?;
                if let Some(p) = self.parsed(4 + i) {
                    return p
                        .verify_digest_sig(&d, sig)
                        .map_err(|_| Error::SignatureInvalid);
                }
            }
        }
        self.rc.verify_pss(mhash, sig, hash, mgf, salt_len)
    }

    fn encrypt_pkcs1(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.rc.encrypt_pkcs1(msg)
    }

    fn encrypt_oaep(
        &self,
        msg: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
    ) -> Result<Vec<u8>> {
        self.rc.encrypt_oaep(msg, hash, mgf, label)
    }

    fn raw(&self, input: &[u8]) -> Result<Vec<u8>> {
        self.rc.raw(input)
    }
}

// ---------------------------------------------------------------------------
// EC
// ---------------------------------------------------------------------------

fn signing_alg(curve: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
    }
}

fn verify_alg(curve: Curve) -> &'static signature::EcdsaVerificationAlgorithm {
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
    }
}

fn ecdh_alg(curve: Curve) -> &'static agreement::Algorithm {
    match curve {
        Curve::P256 => &agreement::ECDH_P256,
        Curve::P384 => &agreement::ECDH_P384,
        Curve::P521 => &agreement::ECDH_P521,
    }
}

/// The digest type aws-lc-rs's ECDSA expects for the curve.
fn curve_digest(curve: Curve) -> &'static lc_digest::Algorithm {
    match curve {
        Curve::P256 => &lc_digest::SHA256,
        Curve::P384 => &lc_digest::SHA384,
        Curve::P521 => &lc_digest::SHA512,
    }
}

/// The ECDSA integer of `hash` as the digest aws-lc-rs signs, or `None` when it
/// does not fit one (P-521 with a value of 2^512 or more: the RustCrypto path).
fn lc_ecdsa_digest(curve: Curve, hash: &[u8]) -> Option<lc_digest::Digest> {
    let z = curve.hash_to_field(hash);
    let z = match curve {
        Curve::P521 => z.strip_prefix(&[0u8, 0][..])?,
        _ => &z[..],
    };
    import(z, curve_digest(curve))
}

/// A validated SEC1 point (compressed or uncompressed) in uncompressed form.
fn uncompressed_point(curve: Curve, point: &[u8]) -> Option<Vec<u8>> {
    use elliptic_curve::sec1::ToEncodedPoint;
    Some(match curve {
        Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
            .ok()?
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
        Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
            .ok()?
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
        Curve::P521 => p521::PublicKey::from_sec1_bytes(point)
            .ok()?
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
    })
}

/// EC private key: the ECDSA key pair, the ECDH key and the scalar.
pub struct EcPrivateKey {
    curve: Curve,
    scalar: Zeroizing<Vec<u8>>,
    ecdsa: signature::EcdsaKeyPair,
    ecdh: agreement::PrivateKey,
    point: Vec<u8>,
}

/// EC public key: the uncompressed point and its parsed aws-lc-rs form.
pub struct EcPublicKey {
    curve: Curve,
    point: Vec<u8>,
    parsed: signature::ParsedPublicKey,
}

impl EcPrivateOps for EcPrivateKey {
    type Public = EcPublicKey;

    fn from_scalar(curve: Curve, scalar: &[u8]) -> Result<Self> {
        let bad = || Error::AttributeValueInvalid(CKA_VALUE);
        let fl = curve.field_len();
        let s = strip(scalar);
        if s.len() > fl {
            return Err(bad());
        }
        let padded = Zeroizing::new(left_pad(s, fl));
        // Range check 0 < d < n with the same rule as the default backend.
        let in_range = match curve {
            Curve::P256 => p256::SecretKey::from_slice(&padded).is_ok(),
            Curve::P384 => p384::SecretKey::from_slice(&padded).is_ok(),
            Curve::P521 => p521::SecretKey::from_slice(&padded).is_ok(),
        };
        if !in_range {
            return Err(bad());
        }
        let ecdh =
            agreement::PrivateKey::from_private_key(ecdh_alg(curve), &padded).map_err(|_| bad())?;
        let point = ecdh
            .compute_public_key()
            .map_err(|_| bad())?
            .as_ref()
            .to_vec();
        let ecdsa = signature::EcdsaKeyPair::from_private_key_and_public_key(
            signing_alg(curve),
            &padded,
            &point,
        )
        .map_err(|_| bad())?;
        Ok(EcPrivateKey {
            curve,
            scalar: padded,
            ecdsa,
            ecdh,
            point,
        })
    }

    fn generate(curve: Curve) -> Result<Self> {
        let fail = || Error::General("EC key generation failed".into());
        let pair = signature::EcdsaKeyPair::generate(signing_alg(curve)).map_err(|_| fail())?;
        let bin = pair.private_key().as_be_bytes().map_err(|_| fail())?;
        let scalar = Zeroizing::new(bin.as_ref().to_vec());
        Self::from_scalar(curve, &scalar)
    }

    fn curve(&self) -> Curve {
        self.curve
    }

    fn scalar(&self) -> Zeroizing<Vec<u8>> {
        self.scalar.clone()
    }

    fn public(&self) -> EcPublicKey {
        // The point was computed from a valid scalar, so parsing cannot fail.
        EcPublicKey::from_uncompressed(self.curve, self.point.clone())
            .expect("public point of a valid private key")
    }

    fn sign_prehash(&self, hash: &[u8]) -> Result<Vec<u8>> {
        let fail = || Error::General("ECDSA signing failed".into());
        let Some(d) = lc_ecdsa_digest(self.curve, hash) else {
            return rc::EcPrivateKey::from_scalar(self.curve, &self.scalar)?.sign_prehash(hash);
        };
        let sig = self.ecdsa.sign_digest(&d).map_err(|_| fail())?;
        Ok(sig.as_ref().to_vec())
    }

    fn ecdh(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let bad = || Error::MechanismParamInvalid("ECDH public data is not a valid point".into());
        let peer = uncompressed_point(self.curve, peer).ok_or_else(bad)?;
        agreement::agree(
            &self.ecdh,
            agreement::UnparsedPublicKey::new(ecdh_alg(self.curve), &peer),
            bad(),
            |km| Ok(Zeroizing::new(km.to_vec())),
        )
    }
}

impl EcPublicKey {
    fn from_uncompressed(curve: Curve, point: Vec<u8>) -> Option<Self> {
        let parsed = signature::ParsedPublicKey::new(verify_alg(curve), &point).ok()?;
        Some(EcPublicKey {
            curve,
            point,
            parsed,
        })
    }
}

impl EcPublicOps for EcPublicKey {
    fn from_point(curve: Curve, point: &[u8]) -> Result<Self> {
        let bad = || Error::AttributeValueInvalid(CKA_EC_POINT);
        let point = uncompressed_point(curve, point).ok_or_else(bad)?;
        EcPublicKey::from_uncompressed(curve, point).ok_or_else(bad)
    }

    fn curve(&self) -> Curve {
        self.curve
    }

    fn point(&self) -> Vec<u8> {
        self.point.clone()
    }

    fn verify_prehash(&self, hash: &[u8], sig: &[u8]) -> Result<()> {
        let fl = self.curve.field_len();
        if sig.len() != 2 * fl {
            return Err(Error::SignatureLenRange);
        }
        let Some(d) = lc_ecdsa_digest(self.curve, hash) else {
            return rc::EcPublicKey::from_point(self.curve, &self.point)?.verify_prehash(hash, sig);
        };
        self.parsed
            .verify_digest_sig(&d, sig)
            .map_err(|_| Error::SignatureInvalid)
    }
}

#[cfg(test)]
#[path = "awslc_tests.rs"]
mod tests;
