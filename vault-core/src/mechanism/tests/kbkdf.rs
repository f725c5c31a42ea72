//! SP 800-108: counter and feedback mode with HMAC and AES-CMAC against OpenSSL's
//! KBKDF (`openssl kdf … KBKDF`: [i]₃₂ ‖ label ‖ 0x00 ‖ context ‖ [L]₃₂, and in
//! feedback mode the previous block first), several keys from one call, and the
//! parameter rules.

use crate::mechanism::kbkdf::{CounterFormat, DataParam, DkmFormat, Params};
use crate::mechanism::test_support::*;

const BE32: CounterFormat = CounterFormat {
    little_endian: false,
    bits: 32,
};

fn dkm(method: u64) -> DataParam {
    DataParam::DkmLength(DkmFormat {
        method,
        little_endian: false,
        bits: 32,
    })
}

/// OpenSSL's layout: label ‖ 0x00 ‖ context ‖ L, after the iteration variable (and
/// the counter in feedback mode).
fn openssl_layout(feedback: bool, label: &[u8], context: &[u8]) -> Vec<DataParam> {
    let mut d = if feedback {
        vec![DataParam::Iteration(None), DataParam::Counter(BE32)]
    } else {
        vec![DataParam::Iteration(Some(BE32))]
    };
    d.extend([
        DataParam::Bytes(label.to_vec()),
        DataParam::Bytes(vec![0]),
        DataParam::Bytes(context.to_vec()),
        dkm(CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS),
    ]);
    d
}

fn kbkdf(
    ty: CK_MECHANISM_TYPE,
    prf: CK_MECHANISM_TYPE,
    data: Vec<DataParam>,
    iv: &[u8],
) -> Mechanism {
    mech(
        ty,
        MechParam::Kbkdf(Box::new(Params {
            prf,
            data,
            iv: iv.to_vec(),
            additional: vec![],
        })),
    )
}

fn len_template(len: u64) -> Attributes {
    let mut t = Attributes::new();
    t.set_ulong(CKA_VALUE_LEN, len);
    t
}

/// `openssl kdf -binary` with these options.
fn openssl_kbkdf(len: usize, opts: &[String]) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let l = len.to_string();
    let mut args = vec!["kdf", "-binary", "-out", "out", "-keylen", &l];
    for o in opts {
        args.extend(["-kdfopt", o]);
    }
    args.push("KBKDF");
    assert_ok(openssl(&args, d.path()), "openssl kdf KBKDF");
    std::fs::read(d.path().join("out")).unwrap()
}

#[test]
fn counter_and_feedback_mode_equal_openssl() {
    let key = [0x4bu8; 32];
    let (label, context) = (b"vtoken label".to_vec(), b"context".to_vec());
    // (PRF, key type, OpenSSL's MAC options, PRF block: OpenSSL wants an IV of it)
    let prfs = [
        (
            CKM_SHA256_HMAC,
            CKK_GENERIC_SECRET,
            vec!["mac:HMAC", "digest:SHA256"],
            32,
        ),
        (
            CKM_SHA512_HMAC,
            CKK_SHA512_HMAC,
            vec!["mac:HMAC", "digest:SHA512"],
            64,
        ),
        (
            CKM_AES_CMAC,
            CKK_AES,
            vec!["mac:CMAC", "cipher:AES-256-CBC"],
            16,
        ),
    ];
    for (prf, kt, mac, block) in prfs {
        let base = secret(kt, &key);
        let iv = vec![9u8; block];
        for feedback in [false, true] {
            // 150 bytes: several PRF blocks for every PRF.
            let len = 150;
            let ty = if feedback {
                CKM_SP800_108_FEEDBACK_KDF
            } else {
                CKM_SP800_108_COUNTER_KDF
            };
            let m = kbkdf(
                ty,
                prf,
                openssl_layout(feedback, &label, &context),
                if feedback { &iv } else { &[] },
            );
            let got = derive(&m, &base, &len_template(len as u64)).unwrap();
            let mut opts: Vec<String> = mac.iter().map(|s| s.to_string()).collect();
            opts.push(format!("hexkey:{}", hex::encode(key)));
            opts.push(format!("hexsalt:{}", hex::encode(&label)));
            opts.push(format!("hexinfo:{}", hex::encode(&context)));
            if feedback {
                opts.push("mode:FEEDBACK".into());
                opts.push(format!("hexseed:{}", hex::encode(&iv)));
            }
            assert_eq!(
                &got[..],
                &openssl_kbkdf(len, &opts)[..],
                "{prf:#x} feedback={feedback}"
            );
        }
    }
}

#[test]
fn several_keys_start_on_fresh_blocks() {
    let base = secret(CKK_GENERIC_SECRET, &[1; 32]);
    let m = kbkdf(
        CKM_SP800_108_COUNTER_KDF,
        CKM_SHA256_HMAC,
        vec![
            DataParam::Iteration(Some(BE32)),
            DataParam::Bytes(b"x".to_vec()),
            dkm(CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS),
        ],
        &[],
    );
    let (a, b, c) = (len_template(16), len_template(40), len_template(1));
    let keys = crate::mechanism::kbkdf::derive_all(&m, &base, &[&a, &b, &c]).unwrap();
    assert_eq!(
        keys.iter().map(|k| k.len()).collect::<Vec<_>>(),
        [16, 40, 1]
    );
    // The same material as one long derivation: blocks 1, 2-3 and 4 (the segment
    // sum, 4 × 32 bytes, is the same in both).
    let whole = derive(&m, &base, &len_template(128)).unwrap();
    assert_eq!(&keys[0][..], &whole[..16]);
    assert_eq!(&keys[1][..], &whole[32..72]);
    assert_eq!(&keys[2][..], &whole[96..97]);
}

#[test]
fn parameter_rules() {
    let base = secret(CKK_AES, &[2; 32]);
    let t = len_template(32);
    let bad = |ty, data: Vec<DataParam>, iv: &[u8]| {
        let r = derive(&kbkdf(ty, CKM_AES_CMAC, data, iv), &base, &t);
        assert!(matches!(r, Err(Error::MechanismParamInvalid(_))), "{r:?}");
    };
    let (ctr, fb) = (CKM_SP800_108_COUNTER_KDF, CKM_SP800_108_FEEDBACK_KDF);
    let len = dkm(CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS);
    // Counter mode: the iteration variable needs a format; no extra counter; no IV;
    // one length at most; the iteration variable is required.
    bad(ctr, vec![DataParam::Iteration(None)], &[]);
    bad(
        ctr,
        vec![DataParam::Iteration(Some(BE32)), DataParam::Counter(BE32)],
        &[],
    );
    bad(ctr, vec![DataParam::Iteration(Some(BE32))], &[1; 16]);
    bad(
        ctr,
        vec![DataParam::Iteration(Some(BE32)), len.clone(), len.clone()],
        &[],
    );
    bad(ctr, vec![DataParam::Bytes(vec![1])], &[]);
    // Feedback mode: the iteration variable is the previous block (no format).
    bad(fb, vec![DataParam::Iteration(Some(BE32))], &[]);
    // Widths: counters 8..=32 bits in whole bytes.
    let odd = CounterFormat {
        little_endian: false,
        bits: 12,
    };
    bad(ctr, vec![DataParam::Iteration(Some(odd))], &[]);
    // An 8-bit counter cannot count past 255 blocks (here 256 × 16 bytes).
    let c8 = CounterFormat {
        little_endian: true,
        bits: 8,
    };
    let m = kbkdf(ctr, CKM_AES_CMAC, vec![DataParam::Iteration(Some(c8))], &[]);
    assert!(derive(&m, &base, &len_template(255 * 16)).is_ok());
    assert!(matches!(
        derive(&m, &base, &len_template(256 * 16)),
        Err(Error::MechanismParamInvalid(_))
    ));
    // The key must fit the PRF; the length is required.
    let m = kbkdf(
        ctr,
        CKM_AES_CMAC,
        vec![DataParam::Iteration(Some(BE32))],
        &[],
    );
    assert!(matches!(
        derive(&m, &secret(CKK_GENERIC_SECRET, &[1; 32]), &t),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        derive(&m, &base, &Attributes::new()),
        Err(Error::TemplateIncomplete(_))
    ));
}
