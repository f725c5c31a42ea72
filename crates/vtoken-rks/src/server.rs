//! The server's protocol logic (patent steps S302, S306–S310, S317–S319, S322–S324),
//! with no I/O: [`Server::handle`] takes one request frame and returns the answer.
//! Its state between steps is in memory (a map from session id to phase); the
//! lasting state (DIK1, the queue, the audit log) is behind [`Directory`].
//!
//! Invariants:
//! - a session moves forward only with the one message kind and sequence number its
//!   phase expects; anything else (a replayed, reordered, cut or padded message)
//!   ends it, and the audit log says why;
//! - a key is marked delivered only by the device's acknowledgement that it stored
//!   it (S321), authenticated under TK;
//! - AT, TK1 and TK live only in the session, zeroized when it ends (S323–S324),
//!   on success and on every failure; a server restart forgets every session.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::{self, WorkingKey};
use crate::derive::{derive_dik2, tdes_ecb_encrypt, DIK_LEN};
use crate::frame::{put_field, Frame, Kind, SessionId};
use crate::tmk::Tmk;
use crate::{Result, RksError};

pub use crate::AT_LEN;
/// A session not finished in this time is forgotten.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(300);
pub use crate::ACK_TEXT;
/// Longest factor accepted.
pub const MAX_FACTOR: usize = 64;
/// Longest DSN accepted.
pub const MAX_DSN: usize = 64;

/// The server's lasting state.
pub trait Directory: Send + Sync {
    /// DIK1 for a DSN (by record or by range), if any.
    fn dik1(&self, dsn: &str) -> Result<Option<Zeroizing<[u8; DIK_LEN]>>>;
    /// The next key queued for `dsn` and not delivered yet.
    fn next_key(&self, dsn: &str) -> Result<Option<Tmk>>;
    /// Marks a key delivered (after the device's acknowledgement).
    fn mark_delivered(&self, dsn: &str, uid: &[u8; 16], session: &str) -> Result<()>;
    /// Appends to the audit log (`ok`: a success event, else a refusal).
    fn audit(&self, dsn: &str, session: &str, ok: bool, event: &str);
}

enum Phase {
    /// S302 sent; waiting for the factor (S305).
    AwaitFactor,
    /// S310 sent; waiting for AT ‖ TK2 ‖ TK_SHA2 (S314).
    AwaitResponse {
        at: Zeroizing<[u8; AT_LEN]>,
        tk1: Zeroizing<[u8; AT_LEN]>,
    },
    /// Device authenticated; keys travel under TK (S319–S322).
    Delivering {
        key: Zeroizing<[u8; 32]>,
        pending: Option<[u8; 16]>,
        delivered: u32,
    },
}

struct Session {
    dsn: String,
    phase: Phase,
    /// The seq the device's next message must carry.
    expect_seq: u32,
    started: Instant,
}

/// The RKS protocol logic.
pub struct Server<D: Directory> {
    dir: D,
    working: WorkingKey,
    working_spki: Vec<u8>,
    working_sig: Vec<u8>,
    sessions: Mutex<HashMap<SessionId, Session>>,
}

fn sid_hex(s: &SessionId) -> String {
    hex::encode(s)
}

fn error_frame(session: SessionId, seq: u32, e: &RksError) -> Vec<u8> {
    Frame::new(Kind::Error, session, seq, e.to_string().into_bytes()).encode()
}

impl<D: Directory> Server<D> {
    /// A server with its working key and the root's signature over it.
    pub fn new(dir: D, working: WorkingKey, working_sig: Vec<u8>) -> Result<Server<D>> {
        let working_spki = working.spki()?;
        Ok(Server {
            dir,
            working,
            working_spki,
            working_sig,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn directory(&self) -> &D {
        &self.dir
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions in progress.
    pub fn open_sessions(&self) -> usize {
        self.sessions().len()
    }

    /// One request frame in, the answer frame out (an Error frame on any refusal).
    pub fn handle(&self, req: &[u8]) -> Vec<u8> {
        self.sessions()
            .retain(|_, s| s.started.elapsed() < SESSION_LIFETIME);
        let f = match Frame::decode(req) {
            Ok(f) => f,
            Err(e) => {
                // A frame we cannot parse still names its session when its header
                // is there: that session ends (S323–S324), and the log says why.
                let mut sid = [0u8; 16];
                if req.len() >= 22 {
                    sid.copy_from_slice(&req[6..22]);
                }
                let dsn = self
                    .sessions()
                    .remove(&sid)
                    .map(|s| s.dsn)
                    .unwrap_or_else(|| "?".into());
                self.dir
                    .audit(&dsn, &sid_hex(&sid), false, &format!("refused: {e}"));
                return error_frame(sid, 0, &e);
            }
        };
        if f.kind == Kind::Hello {
            return self.hello(&f);
        }
        let Some(mut s) = self.sessions().remove(&f.session) else {
            let e = RksError::BadMessage(
                "unknown or finished session (a replayed message, or the server restarted): \
                 start the download again"
                    .into(),
            );
            self.dir.audit(
                "?",
                &sid_hex(&f.session),
                false,
                &format!("refused {:?}: {e}", f.kind),
            );
            return error_frame(f.session, f.seq, &e);
        };
        match self.step(&mut s, &f) {
            Ok((reply, done)) => {
                if !done {
                    self.sessions().insert(f.session, s);
                }
                reply
            }
            Err(e) => {
                // The session (AT, TK1, TK) is dropped here: zeroized.
                self.dir.audit(
                    &s.dsn,
                    &sid_hex(&f.session),
                    false,
                    &format!("refused: {e}"),
                );
                tracing::warn!(dsn = %s.dsn, "rks download refused: {e}");
                error_frame(f.session, f.seq.wrapping_add(1), &e)
            }
        }
    }

    /// S301 → S302.
    fn hello(&self, f: &Frame) -> Vec<u8> {
        let dsn = String::from_utf8_lossy(&f.body).to_string();
        let valid = f.seq == 0
            && f.session == [0u8; 16]
            && !f.body.is_empty()
            && f.body.len() <= MAX_DSN
            && f.body.iter().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            let e =
                RksError::BadMessage("a Hello carries seq 0, no session and an ASCII DSN".into());
            self.dir.audit("?", "", false, &format!("refused: {e}"));
            return error_frame(f.session, 1, &e);
        }
        let dsn = dsn.to_ascii_uppercase();
        let sid: SessionId = match crypto::random(16) {
            Ok(r) => r.as_slice().try_into().expect("16 bytes"),
            Err(e) => return error_frame([0; 16], 1, &e),
        };
        let mut body = Vec::new();
        put_field(&mut body, &self.working_spki);
        put_field(&mut body, &self.working_sig);
        self.sessions().insert(
            sid,
            Session {
                dsn: dsn.clone(),
                phase: Phase::AwaitFactor,
                expect_seq: 2,
                started: Instant::now(),
            },
        );
        self.dir
            .audit(&dsn, &sid_hex(&sid), true, "S301 download request");
        Frame::new(Kind::ServerCert, sid, 1, body).encode()
    }

    /// One step of a known session: the reply and whether the session is over.
    fn step(&self, s: &mut Session, f: &Frame) -> Result<(Vec<u8>, bool)> {
        if f.kind == Kind::Error {
            return Err(RksError::Refused(
                String::from_utf8_lossy(&f.body).chars().take(300).collect(),
            ));
        }
        let expect = match s.phase {
            Phase::AwaitFactor => Kind::Factor,
            Phase::AwaitResponse { .. } => Kind::Response,
            Phase::Delivering { .. } => Kind::Ack,
        };
        if f.kind != expect || f.seq != s.expect_seq {
            return Err(RksError::BadMessage(format!(
                "out of order: expected {expect:?} #{}, got {:?} #{} (replayed or reordered)",
                s.expect_seq, f.kind, f.seq
            )));
        }
        let sid = f.session;
        match std::mem::replace(&mut s.phase, Phase::AwaitFactor) {
            Phase::AwaitFactor => {
                // S306–S310.
                let factor = self.working.decrypt(&f.body)?;
                if factor.is_empty() || factor.len() > MAX_FACTOR {
                    return Err(RksError::BadMessage(format!(
                        "a factor has 1 to {MAX_FACTOR} bytes"
                    )));
                }
                let dik1 = self
                    .dir
                    .dik1(&s.dsn)?
                    .ok_or_else(|| RksError::UnknownDevice(format!("no DIK1 for DSN {}", s.dsn)))?;
                let dik2 = derive_dik2(&dik1, &s.dsn, &factor)?;
                let at: Zeroizing<[u8; AT_LEN]> =
                    Zeroizing::new(crypto::random(AT_LEN)?.as_slice().try_into().expect("24"));
                let tk1: Zeroizing<[u8; AT_LEN]> =
                    Zeroizing::new(crypto::random(AT_LEN)?.as_slice().try_into().expect("24"));
                let mut plain = Zeroizing::new(Vec::with_capacity(2 * AT_LEN));
                plain.extend_from_slice(&*at);
                plain.extend_from_slice(&*tk1);
                let body = tdes_ecb_encrypt(&dik2, &plain)?.to_vec();
                s.phase = Phase::AwaitResponse { at, tk1 };
                s.expect_seq = f.seq + 2;
                Ok((
                    Frame::new(Kind::Challenge, sid, f.seq + 1, body).encode(),
                    false,
                ))
            }
            Phase::AwaitResponse { at, tk1 } => {
                // S315–S318.
                let plain = self.working.decrypt(&f.body)?;
                if plain.len() != 2 * AT_LEN + 32 {
                    return Err(RksError::DeviceAuth(format!(
                        "the response has {} bytes, not {}",
                        plain.len(),
                        2 * AT_LEN + 32
                    )));
                }
                if !bool::from(plain[..AT_LEN].ct_eq(&at[..])) {
                    return Err(RksError::DeviceAuth(
                        "AT mismatch: the device does not hold the DIK2 of its DSN".into(),
                    ));
                }
                let mut tk = Zeroizing::new([0u8; AT_LEN]);
                for (i, b) in tk.iter_mut().enumerate() {
                    *b = tk1[i] ^ plain[AT_LEN + i];
                }
                if !bool::from(crypto::sha256(&tk[..]).ct_eq(&plain[2 * AT_LEN..])) {
                    return Err(RksError::DeviceAuth(
                        "TK hash mismatch: SHA-256(TK1 xor TK2) is not the device's TK_SHA2".into(),
                    ));
                }
                self.dir
                    .audit(&s.dsn, &sid_hex(&sid), true, "S318 device authenticated");
                s.phase = Phase::Delivering {
                    key: crypto::tk_aead_key(&tk[..]),
                    pending: None,
                    delivered: 0,
                };
                self.next(s, sid, f.seq + 1)
            }
            Phase::Delivering {
                key,
                pending,
                delivered,
            } => {
                // S321: the device's acknowledgement.
                let plain = crypto::open(&key, &f.header_ad(), &f.body)?;
                let Some(uid) = pending else {
                    return Err(RksError::BadMessage(
                        "no key awaits an acknowledgement".into(),
                    ));
                };
                if plain.len() != 16 + ACK_TEXT.len()
                    || !bool::from(plain[..16].ct_eq(&uid))
                    || &plain[16..] != ACK_TEXT
                {
                    return Err(RksError::BadMessage(
                        "the acknowledgement is not for the key sent".into(),
                    ));
                }
                self.dir.mark_delivered(&s.dsn, &uid, &sid_hex(&sid))?;
                s.phase = Phase::Delivering {
                    key,
                    pending: None,
                    delivered: delivered + 1,
                };
                self.next(s, sid, f.seq + 1)
            }
        }
    }

    /// S319 (the next key) or S322 (the queue is empty: Done, session over).
    fn next(&self, s: &mut Session, sid: SessionId, seq: u32) -> Result<(Vec<u8>, bool)> {
        let Phase::Delivering {
            key,
            pending,
            delivered,
        } = &mut s.phase
        else {
            return Err(RksError::Local("not delivering".into()));
        };
        match self.dir.next_key(&s.dsn)? {
            Some(tmk) => {
                let ad = crate::frame::header_ad(Kind::Key, &sid, seq);
                let body = crypto::seal(key, &ad, &tmk.encode())?;
                *pending = Some(tmk.uid);
                s.expect_seq = seq + 1;
                self.dir.audit(
                    &s.dsn,
                    &sid_hex(&sid),
                    true,
                    &format!("S319 key {:?} sent ({})", tmk.label, hex::encode(tmk.uid)),
                );
                Ok((Frame::new(Kind::Key, sid, seq, body).encode(), false))
            }
            None => {
                let ad = crate::frame::header_ad(Kind::Done, &sid, seq);
                let body = crypto::seal(key, &ad, &delivered.to_be_bytes())?;
                self.dir.audit(
                    &s.dsn,
                    &sid_hex(&sid),
                    true,
                    &format!("S322 done: {delivered} key(s) delivered in this session"),
                );
                Ok((Frame::new(Kind::Done, sid, seq, body).encode(), true))
            }
        }
    }
}
