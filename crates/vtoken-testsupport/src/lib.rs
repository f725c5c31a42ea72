//! Test support shared by vtoken's integration tests.
//!
//! - [`artifacts`]: the PKCS#11 module, the CLI, the servers, the `prompt_demo`
//!   example and the test-hooks build, taken from the variables `scripts/test` sets
//!   or else built once per test process with `cargo build`, so `cargo test
//!   --workspace` passes on a fresh clone.
//! - [`env`]: the one environment every `vtoken` process under test runs in (which
//!   inherited variables are cleared) and the one way to write a test configuration.
//! - [`cli`]: a scratch token directory with its configuration and a runner for one
//!   CLI binary ([`cli::Env`]), shared by the CLI's integration tests.
//! - [`postgres`]: a throwaway PostgreSQL cluster (Debian's package, a temporary
//!   data directory, an unprivileged user, 127.0.0.1) for the servers' PostgreSQL
//!   tests.

pub mod artifacts;
pub mod cli;
pub mod env;
pub mod postgres;
