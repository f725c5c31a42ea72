//! Store benchmarks (issue: foundation): opening a token holding N objects, creating
//! one object in a token holding N objects (N = 100, 1 000, 10 000), and login at
//! the default and the test KDF cost.
//!
//! Run: `cargo bench -p vault-core --bench store` (numbers go to the issue notes;
//! nothing here is asserted).

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vault_core::config::{Config, KdfParams};
use vault_core::pkcs11::*;
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::Attributes;

const SO: &[u8] = b"bench-so-pin";
const PIN: &[u8] = b"bench-user-pin";

fn data(label: String) -> Attributes {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_DATA);
    a.set_bool(CKA_TOKEN, true);
    a.set_bool(CKA_PRIVATE, true);
    a.set(CKA_LABEL, label.into_bytes());
    a.set(CKA_VALUE, vec![0xab; 64]);
    a
}

/// A token with `n` private token objects; returns (dir guard, config, path).
fn token_with(n: usize) -> (tempfile::TempDir, Config, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::for_dir(dir.path());
    let reg = Registry::new(cfg.clone());
    let e = reg.create("bench", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(PIN).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, PIN).unwrap();
    let s = &t.open_session(true).unwrap();
    let start = Instant::now();
    for i in 0..n {
        t.create_object(s, &data(format!("obj{i}"))).unwrap();
    }
    eprintln!("setup: {n} objects in {:?}", start.elapsed());
    (dir, cfg, e.path)
}

fn open_and_load(path: &Path, cfg: &Config) -> usize {
    let t = Token::open(path, cfg).unwrap();
    t.login(UserType::User, PIN).unwrap();
    t.search(&Attributes::new()).unwrap().len()
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in [100usize, 1_000, 10_000] {
        let (_dir, cfg, path) = token_with(n);
        g.bench_with_input(BenchmarkId::new("open_login_load_all", n), &n, |b, &n| {
            b.iter(|| assert_eq!(open_and_load(&path, &cfg), n))
        });
        let t = Token::open(&path, &cfg).unwrap();
        t.login(UserType::User, PIN).unwrap();
        let s = &t.open_session(true).unwrap();
        g.bench_with_input(BenchmarkId::new("create_one_object", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let start = Instant::now();
                    let id = t.create_object(s, &data(format!("extra{i}"))).unwrap();
                    total += start.elapsed();
                    t.destroy_object(s, id).unwrap();
                }
                total
            })
        });
        let mut q = Attributes::new();
        q.set(CKA_LABEL, format!("obj{}", n / 2).into_bytes());
        g.bench_with_input(BenchmarkId::new("find_by_label", n), &n, |b, _| {
            b.iter(|| assert_eq!(t.search(&q).unwrap().len(), 1))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("login");
    g.sample_size(10);
    for (name, kdf) in [
        ("default_kdf", KdfParams::DEFAULT),
        ("test_kdf", KdfParams::TEST),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::for_dir(dir.path());
        cfg.kdf = kdf;
        let reg = Registry::new(cfg);
        let e = reg.create("login", SO, None).unwrap();
        let t = reg.open(&e).unwrap();
        t.login(UserType::So, SO).unwrap();
        t.init_pin(PIN).unwrap();
        t.logout().unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                t.login(UserType::User, PIN).unwrap();
                t.logout().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
