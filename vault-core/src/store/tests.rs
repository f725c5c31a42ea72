//! Unit tests of the token file: its defensive connection and schema check, and the
//! PIN counter rows (SPEC T2).

use super::seal::WrappedKey;
use super::*;
use crate::config::PinPolicy;
use crate::error::StoreError;

fn header() -> Header {
    Header {
        serial: "0123456789ABCDEF".into(),
        label: "t".into(),
        created: 0,
        pin_policy: PinPolicy::default(),
        so: WrappedKey::wrap(
            &Key32::random().unwrap(),
            b"12345678",
            crate::config::KdfParams::TEST,
            b"so",
        )
        .unwrap(),
        user: None,
        user_pin_to_be_changed: false,
        so_pin_to_be_changed: false,
        ext: [(PIN_COUNTERS_MARK.to_string(), vec![1])].into(),
    }
}

/// The store's own connection refuses the `writable_schema` route to planting
/// a trigger (defensive mode), and runs no trigger (triggers off), whatever SQL
/// reaches it.
#[test]
fn connection_is_defensive() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create(&dir.path().join("t.vtoken"), &header()).unwrap();
    let _ = s.conn.execute_batch("PRAGMA writable_schema = ON");
    let r = s.conn.execute(
        "INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES('trigger',
         'x', 'counters', 0, 'CREATE TRIGGER x AFTER UPDATE ON counters BEGIN DELETE FROM counters; END')",
        [],
    );
    assert!(r.is_err(), "sqlite_schema written: {r:?}");
    // A trigger created through SQL does not fire on this connection.
    s.conn
        .execute_batch("CREATE TRIGGER y AFTER UPDATE ON counters BEGIN DELETE FROM counters; END")
        .unwrap();
    s.set_counter(PIN_COUNTERS[0], 1).unwrap();
    assert_eq!(s.pin_counter(PIN_COUNTERS[0]).unwrap(), Some(1));
    drop(s);
    // And the file carrying it no longer opens.
    match Store::open(&dir.path().join("t.vtoken")) {
        Err(e @ Error::Store(StoreError::Corrupt { .. })) => {
            let m = e.to_string();
            assert!(m.contains("trigger 'y'"), "{m}")
        }
        other => panic!("opened: {:?}", other.map(|_| ())),
    }
}

/// A missing PIN counter row is `None` (locked) and a try on it counts nothing.
#[test]
fn missing_pin_counter_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(&dir.path().join("t.vtoken"), &header()).unwrap();
    assert_eq!(
        s.pin_attempt(PIN_COUNTERS[0], 2).unwrap(),
        PinAttempt::Check(1)
    );
    assert_eq!(
        s.pin_attempt(PIN_COUNTERS[0], 2).unwrap(),
        PinAttempt::Check(2)
    );
    assert_eq!(
        s.pin_attempt(PIN_COUNTERS[0], 2).unwrap(),
        PinAttempt::Locked
    );
    assert_eq!(s.pin_counter(PIN_COUNTERS[0]).unwrap(), Some(2));
    s.conn
        .execute("DELETE FROM counters WHERE name = ?1", [PIN_COUNTERS[1]])
        .unwrap();
    assert_eq!(s.pin_counter(PIN_COUNTERS[1]).unwrap(), None);
    assert_eq!(
        s.pin_attempt(PIN_COUNTERS[1], 10).unwrap(),
        PinAttempt::Locked
    );
}

/// A file from before the counter rows were written at creation: a token
/// whose SO never logged in gets its SO row (at 0) once; with a user PIN set,
/// a missing row stays missing (only a deletion removes it), i.e. locked.
#[test]
fn old_files_get_their_counter_rows_once() {
    for with_user in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.vtoken");
        let mut h = header();
        h.ext.clear();
        if with_user {
            h.user = Some(h.so.clone());
        }
        let s = Store::create(&path, &h).unwrap();
        s.conn.execute("DELETE FROM counters", []).unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        s.upgrade_pin_counters().unwrap();
        assert!(s.header().unwrap().ext.contains_key(PIN_COUNTERS_MARK));
        let so = s.pin_counter(PIN_COUNTERS[1]).unwrap();
        assert_eq!(so, if with_user { None } else { Some(0) });
        // Marked: deleting the row now reads as locked.
        s.conn.execute("DELETE FROM counters", []).unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        s.upgrade_pin_counters().unwrap();
        assert_eq!(s.pin_counter(PIN_COUNTERS[1]).unwrap(), None);
    }
}
