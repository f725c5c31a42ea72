//! SPEC C6 through the PKCS#11 module (CN102609656A ¶0038, Fig. 5): the token's
//! state in `C_GetTokenInfo` — the standard PIN flags (`CKF_USER_PIN_INITIALIZED`,
//! `_COUNT_LOW`, `_FINAL_TRY`, `_LOCKED`, `_TO_BE_CHANGED`) and the vendor use of
//! `utcTime` for what has no flag (`initial`, `pin-verified`, `pin-locked`; see
//! `pkcs11-module/src/slot.rs`) — and a `token state` log line on each transition,
//! driven in order: plug in, wrong PINs to the lock, the SO's unlock (`C_InitPIN`),
//! login, logout. The gate's own lock answers `CKR_DEVICE_REMOVED`
//! (tests/tests/gate_module.rs).

#[allow(unused_imports)]
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki_sys::*;
use pkcs11_common::{pin, rawcall, rv, Ctx, SO_PIN, USER_PIN};

fn raw_info(slot: Slot) -> CK_TOKEN_INFO {
    let mut info = CK_TOKEN_INFO::default();
    assert_eq!(rawcall!(C_GetTokenInfo, slot.id(), &mut info), CKR_OK);
    info
}

/// The state the module reports in `utcTime` (blank-padded ASCII).
fn state(slot: Slot) -> String {
    let i = raw_info(slot);
    assert_eq!(
        i.flags & CKF_CLOCK_ON_TOKEN,
        0,
        "utcTime is free only without a clock"
    );
    String::from_utf8(i.utcTime.to_vec())
        .unwrap()
        .trim_end()
        .to_string()
}

fn has(slot: Slot, flag: CK_FLAGS) -> bool {
    raw_info(slot).flags & flag != 0
}

fn logged_states(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains(USER_PIN) && !text.contains(SO_PIN),
        "a PIN in the log"
    );
    text.lines()
        .filter(|l| l.contains("token state"))
        .map(|l| {
            let at = l.find("state=").unwrap() + "state=".len();
            l[at..]
                .trim_start_matches('"')
                .split(|c: char| c == '"' || c.is_whitespace())
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn token_info_reports_every_state_and_the_log_every_transition() {
    let mut ctx = Ctx::uninitialized();
    let log = ctx.dir.path().join("module.log");
    // Logging is set up once per process, at the first C_Initialize (this binary's
    // only test).
    std::env::set_var("VTOKEN_LOG", format!("info:{}", log.display()));
    ctx.reinit();
    let slot = ctx.init_token();

    // Plugged in: initial, PIN initialized, no failure.
    assert_eq!(state(slot), "initial");
    assert!(has(slot, CKF_USER_PIN_INITIALIZED));
    assert!(!has(slot, CKF_USER_PIN_COUNT_LOW));

    // Wrong PINs: count low, final try, locked (5 tries by default).
    let s = ctx.p11().open_rw_session(slot).unwrap();
    for n in 1..=5 {
        let r = s.login(UserType::User, Some(&pin("999999")));
        let want = if n < 5 {
            RvError::PinIncorrect
        } else {
            RvError::PinLocked
        };
        assert_eq!(rv(r), want, "try {n}");
        assert_eq!(has(slot, CKF_USER_PIN_COUNT_LOW), n < 5, "try {n}");
        assert_eq!(has(slot, CKF_USER_PIN_FINAL_TRY), n == 4, "try {n}");
        assert_eq!(has(slot, CKF_USER_PIN_LOCKED), n == 5, "try {n}");
        assert_eq!(state(slot), if n < 5 { "initial" } else { "pin-locked" });
    }
    // The right PIN is refused now too.
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinLocked
    );
    assert_eq!(state(slot), "pin-locked");

    // The SO unlocks with C_InitPIN: initial, and the user must change the PIN.
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin(USER_PIN)).unwrap();
    s.logout().unwrap();
    assert_eq!(state(slot), "initial");
    assert!(!has(slot, CKF_USER_PIN_LOCKED));
    assert!(has(slot, CKF_USER_PIN_TO_BE_CHANGED));

    // Login: pin-verified; logout: initial.
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(state(slot), "pin-verified");
    s.set_pin(&pin(USER_PIN), &pin("654321")).unwrap();
    assert!(!has(slot, CKF_USER_PIN_TO_BE_CHANGED));
    s.logout().unwrap();
    assert_eq!(state(slot), "initial");

    assert_eq!(
        logged_states(&log),
        [
            "initial",
            "pin-locked",
            "initial",
            "pin-verified",
            "initial"
        ]
    );
}
