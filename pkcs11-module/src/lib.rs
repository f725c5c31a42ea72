//! # vtoken-pkcs11 — the PKCS#11 provider `libvtoken_pkcs11.so`
//!
//! A thin adapter between the PKCS#11 C ABI and [`vault_core`] (SPEC T5): every
//! exported `C_*` function checks its pointers (NULL → `CKR_ARGUMENTS_BAD`),
//! converts C types to core types, calls one core method, maps the core error to
//! its one CKR (`vault_core::Error::ckr`), and runs inside `catch_unwind` so a
//! panic becomes `CKR_GENERAL_ERROR` instead of crossing into the host process.
//! This crate is the only place in vtoken with `unsafe` code.
//!
//! Entry points: `C_GetFunctionList` (the v2.40 list) and `C_GetInterfaceList` /
//! `C_GetInterface` (the "PKCS 11" interface in versions 3.0 and 2.40). Only `C_*`
//! symbols are exported. Nothing is ever printed to stdout; logging goes through
//! `tracing` as configured by `VTOKEN_LOG` or the config's `[log]`.
//!
//! Unsafe code: every `C_*` function is `unsafe extern "C"`, and its safety
//! contract is the PKCS#11 caller's: each pointer argument is NULL where the
//! standard allows it, or points to as many readable (or writable) bytes as its
//! length says, for the duration of the call. A module can check NULL but not
//! that contract, so the adapters are where it is relied on: with
//! `unsafe_op_in_unsafe_fn` denied, each use of a caller's pointer is its own
//! `unsafe` block whose `SAFETY:` comment names the pointer and what PKCS#11
//! promises about it (clippy's `undocumented_unsafe_blocks` keeps every block
//! commented). `convert::OutBuf` and `convert::MechPtr` take the caller's word once
//! at the top of an adapter; their methods check NULLs and are safe to call.
//!
//! Where things live:
//! - [`interface`]: the function lists (both built by one macro from one list of
//!   names) and the functions that hand them out;
//! - `state`: the global state (slots, opened tokens, session handles, fork check);
//! - `convert`: C ↔ core conversions (templates, mechanisms, output buffers);
//! - `guard`: the panic/error/logging frame of every call;
//! - [`general`], [`slot`], [`session`], [`object`], [`crypto`], [`keys`]: the
//!   function groups of the standard; [`unsupported`]: the refused ones.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// The `C_*` functions' `# Safety` is the PKCS#11 caller contract stated above.
#![allow(clippy::missing_safety_doc)]
// The exported names are the standard's (`C_GetFunctionList`, ...).
#![allow(non_snake_case)]
// The standard's signatures take up to nine arguments.
#![allow(clippy::too_many_arguments)]

mod convert;
pub mod crypto;
pub mod dual;
pub mod general;
mod guard;
pub mod interface;
mod kbkdf;
pub mod keys;
#[cfg(test)]
mod lifecycle_tests;
pub mod message;
pub mod object;
pub mod session;
pub mod slot;
mod state;
pub mod unsupported;

/// Version reported as library, hardware and firmware version.
pub(crate) const LIBRARY_VERSION: cryptoki_sys::CK_VERSION =
    cryptoki_sys::CK_VERSION { major: 0, minor: 1 };
