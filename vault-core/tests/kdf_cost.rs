//! The cost of a login under candidate Argon2id parameters, to choose
//! `KdfParams::DEFAULT` (login ≤ 100 ms on the reference machine). Not a check:
//! run by hand, in release mode, on an otherwise idle machine:
//!
//! ```text
//! cargo test --release -p vault-core --test kdf_cost -- --ignored --nocapture
//! ```

use std::time::Instant;

use vault_core::config::{Config, KdfParams};
use vault_core::token::{Token, UserType};

/// This thread's time on a CPU, in ms (`/proc/thread-self/schedstat`, ns): unlike
/// the wall clock, not inflated by other processes competing for the cores.
fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e6
}

/// Median wall-clock and on-CPU ms of `f` over `n` runs.
fn time(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    let (mut w, mut c) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (s, sc) = (Instant::now(), cpu_ms());
        f();
        c.push(cpu_ms() - sc);
        w.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    w.sort_by(f64::total_cmp);
    c.sort_by(f64::total_cmp);
    (w[n / 2], c[n / 2])
}

fn login_ms(kdf: KdfParams) -> ((f64, f64), (f64, f64)) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_dir(dir.path());
    cfg.kdf = kdf;
    let path = dir.path().join("t.vtoken");
    Token::create(&path, "t", b"12345678", &cfg).unwrap();
    let t = Token::open(&path, &cfg).unwrap();
    t.login(UserType::So, b"12345678").unwrap();
    t.init_pin(b"123456").unwrap();
    t.logout().unwrap();
    let login = time(7, || {
        t.login(UserType::User, b"123456").unwrap();
        t.logout().unwrap();
    });
    // The bare KDF: what one offline guess costs.
    let params = argon2::Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32)).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let bare = time(7, || {
        let mut out = [0u8; 32];
        a.hash_password_into(b"123456", &[7u8; 16], &mut out)
            .unwrap();
    });
    (login, bare)
}

#[test]
#[ignore = "a measurement, not a check"]
fn login_cost_of_candidate_parameters() {
    for (m, t) in [
        (19 * 1024, 2),
        (46 * 1024, 1),
        (64 * 1024, 1),
        (40 * 1024, 2),
        (64 * 1024, 2),
        (72 * 1024, 1),
        (80 * 1024, 1),
        (96 * 1024, 1),
        (128 * 1024, 1),
        (KdfParams::DEFAULT.m_cost_kib, KdfParams::DEFAULT.t_cost),
    ] {
        let kdf = KdfParams {
            m_cost_kib: m,
            t_cost: t,
            p_cost: 1,
        };
        let ((lw, lc), (bw, bc)) = login_ms(kdf);
        println!(
            "m={m:>6} KiB t={t} p=1: login+logout {lw:6.1} ms wall / {lc:6.1} ms CPU; \
             bare Argon2id {bw:6.1} ms wall / {bc:6.1} ms CPU"
        );
    }
}
