//! The `fingerprint` secret display (SPEC V5, ¶0087–0088) through the public API on
//! real token files: the test stands between the client and the token and changes a
//! secret in transit; the prompt then shows a fingerprint the client's does not
//! match.

use std::sync::{Arc, Mutex};

use vault_core::config::Config;
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::vault::{fingerprint, Entry, Kind, SecretDisplay, VaultMode};
use vault_core::Error;

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";

/// Records what the token shows, confirms.
#[derive(Default)]
struct Screen(Mutex<Vec<String>>);

impl Prompt for Screen {
    fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
        self.0.lock().unwrap().push(req.description.clone());
        Ok(Answer::Confirmed)
    }
    fn name(&self) -> &str {
        "screen"
    }
}

impl Screen {
    fn last(&self) -> String {
        self.0.lock().unwrap().last().cloned().unwrap()
    }
}

fn token() -> (tempfile::TempDir, Arc<Token>, Arc<Screen>) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let e = reg.create("test", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.vault_setup(VaultMode::Available).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, USER).unwrap();
    t.vault_enable().unwrap();
    let s = Arc::new(Screen::default());
    t.set_prompt(s.clone());
    (dir, t, s)
}

fn site(password: &str) -> Entry {
    Entry::new(Kind::Website, "bank")
        .with("username", "alice", false)
        .with("password", password, true)
}

#[test]
fn a_secret_changed_in_transit_shows_another_fingerprint() {
    let (_d, t, screen) = token();
    // Only the SO PIN sets the policy.
    assert!(matches!(
        t.vault_set_secret_display(USER, SecretDisplay::Fingerprint),
        Err(Error::PinIncorrect)
    ));
    assert_eq!(t.vault_secret_display().unwrap(), SecretDisplay::Plain);
    t.vault_set_secret_display(SO, SecretDisplay::Fingerprint)
        .unwrap();
    assert_eq!(
        t.vault_secret_display().unwrap(),
        SecretDisplay::Fingerprint
    );

    // Untouched: the prompt shows the fingerprint the client computed.
    let nonce = t.vault_write_nonce().unwrap();
    let client = fingerprint(&nonce, "password", "Sent-1");
    t.vault_add(&site("Sent-1")).unwrap();
    let shown = screen.last();
    assert!(
        shown.contains(&format!("password (secret, fingerprint): {client}")),
        "{shown}"
    );
    assert!(
        !shown.contains("Sent-1"),
        "no secret on the screen: {shown}"
    );
    assert!(shown.contains("username: alice"));

    // Tampered between the client and the token: the client shows the fingerprint
    // of what it sent, the token the one of what it received; they differ.
    let nonce = t.vault_write_nonce().unwrap();
    let client = fingerprint(&nonce, "password", "Sent-2");
    t.vault_add(&site("Changed-2")).unwrap();
    let shown = screen.last();
    assert!(!shown.contains(&client), "{shown}");
    assert!(shown.contains(&fingerprint(&nonce, "password", "Changed-2")));

    // The random serves one write: a second write without a new one shows a
    // fingerprint under a random the client never had.
    let nonce = t.vault_write_nonce().unwrap();
    t.vault_add(&site("Same")).unwrap();
    t.vault_add(&site("Same")).unwrap();
    assert!(!screen
        .last()
        .contains(&fingerprint(&nonce, "password", "Same")));

    // An edit is shown the same way.
    let id = t.vault_find_title("bank").unwrap()[0];
    let nonce = t.vault_write_nonce().unwrap();
    t.vault_update(id, &site("Edited")).unwrap();
    assert!(screen
        .last()
        .contains(&fingerprint(&nonce, "password", "Edited")));

    // Back to plain: the secret is shown as received.
    t.vault_set_secret_display(SO, SecretDisplay::Plain)
        .unwrap();
    t.vault_add(&site("Plain-3")).unwrap();
    assert!(screen.last().contains("password (secret): Plain-3"));
}
