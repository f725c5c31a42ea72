//! Configuration parsing and defaults.

use super::*;

#[test]
fn one_line_config_is_complete() {
    let c = Config::from_toml("token_dir = \"/tmp/x\"\n").unwrap();
    assert_eq!(c.token_dir, PathBuf::from("/tmp/x"));
    assert_eq!(c.kdf, KdfParams::DEFAULT);
    assert_eq!(c.pin, PinPolicy::default());
}

#[test]
fn profiles_and_errors() {
    assert_eq!(
        Config::from_toml("kdf = \"test\"").unwrap().kdf,
        KdfParams::TEST
    );
    assert!(Config::from_toml("[kdf]\nm_cost_kib = 4194304\nt_cost = 1\n").is_err());
    assert!(Config::from_toml("[kdf]\nm_cost_kib = 1024\nt_cost = 1000\n").is_err());
    let c = Config::from_toml("[kdf]\nm_cost_kib = 1024\nt_cost = 1\n").unwrap();
    assert_eq!(c.kdf.m_cost_kib, 1024);
    assert!(Config::from_toml("kdf = \"fast\"").is_err());
    assert!(Config::from_toml("tokendir = \"/x\"").is_err());
    assert!(Config::from_toml("[pin]\nmin_len = 9\nmax_len = 4\n").is_err());
    let c = Config::from_toml("[pin]\nuser_max_tries = 3\n").unwrap();
    assert_eq!(c.pin.user_max_tries, 3);
    assert_eq!(c.pin.min_len, 6);
}

#[test]
fn strict_wrap_is_on_unless_turned_off() {
    assert!(Config::from_toml("").unwrap().policy.strict_wrap);
    assert_eq!(
        Config::from_toml("").unwrap().policy.key_privacy,
        KeyPrivacy::Force
    );
    let r = Config::from_toml("[policy]\nkey_privacy = \"refuse\"\n").unwrap();
    assert_eq!(r.policy.key_privacy, KeyPrivacy::Refuse);
    assert!(Config::from_toml("[policy]\nkey_privacy = \"public\"\n").is_err());
    let c = Config::from_toml("[policy]\nstrict_wrap = false\n").unwrap();
    assert!(!c.policy.strict_wrap);
    assert_eq!(
        Config::from_toml("").unwrap().policy.key_defaults,
        KeyDefaults::Sensitive
    );
    let l = Config::from_toml("[policy]\nkey_defaults = \"legacy\"\n").unwrap();
    assert_eq!(l.policy.key_defaults, KeyDefaults::Legacy);
    assert!(Config::from_toml("[policy]\nkey_defaults = \"open\"\n").is_err());
    assert!(Config::from_toml("[policy]\nstrict = false\n").is_err());
}

#[test]
fn protected_login_is_off_unless_configured() {
    assert_eq!(
        Config::from_toml("").unwrap().prompt.login,
        LoginInput::Client
    );
    let c = Config::from_toml("[prompt]\nlogin = \"agent\"\n").unwrap();
    assert_eq!(c.prompt.login, LoginInput::Agent);
    assert!(Config::from_toml("[prompt]\nlogin = \"pinpad\"\n").is_err());
}
