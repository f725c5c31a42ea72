//! The protected authentication path through the real module (`cryptoki`):
//! `C_Login` with a NULL PIN asks the token's prompt agent (PKCS#11 3.0 §5.6,
//! SPEC V6), only with `[prompt] login = "agent"`.
//!
//! - not configured: no `CKF_PROTECTED_AUTHENTICATION_PATH`, a NULL PIN is
//!   `CKR_ARGUMENTS_BAD` and the agent is never run;
//! - configured, but the token's agent is `deny`: the same;
//! - configured with a command agent: the flag is set; the agent's right PIN logs
//!   in (and a typed PIN still works); its wrong PIN is `CKR_PIN_INCORRECT` and
//!   counted like any wrong PIN; a refusal is `CKR_FUNCTION_CANCELED` and counts
//!   nothing; a NULL PIN while logged in is refused before the agent runs.

#[allow(unused_imports)]
mod pkcs11_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use pkcs11_common::{init_args, pin, rv, Ctx, USER_PIN};

/// The agent: records how it was asked, then answers as `mode` says (`right`,
/// `wrong`, `refuse`).
fn agent(dir: &Path) -> PathBuf {
    let p = dir.join("agent.sh");
    let d = dir.display();
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n\
             echo \"$VTOKEN_PROMPT_KIND secret=$VTOKEN_PROMPT_SECRET $VTOKEN_PROMPT_LABEL\" >> '{d}/asked'\n\
             case $(cat '{d}/mode') in\n\
             right) echo {USER_PIN} ;;\n\
             wrong) echo 654321 ;;\n\
             *) exit 1 ;;\n\
             esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A module context whose config has `extra` under `[prompt]` and a token made
/// with the caller's `[prompt] agent` as its policy.
fn setup(prompt: &str) -> (Ctx, Slot) {
    std::env::remove_var("VTOKEN_PROMPT");
    let ctx = Ctx::uninitialized();
    let tokens = ctx.dir.path().join("tokens");
    let extra = prompt.replace("AGENT", &agent(ctx.dir.path()).display().to_string());
    vtoken_testsupport::env::write_config(&ctx.conf, &tokens, &format!("[prompt]\n{extra}"));
    ctx.p11().initialize(init_args()).expect("C_Initialize");
    let slot = ctx.init_token();
    (ctx, slot)
}

fn mode(ctx: &Ctx, m: &str) {
    std::fs::write(ctx.dir.path().join("mode"), m).unwrap();
}

fn asked(ctx: &Ctx) -> Vec<String> {
    std::fs::read_to_string(ctx.dir.path().join("asked"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn null_pin_without_the_setting_is_a_bad_argument() {
    for prompt in [
        "agent = \"command\"\ncommand = \"AGENT\"\n",
        "agent = \"deny\"\nlogin = \"agent\"\n",
    ] {
        let (ctx, slot) = setup(prompt);
        mode(&ctx, "right");
        let info = ctx.p11().get_token_info(slot).unwrap();
        assert!(!info.protected_authentication_path(), "{prompt}");
        let s = ctx.p11().open_ro_session(slot).unwrap();
        assert_eq!(rv(s.login(UserType::User, None)), RvError::ArgumentsBad);
        assert!(asked(&ctx).is_empty(), "the agent ran: {:?}", asked(&ctx));
        s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    }
}

#[test]
fn null_pin_asks_the_agent_and_counts_its_wrong_pin() {
    let (ctx, slot) = setup("agent = \"command\"\ncommand = \"AGENT\"\nlogin = \"agent\"\n");
    let info = ctx.p11().get_token_info(slot).unwrap();
    assert!(info.protected_authentication_path());
    let s = ctx.p11().open_ro_session(slot).unwrap();

    // Refused on the prompt: cancelled, no PIN tried, nothing counted.
    mode(&ctx, "refuse");
    assert_eq!(rv(s.login(UserType::User, None)), RvError::FunctionCanceled);
    assert!(!ctx.p11().get_token_info(slot).unwrap().user_pin_count_low());

    // A wrong PIN typed on the prompt counts like a wrong typed PIN.
    mode(&ctx, "wrong");
    assert_eq!(rv(s.login(UserType::User, None)), RvError::PinIncorrect);
    assert!(ctx.p11().get_token_info(slot).unwrap().user_pin_count_low());

    // The right one logs in (and resets the counter).
    mode(&ctx, "right");
    s.login(UserType::User, None).unwrap();
    let si = s.get_session_info().unwrap();
    assert_eq!(si.session_state(), cryptoki::session::SessionState::RoUser);
    assert!(!ctx.p11().get_token_info(slot).unwrap().user_pin_count_low());
    assert_eq!(
        asked(&ctx),
        vec!["ask secret=1 User PIN"; 3],
        "each NULL-PIN login asked once, for a secret"
    );

    // Already logged in: refused before the agent is bothered.
    assert_eq!(
        rv(s.login(UserType::User, None)),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(asked(&ctx).len(), 3);

    // A client that types the PIN is not affected by the setting.
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(asked(&ctx).len(), 3);
}
