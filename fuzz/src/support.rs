//! Replays a committed corpus (`fuzz/corpus/<target>/`) through a target's entry
//! function on stable Rust, so every CI run re-checks the inputs found by fuzzing.

use std::cell::Cell;
use std::path::PathBuf;

thread_local! {
    /// Panics seen on this thread, caught or not.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// The corpus directory of `target`: `fuzz/corpus/<target>` in the nearest ancestor
/// of the including crate's manifest directory that has one (the repository root
/// for `vault-core/`, `crates/vtoken-pki/`, ...; `fuzz/` itself).
pub fn corpus_dir(target: &str) -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("fuzz").join("corpus"))
        .chain(std::iter::once(here.join("corpus")))
        .find(|c| c.is_dir())
        .unwrap_or_else(|| panic!("no fuzz/corpus above {}", here.display()))
        .join(target)
}

/// Runs every file of `target`'s corpus through `run`; returns how many ran.
///
/// Fails on the first input that panics, including panics that the code under test
/// catches itself (the C ABI turns them into `CKR_GENERAL_ERROR`; under libFuzzer
/// the panic hook aborts, here a hook counts them).
pub fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let before = PANICS.with(Cell::get);
        let outcome = std::panic::catch_unwind(|| run(&data));
        let panicked = outcome.is_err() || PANICS.with(Cell::get) != before;
        assert!(!panicked, "{}: input panics", f.display());
    }
    files.len()
}

/// A fresh scratch directory for this process (on tmpfs when `/dev/shm` exists, so
/// SQLite's fsyncs cost nothing): `vtoken-fuzz-<tag>-<pid>`. Directories left by
/// processes that are gone are removed first.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let prefix = format!("vtoken-fuzz-{tag}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(&prefix)
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !PathBuf::from(format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}
