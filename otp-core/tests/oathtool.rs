//! Cross-checks against the `oathtool` CLI (Debian package `oathtool`).
//!
//! If `oathtool` is not on `PATH` every test here FAILS with an explanatory
//! message, unless the environment variable `VTOKEN_SKIP_OATHTOOL=1` is set,
//! in which case they are skipped (and say so on stderr).

use std::path::PathBuf;
use std::process::Command;

use otp_core::{base32, dynamic_password, hotp, moving_factor, seed_from_entry, totp, Algorithm};

const SEED20: &[u8] = b"12345678901234567890";
const SEED32: &[u8] = b"12345678901234567890123456789012";
const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";
/// 2009-02-13 23:31:30 UTC.
const NOW_STR: &str = "2009-02-13 23:31:30 UTC";
const NOW: u64 = 1_234_567_890;

/// Locates `oathtool`, or decides to skip / fail.
fn oathtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("oathtool"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var("VTOKEN_SKIP_OATHTOOL").as_deref() == Ok("1") => {
            eprintln!("oathtool not found on PATH; skipping (VTOKEN_SKIP_OATHTOOL=1)");
            None
        }
        None => panic!(
            "oathtool is not installed (not found on PATH). Install it with \
             `apt-get install oathtool`, or set VTOKEN_SKIP_OATHTOOL=1 to skip \
             the oathtool cross-check tests."
        ),
    }
}

fn run(tool: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("failed to run oathtool {args:?}: {e}"));
    assert!(
        out.status.success(),
        "oathtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hotp_matches_oathtool() {
    let Some(tool) = oathtool() else { return };
    let other: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    for secret in [SEED20, &other[..]] {
        let h = hex(secret);
        for counter in [0u64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1000, 4_294_967_296] {
            for digits in [6u32, 8] {
                let c = counter.to_string();
                let d = digits.to_string();
                let expected = run(&tool, &["--hotp", "-d", &d, "-c", &c, &h]);
                assert_eq!(
                    hotp(secret, counter, digits, Algorithm::Sha1).unwrap(),
                    expected,
                    "secret {h} counter {counter} digits {digits}"
                );
            }
        }
    }
}

#[test]
fn totp_matches_oathtool_all_algorithms() {
    let Some(tool) = oathtool() else { return };
    for (flag, alg, seed) in [
        ("--totp", Algorithm::Sha1, SEED20),
        ("--totp=sha256", Algorithm::Sha256, SEED32),
        ("--totp=sha512", Algorithm::Sha512, SEED64),
    ] {
        let expected = run(
            &tool,
            &[flag, "-d", "8", "--now", NOW_STR, "-s", "30", &hex(seed)],
        );
        assert_eq!(totp(seed, NOW, 30, 0, 8, alg).unwrap(), expected, "{flag}");
    }
    // A 60-second step with 6 digits.
    let expected = run(
        &tool,
        &[
            "--totp",
            "-d",
            "6",
            "--now",
            NOW_STR,
            "-s",
            "60",
            &hex(SEED20),
        ],
    );
    assert_eq!(
        totp(SEED20, NOW, 60, 0, 6, Algorithm::Sha1).unwrap(),
        expected
    );
}

#[test]
fn base32_secret_matches_oathtool() {
    let Some(tool) = oathtool() else { return };
    for b32 in ["JBSWY3DPEHPK3PXP", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"] {
        let expected = run(&tool, &["-b", "--totp", "--now", NOW_STR, b32]);
        let secret = base32::decode(b32).unwrap();
        assert_eq!(
            totp(&secret, NOW, 30, 0, 6, Algorithm::Sha1).unwrap(),
            expected
        );
        // And our encoder reproduces the input.
        assert_eq!(base32::encode(&secret), b32);
    }
}

#[test]
fn dynamic_password_matches_oathtool_hotp_of_seed() {
    let Some(tool) = oathtool() else { return };
    let entry = "Pa$$w0rd + é";
    let seed_hex = hex(&seed_from_entry(entry));
    for (time, counter) in [
        (Some((NOW, 30)), None),
        (None, Some(17)),
        (Some((NOW, 30)), Some(17)),
    ] {
        let factor = moving_factor(time, counter).unwrap().to_string();
        let expected = run(&tool, &["--hotp", "-d", "8", "-c", &factor, &seed_hex]);
        assert_eq!(
            dynamic_password(entry, time, counter, 8).unwrap(),
            expected,
            "time {time:?} counter {counter:?}"
        );
    }
}
