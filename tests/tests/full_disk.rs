//! A full disk (issue 8, item 4): the token file lives on a small tmpfs that a filler
//! file fills up completely. Every write then fails with `CKR_DEVICE_MEMORY` (never
//! `CKR_OK`, a panic or a generic error); once the filler is gone the file opens,
//! holds every object acknowledged before, none of the refused writes, and the old
//! PIN still logs in.
//!
//! The writes run in child processes that load the module (a copy of this test
//! binary), so no process reaches the file through two SQLite copies. Mounting needs
//! root (CI runs as root); elsewhere the test is skipped with a loud message.

#[allow(unused_imports)] // its `rawcall!` re-export is unused here
mod pkcs11_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use pkcs11_common::*;

const LABEL: &str = "fulldisk";
const NEW_PIN: &str = "98765432";
const TEST: &str = "writes_on_a_full_disk_fail_cleanly_and_keep_the_previous_state";
/// Objects acknowledged before the disk fills.
const BEFORE: usize = 5;

/// A tmpfs mounted on a temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes `path` until the filesystem has no byte left (ENOSPC at 64 KiB, then at
/// 1 byte granularity). Returns the number of bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let mut total = 0u64;
    for chunk in [65536usize, 4096, 1] {
        let buf = vec![0xa5u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filler write: {e}"),
            }
        }
    }
    let _ = f.sync_all();
    total
}

fn data_template(label: &str, value: Vec<u8>, private: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(private),
        Attribute::Label(label.into()),
        Attribute::Value(value),
    ]
}

fn value_of(i: usize) -> Vec<u8> {
    format!("acknowledged value {i}").into_bytes()
}

fn vault_entry(title: &str) -> Vec<Attribute> {
    let json = format!(
        r#"{{"kind":"website","title":"{title}","url":"https://example.com","fields":[{{"name":"password","value":"pw-{title}","secret":true}}]}}"#
    );
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Application(b"vtoken-vault".to_vec()),
        Attribute::Label(title.into()),
        Attribute::Value(json.into_bytes()),
    ]
}

/// The module, initialized, in a child process (config from the inherited env).
fn module() -> Pkcs11 {
    let p11 = Pkcs11::new(module_path()).expect("load module");
    p11.initialize(init_args()).expect("C_Initialize");
    p11
}

fn token_slot(p11: &Pkcs11) -> Slot {
    for slot in p11.get_slots_with_token().expect("C_GetSlotList") {
        let info = p11.get_token_info(slot).expect("C_GetTokenInfo");
        if info.token_initialized() && info.label() == LABEL {
            return slot;
        }
    }
    panic!("no token labelled {LABEL}");
}

fn labels(s: &Session) -> Vec<String> {
    let mut out: Vec<String> = s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .expect("C_FindObjects")
        .into_iter()
        .map(|h| String::from_utf8(attr_bytes(s, h, AttributeType::Label)).unwrap())
        .collect();
    out.sort();
    out
}

fn find_label(s: &Session, label: &str) -> Vec<ObjectHandle> {
    s.find_objects(&[Attribute::Label(label.into())])
        .expect("C_FindObjects")
}

/// A write refused for lack of space: a device error, nothing else.
#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, r: cryptoki::error::Result<T>) {
    match r {
        Err(cryptoki::error::Error::Pkcs11(RvError::DeviceMemory | RvError::DeviceError, _)) => {
            println!("full disk: {what}: refused as expected ({r:?})");
        }
        other => {
            panic!("{what} on a full disk: want CKR_DEVICE_MEMORY/CKR_DEVICE_ERROR, got {other:?}")
        }
    }
}

/// Child: creates the token, its user PIN, `BEFORE` objects and a vault entry.
fn child_setup() {
    let p11 = module();
    let slot = p11
        .get_all_slots()
        .unwrap()
        .into_iter()
        .last()
        .expect("free slot");
    p11.init_token(slot, &pin(SO_PIN), LABEL)
        .expect("C_InitToken");
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin(USER_PIN)).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    for i in 0..BEFORE {
        s.create_object(&data_template(
            &format!("before-{i}"),
            value_of(i),
            i % 2 == 0,
        ))
        .expect("create an acknowledged object");
    }
    s.create_object(&vault_entry("vault-before"))
        .expect("vault entry before the disk fills");
    ec_pair(&s, P256, "key-before", true);
    s.logout().unwrap();
    drop(s);
    p11.finalize().unwrap();
}

/// Child: logs in, fills the disk, then tries every kind of write.
fn child_full(filler: &Path) {
    let p11 = module();
    let slot = token_slot(&p11);
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let before = labels(&s);
    let filled = fill(filler);
    println!("full disk: filler holds {filled} bytes");

    refused(
        "C_CreateObject (small)",
        s.create_object(&data_template("after-small", b"x".to_vec(), false)),
    );
    refused(
        "C_CreateObject (256 KiB)",
        s.create_object(&data_template("after-big", vec![7; 256 * 1024], true)),
    );
    let first = find_label(&s, "before-1")[0];
    refused(
        "C_SetAttributeValue",
        s.update_attributes(first, &[Attribute::Label(b"renamed".to_vec())]),
    );
    refused(
        "C_DestroyObject",
        s.destroy_object(find_label(&s, "before-3")[0]),
    );
    refused(
        "C_GenerateKeyPair (token)",
        s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::EcParams(P256.to_vec()),
                Attribute::Label(b"key-after".to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sign(true),
                Attribute::Label(b"key-after".to_vec()),
            ],
        ),
    );
    refused(
        "vault entry write",
        s.create_object(&vault_entry("vault-after")),
    );
    refused("C_SetPIN", s.set_pin(&pin(USER_PIN), &pin(NEW_PIN)));

    // Session objects need no disk and still work.
    let tmp = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(false),
            Attribute::Label(b"session-object".to_vec()),
        ])
        .expect("a session object needs no disk");
    s.destroy_object(tmp).unwrap();
    // This process's view did not take in any refused write.
    assert_eq!(
        labels(&s),
        before,
        "a refused write is visible in the process"
    );
    assert!(find_label(&s, "renamed").is_empty());
    s.logout().unwrap();
    // A login commits its PIN counter first: on a full disk it must fail as a device
    // error, never as a wrong PIN.
    match s.login(UserType::User, Some(&pin(USER_PIN))) {
        Ok(()) => println!("full disk: login with the old PIN succeeded"),
        Err(e) => refused("C_Login", Err::<(), _>(e)),
    }
    drop(s);
    let _ = p11.finalize();
}

/// Child: after the filler is gone, the previous state is intact and writable.
fn child_verify() {
    let p11 = module();
    let slot = token_slot(&p11);
    let s = p11.open_rw_session(slot).unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(NEW_PIN)))),
        RvError::PinIncorrect,
        "the refused C_SetPIN took effect"
    );
    s.login(UserType::User, Some(&pin(USER_PIN)))
        .expect("the old PIN logs in after the disk was full");
    let mut want: Vec<String> = (0..BEFORE).map(|i| format!("before-{i}")).collect();
    want.push("vault-before".into());
    want.sort();
    assert_eq!(labels(&s), want, "acknowledged objects after the full disk");
    for i in 0..BEFORE {
        let h = find_label(&s, &format!("before-{i}"));
        assert_eq!(h.len(), 1, "before-{i}");
        assert_eq!(attr_bytes(&s, h[0], AttributeType::Value), value_of(i));
    }
    assert_eq!(find_label(&s, "key-before").len(), 2);
    assert!(find_label(&s, "key-after").is_empty());
    // The key from before still signs; the disk takes writes again.
    let key = s
        .find_objects(&[
            Attribute::Label(b"key-before".to_vec()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ])
        .unwrap()[0];
    s.sign(&Mechanism::Ecdsa, key, &[1; 32]).expect("sign");
    s.create_object(&data_template("after-recovery", b"ok".to_vec(), true))
        .expect("a write once space is back");
    s.set_pin(&pin(USER_PIN), &pin(NEW_PIN))
        .expect("C_SetPIN once space is back");
    drop(s);
    p11.finalize().unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn writes_on_a_full_disk_fail_cleanly_and_keep_the_previous_state() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("setup") => return child_setup(),
        Ok("full") => return child_full(&PathBuf::from(std::env::var("FILLER").unwrap())),
        Ok("verify") => return child_verify(),
        _ => {}
    }
    if !is_root() {
        eprintln!("\n*** SKIPPED {TEST}: needs root to mount a tmpfs (CI runs as root) ***\n");
        return;
    }
    let fs = match Tmpfs::mount("2m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("\n*** SKIPPED {TEST}: {e} ***\n");
            return;
        }
    };
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("vtoken.toml");
    vtoken_testsupport::env::write_config(&conf, &fs.path().join("tokens"), "");
    let filler = fs.path().join("filler");
    let env = [
        ("VTOKEN_CONF", conf.display().to_string()),
        (MODULE_ENV, module_path().display().to_string()),
        ("VTOKEN_PROMPT", "command:/bin/true".to_string()),
        ("FILLER", filler.display().to_string()),
    ];
    assert_child_ok(&run_child(TEST, "setup", &env));
    let out = run_child(TEST, "full", &env);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert_child_ok(&out);
    let filled = std::fs::metadata(&filler).map(|m| m.len()).unwrap_or(0);
    assert!(filled > 0, "the filler was not written");
    std::fs::remove_file(&filler).unwrap();
    assert_child_ok(&run_child(TEST, "verify", &env));
}
