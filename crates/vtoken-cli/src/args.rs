//! Argument groups shared by several subcommands: the user PIN, the SO PIN and the
//! object selector. A leaf: it names no other module of the CLI, so every
//! subcommand can use it without depending on another.

use std::path::PathBuf;

use clap::Args;

/// The user PIN, for commands that log in as the user.
#[derive(Debug, Args, Clone, Default)]
pub struct UserPin {
    /// The user PIN (visible in the process list: prefer VTOKEN_PIN, --pin-file or the prompt).
    #[arg(long, env = "VTOKEN_PIN", hide_env_values = true, value_name = "PIN")]
    pub pin: Option<String>,
    /// Read the user PIN from the first line of this file (wins over --pin and VTOKEN_PIN).
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

/// The SO PIN, for commands that act as the security officer.
#[derive(Debug, Args, Clone, Default)]
pub struct SoPin {
    /// The security officer (SO) PIN.
    #[arg(
        long,
        env = "VTOKEN_SO_PIN",
        hide_env_values = true,
        value_name = "PIN"
    )]
    pub so_pin: Option<String>,
    /// Read the SO PIN from the first line of this file (wins over --so-pin and VTOKEN_SO_PIN).
    #[arg(long, value_name = "FILE")]
    pub so_pin_file: Option<PathBuf>,
}

/// Which objects a command works on. At least one selector is required.
#[derive(Debug, Args, Clone, Default)]
pub struct Selector {
    /// Objects with this CKA_LABEL.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Objects with this CKA_ID (hex, e.g. 01ab).
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,
    /// The object with this handle (as shown by `vtoken objects list`).
    #[arg(long, value_name = "N")]
    pub handle: Option<u64>,
}
