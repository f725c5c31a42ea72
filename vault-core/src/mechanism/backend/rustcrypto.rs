//! The default asymmetric backend: RustCrypto (`rsa`, `p256`, `p384`, `p521`, `ecdsa`).
//!
//! RSA private-key operations always pass an RNG to the `rsa` crate so they are
//! blinded (mitigates RUSTSEC-2023-0071, the crate's non-constant-time modular
//! exponentiation). RSASSA-PSS is encoded here (RFC 8017 §9.1) on top of the raw
//! blinded primitive because PKCS#11 lets the MGF1 hash differ from the message hash,
//! which the `rsa` crate's `Pss` does not.

use cryptoki_sys::*;
use rand_core::{OsRng, RngCore};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign};
use signature::hazmat::{PrehashSigner, PrehashVerifier};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    Curve, EcPrivateOps, EcPublicOps, RsaComponents, RsaPrivateOps, RsaPublicOps, RSA_MAX_BITS,
    RSA_MIN_BITS,
};
use crate::error::{Error, Result};
use crate::mechanism::HashAlg;

/// RSA private key (RustCrypto `rsa`, zeroized on drop by the crate).
pub struct RsaPrivateKey(rsa::RsaPrivateKey);

/// RSA public key.
pub struct RsaPublicKey(rsa::RsaPublicKey);

/// EC private key; the signing key caches its public point, so signing costs one
/// scalar multiplication.
pub enum EcPrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

/// EC public key.
pub enum EcPublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

fn uint(b: &[u8]) -> BigUint {
    BigUint::from_bytes_be(b)
}

/// Big-endian `v` left-padded with zeros to `k` bytes.
fn left_pad(v: &[u8], k: usize) -> Vec<u8> {
    let mut out = vec![0u8; k.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

fn check_bits(bits: usize) -> Result<()> {
    if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(Error::KeySizeRange)
    }
}

/// MGF1 (RFC 8017 B.2.1).
fn mgf1(hash: HashAlg, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + hash.output_len());
    let mut counter = 0u32;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[seed, &counter.to_be_bytes()]));
        counter += 1;
    }
    out.truncate(len);
    out
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1); returns `emLen = ceil(em_bits/8)` bytes.
fn pss_encode(
    mhash: &[u8],
    em_bits: usize,
    hash: HashAlg,
    mgf: HashAlg,
    s_len: usize,
) -> Result<Vec<u8>> {
    let h_len = hash.output_len();
    if mhash.len() != h_len {
        return Err(Error::DataLenRange);
    }
    let em_len = em_bits.div_ceil(8);
    if em_len < h_len + s_len + 2 {
        return Err(Error::MechanismParamInvalid(
            "PSS salt too long for the key".into(),
        ));
    }
    let mut salt = vec![0u8; s_len];
    OsRng.fill_bytes(&mut salt);
    let h = hash.digest(&[&[0u8; 8], mhash, &salt]);
    let db_len = em_len - h_len - 1;
    let mut db = vec![0u8; db_len];
    db[db_len - s_len - 1] = 1;
    db[db_len - s_len..].copy_from_slice(&salt);
    for (d, m) in db.iter_mut().zip(mgf1(mgf, &h, db_len)) {
        *d ^= m;
    }
    db[0] &= 0xffu8 >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(&h);
    em.push(0xbc);
    Ok(em)
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) over `em` of `ceil(em_bits/8)` bytes.
fn pss_verify(
    mhash: &[u8],
    em: &[u8],
    em_bits: usize,
    hash: HashAlg,
    mgf: HashAlg,
    s_len: usize,
) -> Result<()> {
    let h_len = hash.output_len();
    if mhash.len() != h_len {
        return Err(Error::DataLenRange);
    }
    let em_len = em.len();
    if em_len < h_len + s_len + 2 || em[em_len - 1] != 0xbc {
        return Err(Error::SignatureInvalid);
    }
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    let (masked_db, rest) = em.split_at(em_len - h_len - 1);
    let h = &rest[..h_len];
    if masked_db[0] & !top_mask != 0 {
        return Err(Error::SignatureInvalid);
    }
    let db_len = masked_db.len();
    let mut db: Vec<u8> = masked_db
        .iter()
        .zip(mgf1(mgf, h, db_len))
        .map(|(a, b)| a ^ b)
        .collect();
    db[0] &= top_mask;
    let ps_len = db_len - s_len - 1;
    if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 1 {
        return Err(Error::SignatureInvalid);
    }
    let salt = &db[ps_len + 1..];
    let h2 = hash.digest(&[&[0u8; 8], mhash, salt]);
    if bool::from(h2.ct_eq(h)) {
        Ok(())
    } else {
        Err(Error::SignatureInvalid)
    }
}

fn oaep(hash: HashAlg, mgf: HashAlg, label: &[u8]) -> Result<Oaep> {
    let label = if label.is_empty() {
        None
    } else {
        Some(String::from_utf8(label.to_vec()).map_err(|_| {
            Error::MechanismParamInvalid("OAEP labels must be UTF-8 with this backend".into())
        })?)
    };
    Ok(Oaep {
        digest: hash.hasher(),
        mgf_digest: mgf.hasher(),
        label,
    })
}

impl RsaPrivateOps for RsaPrivateKey {
    type Public = RsaPublicKey;

    fn from_components(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        primes: Option<(&[u8], &[u8])>,
    ) -> Result<Self> {
        let n = uint(n);
        check_bits(n.bits())?;
        let primes = match primes {
            Some((p, q)) => vec![uint(p), uint(q)],
            None => vec![],
        };
        let key = rsa::RsaPrivateKey::from_components(n, uint(e), uint(d), primes)
            .map_err(|_| Error::AttributeValueInvalid(CKA_PRIVATE_EXPONENT))?;
        Ok(RsaPrivateKey(key))
    }

    fn generate(bits: usize, e: &[u8]) -> Result<RsaComponents> {
        check_bits(bits)?;
        let odd = e.last().is_some_and(|b| b & 1 == 1);
        let e = uint(e);
        if e.bits() < 2 || e.bits() > 32 || !odd {
            return Err(Error::AttributeValueInvalid(CKA_PUBLIC_EXPONENT));
        }
        let key = rsa::RsaPrivateKey::new_with_exp(&mut OsRng, bits, &e)
            .map_err(|e| Error::General(format!("RSA key generation failed: {e}")))?;
        Ok(RsaPrivateKey(key).components())
    }

    fn components(&self) -> RsaComponents {
        let k = &self.0;
        let p = k.primes();
        RsaComponents {
            n: k.n().to_bytes_be(),
            e: k.e().to_bytes_be(),
            d: k.d().to_bytes_be(),
            p: p[0].to_bytes_be(),
            q: p[1].to_bytes_be(),
            dp: k.dp().map(|v| v.to_bytes_be()).unwrap_or_default(),
            dq: k.dq().map(|v| v.to_bytes_be()).unwrap_or_default(),
            qinv: k
                .crt_coefficient()
                .map(|v| v.to_bytes_be())
                .unwrap_or_default(),
        }
    }

    fn public(&self) -> RsaPublicKey {
        RsaPublicKey(self.0.to_public_key())
    }

    fn modulus_len(&self) -> usize {
        self.0.size()
    }

    fn sign_pkcs1(&self, msg: &[u8]) -> Result<Vec<u8>> {
        if msg.len() + 11 > self.modulus_len() {
            return Err(Error::DataLenRange);
        }
        self.0
            .sign_with_rng(&mut OsRng, Pkcs1v15Sign::new_unprefixed(), msg)
            .map_err(|e| Error::General(format!("RSA signing failed: {e}")))
    }

    fn sign_pss(
        &self,
        mhash: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
    ) -> Result<Vec<u8>> {
        let em = pss_encode(mhash, self.0.n().bits() - 1, hash, mgf, salt_len)?;
        Ok(self.raw(&em)?.to_vec())
    }

    fn decrypt_pkcs1(&self, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if ct.len() != self.modulus_len() {
            return Err(Error::EncryptedDataLenRange);
        }
        self.0
            .decrypt_blinded(&mut OsRng, Pkcs1v15Encrypt, ct)
            .map(Zeroizing::new)
            .map_err(|_| Error::EncryptedDataInvalid)
    }

    fn decrypt_oaep(
        &self,
        ct: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        if ct.len() != self.modulus_len() {
            return Err(Error::EncryptedDataLenRange);
        }
        let padding = oaep(hash, mgf, label)?;
        self.0
            .decrypt_blinded(&mut OsRng, padding, ct)
            .map(Zeroizing::new)
            .map_err(|_| Error::EncryptedDataInvalid)
    }

    fn raw(&self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let k = self.modulus_len();
        if input.len() > k {
            return Err(Error::DataLenRange);
        }
        let m = uint(input);
        if &m >= self.0.n() {
            return Err(Error::DataLenRange);
        }
        let out = rsa::hazmat::rsa_decrypt_and_check(&self.0, Some(&mut OsRng), &m)
            .map_err(|e| Error::General(format!("RSA private operation failed: {e}")))?;
        let bytes = Zeroizing::new(out.to_bytes_be());
        Ok(Zeroizing::new(left_pad(&bytes, k)))
    }
}

impl RsaPublicOps for RsaPublicKey {
    fn new(n: &[u8], e: &[u8]) -> Result<Self> {
        let n = uint(n);
        check_bits(n.bits())?;
        rsa::RsaPublicKey::new(n, uint(e))
            .map(RsaPublicKey)
            .map_err(|_| Error::AttributeValueInvalid(CKA_PUBLIC_EXPONENT))
    }

    fn modulus_len(&self) -> usize {
        self.0.size()
    }

    fn verify_pkcs1(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        let k = self.modulus_len();
        if msg.len() + 11 > k {
            return Err(Error::DataLenRange);
        }
        if sig.len() != k {
            return Err(Error::SignatureLenRange);
        }
        self.0
            .verify(Pkcs1v15Sign::new_unprefixed(), msg, sig)
            .map_err(|_| Error::SignatureInvalid)
    }

    fn verify_pss(
        &self,
        mhash: &[u8],
        sig: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
    ) -> Result<()> {
        let k = self.modulus_len();
        if sig.len() != k {
            return Err(Error::SignatureLenRange);
        }
        if mhash.len() != hash.output_len() {
            return Err(Error::DataLenRange);
        }
        let m = self.raw(sig).map_err(|_| Error::SignatureInvalid)?;
        let em_bits = self.0.n().bits() - 1;
        let em_len = em_bits.div_ceil(8);
        let (lead, em) = m.split_at(k - em_len);
        if lead.iter().any(|&b| b != 0) {
            return Err(Error::SignatureInvalid);
        }
        pss_verify(mhash, em, em_bits, hash, mgf, salt_len)
    }

    fn encrypt_pkcs1(&self, msg: &[u8]) -> Result<Vec<u8>> {
        if msg.len() + 11 > self.modulus_len() {
            return Err(Error::DataLenRange);
        }
        self.0
            .encrypt(&mut OsRng, Pkcs1v15Encrypt, msg)
            .map_err(|e| Error::General(format!("RSA encryption failed: {e}")))
    }

    fn encrypt_oaep(
        &self,
        msg: &[u8],
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
    ) -> Result<Vec<u8>> {
        let k = self.modulus_len();
        if msg.len() + 2 * hash.output_len() + 2 > k {
            return Err(Error::DataLenRange);
        }
        let padding = oaep(hash, mgf, label)?;
        self.0
            .encrypt(&mut OsRng, padding, msg)
            .map_err(|e| Error::General(format!("RSA encryption failed: {e}")))
    }

    fn raw(&self, input: &[u8]) -> Result<Vec<u8>> {
        let k = self.modulus_len();
        if input.len() > k {
            return Err(Error::DataLenRange);
        }
        let m = uint(input);
        if &m >= self.0.n() {
            return Err(Error::DataLenRange);
        }
        let out = rsa::hazmat::rsa_encrypt(&self.0, &m)
            .map_err(|e| Error::General(format!("RSA public operation failed: {e}")))?;
        Ok(left_pad(&out.to_bytes_be(), k))
    }
}

impl EcPrivateOps for EcPrivateKey {
    type Public = EcPublicKey;

    fn from_scalar(curve: Curve, scalar: &[u8]) -> Result<Self> {
        let bad = || Error::AttributeValueInvalid(CKA_VALUE);
        let fl = curve.field_len();
        // Strip leading zeros beyond the field length, then left-pad.
        let first = scalar.iter().position(|&b| b != 0).unwrap_or(scalar.len());
        let s = &scalar[first..];
        if s.len() > fl {
            return Err(bad());
        }
        let padded = Zeroizing::new(left_pad(s, fl));
        Ok(match curve {
            Curve::P256 => {
                EcPrivateKey::P256(p256::ecdsa::SigningKey::from_slice(&padded).map_err(|_| bad())?)
            }
            Curve::P384 => {
                EcPrivateKey::P384(p384::ecdsa::SigningKey::from_slice(&padded).map_err(|_| bad())?)
            }
            Curve::P521 => {
                EcPrivateKey::P521(p521::ecdsa::SigningKey::from_slice(&padded).map_err(|_| bad())?)
            }
        })
    }

    fn generate(curve: Curve) -> Result<Self> {
        Ok(match curve {
            Curve::P256 => EcPrivateKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            Curve::P384 => EcPrivateKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng)),
            Curve::P521 => EcPrivateKey::P521(p521::ecdsa::SigningKey::random(&mut OsRng)),
        })
    }

    fn curve(&self) -> Curve {
        match self {
            EcPrivateKey::P256(_) => Curve::P256,
            EcPrivateKey::P384(_) => Curve::P384,
            EcPrivateKey::P521(_) => Curve::P521,
        }
    }

    fn scalar(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match self {
            EcPrivateKey::P256(k) => k.to_bytes().to_vec(),
            EcPrivateKey::P384(k) => k.to_bytes().to_vec(),
            EcPrivateKey::P521(k) => k.to_bytes().to_vec(),
        })
    }

    fn public(&self) -> EcPublicKey {
        match self {
            EcPrivateKey::P256(k) => EcPublicKey::P256(*k.verifying_key()),
            EcPrivateKey::P384(k) => EcPublicKey::P384(*k.verifying_key()),
            EcPrivateKey::P521(k) => EcPublicKey::P521(p521::ecdsa::VerifyingKey::from(k)),
        }
    }

    fn sign_prehash(&self, hash: &[u8]) -> Result<Vec<u8>> {
        let z = self.curve().hash_to_field(hash);
        let fail = |e: signature::Error| Error::General(format!("ECDSA signing failed: {e}"));
        Ok(match self {
            EcPrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(&z).map_err(fail)?;
                sig.to_bytes().to_vec()
            }
            EcPrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(&z).map_err(fail)?;
                sig.to_bytes().to_vec()
            }
            EcPrivateKey::P521(k) => {
                let sig: p521::ecdsa::Signature = k.sign_prehash(&z).map_err(fail)?;
                sig.to_bytes().to_vec()
            }
        })
    }

    fn ecdh(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let bad = || Error::MechanismParamInvalid("ECDH public data is not a valid point".into());
        Ok(match self {
            EcPrivateKey::P256(k) => {
                let pk = p256::PublicKey::from_sec1_bytes(peer).map_err(|_| bad())?;
                let s = p256::ecdh::diffie_hellman(k.as_nonzero_scalar(), pk.as_affine());
                Zeroizing::new(s.raw_secret_bytes().to_vec())
            }
            EcPrivateKey::P384(k) => {
                let pk = p384::PublicKey::from_sec1_bytes(peer).map_err(|_| bad())?;
                let s = p384::ecdh::diffie_hellman(k.as_nonzero_scalar(), pk.as_affine());
                Zeroizing::new(s.raw_secret_bytes().to_vec())
            }
            EcPrivateKey::P521(k) => {
                let pk = p521::PublicKey::from_sec1_bytes(peer).map_err(|_| bad())?;
                let s = p521::ecdh::diffie_hellman(k.as_nonzero_scalar(), pk.as_affine());
                Zeroizing::new(s.raw_secret_bytes().to_vec())
            }
        })
    }
}

impl EcPublicOps for EcPublicKey {
    fn from_point(curve: Curve, point: &[u8]) -> Result<Self> {
        let bad = || Error::AttributeValueInvalid(CKA_EC_POINT);
        Ok(match curve {
            Curve::P256 => EcPublicKey::P256(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| bad())?,
            ),
            Curve::P384 => EcPublicKey::P384(
                p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| bad())?,
            ),
            Curve::P521 => EcPublicKey::P521(
                p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| bad())?,
            ),
        })
    }

    fn curve(&self) -> Curve {
        match self {
            EcPublicKey::P256(_) => Curve::P256,
            EcPublicKey::P384(_) => Curve::P384,
            EcPublicKey::P521(_) => Curve::P521,
        }
    }

    fn point(&self) -> Vec<u8> {
        match self {
            EcPublicKey::P256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            EcPublicKey::P384(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            EcPublicKey::P521(k) => k.to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    fn verify_prehash(&self, hash: &[u8], sig: &[u8]) -> Result<()> {
        let fl = self.curve().field_len();
        if sig.len() != 2 * fl {
            return Err(Error::SignatureLenRange);
        }
        let z = self.curve().hash_to_field(hash);
        let ok = match self {
            EcPublicKey::P256(k) => p256::ecdsa::Signature::from_slice(sig)
                .ok()
                .map(|s| k.verify_prehash(&z, &s).is_ok()),
            EcPublicKey::P384(k) => p384::ecdsa::Signature::from_slice(sig)
                .ok()
                .map(|s| k.verify_prehash(&z, &s).is_ok()),
            EcPublicKey::P521(k) => p521::ecdsa::Signature::from_slice(sig)
                .ok()
                .map(|s| k.verify_prehash(&z, &s).is_ok()),
        };
        match ok {
            Some(true) => Ok(()),
            _ => Err(Error::SignatureInvalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_encode_verify_round_trip_with_odd_em_bits() {
        // em_bits not a multiple of 8 exercises the top-bit masking.
        for em_bits in [1023usize, 1024 + 7, 2047] {
            let mh = HashAlg::Sha256.digest(&[b"m"]);
            let em = pss_encode(&mh, em_bits, HashAlg::Sha256, HashAlg::Sha1, 20).unwrap();
            assert_eq!(em.len(), em_bits.div_ceil(8));
            pss_verify(&mh, &em, em_bits, HashAlg::Sha256, HashAlg::Sha1, 20).unwrap();
            // Wrong MGF hash or salt length must not verify.
            assert!(pss_verify(&mh, &em, em_bits, HashAlg::Sha256, HashAlg::Sha256, 20).is_err());
            assert!(pss_verify(&mh, &em, em_bits, HashAlg::Sha256, HashAlg::Sha1, 19).is_err());
        }
    }
}
