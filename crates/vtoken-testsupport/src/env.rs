//! The environment of a `vtoken` process under test and the test configuration.

use std::path::Path;
use std::process::{Command, Stdio};

/// Inherited variables that a process under test never sees, besides every
/// `VTOKEN_*` variable: a graphical session would let the clipboard and desktop
/// prompt agents reach the developer's screen instead of the test's scripts.
pub const CLEARED: &[&str] = &["DISPLAY", "WAYLAND_DISPLAY"];

/// Removes from `cmd` every inherited `VTOKEN_*` variable (PINs, the selected
/// token, the prompt agent, the log filter, the configuration, the vault code, the
/// gate's picture file, the test hooks' files, ...) and the [`CLEARED`] ones, and
/// closes stdin. A test then states with `Command::env` exactly the variables its
/// process gets: what a developer's shell or `scripts/test` exports never changes a
/// test's outcome. Variables set on `cmd` before this call are removed too, so call
/// it first.
pub fn clean(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("VTOKEN_")) {
            cmd.env_remove(&key);
        }
    }
    for key in CLEARED {
        cmd.env_remove(key);
    }
    cmd.stdin(Stdio::null())
}

/// `program` in the clean environment of [`clean`], with `VTOKEN_CONF = conf`.
pub fn command(program: impl AsRef<std::ffi::OsStr>, conf: &Path) -> Command {
    let mut cmd = Command::new(program);
    clean(&mut cmd).env("VTOKEN_CONF", conf);
    cmd
}

/// The text of a test configuration: tokens in `token_dir`, the cheap test KDF
/// (`kdf = "test"`), then `extra` (more keys or sections, verbatim).
pub fn config_text(token_dir: &Path, extra: &str) -> String {
    format!(
        "token_dir = \"{}\"\nkdf = \"test\"\n{extra}",
        token_dir.display()
    )
}

/// Writes [`config_text`] to `conf`.
pub fn write_config(conf: &Path, token_dir: &Path, extra: &str) {
    std::fs::write(conf, config_text(token_dir, extra))
        .unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
}
