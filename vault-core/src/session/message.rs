//! The PKCS#11 3.0 message-based functions (§5.13–5.16): one init fixes the key and
//! mechanism, then each message brings its own parameter. Encryption and
//! decryption take AES-GCM with `CK_GCM_MESSAGE_PARAMS` (IV, fixed IV bits, IV
//! generator, tag) and ChaCha20-Poly1305 with `CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS`
//! (nonce, tag; the caller's nonce); signatures and MACs take every signing mechanism without a
//! per-message parameter.
//!
//! A message's failure ends that message, not the context (PKCS#11 3.0 §5.13: only
//! `C_Message*Final` ends it). Encryption never reuses an IV within a context: a
//! caller-chosen IV (`CKG_NO_GENERATE`) seen before is refused, and generated IVs are
//! a counter or random bits after the fixed part.

use std::collections::HashSet;

use zeroize::Zeroizing;

use super::*;
use crate::mechanism::AeadParams;
use crate::token::session_state::{MessageCtx, Part};

/// The longest message collected by `C_*MessageNext` (GCM sees it whole).
const MAX_MESSAGE: usize = 64 << 20;

/// The four message-based operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
}

impl MessageKind {
    /// The AEAD context of an encryption (`true`) or a decryption.
    fn aead(encrypt: bool) -> MessageKind {
        if encrypt {
            MessageKind::Encrypt
        } else {
            MessageKind::Decrypt
        }
    }
}

fn slot(s: &mut Session, kind: MessageKind) -> &mut Option<Stage<MessageCtx>> {
    let m = s.messages.get_or_insert_with(Default::default);
    match kind {
        MessageKind::Encrypt => &mut m.encrypt,
        MessageKind::Decrypt => &mut m.decrypt,
        MessageKind::Sign => &mut m.sign,
        MessageKind::Verify => &mut m.verify,
    }
}

/// The context of `kind`, or `OperationNotInitialized`; `UserNotLoggedIn` while a
/// `CKA_ALWAYS_AUTHENTICATE` key waits for its context login.
fn ctx(s: &mut Session, kind: MessageKind) -> Result<&mut MessageCtx> {
    let st = slot(s, kind)
        .as_mut()
        .ok_or(Error::OperationNotInitialized)?;
    if st.needs_auth {
        return Err(Error::UserNotLoggedIn);
    }
    Ok(&mut st.op)
}

fn new_ctx(mech: &Mechanism, key: &Key) -> Result<Box<MessageCtx>> {
    Ok(Box::new(MessageCtx {
        mech: mech.clone(),
        key: key.clone(),
        used_ivs: HashSet::new(),
        counter: 0,
        part: None,
    }))
}

/// Checks the parameter of a message for context `c`; for an encryption, fills
/// in the IV the generator makes and refuses an IV this context used before.
fn prepare(c: &mut MessageCtx, p: &mut AeadParams, encrypt: bool) -> Result<()> {
    if !is_aead(c.mech.ty) {
        return Err(Error::MechanismInvalid(c.mech.ty));
    }
    let bad = |m: &str| Error::MechanismParamInvalid(m.into());
    if p.iv.is_empty() || p.iv.len() > 1024 || p.tag.len() * 8 < p.tag_bits as usize {
        return Err(bad("CK_GCM_MESSAGE_PARAMS: IV or tag buffer"));
    }
    if !encrypt {
        return Ok(());
    }
    let fixed = p.iv_fixed_bits as usize;
    if fixed > p.iv.len() * 8 || fixed & 7 != 0 {
        return Err(bad("ulIvFixedBits must be whole bytes within the IV"));
    }
    let tail = &mut p.iv[fixed / 8..];
    match p.generator {
        CKG_NO_GENERATE => {}
        CKG_GENERATE_COUNTER => {
            if tail.len() < 4 {
                return Err(bad("a counter IV needs at least 32 free bits"));
            }
            c.counter += 1;
            let n = tail.len().min(8);
            let bytes = c.counter.to_be_bytes();
            tail.fill(0);
            let at = tail.len() - n;
            tail[at..].copy_from_slice(&bytes[8 - n..]);
        }
        CKG_GENERATE | CKG_GENERATE_RANDOM => {
            if tail.len() < 8 {
                return Err(bad("a random IV needs at least 64 free bits"));
            }
            mechanism::random(tail)?;
        }
        _ => return Err(bad("unknown IV generator")),
    }
    if !c.used_ivs.insert(p.iv.clone()) {
        return Err(bad(
            "this IV was already used with this key in this context",
        ));
    }
    Ok(())
}

fn is_aead(ty: CK_MECHANISM_TYPE) -> bool {
    matches!(ty, CKM_AES_GCM | CKM_CHACHA20_POLY1305)
}

/// One whole AEAD message: ciphertext and tag (encryption) or plaintext.
fn seal_or_open(
    c: &MessageCtx,
    p: &mut AeadParams,
    aad: &[u8],
    data: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>> {
    if c.mech.ty == CKM_CHACHA20_POLY1305 {
        if p.tag_bits != 128 {
            return Err(Error::MechanismParamInvalid(
                "a ChaCha20-Poly1305 tag is 128 bits".into(),
            ));
        }
        return if encrypt {
            let mut out = mechanism::chacha_seal_or_open(&c.key, &p.iv, aad, data, true)?;
            let tag = out.split_off(out.len() - 16);
            p.tag[..16].copy_from_slice(&tag);
            Ok(out)
        } else {
            let mut input = Zeroizing::new(Vec::with_capacity(data.len() + 16));
            input.extend_from_slice(data);
            input.extend_from_slice(&p.tag[..16]);
            mechanism::chacha_seal_or_open(&c.key, &p.iv, aad, &input, false)
        };
    }
    let m = Mechanism {
        ty: CKM_AES_GCM,
        param: mechanism::MechParam::Gcm {
            iv: p.iv.clone(),
            aad: aad.to_vec(),
            tag_bits: p.tag_bits,
        },
    };
    let tag_len = (p.tag_bits / 8) as usize;
    if encrypt {
        let mut out = mechanism::encrypt_init(&m, &c.key)?.once(data)?;
        let tag = out.split_off(out.len() - tag_len);
        p.tag[..tag_len].copy_from_slice(&tag);
        Ok(out)
    } else {
        let mut input = Zeroizing::new(Vec::with_capacity(data.len() + tag_len));
        input.extend_from_slice(data);
        input.extend_from_slice(&p.tag[..tag_len]);
        mechanism::decrypt_init(&m, &c.key)?.once(&input)
    }
}

/// The length check of a message's output: `Needed` when the caller's buffer is
/// missing or short (nothing is consumed then).
fn room(out: OutLen, need: usize) -> Option<Output> {
    match out {
        OutLen::Buffer(n) if n >= need => None,
        _ => Some(Output::Needed(need)),
    }
}

impl Token {
    /// `C_MessageEncryptInit`, `C_MessageDecryptInit`, `C_MessageSignInit`,
    /// `C_MessageVerifyInit`: the key's usage, the gate and `CKA_ALWAYS_AUTHENTICATE`
    /// are checked as for the single-message functions.
    pub fn message_init(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        key: u64,
        kind: MessageKind,
    ) -> Result<()> {
        let (usage, flag, gate): (_, _, Option<(OpClass, &'static str)>) = match kind {
            MessageKind::Encrypt => (CKA_ENCRYPT, CKF_MESSAGE_ENCRYPT, None),
            MessageKind::Decrypt => (
                CKA_DECRYPT,
                CKF_MESSAGE_DECRYPT,
                Some((OpClass::Decrypt, "decrypt")),
            ),
            MessageKind::Sign => (CKA_SIGN, CKF_MESSAGE_SIGN, Some((OpClass::Sign, "sign"))),
            MessageKind::Verify => (CKA_VERIFY, CKF_MESSAGE_VERIFY, None),
        };
        let slot: fn(&mut Session) -> &mut Option<Stage<MessageCtx>> = match kind {
            MessageKind::Encrypt => |s| slot(s, MessageKind::Encrypt),
            MessageKind::Decrypt => |s| slot(s, MessageKind::Decrypt),
            MessageKind::Sign => |s| slot(s, MessageKind::Sign),
            MessageKind::Verify => |s| slot(s, MessageKind::Verify),
        };
        self.init_keyed(
            sid,
            mech,
            key,
            InitKind {
                usage,
                flag,
                gate,
                also: None,
                slot,
                make: new_ctx,
            },
        )
    }

    /// `C_MessageEncryptFinal` and the other three: ends the context.
    pub fn message_final(&self, sid: &SessionRef, kind: MessageKind) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        slot(&mut s, kind)
            .take()
            .map(drop)
            .ok_or(Error::OperationNotInitialized)
    }

    /// `C_EncryptMessage` / `C_DecryptMessage`: one whole message. On encryption
    /// `p` gets the tag (and a generated IV).
    pub fn aead_message(
        &self,
        sid: &SessionRef,
        encrypt: bool,
        p: &mut AeadParams,
        aad: &[u8],
        data: &[u8],
        out: OutLen,
    ) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let c = ctx(&mut s, MessageKind::aead(encrypt))?;
        if c.part.is_some() {
            return Err(Error::OperationActive);
        }
        // GCM's output is as long as its input (the tag travels in the parameter).
        if let Some(o) = room(out, data.len()) {
            return Ok(o);
        }
        prepare(c, p, encrypt)?;
        seal_or_open(c, p, aad, data, encrypt).map(Output::Bytes)
    }

    /// `C_EncryptMessageBegin` / `C_DecryptMessageBegin`.
    pub fn aead_message_begin(
        &self,
        sid: &SessionRef,
        encrypt: bool,
        p: &AeadParams,
        aad: &[u8],
    ) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let c = ctx(&mut s, MessageKind::aead(encrypt))?;
        if c.part.is_some() {
            return Err(Error::OperationActive);
        }
        if !is_aead(c.mech.ty) {
            return Err(Error::MechanismInvalid(c.mech.ty));
        }
        c.part = Some(Part::Aead {
            params: p.clone(),
            aad: aad.to_vec(),
            data: Zeroizing::new(Vec::new()),
        });
        Ok(())
    }

    /// `C_EncryptMessageNext` / `C_DecryptMessageNext`: parts are collected; the
    /// part flagged `CKF_END_OF_MESSAGE` gives the whole output and (encryption)
    /// the tag and IV in `p`. Earlier parts give no output. A length query never
    /// takes the part in.
    pub fn aead_message_next(
        &self,
        sid: &SessionRef,
        encrypt: bool,
        p: &mut AeadParams,
        data: &[u8],
        end: bool,
        out: OutLen,
    ) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let c = ctx(&mut s, MessageKind::aead(encrypt))?;
        let Some(Part::Aead { data: so_far, .. }) = c.part.as_mut() else {
            return Err(Error::OperationNotInitialized);
        };
        if !end {
            if out == OutLen::Query {
                return Ok(Output::Needed(0));
            }
            if so_far.len() + data.len() > MAX_MESSAGE {
                c.part = None;
                return Err(Error::DataLenRange);
            }
            so_far.extend_from_slice(data);
            return Ok(Output::Bytes(Vec::new()));
        }
        if let Some(o) = room(out, so_far.len() + data.len()) {
            return Ok(o);
        }
        let Some(Part::Aead {
            params,
            aad,
            data: mut all,
        }) = c.part.take()
        else {
            return Err(Error::OperationNotInitialized);
        };
        all.extend_from_slice(data);
        // The caller's parameter at the last part carries the tag to check (and
        // the buffers to fill); the IV and generator are the ones it began with.
        let mut q = AeadParams {
            tag: std::mem::take(&mut p.tag),
            ..params
        };
        let r =
            prepare(c, &mut q, encrypt).and_then(|()| seal_or_open(c, &mut q, &aad, &all, encrypt));
        p.tag = q.tag;
        if r.is_ok() && encrypt {
            p.iv = q.iv;
        }
        r.map(Output::Bytes)
    }

    /// `C_SignMessage`: one whole message.
    pub fn sign_message(&self, sid: &SessionRef, data: &[u8], out: OutLen) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let c = ctx(&mut s, MessageKind::Sign)?;
        if c.part.is_some() {
            return Err(Error::OperationActive);
        }
        let mut op = mechanism::sign_init(&c.mech, &c.key)?;
        if let Some(o) = room(out, op.sig_len()) {
            return Ok(o);
        }
        op.update(data)?;
        op.finish().map(Output::Bytes)
    }

    /// `C_VerifyMessage`: one whole message.
    pub fn verify_message(&self, sid: &SessionRef, data: &[u8], sig: &[u8]) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let c = ctx(&mut s, MessageKind::Verify)?;
        if c.part.is_some() {
            return Err(Error::OperationActive);
        }
        let mut op = mechanism::verify_init(&c.mech, &c.key)?;
        op.update(data)?;
        op.finish(sig)
    }

    /// `C_SignMessageBegin` / `C_VerifyMessageBegin`.
    pub fn signature_message_begin(&self, sid: &SessionRef, sign: bool) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let kind = if sign {
            MessageKind::Sign
        } else {
            MessageKind::Verify
        };
        let c = ctx(&mut s, kind)?;
        if c.part.is_some() {
            return Err(Error::OperationActive);
        }
        c.part = Some(if sign {
            Part::Sign(mechanism::sign_init(&c.mech, &c.key)?)
        } else {
            Part::Verify(mechanism::verify_init(&c.mech, &c.key)?)
        });
        Ok(())
    }

    /// `C_SignMessageNext`: `out` `None` feeds a part; `Some` also finishes (a
    /// short buffer keeps the message going).
    pub fn sign_message_next(
        &self,
        sid: &SessionRef,
        data: &[u8],
        out: Option<OutLen>,
    ) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let c = ctx(&mut s, MessageKind::Sign)?;
        let Some(Part::Sign(op)) = c.part.as_mut() else {
            return Err(Error::OperationNotInitialized);
        };
        if let Err(e) = op.update(data) {
            c.part = None;
            return Err(e);
        }
        let Some(out) = out else {
            return Ok(Output::Bytes(Vec::new()));
        };
        if let Some(o) = room(out, op.sig_len()) {
            return Ok(o);
        }
        let r = op.finish();
        c.part = None;
        r.map(Output::Bytes)
    }

    /// `C_VerifyMessageNext`: `sig` `None` feeds a part; `Some` also checks.
    pub fn verify_message_next(
        &self,
        sid: &SessionRef,
        data: &[u8],
        sig: Option<&[u8]>,
    ) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let c = ctx(&mut s, MessageKind::Verify)?;
        let Some(Part::Verify(op)) = c.part.as_mut() else {
            return Err(Error::OperationNotInitialized);
        };
        let r = op.update(data).and_then(|()| match sig {
            Some(sig) => op.finish(sig),
            None => Ok(()),
        });
        if r.is_err() || sig.is_some() {
            c.part = None;
        }
        r
    }
}
