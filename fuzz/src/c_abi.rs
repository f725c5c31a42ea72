//! The C ABI of `libvtoken_pkcs11`: a byte-driven interpreter that calls the
//! exported `C_*` functions (as Rust functions of the `vtoken_pkcs11` rlib) in
//! random order with valid and random handles, templates with random types,
//! lengths and NULL values, mechanism parameters, short output buffers and NULL
//! pointers.
//!
//! Rules the harness keeps so that every input is a legal C caller: a non-NULL
//! pointer always points to as many bytes as its length says (a lie there is
//! undefined behaviour no module can detect), and `C_WaitForSlotEvent` is called
//! with `CKF_DONT_BLOCK`. RSA key-pair generation is skipped (seconds per call
//! under the sanitizer), and so is `C_InitPIN` after a `C_InitToken` succeeded in
//! the same input: the first user PIN of a token makes its RSA-2048 device key.
//!
//! Checks: no panic (the module catches them; the fuzzer's panic hook and the
//! replay test's hook still see them), a required NULL pointer never gives
//! `CKR_OK`, and the length protocol is kept (`CKR_OK` never claims more bytes
//! than the buffer holds, `CKR_BUFFER_TOO_SMALL` reports a larger need).
//!
//! Each input starts from the same token: a pristine copy of the token directory
//! is restored and the module initialized before the input, finalized after.

use std::ffi::c_void;
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::{Mutex, OnceLock};

use cryptoki_sys::*;
use vtoken_pkcs11::{crypto::*, general::*, interface::*, keys::*, object::*, session::*, slot::*};

/// The token's user PIN.
pub const USER_PIN: &[u8] = b"fuzz-user-pin";
/// The token's SO PIN.
pub const SO_PIN: &[u8] = b"fuzz-so-pin";
/// DER OID of P-256 (`CKA_EC_PARAMS`).
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

const ATTRS: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_KEY_TYPE,
    CKA_ID,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DERIVE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_CHECK_VALUE,
    CKA_PRIME_1,
    CKA_WRAP_TEMPLATE,
    CKA_VENDOR_DEFINED | 0x5654_0001,
    CKA_VENDOR_DEFINED | 0x5654_0002,
];

const CLASSES: &[CK_ULONG] = &[
    CKO_DATA,
    CKO_CERTIFICATE,
    CKO_PUBLIC_KEY,
    CKO_PRIVATE_KEY,
    CKO_SECRET_KEY,
    CKO_OTP_KEY,
];
const KEY_TYPES: &[CK_ULONG] = &[
    CKK_RSA,
    CKK_EC,
    CKK_AES,
    CKK_GENERIC_SECRET,
    CKK_DES3,
    CKK_SHA256_HMAC,
];
const HASHES: &[CK_ULONG] = &[CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA224];
const MGFS: &[CK_ULONG] = &[
    CKG_MGF1_SHA1,
    CKG_MGF1_SHA256,
    CKG_MGF1_SHA384,
    CKG_MGF1_SHA512,
];

struct Fixture {
    tokens: PathBuf,
    pristine: PathBuf,
    /// The initialized token's slot.
    slot: CK_SLOT_ID,
    /// Objects on the pristine token (their handles are stable: ids in the file).
    objects: Vec<CK_OBJECT_HANDLE>,
    /// The token's mechanisms.
    mechanisms: Vec<CK_MECHANISM_TYPE>,
    /// The EC public point of the token's EC key (for ECDH parameters).
    ec_point: Vec<u8>,
}

/// One process runs one input at a time (the module's state is global).
static LOCK: Mutex<()> = Mutex::new(());

fn attr(t: CK_ATTRIBUTE_TYPE, v: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: v.as_mut_ptr() as *mut c_void,
        ulValueLen: v.len() as CK_ULONG,
    }
}

fn check(rv: CK_RV, what: &str) {
    assert_eq!(rv, CKR_OK, "fixture: {what} gave 0x{rv:x}");
}

fn copy_dir(from: &PathBuf, to: &PathBuf) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        // Not `fs::copy`: its copy_file_range is not retried when libFuzzer's
        // timer signal interrupts it (EINTR); read and write_all are.
        std::fs::write(to.join(e.file_name()), std::fs::read(e.path()).unwrap()).unwrap();
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| unsafe { make_fixture() })
}

unsafe fn make_fixture() -> Fixture {
    let dir = crate::support::scratch_dir("abi");
    let tokens = dir.join("tokens");
    let conf = dir.join("vtoken.toml");
    std::fs::write(
        &conf,
        format!("token_dir = \"{}\"\nkdf = \"test\"\n", tokens.display()),
    )
    .unwrap();
    std::env::set_var("VTOKEN_CONF", &conf);
    std::env::remove_var("VTOKEN_PROMPT");
    check(C_Initialize(null_mut()), "C_Initialize");
    let mut slots = [0 as CK_SLOT_ID; 4];
    let mut n: CK_ULONG = 4;
    check(
        C_GetSlotList(0, slots.as_mut_ptr(), &mut n),
        "C_GetSlotList",
    );
    assert_eq!(n, 1, "a fresh token directory has one (free) slot");
    let mut label = [b' '; 32];
    label[..4].copy_from_slice(b"fuzz");
    let so = SO_PIN.as_ptr() as *mut u8;
    let user = USER_PIN.as_ptr() as *mut u8;
    check(
        C_InitToken(slots[0], so, SO_PIN.len() as CK_ULONG, label.as_mut_ptr()),
        "C_InitToken",
    );
    n = 4;
    check(
        C_GetSlotList(0, slots.as_mut_ptr(), &mut n),
        "C_GetSlotList",
    );
    let mut slot = None;
    for &s in &slots[..n as usize] {
        let mut info: CK_TOKEN_INFO = std::mem::zeroed();
        check(C_GetTokenInfo(s, &mut info), "C_GetTokenInfo");
        if info.flags & CKF_TOKEN_INITIALIZED != 0 {
            slot = Some(s);
        }
    }
    let slot = slot.expect("the initialized token's slot");
    let mut h: CK_SESSION_HANDLE = 0;
    let rw = CKF_SERIAL_SESSION | CKF_RW_SESSION;
    check(
        C_OpenSession(slot, rw, null_mut(), None, &mut h),
        "C_OpenSession",
    );
    check(
        C_Login(h, CKU_SO, so, SO_PIN.len() as CK_ULONG),
        "C_Login SO",
    );
    check(C_InitPIN(h, user, USER_PIN.len() as CK_ULONG), "C_InitPIN");
    check(C_Logout(h), "C_Logout");
    check(
        C_Login(h, CKU_USER, user, USER_PIN.len() as CK_ULONG),
        "C_Login",
    );

    let (mut t, mut f) = ([CK_TRUE], [CK_FALSE]);
    let mut objects = Vec::new();
    // An AES key for encryption and wrapping.
    let mut len16 = 16u64.to_ne_bytes();
    let mut aes_label = *b"aes";
    let mut tmpl = [
        attr(CKA_TOKEN, &mut t),
        attr(CKA_VALUE_LEN, &mut len16),
        attr(CKA_LABEL, &mut aes_label),
        attr(CKA_ENCRYPT, &mut t),
        attr(CKA_DECRYPT, &mut t),
        attr(CKA_WRAP, &mut t),
        attr(CKA_UNWRAP, &mut t),
        attr(CKA_EXTRACTABLE, &mut t),
        attr(CKA_SENSITIVE, &mut f),
    ];
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_KEY_GEN,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let mut k: CK_OBJECT_HANDLE = 0;
    let rv = C_GenerateKey(h, &mut m, tmpl.as_mut_ptr(), tmpl.len() as CK_ULONG, &mut k);
    check(rv, "C_GenerateKey AES");
    objects.push(k);
    // A generic secret for HMAC and derivation.
    let mut len32 = 32u64.to_ne_bytes();
    let mut tmpl = [
        attr(CKA_TOKEN, &mut t),
        attr(CKA_VALUE_LEN, &mut len32),
        attr(CKA_SIGN, &mut t),
        attr(CKA_VERIFY, &mut t),
        attr(CKA_DERIVE, &mut t),
        attr(CKA_EXTRACTABLE, &mut t),
    ];
    m.mechanism = CKM_GENERIC_SECRET_KEY_GEN;
    let rv = C_GenerateKey(h, &mut m, tmpl.as_mut_ptr(), tmpl.len() as CK_ULONG, &mut k);
    check(rv, "C_GenerateKey generic secret");
    objects.push(k);
    // P-256 and RSA key pairs.
    let mut params = P256.to_vec();
    let mut bits = 2048u64.to_ne_bytes();
    let mut exp = [1u8, 0, 1];
    for ty in [CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN] {
        let mut pubt = if ty == CKM_EC_KEY_PAIR_GEN {
            vec![attr(CKA_EC_PARAMS, &mut params)]
        } else {
            vec![
                attr(CKA_MODULUS_BITS, &mut bits),
                attr(CKA_PUBLIC_EXPONENT, &mut exp),
            ]
        };
        pubt.extend([
            attr(CKA_TOKEN, &mut t),
            attr(CKA_VERIFY, &mut t),
            attr(CKA_ENCRYPT, &mut t),
            attr(CKA_WRAP, &mut t),
        ]);
        let mut privt = [
            attr(CKA_TOKEN, &mut t),
            attr(CKA_SIGN, &mut t),
            attr(CKA_DECRYPT, &mut t),
            attr(CKA_UNWRAP, &mut t),
            attr(CKA_DERIVE, &mut t),
        ];
        m.mechanism = ty;
        let (mut p, mut s) = (0, 0);
        let rv = C_GenerateKeyPair(
            h,
            &mut m,
            pubt.as_mut_ptr(),
            pubt.len() as CK_ULONG,
            privt.as_mut_ptr(),
            privt.len() as CK_ULONG,
            &mut p,
            &mut s,
        );
        check(rv, "C_GenerateKeyPair");
        objects.extend([p, s]);
    }
    // A public data object.
    let mut class = CKO_DATA.to_ne_bytes();
    let mut value = *b"hello";
    let mut tmpl = [
        attr(CKA_CLASS, &mut class),
        attr(CKA_TOKEN, &mut t),
        attr(CKA_PRIVATE, &mut f),
        attr(CKA_VALUE, &mut value),
    ];
    check(
        C_CreateObject(h, tmpl.as_mut_ptr(), tmpl.len() as CK_ULONG, &mut k),
        "C_CreateObject",
    );
    objects.push(k);
    let mut point = vec![0u8; 128];
    let mut q = [attr(CKA_EC_POINT, &mut point)];
    check(
        C_GetAttributeValue(h, objects[2], q.as_mut_ptr(), 1),
        "C_GetAttributeValue",
    );
    point.truncate(q[0].ulValueLen as usize);
    let mut mechanisms = vec![0; 128];
    let mut n: CK_ULONG = 128;
    check(
        C_GetMechanismList(slot, mechanisms.as_mut_ptr(), &mut n),
        "C_GetMechanismList",
    );
    mechanisms.truncate(n as usize);
    check(C_Finalize(null_mut()), "C_Finalize");
    let pristine = dir.join("pristine");
    copy_dir(&tokens, &pristine);
    Fixture {
        tokens,
        pristine,
        slot,
        objects,
        mechanisms,
        ec_point: point,
    }
}

/// Reads fields from the fuzz input; past its end every read gives zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.byte() as usize).min(max).min(self.0.len());
        let (v, rest) = self.0.split_at(n);
        self.0 = rest;
        v.to_vec()
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.byte() as usize % from.len()]
    }
}

/// Memory for one call's arguments: every pointer handed to the module points
/// into a buffer kept here until the call returns.
#[derive(Default)]
struct Arena {
    bufs: Vec<Vec<u8>>,
    attrs: Vec<Vec<CK_ATTRIBUTE>>,
}

impl Arena {
    fn keep(&mut self, v: Vec<u8>) -> *mut u8 {
        self.bufs.push(v);
        let b = self.bufs.last_mut().unwrap();
        if b.is_empty() {
            // A valid, non-NULL pointer to nothing.
            std::ptr::NonNull::dangling().as_ptr()
        } else {
            b.as_mut_ptr()
        }
    }
    fn keep_struct<T: Copy>(&mut self, v: T) -> (*mut c_void, CK_ULONG) {
        let n = std::mem::size_of::<T>();
        let mut b = vec![0u8; n];
        unsafe { std::ptr::write_unaligned(b.as_mut_ptr() as *mut T, v) };
        (self.keep(b) as *mut c_void, n as CK_ULONG)
    }
}

/// The interpreter's view: handles it has seen, plus the fixture's.
struct Vm {
    sessions: Vec<CK_SESSION_HANDLE>,
    objects: Vec<CK_OBJECT_HANDLE>,
    slots: Vec<CK_SLOT_ID>,
    /// A `C_InitToken` succeeded: a token without a device key may exist.
    initialized_token: bool,
}

impl Vm {
    fn handle(inp: &mut Input, known: &[u64]) -> u64 {
        let b = inp.byte();
        match b {
            0..=0xef if !known.is_empty() => known[b as usize % known.len()],
            0xf0 => 0,
            0xf1 => u64::MAX,
            0xf2 => 1u64 << 40,
            _ => inp.u64(),
        }
    }
    fn session(&self, inp: &mut Input) -> CK_SESSION_HANDLE {
        Vm::handle(inp, &self.sessions)
    }
    fn object(&self, inp: &mut Input) -> CK_OBJECT_HANDLE {
        Vm::handle(inp, &self.objects)
    }
    fn slot(&self, inp: &mut Input) -> CK_SLOT_ID {
        Vm::handle(inp, &self.slots)
    }
}

/// A byte string argument: `(pointer, length, whether NULL with a length)`.
fn data(inp: &mut Input, a: &mut Arena) -> (*mut u8, CK_ULONG, bool) {
    match inp.byte() % 8 {
        0 => (null_mut(), 0, false),
        1 => (null_mut(), 1 + inp.byte() as CK_ULONG, true),
        2 => {
            let n = inp.byte() as usize * 64;
            (a.keep(vec![0x61; n]), n as CK_ULONG, false)
        }
        _ => {
            let v = inp.bytes(255);
            let n = v.len() as CK_ULONG;
            (a.keep(v), n, false)
        }
    }
}

fn pin(inp: &mut Input, a: &mut Arena) -> (*mut u8, CK_ULONG, bool) {
    match inp.byte() % 6 {
        0 | 1 => (a.keep(USER_PIN.to_vec()), USER_PIN.len() as CK_ULONG, false),
        2 => (a.keep(SO_PIN.to_vec()), SO_PIN.len() as CK_ULONG, false),
        3 => (null_mut(), inp.byte() as CK_ULONG, true),
        _ => {
            let v = inp.bytes(100);
            let n = v.len() as CK_ULONG;
            (a.keep(v), n, false)
        }
    }
}

/// An attribute value, well-formed for its type or not.
fn value(inp: &mut Input, a: &mut Arena, t: CK_ATTRIBUTE_TYPE) -> (*mut c_void, CK_ULONG, bool) {
    let ulong = |v: u64| v.to_ne_bytes().to_vec();
    let v = match inp.byte() % 8 {
        0 => return (null_mut(), 0, false),
        1 => return (null_mut(), 1 + inp.byte() as CK_ULONG, true),
        2 => match t {
            CKA_CLASS => ulong(inp.pick(CLASSES)),
            CKA_KEY_TYPE => ulong(inp.pick(KEY_TYPES)),
            CKA_VALUE_LEN => ulong(inp.byte() as u64),
            CKA_MODULUS_BITS => ulong(inp.byte() as u64 * 32),
            CKA_EC_PARAMS => P256.to_vec(),
            _ => vec![inp.byte() & 1],
        },
        3 => ulong(inp.u64()),
        4 => vec![inp.byte() & 1],
        _ => inp.bytes(128),
    };
    let n = v.len() as CK_ULONG;
    (a.keep(v) as *mut c_void, n, false)
}

/// A template: `(array, count, whether NULL where a value is required)`.
fn template(inp: &mut Input, a: &mut Arena) -> (*mut CK_ATTRIBUTE, CK_ULONG, bool) {
    let b = inp.byte();
    let n = (b % 8) as usize;
    if b & 0x80 != 0 && n > 0 {
        return (null_mut(), n as CK_ULONG, true);
    }
    let mut bad = false;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = if inp.byte() < 0xf0 {
            inp.pick(ATTRS)
        } else {
            inp.u64()
        };
        let (p, len, null_with_len) = value(inp, a, t);
        bad |= null_with_len;
        v.push(CK_ATTRIBUTE {
            type_: t,
            pValue: p,
            ulValueLen: len,
        });
    }
    a.attrs.push(v);
    let arr = a.attrs.last_mut().unwrap();
    let p = if arr.is_empty() {
        if inp.byte() & 1 == 0 {
            null_mut()
        } else {
            std::ptr::NonNull::dangling().as_ptr()
        }
    } else {
        arr.as_mut_ptr()
    };
    (p, n as CK_ULONG, bad)
}

/// Whether `ty`'s parameter structure holds pointers this interpreter does not
/// build: random bytes of the structure's size would be garbage pointers, which
/// no PKCS#11 module can survive (the caller's contract), so such mechanisms get
/// random bytes only as the missing-parameter case.
fn nested_pointers(ty: CK_MECHANISM_TYPE) -> bool {
    matches!(
        ty,
        CKM_EDDSA
            | CKM_ML_DSA
            | CKM_HASH_ML_DSA
            | CKM_HASH_ML_DSA_SHA224
            | CKM_HASH_ML_DSA_SHA256
            | CKM_HASH_ML_DSA_SHA384
            | CKM_HASH_ML_DSA_SHA512
            | CKM_HASH_ML_DSA_SHA3_224
            | CKM_HASH_ML_DSA_SHA3_256
            | CKM_HASH_ML_DSA_SHA3_384
            | CKM_HASH_ML_DSA_SHA3_512
            | CKM_HASH_ML_DSA_SHAKE128
            | CKM_HASH_ML_DSA_SHAKE256
            | CKM_CONCATENATE_BASE_AND_DATA
            | CKM_CONCATENATE_DATA_AND_BASE
            | CKM_XOR_BASE_AND_DATA
            | CKM_AES_ECB_ENCRYPT_DATA
            | CKM_DES3_ECB_ENCRYPT_DATA
            | CKM_AES_CBC_ENCRYPT_DATA
            | CKM_DES3_CBC_ENCRYPT_DATA
            | CKM_SP800_108_COUNTER_KDF
            | CKM_SP800_108_FEEDBACK_KDF
            | CKM_CHACHA20_POLY1305
            | CKM_HKDF_DERIVE
            | CKM_HKDF_DATA
    )
}

/// A mechanism with parameters; `None` for a NULL `CK_MECHANISM` pointer.
fn mechanism(inp: &mut Input, a: &mut Arena) -> Option<CK_MECHANISM> {
    let f = fixture();
    let b = inp.byte();
    let ty = match b {
        0xff => return None,
        0xfe => inp.u64(),
        _ => f.mechanisms[b as usize % f.mechanisms.len()],
    };
    let (p, len) = match inp.byte() % 8 {
        0 | 1 => (null_mut(), 0),
        2 => (null_mut(), 1 + inp.byte() as CK_ULONG),
        3 if !nested_pointers(ty) => {
            let v = inp.bytes(64);
            let n = v.len() as CK_ULONG;
            (a.keep(v) as *mut c_void, n)
        }
        _ if nested_pointers(ty) => (null_mut(), 0),
        _ => match ty {
            CKM_AES_GCM => {
                let (iv, ivl, _) = data(inp, a);
                let (aad, aadl, _) = data(inp, a);
                let tag = inp.byte() as CK_ULONG;
                if inp.byte() & 1 == 0 {
                    a.keep_struct(CK_GCM_PARAMS {
                        pIv: iv,
                        ulIvLen: ivl,
                        ulIvBits: ivl * 8,
                        pAAD: aad,
                        ulAADLen: aadl,
                        ulTagBits: tag,
                    })
                } else {
                    // The pre-errata v2.40 layout (no ulIvBits).
                    a.keep_struct([iv as u64, ivl, aad as u64, aadl, tag])
                }
            }
            CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
                let (pd, pdl) = if inp.byte() & 1 == 0 {
                    let v = f.ec_point.clone();
                    let n = v.len() as CK_ULONG;
                    (a.keep(v), n)
                } else {
                    let (p, n, _) = data(inp, a);
                    (p, n)
                };
                let (sd, sdl, _) = data(inp, a);
                a.keep_struct(CK_ECDH1_DERIVE_PARAMS {
                    kdf: [CKD_NULL, CKD_SHA256_KDF, inp.u64()][inp.byte() as usize % 3],
                    ulSharedDataLen: sdl,
                    pSharedData: sd,
                    ulPublicDataLen: pdl,
                    pPublicData: pd,
                })
            }
            CKM_RSA_PKCS_OAEP => {
                let (sd, sdl, _) = data(inp, a);
                a.keep_struct(CK_RSA_PKCS_OAEP_PARAMS {
                    hashAlg: inp.pick(HASHES),
                    mgf: inp.pick(MGFS),
                    source: [CKZ_DATA_SPECIFIED, 0, inp.u64()][inp.byte() as usize % 3],
                    pSourceData: sd as *mut c_void,
                    ulSourceDataLen: sdl,
                })
            }
            CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS => a.keep_struct(CK_RSA_PKCS_PSS_PARAMS {
                hashAlg: inp.pick(HASHES),
                mgf: inp.pick(MGFS),
                sLen: inp.byte() as CK_ULONG,
            }),
            _ => {
                // An IV-sized parameter (CBC, CTR-style) or a MAC length.
                let n = [16, 8, 4, 0][inp.byte() as usize % 4];
                let v = inp.bytes(n);
                let n = v.len() as CK_ULONG;
                (a.keep(v) as *mut c_void, n)
            }
        },
    };
    Some(CK_MECHANISM {
        mechanism: ty,
        pParameter: p,
        ulParameterLen: len,
    })
}

/// An output buffer with its length cell: `(buf, len cell or NULL, room)`.
struct Out {
    buf: Vec<u8>,
    null_buf: bool,
    len: CK_ULONG,
    null_len: bool,
}

impl Out {
    fn new(inp: &mut Input) -> Out {
        let b = inp.byte();
        let room = match b % 4 {
            0 => 0,
            1 => inp.byte() as usize,
            2 => 4096,
            _ => [16, 32, 64, 256, 512][inp.byte() as usize % 5],
        };
        Out {
            buf: vec![0; room],
            null_buf: b & 0x10 != 0,
            len: room as CK_ULONG,
            null_len: b & 0xe0 == 0xe0,
        }
    }
    fn buf(&mut self) -> *mut u8 {
        if self.null_buf {
            null_mut()
        } else if self.buf.is_empty() {
            std::ptr::NonNull::dangling().as_ptr()
        } else {
            self.buf.as_mut_ptr()
        }
    }
    fn len(&mut self) -> *mut CK_ULONG {
        if self.null_len {
            null_mut()
        } else {
            &mut self.len
        }
    }
    /// Checks the length protocol after a call.
    fn check(&self, rv: CK_RV, what: &str) {
        if self.null_len {
            assert_ne!(rv, CKR_OK, "{what}: CKR_OK with a NULL length pointer");
            return;
        }
        if rv == CKR_OK && !self.null_buf {
            assert!(
                self.len as usize <= self.buf.len(),
                "{what}: CKR_OK claims {} bytes in a {}-byte buffer",
                self.len,
                self.buf.len()
            );
        }
        if rv == CKR_BUFFER_TOO_SMALL && !self.null_buf {
            assert!(
                self.len as usize > self.buf.len(),
                "{what}: CKR_BUFFER_TOO_SMALL but {} bytes fit in {}",
                self.len,
                self.buf.len()
            );
        }
    }
}

fn maybe_null<T>(inp: &mut Input, p: *mut T) -> (*mut T, bool) {
    if inp.byte().is_multiple_of(8) {
        (null_mut(), true)
    } else {
        (p, false)
    }
}

fn expect_fail(rv: CK_RV, null: bool, what: &str) {
    if null {
        assert_ne!(rv, CKR_OK, "{what}: CKR_OK with a NULL argument");
    }
}

unsafe extern "C" fn create_mutex(m: *mut *mut c_void) -> CK_RV {
    if !m.is_null() {
        *m = std::ptr::NonNull::<u8>::dangling().as_ptr() as *mut c_void;
    }
    CKR_OK
}

unsafe extern "C" fn mutex_op(_: *mut c_void) -> CK_RV {
    CKR_OK
}

const CREATE: unsafe extern "C" fn(*mut *mut c_void) -> CK_RV = create_mutex;
const MUTEX_OP: unsafe extern "C" fn(*mut c_void) -> CK_RV = mutex_op;

impl Vm {
    /// Runs one operation; returns false when the input is used up.
    unsafe fn step(&mut self, inp: &mut Input) -> bool {
        if inp.0.is_empty() {
            return false;
        }
        let mut a = Arena::default();
        let op = inp.byte();
        match op % 48 {
            0 => {
                let rv = match inp.byte() % 3 {
                    0 => C_Initialize(null_mut()),
                    1 => {
                        let all = inp.byte() & 1 == 1;
                        let mut args = CK_C_INITIALIZE_ARGS {
                            CreateMutex: all.then_some(CREATE),
                            DestroyMutex: Some(MUTEX_OP),
                            LockMutex: all.then_some(MUTEX_OP),
                            UnlockMutex: Some(MUTEX_OP),
                            flags: inp.u64(),
                            pReserved: null_mut(),
                        };
                        C_Initialize(&mut args as *mut _ as *mut c_void)
                    }
                    _ => {
                        let mut args = CK_C_INITIALIZE_ARGS {
                            CreateMutex: None,
                            DestroyMutex: None,
                            LockMutex: None,
                            UnlockMutex: None,
                            flags: CKF_OS_LOCKING_OK,
                            pReserved: std::ptr::NonNull::<u8>::dangling().as_ptr() as *mut c_void,
                        };
                        C_Initialize(&mut args as *mut _ as *mut c_void)
                    }
                };
                if rv == CKR_OK {
                    self.sessions.clear();
                }
            }
            1 => {
                if inp.byte() & 1 == 0 {
                    C_Finalize(null_mut());
                } else {
                    let p = std::ptr::NonNull::<u8>::dangling().as_ptr() as *mut c_void;
                    assert_ne!(C_Finalize(p), CKR_OK, "C_Finalize: CKR_OK with pReserved");
                }
            }
            2 => {
                let mut info: CK_INFO = std::mem::zeroed();
                let (p, null) = maybe_null(inp, &mut info);
                expect_fail(C_GetInfo(p), null, "C_GetInfo");
            }
            3 => {
                let present = inp.byte() & 1;
                let mut out = Out::new(inp);
                let room = out.buf.len() / 8;
                let mut ids = vec![0 as CK_SLOT_ID; room];
                out.len = room as CK_ULONG;
                let list = if out.null_buf {
                    null_mut()
                } else {
                    ids.as_mut_ptr()
                };
                let len = out.len();
                let rv = C_GetSlotList(present, list, len);
                if out.null_len {
                    assert_ne!(rv, CKR_OK, "C_GetSlotList: CKR_OK with a NULL count");
                } else if rv == CKR_OK && !out.null_buf {
                    assert!(out.len as usize <= room, "C_GetSlotList overfills");
                    self.slots.extend_from_slice(&ids[..out.len as usize]);
                }
            }
            4 => {
                let s = self.slot(inp);
                let mut info: CK_SLOT_INFO = std::mem::zeroed();
                let (p, null) = maybe_null(inp, &mut info);
                expect_fail(C_GetSlotInfo(s, p), null, "C_GetSlotInfo");
            }
            5 => {
                let s = self.slot(inp);
                let mut info: CK_TOKEN_INFO = std::mem::zeroed();
                let (p, null) = maybe_null(inp, &mut info);
                expect_fail(C_GetTokenInfo(s, p), null, "C_GetTokenInfo");
            }
            6 => {
                let s = self.slot(inp);
                let mut out = Out::new(inp);
                let room = out.buf.len() / 8;
                let mut list = vec![0 as CK_MECHANISM_TYPE; room];
                out.len = room as CK_ULONG;
                let p = if out.null_buf {
                    null_mut()
                } else {
                    list.as_mut_ptr()
                };
                let len = out.len();
                let rv = C_GetMechanismList(s, p, len);
                if out.null_len {
                    assert_ne!(rv, CKR_OK, "C_GetMechanismList: CKR_OK with a NULL count");
                } else if rv == CKR_OK && !out.null_buf {
                    assert!(out.len as usize <= room, "C_GetMechanismList overfills");
                }
            }
            7 => {
                let s = self.slot(inp);
                let ty = match mechanism(inp, &mut a) {
                    Some(m) => m.mechanism,
                    None => inp.u64(),
                };
                let mut info: CK_MECHANISM_INFO = std::mem::zeroed();
                let (p, null) = maybe_null(inp, &mut info);
                expect_fail(C_GetMechanismInfo(s, ty, p), null, "C_GetMechanismInfo");
            }
            8 => {
                let s = self.slot(inp);
                let (pp, pl, bad) = pin(inp, &mut a);
                let mut label = [b' '; 32];
                for (i, b) in inp.bytes(32).into_iter().enumerate() {
                    label[i] = b;
                }
                let (lp, null) = maybe_null(inp, label.as_mut_ptr());
                let rv = C_InitToken(s, pp, pl, lp);
                expect_fail(rv, null || bad, "C_InitToken");
                self.initialized_token |= rv == CKR_OK;
            }
            9 => {
                let s = self.slot(inp);
                let flags = match inp.byte() % 4 {
                    0 => CKF_SERIAL_SESSION,
                    1 => 0,
                    2 => inp.u64(),
                    _ => CKF_SERIAL_SESSION | CKF_RW_SESSION,
                };
                let mut h: CK_SESSION_HANDLE = 0;
                let (p, null) = maybe_null(inp, &mut h);
                let rv = C_OpenSession(s, flags, null_mut(), None, p);
                expect_fail(rv, null, "C_OpenSession");
                if rv == CKR_OK {
                    self.sessions.push(h);
                }
            }
            10 => {
                C_CloseSession(self.session(inp));
            }
            11 => {
                C_CloseAllSessions(self.slot(inp));
            }
            12 => {
                let h = self.session(inp);
                let mut info: CK_SESSION_INFO = std::mem::zeroed();
                let (p, null) = maybe_null(inp, &mut info);
                expect_fail(C_GetSessionInfo(h, p), null, "C_GetSessionInfo");
            }
            13 | 14 => {
                let h = self.session(inp);
                let user = match inp.byte() % 5 {
                    0 | 1 => CKU_USER,
                    2 => CKU_SO,
                    3 => CKU_CONTEXT_SPECIFIC,
                    _ => inp.u64(),
                };
                let (pp, pl, bad) = pin(inp, &mut a);
                let rv = if op % 48 == 13 {
                    C_Login(h, user, pp, pl)
                } else {
                    let (up, ul, ubad) = data(inp, &mut a);
                    let rv = C_LoginUser(h, user, pp, pl, up, ul);
                    expect_fail(rv, ubad, "C_LoginUser");
                    rv
                };
                expect_fail(rv, bad || pp.is_null(), "C_Login");
            }
            15 => {
                C_Logout(self.session(inp));
            }
            16 => {
                if self.initialized_token {
                    return true;
                }
                let h = self.session(inp);
                let (pp, pl, bad) = pin(inp, &mut a);
                expect_fail(C_InitPIN(h, pp, pl), bad || pp.is_null(), "C_InitPIN");
            }
            17 => {
                let h = self.session(inp);
                let (op_, ol, obad) = pin(inp, &mut a);
                let (np, nl, nbad) = pin(inp, &mut a);
                let rv = C_SetPIN(h, op_, ol, np, nl);
                expect_fail(
                    rv,
                    obad || nbad || op_.is_null() || np.is_null(),
                    "C_SetPIN",
                );
            }
            18 | 19 => {
                let h = self.session(inp);
                let src = self.object(inp);
                let (t, n, bad) = template(inp, &mut a);
                let mut o: CK_OBJECT_HANDLE = 0;
                let (p, null) = maybe_null(inp, &mut o);
                let rv = if op % 48 == 18 {
                    C_CreateObject(h, t, n, p)
                } else {
                    C_CopyObject(h, src, t, n, p)
                };
                expect_fail(rv, bad || null, "C_CreateObject/C_CopyObject");
                if rv == CKR_OK {
                    self.objects.push(o);
                }
            }
            20 => {
                C_DestroyObject(self.session(inp), self.object(inp));
            }
            21 => {
                let (h, o) = (self.session(inp), self.object(inp));
                let mut size: CK_ULONG = 0;
                let (p, null) = maybe_null(inp, &mut size);
                expect_fail(C_GetObjectSize(h, o, p), null, "C_GetObjectSize");
            }
            22 => {
                let (h, o) = (self.session(inp), self.object(inp));
                let b = inp.byte();
                let n = (b % 8) as usize;
                let mut rooms = Vec::new();
                let mut arr = Vec::new();
                for _ in 0..n {
                    let t = if inp.byte() < 0xf0 {
                        inp.pick(ATTRS)
                    } else {
                        inp.u64()
                    };
                    let room = match inp.byte() % 4 {
                        0 => None,
                        1 => Some(inp.byte() as usize % 8),
                        2 => Some(8),
                        _ => Some(inp.byte() as usize * 4),
                    };
                    rooms.push(room);
                    let (p, len) = match room {
                        None => (null_mut(), inp.byte() as CK_ULONG),
                        Some(r) => (a.keep(vec![0; r]) as *mut c_void, r as CK_ULONG),
                    };
                    arr.push(CK_ATTRIBUTE {
                        type_: t,
                        pValue: p,
                        ulValueLen: len,
                    });
                }
                let null = b & 0x80 != 0 && n > 0;
                let p = if null {
                    null_mut()
                } else if arr.is_empty() {
                    std::ptr::NonNull::dangling().as_ptr()
                } else {
                    arr.as_mut_ptr()
                };
                let rv = C_GetAttributeValue(h, o, p, n as CK_ULONG);
                expect_fail(rv, null, "C_GetAttributeValue");
                if !null
                    && matches!(
                        rv,
                        CKR_OK
                            | CKR_ATTRIBUTE_SENSITIVE
                            | CKR_ATTRIBUTE_TYPE_INVALID
                            | CKR_BUFFER_TOO_SMALL
                    )
                {
                    for (at, room) in arr.iter().zip(rooms) {
                        if let (Some(r), true) = (room, at.ulValueLen != CK_UNAVAILABLE_INFORMATION)
                        {
                            assert!(at.ulValueLen as usize <= r, "C_GetAttributeValue overfills");
                        }
                    }
                }
            }
            23 => {
                let (h, o) = (self.session(inp), self.object(inp));
                let (t, n, bad) = template(inp, &mut a);
                expect_fail(C_SetAttributeValue(h, o, t, n), bad, "C_SetAttributeValue");
            }
            24 => {
                let h = self.session(inp);
                let (t, n, bad) = template(inp, &mut a);
                expect_fail(C_FindObjectsInit(h, t, n), bad, "C_FindObjectsInit");
            }
            25 => {
                let h = self.session(inp);
                let max = (inp.byte() % 16) as usize;
                let mut found: CK_ULONG = 0;
                let mut ids = vec![0 as CK_OBJECT_HANDLE; max];
                let b = inp.byte();
                let list = if b & 1 == 1 {
                    null_mut()
                } else if max == 0 {
                    std::ptr::NonNull::dangling().as_ptr()
                } else {
                    ids.as_mut_ptr()
                };
                let fp: *mut CK_ULONG = if b & 6 == 6 { null_mut() } else { &mut found };
                let rv = C_FindObjects(h, list, max as CK_ULONG, fp);
                expect_fail(
                    rv,
                    fp.is_null() || (list.is_null() && max > 0),
                    "C_FindObjects",
                );
                if rv == CKR_OK && !fp.is_null() {
                    assert!(found as usize <= max, "C_FindObjects overfills");
                    if !list.is_null() {
                        self.objects.extend_from_slice(&ids[..found as usize]);
                    }
                }
            }
            26 => {
                C_FindObjectsFinal(self.session(inp));
            }
            27..=31 => {
                let h = self.session(inp);
                let m = mechanism(inp, &mut a);
                let k = self.object(inp);
                let mut mm = m.unwrap_or(CK_MECHANISM {
                    mechanism: 0,
                    pParameter: null_mut(),
                    ulParameterLen: 0,
                });
                let mp: *mut CK_MECHANISM = if m.is_some() { &mut mm } else { null_mut() };
                let rv = match op % 48 {
                    27 => C_EncryptInit(h, mp, k),
                    28 => C_DecryptInit(h, mp, k),
                    29 => C_SignInit(h, mp, k),
                    30 => C_VerifyInit(h, mp, k),
                    _ => C_DigestInit(h, mp),
                };
                expect_fail(rv, mp.is_null(), "C_*Init");
            }
            32..=35 => {
                let h = self.session(inp);
                let (d, dl, bad) = data(inp, &mut a);
                let mut out = Out::new(inp);
                let (ob, ol) = (out.buf(), out.len());
                let (rv, name) = match op % 48 {
                    32 => (C_Encrypt(h, d, dl, ob, ol), "C_Encrypt"),
                    33 => (C_Decrypt(h, d, dl, ob, ol), "C_Decrypt"),
                    34 => (C_Sign(h, d, dl, ob, ol), "C_Sign"),
                    _ => (C_Digest(h, d, dl, ob, ol), "C_Digest"),
                };
                expect_fail(rv, bad, name);
                out.check(rv, name);
            }
            36 => {
                let h = self.session(inp);
                let (d, dl, bad) = data(inp, &mut a);
                let (rv, name) = match inp.byte() % 5 {
                    0 | 1 => {
                        let mut out = Out::new(inp);
                        let (ob, ol) = (out.buf(), out.len());
                        let (rv, name) = if op & 1 == 0 {
                            (C_EncryptUpdate(h, d, dl, ob, ol), "C_EncryptUpdate")
                        } else {
                            (C_DecryptUpdate(h, d, dl, ob, ol), "C_DecryptUpdate")
                        };
                        out.check(rv, name);
                        (rv, name)
                    }
                    2 => (C_SignUpdate(h, d, dl), "C_SignUpdate"),
                    3 => (C_VerifyUpdate(h, d, dl), "C_VerifyUpdate"),
                    _ => (C_DigestUpdate(h, d, dl), "C_DigestUpdate"),
                };
                expect_fail(rv, bad, name);
            }
            37 => {
                let h = self.session(inp);
                let mut out = Out::new(inp);
                let (ob, ol) = (out.buf(), out.len());
                let (rv, name) = match inp.byte() % 4 {
                    0 => (C_EncryptFinal(h, ob, ol), "C_EncryptFinal"),
                    1 => (C_DecryptFinal(h, ob, ol), "C_DecryptFinal"),
                    2 => (C_SignFinal(h, ob, ol), "C_SignFinal"),
                    _ => (C_DigestFinal(h, ob, ol), "C_DigestFinal"),
                };
                out.check(rv, name);
            }
            38 => {
                let h = self.session(inp);
                let (d, dl, dbad) = data(inp, &mut a);
                let (s, sl, sbad) = data(inp, &mut a);
                let rv = if inp.byte() & 1 == 0 {
                    C_Verify(h, d, dl, s, sl)
                } else {
                    C_VerifyFinal(h, s, sl)
                };
                expect_fail(rv, dbad || sbad, "C_Verify");
            }
            39 => {
                C_DigestKey(self.session(inp), self.object(inp));
            }
            40 | 41 => {
                let h = self.session(inp);
                let m = mechanism(inp, &mut a);
                let (t, n, bad) = template(inp, &mut a);
                let mut k: CK_OBJECT_HANDLE = 0;
                let (kp, null) = maybe_null(inp, &mut k);
                let mut mm = m.unwrap_or(CK_MECHANISM {
                    mechanism: 0,
                    pParameter: null_mut(),
                    ulParameterLen: 0,
                });
                let mp: *mut CK_MECHANISM = if m.is_some() { &mut mm } else { null_mut() };
                if op % 48 == 40 {
                    let rv = C_GenerateKey(h, mp, t, n, kp);
                    expect_fail(rv, bad || null || mp.is_null(), "C_GenerateKey");
                    if rv == CKR_OK {
                        self.objects.push(k);
                    }
                } else {
                    let rsa = [CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_X9_31_KEY_PAIR_GEN];
                    if rsa.contains(&mm.mechanism) {
                        return true;
                    }
                    let (t2, n2, bad2) = template(inp, &mut a);
                    let mut k2: CK_OBJECT_HANDLE = 0;
                    let rv = C_GenerateKeyPair(h, mp, t, n, t2, n2, kp, &mut k2);
                    expect_fail(rv, bad || bad2 || null || mp.is_null(), "C_GenerateKeyPair");
                    if rv == CKR_OK {
                        self.objects.extend([k, k2]);
                    }
                }
            }
            42 => {
                let h = self.session(inp);
                let m = mechanism(inp, &mut a);
                let (w, k) = (self.object(inp), self.object(inp));
                let mut mm = m.unwrap_or(CK_MECHANISM {
                    mechanism: 0,
                    pParameter: null_mut(),
                    ulParameterLen: 0,
                });
                let mp: *mut CK_MECHANISM = if m.is_some() { &mut mm } else { null_mut() };
                let mut out = Out::new(inp);
                let (ob, ol) = (out.buf(), out.len());
                let rv = C_WrapKey(h, mp, w, k, ob, ol);
                expect_fail(rv, mp.is_null(), "C_WrapKey");
                out.check(rv, "C_WrapKey");
            }
            43 | 44 => {
                let h = self.session(inp);
                let m = mechanism(inp, &mut a);
                let base = self.object(inp);
                let (d, dl, dbad) = data(inp, &mut a);
                let (t, n, bad) = template(inp, &mut a);
                let mut k: CK_OBJECT_HANDLE = 0;
                let (kp, null) = maybe_null(inp, &mut k);
                let mut mm = m.unwrap_or(CK_MECHANISM {
                    mechanism: 0,
                    pParameter: null_mut(),
                    ulParameterLen: 0,
                });
                let mp: *mut CK_MECHANISM = if m.is_some() { &mut mm } else { null_mut() };
                let rv = if op % 48 == 43 {
                    let rv = C_UnwrapKey(h, mp, base, d, dl, t, n, kp);
                    expect_fail(rv, dbad, "C_UnwrapKey");
                    rv
                } else {
                    C_DeriveKey(h, mp, base, t, n, kp)
                };
                expect_fail(rv, bad || null || mp.is_null(), "C_UnwrapKey/C_DeriveKey");
                if rv == CKR_OK {
                    self.objects.push(k);
                }
            }
            45 => {
                let h = self.session(inp);
                if inp.byte() & 1 == 0 {
                    let (d, dl, bad) = data(inp, &mut a);
                    expect_fail(C_SeedRandom(h, d, dl), bad, "C_SeedRandom");
                } else {
                    let n = inp.byte() as usize * 4;
                    let mut buf = vec![0u8; n];
                    let (p, null) = maybe_null(inp, buf.as_mut_ptr());
                    let rv = C_GenerateRandom(h, p, n as CK_ULONG);
                    expect_fail(rv, null && n > 0, "C_GenerateRandom");
                }
            }
            46 => match inp.byte() % 4 {
                0 => {
                    let mut l: *mut CK_FUNCTION_LIST = null_mut();
                    let (p, null) = maybe_null(inp, &mut l);
                    let rv = C_GetFunctionList(p);
                    expect_fail(rv, null, "C_GetFunctionList");
                    if rv == CKR_OK {
                        assert!(!l.is_null());
                    }
                }
                1 => {
                    let mut out = Out::new(inp);
                    let room = out.buf.len() / std::mem::size_of::<CK_INTERFACE>();
                    let mut list: Vec<CK_INTERFACE> =
                        (0..room).map(|_| std::mem::zeroed()).collect();
                    out.len = room as CK_ULONG;
                    let p = if out.null_buf {
                        null_mut()
                    } else {
                        list.as_mut_ptr()
                    };
                    let len = out.len();
                    let rv = C_GetInterfaceList(p, len);
                    if out.null_len {
                        assert_ne!(rv, CKR_OK, "C_GetInterfaceList: NULL count");
                    } else if rv == CKR_OK && !out.null_buf {
                        assert!(out.len as usize <= room, "C_GetInterfaceList overfills");
                    }
                }
                _ => {
                    let mut name = match inp.byte() % 3 {
                        0 => b"PKCS 11".to_vec(),
                        1 => inp.bytes(16),
                        _ => Vec::new(),
                    };
                    name.retain(|&b| b != 0);
                    name.push(0);
                    let np = if inp.byte() & 1 == 0 {
                        name.as_mut_ptr()
                    } else {
                        null_mut()
                    };
                    let mut ver = CK_VERSION {
                        major: inp.byte() % 4,
                        minor: [0, 40, inp.byte()][inp.byte() as usize % 3],
                    };
                    let vp: *mut CK_VERSION = if inp.byte() & 1 == 0 {
                        &mut ver
                    } else {
                        null_mut()
                    };
                    let mut i: *mut CK_INTERFACE = null_mut();
                    let (ip, null) = maybe_null(inp, &mut i);
                    let rv = C_GetInterface(np, vp, ip, inp.byte() as CK_FLAGS & 1);
                    expect_fail(rv, null, "C_GetInterface");
                    if rv == CKR_OK {
                        assert!(!i.is_null());
                    }
                }
            },
            _ => {
                let mut s: CK_SLOT_ID = 0;
                let (sp, null) = maybe_null(inp, &mut s);
                let reserved = if inp.byte() & 7 == 0 {
                    std::ptr::NonNull::<u8>::dangling().as_ptr() as *mut c_void
                } else {
                    null_mut()
                };
                let rv = C_WaitForSlotEvent(CKF_DONT_BLOCK, sp, reserved);
                expect_fail(rv, null || !reserved.is_null(), "C_WaitForSlotEvent");
                let h = self.session(inp);
                C_SessionCancel(h, inp.u64());
            }
        }
        true
    }
}

/// Builds the token once per process (an RSA-2048 key pair and the token's
/// device key: seconds under the sanitizer, so not inside a timed input).
pub fn init() {
    fixture();
}

/// Runs one fuzz input against a freshly restored token.
pub fn run(data: &[u8]) {
    let f = fixture();
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    copy_dir(&f.pristine, &f.tokens);
    unsafe {
        assert_eq!(C_Initialize(null_mut()), CKR_OK, "C_Initialize");
        let mut vm = Vm {
            sessions: Vec::new(),
            objects: f.objects.clone(),
            slots: vec![f.slot],
            initialized_token: false,
        };
        let mut inp = Input(data);
        for _ in 0..64 {
            if !vm.step(&mut inp) {
                break;
            }
        }
        C_Finalize(null_mut());
    }
}
