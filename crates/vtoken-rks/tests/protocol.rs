//! The protocol logic of both sides against each other, in memory (the same
//! logic runs over HTTP in vtoken-server's tests).

use std::collections::HashMap;
use std::sync::Mutex;

use vtoken_rks::crypto::{RootKey, WorkingKey};
use vtoken_rks::derive::DIK_LEN;
use vtoken_rks::device::{download, KeySink, Provisioned};
use vtoken_rks::server::{Directory, Server};
use vtoken_rks::tmk::{Tmk, TmkType, USE_ALL};
use vtoken_rks::{derive_dik2, Result, RksError};
use zeroize::Zeroizing;

/// uid, delivered, value.
type Queued = ([u8; 16], bool, Vec<u8>);

#[derive(Default)]
struct Mem {
    dik1: HashMap<String, [u8; 24]>,
    queue: Mutex<Vec<Queued>>,
    audit: Mutex<Vec<String>>,
}

impl Directory for Mem {
    fn dik1(&self, dsn: &str) -> Result<Option<Zeroizing<[u8; DIK_LEN]>>> {
        Ok(self.dik1.get(dsn).map(|k| Zeroizing::new(*k)))
    }
    fn next_key(&self, _dsn: &str) -> Result<Option<Tmk>> {
        let q = self.queue.lock().unwrap();
        Ok(q.iter().find(|k| !k.1).map(|(uid, _, v)| Tmk {
            uid: *uid,
            ty: TmkType::Des3,
            usage: USE_ALL,
            label: "tmk".into(),
            id: vec![1],
            value: Zeroizing::new(v.clone()),
        }))
    }
    fn mark_delivered(&self, _dsn: &str, uid: &[u8; 16], _s: &str) -> Result<()> {
        for k in self.queue.lock().unwrap().iter_mut() {
            if &k.0 == uid {
                k.1 = true;
            }
        }
        Ok(())
    }
    fn audit(&self, dsn: &str, _s: &str, ok: bool, event: &str) {
        self.audit
            .lock()
            .unwrap()
            .push(format!("{dsn} {ok} {event}"));
    }
}

#[derive(Default)]
struct Sink(Vec<([u8; 16], Vec<u8>)>);

impl KeySink for Sink {
    fn holds(&mut self, uid: &[u8; 16]) -> Result<bool> {
        Ok(self.0.iter().any(|k| &k.0 == uid))
    }
    fn store(&mut self, key: &Tmk) -> Result<()> {
        self.0.push((key.uid, key.value.to_vec()));
        Ok(())
    }
}

const DSN: &str = "00000000000000A1";

fn setup() -> (Server<Mem>, Provisioned, Vec<u8>) {
    let root = RootKey::generate().unwrap();
    let working = WorkingKey::generate().unwrap();
    let sig = root.sign_working(&working.spki().unwrap()).unwrap();
    let dik1 = [0x42u8; 24];
    let mut mem = Mem::default();
    mem.dik1.insert(DSN.into(), dik1);
    mem.queue
        .lock()
        .unwrap()
        .push(([1; 16], false, vec![0x5a; 24]));
    mem.queue
        .lock()
        .unwrap()
        .push(([2; 16], false, vec![0x3c; 24]));
    let factor = b"factor-1".to_vec();
    let p = Provisioned {
        dsn: DSN.into(),
        dik2: derive_dik2(&dik1, DSN, &factor).unwrap(),
        factor: Zeroizing::new(factor),
        root_spki: root.spki().unwrap(),
    };
    (
        Server::new(mem, working, sig).unwrap(),
        p,
        root.spki().unwrap(),
    )
}

#[test]
fn download_delivers_every_key_once() {
    let (server, p, _) = setup();
    let mut sink = Sink::default();
    let out = download(&p, &mut |b| Ok(server.handle(b)), &mut sink).unwrap();
    assert_eq!(out.keys.len(), 2);
    assert_eq!(sink.0[0].1, vec![0x5a; 24]);
    assert_eq!(sink.0[1].1, vec![0x3c; 24]);
    assert!(server.directory().queue.lock().unwrap().iter().all(|k| k.1));
    assert_eq!(server.open_sessions(), 0);
    // Nothing left: a second run delivers nothing.
    let out = download(&p, &mut |b| Ok(server.handle(b)), &mut sink).unwrap();
    assert!(out.keys.is_empty());
}

#[test]
fn wrong_dik2_is_refused_by_the_server() {
    let (server, mut p, _) = setup();
    p.dik2 = Zeroizing::new([0x24; 24]);
    let mut sink = Sink::default();
    let e = download(&p, &mut |b| Ok(server.handle(b)), &mut sink).unwrap_err();
    assert!(e.to_string().contains("AT mismatch"), "{e}");
    assert!(sink.0.is_empty());
    assert!(server
        .directory()
        .queue
        .lock()
        .unwrap()
        .iter()
        .all(|k| !k.1));
    assert_eq!(server.open_sessions(), 0);
}

#[test]
fn a_working_key_under_another_root_is_refused_by_the_device() {
    let (server, mut p, _) = setup();
    p.root_spki = RootKey::generate().unwrap().spki().unwrap();
    let mut sink = Sink::default();
    let e = download(&p, &mut |b| Ok(server.handle(b)), &mut sink).unwrap_err();
    assert!(matches!(e, RksError::ServerAuth(_)), "{e}");
    // The device told the server, which ended the session and logged why.
    assert_eq!(server.open_sessions(), 0);
    let audit = server.directory().audit.lock().unwrap().join("\n");
    assert!(audit.contains("server authentication failed"), "{audit}");
}

#[test]
fn a_lost_acknowledgement_does_not_store_twice() {
    let (server, p, _) = setup();
    let mut sink = Sink::default();
    // Cut the transport when the first Ack is about to go out.
    let mut n = 0;
    let e = download(
        &p,
        &mut |b| {
            n += 1;
            if b[5] == 7 {
                return Err(RksError::Local("connection lost".into()));
            }
            Ok(server.handle(b))
        },
        &mut sink,
    )
    .unwrap_err();
    assert!(e.to_string().contains("connection lost"));
    assert_eq!(sink.0.len(), 1, "stored before the ack");
    assert!(server
        .directory()
        .queue
        .lock()
        .unwrap()
        .iter()
        .all(|k| !k.1));
    let out = download(&p, &mut |b| Ok(server.handle(b)), &mut sink).unwrap();
    assert_eq!(out.keys.len(), 2);
    assert!(!out.keys[0].stored, "already held: not stored again");
    assert!(out.keys[1].stored);
    assert_eq!(sink.0.len(), 2);
    assert!(server.directory().queue.lock().unwrap().iter().all(|k| k.1));
}
