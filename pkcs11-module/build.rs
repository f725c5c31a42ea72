//! Link options of the cdylib.
//!
//! `-z nodelete`: `dlclose` leaves the module mapped. Its process-wide state (the
//! tracing subscriber installed once by `C_Initialize`, thread-local destructors of
//! std) cannot be torn down, so unmapping it would leak that state on every
//! load/unload cycle (memcheck reports it as definitely lost) and leave dangling
//! function pointers behind; hosts such as pkcs11-tool and NSS dlclose modules at exit.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
