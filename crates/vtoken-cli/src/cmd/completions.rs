//! `vtoken completions SHELL`: shell completion scripts (clap_complete) and the man
//! page (clap_mangen), generated from the same clap definitions as `--help`, so
//! they never drift from it. `scripts/package` installs their output.

use clap::ValueEnum;
use clap_complete::Shell;

use crate::error::Result;

/// What to print.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Target {
    /// Bash completions.
    Bash,
    /// Zsh completions (the `_vtoken` function file).
    Zsh,
    /// Fish completions.
    Fish,
    /// The man page vtoken(1), in roff.
    Man,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell, or `man` for the man page.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Target,
}

/// Writes the completions (or man page) of `cmd`, the whole command line, to
/// stdout. Needs no configuration and no token.
pub fn run(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<()> {
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout().lock();
    let shell = match args.shell {
        Target::Bash => Shell::Bash,
        Target::Zsh => Shell::Zsh,
        Target::Fish => Shell::Fish,
        Target::Man => return Ok(clap_mangen::Man::new(cmd).render(&mut out)?),
    };
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    Ok(())
}
