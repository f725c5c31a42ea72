//! The SO resynchronizes a vault entry's event counter (SPEC V9, ¶0093): forward
//! only, so a dynamic password never repeats; on real token files.

use std::sync::Arc;

use vault_core::config::Config;
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::vault::{Entry, Kind, PasswordOutput, VaultMode};
use vault_core::Error;

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";
const DATA: &str = "Event-Seed-42";

struct Yes;
impl Prompt for Yes {
    fn confirm(&self, _: &Request) -> vault_core::Result<Answer> {
        Ok(Answer::Confirmed)
    }
    fn name(&self) -> &str {
        "yes"
    }
}

fn token() -> (tempfile::TempDir, Arc<Token>, u64) {
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
    t.set_prompt(Arc::new(Yes));
    let id = t
        .vault_add(&Entry::new(Kind::Custom, "vpn").with("password", DATA, true))
        .unwrap();
    (dir, t, id)
}

fn event_password(t: &Token, id: u64) -> String {
    let out = PasswordOutput::Dynamic {
        time_period: None,
        event: true,
        digits: 6,
    };
    String::from_utf8(t.vault_password(id, None, &out).unwrap().to_vec()).unwrap()
}

#[test]
fn resync_moves_forward_only_with_the_so_pin() {
    let (_d, t, id) = token();
    event_password(&t, id);
    event_password(&t, id);
    assert_eq!(t.vault_event_counter(id).unwrap(), 2);

    // A wrong SO PIN: counted, nothing moves.
    assert!(matches!(
        t.vault_event_resync(id, b"wrong-so-pin", 10),
        Err(Error::PinIncorrect)
    ));
    assert_eq!(t.info().unwrap().so_pin.failures, 1);
    assert_eq!(t.vault_event_counter(id).unwrap(), 2);
    // Backwards: refused, so event 1 is never used twice.
    let e = t.vault_event_resync(id, SO, 1).unwrap_err();
    assert!(e.to_string().contains("only moves it forward"), "{e}");
    assert_eq!(t.vault_event_counter(id).unwrap(), 2);
    // Not a vault entry.
    assert!(t.vault_event_resync(id + 1000, SO, 10).is_err());

    // Forward: the next password uses event 10, then 11.
    assert_eq!(t.vault_event_resync(id, SO, 10).unwrap(), 2);
    assert_eq!(t.vault_event_counter(id).unwrap(), 10);
    for event in [10, 11] {
        let want = otp_core::dynamic_password(DATA, None, Some(event), 6).unwrap();
        assert_eq!(event_password(&t, id), want, "event {event}");
    }
    // The same value again is allowed (a no-op), an older one is not.
    assert!(t.vault_event_resync(id, SO, 12).is_ok());
    assert!(t.vault_event_resync(id, SO, 11).is_err());

    // The user must be logged in to name the entry.
    t.logout().unwrap();
    assert!(matches!(
        t.vault_event_resync(id, SO, 20),
        Err(Error::UserNotLoggedIn)
    ));
}
