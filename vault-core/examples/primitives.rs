//! Bare asymmetric primitives of the active backend, no PKCS#11 in between: the
//! "floor" that `scripts/bench` compares each sign/verify workload against.
//!
//! ```sh
//! cargo run -p vault-core --release --example primitives [--features aws-lc] -- [ROUND_MS] [ROUNDS]
//! ```
//! Prints one JSON object: backend name and median ops/s per workload (names as in
//! p11bench). The inputs match p11bench's: RSA-2048 e=65537, PKCS#1 v1.5 over the
//! SHA-256 DigestInfo of a 32-byte message (hash included, as CKM_SHA256_RSA_PKCS
//! does), PSS SHA-256/MGF1-SHA256/sLen 32 on a 32-byte hash, ECDSA on a 32-/48-byte
//! hash, OAEP SHA-256 decryption of 32 bytes.

use std::time::{Duration, Instant};

use vault_core::mechanism::backend::{
    Curve, EcPrivateKey, EcPrivateOps, EcPublicOps, RsaPrivateKey, RsaPrivateOps, RsaPublicOps,
    BACKEND,
};
use vault_core::mechanism::HashAlg;

fn measure(round: Duration, rounds: usize, mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < round / 3 {
        op();
    }
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < round {
                op();
                n += 1;
            }
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[rates.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let round = Duration::from_millis(ms);

    let c = RsaPrivateKey::generate(2048, &[1, 0, 1]).expect("RSA keygen");
    let rsa = RsaPrivateKey::from_components(&c.n, &c.e, &c.d, Some((&c.p, &c.q))).unwrap();
    let rpub = rsa.public();
    let msg = [0x5au8; 32];
    let h = HashAlg::Sha256;
    let di = |m: &[u8]| [h.digest_info_prefix(), &h.digest(&[m])[..]].concat();
    let mhash = h.digest(&[&msg]);
    let sig_pkcs1 = rsa.sign_pkcs1(&di(&msg)).unwrap();
    let sig_pss = rsa.sign_pss(&mhash, h, h, 32).unwrap();
    let ct = rpub.encrypt_oaep(&msg, h, h, b"").unwrap();

    let p256 = EcPrivateKey::generate(Curve::P256).unwrap();
    let p384 = EcPrivateKey::generate(Curve::P384).unwrap();
    let (q256, q384) = (p256.public(), p384.public());
    let (h32, h48) = ([0x11u8; 32], [0x22u8; 48]);
    let (s256, s384) = (
        p256.sign_prehash(&h32).unwrap(),
        p384.sign_prehash(&h48).unwrap(),
    );

    let mut out: Vec<(&str, f64)> = Vec::new();
    out.push((
        "sign.rsa2048-pkcs1-sha256",
        measure(round, rounds, || {
            rsa.sign_pkcs1(&di(&msg)).unwrap();
        }),
    ));
    out.push((
        "verify.rsa2048-pkcs1-sha256",
        measure(round, rounds, || {
            rpub.verify_pkcs1(&di(&msg), &sig_pkcs1).unwrap();
        }),
    ));
    out.push((
        "sign.rsa2048-pss",
        measure(round, rounds, || {
            rsa.sign_pss(&mhash, h, h, 32).unwrap();
        }),
    ));
    out.push((
        "verify.rsa2048-pss",
        measure(round, rounds, || {
            rpub.verify_pss(&mhash, &sig_pss, h, h, 32).unwrap();
        }),
    ));
    out.push((
        "sign.ecdsa-p256",
        measure(round, rounds, || {
            p256.sign_prehash(&h32).unwrap();
        }),
    ));
    out.push((
        "verify.ecdsa-p256",
        measure(round, rounds, || {
            q256.verify_prehash(&h32, &s256).unwrap();
        }),
    ));
    out.push((
        "sign.ecdsa-p384",
        measure(round, rounds, || {
            p384.sign_prehash(&h48).unwrap();
        }),
    ));
    out.push((
        "verify.ecdsa-p384",
        measure(round, rounds, || {
            q384.verify_prehash(&h48, &s384).unwrap();
        }),
    ));
    out.push((
        "decrypt.rsa2048-oaep",
        measure(round, rounds, || {
            rsa.decrypt_oaep(&ct, h, h, b"").unwrap();
        }),
    ));

    let body: Vec<String> = out
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v:.1}"))
        .collect();
    println!(
        "{{\"backend\": \"{BACKEND}\", \"ops_s\": {{{}}}}}",
        body.join(", ")
    );
}
