//! `vtoken-server completions SHELL`: shell completions (clap_complete) and the man
//! page vtoken-server(1) (clap_mangen), generated from the clap definitions.
//! `scripts/package` installs their output.

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
    /// The man page vtoken-server(1), in roff.
    Man,
}

/// Writes the completions (or man page) of `cmd` to stdout.
pub fn run(target: Target, mut cmd: clap::Command) -> Result<(), String> {
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout().lock();
    let shell = match target {
        Target::Bash => Shell::Bash,
        Target::Zsh => Shell::Zsh,
        Target::Fish => Shell::Fish,
        Target::Man => {
            return clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| format!("writing the man page: {e}"))
        }
    };
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    Ok(())
}
