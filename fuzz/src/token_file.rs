//! The token-file decoder: arbitrary bytes, or a real token file with fuzzed
//! records, opened through vault-core's public API (`Token::open`, info, search,
//! logins with the right and a wrong PIN).
//!
//! Input: the first byte picks the mode.
//! - even: the rest is the whole file (SQLite pages and all);
//! - odd: the rest is a list of edits applied to a small valid token file. Records
//!   an edit writes are sealed with the file's own public-record key (or the known
//!   master key), so the decoders behind the integrity check are reached: the
//!   postcard header, counters, object attributes, the gate and vault state.
//!
//! Nothing may panic or hang; a damaged file gives `Err`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::{params, Connection};
use vault_core::config::{Config, KdfParams, PinPolicy};
use vault_core::pkcs11::*;
use vault_core::store::seal::{self, Key32, WrappedKey};
use vault_core::store::{wrap_ad, Header, MasterKeys, Store};
use vault_core::token::{Token, UserType};
use vault_core::Attributes;

/// The user PIN of the template token.
pub const USER_PIN: &[u8] = b"fuzz-user-pin";
/// The SO PIN of the template token.
pub const SO_PIN: &[u8] = b"fuzz-so-pin";
const SERIAL: &str = "F0220000000000AB";
const MASTER: [u8; 32] = [0x5a; 32];

// Associated data of the sealed records: these mirror `vault-core/src/store/mod.rs`
// (a change there shows as `Corrupt` on the template, which
// `template_opens_and_logs_in` in the replay test catches).
const HEADER_AD: &[u8] = b"vtoken-header-v1";
const COUNTERS: [&str; 2] = ["user_pin_failures", "so_pin_failures"];
const EXT_KEYS: [&str; 4] = ["gate", "vault", "device", "x"];

fn counter_ad(serial: &str, name: &str) -> Vec<u8> {
    format!("vtoken-counter-v1\0{serial}\0{name}").into_bytes()
}

fn obj_ad(
    serial: &str,
    id: u64,
    private: bool,
    class: u64,
    tags: [&Option<Vec<u8>>; 2],
) -> Vec<u8> {
    let mut ad = b"vtoken-obj-v1\0".to_vec();
    ad.extend_from_slice(serial.as_bytes());
    ad.push(0);
    ad.extend_from_slice(&id.to_le_bytes());
    ad.push(private as u8);
    ad.extend_from_slice(&class.to_le_bytes());
    for t in tags {
        match t {
            Some(t) => {
                ad.push(1);
                ad.extend_from_slice(t);
            }
            None => ad.push(0),
        }
    }
    ad
}

struct Fixture {
    dir: PathBuf,
    /// The template token file (rollback journal, 512-byte pages: about 5 KiB).
    template: Vec<u8>,
    /// Its public-record key.
    pub_key: [u8; 32],
    header: Header,
    config: Config,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = crate::support::scratch_dir("token");
        let path = dir.join("template.vtoken");
        let master = Key32::from_bytes(MASTER);
        let header = Header {
            serial: SERIAL.into(),
            label: "fuzz".into(),
            created: 1_700_000_000,
            pin_policy: PinPolicy::default(),
            so: WrappedKey::wrap(&master, SO_PIN, KdfParams::TEST, &wrap_ad(SERIAL, "so")).unwrap(),
            user: Some(
                WrappedKey::wrap(&master, USER_PIN, KdfParams::TEST, &wrap_ad(SERIAL, "user"))
                    .unwrap(),
            ),
            user_pin_to_be_changed: false,
            so_pin_to_be_changed: false,
            ext: BTreeMap::new(),
        };
        let mut store = Store::create(&path, &header).unwrap();
        let mk = MasterKeys::new(master);
        let mut data = Attributes::new();
        data.set_ulong(CKA_CLASS, CKO_DATA);
        data.set_bool(CKA_TOKEN, true);
        data.set_bool(CKA_PRIVATE, false);
        data.set(CKA_LABEL, b"public data".to_vec());
        data.set(CKA_VALUE, b"hello".to_vec());
        store.insert_object(false, &data, None).unwrap();
        let mut key = Attributes::new();
        key.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        key.set_ulong(CKA_KEY_TYPE, CKK_AES);
        key.set_bool(CKA_TOKEN, true);
        key.set_bool(CKA_PRIVATE, true);
        key.set(CKA_LABEL, b"aes".to_vec());
        key.set(CKA_ID, vec![1]);
        key.set(CKA_VALUE, vec![0x11; 16]);
        store.insert_object(true, &key, Some(&mk)).unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;
             PRAGMA page_size=512; VACUUM;",
        )
        .unwrap();
        let pk: Vec<u8> = conn
            .query_row("SELECT v FROM meta WHERE k = 'pubkey'", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        let template = std::fs::read(&path).unwrap();
        let config = Config::for_dir(&dir);
        Fixture {
            template,
            pub_key: pk[..32].try_into().unwrap(),
            header,
            config,
            dir,
        }
    })
}

/// Builds the template once per process (outside any timed input).
pub fn init() {
    fixture();
}

/// The template token file, for seeding the corpus (`[0]` + file is a raw input).
pub fn template() -> Vec<u8> {
    fixture().template.clone()
}

fn remove(path: &Path) {
    for ext in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Reads fields from the fuzz input; past its end every read gives zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
    /// A length byte, then that many bytes.
    fn bytes(&mut self) -> Vec<u8> {
        let n = (self.byte() as usize).min(self.0.len());
        let (v, rest) = self.0.split_at(n);
        self.0 = rest;
        v.to_vec()
    }
    fn string(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// The file being edited: its connection and the header its records are bound to.
struct Editor {
    conn: Connection,
    key: Key32,
    header: Header,
}

impl Editor {
    fn put_meta(&self, k: &str, v: &[u8]) {
        let _ = self.conn.execute(
            "INSERT OR REPLACE INTO meta(k, v) VALUES(?1, ?2)",
            params![k, v],
        );
    }

    fn put_header_plain(&self, plain: &[u8]) {
        let sealed = seal::seal(&self.key, HEADER_AD, plain).unwrap();
        self.put_meta("header", &sealed);
    }

    fn edit_header(&mut self, inp: &mut Input) {
        let h = &mut self.header;
        let kdf = |inp: &mut Input| KdfParams {
            m_cost_kib: inp.u64() as u32,
            t_cost: inp.byte() as u32,
            p_cost: inp.byte() as u32,
        };
        match inp.byte() % 12 {
            0 => h.pin_policy.min_len = inp.u64() as usize,
            1 => h.pin_policy.max_len = inp.u64() as usize,
            2 => h.pin_policy.user_max_tries = inp.u64() as u32,
            3 => h.pin_policy.so_max_tries = inp.u64() as u32,
            4 => h.so.kdf = kdf(inp),
            5 => {
                if let Some(u) = &mut h.user {
                    u.kdf = kdf(inp)
                }
            }
            6 => h.user = None,
            7 => h.serial = inp.string(),
            8 => h.label = inp.string(),
            9 => {
                h.user_pin_to_be_changed = inp.byte() & 1 == 1;
                h.so_pin_to_be_changed = inp.byte() & 1 == 1;
            }
            10 => {
                let k = EXT_KEYS[inp.byte() as usize % EXT_KEYS.len()];
                h.ext.insert(k.to_string(), inp.bytes());
            }
            _ => h.so.sealed = inp.bytes(),
        }
        let plain = postcard::to_allocvec(&self.header).unwrap();
        self.put_header_plain(&plain);
    }

    fn put_object(&self, inp: &mut Input) {
        let private = inp.byte() & 1 == 1;
        let id = inp.byte() as u64;
        if inp.byte() & 1 == 0 {
            // Raw postcard bytes: the decoder itself.
            let plain = inp.bytes();
            let attrs = postcard::from_bytes(&plain).unwrap_or_default();
            self.put_record(id, private, &attrs, &plain);
            return;
        }
        let mut attrs = Attributes::new();
        for _ in 0..inp.byte() % 6 {
            let t = match inp.byte() % 8 {
                0 => CKA_CLASS,
                1 => CKA_KEY_TYPE,
                2 => CKA_LABEL,
                3 => CKA_ID,
                4 => CKA_VALUE,
                5 => CKA_PRIVATE,
                6 => CKA_SENSITIVE,
                _ => inp.u64(),
            };
            attrs.set(t, inp.bytes());
        }
        let plain = postcard::to_allocvec(&attrs).unwrap();
        self.put_record(id, private, &attrs, &plain)
    }

    fn put_record(&self, id: u64, private: bool, attrs: &Attributes, plain: &[u8]) {
        let (key, index) = if private {
            let mk = MasterKeys::new(Key32::from_bytes(MASTER));
            (mk.records.clone(), mk.index.clone())
        } else {
            (self.key.clone(), self.key.derive(b"index"))
        };
        let class = attrs.class().unwrap_or(u64::MAX);
        let lt = attrs.get(CKA_LABEL).map(|v| index.tag(v));
        let it = attrs.get(CKA_ID).map(|v| index.tag(v));
        let ad = obj_ad(&self.header.serial, id, private, class, [&lt, &it]);
        let blob = seal::seal(&key, &ad, plain).unwrap();
        let _ = self.conn.execute(
            "INSERT OR REPLACE INTO objects(id, private, class, label_tag, id_tag, gen, blob)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id as i64, private, class as i64, lt, it, 1i64, blob],
        );
    }

    fn put_counter(&self, inp: &mut Input) {
        let name = COUNTERS[inp.byte() as usize % 2];
        // u32::MAX is allowed again: the `pin_status` overflow it found is fixed
        // (`vault-core/tests/fuzz_regressions.rs`).
        let plain = inp.bytes();
        let sealed = seal::seal(&self.key, &counter_ad(&self.header.serial, name), &plain).unwrap();
        let _ = self.conn.execute(
            "INSERT OR REPLACE INTO counters(name, v) VALUES(?1, ?2)",
            params![name, sealed],
        );
    }

    /// Writes raw bytes into one cell (no sealing): damaged records.
    fn put_raw(&self, inp: &mut Input) {
        let which = inp.byte() % 8;
        let id = inp.byte() as i64;
        let v = inp.bytes();
        let n = inp.u64() as i64;
        let _ = match which {
            0 => self
                .conn
                .execute("UPDATE meta SET v = ?1 WHERE k = 'format'", [&v]),
            1 => self
                .conn
                .execute("UPDATE meta SET v = ?1 WHERE k = 'pubkey'", [&v]),
            2 => self
                .conn
                .execute("UPDATE meta SET v = ?1 WHERE k = 'header'", [&v]),
            3 => self
                .conn
                .execute("UPDATE objects SET blob = ?1 WHERE id = ?2", params![v, id]),
            4 => self.conn.execute(
                "UPDATE objects SET class = ?1 WHERE id = ?2",
                params![n, id],
            ),
            5 => self.conn.execute(
                "UPDATE objects SET label_tag = ?1 WHERE id = ?2",
                params![v, id],
            ),
            6 => self.conn.execute(
                "UPDATE objects SET private = ?1, gen = ?1 WHERE id = ?2",
                params![n, id],
            ),
            _ => self.conn.execute("UPDATE counters SET v = ?1", [&v]),
        };
    }

    fn delete(&self, inp: &mut Input) {
        let _ = match inp.byte() % 4 {
            0 => self.conn.execute("DELETE FROM meta WHERE k = 'header'", []),
            1 => self.conn.execute("DELETE FROM meta WHERE k = 'format'", []),
            2 => self
                .conn
                .execute("DELETE FROM objects WHERE id = ?1", [inp.byte() as i64]),
            _ => self.conn.execute("DROP TABLE counters", []),
        };
    }
}

fn build(path: &Path, data: &[u8]) {
    let f = fixture();
    std::fs::write(path, &f.template).unwrap();
    let mut ed = Editor {
        conn: Connection::open(path).unwrap(),
        key: Key32::from_bytes(f.pub_key),
        header: f.header.clone(),
    };
    let mut inp = Input(data);
    for _ in 0..16 {
        if inp.0.is_empty() {
            break;
        }
        match inp.byte() % 6 {
            0 => ed.edit_header(&mut inp),
            1 => {
                let plain = inp.bytes();
                ed.put_header_plain(&plain)
            }
            2 => ed.put_object(&mut inp),
            3 => ed.put_counter(&mut inp),
            4 => ed.put_raw(&mut inp),
            _ => ed.delete(&mut inp),
        }
    }
}

/// Whether logging in to this file costs a test-sized KDF (a file may name any
/// Argon2 cost; an expensive one is slow by design, not a bug, so it is not run).
fn cheap_kdf(path: &Path) -> bool {
    let cheap = |k: &KdfParams| k.m_cost_kib <= 1024 && k.t_cost <= 2 && k.p_cost <= 4;
    let Ok(conn) = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return true;
    };
    let get = |k: &str| -> Option<Vec<u8>> {
        conn.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
            .ok()
    };
    let (Some(pk), Some(sealed)) = (get("pubkey"), get("header")) else {
        return true;
    };
    let Ok(pk) = <[u8; 32]>::try_from(&pk[..pk.len().min(32)]) else {
        return true;
    };
    let Some(plain) = seal::open(&Key32::from_bytes(pk), HEADER_AD, &sealed) else {
        return true;
    };
    match postcard::from_bytes::<Header>(&plain) {
        Ok(h) => cheap(&h.so.kdf) && h.user.as_ref().is_none_or(|u| cheap(&u.kdf)),
        Err(_) => true,
    }
}

fn look(token: &Token) {
    let _ = token.info();
    let _ = token.label();
    if let Ok(ids) = token.search(&Attributes::new()) {
        for id in ids.into_iter().take(8) {
            if let Ok(a) = token.attributes(id) {
                let _ = a.label();
            }
        }
    }
}

/// Opens the token file at `path` and uses it as a client would.
fn exercise(path: &Path) {
    let login = cheap_kdf(path);
    let Ok(token) = Token::open(path, &fixture().config) else {
        return;
    };
    look(&token);
    if login {
        for (who, pin) in [
            (UserType::User, USER_PIN),
            (UserType::User, b"wrong-pin".as_slice()),
            (UserType::So, SO_PIN),
        ] {
            if token.login(who, pin).is_ok() {
                look(&token);
                let _ = token.logout();
            }
        }
    }
}

/// Opens one fuzz input as a token file.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let path = fixture().dir.join("t.vtoken");
    remove(&path);
    if mode & 1 == 0 {
        std::fs::write(&path, rest).unwrap();
    } else {
        build(&path, rest);
    }
    exercise(&path);
    remove(&path);
}

/// How many objects the user sees and reads after logging in to the file an input
/// builds (`None`: it does not open, the login fails or an object's record does
/// not open). For the replay test's check
/// that the template still matches vault-core's file format.
pub fn objects_after_login(data: &[u8]) -> Option<usize> {
    let path = fixture().dir.join("check.vtoken");
    remove(&path);
    match data.split_first() {
        Some((m, rest)) if m & 1 == 0 => std::fs::write(&path, rest).unwrap(),
        Some((_, rest)) => build(&path, rest),
        None => return None,
    }
    let n = Token::open(&path, &fixture().config)
        .and_then(|t| {
            t.login(UserType::User, USER_PIN)?;
            let ids = t.search(&Attributes::new())?;
            // A search may answer from the index columns alone; reading every
            // object opens (and checks) its record.
            for &id in &ids {
                t.attributes(id)?;
            }
            Ok(ids.len())
        })
        .ok();
    remove(&path);
    n
}
