//! Bare asymmetric primitives of the active backend, no PKCS#11 in between: the
//! "floor" that `scripts/bench` compares each sign/verify workload against.
//!
//! ```sh
//! cargo run -p vault-core --release --example primitives [--features aws-lc] -- [ROUND_MS] [ROUNDS] [PREFIX,...]
//! ```
//! Prints one JSON object: backend name, median ops/s per workload (names as in
//! p11bench) and the operations counted per workload (warm-up excluded, for
//! instructions-per-operation counts under `perf stat`). PREFIX,... keeps only the
//! workloads whose names start with one of them; `mt` (ECDSA P-256 on one and on two
//! threads) runs only when named. The inputs match p11bench's: RSA-2048 e=65537, PKCS#1 v1.5 over the
//! SHA-256 DigestInfo of a 32-byte message (hash included, as CKM_SHA256_RSA_PKCS
//! does), PSS SHA-256/MGF1-SHA256/sLen 32 on a 32-byte hash, ECDSA on a 32-/48-byte
//! hash, OAEP SHA-256 decryption of 32 bytes.

use std::time::{Duration, Instant};

use vault_core::mechanism::backend::{
    Curve, EcPrivateKey, EcPrivateOps, EcPublicOps, RsaPrivateKey, RsaPrivateOps, RsaPublicOps,
    BACKEND,
};
use vault_core::mechanism::HashAlg;

/// Median ops/s over `rounds` rounds of `round`, and the operations counted.
fn measure(round: Duration, rounds: usize, mut op: impl FnMut()) -> (f64, u64) {
    let warm = Instant::now();
    while warm.elapsed() < round / 3 {
        op();
    }
    let mut total = 0u64;
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < round {
                op();
                n += 1;
            }
            total += n;
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    (rates[rates.len() / 2], total)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let round = Duration::from_millis(ms);
    let only: Vec<String> = args
        .next()
        .map(|a| a.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|p| name.starts_with(p.as_str()));

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

    let mut out: Vec<(&str, (f64, u64))> = Vec::new();
    let mut bench = |name: &'static str, op: &mut dyn FnMut()| {
        if wanted(name) {
            out.push((name, measure(round, rounds, op)));
        }
    };
    bench("sign.rsa2048-pkcs1-sha256", &mut || {
        rsa.sign_pkcs1(&di(&msg)).unwrap();
    });
    bench("verify.rsa2048-pkcs1-sha256", &mut || {
        rpub.verify_pkcs1(&di(&msg), &sig_pkcs1).unwrap();
    });
    bench("sign.rsa2048-pss", &mut || {
        rsa.sign_pss(&mhash, h, h, 32).unwrap();
    });
    bench("verify.rsa2048-pss", &mut || {
        rpub.verify_pss(&mhash, &sig_pss, h, h, 32).unwrap();
    });
    bench("sign.ecdsa-p256", &mut || {
        p256.sign_prehash(&h32).unwrap();
    });
    bench("verify.ecdsa-p256", &mut || {
        q256.verify_prehash(&h32, &s256).unwrap();
    });
    bench("sign.ecdsa-p384", &mut || {
        p384.sign_prehash(&h48).unwrap();
    });
    bench("verify.ecdsa-p384", &mut || {
        q384.verify_prehash(&h48, &s384).unwrap();
    });
    bench("decrypt.rsa2048-oaep", &mut || {
        rsa.decrypt_oaep(&ct, h, h, b"").unwrap();
    });
    // Two threads signing with one key, total ops/s: the scaling the hardware allows
    // (p11bench's mt.ecdsa-p256.t2 through PKCS#11). Only when asked for by name.
    for (name, threads) in [("mt.ecdsa-p256.t1", 1), ("mt.ecdsa-p256.t2", 2)] {
        if only
            .iter()
            .any(|p| p.starts_with("mt") && name.starts_with(p.as_str()))
        {
            let runs: Vec<(f64, u64)> = std::thread::scope(|sc| {
                let hs: Vec<_> = (0..threads)
                    .map(|_| {
                        sc.spawn(|| {
                            measure(round, rounds, || {
                                p256.sign_prehash(&h32).unwrap();
                            })
                        })
                    })
                    .collect();
                hs.into_iter().map(|t| t.join().unwrap()).collect()
            });
            let total = runs.iter().fold((0.0, 0), |(r, n), (a, b)| (r + a, n + b));
            out.push((name, total));
        }
    }

    let rates: Vec<String> = out
        .iter()
        .map(|(k, (v, _))| format!("\"{k}\": {v:.1}"))
        .collect();
    let totals: Vec<String> = out
        .iter()
        .map(|(k, (_, n))| format!("\"{k}\": {n}"))
        .collect();
    println!(
        "{{\"backend\": \"{BACKEND}\", \"ops_s\": {{{}}}, \"ops_total\": {{{}}}}}",
        rates.join(", "),
        totals.join(", ")
    );
}
