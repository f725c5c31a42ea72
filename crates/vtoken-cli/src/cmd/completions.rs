//! `vtoken completions SHELL`: shell completion scripts (clap_complete) and the man
//! pages (clap_mangen), generated from the same clap definitions as `--help`, so
//! they never drift from it. `scripts/package` installs their output.
//!
//! `man` prints vtoken(1); `man --dir DIR` writes it and one page per subcommand,
//! named as git and cargo name theirs (`vtoken-init.1`, `vtoken-key-generate.1`),
//! so `man vtoken-key-generate` works once they are installed.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use clap_complete::Shell;

use crate::error::{CliError, Result};

/// What to print.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Target {
    /// Bash completions.
    Bash,
    /// Zsh completions (the `_vtoken` function file).
    Zsh,
    /// Fish completions.
    Fish,
    /// The man page vtoken(1), in roff (with --dir: one page per subcommand too).
    Man,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell, or `man` for the man page.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Target,
    /// With `man`: write vtoken.1 and one page per subcommand (vtoken-init.1,
    /// vtoken-key-generate.1, …) into this directory (created if missing), and
    /// print their names.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Writes the completions (or man page) of `cmd`, the whole command line, to
/// stdout, or the man pages into `--dir`. Needs no configuration and no token.
pub fn run(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<()> {
    let name = cmd.get_name().to_string();
    let shell = match (args.shell, &args.dir) {
        (Target::Man, Some(dir)) => return man_pages(cmd, dir),
        (_, Some(_)) => {
            return Err(CliError::new(
                "--dir is for `man` (completions go to stdout: redirect them to a file)",
            ))
        }
        (Target::Man, None) => {
            return Ok(clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())?)
        }
        (Target::Bash, None) => Shell::Bash,
        (Target::Zsh, None) => Shell::Zsh,
        (Target::Fish, None) => Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout().lock());
    Ok(())
}

/// The command's page and one per visible subcommand, at any depth, in `dir`.
fn man_pages(cmd: clap::Command, dir: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    std::fs::create_dir_all(dir).map_err(|e| CliError::new(format!("{}: {e}", dir.display())))?;
    clap_mangen::generate_to(cmd, dir)
        .map_err(|e| CliError::new(format!("writing man pages into {}: {e}", dir.display())))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.ends_with(".1") && (*n == format!("{name}.1") || n.starts_with(&format!("{name}-")))
        })
        .collect();
    pages.sort();
    for p in pages {
        println!("{p}");
    }
    Ok(())
}
