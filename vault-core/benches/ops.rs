//! Per-operation overhead of the token core (issue: performance): a signature, an
//! AES-GCM encryption and an HMAC through `Token` (SignInit + Sign, as a PKCS#11 call
//! pair does) beside the same primitive called directly, with one and two threads.
//! The PKCS#11 adapter adds its own cost on top; `scripts/bench` measures that.
//!
//! Run: `cargo bench -p vault-core --bench ops [-- SECONDS]` (prints ops/s; nothing
//! here is asserted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use p256::ecdsa::signature::Signer;
use vault_core::config::Config;
use vault_core::mechanism::{MechParam, Mechanism};
use vault_core::pkcs11::*;
use vault_core::session::{OutLen, Output, SessionRef};
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::Attributes;

const SO: &[u8] = b"bench-so-pin";
const PIN: &[u8] = b"bench-user-pin";

fn rate(secs: f64, threads: usize, f: impl Fn(usize) + Sync) -> f64 {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < Duration::from_secs_f64(secs) {
                        f(t);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn bytes(o: Output) -> Vec<u8> {
    match o {
        Output::Bytes(b) => b,
        Output::Needed(n) => panic!("buffer too small: {n}"),
    }
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2.0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::for_dir(dir.path());
    let reg = Registry::new(cfg);
    let e = reg.create("bench", SO, None).unwrap();
    let t: Arc<Token> = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(PIN).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, PIN).unwrap();
    let sessions: Vec<SessionRef> = (0..2).map(|_| t.open_session(true).unwrap()).collect();
    let s0 = &sessions[0];

    // P-256 key pair on the token.
    let mut pubt = Attributes::new();
    pubt.set_bool(CKA_TOKEN, true);
    pubt.set(
        CKA_EC_PARAMS,
        vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    );
    pubt.set_bool(CKA_VERIFY, true);
    let mut privt = Attributes::new();
    privt.set_bool(CKA_TOKEN, true);
    privt.set_bool(CKA_SIGN, true);
    let (_pubk, privk) = t
        .generate_key_pair(s0, &Mechanism::new(CKM_EC_KEY_PAIR_GEN), &pubt, &privt)
        .unwrap();
    // AES-256 and HMAC keys.
    let mut at = Attributes::new();
    at.set_bool(CKA_TOKEN, true);
    at.set_bool(CKA_ENCRYPT, true);
    at.set_bool(CKA_SIGN, true);
    at.set_ulong(CKA_VALUE_LEN, 32);
    let aes = t
        .generate_key(s0, &Mechanism::new(CKM_AES_KEY_GEN), &at)
        .unwrap();
    let mut ht = Attributes::new();
    ht.set_bool(CKA_TOKEN, true);
    ht.set_bool(CKA_SIGN, true);
    ht.set_ulong(CKA_VALUE_LEN, 32);
    let hmac = t
        .generate_key(s0, &Mechanism::new(CKM_GENERIC_SECRET_KEY_GEN), &ht)
        .unwrap();

    let msg = [0x5au8; 64];
    let ecdsa = Mechanism::new(CKM_ECDSA_SHA256);
    let sign = |th: usize| {
        let s = &sessions[th];
        t.sign_init(s, &ecdsa, privk).unwrap();
        bytes(t.sign(s, &msg, OutLen::Buffer(64)).unwrap());
    };
    let sk = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let bare = |_: usize| {
        let _: p256::ecdsa::Signature = sk.sign(&msg);
    };
    let gcm = |th: usize| {
        let s = &sessions[th];
        let m = Mechanism {
            ty: CKM_AES_GCM,
            param: MechParam::Gcm {
                iv: vec![7; 12],
                aad: Vec::new(),
                tag_bits: 128,
            },
        };
        t.encrypt_init(s, &m, aes).unwrap();
        bytes(t.encrypt(s, &msg, OutLen::Buffer(128)).unwrap());
    };
    let hm = Mechanism::new(CKM_SHA256_HMAC);
    let mac = |th: usize| {
        let s = &sessions[th];
        t.sign_init(s, &hm, hmac).unwrap();
        bytes(t.sign(s, &msg, OutLen::Buffer(32)).unwrap());
    };

    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "workload", "1 thread", "2 threads", "scale"
    );
    for (name, f) in [
        ("P-256 sign (token)", &sign as &(dyn Fn(usize) + Sync)),
        ("P-256 sign (bare p256)", &bare),
        ("AES-256-GCM 64 B (token)", &gcm),
        ("HMAC-SHA256 64 B (token)", &mac),
    ] {
        let one = rate(secs, 1, f);
        let two = rate(secs, 2, f);
        println!("{name:<28} {one:>12.0} {two:>12.0} {:>7.2}x", two / one);
    }
}
