//! The key-server cell: one DIK1 for a range of device serials (`rks dik1 add
//! --range`), one key queued per device (`rks queue`), and each operation one
//! device's whole download session (`vtoken_rks::device::download`: Hello, Factor,
//! Response, the key, its acknowledgement) with an in-memory key store standing in
//! for the token.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use vtoken_rks::device::{download, KeySink, Provisioned};
use vtoken_rks::tmk::Tmk;
use vtoken_rks::{derive_dik2, RksError};
use zeroize::Zeroizing;

use crate::{sys, Backend, Cell};

const DIK1: &str = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567";
const FACTOR: &[u8] = b"\x00\x11\x22\x33";
const FIRST_DSN: u64 = 0x0000_0000_0001_0000;

pub struct RksCell {
    dir: PathBuf,
    db: Vec<String>,
    devices: Vec<Provisioned>,
    /// HTTP requests sent, over all sessions.
    frames: AtomicUsize,
    sessions: AtomicUsize,
}

#[derive(Default)]
struct Sink(Vec<[u8; 16]>);

impl KeySink for Sink {
    fn holds(&mut self, uid: &[u8; 16]) -> vtoken_rks::Result<bool> {
        Ok(self.0.contains(uid))
    }
    fn store(&mut self, key: &Tmk) -> vtoken_rks::Result<()> {
        self.0.push(key.uid);
        Ok(())
    }
}

impl RksCell {
    /// `rks init`, the range's DIK1, one key queued for each of `ops` devices.
    pub fn setup(bin: &Path, tmp: &Path, backend: &Backend, ops: usize) -> Result<RksCell, String> {
        let dir = tmp.join("rks");
        let d = dir.display().to_string();
        let db = backend.args();
        let cmd = |v: &[&str]| {
            let mut c: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            c.extend(db.clone());
            c
        };
        sys::run(bin, &cmd(&["rks", "init", "--dir", &d]))?;
        let dsn = |i: usize| format!("{:016X}", FIRST_DSN + i as u64);
        let range = format!("{}..{}", dsn(0), dsn(ops.max(1) - 1));
        sys::run(
            bin,
            &cmd(&[
                "rks", "dik1", "add", "--dir", &d, "--range", &range, "--key", DIK1,
            ]),
        )?;
        let queue: Vec<Vec<String>> = (0..ops)
            .map(|i| {
                cmd(&[
                    "rks",
                    "queue",
                    "--dir",
                    &d,
                    "--dsn",
                    &dsn(i),
                    "--label",
                    "TMK",
                    "--type",
                    "aes256",
                ])
            })
            .collect();
        eprintln!("   queueing {ops} keys (rks queue)");
        sys::run_all(bin, queue, 4)?;
        let pem = std::fs::read_to_string(dir.join("root.pem")).map_err(|e| e.to_string())?;
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let root_spki = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| e.to_string())?;
        let dik1: [u8; 24] = hex::decode(DIK1)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "DIK1 length")?;
        let devices = (0..ops)
            .map(|i| {
                Ok(Provisioned {
                    dsn: dsn(i),
                    dik2: derive_dik2(&dik1, &dsn(i), FACTOR).map_err(|e| e.to_string())?,
                    factor: Zeroizing::new(FACTOR.to_vec()),
                    root_spki: root_spki.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(RksCell {
            dir,
            db,
            devices,
            frames: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
        })
    }
}

impl Cell for RksCell {
    fn serve_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["rks".into(), "serve".into(), "--dir".into()];
        a.push(self.dir.display().to_string());
        a.extend(self.db.clone());
        a
    }

    fn requests_per_op(&self) -> f64 {
        let s = self.sessions.load(Ordering::Relaxed).max(1);
        self.frames.load(Ordering::Relaxed) as f64 / s as f64
    }

    fn op(&self, agent: &ureq::Agent, url: &str, _client: usize, i: usize) -> Result<(), String> {
        let mut sink = Sink::default();
        let out = download(
            &self.devices[i],
            &mut |frame| {
                self.frames.fetch_add(1, Ordering::Relaxed);
                crate::post(agent, url, "/api/v1/rks", &[], frame).map_err(RksError::Local)
            },
            &mut sink,
        )
        .map_err(|e| e.to_string())?;
        self.sessions.fetch_add(1, Ordering::Relaxed);
        if out.keys.len() != 1 || sink.0.len() != 1 {
            return Err(format!(
                "{}: {} keys received, {} stored (1 queued)",
                self.devices[i].dsn,
                out.keys.len(),
                sink.0.len()
            ));
        }
        Ok(())
    }

    fn check(&self, backend: &Backend, ok: usize) -> Result<String, String> {
        let file = self.dir.join("rks.db");
        let delivered = backend.count(
            "rks",
            &file,
            "SELECT count(*) FROM queue WHERE delivered_at IS NOT NULL",
        )?;
        let waiting = backend.count(
            "rks",
            &file,
            "SELECT count(*) FROM queue WHERE delivered_at IS NULL",
        )?;
        let m = format!(
            "{delivered} keys delivered, {waiting} still queued, for {ok} downloads of {} queued",
            self.devices.len()
        );
        if delivered == ok as i64 && delivered + waiting == self.devices.len() as i64 {
            Ok(m)
        } else {
            Err(m)
        }
    }
}

/// The key server's public-key work per download, in this process: two RSA-2048
/// OAEP decryptions with the working key (the device's factor, then AT/TK), the
/// same `vtoken_rks::crypto` calls the server makes.
pub fn bare_crypto() -> Result<(f64, String), String> {
    let wk = vtoken_rks::crypto::WorkingKey::generate().map_err(|e| e.to_string())?;
    let spki = wk.spki().map_err(|e| e.to_string())?;
    let ct = vtoken_rks::devcrypto::oaep_encrypt(&spki, &[7u8; 48]).map_err(|e| e.to_string())?;
    let secs = crate::time_per_call(100, || {
        for _ in 0..2 {
            wk.decrypt(&ct).map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    Ok((
        secs * 1e3,
        "RSA-2048: two OAEP decryptions with the working key".into(),
    ))
}
