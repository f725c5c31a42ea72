//! One module per subcommand. Each owns its clap arguments and a `run`, and uses
//! only the CLI's shared modules (`args`, `context`, `error`, `output`, `pin`,
//! `select`, `gated`, `identity`), never `cli` or another subcommand: the
//! `architecture` test checks it.

pub mod backup;
pub mod card;
pub mod completions;
pub mod delete;
pub mod device;
pub mod enroll;
pub mod gate;
pub mod init;
pub mod keys;
pub mod objects;
pub mod otp;
pub mod pin;
pub mod prompt;
pub mod rks;
pub mod sign;
pub mod tokens;
pub mod vault;
pub mod wallet;
