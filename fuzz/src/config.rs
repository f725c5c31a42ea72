//! The configuration parser (`vault_core::config::Config::from_toml`) and the
//! `VTOKEN_PROMPT` override syntax.
//!
//! Any text must give `Ok` or `Err`, never a panic; an accepted configuration must
//! satisfy the invariants the rest of the token relies on.

use vault_core::config::{Config, PromptConfig};

/// One fuzz input: UTF-8 text as a TOML configuration, then as a prompt override.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_toml(text) {
        let p = c.pin;
        assert!(1 <= p.min_len && p.min_len <= p.max_len && p.max_len <= 255);
        assert!(p.user_max_tries >= 1 && p.so_max_tries >= 1);
        assert!((1..=86_400).contains(&c.prompt.timeout_secs));
        assert!(c
            .prompt
            .confirm
            .iter()
            .all(|op| PromptConfig::OPERATIONS.contains(&op.as_str())));
        assert!(c.kdf.m_cost_kib >= 8 * c.kdf.p_cost && c.kdf.t_cost >= 1);
        assert!(c.source.is_none());
    }
    if let Ok(p) = PromptConfig::default().with_override(text) {
        assert!(p.agent != vault_core::config::PromptAgent::Command || !p.command.is_empty());
    }
}
