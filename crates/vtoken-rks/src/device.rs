//! The device's side (patent steps S301, S303–S305, S311–S314, S320–S324): one
//! download session driven to its end by [`download`]. The device speaks first and
//! each of its messages gets one answer, so the state machine is the sequence of
//! this function: every answer must be the one kind and sequence number expected
//! next, in the session the server opened, or the download stops.
//!
//! The secrets (DIK2, the factor, AT, TK1, TK2, TK) are held in `Zeroizing`
//! buffers and erased when the function returns, on success and on every failure
//! (S323–S324); the working public key is dropped with them. Whatever fails on the
//! device is also reported to the server (an Error frame) so its audit log says why.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::derive::{tdes_ecb_decrypt, DIK_LEN};
use crate::devcrypto as crypto;
use crate::frame::{header_ad, Fields, Frame, Kind, SessionId};
use crate::tmk::Tmk;
use crate::{Result, RksError};
use crate::{ACK_TEXT, AT_LEN};

/// What the device holds after provisioning (SPEC K1, K2).
pub struct Provisioned {
    /// The token serial (upper-case hex).
    pub dsn: String,
    /// DIK2.
    pub dik2: Zeroizing<[u8; DIK_LEN]>,
    /// The diversification factor.
    pub factor: Zeroizing<Vec<u8>>,
    /// RKS_RCRT_PK, SubjectPublicKeyInfo DER.
    pub root_spki: Vec<u8>,
}

/// Where downloaded keys go (the token).
pub trait KeySink {
    /// Whether a key with this uid is already stored (then it is not stored again).
    fn holds(&mut self, uid: &[u8; 16]) -> Result<bool>;
    /// Stores the key (one transaction: stored, or nothing is).
    fn store(&mut self, key: &Tmk) -> Result<()>;
}

/// One key of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// CKA_LABEL.
    pub label: String,
    /// The server's uid, hex.
    pub uid: String,
    /// Whether it was stored now (false: the token already held it).
    pub stored: bool,
}

/// What one session did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The keys, in the order received.
    pub keys: Vec<Received>,
}

/// Sends one frame and returns the server's answer frame (bytes).
pub type Transport<'a> = dyn FnMut(&[u8]) -> Result<Vec<u8>> + 'a;

struct Session<'a, 't> {
    transport: &'a mut Transport<'t>,
    sid: SessionId,
    seq: u32,
}

impl Session<'_, '_> {
    /// Sends `body` as `kind` and returns the answer, checked to be `expect` (or an
    /// Error frame from the server, which becomes [`RksError::Refused`]).
    fn exchange(&mut self, kind: Kind, body: Vec<u8>, expect: Kind) -> Result<Frame> {
        let out = Frame::new(kind, self.sid, self.seq, body).encode();
        let answer = (self.transport)(&out)?;
        let f = Frame::decode(&answer)?;
        if f.kind == Kind::Error {
            return Err(RksError::Refused(
                String::from_utf8_lossy(&f.body).chars().take(300).collect(),
            ));
        }
        let first = kind == Kind::Hello;
        if !first && !bool::from(f.session.ct_eq(&self.sid)) {
            return Err(another_session(&f));
        }
        if f.kind != expect || f.seq != self.seq + 1 {
            return Err(RksError::BadMessage(format!(
                "out of order: expected {expect:?} #{}, got {:?} #{} (replayed or reordered)",
                self.seq + 1,
                f.kind,
                f.seq
            )));
        }
        self.seq += 2;
        Ok(f)
    }

    /// Reports a device-side failure to the server (best effort).
    fn report(&mut self, e: &RksError) {
        if self.sid != [0u8; 16] {
            let out = Frame::new(Kind::Error, self.sid, self.seq, e.to_string().into_bytes());
            let _ = (self.transport)(&out.encode());
        }
    }
}

/// Runs one download session to its end.
pub fn download(
    p: &Provisioned,
    transport: &mut Transport<'_>,
    sink: &mut dyn KeySink,
) -> Result<Outcome> {
    let mut s = Session {
        transport,
        sid: [0u8; 16],
        seq: 0,
    };
    match run(p, &mut s, sink) {
        Ok(o) => Ok(o),
        Err(e) => {
            if !matches!(e, RksError::Refused(_)) {
                s.report(&e);
            }
            Err(e)
        }
    }
}

fn run(p: &Provisioned, s: &mut Session<'_, '_>, sink: &mut dyn KeySink) -> Result<Outcome> {
    // S301–S302.
    let cert = s.exchange(Kind::Hello, p.dsn.as_bytes().to_vec(), Kind::ServerCert)?;
    s.sid = cert.session;
    // S303: the working key must be signed by the root this device was given.
    let mut fields = Fields::new(&cert.body);
    let working_spki = fields.field()?.to_vec();
    let sig = fields.field()?;
    fields.end()?;
    crypto::verify_working(&p.root_spki, &working_spki, sig)?;
    // S304–S305.
    let body = crypto::oaep_encrypt(&working_spki, &p.factor)?;
    let ch = s.exchange(Kind::Factor, body, Kind::Challenge)?;
    // S311–S314.
    if ch.body.len() != 2 * AT_LEN {
        return Err(RksError::BadMessage(format!(
            "the challenge has {} bytes, not {}",
            ch.body.len(),
            2 * AT_LEN
        )));
    }
    let plain = tdes_ecb_decrypt(&p.dik2, &ch.body)?;
    let tk2 = crypto::random(AT_LEN)?;
    let mut tk = Zeroizing::new([0u8; AT_LEN]);
    for (i, b) in tk.iter_mut().enumerate() {
        *b = plain[AT_LEN + i] ^ tk2[i];
    }
    let mut resp = Zeroizing::new(Vec::with_capacity(2 * AT_LEN + 32));
    resp.extend_from_slice(&plain[..AT_LEN]);
    resp.extend_from_slice(&tk2);
    resp.extend_from_slice(&crypto::sha256(&tk[..]));
    let body = crypto::oaep_encrypt(&working_spki, &resp)?;
    let key = crypto::tk_aead_key(&tk[..]);
    let mut out = Outcome::default();
    // S315–S322: keys until Done.
    let mut f = s.exchange_any(Kind::Response, body)?;
    loop {
        let plain = crypto::open(&key, &header_ad(f.kind, &s.sid, f.seq), &f.body)?;
        match f.kind {
            Kind::Done => {
                let n: [u8; 4] = plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| RksError::BadMessage("a Done message has 4 bytes".into()))?;
                let n = u32::from_be_bytes(n) as usize;
                if n != out.keys.len() {
                    return Err(RksError::BadMessage(format!(
                        "the server counts {n} keys delivered, the device {}",
                        out.keys.len()
                    )));
                }
                return Ok(out);
            }
            Kind::Key => {
                // S320–S321: stored (one transaction) before the acknowledgement.
                let tmk = Tmk::decode(&plain)?;
                let held = sink.holds(&tmk.uid)?;
                if !held {
                    sink.store(&tmk)?;
                }
                out.keys.push(Received {
                    label: tmk.label.clone(),
                    uid: hex::encode(tmk.uid),
                    stored: !held,
                });
                let mut ack = tmk.uid.to_vec();
                ack.extend_from_slice(ACK_TEXT);
                let ad = header_ad(Kind::Ack, &s.sid, s.seq);
                let body = crypto::seal(&key, &ad, &ack)?;
                f = s.exchange_any(Kind::Ack, body)?;
            }
            _ => unreachable!("exchange_any returns Key or Done"),
        }
    }
}

impl Session<'_, '_> {
    /// As [`Session::exchange`], expecting a Key or a Done.
    fn exchange_any(&mut self, kind: Kind, body: Vec<u8>) -> Result<Frame> {
        let out = Frame::new(kind, self.sid, self.seq, body).encode();
        let answer = (self.transport)(&out)?;
        let f = Frame::decode(&answer)?;
        if f.kind == Kind::Error {
            return Err(RksError::Refused(
                String::from_utf8_lossy(&f.body).chars().take(300).collect(),
            ));
        }
        if !bool::from(f.session.ct_eq(&self.sid)) {
            return Err(another_session(&f));
        }
        if !matches!(f.kind, Kind::Key | Kind::Done) || f.seq != self.seq + 1 {
            return Err(RksError::BadMessage(format!(
                "out of order: expected Key or Done #{}, got {:?} #{} (replayed or reordered)",
                self.seq + 1,
                f.kind,
                f.seq
            )));
        }
        self.seq += 2;
        Ok(f)
    }
}

/// An answer that names another session than this one: replayed from an earlier
/// session (or misrouted). Refused like any message out of order.
fn another_session(f: &Frame) -> RksError {
    RksError::BadMessage(format!(
        "out of order: {:?} #{} of another session (replayed)",
        f.kind, f.seq
    ))
}
