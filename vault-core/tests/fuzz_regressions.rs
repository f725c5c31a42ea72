//! Inputs found by fuzzing (`fuzz/`, target `token_file`), kept as regression tests.

use vault_core::config::Config;
use vault_core::store::Store;
use vault_core::token::{Token, UserType};
use vault_core::Error;

/// A token file whose user-PIN failure counter reads u32::MAX (a forged or
/// 4-billion-times-failed file): token info and login must report the PIN as
/// locked. Found by the `token_file` target (input `01 03 00 04 ff ff ff ff`: a
/// sealed counter of u32::MAX). The next failure count (`failures + 1`) must not
/// overflow: that would panic in builds with overflow checks (debug, fuzzing) and wrap
/// to 0, an unlocked PIN, in release.
#[test]
fn saturated_pin_failure_counter_reads_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::for_dir(dir.path());
    let path = dir.path().join("t.vtoken");
    Token::create(&path, "t", b"12345678", &cfg).unwrap();
    {
        let token = Token::open(&path, &cfg).unwrap();
        token.login(UserType::So, b"12345678").unwrap();
        token.init_pin(b"user-pin").unwrap();
        token.logout().unwrap();
    }
    Store::open(&path)
        .unwrap()
        .set_counter("user_pin_failures", u32::MAX)
        .unwrap();
    let token = Token::open(&path, &cfg).unwrap();
    let info = token.info().unwrap();
    assert!(info.user_pin.locked);
    assert!(!info.user_pin.final_try);
    assert_eq!(info.user_pin.failures, u32::MAX);
    assert!(matches!(
        token.login(UserType::User, b"user-pin"),
        Err(Error::PinLocked)
    ));
}
