//! The prompt agent and the confirmed operations are token policy (issue 15, item 5),
//! attacked through the real `vtoken` binary (the normal build, no test hook):
//!
//! - a caller's `VTOKEN_PROMPT=command:/bin/true` does not replace the agent the SO
//!   set: with the policy `deny`, a vault write fails and nothing is written, and a
//!   gated read does not hand the picture to the caller's program;
//! - a configuration with `confirm = []` (and its own agent) does not skip the
//!   token's confirmation;
//! - `vtoken prompt set` without the SO PIN, with a wrong one or with the user PIN
//!   fails and changes nothing;
//! - `VTOKEN_PROMPT` and `[prompt]` still give the defaults of a new token.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::{script, Harness, PIN, SO_PIN};

const SECRET: &str = "Pr0mpt-Policy-Marker-5521";

/// The shared harness; each run takes its extra variables as an argument.
struct Env(Harness);

impl Deref for Env {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        Env(common::harness(""))
    }

    /// A prompt script that logs each call to `<name>.log`, then exits `code`.
    fn agent(&self, name: &str, code: i32) -> PathBuf {
        let p = self.path(&format!("{name}.sh"));
        script(
            &p,
            &format!(
                "echo \"$VTOKEN_PROMPT_KIND $VTOKEN_PROMPT_TITLE\" >> '{}'\nexit {code}",
                self.path(&format!("{name}.log")).display()
            ),
        );
        p
    }

    fn calls(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// `vtoken` with a clean environment plus `env`.
    fn run(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        self.0.run_with(args, env)
    }

    fn ok(&self, args: &[&str], env: &[(&str, String)]) -> String {
        common::ok_stdout(args, self.run(args, env))
    }

    /// Fails with exit status 1 and one `error:` line; nothing secret printed.
    fn fails(&self, args: &[&str], env: &[(&str, String)]) -> String {
        let o = self.run(args, env);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = common::fails_stderr(args, o);
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "secret printed"
        );
        assert!(err.contains("error: "), "{err}");
        err
    }

    fn policy(&self) -> Value {
        serde_json::from_str(&self.ok(&["prompt", "show", "--json"], &[])).unwrap()
    }

    fn init(&self, env: &[(&str, String)]) {
        self.ok(
            &["init", "--label", "t", "--so-pin", SO_PIN, "--pin", PIN],
            env,
        );
        // The vault is switched on by its own step (SPEC V4, S202).
        self.ok(&["vault", "enable", "--pin", PIN], env);
    }

    fn titles(&self) -> Vec<String> {
        let v: Value =
            serde_json::from_str(&self.ok(&["--json", "vault", "list", "--pin", PIN], &[]))
                .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_string())
            .collect()
    }
}

fn add(title: &str) -> Vec<&str> {
    vec![
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        title,
        "--password",
        SECRET,
        "--pin",
        PIN,
    ]
}

fn prompt_env(p: &Path) -> (&'static str, String) {
    ("VTOKEN_PROMPT", format!("command:{}", p.display()))
}

/// The SO sets `deny`; a caller naming `/bin/true` (or its own spy) as the agent is
/// ignored: the write is refused, nothing is stored, the caller's program never runs.
#[test]
fn vtoken_prompt_cannot_replace_the_policy_agent() {
    let env = Env::new();
    let yes = env.agent("yes", 0);
    // The creator's VTOKEN_PROMPT is the new token's default agent.
    env.init(&[prompt_env(&yes)]);
    let p = env.policy();
    assert_eq!(p["agent"], format!("command:{}", yes.display()));
    assert_eq!(p["stored"], true);
    assert_eq!(p["confirm"], serde_json::json!(["vault-write"]));
    env.ok(&add("before"), &[]);
    assert!(env.calls("yes").contains("Store"), "{}", env.calls("yes"));

    env.ok(
        &["prompt", "set", "--agent", "deny", "--so-pin", SO_PIN],
        &[],
    );
    assert_eq!(env.policy()["agent"], "deny");

    // The attack: the caller names an agent that always says yes.
    for agent in ["command:/bin/true".to_string(), prompt_env(&yes).1] {
        let e = env.fails(&add("stolen"), &[("VTOKEN_PROMPT", agent)]);
        assert!(e.contains("not confirmed"), "{e}");
        assert!(e.contains("nothing was written"), "{e}");
    }
    assert_eq!(env.titles(), vec!["before".to_string()]);
    assert_eq!(
        env.calls("yes").lines().count(),
        1,
        "the caller's agent was asked"
    );

    // The gate's picture does not reach the caller's program either.
    env.ok(
        &[
            "gate",
            "configure",
            "--so",
            "--classes",
            "vault-password",
            "--chances",
            "10",
            "--so-pin",
            SO_PIN,
        ],
        &[],
    );
    let spy = env.agent("spy", 0);
    let e = env.fails(
        &["vault", "get", "before", "--pin", PIN],
        &[prompt_env(&spy)],
    );
    assert!(e.contains("picture"), "{e}");
    assert_eq!(env.calls("spy"), "", "the caller's agent saw the picture");
}

/// A configuration with `confirm = []` (and an agent of its own) does not switch
/// confirmations off for an existing token: the token's agent is asked and refuses.
#[test]
fn config_confirm_empty_does_not_skip_confirmation() {
    let env = Env::new();
    let no = env.agent("no", 1);
    env.init(&[prompt_env(&no)]);
    env.config("[prompt]\nagent = \"command\"\ncommand = \"/bin/true\"\nconfirm = []\n");
    let e = env.fails(&add("sneaky"), &[]);
    assert!(e.contains("not confirmed"), "{e}");
    assert!(
        env.calls("no").contains("Store"),
        "the token's agent was not asked"
    );
    assert!(env.titles().is_empty());
    // The policy is unchanged by the configuration.
    let p = env.policy();
    assert_eq!(p["agent"], format!("command:{}", no.display()));
    assert_eq!(p["confirm"], serde_json::json!(["vault-write"]));

    // A new token made under that configuration takes it as its defaults.
    env.ok(
        &["init", "--label", "u", "--so-pin", SO_PIN, "--pin", PIN],
        &[],
    );
    let u: Value =
        serde_json::from_str(&env.ok(&["--token", "u", "prompt", "show", "--json"], &[])).unwrap();
    assert_eq!(u["agent"], "command:/bin/true");
    assert_eq!(u["confirm"], serde_json::json!([]));
}

/// `vtoken prompt set` needs the SO PIN: without it, with a wrong one or with the
/// user PIN in its place it fails and the policy stays as it was; bad values are
/// refused before any PIN is checked.
#[test]
fn prompt_set_needs_the_so_pin() {
    let env = Env::new();
    let no = env.agent("no", 1);
    env.init(&[prompt_env(&no)]);
    let before = env.policy();
    let yes = env.agent("yes", 0);
    let set = |so: Option<&str>| -> Vec<String> {
        let mut v: Vec<String> = [
            "prompt",
            "set",
            "--agent",
            &format!("command:{}", yes.display()),
            "--confirm",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(s) = so {
            v.push("--so-pin".into());
            v.push(s.into());
        }
        v
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let run_fail = |args: Vec<String>, extra: &[(&str, String)]| -> String {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        env.fails(&a, extra)
    };
    // No SO PIN at all (a script: stdin is not a terminal), even with the user PIN
    // in the environment.
    let e = run_fail(strs(&set(None)), &[("VTOKEN_PIN", PIN.to_string())]);
    assert!(e.contains("no SO PIN given"), "{e}");
    for wrong in ["99999999", PIN] {
        let e = run_fail(strs(&set(Some(wrong))), &[]);
        assert!(e.contains("incorrect SO PIN"), "{e}");
    }
    assert_eq!(env.policy(), before);
    // Bad values.
    for bad in [
        vec![
            "prompt",
            "set",
            "--agent",
            "command:true",
            "--so-pin",
            SO_PIN,
        ],
        vec!["prompt", "set", "--agent", "telepathy", "--so-pin", SO_PIN],
        vec!["prompt", "set", "--confirm", "teleport", "--so-pin", SO_PIN],
        vec!["prompt", "set", "--so-pin", SO_PIN],
    ] {
        env.fails(&bad, &[]);
    }
    assert_eq!(env.policy(), before);
    // The adds still ask the old agent, which refuses.
    env.fails(&add("x"), &[]);
    assert!(env.titles().is_empty());

    // With the SO PIN: changed, and in force for the next process.
    let args = set(Some(SO_PIN));
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let shown = env.ok(&a, &[]);
    assert!(shown.contains("prompt agent:"), "{shown}");
    let p = env.policy();
    assert_eq!(p["agent"], format!("command:{}", yes.display()));
    assert_eq!(p["confirm"], serde_json::json!([]));
    env.ok(&add("y"), &[]);
    assert_eq!(env.titles(), vec!["y".to_string()]);
    assert_eq!(env.calls("yes"), "", "confirmations are off by policy");
}

/// A refusal, a timeout and "no agent" are three different messages, each with its
/// fix, and none of them writes anything.
#[test]
fn refusal_timeout_and_no_agent_are_three_messages() {
    let env = Env::new();
    // A one-second prompt timeout, so the slow agent below times out.
    env.config("[prompt]\ntimeout_secs = 1\n");
    let no = env.agent("no", 1);
    let slow = env.path("slow.sh");
    script(&slow, "sleep 30");
    env.init(&[prompt_env(&no)]);

    // Refused: the agent said no.
    let e = env.fails(&add("refused"), &[]);
    assert!(
        e.contains("not confirmed: you (or the command prompt agent) said no"),
        "{e}"
    );
    assert!(e.contains("nothing was written"), "{e}");
    assert!(env.calls("no").contains("Store"), "the agent was not asked");

    // Timed out: nobody answered within the prompt timeout.
    env.ok(
        &[
            "prompt",
            "set",
            "--agent",
            &format!("command:{}", slow.display()),
            "--so-pin",
            SO_PIN,
        ],
        &[],
    );
    let e = env.fails(&add("late"), &[]);
    assert!(
        e.contains("not confirmed: no answer within 1 s on the command prompt"),
        "{e}"
    );
    assert!(e.contains("timeout_secs"), "{e}");

    // No agent: the policy is `deny`.
    env.ok(
        &["prompt", "set", "--agent", "deny", "--so-pin", SO_PIN],
        &[],
    );
    let e = env.fails(&add("nobody"), &[]);
    assert!(
        e.contains("not confirmed: no prompt agent can ask (the token's prompt policy is `deny`)"),
        "{e}"
    );
    assert!(e.contains("vtoken prompt set --agent"), "{e}");

    // No agent: the desktop agent without a display (the harness clears DISPLAY).
    env.ok(
        &["prompt", "set", "--agent", "desktop", "--so-pin", SO_PIN],
        &[],
    );
    assert_eq!(env.policy()["kind"], "desktop");
    let e = env.fails(&add("no-display"), &[]);
    assert!(
        e.contains("not confirmed: no prompt agent can ask") && e.contains("DISPLAY"),
        "{e}"
    );

    // Nothing was written by any of them.
    assert!(env.titles().is_empty(), "{:?}", env.titles());
}
