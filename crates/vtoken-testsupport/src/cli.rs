//! The CLI's test environment: a scratch directory holding a token directory and
//! its configuration, and a runner for one `vtoken` binary in the clean
//! environment of [`crate::env::clean`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A temporary directory with `vtoken.toml` (tokens in `tokens/`, `kdf = "test"`),
/// and the binary its commands run.
pub struct Env {
    dir: tempfile::TempDir,
    conf: PathBuf,
    bin: PathBuf,
    vars: Vec<(String, String)>,
}

impl Env {
    /// A fresh directory whose configuration has no extra settings.
    pub fn new(bin: impl Into<PathBuf>) -> Env {
        Env::with_config(bin, "")
    }

    /// A fresh directory whose configuration ends with `extra`.
    pub fn with_config(bin: impl Into<PathBuf>, extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("vtoken.toml");
        let env = Env {
            dir,
            conf,
            bin: bin.into(),
            vars: Vec::new(),
        };
        env.config(extra);
        env
    }

    /// Rewrites the configuration with `extra` after the standard lines.
    pub fn config(&self, extra: &str) {
        crate::env::write_config(&self.conf, &self.path("tokens"), extra);
    }

    /// Gives every later command the variable `key = value` (after the clean-up).
    pub fn set_var(&mut self, key: &str, value: impl Into<String>) {
        self.vars.push((key.to_string(), value.into()));
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file (`VTOKEN_CONF` of every command).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The binary the commands run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `name` in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// [`Env::path`] as a string, for arguments.
    pub fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `bin ARGS` in the clean environment, with `VTOKEN_CONF` and the variables of
    /// [`Env::set_var`], stdin closed.
    pub fn cmd_with<S: AsRef<OsStr>>(&self, bin: &Path, args: &[S]) -> Command {
        let mut c = crate::env::command(bin, &self.conf);
        c.args(args);
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// [`Env::cmd_with`] for this environment's binary.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        self.cmd_with(&self.bin, args)
    }

    /// Runs the binary with `args`.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd(args).output().expect("run the binary")
    }

    /// Runs with the extra variables `vars`.
    pub fn run_with<S: AsRef<OsStr>>(&self, args: &[S], vars: &[(&str, String)]) -> Output {
        let mut c = self.cmd(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().expect("run the binary")
    }

    /// Runs with `input` on stdin.
    pub fn run_in<S: AsRef<OsStr>>(&self, args: &[S], input: &str) -> Output {
        use std::io::Write;
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn the binary");
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().expect("wait for the binary")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        ok_stdout(args, self.run(args))
    }

    /// Runs and asserts failure with exit status 1; returns stderr.
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        fails_stderr(args, self.run(args))
    }

    /// Runs, asserts success and parses stdout as JSON.
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{:?}: not JSON ({e}): {out}", show(args)))
    }
}

/// The arguments, for messages.
pub fn show<S: AsRef<OsStr>>(args: &[S]) -> Vec<String> {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// Asserts `o` succeeded; returns its stdout.
pub fn ok_stdout<S: AsRef<OsStr>>(args: &[S], o: Output) -> String {
    assert!(
        o.status.success(),
        "vtoken {:?} failed: {}\n{}",
        show(args),
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).expect("UTF-8 stdout")
}

/// Asserts `o` failed with exit status 1; returns its stderr.
pub fn fails_stderr<S: AsRef<OsStr>>(args: &[S], o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "vtoken {:?} should fail: {o:?}",
        show(args)
    );
    String::from_utf8(o.stderr).expect("UTF-8 stderr")
}
