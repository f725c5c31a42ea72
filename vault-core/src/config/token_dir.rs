//! The token directory must be the user's own (SPEC T1): refused when someone else
//! could write into it.

use std::path::Path;

use crate::error::{ConfigError, Error, Result};

/// Refuses a token directory that someone else could write into: group- or
/// world-writable without the sticky bit (another user could replace or remove
/// token files, or plant one), or owned by another user than this process's (or
/// root). A missing directory is fine (nothing to trust yet; it is created 0700).
pub fn check_token_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::Config(ConfigError::TokenDir {
                    path: dir.to_path_buf(),
                    problem: format!("cannot read it: {e}"),
                }))
            }
        };
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(Error::Config(ConfigError::TokenDir {
                path: dir.to_path_buf(),
                problem: format!(
                    "it is {}-writable (mode {mode:04o}): refusing to use it; run `chmod 700 {}`",
                    if mode & 0o002 != 0 { "world" } else { "group" },
                    dir.display()
                ),
            }));
        }
        let me = effective_uid();
        if me.is_some_and(|me| meta.uid() != me) && meta.uid() != 0 {
            let me = me.unwrap_or_default();
            return Err(Error::Config(ConfigError::TokenDir {
                path: dir.to_path_buf(),
                problem: format!(
                    "it belongs to uid {}, not to this user (uid {me}) or root: refusing to use it",
                    meta.uid()
                ),
            }));
        }
    }
    Ok(())
}

/// This process's effective uid, from `/proc/self/status` (this crate has no
/// `unsafe` for `geteuid`); `None` where there is no such file.
#[cfg(unix)]
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
