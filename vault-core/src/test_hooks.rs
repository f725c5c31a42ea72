//! Pause points for tests that need processes to meet at a precise step. Compiled
//! only with the cargo feature `test-hooks` (never in a release build), and inert
//! unless their environment variable is set.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Directory of the PIN-check meeting point: a process that has committed a PIN
/// try and is about to check the PIN writes `arrived-PID-N` there, then waits until
/// the file `release` appears (at most [`PAUSE_LIMIT`]).
pub const PIN_PAUSE_DIR_ENV: &str = "VTOKEN_TEST_PIN_PAUSE_DIR";

/// The longest a hook waits for its release (a test that died must not hang us).
pub const PAUSE_LIMIT: Duration = Duration::from_secs(120);

/// Between the committed PIN try and the PIN check (see [`PIN_PAUSE_DIR_ENV`]).
pub(crate) fn pin_check_pause() {
    let Some(dir) = std::env::var_os(PIN_PAUSE_DIR_ENV).map(PathBuf::from) else {
        return;
    };
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let _ = std::fs::write(dir.join(format!("arrived-{}-{n}", std::process::id())), b"");
    let start = Instant::now();
    while !dir.join("release").exists() && start.elapsed() < PAUSE_LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
}
