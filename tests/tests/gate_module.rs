//! The picture gate through the PKCS#11 module (SPEC C5, C6): a gated signature with
//! an agent that answers wrong locks the token after the allowed chances; the lock
//! survives `C_Finalize`/`C_Initialize` and a new process (pkcs11-tool), every call
//! then fails with `CKR_DEVICE_REMOVED`, low-privilege work included; only a reattach
//! with the SO PIN clears it (the user PIN does not).
//!
//! The gate policy and the reattach go through `vault-core` directly, in a child
//! process: one process must not open the same token file through two SQLite
//! copies (the module's and this binary's), see README "Security notes".

#[allow(unused_imports)]
mod pkcs11_common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::UserType;
use pkcs11_common::{
    assert_child_ok, module_path, pin, run_child, rv, Ctx, CHILD_ENV, P256, SO_PIN, USER_PIN,
};
use vault_core::config::Config;
use vault_core::gate::GatePolicy;
use vault_core::slots::Registry;

const TEST: &str = "wrong_answers_lock_the_token_across_finalize_and_processes_until_reattach";

/// Child roles: `gate-on` switches the gate on; `reattach-wrong` / `reattach-user` /
/// `reattach` try to
/// clear the lock (printing `locked=<bool>` afterwards).
fn child() -> bool {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let reg = Registry::new(Config::load().unwrap());
    let entry = reg.tokens().unwrap().into_iter().next().unwrap();
    let t = reg.open(&entry).unwrap();
    match role.as_str() {
        "gate-on" => {
            t.login(vault_core::token::UserType::User, USER_PIN.as_bytes())
                .unwrap();
            t.gate_configure(GatePolicy {
                enabled: true,
                ..GatePolicy::default()
            })
            .unwrap();
        }
        "reattach-wrong" => assert!(t.gate_reattach(b"not-the-pin").is_err()),
        // The user PIN is not the SO PIN: it never clears the lock.
        "reattach-user" => assert!(matches!(
            t.gate_reattach(USER_PIN.as_bytes()),
            Err(vault_core::Error::PinIncorrect)
        )),
        "reattach" => t.gate_reattach(SO_PIN.as_bytes()).unwrap(),
        other => panic!("unknown role {other}"),
    }
    println!("locked={}", t.gate_locked().unwrap());
    true
}

fn child_says(role: &str) -> String {
    let out = run_child(TEST, role, &[]);
    assert_child_ok(&out);
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn wrong_answers_lock_the_token_across_finalize_and_processes_until_reattach() {
    if child() {
        return;
    }
    let mut ctx = Ctx::uninitialized();
    // An agent that always reads the picture wrong.
    let script = ctx.dir.path().join("wrong.sh");
    std::fs::write(&script, "#!/bin/sh\necho WRONG1\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::env::set_var("VTOKEN_PROMPT", format!("command:{}", script.display()));
    ctx.reinit();

    let (slot, s) = ctx.user_session();
    let gated = Attribute::VendorDefined((
        AttributeType::VendorDefined(vault_core::object::CKA_VTOKEN_GATED),
        vec![1],
    ));
    let public = || {
        [
            Attribute::Token(true),
            Attribute::EcParams(P256.to_vec()),
            Attribute::Verify(true),
        ]
    };
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        gated,
    ];
    let (_, gated_key) = s
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public(), &private)
        .unwrap();
    let private2 = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
    ];
    let (_, plain_key) = s
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public(), &private2)
        .unwrap();

    // Switch the gate on (it is off by default).
    assert!(child_says("gate-on").contains("locked=false"));

    // Low privilege is untouched: an unflagged key signs, a digest works.
    s.sign(&Mechanism::Ecdsa, plain_key, &[7u8; 32]).unwrap();
    s.digest(&Mechanism::Sha256, b"abc").unwrap();

    // The gated key: three wrong pictures, then the lock.
    let r = s.sign(&Mechanism::Ecdsa, gated_key, &[7u8; 32]);
    assert_eq!(
        rv(r),
        RvError::DeviceRemoved,
        "three wrong answers lock the token"
    );
    assert_eq!(
        rv(s.digest(&Mechanism::Sha256, b"abc")),
        RvError::DeviceRemoved,
        "every operation fails while locked"
    );
    drop(s);

    // C_Finalize + C_Initialize: still locked.
    ctx.reinit();
    assert_eq!(
        rv(ctx.p11().open_rw_session(slot).map(|_| ())),
        RvError::DeviceRemoved
    );
    // C_GetTokenInfo shows the lock: the token is "unplugged" (its slot, not a
    // removable device, stays listed with a token present).
    assert_eq!(rv(ctx.p11().get_token_info(slot)), RvError::DeviceRemoved);
    assert!(ctx.p11().get_slot_info(slot).unwrap().token_present());
    assert!(ctx.p11().get_slots_with_token().unwrap().contains(&slot));
    let _ = ctx.finalize();

    // Another process (pkcs11-tool) sees the lock too.
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module_path())
        .args([
            "--token-label",
            "vtoken test",
            "--login",
            "--pin",
            USER_PIN,
            "--list-objects",
        ])
        .env("VTOKEN_CONF", &ctx.conf)
        .output()
        .expect("pkcs11-tool (install opensc)");
    assert!(
        !out.status.success(),
        "pkcs11-tool worked on a locked token"
    );
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // pkcs11-tool reads each slot's token information to find the label.
    assert!(
        text.contains("DEVICE_REMOVED")
            || text.contains("0x32")
            || text.contains("No slot with token"),
        "pkcs11-tool: {text}"
    );

    // Reattach: a wrong PIN does not clear it, nor does the user PIN; the SO PIN does.
    assert!(child_says("reattach-wrong").contains("locked=true"));
    assert!(child_says("reattach-user").contains("locked=true"));
    assert!(child_says("reattach").contains("locked=false"));
    ctx.reinit();
    assert_eq!(
        ctx.p11().get_token_info(slot).unwrap().label(),
        "vtoken test"
    );
    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    s.sign(&Mechanism::Ecdsa, plain_key, &[7u8; 32]).unwrap();
    std::env::remove_var("VTOKEN_PROMPT");
}
