//! Signatures and their verification (one-part and multi-part).

use super::*;

impl Token {
    /// `C_SignInit`.
    pub fn sign_init(&self, sid: &SessionRef, mech: &Mechanism, key: u64) -> Result<()> {
        self.init_keyed(
            sid,
            mech,
            key,
            InitKind {
                usage: CKA_SIGN,
                flag: CKF_SIGN,
                gate: Some((OpClass::Sign, "sign")),
                also: None,
                slot: |s| &mut s.sign,
                make: mechanism::sign_init,
            },
        )
    }

    /// `C_Sign` (single part).
    pub fn sign(&self, sid: &SessionRef, data: &[u8], out: OutLen) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        check_auth(&s.sign)?;
        if let Some(st) = s.sign.as_ref() {
            if st.multi {
                s.sign = None;
                return Err(Error::OperationActive);
            }
            if out == OutLen::Query && st.pending.is_none() {
                return Ok(Output::Needed(st.op.sig_len()));
            }
        }
        step(&mut s.sign, out, true, |st| {
            st.op.update(data)?;
            st.op.finish()
        })
    }

    /// `C_SignUpdate`.
    pub fn sign_update(&self, sid: &SessionRef, data: &[u8]) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        check_auth(&s.sign)?;
        let st = s.sign.as_mut().ok_or(Error::OperationNotInitialized)?;
        st.multi = true;
        if st.op.single_part() {
            // CKM_HASH_ML_DSA: C_Sign only; the operation ends here.
            s.sign = None;
            return Err(Error::OperationNotInitialized);
        }
        if let Err(e) = st.op.update(data) {
            s.sign = None;
            return Err(e);
        }
        Ok(())
    }

    /// `C_SignFinal`.
    pub fn sign_final(&self, sid: &SessionRef, out: OutLen) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        check_auth(&s.sign)?;
        if let Some(st) = s.sign.as_ref() {
            if out == OutLen::Query && st.pending.is_none() {
                return Ok(Output::Needed(st.op.sig_len()));
            }
        }
        step(&mut s.sign, out, true, |st| st.op.finish())
    }

    /// `C_VerifyInit`.
    pub fn verify_init(&self, sid: &SessionRef, mech: &Mechanism, key: u64) -> Result<()> {
        self.init_keyed(
            sid,
            mech,
            key,
            InitKind {
                usage: CKA_VERIFY,
                flag: CKF_VERIFY,
                gate: None,
                also: None,
                slot: |s| &mut s.verify,
                make: mechanism::verify_init,
            },
        )
    }

    /// `C_Verify` (single part). The operation ends whatever the outcome.
    pub fn verify(&self, sid: &SessionRef, data: &[u8], signature: &[u8]) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let mut st = take_verify(&mut s.verify, false)?;
        if st.multi {
            return Err(Error::OperationActive);
        }
        st.op.update(data)?;
        st.op.finish(signature)
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, sid: &SessionRef, data: &[u8]) -> Result<()> {
        self.verify_part(sid, data, false)
    }

    fn verify_part(&self, sid: &SessionRef, data: &[u8], with_sig: bool) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let st = s
            .verify
            .as_mut()
            .filter(|st| st.pending.is_some() == with_sig)
            .ok_or(Error::OperationNotInitialized)?;
        st.multi = true;
        if st.op.single_part() {
            s.verify = None;
            return Err(Error::OperationNotInitialized);
        }
        if let Err(e) = st.op.update(data) {
            s.verify = None;
            return Err(e);
        }
        Ok(())
    }

    /// `C_VerifyFinal`.
    pub fn verify_final(&self, sid: &SessionRef, signature: &[u8]) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let mut st = take_verify(&mut s.verify, false)?;
        st.op.finish(signature)
    }

    /// `C_VerifySignatureInit` (PKCS#11 3.2): a verification whose signature comes
    /// first. It shares the verify slot; the signature waits in the stage's
    /// `pending`, which a plain verification never uses, and marks the operation
    /// as this kind (`C_Verify*` and `C_VerifySignature*` do not mix).
    pub fn verify_signature_init(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        key: u64,
        signature: &[u8],
    ) -> Result<()> {
        self.verify_init(sid, mech, key)?;
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        if let Some(st) = s.verify.as_mut() {
            st.pending = Some(signature.to_vec());
        }
        Ok(())
    }

    /// `C_VerifySignature` (single part). The operation ends whatever the outcome.
    pub fn verify_signature(&self, sid: &SessionRef, data: &[u8]) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let mut st = take_verify(&mut s.verify, true)?;
        if st.multi {
            return Err(Error::OperationActive);
        }
        let sig = st.pending.take().unwrap_or_default();
        st.op.update(data)?;
        st.op.finish(&sig)
    }

    /// `C_VerifySignatureUpdate`.
    pub fn verify_signature_update(&self, sid: &SessionRef, data: &[u8]) -> Result<()> {
        self.verify_part(sid, data, true)
    }

    /// `C_VerifySignatureFinal`.
    pub fn verify_signature_final(&self, sid: &SessionRef) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let mut st = take_verify(&mut s.verify, true)?;
        let sig = st.pending.take().unwrap_or_default();
        st.op.finish(&sig)
    }
}

/// Ends the active verification for its last step if it is of the kind asked
/// for (`with_sig`: begun by `C_VerifySignatureInit`); another kind is left
/// running and the call is `CKR_OPERATION_NOT_INITIALIZED`.
fn take_verify(
    slot: &mut Option<crate::token::session_state::Stage<dyn crate::mechanism::VerifyOp>>,
    with_sig: bool,
) -> Result<crate::token::session_state::Stage<dyn crate::mechanism::VerifyOp>> {
    match slot {
        Some(st) if st.pending.is_some() == with_sig => {
            Ok(slot.take().expect("checked just above"))
        }
        _ => Err(Error::OperationNotInitialized),
    }
}
