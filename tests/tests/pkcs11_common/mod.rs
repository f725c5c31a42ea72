//! Shared helpers of the PKCS#11 integration tests: they take `libvtoken_pkcs11.so`
//! from `vtoken_testsupport::artifacts` (built once per test binary when
//! `VTOKEN_P11_TEST_MODULE` is unset), load it through the `cryptoki` crate (real `dlopen`), give
//! every test its own token directory and config, and serialise the tests of one
//! binary (PKCS#11 state and `VTOKEN_CONF` are process-wide).
//!
//! Raw calls (NULL arguments, length protocol, the 3.0 interface) go through the
//! module's own `CK_FUNCTION_LIST`, fetched with `libc::dlopen`/`dlsym` from the same
//! file, so they share the state of the `cryptoki` context.
#![allow(dead_code)]

use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;

/// SO PIN of every test token.
pub const SO_PIN: &str = "12345678";
/// User PIN of every test token.
pub const USER_PIN: &str = "123456";
/// Env var naming the built module for child processes (they skip the build).
pub const MODULE_ENV: &str = "VTOKEN_P11_TEST_MODULE";
/// Env var telling a spawned copy of the test binary what to do as a child.
pub const CHILD_ENV: &str = "VTOKEN_P11_TEST_CHILD";
/// DER of the P-256 curve OID (CKA_EC_PARAMS).
pub const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the P-384 curve OID (CKA_EC_PARAMS).
pub const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER of the P-521 curve OID (CKA_EC_PARAMS).
pub const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

static LOCK: Mutex<()> = Mutex::new(());

/// The module under test: [`MODULE_ENV`] when set, else built once
/// (`vtoken_testsupport::artifacts::pkcs11_module`).
pub fn module_path() -> &'static Path {
    vtoken_testsupport::artifacts::pkcs11_module()
}

/// The module's `CK_FUNCTION_LIST` (v2.40), from `dlopen` + `C_GetFunctionList`.
/// The handle is never closed, so the module stays loaded for the whole binary.
pub fn raw() -> &'static CK_FUNCTION_LIST {
    static LIST: OnceLock<usize> = OnceLock::new();
    let addr = *LIST.get_or_init(|| unsafe {
        let list_fn: CK_C_GetFunctionList = std::mem::transmute(dlsym("C_GetFunctionList"));
        let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        assert_eq!(list_fn.expect("C_GetFunctionList")(&mut list), CKR_OK);
        assert!(!list.is_null());
        list as usize
    });
    unsafe { &*(addr as *const CK_FUNCTION_LIST) }
}

/// `dlsym` of an exported symbol of the module (panics when it is missing).
pub fn dlsym(name: &str) -> *mut c_void {
    static HANDLE: OnceLock<usize> = OnceLock::new();
    let h = *HANDLE.get_or_init(|| {
        let path = CString::new(module_path().to_str().unwrap()).unwrap();
        let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW) };
        assert!(!h.is_null(), "dlopen {}", module_path().display());
        h as usize
    });
    let sym = CString::new(name).unwrap();
    let p = unsafe { libc::dlsym(h as *mut c_void, sym.as_ptr()) };
    assert!(!p.is_null(), "symbol {name} missing");
    p
}

/// Calls a function of [`raw`]: `rawcall!(C_GetInfo, &mut info)`. The arguments
/// are raw pointers and values handed to the module as they are.
macro_rules! rawcall {
    ($f:ident $(, $arg:expr)* $(,)?) => {
        unsafe { ($crate::pkcs11_common::raw().$f.expect(stringify!($f)))($($arg),*) }
    };
}
pub(crate) use rawcall;

/// The PKCS#11 error of a failed call (panics on success or a non-PKCS#11 error).
pub fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(e, _)) => e,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

/// An `AuthPin` from a string.
pub fn pin(s: &str) -> AuthPin {
    AuthPin::new(s.into())
}

/// One test's module context: the lock of the binary, a temp token directory with
/// its config, and an initialized `Pkcs11` that is finalized on drop (even when the
/// test panics, so the next test starts from a finalized module).
pub struct Ctx {
    p11: Option<Pkcs11>,
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    _guard: MutexGuard<'static, ()>,
}

impl Ctx {
    /// A fresh directory and config, `VTOKEN_CONF` set, the module initialized.
    pub fn new() -> Ctx {
        let ctx = Ctx::uninitialized();
        ctx.p11().initialize(init_args()).expect("C_Initialize");
        ctx
    }

    /// Like [`Ctx::new`] but without `C_Initialize`.
    pub fn uninitialized() -> Ctx {
        let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let path = module_path();
        // A test that died in between may have left the module initialized.
        let _ = rawcall!(C_Finalize, std::ptr::null_mut());
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("vtoken.toml");
        let tokens = dir.path().join("tokens");
        vtoken_testsupport::env::write_config(&conf, &tokens, "");
        std::env::set_var("VTOKEN_CONF", &conf);
        std::env::set_var(MODULE_ENV, path);
        let p11 = Pkcs11::new(path).expect("load module");
        Ctx {
            p11: Some(p11),
            dir,
            conf,
            _guard: guard,
        }
    }

    /// The `cryptoki` context.
    pub fn p11(&self) -> &Pkcs11 {
        self.p11.as_ref().expect("context finalized")
    }

    /// `C_Finalize` through `cryptoki`; the context is gone afterwards.
    pub fn finalize(&mut self) -> cryptoki::error::Result<()> {
        self.p11.take().expect("context finalized").finalize()
    }

    /// Finalizes (result ignored) and initializes a new context on the same files.
    pub fn reinit(&mut self) {
        if let Some(p) = self.p11.take() {
            let _ = p.finalize();
        }
        let p11 = Pkcs11::new(module_path()).expect("load module");
        p11.initialize(init_args()).expect("C_Initialize again");
        self.p11 = Some(p11);
    }

    /// The last slot of the list: the free one.
    pub fn free_slot(&self) -> Slot {
        let slots = self.p11().get_all_slots().expect("C_GetSlotList");
        let slot = *slots.last().expect("at least the free slot");
        let info = self.p11().get_token_info(slot).expect("C_GetTokenInfo");
        assert!(!info.token_initialized(), "last slot must be the free one");
        slot
    }

    /// Initializes a token on the free slot (SO PIN, label) without a user PIN.
    pub fn init_token_no_user(&self, label: &str) -> Slot {
        let slot = self.free_slot();
        self.p11()
            .init_token(slot, &pin(SO_PIN), label)
            .expect("C_InitToken");
        slot
    }

    /// Initializes a token on the free slot with [`SO_PIN`] and [`USER_PIN`].
    pub fn init_token(&self) -> Slot {
        let slot = self.init_token_no_user("vtoken test");
        let s = self.p11().open_rw_session(slot).expect("C_OpenSession");
        s.login(UserType::So, Some(&pin(SO_PIN))).expect("SO login");
        s.init_pin(&pin(USER_PIN)).expect("C_InitPIN");
        s.logout().expect("C_Logout");
        s.close().expect("C_CloseSession");
        slot
    }

    /// A new token and an R/W session logged in as the user.
    pub fn user_session(&self) -> (Slot, Session) {
        let slot = self.init_token();
        let s = self.p11().open_rw_session(slot).expect("C_OpenSession");
        s.login(UserType::User, Some(&pin(USER_PIN)))
            .expect("user login");
        (slot, s)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let Some(p) = self.p11.take() {
            let _ = p.finalize();
        }
    }
}

/// `C_Initialize` arguments used everywhere.
pub fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

/// Runs this test binary again as a child: only test `test_name`, with
/// [`CHILD_ENV`] = `role` and the extra env vars; the config and module path are
/// inherited. Returns the finished child's output.
pub fn run_child(test_name: &str, role: &str, env: &[(&str, String)]) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn child test process")
}

/// Asserts a child run succeeded, showing its output otherwise.
pub fn assert_child_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates an RSA-2048 key pair (token objects when `token`).
pub fn rsa_pair(s: &Session, label: &str, token: bool) -> (ObjectHandle, ObjectHandle) {
    let public = [
        Attribute::Token(token),
        Attribute::Private(false),
        Attribute::ModulusBits(2048.into()),
        Attribute::PublicExponent(vec![1, 0, 1]),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
        Attribute::Label(label.into()),
    ];
    let private = [
        Attribute::Token(token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Decrypt(true),
        Attribute::Label(label.into()),
    ];
    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
        .expect("RSA key pair")
}

/// Generates an EC key pair on `curve` ([`P256`], [`P384`] or [`P521`]).
pub fn ec_pair(
    s: &Session,
    curve: &[u8],
    label: &str,
    token: bool,
) -> (ObjectHandle, ObjectHandle) {
    let public = [
        Attribute::Token(token),
        Attribute::Private(false),
        Attribute::EcParams(curve.to_vec()),
        Attribute::Verify(true),
        Attribute::Label(label.into()),
    ];
    let private = [
        Attribute::Token(token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Derive(true),
        Attribute::Label(label.into()),
    ];
    s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .expect("EC key pair")
}

/// Generates an AES-256 session key with `extra` attributes added.
pub fn aes_key(s: &Session, extra: &[Attribute]) -> ObjectHandle {
    let mut t = vec![
        Attribute::Token(false),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    t.extend_from_slice(extra);
    s.generate_key(&Mechanism::AesKeyGen, &t).expect("AES key")
}

/// Creates a secret key object of `key_type` with a known value.
pub fn secret_key(
    s: &Session,
    key_type: KeyType,
    value: &[u8],
    extra: &[Attribute],
) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(false),
        Attribute::Value(value.to_vec()),
    ];
    t.extend_from_slice(extra);
    s.create_object(&t).expect("create secret key")
}

/// One attribute's bytes (panics when the module does not return it).
pub fn attr_bytes(s: &Session, h: ObjectHandle, ty: AttributeType) -> Vec<u8> {
    let attrs = s.get_attributes(h, &[ty]).expect("C_GetAttributeValue");
    match attrs.into_iter().next() {
        Some(Attribute::Value(v))
        | Some(Attribute::Label(v))
        | Some(Attribute::Id(v))
        | Some(Attribute::EcPoint(v))
        | Some(Attribute::Modulus(v))
        | Some(Attribute::Subject(v))
        | Some(Attribute::Application(v))
        | Some(Attribute::PublicExponent(v)) => v,
        other => panic!("attribute {ty:?}: got {other:?}"),
    }
}

/// The raw EC point (uncompressed) from a CKA_EC_POINT value (DER OCTET STRING).
pub fn unwrap_octet_string(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x04, "CKA_EC_POINT must be a DER OCTET STRING");
    let (len, start) = der_len(der, 1);
    assert_eq!(start + len, der.len(), "OCTET STRING length");
    der[start..].to_vec()
}

/// A DER length at `der[i]`: (length, offset of the content).
fn der_len(der: &[u8], i: usize) -> (usize, usize) {
    let b = der[i] as usize;
    if b < 0x80 {
        return (b, i + 1);
    }
    let n = b & 0x7f;
    let len = der[i + 1..i + 1 + n]
        .iter()
        .fold(0usize, |a, &x| (a << 8) | x as usize);
    (len, i + 1 + n)
}

/// The TLVs inside the DER constructed value starting at `der[i]`: (start, end) each.
fn der_children(der: &[u8], i: usize) -> Vec<(usize, usize)> {
    let (len, mut p) = der_len(der, i + 1);
    let end = p + len;
    let mut out = Vec::new();
    while p < end {
        let (l, c) = der_len(der, p + 1);
        out.push((p, c + l));
        p = c + l;
    }
    out
}

/// A self-signed P-256 certificate made by `openssl req -x509`: (DER, subject DER).
pub fn make_cert(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let key = dir.join("cert-key.pem");
    let cert = dir.join("cert.der");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=vtoken test",
            "-outform",
            "DER",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = std::fs::read(&cert).expect("read cert");
    // Certificate ::= SEQUENCE { tbs SEQUENCE { [0] version, serial, sigAlg,
    // issuer, validity, subject, ... } ... }
    let tbs = der_children(&der, 0)[0].0;
    let fields = der_children(&der, tbs);
    let (start, end) = fields[5];
    let subject = der[start..end].to_vec();
    assert_eq!(subject[0], 0x30, "subject is a SEQUENCE");
    (der, subject)
}

/// A CK_ATTRIBUTE for a raw call, pointing into `buf` (NULL when `buf` is `None`).
pub fn raw_attr(ty: CK_ATTRIBUTE_TYPE, buf: Option<&mut [u8]>) -> CK_ATTRIBUTE {
    match buf {
        Some(b) => CK_ATTRIBUTE {
            type_: ty,
            pValue: b.as_mut_ptr() as *mut c_void,
            ulValueLen: b.len() as CK_ULONG,
        },
        None => CK_ATTRIBUTE {
            type_: ty,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        },
    }
}

/// The raw public key at the end of an SPKI PEM (the BIT STRING's last `len`
/// bytes): how the IETF example keys of ML-DSA and ML-KEM are published.
pub fn spki_key(pem: &str, len: usize) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    der[der.len() - len..].to_vec()
}
