//! No secret in any log at any level: real clients drive the module with
//! `VTOKEN_LOG=trace:<file>`, then the log is searched for the PINs and the bytes of
//! keys that went through the token.

#[allow(unused_imports)]
mod pkcs11_common;

use std::process::Command;

use pkcs11_common::module_path;

const SO: &str = "so-Zq8wLm3v";
const PIN: &str = "user-Xk29pQ7r";
/// A 32-byte AES key value, written to the token through pkcs11-tool.
const AES_HEX: &str = "5c1f9e0b7a3d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";

fn tool(conf: &std::path::Path, log: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module_path())
        .args(args)
        .env("VTOKEN_CONF", conf)
        .env("VTOKEN_LOG", format!("trace:{}", log.display()))
        .output()
        .unwrap_or_else(|e| panic!("pkcs11-tool not runnable ({e}); install opensc"));
    assert!(
        out.status.success(),
        "pkcs11-tool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn trace_logs_hold_no_pins_or_key_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("vtoken.toml");
    vtoken_testsupport::env::write_config(&conf, &dir.path().join("tokens"), "");
    let log = dir.path().join("trace.log");
    let key = dir.path().join("aes.bin");
    std::fs::write(&key, hex::decode(AES_HEX).unwrap()).unwrap();
    let msg = dir.path().join("msg");
    std::fs::write(&msg, b"log test message").unwrap();
    let t = ["--token-label", "logs"];
    tool(
        &conf,
        &log,
        &["--init-token", "--label", "logs", "--so-pin", SO],
    );
    tool(
        &conf,
        &log,
        &[
            t[0],
            t[1],
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO,
            "--init-pin",
            "--pin",
            PIN,
        ],
    );
    // A wrong PIN too: failures are logged, the PIN must not be.
    let wrong = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module_path())
        .args([
            t[0],
            t[1],
            "--login",
            "--pin",
            "wrong-PIN-5521",
            "--list-objects",
        ])
        .env("VTOKEN_CONF", &conf)
        .env("VTOKEN_LOG", format!("trace:{}", log.display()))
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let login = [t[0], t[1], "--login", "--pin", PIN];
    fn with<'a>(login: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [login, extra].concat()
    }
    tool(
        &conf,
        &log,
        &with(
            &login,
            &[
                "--write-object",
                key.to_str().unwrap(),
                "--type",
                "secrkey",
                "--key-type",
                "AES:32",
                "--label",
                "aes",
                "--id",
                "a1",
                // pkcs11-tool writes secret keys with CKA_PRIVATE=false unless told
                // otherwise, which vtoken refuses (keys are always private).
                "--private",
            ],
        ),
    );
    tool(
        &conf,
        &log,
        &with(
            &login,
            &[
                "--keypairgen",
                "--key-type",
                "EC:prime256v1",
                "--id",
                "e1",
                "--label",
                "ec",
            ],
        ),
    );
    tool(
        &conf,
        &log,
        &with(
            &login,
            &[
                "--sign",
                "--id",
                "e1",
                "-m",
                "ECDSA-SHA256",
                "-i",
                msg.to_str().unwrap(),
                "-o",
                dir.path().join("sig").to_str().unwrap(),
            ],
        ),
    );
    tool(
        &conf,
        &log,
        &with(&login, &["--change-pin", "--new-pin", "new-Pn4e81"]),
    );

    let text = std::fs::read(&log).unwrap();
    assert!(
        text.len() > 1000,
        "trace log suspiciously small ({} bytes)",
        text.len()
    );
    assert!(contains(&text, b"C_Login"), "the log does not trace calls");
    let aes = hex::decode(AES_HEX).unwrap();
    for (what, needle) in [
        ("SO PIN", SO.as_bytes().to_vec()),
        ("user PIN", PIN.as_bytes().to_vec()),
        ("wrong PIN", b"wrong-PIN-5521".to_vec()),
        ("new PIN", b"new-Pn4e81".to_vec()),
        ("AES key bytes", aes.clone()),
        ("AES key hex", AES_HEX.as_bytes().to_vec()),
        ("AES key hex (upper)", AES_HEX.to_uppercase().into_bytes()),
        (
            "AES key as a Debug byte list",
            format!("{:?}", &aes[..8])
                .trim_end_matches(']')
                .as_bytes()
                .to_vec(),
        ),
    ] {
        assert!(!contains(&text, &needle), "{what} appears in the trace log");
    }
}
