//! Key and certificate encodings: PKCS#8, SubjectPublicKeyInfo, X.509, and the
//! NSS-compatible `CKA_ID` convention.
//!
//! These are DER formats, so they use the RustCrypto DER crates (`pkcs1`, `pkcs8`,
//! `spki`, `x509-cert`) whichever asymmetric backend is active; the only
//! cryptography needed here (an EC public point from its scalar, RSA key
//! validation) goes through [`super::backend`].

use cryptoki_sys::*;
use der::asn1::{AnyRef, BitStringRef, OctetStringRef, UintRef};
use der::{Decode, Encode};
use pkcs8::PrivateKeyInfo;
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use super::backend::{
    Curve, EcPrivateKey, EcPrivateOps, EcPublicKey, EcPublicOps, RsaPrivateKey, RsaPrivateOps,
    RsaPublicKey, RsaPublicOps,
};
use super::keys::{curve_of, ec_pair_attributes, rsa_pair_attributes};
use super::HashAlg;
use crate::attr::Attributes;
use crate::error::{Error, Result};

const RSA_ENCRYPTION: ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;
const ID_EC_PUBLIC_KEY: ObjectIdentifier = const_oid::db::rfc5912::ID_EC_PUBLIC_KEY;
const SECP_256_R_1: ObjectIdentifier = const_oid::db::rfc5912::SECP_256_R_1;
const SECP_384_R_1: ObjectIdentifier = const_oid::db::rfc5912::SECP_384_R_1;
const SECP_521_R_1: ObjectIdentifier = const_oid::db::rfc5912::SECP_521_R_1;

fn curve_oid(curve: Curve) -> ObjectIdentifier {
    match curve {
        Curve::P256 => SECP_256_R_1,
        Curve::P384 => SECP_384_R_1,
        Curve::P521 => SECP_521_R_1,
    }
}

fn curve_from_oid(oid: ObjectIdentifier) -> Option<Curve> {
    if oid == SECP_256_R_1 {
        Some(Curve::P256)
    } else if oid == SECP_384_R_1 {
        Some(Curve::P384)
    } else if oid == SECP_521_R_1 {
        Some(Curve::P521)
    } else {
        None
    }
}

fn u(v: &[u8]) -> Result<UintRef<'_>> {
    UintRef::new(v).map_err(der_err)
}

fn der_err(e: der::Error) -> Error {
    Error::General(format!("DER encoding failed: {e}"))
}

/// `CKA_EC_POINT` value for a raw SEC1 point: a DER OCTET STRING around it (what
/// clients expect, see DESIGN.md).
pub fn ec_point_der(point: &[u8]) -> Vec<u8> {
    OctetStringRef::new(point)
        .and_then(|o| o.to_der())
        .expect("an EC point always fits an OCTET STRING")
}

/// The 32-byte key of a Curve25519 `CKA_EC_POINT` (Ed25519 public key, X25519
/// u-coordinate): a DER OCTET STRING, or bare.
pub(crate) fn point32_raw(v: &[u8]) -> Result<[u8; 32]> {
    let raw = match v {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        _ if v.len() == 32 => v,
        _ => return Err(Error::AttributeValueInvalid(CKA_EC_POINT)),
    };
    Ok(raw.try_into().expect("32 bytes"))
}

/// The raw SEC1 point of a `CKA_EC_POINT` (or ECDH public data) value, which may be
/// the point itself or a DER OCTET STRING around it. A raw point is recognised by
/// its exact length for `curve` first (a raw point can look like DER by accident).
pub fn ec_point_raw(curve: Curve, v: &[u8]) -> Result<Vec<u8>> {
    let fl = curve.field_len();
    let is_point = |p: &[u8]| {
        (p.len() == 2 * fl + 1 && p[0] == 0x04)
            || (p.len() == fl + 1 && (p[0] == 0x02 || p[0] == 0x03))
    };
    if is_point(v) {
        return Ok(v.to_vec());
    }
    if let Ok(os) = OctetStringRef::from_der(v) {
        if is_point(os.as_bytes()) {
            return Ok(os.as_bytes().to_vec());
        }
    }
    Err(Error::AttributeValueInvalid(CKA_EC_POINT))
}

/// Strips leading zero bytes (DER INTEGER → PKCS#11 big integer).
fn trim(v: &[u8]) -> &[u8] {
    let i = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    &v[i..]
}

/// PKCS#8 `PrivateKeyInfo` DER of a private key object (RSA or EC), for wrapping.
pub fn private_key_pkcs8(attrs: &Attributes) -> Result<Zeroizing<Vec<u8>>> {
    match attrs.key_type() {
        Some(CKK_RSA) => {
            let primes = match (attrs.get(CKA_PRIME_1), attrs.get(CKA_PRIME_2)) {
                (Some(p), Some(q)) if !p.is_empty() && !q.is_empty() => Some((p, q)),
                _ => None,
            };
            // Through the backend: validates the key and fills missing CRT values.
            let key = RsaPrivateKey::from_components(
                attrs.require(CKA_MODULUS)?,
                attrs.require(CKA_PUBLIC_EXPONENT)?,
                attrs.require(CKA_PRIVATE_EXPONENT)?,
                primes,
            )?;
            let c = key.components();
            let rsa = pkcs1::RsaPrivateKey {
                modulus: u(&c.n)?,
                public_exponent: u(&c.e)?,
                private_exponent: u(&c.d)?,
                prime1: u(&c.p)?,
                prime2: u(&c.q)?,
                exponent1: u(&c.dp)?,
                exponent2: u(&c.dq)?,
                coefficient: u(&c.qinv)?,
                other_prime_infos: None,
            };
            let inner = Zeroizing::new(rsa.to_der().map_err(der_err)?);
            let info = PrivateKeyInfo::new(
                AlgorithmIdentifierRef {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(AnyRef::NULL),
                },
                &inner,
            );
            Ok(Zeroizing::new(info.to_der().map_err(der_err)?))
        }
        Some(CKK_EC) => {
            let curve = curve_of(attrs)?;
            let scalar = attrs.require(CKA_VALUE)?;
            let key = EcPrivateKey::from_scalar(curve, scalar)?;
            let scalar = key.scalar();
            let doc = match curve {
                Curve::P256 => {
                    use p256::pkcs8::EncodePrivateKey;
                    p256::SecretKey::from_slice(&scalar)
                        .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?
                        .to_pkcs8_der()
                }
                Curve::P384 => {
                    use p384::pkcs8::EncodePrivateKey;
                    p384::SecretKey::from_slice(&scalar)
                        .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?
                        .to_pkcs8_der()
                }
                Curve::P521 => {
                    use p521::pkcs8::EncodePrivateKey;
                    p521::SecretKey::from_slice(&scalar)
                        .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?
                        .to_pkcs8_der()
                }
            }
            .map_err(|e| Error::General(format!("PKCS#8 encoding failed: {e}")))?;
            Ok(Zeroizing::new(doc.as_bytes().to_vec()))
        }
        _ => Err(Error::KeyNotWrappable),
    }
}

/// Parses a PKCS#8 `PrivateKeyInfo` (RSA, EC P-256/P-384/P-521) into the attributes of the
/// public and the private key object, filled as key-pair generation fills them.
/// Anything unparsable or unsupported is `WrappedKeyInvalid` (the token calls this
/// on unwrapped key blobs).
pub fn pkcs8_to_attributes(der: &[u8]) -> Result<(Attributes, Attributes)> {
    let bad = || Error::WrappedKeyInvalid;
    let info = PrivateKeyInfo::from_der(der).map_err(|_| bad())?;
    if info.algorithm.oid == RSA_ENCRYPTION {
        let rsa = pkcs1::RsaPrivateKey::from_der(info.private_key).map_err(|_| bad())?;
        if rsa.other_prime_infos.is_some() {
            return Err(bad());
        }
        let key = RsaPrivateKey::from_components(
            rsa.modulus.as_bytes(),
            rsa.public_exponent.as_bytes(),
            rsa.private_exponent.as_bytes(),
            Some((rsa.prime1.as_bytes(), rsa.prime2.as_bytes())),
        )
        .map_err(|_| bad())?;
        Ok(rsa_pair_attributes(&key.components()))
    } else if info.algorithm.oid == ID_EC_PUBLIC_KEY {
        let curve = info
            .algorithm
            .parameters_oid()
            .ok()
            .and_then(curve_from_oid)
            .ok_or_else(bad)?;
        let scalar = Zeroizing::new(match curve {
            Curve::P256 => {
                use p256::pkcs8::DecodePrivateKey;
                p256::SecretKey::from_pkcs8_der(der)
                    .map_err(|_| bad())?
                    .to_bytes()
                    .to_vec()
            }
            Curve::P384 => {
                use p384::pkcs8::DecodePrivateKey;
                p384::SecretKey::from_pkcs8_der(der)
                    .map_err(|_| bad())?
                    .to_bytes()
                    .to_vec()
            }
            Curve::P521 => {
                use p521::pkcs8::DecodePrivateKey;
                p521::SecretKey::from_pkcs8_der(der)
                    .map_err(|_| bad())?
                    .to_bytes()
                    .to_vec()
            }
        });
        let key = EcPrivateKey::from_scalar(curve, &scalar).map_err(|_| bad())?;
        Ok(ec_pair_attributes(curve.ec_params(), &key))
    } else {
        Err(bad())
    }
}

/// The raw EC point of a public or private EC key object.
fn ec_point_of(attrs: &Attributes, curve: Curve) -> Result<Vec<u8>> {
    match attrs.get(CKA_EC_POINT) {
        Some(p) => ec_point_raw(curve, p),
        None => Ok(EcPrivateKey::from_scalar(curve, attrs.require(CKA_VALUE)?)?
            .public()
            .point()),
    }
}

/// SubjectPublicKeyInfo DER of a public or private key object (RSA, EC).
pub fn public_key_spki(attrs: &Attributes) -> Result<Vec<u8>> {
    match attrs.key_type() {
        Some(CKK_RSA) => {
            let n = trim(attrs.require(CKA_MODULUS)?);
            let e = trim(attrs.require(CKA_PUBLIC_EXPONENT)?);
            let key = pkcs1::RsaPublicKey {
                modulus: UintRef::new(n).map_err(der_err)?,
                public_exponent: UintRef::new(e).map_err(der_err)?,
            };
            let inner = key.to_der().map_err(der_err)?;
            SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(AnyRef::NULL),
                },
                subject_public_key: BitStringRef::from_bytes(&inner).map_err(der_err)?,
            }
            .to_der()
            .map_err(der_err)
        }
        Some(CKK_EC) => {
            let curve = curve_of(attrs)?;
            let point = ec_point_of(attrs, curve)?;
            let oid = curve_oid(curve);
            SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid: ID_EC_PUBLIC_KEY,
                    parameters: Some(AnyRef::from(&oid)),
                },
                subject_public_key: BitStringRef::from_bytes(&point).map_err(der_err)?,
            }
            .to_der()
            .map_err(der_err)
        }
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// Public key object attributes (`CKA_CLASS`, `CKA_KEY_TYPE`, and `CKA_MODULUS`,
/// `CKA_PUBLIC_EXPONENT`, `CKA_MODULUS_BITS` or `CKA_EC_PARAMS`, `CKA_EC_POINT`)
/// from a SubjectPublicKeyInfo DER. Unparsable or unsupported keys are `DataInvalid`.
pub fn spki_to_attributes(der: &[u8]) -> Result<Attributes> {
    let bad = || Error::DataInvalid;
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| bad())?;
    let bits = spki.subject_public_key.as_bytes().ok_or_else(bad)?;
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    if spki.algorithm.oid == RSA_ENCRYPTION {
        let key = pkcs1::RsaPublicKey::from_der(bits).map_err(|_| bad())?;
        let (n, e) = (key.modulus.as_bytes(), key.public_exponent.as_bytes());
        RsaPublicKey::new(n, e)?;
        a.set_ulong(CKA_KEY_TYPE, CKK_RSA);
        a.set(CKA_MODULUS, n.to_vec());
        a.set(CKA_PUBLIC_EXPONENT, e.to_vec());
        a.set_ulong(CKA_MODULUS_BITS, super::keys::bit_len(n) as CK_ULONG);
    } else if spki.algorithm.oid == ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters_oid()
            .ok()
            .and_then(curve_from_oid)
            .ok_or_else(bad)?;
        let key = EcPublicKey::from_point(curve, bits).map_err(|_| bad())?;
        a.set_ulong(CKA_KEY_TYPE, CKK_EC);
        a.set(CKA_EC_PARAMS, curve.ec_params().to_vec());
        a.set(CKA_EC_POINT, ec_point_der(&key.point()));
    } else {
        return Err(bad());
    }
    Ok(a)
}

/// The `CKA_ID` NSS derives for a key (so Firefox pairs keys and certificates):
/// SHA-1 of the modulus (no leading zeros) for RSA, SHA-1 of the uncompressed EC
/// point for EC. Takes a public or private key object's attributes; empty if the
/// key type is unsupported or the attributes are incomplete.
pub fn key_id(public_attrs: &Attributes) -> Vec<u8> {
    let material = match public_attrs.key_type() {
        Some(CKK_RSA) => public_attrs.get(CKA_MODULUS).map(|n| trim(n).to_vec()),
        Some(CKK_EC) => curve_of(public_attrs)
            .and_then(|c| {
                let p = ec_point_of(public_attrs, c)?;
                // Normalise compressed points to the uncompressed form.
                Ok(EcPublicKey::from_point(c, &p)?.point())
            })
            .ok(),
        _ => None,
    };
    material
        .map(|m| HashAlg::Sha1.digest(&[&m]))
        .unwrap_or_default()
}

/// Certificate object attributes from an X.509 DER certificate: `CKA_CLASS`,
/// `CKA_CERTIFICATE_TYPE`, `CKA_SUBJECT`, `CKA_ISSUER`, `CKA_SERIAL_NUMBER` (DER
/// INTEGER), `CKA_VALUE` and `CKA_ID` ([`key_id`] of its public key; for key types
/// the token does not support, SHA-1 of the subjectPublicKey bits, which is what
/// NSS uses for EC keys as well).
pub fn certificate_attributes(der: &[u8]) -> Result<Attributes> {
    let bad = || Error::AttributeValueInvalid(CKA_VALUE);
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| bad())?;
    let tbs = &cert.tbs_certificate;
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    a.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    a.set(CKA_SUBJECT, tbs.subject.to_der().map_err(der_err)?);
    a.set(CKA_ISSUER, tbs.issuer.to_der().map_err(der_err)?);
    a.set(
        CKA_SERIAL_NUMBER,
        tbs.serial_number.to_der().map_err(der_err)?,
    );
    a.set(CKA_VALUE, der.to_vec());
    let spki_der = tbs.subject_public_key_info.to_der().map_err(der_err)?;
    let id = spki_to_attributes(&spki_der)
        .map(|pk| key_id(&pk))
        .ok()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| {
            HashAlg::Sha1.digest(&[tbs.subject_public_key_info.subject_public_key.raw_bytes()])
        });
    a.set(CKA_ID, id);
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::{generate_key_pair, Mechanism};
    use std::process::Command;

    fn ec_pair(curve: Curve) -> (Attributes, Attributes) {
        let mut pt = Attributes::new();
        pt.set(CKA_EC_PARAMS, curve.ec_params().to_vec());
        generate_key_pair(
            &Mechanism::new(CKM_EC_KEY_PAIR_GEN),
            &pt,
            &Attributes::new(),
        )
        .unwrap()
    }

    #[test]
    fn ec_point_forms() {
        let (pa, _) = ec_pair(Curve::P256);
        let wrapped = pa.get(CKA_EC_POINT).unwrap();
        let raw = ec_point_raw(Curve::P256, wrapped).unwrap();
        assert_eq!(raw.len(), 65);
        assert_eq!(ec_point_raw(Curve::P256, &raw).unwrap(), raw);
        assert_eq!(ec_point_der(&raw), wrapped);
        assert!(ec_point_raw(Curve::P384, wrapped).is_err());
        // A raw point whose second byte is 0x3f looks like DER of 63 bytes; the
        // length rule keeps it raw.
        let mut tricky = raw.clone();
        tricky[1] = 0x3f;
        assert_eq!(ec_point_raw(Curve::P256, &tricky).unwrap(), tricky);
    }

    #[test]
    fn ec_pkcs8_and_spki_round_trip() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let (pa, sa) = ec_pair(curve);
            let p8 = private_key_pkcs8(&sa).unwrap();
            let (pa2, sa2) = pkcs8_to_attributes(&p8).unwrap();
            assert_eq!(sa2.get(CKA_VALUE), sa.get(CKA_VALUE));
            assert_eq!(pa2.get(CKA_EC_POINT), pa.get(CKA_EC_POINT));
            let spki = public_key_spki(&pa).unwrap();
            assert_eq!(public_key_spki(&sa).unwrap(), spki);
            let back = spki_to_attributes(&spki).unwrap();
            assert_eq!(back.get(CKA_EC_POINT), pa.get(CKA_EC_POINT));
            assert_eq!(back.get(CKA_EC_PARAMS), pa.get(CKA_EC_PARAMS));
            let id = key_id(&pa);
            assert_eq!(id.len(), 20);
            assert_eq!(key_id(&sa), id);
            let raw = ec_point_raw(curve, pa.get(CKA_EC_POINT).unwrap()).unwrap();
            assert_eq!(id, HashAlg::Sha1.digest(&[&raw]));
        }
    }

    #[test]
    fn rsa_pkcs8_round_trip_with_openssl_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let st = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
            ])
            .arg("-out")
            .arg(&path)
            .output()
            .unwrap();
        assert!(st.status.success());
        let p8 = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(p8.status.success());
        let der = p8.stdout;
        let (pa, sa) = pkcs8_to_attributes(&der).unwrap();
        assert_eq!(pa.get_ulong(CKA_MODULUS_BITS).unwrap(), Some(1024));
        assert_eq!(pa.get(CKA_PUBLIC_EXPONENT), Some(&[1u8, 0, 1][..]));
        // Re-encoding gives back the same DER OpenSSL wrote.
        assert_eq!(&private_key_pkcs8(&sa).unwrap()[..], &der[..]);
        // Without CRT values the encoder recovers them.
        let mut bare = Attributes::new();
        for t in [
            CKA_CLASS,
            CKA_KEY_TYPE,
            CKA_MODULUS,
            CKA_PUBLIC_EXPONENT,
            CKA_PRIVATE_EXPONENT,
        ] {
            bare.set(t, sa.get(t).unwrap().to_vec());
        }
        assert_eq!(&private_key_pkcs8(&bare).unwrap()[..], &der[..]);
        let spki = public_key_spki(&pa).unwrap();
        assert_eq!(public_key_spki(&sa).unwrap(), spki);
        let back = spki_to_attributes(&spki).unwrap();
        assert_eq!(back.get(CKA_MODULUS), pa.get(CKA_MODULUS));
        assert_eq!(
            key_id(&pa),
            HashAlg::Sha1.digest(&[pa.get(CKA_MODULUS).unwrap()])
        );
        assert!(matches!(
            pkcs8_to_attributes(&der[..der.len() - 1]),
            Err(Error::WrappedKeyInvalid)
        ));
    }

    #[test]
    fn certificate_attributes_from_openssl_cert() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        let cert = dir.path().join("c.der");
        let st = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=vtoken test",
            ])
            .args([
                "-set_serial",
                "4660",
                "-days",
                "1",
                "-outform",
                "DER",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let der = std::fs::read(&cert).unwrap();
        let a = certificate_attributes(&der).unwrap();
        assert_eq!(a.class(), Some(CKO_CERTIFICATE));
        assert_eq!(a.get_ulong(CKA_CERTIFICATE_TYPE).unwrap(), Some(CKC_X_509));
        assert_eq!(
            a.get(CKA_SERIAL_NUMBER),
            Some(&[0x02, 0x02, 0x12, 0x34][..])
        );
        assert_eq!(a.get(CKA_SUBJECT), a.get(CKA_ISSUER));
        assert!(a
            .get(CKA_SUBJECT)
            .unwrap()
            .windows(11)
            .any(|w| w == b"vtoken test"));
        // CKA_ID equals the key id of the certificate's key pair.
        let p8 = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(p8.status.success());
        let (pa, _) = pkcs8_to_attributes(&p8.stdout).unwrap();
        assert_eq!(a.get(CKA_ID).unwrap(), &key_id(&pa)[..]);
        assert!(certificate_attributes(b"not a certificate").is_err());
    }
}
