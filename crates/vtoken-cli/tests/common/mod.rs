//! The harness of the CLI's integration tests: [`vtoken_testsupport::cli::Env`] (a
//! scratch token directory with a `kdf = "test"` configuration and a runner in the
//! one clean environment of [`vtoken_testsupport::env::clean`]) for this package's
//! own `vtoken`, which cargo builds before the tests. Other artifacts (the PKCS#11
//! module, `vtoken-server`, the test-hooks build) come from
//! [`vtoken_testsupport::artifacts`].
#![allow(dead_code, unused_imports)]

use std::path::Path;

pub use vtoken_testsupport::artifacts;
pub use vtoken_testsupport::cli::{fails_stderr, ok_stdout, Env as Harness};

/// SO PIN of the test tokens.
pub const SO_PIN: &str = "12345678";
/// User PIN of the test tokens.
pub const PIN: &str = "123456";

/// This package's `vtoken` binary.
pub fn vtoken() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vtoken"))
}

/// A fresh harness for [`vtoken`] whose configuration ends with `extra`.
pub fn harness(extra: &str) -> Harness {
    Harness::with_config(vtoken(), extra)
}

/// Writes an executable `#!/bin/sh` script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A private tmux server (one per test, killed on drop) for the cases where a
/// terminal matters: no-echo prompts, questions, PINs from /dev/tty.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new() -> Tmux {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux {
            socket: format!("vtoken-cli-test-{}-{n}", std::process::id()),
        };
        // Keeps the server up between the cases' sessions.
        t.start_raw("keeper", "sleep 600");
        t
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run tmux (apt-get install tmux)")
    }

    fn start_raw(&self, session: &str, line: &str) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            line,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs the shell line `line` in a new session, in the environment of `h`
    /// (its configuration, no inherited `VTOKEN_*`, no display) plus `vars`; the
    /// line's exit status is printed as `[exit N]` and the session stays open.
    pub fn run(&self, h: &Harness, session: &str, line: &str, vars: &[(&str, &str)]) {
        let file = h.path(&format!("tmux-{session}.sh"));
        let mut body = String::from(
            "for v in $(env | sed -n 's/^\\(VTOKEN_[A-Za-z0-9_]*\\)=.*/\\1/p'); do unset \"$v\"; done\n\
             unset DISPLAY WAYLAND_DISPLAY\n",
        );
        body.push_str(&format!("export VTOKEN_CONF='{}'\n", h.conf().display()));
        for (k, v) in vars {
            body.push_str(&format!("export {k}='{v}'\n"));
        }
        body.push_str(&format!("{line}\necho \"[exit $?]\"\nsleep 600\n"));
        script(&file, &body);
        self.start_raw(session, &file.display().to_string());
    }

    pub fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&["capture-pane", "-p", "-J", "-t", session])
                .stdout,
        )
        .into_owned()
    }

    /// Waits up to 20 s for `text` on the screen; returns the screen.
    pub fn wait_for(&self, session: &str, text: &str) -> String {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let s = self.screen(session);
            if s.contains(text) {
                return s;
            }
            assert!(
                std::time::Instant::now() < end,
                "waited 20 s for {text:?} in session {session}; the screen shows:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Types `text` literally, then Enter.
    pub fn type_line(&self, session: &str, text: &str) {
        let out = self.cmd(&["send-keys", "-t", session, "-l", text]);
        assert!(out.status.success());
        let out = self.cmd(&["send-keys", "-t", session, "Enter"]);
        assert!(out.status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}
