//! Message framing (SPEC K4). Every message of the protocol, both ways, is one frame
//! (integers big-endian):
//!
//! ```text
//! offset size  field
//!  0      4    magic "VRKS"
//!  4      1    version (1)
//!  5      1    kind (Kind)
//!  6     16    session id (zero in Hello; chosen by the server in ServerCert)
//! 22      4    seq: the message's number in the session (Hello 0, ServerCert 1, ...)
//! 26      4    body length
//! 30      n    body
//! ```
//! A frame is exactly `30 + n` bytes: a frame cut short or padded, an unknown version
//! or kind, or a body over [`MAX_BODY`] is refused before anything reads the body.
//! The first 26 bytes (everything but the length) are the authenticated data of the
//! AES-GCM messages, so a key message cannot be replayed into another session or at
//! another position.

use crate::{Result, RksError};

/// Frame magic.
pub const MAGIC: &[u8; 4] = b"VRKS";
/// The one version this build speaks.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 30;
/// Largest body accepted.
pub const MAX_BODY: usize = 16 * 1024;

/// What a frame carries (patent step numbers in the names' docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// S301 device → RKS: DSN (ASCII) and the download request.
    Hello = 1,
    /// S302 RKS → device: working public key (SPKI DER) and the root's signature.
    ServerCert = 2,
    /// S305 device → RKS: RSA-OAEP-SHA256(working key, factor).
    Factor = 3,
    /// S310 RKS → device: TDES-ECB(DIK2, AT ‖ TK1).
    Challenge = 4,
    /// S314 device → RKS: RSA-OAEP-SHA256(working key, AT ‖ TK2 ‖ SHA-256(TK)).
    Response = 5,
    /// S319 RKS → device: one TMK, AES-256-GCM under TK.
    Key = 6,
    /// S321 device → RKS: the device stored the key (AES-256-GCM under TK).
    Ack = 7,
    /// S322 RKS → device: the queue is empty (AES-256-GCM under TK).
    Done = 8,
    /// Either side: a refusal (UTF-8 text, not authenticated; ends the session).
    Error = 0x7f,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::ServerCert,
            3 => Kind::Factor,
            4 => Kind::Challenge,
            5 => Kind::Response,
            6 => Kind::Key,
            7 => Kind::Ack,
            8 => Kind::Done,
            0x7f => Kind::Error,
            _ => return None,
        })
    }
}

/// A session id: 16 random bytes chosen by the server.
pub type SessionId = [u8; 16];

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: Kind,
    /// The session (zero in Hello).
    pub session: SessionId,
    /// Its number in the session.
    pub seq: u32,
    /// The body.
    pub body: Vec<u8>,
}

impl Frame {
    /// A frame.
    pub fn new(kind: Kind, session: SessionId, seq: u32, body: Vec<u8>) -> Frame {
        Frame {
            kind,
            session,
            seq,
            body,
        }
    }

    /// The 26 header bytes before the length: the AEAD's associated data.
    pub fn header_ad(&self) -> [u8; 26] {
        header_ad(self.kind, &self.session, self.seq)
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.extend_from_slice(&self.header_ad());
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses exactly one frame: `bytes` must be the whole frame, nothing more.
    pub fn decode(bytes: &[u8]) -> Result<Frame> {
        let bad = |m: String| Err(RksError::BadMessage(m));
        if bytes.len() < HEADER_LEN {
            return bad(format!(
                "message cut short: {} bytes, a frame has at least {HEADER_LEN}",
                bytes.len()
            ));
        }
        if &bytes[..4] != MAGIC {
            return bad("not an RKS message (bad magic)".into());
        }
        if bytes[4] != VERSION {
            return bad(format!(
                "protocol version {} is not supported (this side speaks {VERSION})",
                bytes[4]
            ));
        }
        let Some(kind) = Kind::from_u8(bytes[5]) else {
            return bad(format!("unknown message kind {}", bytes[5]));
        };
        let session: SessionId = bytes[6..22].try_into().expect("16 bytes");
        let seq = u32::from_be_bytes(bytes[22..26].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(bytes[26..30].try_into().expect("4 bytes")) as usize;
        if len > MAX_BODY {
            return bad(format!(
                "body of {len} bytes is over the {MAX_BODY}-byte limit"
            ));
        }
        let have = bytes.len() - HEADER_LEN;
        if have < len {
            return bad(format!(
                "message cut short: the body has {have} of its {len} bytes"
            ));
        }
        if have > len {
            return bad(format!(
                "message padded: {} bytes after the {len}-byte body",
                have - len
            ));
        }
        Ok(Frame {
            kind,
            session,
            seq,
            body: bytes[HEADER_LEN..].to_vec(),
        })
    }
}

/// The associated data of a frame with these fields.
pub fn header_ad(kind: Kind, session: &SessionId, seq: u32) -> [u8; 26] {
    let mut h = [0u8; 26];
    h[..4].copy_from_slice(MAGIC);
    h[4] = VERSION;
    h[5] = kind as u8;
    h[6..22].copy_from_slice(session);
    h[22..26].copy_from_slice(&seq.to_be_bytes());
    h
}

/// A reader of length-prefixed fields inside a body (u16 lengths).
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Reads `body`.
    pub fn new(body: &'a [u8]) -> Fields<'a> {
        Fields { rest: body }
    }

    /// `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(RksError::BadMessage("body cut short".into()));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.raw(1)?[0])
    }

    /// A u16-length-prefixed field.
    pub fn field(&mut self) -> Result<&'a [u8]> {
        let n = u16::from_be_bytes(self.raw(2)?.try_into().expect("2 bytes")) as usize;
        self.raw(n)
    }

    /// Fails unless every byte was read.
    pub fn end(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(RksError::BadMessage(format!(
                "{} unexpected bytes after the body's fields",
                self.rest.len()
            )))
        }
    }
}

/// Appends a u16-length-prefixed field.
pub fn put_field(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&v[..v.len().min(u16::MAX as usize)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_length_checks() {
        let f = Frame::new(Kind::Factor, [7; 16], 2, vec![1, 2, 3]);
        let b = f.encode();
        assert_eq!(Frame::decode(&b).unwrap(), f);
        let e = Frame::decode(&b[..b.len() - 1]).unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
        let mut padded = b.clone();
        padded.push(0);
        let e = Frame::decode(&padded).unwrap_err();
        assert!(e.to_string().contains("padded"), "{e}");
        let mut v2 = b.clone();
        v2[4] = 2;
        assert!(Frame::decode(&v2)
            .unwrap_err()
            .to_string()
            .contains("version"));
        let mut k = b;
        k[5] = 99;
        assert!(Frame::decode(&k).unwrap_err().to_string().contains("kind"));
        assert!(Frame::decode(b"VRKS").is_err());
    }
}
