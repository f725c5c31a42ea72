//! Digests.

use super::*;

impl Token {
    /// `C_DigestInit`.
    pub fn digest_init(&self, sid: &SessionRef, mech: &Mechanism) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        if s.digest.is_some() {
            return Err(Error::OperationActive);
        }
        s.digest = Some(Stage::new(mechanism::digest_init(mech)?));
        Ok(())
    }

    /// `C_Digest`.
    pub fn digest(&self, sid: &SessionRef, data: &[u8], out: OutLen) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        if let Some(st) = s.digest.as_ref() {
            if st.multi {
                s.digest = None;
                return Err(Error::OperationActive);
            }
            if st.pending.is_none() && out == OutLen::Query {
                return Ok(Output::Needed(st.op.len()));
            }
        }
        step(&mut s.digest, out, true, |st| {
            st.op.update(data);
            Ok(st.op.finish())
        })
    }

    /// `C_DigestUpdate`.
    pub fn digest_update(&self, sid: &SessionRef, data: &[u8]) -> Result<()> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        let st = s.digest.as_mut().ok_or(Error::OperationNotInitialized)?;
        st.multi = true;
        st.op.update(data);
        Ok(())
    }

    /// `C_DigestKey`: feeds a secret key's value into the digest. A failure ends the
    /// digest, as a failed `C_DigestUpdate` does.
    pub fn digest_key(&self, sid: &SessionRef, key: u64) -> Result<()> {
        let r = self.digest_key_value(key);
        match r {
            Ok(v) => self.digest_update(sid, &v),
            Err(e) => {
                // Without an active digest the answer is that, not the key's fault.
                let s = self.resolve(sid)?;
                let mut s = Token::lock_session(s);
                if s.digest.take().is_none() {
                    return Err(Error::OperationNotInitialized);
                }
                Err(e)
            }
        }
    }

    fn digest_key_value(&self, key: u64) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let o = self.object(key).map_err(|_| Error::KeyHandleInvalid)?;
        if o.attrs.class() != Some(CKO_SECRET_KEY) {
            return Err(Error::KeyHandleInvalid);
        }
        if o.attrs.bool_or(CKA_SENSITIVE, true) && !o.attrs.bool_or(CKA_EXTRACTABLE, false) {
            return Err(Error::KeyIndigestible);
        }
        let v = o
            .attrs
            .get(CKA_VALUE)
            .ok_or(Error::KeyIndigestible)?
            .to_vec();
        Ok(zeroize::Zeroizing::new(v))
    }

    /// `C_DigestFinal`.
    pub fn digest_final(&self, sid: &SessionRef, out: OutLen) -> Result<Output> {
        let s = self.resolve(sid)?;
        let mut s = Token::lock_session(s);
        if let Some(st) = s.digest.as_ref() {
            if st.pending.is_none() && out == OutLen::Query {
                return Ok(Output::Needed(st.op.len()));
            }
        }
        step(&mut s.digest, out, true, |st| Ok(st.op.finish()))
    }
}
