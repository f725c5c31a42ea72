//! The binaries and the PKCS#11 module that tests run as separate programs.
//!
//! Each accessor first takes the path from the variable `scripts/test` exports
//! (it builds every artifact once, before `cargo test`); when the variable is unset
//! (`cargo test` on a fresh clone), it runs `cargo build` once per test process, in
//! the target directory and profile of the running test, and returns the built
//! file. A test never asks the developer to build something first.
//!
//! | accessor           | variable                 | built with                                   |
//! |--------------------|--------------------------|----------------------------------------------|
//! | [`pkcs11_module`]  | `VTOKEN_P11_TEST_MODULE` | `-p vtoken-pkcs11`                           |
//! | [`cli`]            | `VTOKEN_TEST_CLI`        | `-p vtoken-cli --bin vtoken`                 |
//! | [`server`]         | `VTOKEN_TEST_SERVER`     | `-p vtoken-server --bin vtoken-server`       |
//! | [`prompt_demo`]    | `VTOKEN_PROMPT_DEMO`     | `-p vault-core --example prompt_demo`        |
//! | [`hooked_module`], [`hooked_cli`] | `VTOKEN_HOOKED_MODULE`, `VTOKEN_HOOKED_BIN` | `-p vtoken-pkcs11 -p vtoken-cli --features vault-core/test-hooks`, in `<target>/test-hooks` |
//!
//! The test-hooks build has its own target directory so the gate's answer hook
//! never reaches the normal artifacts. Tests of the `vtoken-cli` package run their
//! own binary through `env!("CARGO_BIN_EXE_vtoken")` (cargo builds it before the
//! tests) and use [`cli`] only from other packages.
//!
//! Concurrent builds: a `OnceLock` per artifact makes one build per test process;
//! a file lock in the target directory serialises the builds of test binaries that
//! run at the same time, so none reads an artifact while another relinks it
//! (cargo's own lock covers the build itself).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The workspace root (this crate is `crates/vtoken-testsupport`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The target directory and profile directory name of the running test binary
/// (`<target>/<profile>/deps/<test>-<hash>`), so a build from a test lands beside
/// the artifacts cargo built for it, whatever `CARGO_TARGET_DIR` or `--profile` was.
fn target_and_profile() -> &'static (PathBuf, String) {
    static T: OnceLock<(PathBuf, String)> = OnceLock::new();
    T.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let deps = exe.parent().filter(|d| d.ends_with("deps"));
        if let Some(profile_dir) = deps.and_then(Path::parent) {
            if let (Some(target), Some(profile)) = (profile_dir.parent(), profile_dir.file_name()) {
                return (target.to_path_buf(), profile.to_string_lossy().into_owned());
            }
        }
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { root.join(t) })
            .unwrap_or_else(|| root.join("target"));
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        (target, profile.to_string())
    })
}

/// The target directory of the running test binary.
pub fn target_dir() -> &'static Path {
    &target_and_profile().0
}

/// Holds an exclusive `flock` on a file while alive: the field is never read, it only
/// keeps the file open (closing it releases the lock).
struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    fn take(path: &Path) -> FileLock {
        std::fs::create_dir_all(path.parent().unwrap()).expect("create the target directory");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .unwrap_or_else(|e| panic!("flock {}: {e}", path.display()));
        FileLock(f)
    }
}

/// `cargo build ARGS` in the running test's profile, into `target` (the test's own
/// target directory when `None`); returns the file of each target named in `names`
/// (an executable, or the `.so` of a cdylib), in that order.
pub fn cargo_build(args: &[&str], target: Option<&Path>, names: &[&str]) -> Vec<PathBuf> {
    let (own_target, profile) = target_and_profile();
    let target = target.unwrap_or(own_target);
    let _lock = FileLock::take(&target.join("vtoken-testsupport.lock"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target)
        .stderr(Stdio::inherit());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().expect("run cargo build");
    assert!(out.status.success(), "cargo build {args:?} failed");
    let msgs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["reason"] == "compiler-artifact")
        .collect();
    names
        .iter()
        .map(|name| {
            msgs.iter()
                .filter(|v| v["target"]["name"] == *name)
                .find_map(|v| {
                    v["executable"].as_str().map(PathBuf::from).or_else(|| {
                        v["filenames"]
                            .as_array()?
                            .iter()
                            .filter_map(|f| f.as_str())
                            .find(|f| f.ends_with(".so"))
                            .map(PathBuf::from)
                    })
                })
                .unwrap_or_else(|| panic!("{name} not in cargo's output for {args:?}"))
        })
        .collect()
}

/// The path in `var` when set, else the one artifact of `cargo_build(args)`.
fn from_env_or_build(var: &str, args: &[&str], name: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => cargo_build(args, None, &[name]).remove(0),
    }
}

/// The PKCS#11 module (`VTOKEN_P11_TEST_MODULE`, else built).
pub fn pkcs11_module() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        from_env_or_build(
            "VTOKEN_P11_TEST_MODULE",
            &["-p", "vtoken-pkcs11", "--lib"],
            "vtoken_pkcs11",
        )
    })
}

/// The `vtoken` CLI (`VTOKEN_TEST_CLI`, else built).
pub fn cli() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        from_env_or_build(
            "VTOKEN_TEST_CLI",
            &["-p", "vtoken-cli", "--bin", "vtoken"],
            "vtoken",
        )
    })
}

/// The `vtoken-server` binary (`VTOKEN_TEST_SERVER`, else built).
pub fn server() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        from_env_or_build(
            "VTOKEN_TEST_SERVER",
            &["-p", "vtoken-server", "--bin", "vtoken-server"],
            "vtoken-server",
        )
    })
}

/// vault-core's `prompt_demo` example (`VTOKEN_PROMPT_DEMO`, else built).
pub fn prompt_demo() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        from_env_or_build(
            "VTOKEN_PROMPT_DEMO",
            &["-p", "vault-core", "--example", "prompt_demo"],
            "prompt_demo",
        )
    })
}

/// The module and CLI built with `vault-core/test-hooks` (the gate's answer hook,
/// the PIN-check pause): `VTOKEN_HOOKED_MODULE` and `VTOKEN_HOOKED_BIN` when both
/// are set, else built once into `<target>/test-hooks`, apart from the normal
/// artifacts.
fn hooked() -> &'static (PathBuf, PathBuf) {
    static B: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    B.get_or_init(|| {
        if let (Some(m), Some(b)) = (
            std::env::var_os("VTOKEN_HOOKED_MODULE"),
            std::env::var_os("VTOKEN_HOOKED_BIN"),
        ) {
            return (m.into(), b.into());
        }
        let dir = target_dir().join("test-hooks");
        let mut v = cargo_build(
            &[
                "-p",
                "vtoken-pkcs11",
                "-p",
                "vtoken-cli",
                "--features",
                "vault-core/test-hooks",
            ],
            Some(&dir),
            &["vtoken_pkcs11", "vtoken"],
        );
        let bin = v.remove(1);
        (v.remove(0), bin)
    })
}

/// The PKCS#11 module of the test-hooks build.
pub fn hooked_module() -> &'static Path {
    &hooked().0
}

/// The `vtoken` CLI of the test-hooks build.
pub fn hooked_cli() -> &'static Path {
    &hooked().1
}
