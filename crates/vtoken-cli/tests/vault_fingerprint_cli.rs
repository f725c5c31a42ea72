//! `vtoken vault policy --show-secrets fingerprint` (SPEC V5, ¶0087–0088) and `vtoken
//! vault resync` (V9) end to end: the binary, a temporary token, and a real command
//! prompt agent (a shell script that records what the token shows and confirms).

mod common;
use common::{script, PIN, SO_PIN};

const SECRET: &str = "Fp-Secret-Marker-77";

/// The fingerprint lines `  NAME: xxxx-xxxx-xxxx-xxxx` the client printed.
fn client_fingerprint(stderr: &str, name: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no fingerprint of {name} printed: {stderr}"))
        .to_string()
}

#[test]
fn the_client_prints_the_fingerprints_the_token_shows() {
    let mut h = common::harness("");
    let prompt = h.path("prompt.sh");
    let log = h.path("prompts.log");
    script(&prompt, &format!("cat >> '{}'\nexit 0", log.display()));
    h.set_var("VTOKEN_PROMPT", format!("command:{}", prompt.display()));
    h.set_var("VTOKEN_PIN", PIN);
    h.set_var("VTOKEN_SO_PIN", SO_PIN);
    h.ok(&["init", "--label", "t"]);
    h.ok(&["vault", "enable"]);

    // The default is plain: the secret shows as received, no fingerprint printed.
    assert!(h.ok(&["vault", "policy"]).contains("show-secrets: plain"));
    let add = |title: &str| {
        h.run(&[
            "vault",
            "add",
            "--kind",
            "website",
            "--title",
            title,
            "--password",
            SECRET,
        ])
    };
    let o = add("plain");
    assert!(o.status.success(), "{o:?}");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("fingerprint"));
    assert!(std::fs::read_to_string(&log).unwrap().contains(SECRET));
    std::fs::remove_file(&log).unwrap();

    // Only the SO sets the policy: a wrong SO PIN changes nothing.
    let err = h.fails(&[
        "vault",
        "policy",
        "--show-secrets",
        "fingerprint",
        "--so-pin",
        "87654321",
    ]);
    assert!(err.contains("SO PIN"), "{err}");
    assert!(h.ok(&["vault", "policy"]).contains("plain"));
    let o = h.run(&[
        "vault",
        "policy",
        "--show-secrets",
        "hash",
        "--so-pin",
        SO_PIN,
    ]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("plain or fingerprint"));
    let v = h.json(&[
        "--json",
        "vault",
        "policy",
        "--show-secrets",
        "fingerprint",
        "--so-pin",
        SO_PIN,
    ]);
    assert_eq!(v["show_secrets"], "fingerprint");

    // Fingerprint: the prompt shows the same fingerprint the client printed, and
    // never the secret.
    let o = add("fp1");
    assert!(o.status.success(), "{o:?}");
    let fp1 = client_fingerprint(&String::from_utf8_lossy(&o.stderr), "password");
    let shown = std::fs::read_to_string(&log).unwrap();
    assert!(
        shown.contains(&format!("password (secret, fingerprint): {fp1}")),
        "{shown}"
    );
    assert!(!shown.contains(SECRET), "{shown}");
    // A fresh random per write: the same secret gets another fingerprint.
    let o = add("fp2");
    let fp2 = client_fingerprint(&String::from_utf8_lossy(&o.stderr), "password");
    assert_ne!(fp1, fp2);
    assert!(std::fs::read_to_string(&log).unwrap().contains(&fp2));
    // The value stored is the one sent.
    let shown = h.json(&["--json", "vault", "show", "fp2", "--reveal"]);
    assert!(shown.to_string().contains(SECRET), "{shown}");
}

/// `vtoken vault resync` (SPEC V9): the SO moves an entry's event counter forward;
/// backwards and a wrong SO PIN are refused.
#[test]
fn so_resyncs_the_event_counter_forward_only() {
    let mut h = common::harness("");
    let prompt = h.path("prompt.sh");
    script(&prompt, "exit 0");
    h.set_var("VTOKEN_PROMPT", format!("command:{}", prompt.display()));
    h.set_var("VTOKEN_PIN", PIN);
    h.set_var("VTOKEN_SO_PIN", SO_PIN);
    h.ok(&["init", "--label", "t"]);
    h.ok(&["vault", "enable"]);
    h.ok(&[
        "vault",
        "add",
        "--kind",
        "custom",
        "--title",
        "vpn",
        "--secret-field",
        "password=Seed-9",
    ]);
    let code = |h: &vtoken_testsupport::cli::Env| {
        h.ok(&["vault", "get", "vpn", "--dynamic", "--event"])
            .trim()
            .to_string()
    };
    code(&h);
    let err = h.fails(&[
        "vault", "resync", "vpn", "--next", "50", "--so-pin", "87654321",
    ]);
    assert!(err.contains("SO PIN"), "{err}");
    let v = h.json(&["--json", "vault", "resync", "vpn", "--next", "50"]);
    assert_eq!((v["was"].as_u64(), v["next"].as_u64()), (Some(1), Some(50)));
    let err = h.fails(&["vault", "resync", "vpn", "--next", "3"]);
    assert!(err.contains("only moves it forward"), "{err}");
    for event in [50, 51] {
        let want = otp_core::dynamic_password("Seed-9", None, Some(event), 6).unwrap();
        assert_eq!(code(&h), want, "event {event}");
    }
}
