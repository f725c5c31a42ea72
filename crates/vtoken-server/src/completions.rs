//! `vtoken-server completions SHELL`: shell completions (clap_complete) and the man
//! pages (clap_mangen), generated from the clap definitions: vtoken-server(1), and
//! with `man --dir DIR` one page per subcommand too (`vtoken-server-ca-serve.1`, …).
//! `scripts/package` installs their output.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use clap_complete::Shell;

/// What to print.
#[derive(Clone, Copy, ValueEnum)]
pub enum Target {
    /// Bash completions.
    Bash,
    /// Zsh completions.
    Zsh,
    /// Fish completions.
    Fish,
    /// The man page vtoken-server(1), in roff (with --dir: one page per subcommand too).
    Man,
}

/// `completions`' arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The shell, or `man` for the man page.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Target,
    /// With `man`: write vtoken-server.1 and one page per subcommand
    /// (vtoken-server-ca-serve.1, …) into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Writes the completions (or man page) of `cmd` to stdout, or the man pages into
/// `--dir`.
pub fn run(args: &Args, mut cmd: clap::Command) -> Result<(), String> {
    let name = cmd.get_name().to_string();
    let shell = match (args.shell, &args.dir) {
        (Target::Man, Some(dir)) => return man_pages(cmd, dir),
        (_, Some(_)) => return Err("--dir is for `man` (completions go to stdout)".into()),
        (Target::Man, None) => {
            return clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout().lock())
                .map_err(|e| format!("writing the man page: {e}"))
        }
        (Target::Bash, None) => Shell::Bash,
        (Target::Zsh, None) => Shell::Zsh,
        (Target::Fish, None) => Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout().lock());
    Ok(())
}

fn man_pages(cmd: clap::Command, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .map_err(|e| format!("writing man pages into {}: {e}", dir.display()))
}
