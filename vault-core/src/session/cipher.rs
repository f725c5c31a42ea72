//! Encryption and decryption (one-part and multi-part).

use super::*;

impl Token {
    pub(super) fn cipher_init(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        key: u64,
        enc: bool,
    ) -> Result<()> {
        let kind = if enc {
            InitKind {
                usage: CKA_ENCRYPT,
                flag: CKF_ENCRYPT,
                gate: None,
                also: None,
                slot: |s| &mut s.encrypt,
                make: mechanism::encrypt_init,
            }
        } else {
            InitKind {
                usage: CKA_DECRYPT,
                flag: CKF_DECRYPT,
                gate: Some((OpClass::Decrypt, "decrypt")),
                // A raw or PKCS#1 v1.5 RSA decryption with a private key turns an
                // encoded digest into a signature: it is a signature too.
                also: matches!(mech.ty, CKM_RSA_X_509 | CKM_RSA_PKCS).then_some(OpClass::Sign),
                slot: |s| &mut s.decrypt,
                make: mechanism::decrypt_init,
            }
        };
        self.init_keyed(sid, mech, key, kind)
    }

    pub(super) fn cipher_slot(s: &mut Session, enc: bool) -> &mut Option<Stage<dyn CipherOp>> {
        if enc {
            &mut s.encrypt
        } else {
            &mut s.decrypt
        }
    }

    pub(super) fn cipher_once(
        &self,
        sid: &SessionRef,
        data: &[u8],
        out: OutLen,
        enc: bool,
    ) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        once_in(Token::cipher_slot(&mut s, enc), data, out, enc)
    }

    /// Single-part encryption or decryption into the caller's buffer. When the buffer
    /// holds the operation's bound, the mechanism writes straight into it (no
    /// allocation, one pass over the data); otherwise the length protocol of
    /// [`Token::encrypt`] applies. `out` must not overlap `data`.
    pub(super) fn cipher_once_into(
        &self,
        sid: &SessionRef,
        data: &[u8],
        out: Option<&mut [u8]>,
        enc: bool,
    ) -> Result<Filled> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let slot = Token::cipher_slot(&mut s, enc);
        let Some(buf) = out else {
            return once_in(slot, data, OutLen::Query, enc).map(filled_from);
        };
        check_auth(slot)?;
        if let Some(st) = slot.as_mut() {
            if !st.multi && st.pending.is_none() && buf.len() >= st.op.max_output_len(data.len()) {
                let r = st.op.once_into(data, buf);
                *slot = None;
                return r.map(Filled::Wrote);
            }
        }
        match once_in(slot, data, OutLen::Buffer(buf.len()), enc)? {
            Output::Needed(n) => Ok(Filled::Needed(n)),
            Output::Bytes(v) => {
                let v = zeroize::Zeroizing::new(v);
                buf[..v.len()].copy_from_slice(&v);
                Ok(Filled::Wrote(v.len()))
            }
        }
    }

    pub(super) fn cipher_update(
        &self,
        sid: &SessionRef,
        data: &[u8],
        out: OutLen,
        enc: bool,
    ) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let slot = Token::cipher_slot(&mut s, enc);
        check_auth(slot)?;
        if let Some(st) = slot.as_mut() {
            st.multi = true;
        }
        step(slot, out, false, |st| st.op.update(data))
    }

    pub(super) fn cipher_final(&self, sid: &SessionRef, out: OutLen, enc: bool) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let slot = Token::cipher_slot(&mut s, enc);
        check_auth(slot)?;
        step(slot, out, true, |st| st.op.finish())
    }

    /// `C_EncryptInit`.
    pub fn encrypt_init(&self, sid: &SessionRef, mech: &Mechanism, key: u64) -> Result<()> {
        self.cipher_init(sid, mech, key, true)
    }

    /// `C_Encrypt`.
    pub fn encrypt(&self, sid: &SessionRef, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_once(sid, data, out, true)
    }

    /// `C_Encrypt` into the caller's buffer (`None`: a length query); see
    /// [`Token::encrypt`] for the length protocol. `out` must not overlap `data`.
    pub fn encrypt_into(
        &self,
        sid: &SessionRef,
        data: &[u8],
        out: Option<&mut [u8]>,
    ) -> Result<Filled> {
        self.cipher_once_into(sid, data, out, true)
    }

    /// `C_EncryptUpdate`.
    pub fn encrypt_update(&self, sid: &SessionRef, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_update(sid, data, out, true)
    }

    /// `C_EncryptFinal`.
    pub fn encrypt_final(&self, sid: &SessionRef, out: OutLen) -> Result<Output> {
        self.cipher_final(sid, out, true)
    }

    /// `C_DecryptInit`.
    pub fn decrypt_init(&self, sid: &SessionRef, mech: &Mechanism, key: u64) -> Result<()> {
        self.cipher_init(sid, mech, key, false)
    }

    /// `C_Decrypt`.
    pub fn decrypt(&self, sid: &SessionRef, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_once(sid, data, out, false)
    }

    /// `C_Decrypt` into the caller's buffer (`None`: a length query); see
    /// [`Token::encrypt_into`].
    pub fn decrypt_into(
        &self,
        sid: &SessionRef,
        data: &[u8],
        out: Option<&mut [u8]>,
    ) -> Result<Filled> {
        self.cipher_once_into(sid, data, out, false)
    }

    /// `C_DecryptUpdate`.
    pub fn decrypt_update(&self, sid: &SessionRef, data: &[u8], out: OutLen) -> Result<Output> {
        self.cipher_update(sid, data, out, false)
    }

    /// `C_DecryptFinal`.
    pub fn decrypt_final(&self, sid: &SessionRef, out: OutLen) -> Result<Output> {
        self.cipher_final(sid, out, false)
    }
}

/// One-part step on a locked session's cipher slot.
fn once_in(
    slot: &mut Option<Stage<dyn CipherOp>>,
    data: &[u8],
    out: OutLen,
    enc: bool,
) -> Result<Output> {
    check_auth(slot)?;
    if let Some(st) = slot.as_ref() {
        if st.multi {
            *slot = None;
            return Err(Error::OperationActive);
        }
        // Encryption can answer a length query without doing the work.
        if enc && out == OutLen::Query && st.pending.is_none() {
            return Ok(Output::Needed(st.op.max_output_len(data.len())));
        }
    }
    step(slot, out, true, |st| st.op.once(data))
}

fn filled_from(o: Output) -> Filled {
    match o {
        Output::Needed(n) => Filled::Needed(n),
        // A query never carries bytes (see `deliver`).
        Output::Bytes(v) => Filled::Needed(v.len()),
    }
}
