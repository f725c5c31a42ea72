//! The vault through the Rust API: create a token in a temporary directory, plug in
//! a prompt agent of your own (here one that prints the request and confirms), add a
//! website entry, list and search, read its password, derive a dynamic password
//! from it (SPEC V9), and add an OTP credential from an `otpauth://` URI.
//!
//! Run: `cargo run -p vtoken-examples --bin vault`
//!
//! Every vault write (add, edit, delete, import — and `C_CreateObject` & co. through
//! PKCS#11) is shown to the user through the token's prompt agent first; a refusal
//! writes nothing (`Error::FunctionRejected`). An integrator with a UI of their own
//! implements [`Prompt`] and installs it with `Token::set_prompt`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vault_core::config::Config;
use vault_core::prompt::{display_safe, Answer, Prompt, Request};
use vault_core::slots::Registry;
use vault_core::token::UserType;
use vault_core::vault::{Entry, Kind, PasswordOutput, Query};

/// A prompt agent for integrators: a real one would show a dialog and wait for the
/// user's click; this one prints the request and confirms.
#[derive(Default)]
struct PrintAndConfirm {
    asked: AtomicUsize,
}

impl Prompt for PrintAndConfirm {
    fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        // The description comes from the client: make it safe for a terminal.
        println!("  ┌ prompt: {}", display_safe(&req.title));
        for line in display_safe(&req.description).lines() {
            println!("  │ {line}");
        }
        println!("  └ answered: confirmed");
        Ok(Answer::Confirmed)
    }

    fn name(&self) -> &str {
        "example"
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // A throw-away token directory; real programs use Config::load() (VTOKEN_CONF).
    let reg = Registry::new(Config::for_dir(dir.path()));
    let created = reg.create("vault-example", b"so-pin-123", None)?;
    let token = reg.open(&created)?;
    token.login(UserType::So, b"so-pin-123")?;
    token.init_pin(b"user-pin-123")?;
    token.logout()?;
    println!(
        "token {} (serial {}), vault usable: {}",
        created.label,
        created.serial,
        token.vault_status()?.usable
    );

    // The default agent refuses everything (fail closed): install ours.
    let agent = Arc::new(PrintAndConfirm::default());
    token.set_prompt(agent.clone());
    token.login(UserType::User, b"user-pin-123")?;

    // A website entry: the preset fields of the kind, the password secret.
    println!("adding two entries (each shown to the agent first):");
    let entry = Entry::new(Kind::Website, "Example Shop")
        .with_url("https://shop.example.com/login")
        .with("username", "alice@example.com", false)
        .with("password", "correct horse battery staple", true)
        .with("notes", "customer no. 4711", false);
    let id = token.vault_add(&entry)?;
    token.vault_add(
        &Entry::new(Kind::Email, "Work mail")
            .with_url("https://webmail.corp.example")
            .with("address", "alice@corp.example", false)
            .with("password", "mail-secret", true)
            .with("server", "imap.corp.example", false),
    )?;
    println!(
        "entry {id} stored; {} confirmations so far",
        agent.asked.load(Ordering::Relaxed)
    );

    println!("vault entries (no secrets in listings):");
    for (id, s) in token.vault_list()? {
        println!(
            "  #{id} [{}] {} <{}> {}",
            s.kind, s.title, s.username, s.url
        );
    }
    let hits = token.vault_search(&Query {
        text: Some("shop".into()),
        ..Query::default()
    })?;
    println!(
        "search \"shop\": {:?}",
        hits.iter().map(|(_, s)| &s.title).collect::<Vec<_>>()
    );
    let by_url = token.vault_search(&Query {
        url: Some("corp.example".into()),
        ..Query::default()
    })?;
    println!("search URL \"corp.example\": {} entries", by_url.len());

    let shown = token.vault_get(id)?;
    println!("entry {id} (Debug masks secrets): {shown:?}");
    let password = token.vault_password(id, None, &PasswordOutput::Plain)?;
    println!("password: {}", String::from_utf8_lossy(&password));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // A dynamic password (SPEC V9) over the stored value: the token's clock, 30 s
    // steps.
    let dynamic = token.vault_password(
        id,
        Some("password"),
        &PasswordOutput::Dynamic {
            time_period: Some(30),
            event: false,
            digits: 8,
        },
    )?;
    println!(
        "dynamic password (8 digits, now): {}",
        String::from_utf8_lossy(&dynamic)
    );
    // The event factor: the entry's own counter, advanced by the token each time.
    let by_counter = token.vault_password(
        id,
        None,
        &PasswordOutput::Dynamic {
            time_period: None,
            event: true,
            digits: 6,
        },
    )?;
    println!(
        "dynamic password (next event): {}",
        String::from_utf8_lossy(&by_counter)
    );

    // An OTP credential from an otpauth URI (the RFC 6238 test secret).
    let uri = otp_core::OtpUri::parse(
        "otpauth://totp/Example:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&digits=8",
    )?;
    token.otp_add(&uri, false)?;
    for c in token.otp_list()? {
        println!(
            "OTP credential {} ({:?}, {} digits)",
            c.name, c.kind, c.digits
        );
    }
    println!(
        "TOTP {} at t=59: {} (RFC 6238: 94287082), now: {}",
        uri.name(),
        token.otp_code(&uri.name(), 59)?,
        token.otp_code(&uri.name(), now)?
    );

    token.logout()?;
    Ok(())
}
