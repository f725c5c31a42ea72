//! Shows one confirmation through a prompt agent and prints the answer.
//!
//! ```text
//! cargo run -p vault-core --example prompt_demo -- tty
//! cargo run -p vault-core --example prompt_demo -- pinentry:/usr/bin/pinentry-tty
//! cargo run -p vault-core --example prompt_demo -- command:/path/to/script [TIMEOUT_SECS]
//! ```
//!
//! The agent is given in `VTOKEN_PROMPT` syntax (see `vault_core::prompt`). The answer
//! goes to stdout as one line: `Confirmed`, `Refused`, `TimedOut` or `Error: ...`.

use vault_core::config::PromptConfig;
use vault_core::prompt::{self, Request};

fn main() {
    let mut args = std::env::args().skip(1);
    let spec = args.next().unwrap_or_else(|| "tty".into());
    let timeout: u64 = args.next().and_then(|t| t.parse().ok()).unwrap_or(30);
    let cfg = PromptConfig {
        timeout_secs: timeout,
        ..PromptConfig::default()
    };
    let agent = match cfg.with_override(&spec).and_then(|c| prompt::build(&c)) {
        Ok(a) => a,
        Err(e) => {
            println!("Error: {e}");
            std::process::exit(2);
        }
    };
    let req = Request {
        title: "vtoken: store vault entry?".into(),
        description: "Entry: demo@example.org\nSite: https://example.org".into(),
    };
    match agent.confirm(&req) {
        Ok(a) => println!("{a:?}"),
        Err(e) => {
            println!("Error: {e}");
            std::process::exit(1);
        }
    }
}
