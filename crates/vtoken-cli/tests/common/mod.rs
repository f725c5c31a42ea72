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
