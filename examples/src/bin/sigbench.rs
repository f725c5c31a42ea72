//! Signature throughput of one PKCS#11 module for the schemes the shared harness
//! does not measure (EdDSA, ML-DSA): sign and verify operations per second on one
//! thread, through `C_Sign`/`C_Verify` with a session key, as JSON lines.
//!
//! Run by `scripts/bench` (the table "EdDSA and ML-DSA" of docs/bench.md). Usage:
//! `sigbench MODULE NAME SCHEME... [--ms N]` with the module's environment
//! (VTOKEN_CONF, SOFTHSM2_CONF) set by the caller; SCHEME is ed25519, ml-dsa-44,
//! ml-dsa-65 or ml-dsa-87. A token is made in the module's free slot (SO PIN
//! 12345678, user PIN 123456). A scheme the module lacks prints `"unsupported"`.

use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, MlDsaParameterSetType};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

/// A session key pair for `scheme` and the mechanism that signs with it.
type Keys = (
    Mechanism<'static>,
    cryptoki::object::ObjectHandle,
    cryptoki::object::ObjectHandle,
);

fn keys(s: &Session, scheme: &str) -> cryptoki::error::Result<Keys> {
    let (gen, pubt, mech) = match scheme {
        "ed25519" => (
            Mechanism::EccEdwardsKeyPairGen,
            vec![Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70])],
            Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
                cryptoki::mechanism::eddsa::EddsaSignatureScheme::Pure,
            )),
        ),
        _ => {
            let set = match scheme {
                "ml-dsa-44" => MlDsaParameterSetType::ML_DSA_44,
                "ml-dsa-65" => MlDsaParameterSetType::ML_DSA_65,
                _ => MlDsaParameterSetType::ML_DSA_87,
            };
            (
                Mechanism::MlDsaKeyPairGen,
                vec![Attribute::ParameterSet(set.into())],
                Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None)),
            )
        }
    };
    let mut pubt = pubt;
    pubt.extend([Attribute::Token(false), Attribute::Verify(true)]);
    let (p, k) = s.generate_key_pair(
        &gen,
        &pubt,
        &[Attribute::Token(false), Attribute::Sign(true)],
    )?;
    Ok((mech, p, k))
}

fn rate(ms: u64, mut f: impl FnMut()) -> f64 {
    // Warm up, then count whole operations in the window.
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(ms) {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut ms = 1000;
    if let Some(i) = args.iter().position(|a| a == "--ms") {
        ms = args[i + 1].parse().expect("--ms N");
        args.drain(i..i + 2);
    }
    let (module, name, schemes) = (&args[0], &args[1], &args[2..]);
    let p11 = Pkcs11::new(module).expect("load module");
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let so = AuthPin::new("12345678".into());
    let user = AuthPin::new("123456".into());
    let slot = *p11
        .get_all_slots()
        .unwrap()
        .iter()
        .find(|s| {
            p11.get_token_info(**s)
                .map(|t| !t.token_initialized())
                .unwrap_or(false)
        })
        .expect("a free slot");
    p11.init_token(slot, &so, "sigbench").expect("C_InitToken");
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&so)).unwrap();
    s.init_pin(&user).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&user)).unwrap();
    let data = [0x5au8; 32];
    for scheme in schemes {
        let line = match keys(&s, scheme) {
            Ok((m, pk, sk)) => {
                let sig = s.sign(&m, sk, &data).unwrap();
                let sign = rate(ms, || {
                    s.sign(&m, sk, &data).unwrap();
                });
                let verify = rate(ms, || {
                    s.verify(&m, pk, &data, &sig).unwrap();
                });
                serde_json::json!({"module": name, "scheme": scheme, "sign": sign, "verify": verify, "sig_len": sig.len()})
            }
            Err(e) => {
                serde_json::json!({"module": name, "scheme": scheme, "unsupported": e.to_string()})
            }
        };
        println!("{line}");
    }
}
