//! Fuzz entry points, shared by the cargo-fuzz targets (`fuzz_targets/`) and the
//! stable replay tests that re-run every committed corpus file on each CI run
//! (`otp-core/tests/fuzz_corpus.rs`, `vault-core/tests/fuzz_corpus.rs`,
//! `pkcs11-module/tests/fuzz_corpus.rs` include these files by path).

pub mod c_abi;
pub mod cms;
pub mod config;
pub mod otpauth;
pub mod pkcs10;
pub mod support;
pub mod token_file;
