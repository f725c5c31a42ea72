//! Secrets are wiped from memory (issue 8, item 4), checked at run time.
//!
//! Heap: this test binary's global allocator is a spy. Before a block goes back to
//! the system allocator it scans the block for the marker secrets the tests use
//! (`zzSECRET-<tag>-k7Q2x`, one tag per test) and counts every freed block that still
//! holds one. The default `realloc` (alloc + copy + dealloc) is kept on purpose, so a
//! buffer left behind when a `Vec` grows is scanned too. The markers are built on
//! the stack, never in a heap buffer of the test itself; `spy_sees_a_plain_vec`
//! shows the spy does find a secret that is freed without wiping.
//!
//! Stack: keys without heap storage (`Key32`, `MasterKeys`) are dropped in place
//! inside a `MaybeUninit` and their bytes read back afterwards.

use std::alloc::{GlobalAlloc, Layout, System};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use vault_core::config::{Config, KdfParams};
use vault_core::mechanism::Mechanism;
use vault_core::pkcs11::*;
use vault_core::session::{OutLen, Output};
use vault_core::slots::Registry;
use vault_core::store::seal::{self, Key32, WrappedKey};
use vault_core::store::MasterKeys;
use vault_core::token::UserType;
use vault_core::vault::{Entry, Kind};
use vault_core::Attributes;

const PREFIX: &[u8] = b"zzSECRET-";
const SUFFIX: &[u8] = b"-k7Q2x";

/// Freed blocks still holding the marker of each tag `A`..=`Z`.
static HITS: [AtomicUsize; 26] = [const { AtomicUsize::new(0) }; 26];

struct Spy;

/// Counts the markers in a block that is about to be freed.
fn scan(block: &[u8]) {
    let n = PREFIX.len() + 1 + SUFFIX.len();
    if block.len() < n {
        return;
    }
    for i in 0..=block.len() - n {
        if block[i] == b'z'
            && &block[i..i + PREFIX.len()] == PREFIX
            && &block[i + PREFIX.len() + 1..i + n] == SUFFIX
        {
            let tag = block[i + PREFIX.len()];
            if tag.is_ascii_uppercase() {
                HITS[(tag - b'A') as usize].fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

// SAFETY: forwards every call to the system allocator unchanged; `dealloc` only
// reads the block it is handed (still allocated, `layout.size()` bytes) before
// freeing it, and allocates nothing.
unsafe impl GlobalAlloc for Spy {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        scan(std::slice::from_raw_parts(ptr, layout.size()));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Spy = Spy;

/// The 16-byte marker secret of `tag` (ASCII, so it is also a valid PIN or string).
fn marker(tag: u8) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..9].copy_from_slice(PREFIX);
    m[9] = tag;
    m[10..].copy_from_slice(SUFFIX);
    m
}

fn hits(tag: u8) -> usize {
    HITS[(tag - b'A') as usize].load(Ordering::SeqCst)
}

/// The bytes of a value after it was dropped in place (its storage stays ours).
fn bytes_after_drop<T, const N: usize>(value: T) -> ([u8; N], [u8; N]) {
    assert_eq!(
        std::mem::size_of::<T>(),
        N,
        "layout of the key type changed"
    );
    let mut slot = MaybeUninit::new(value);
    // SAFETY: `slot` holds an initialized `T` of exactly N bytes; it is read as raw
    // bytes before and after its destructor ran in place, and never used as a `T`
    // again (MaybeUninit does not drop it a second time).
    unsafe {
        let before = std::ptr::read(slot.as_ptr() as *const [u8; N]);
        std::ptr::drop_in_place(slot.as_mut_ptr());
        let after = std::ptr::read(slot.as_ptr() as *const [u8; N]);
        (before, after)
    }
}

#[test]
fn spy_sees_a_plain_vec() {
    let v = marker(b'Z').to_vec();
    drop(v);
    assert_eq!(
        hits(b'Z'),
        1,
        "the allocator spy must see an unwiped secret"
    );
}

#[test]
fn key32_and_master_keys_wipe_their_bytes() {
    let master = Key32::random().unwrap();
    let kek_like = master.derive(b"kek");
    let (before, after) = bytes_after_drop::<_, 32>(kek_like);
    assert_ne!(before, [0; 32]);
    assert_eq!(after, [0; 32], "a derived Key32 kept its bytes after drop");
    let keys = MasterKeys::new(master);
    let (before, after) = bytes_after_drop::<_, 96>(keys);
    assert!(before.iter().any(|&b| b != 0));
    assert_eq!(after, [0; 96], "MasterKeys kept key bytes after drop");
}

#[test]
fn attribute_values_are_wiped_on_drop_and_replace() {
    let m = marker(b'A');
    let mut a = Attributes::new();
    a.set(CKA_VALUE, m.to_vec());
    a.set(CKA_LABEL, b"label".to_vec());
    // Replacing a value wipes the old one.
    a.set(CKA_VALUE, m.to_vec());
    let copy = a.clone();
    drop(copy);
    drop(a);
    assert_eq!(hits(b'A'), 0, "an attribute value was freed unwiped");
}

#[test]
fn opened_records_are_wiped() {
    let key = Key32::random().unwrap();
    let sealed = seal::seal(&key, b"ad", &marker(b'C')).unwrap();
    let plain = seal::open(&key, b"ad", &sealed).expect("open");
    assert_eq!(&plain[..], &marker(b'C'));
    drop(plain);
    drop(sealed);
    assert_eq!(hits(b'C'), 0, "a decrypted record was freed unwiped");
}

#[test]
fn pins_are_not_left_by_key_wrapping() {
    let pin = marker(b'D');
    let master = Key32::random().unwrap();
    let w = WrappedKey::wrap(&master, &pin, KdfParams::TEST, b"ad").unwrap();
    let k = w.unwrap(&pin, b"ad").unwrap().expect("right PIN");
    assert!(w.unwrap(b"wrong-pin", b"ad").unwrap().is_none());
    drop(k);
    drop(w);
    assert_eq!(hits(b'D'), 0, "a PIN copy was freed unwiped");
}

#[test]
fn otp_secrets_are_wiped() {
    // base32 of zzSECRET-E-k7Q2x: the text lives in the binary, not on the heap.
    let uri = "otpauth://totp/Ex:alice?secret=PJ5FGRKDKJCVILKFFVVTOUJSPA&issuer=Ex";
    let parsed = otp_core::OtpUri::parse(uri).expect("parse");
    assert_eq!(parsed.secret, marker(b'E'));
    let code = otp_core::totp(&parsed.secret, 59, 30, 0, 6, parsed.algorithm);
    assert!(code.is_ok());
    drop(parsed);
    assert_eq!(hits(b'E'), 0, "an OTP secret was freed unwiped");
}

#[test]
fn vault_secret_fields_are_wiped() {
    let m = marker(b'F');
    let secret = std::str::from_utf8(&m).unwrap();
    let mut e = Entry::new(Kind::Website, "title")
        .with("username", "alice", false)
        .with("password", secret, true);
    e.set("password", secret, true);
    let copy = e.clone();
    drop(copy);
    drop(e);
    assert_eq!(hits(b'F'), 0, "a vault field value was freed unwiped");
}

#[test]
fn token_pins_and_key_values_are_wiped() {
    let key_value = marker(b'G');
    let user_pin = marker(b'H');
    let so_pin = marker(b'I');
    let dir = tempfile::tempdir().unwrap();
    {
        let mut config = Config::for_dir(dir.path().join("tokens"));
        config.kdf = KdfParams::TEST;
        let reg = Registry::new(config);
        let e = reg.create("z", &so_pin, None).unwrap();
        let t = reg.open(&e).unwrap();
        t.login(UserType::So, &so_pin).unwrap();
        t.init_pin(&user_pin).unwrap();
        t.logout().unwrap();
        t.login(UserType::User, &user_pin).unwrap();
        let s = &t.open_session(true).unwrap();
        let mut tpl = Attributes::new();
        tpl.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        tpl.set_ulong(CKA_KEY_TYPE, CKK_AES);
        tpl.set_bool(CKA_TOKEN, true);
        tpl.set_bool(CKA_PRIVATE, true);
        tpl.set(CKA_VALUE, key_value.to_vec());
        let key = t.create_object(s, &tpl).unwrap();
        drop(tpl);
        t.encrypt_init(s, &Mechanism::new(CKM_AES_ECB), key)
            .unwrap();
        match t.encrypt(s, &[0u8; 16], OutLen::Buffer(16)).unwrap() {
            Output::Bytes(ct) => assert_eq!(ct.len(), 16),
            Output::Needed(n) => panic!("needed {n}"),
        }
        t.destroy_object(s, key).unwrap();
        // Closing the last session logs the user out.
        t.close_session(s).unwrap();
    }
    for (tag, what) in [(b'G', "key value"), (b'H', "user PIN"), (b'I', "SO PIN")] {
        assert_eq!(hits(tag), 0, "a {what} was freed unwiped");
    }
}
