//! Shared helpers for vtoken's cross-crate and process-level tests.
//!
//! The `vt-driver` binary and the integration tests agree through these helpers on
//! what a test object looks like (template, label, value), so a test can check that
//! every object another process acknowledged is present with the right content.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout};

use vault_core::pkcs11::*;
use vault_core::Attributes;

/// The label of the `i`-th data object created under `tag`.
pub fn data_label(tag: &str, i: usize) -> String {
    format!("{tag}-{i}")
}

/// The `CKA_VALUE` a test data object with this label carries: the label itself,
/// a separator and a fixed pattern, so a value swapped between objects is noticed.
pub fn data_value(label: &str) -> Vec<u8> {
    let mut v = b"vt-value:".to_vec();
    v.extend_from_slice(label.as_bytes());
    v.push(b':');
    v.extend((0..48u8).map(|b| b.wrapping_mul(37).wrapping_add(label.len() as u8)));
    v
}

/// The template of a private token data object with `label` and [`data_value`].
pub fn data_template(label: &str, private: bool) -> Attributes {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_DATA);
    a.set_bool(CKA_TOKEN, true);
    a.set_bool(CKA_PRIVATE, private);
    a.set(CKA_LABEL, label.as_bytes().to_vec());
    a.set(CKA_VALUE, data_value(label));
    a
}

/// A temporary token directory and the configuration file pointing at it.
pub struct TestEnv {
    /// Holds the directory alive.
    pub dir: tempfile::TempDir,
    /// `VTOKEN_CONF` for the driver.
    pub conf: PathBuf,
    /// The same configuration, parsed, for in-process access.
    pub config: vault_core::config::Config,
}

impl TestEnv {
    /// A fresh directory with `token_dir = "<dir>/tokens"`, `kdf = "test"` and any
    /// `extra` TOML (tables such as `[pin]` go here).
    pub fn new(extra: &str) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("vtoken.toml");
        let text = format!(
            "token_dir = \"{}\"\nkdf = \"test\"\n{extra}",
            dir.path().join("tokens").display()
        );
        std::fs::write(&conf, &text).expect("write config");
        let config = vault_core::config::Config::from_file(&conf).expect("config parses");
        TestEnv { dir, conf, config }
    }

    /// The registry of this environment.
    pub fn registry(&self) -> vault_core::slots::Registry {
        vault_core::slots::Registry::new(self.config.clone())
    }

    /// The token file of `serial`.
    pub fn token_path(&self, serial: &str) -> PathBuf {
        self.registry().path_for(serial)
    }

    /// Opens the token `serial` in this process.
    pub fn open(&self, serial: &str) -> std::sync::Arc<vault_core::token::Token> {
        let reg = self.registry();
        let e = reg.find(serial).expect("token is listed");
        reg.open(&e).expect("token opens")
    }
}

/// Reads complete lines from a child's stdout. A line counts only once its newline
/// has arrived: the driver prints (and flushes) a line only after the operation it
/// reports has returned.
pub struct Lines {
    r: BufReader<ChildStdout>,
}

impl Lines {
    /// Takes the child's stdout (it must have been spawned with `Stdio::piped()`).
    pub fn of(child: &mut Child) -> Lines {
        Lines {
            r: BufReader::new(child.stdout.take().expect("piped stdout")),
        }
    }

    /// The next complete line without its newline; `None` at end of file (a final
    /// partial line is dropped).
    pub fn next_line(&mut self) -> Option<String> {
        let mut s = String::new();
        match self.r.read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) if s.ends_with('\n') => {
                s.pop();
                Some(s)
            }
            Ok(_) => None,
        }
    }

    /// Every remaining complete line, up to end of file.
    pub fn rest(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(l) = self.next_line() {
            v.push(l);
        }
        v
    }
}

/// Reads a child's stderr to the end (for failure messages).
pub fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// The token file and its SQLite side files (`-wal`, `-shm`) that exist.
pub fn file_set(path: &Path) -> Vec<PathBuf> {
    let mut v = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            v.push(p);
        }
    }
    v
}

/// Offset of `needle` in `haystack`, if it occurs.
pub fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A seed for a randomized test: `VT_SEED` if set, else from the clock. Printed so a
/// failing run can be repeated.
pub fn seed(test: &str) -> u64 {
    let s = std::env::var("VT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {s} (repeat with VT_SEED={s})");
    s
}
