//! The vault through real PKCS#11 clients (SPEC V1–V5): `pkcs11-tool` (OpenSC) and
//! python-pkcs11 write vault entries as private `CKO_DATA` objects with
//! `CKA_APPLICATION = "vtoken-vault"`; every write goes through the prompt agent
//! (here `VTOKEN_PROMPT=command:<script>`), and a refusal or a timeout gives
//! `CKR_FUNCTION_REJECTED` with nothing written. An optional vault hides its entries
//! and refuses writes until it is activated and enabled. The token file never holds
//! an entry's secrets in the clear.
//!
//! Every test has its own temp directory and config (`VTOKEN_CONF` is passed to the
//! child processes only), so the tests run in parallel.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vtoken_testsupport::{artifacts, env};

const SO_PIN: &str = "12345678";
const PIN: &str = "123456";
/// The password of the test entries: searched for in the token files.
const PASSWORD: &str = "Vlt-pw-7Qx2Rk9ZmT4w";
/// An unusual note, also searched for in the token files.
const NOTE: &str = "note-Hq83LmPz0c";

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A website entry as the JSON of `CKA_VALUE`.
fn entry_json(title: &str) -> String {
    serde_json::json!({
        "kind": "website",
        "title": title,
        "url": "https://login.example.com",
        "fields": [
            {"name": "username", "value": "alice", "secret": false},
            {"name": "password", "value": PASSWORD, "secret": true},
            {"name": "notes", "value": NOTE, "secret": false},
        ],
    })
    .to_string()
}

/// One test's world: a temp dir with a config, token directory and prompt scripts.
struct World {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// The `VTOKEN_PROMPT` the PKCS#11 clients run with (`None`: the agent the
    /// token's policy names, i.e. the caller asks for what the SO set).
    caller_prompt: std::cell::RefCell<Option<String>>,
}

impl World {
    /// A config with a short prompt timeout (the timing-out agent is killed after 2 s).
    fn new() -> World {
        artifacts::pkcs11_module();
        artifacts::cli();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("vtoken.toml");
        env::write_config(
            &conf,
            &dir.path().join("tokens"),
            "\n[prompt]\ntimeout_secs = 2\n",
        );
        World {
            dir,
            conf,
            caller_prompt: Default::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An executable shell script `name` with `body` after the shebang.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A confirming agent that records what it was shown in `seen.txt`.
    fn confirm_agent(&self) -> String {
        let seen = self.path("seen.txt");
        let p = self.script(
            "confirm.sh",
            &format!("cat >> '{}'\nexit 0", seen.display()),
        );
        format!("command:{}", p.display())
    }

    fn refuse_agent(&self) -> String {
        let p = self.script("refuse.sh", "cat > /dev/null\nexit 1");
        format!("command:{}", p.display())
    }

    fn slow_agent(&self) -> String {
        let p = self.script("slow.sh", "sleep 30\nexit 0");
        format!("command:{}", p.display())
    }

    /// `vtoken args...` (no prompt agent: `deny`).
    fn cli(&self, args: &[&str]) -> Output {
        env::command(artifacts::cli(), &self.conf)
            .args(args)
            .env("VTOKEN_PROMPT", "deny")
            .output()
            .expect("run vtoken")
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "vtoken {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates token `label`; with `optional` returns the vault activation code.
    fn init(&self, label: &str, optional: bool) -> Option<String> {
        let mut args = vec![
            "init", "--label", label, "--so-pin", SO_PIN, "--pin", PIN, "--json",
        ];
        if optional {
            args.extend(["--vault", "optional"]);
        }
        let v: serde_json::Value = serde_json::from_str(&self.cli_ok(&args)).unwrap();
        assert_eq!(v["label"], label, "{v}");
        let mode = if optional { "optional" } else { "available" };
        assert_eq!(v["vault"]["mode"], mode, "{v}");
        let code = v["vault"]["activation_code"].as_str().map(str::to_string);
        assert_eq!(code.is_some(), optional, "activation code: {v}");
        if !optional {
            // An available vault skips activation, not the enable step (V4, S202).
            self.cli_ok(&["--token", label, "vault", "enable", "--pin", PIN]);
        }
        code
    }

    /// `vtoken vault list --json`: the titles.
    fn vault_titles(&self) -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.cli_ok(&["vault", "list", "--json", "--pin", PIN])).unwrap();
        v.as_array()
            .unwrap_or_else(|| panic!("vault list --json is not an array: {v}"))
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_string())
            .collect()
    }

    /// Makes `prompt` the prompt agent of every token here. The agent is token
    /// policy that only the SO sets (`vtoken prompt set`): the module ignores the
    /// caller's `VTOKEN_PROMPT`.
    fn use_agent(&self, prompt: &str) {
        let list: serde_json::Value =
            serde_json::from_str(&self.cli_ok(&["list", "--json"])).unwrap();
        let tokens = list
            .as_array()
            .or_else(|| list["tokens"].as_array())
            .cloned()
            .unwrap_or_default();
        // `list --json` ends with the free slot (no token, no serial).
        for t in tokens.into_iter().filter(|t| t["free"] != true) {
            let serial = t["serial"].as_str().unwrap().to_string();
            self.cli_ok(&[
                "--token", &serial, "prompt", "set", "--agent", prompt, "--so-pin", SO_PIN,
            ]);
        }
    }

    /// `pkcs11-tool --module <module> args...` with the prompt agent `prompt`.
    fn tool(&self, prompt: &str, args: &[&str]) -> Output {
        self.use_agent(prompt);
        let caller = self.caller_prompt.borrow().clone();
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(artifacts::pkcs11_module())
            .args(args)
            .env("VTOKEN_CONF", &self.conf)
            .env("VTOKEN_PROMPT", caller.as_deref().unwrap_or(prompt))
            .output()
            .unwrap_or_else(|e| panic!("pkcs11-tool not runnable ({e}); install opensc"))
    }

    fn tool_ok(&self, prompt: &str, args: &[&str]) -> String {
        let out = self.tool(prompt, args);
        assert!(out.status.success(), "pkcs11-tool {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `json` as a vault entry with pkcs11-tool (does not check the result).
    fn write_entry(&self, prompt: &str, label: &str, json: &str) -> Output {
        let file = self.path(&format!("{label}.json"));
        std::fs::write(&file, json).unwrap();
        let file = file.to_str().unwrap().to_string();
        self.tool(
            prompt,
            &[
                "--write-object",
                &file,
                "--type",
                "data",
                "--application-label",
                "vtoken-vault",
                "--label",
                label,
                "--private",
                "--login",
                "--pin",
                PIN,
            ],
        )
    }

    /// The output of `pkcs11-tool --list-objects --type data` after login.
    fn list_data(&self) -> String {
        self.tool_ok(
            "deny",
            &["--list-objects", "--type", "data", "--login", "--pin", PIN],
        )
    }

    /// Every file of the token directory (the `.vtoken` file, its `-wal`, ...).
    fn token_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.path("tokens")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let b = std::fs::read(&p).unwrap();
                out.push((p, b));
            }
        }
        assert!(
            out.iter()
                .any(|(p, _)| p.extension().is_some_and(|x| x == "vtoken")),
            "no .vtoken file in {:?}",
            out.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        out
    }
}

/// Asserts that a failed pkcs11-tool run failed with CKR_FUNCTION_REJECTED.
fn assert_rejected(out: &Output, what: &str) {
    let all = text(out);
    assert!(
        !out.status.success(),
        "{what}: pkcs11-tool succeeded: {all}"
    );
    assert!(
        all.contains("C_CreateObject") && all.contains("0x200"),
        "{what}: expected C_CreateObject to fail with CKR_FUNCTION_REJECTED (0x200): {all}"
    );
}

// ---------------------------------------------------------------------- pkcs11-tool

/// (a) A confirmed write lands in the vault; the CLI lists it and pkcs11-tool reads
/// the JSON back; the agent saw the entry with its password masked.
#[test]
fn pkcs11_tool_write_confirmed() {
    let w = World::new();
    w.init("vault-a", false);
    let json = entry_json("Example login");
    let out = w.write_entry(&w.confirm_agent(), "T", &json);
    assert!(out.status.success(), "confirmed write: {}", text(&out));

    assert_eq!(w.vault_titles(), ["Example login"]);
    let list = w.cli_ok(&["vault", "list", "--json", "--pin", PIN]);
    assert!(
        !list.contains(PASSWORD),
        "vault list shows the password: {list}"
    );

    let read = w.tool_ok(
        "deny",
        &[
            "--read-object",
            "--type",
            "data",
            "--application-label",
            "vtoken-vault",
            "--login",
            "--pin",
            PIN,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(read.trim())
        .unwrap_or_else(|e| panic!("read-object is not JSON ({e}): {read:?}"));
    assert_eq!(v["kind"], "website");
    assert_eq!(v["title"], "Example login");
    assert_eq!(v["url"], "https://login.example.com");
    let fields = v["fields"].as_array().unwrap();
    let pw = fields.iter().find(|f| f["name"] == "password").unwrap();
    assert_eq!(pw["value"], PASSWORD);
    assert_eq!(pw["secret"], true);
    assert!(v["created"].as_u64().unwrap() > 0, "{v}");

    // Without login the private vault object is not readable.
    let anon = w.tool(
        "deny",
        &[
            "--read-object",
            "--type",
            "data",
            "--application-label",
            "vtoken-vault",
        ],
    );
    assert!(
        !String::from_utf8_lossy(&anon.stdout).contains(PASSWORD),
        "read without login: {}",
        text(&anon)
    );

    // The agent was shown the entry as the token received it, the secret included
    // (V5, ¶0087–0088).
    let seen = std::fs::read_to_string(w.path("seen.txt")).expect("the agent was not asked");
    assert!(seen.contains("Example login"), "agent saw: {seen:?}");
    assert!(
        seen.contains(PASSWORD),
        "agent did not see the password: {seen:?}"
    );
}

/// (b) A refusing agent: CKR_FUNCTION_REJECTED and nothing written.
#[test]
fn pkcs11_tool_write_refused() {
    let w = World::new();
    w.init("vault-b", false);
    let out = w.write_entry(&w.refuse_agent(), "T", &entry_json("Refused"));
    assert_rejected(&out, "refusing agent");
    assert!(w.vault_titles().is_empty());
    let list = w.list_data();
    assert!(!list.contains("vtoken-vault"), "objects: {list}");
    // The default agent (deny) refuses too.
    let out = w.write_entry("deny", "T", &entry_json("Denied"));
    assert_rejected(&out, "deny agent");
    assert!(w.vault_titles().is_empty());
}

/// The module takes its agent from the token's policy, not from the caller: with
/// the SO's policy `deny`, a client run with `VTOKEN_PROMPT=command:/bin/true` (the
/// normal module) writes nothing; with the SO's confirming agent, a caller's
/// `VTOKEN_PROMPT=deny` does not stop the write either.
#[test]
fn pkcs11_caller_cannot_choose_the_agent() {
    let w = World::new();
    w.init("vault-p", false);
    *w.caller_prompt.borrow_mut() = Some("command:/bin/true".into());
    let out = w.write_entry("deny", "T", &entry_json("Forced"));
    assert_rejected(&out, "VTOKEN_PROMPT=command:/bin/true under a deny policy");
    assert!(w.vault_titles().is_empty());
    *w.caller_prompt.borrow_mut() = Some("deny".into());
    let out = w.write_entry(&w.confirm_agent(), "T", &entry_json("Policy"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.vault_titles(), vec!["Policy".to_string()]);
}

/// (c) An agent that never answers: killed after `timeout_secs` (2 s), a refusal.
#[test]
fn pkcs11_tool_write_timed_out() {
    let w = World::new();
    w.init("vault-c", false);
    let start = Instant::now();
    let out = w.write_entry(&w.slow_agent(), "T", &entry_json("Timed out"));
    let took = start.elapsed();
    assert_rejected(&out, "timing-out agent");
    assert!(
        took >= Duration::from_millis(1500),
        "refused after {took:?}, before the 2 s timeout"
    );
    assert!(
        took < Duration::from_secs(20),
        "the timed-out agent held pkcs11-tool for {took:?} (not killed?)"
    );
    assert!(w.vault_titles().is_empty());
}

// ---------------------------------------------------------------------- python-pkcs11

const PY_SCRIPT: &str = r#"
import json, os, sys
import pkcs11
from pkcs11 import Attribute, ObjectClass

lib = pkcs11.lib(os.environ["PKCS11_MODULE"])
token = lib.get_token(token_label=os.environ["TOKEN_LABEL"])
entry = json.loads(os.environ["ENTRY_JSON"])

def out(**kw):
    print(json.dumps(kw), flush=True)

with token.open(user_pin=os.environ["USER_PIN"], rw=True) as s:
    try:
        s.create_object({
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.APPLICATION: "vtoken-vault",
            Attribute.LABEL: entry["title"],
            Attribute.VALUE: json.dumps(entry).encode(),
        })
        out(op="create", result="ok")
    except pkcs11.exceptions.FunctionRejected:
        out(op="create", result="FunctionRejected")
    except pkcs11.exceptions.PKCS11Error as e:
        out(op="create", result="error", error=type(e).__name__)
    for o in s.get_objects({
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.APPLICATION: "vtoken-vault",
    }):
        out(op="found",
            label=o[Attribute.LABEL],
            private=bool(o[Attribute.PRIVATE]),
            value=json.loads(bytes(o[Attribute.VALUE]).decode()))
"#;

/// Fails the test (clearly) when python-pkcs11 is not installed.
fn require_python_pkcs11() {
    let out = Command::new("python3")
        .args(["-c", "import pkcs11, pkcs11.exceptions"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is not runnable ({e}): install Python 3"));
    assert!(
        out.status.success(),
        "python-pkcs11 is missing: `pip install python-pkcs11` (CI installs it)\n{}",
        text(&out)
    );
}

/// Runs [`PY_SCRIPT`] with agent `prompt`; returns its JSON lines.
fn python(w: &World, label: &str, prompt: &str, entry: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    w.use_agent(prompt);
    let mut child = Command::new("python3")
        .arg("-")
        .env("PKCS11_MODULE", artifacts::pkcs11_module())
        .env("VTOKEN_CONF", &w.conf)
        .env("VTOKEN_PROMPT", prompt)
        .env("TOKEN_LABEL", label)
        .env("USER_PIN", PIN)
        .env("ENTRY_JSON", entry)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PY_SCRIPT.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python-pkcs11 script: {}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

/// (d) python-pkcs11: a confirmed create, a refused one (FunctionRejected), and a
/// search by CKA_APPLICATION that finds exactly the confirmed entry.
#[test]
fn python_pkcs11_create_and_search() {
    require_python_pkcs11();
    let w = World::new();
    w.init("vault-py", false);

    let lines = python(&w, "vault-py", &w.confirm_agent(), &entry_json("Py one"));
    assert_eq!(lines[0]["op"], "create", "{lines:?}");
    assert_eq!(lines[0]["result"], "ok", "{lines:?}");
    let found: Vec<_> = lines.iter().filter(|l| l["op"] == "found").collect();
    assert_eq!(found.len(), 1, "{lines:?}");
    assert_eq!(found[0]["label"], "Py one");
    assert_eq!(found[0]["private"], true);
    assert_eq!(found[0]["value"]["title"], "Py one");
    assert_eq!(found[0]["value"]["kind"], "website");
    let pw = found[0]["value"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "password")
        .unwrap()
        .clone();
    assert_eq!(pw["value"], PASSWORD);

    let lines = python(&w, "vault-py", &w.refuse_agent(), &entry_json("Py two"));
    assert_eq!(lines[0]["op"], "create", "{lines:?}");
    assert_eq!(lines[0]["result"], "FunctionRejected", "{lines:?}");
    let found: Vec<_> = lines.iter().filter(|l| l["op"] == "found").collect();
    assert_eq!(found.len(), 1, "the refused entry was written: {lines:?}");
    assert_eq!(found[0]["label"], "Py one");

    assert_eq!(w.vault_titles(), ["Py one"]);
}

// ---------------------------------------------------------------------- optional vault

/// (e) An optional vault: writes refused and entries invisible until activation;
/// `vault disable` hides them again and refuses writes; `vault enable` shows them.
#[test]
fn optional_vault_hidden_until_activated() {
    let w = World::new();
    let code = w.init("vault-opt", true).unwrap();
    let ok = w.confirm_agent();

    // Before activation: even a confirming agent cannot write.
    let out = w.write_entry(&ok, "T", &entry_json("Too early"));
    assert!(
        !out.status.success(),
        "vault write before activation: {}",
        text(&out)
    );
    // A plain data object of another application is unaffected (and shows that
    // --list-objects does list data objects).
    let other = w.path("other.bin");
    std::fs::write(&other, b"not a vault entry").unwrap();
    w.tool_ok(
        "deny",
        &[
            "--write-object",
            other.to_str().unwrap(),
            "--type",
            "data",
            "--application-label",
            "other-app",
            "--label",
            "Other",
            "--private",
            "--login",
            "--pin",
            PIN,
        ],
    );
    let list = w.list_data();
    assert!(list.contains("other-app"), "objects: {list}");
    assert!(!list.contains("vtoken-vault"), "objects: {list}");
    assert!(
        !w.cli(&["vault", "list", "--json", "--pin", PIN])
            .status
            .success(),
        "vault list works before activation"
    );

    // A wrong code is refused and the vault stays unavailable.
    let bad = w.cli(&[
        "vault",
        "activate",
        "--code",
        "AAAAA-AAAAA-AAAAA-AAAAA",
        "--pin",
        PIN,
    ]);
    assert!(!bad.status.success(), "wrong code accepted: {}", text(&bad));

    w.cli_ok(&["vault", "activate", "--code", &code, "--pin", PIN]);
    // Activation alone does not switch the vault on (S201, S202).
    let st: serde_json::Value =
        serde_json::from_str(&w.cli_ok(&["vault", "status", "--json"])).unwrap();
    assert_eq!(st["state"], "activated", "{st}");
    let out = w.write_entry(&ok, "T", &entry_json("Before enable"));
    assert!(!out.status.success(), "write before enable: {}", text(&out));
    w.cli_ok(&["vault", "enable", "--pin", PIN]);
    let out = w.write_entry(&ok, "T", &entry_json("After activation"));
    assert!(
        out.status.success(),
        "write after activation: {}",
        text(&out)
    );
    let list = w.list_data();
    assert!(
        list.contains("vtoken-vault") && list.contains("After activation"),
        "objects after activation: {list}"
    );
    assert_eq!(w.vault_titles(), ["After activation"]);

    // Disabled: invisible again, and no writes.
    w.cli_ok(&["vault", "disable", "--pin", PIN]);
    let list = w.list_data();
    assert!(list.contains("other-app"), "objects: {list}");
    assert!(
        !list.contains("vtoken-vault") && !list.contains("After activation"),
        "objects with the vault disabled: {list}"
    );
    let read = w.tool(
        "deny",
        &[
            "--read-object",
            "--type",
            "data",
            "--application-label",
            "vtoken-vault",
            "--login",
            "--pin",
            PIN,
        ],
    );
    assert!(
        !String::from_utf8_lossy(&read.stdout).contains(PASSWORD),
        "read-object with the vault disabled: {}",
        text(&read)
    );
    let out = w.write_entry(&ok, "T", &entry_json("While disabled"));
    assert!(
        !out.status.success(),
        "vault write while disabled: {}",
        text(&out)
    );

    // Enabled again: the entry is back, the refused one was never written.
    w.cli_ok(&["vault", "enable", "--pin", PIN]);
    let list = w.list_data();
    assert!(list.contains("After activation"), "objects: {list}");
    assert!(!list.contains("While disabled"), "objects: {list}");
    assert_eq!(w.vault_titles(), ["After activation"]);
}

// ---------------------------------------------------------------------- at rest

/// (f) The token file (and its WAL) never holds an entry's password, notes or title
/// in the clear: neither after pkcs11-tool writes nor after reads.
#[test]
fn token_file_holds_no_plaintext() {
    let w = World::new();
    w.init("vault-f", false);
    let ok = w.confirm_agent();
    let title = "Title-Jx7Wq2Lp";
    let out = w.write_entry(&ok, "T", &entry_json(title));
    assert!(out.status.success(), "write: {}", text(&out));
    // Read it back (a reader may re-write caches), then check the files.
    w.tool_ok(
        "deny",
        &[
            "--read-object",
            "--type",
            "data",
            "--application-label",
            "vtoken-vault",
            "--login",
            "--pin",
            PIN,
        ],
    );
    assert_eq!(w.vault_titles(), [title]);
    for (p, bytes) in w.token_files() {
        for secret in [PASSWORD, NOTE, title, PIN] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{} holds {secret:?} in the clear",
                p.display()
            );
        }
    }
    // While another connection holds the database open, the writer's WAL stays on
    // disk (SQLite only removes it at the last close): check it too.
    let db = w
        .token_files()
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.extension().is_some_and(|x| x == "vtoken"))
        .unwrap();
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.execute('select count(*) from sqlite_master').fetchall()\n\
             print('ready', flush=True)\n\
             sys.stdin.read()",
        ])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "sqlite3 reader did not start");
    let second = "Second-Nv4Hs8";
    let out = w.write_entry(&ok, "T2", &entry_json(second));
    assert!(out.status.success(), "second write: {}", text(&out));
    let files = w.token_files();
    drop(holder.stdin.take());
    let _ = holder.wait();
    let names: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("-wal")),
        "no WAL file while the database is held open: {names:?}"
    );
    for (p, bytes) in &files {
        for secret in [PASSWORD, NOTE, second, title] {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{} holds {secret:?} in the clear",
                p.display()
            );
        }
    }
    assert_eq!(w.vault_titles(), [title, second]);
}
