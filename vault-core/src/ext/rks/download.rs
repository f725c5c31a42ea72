//! The device's download (patent steps S301–S324) run inside the token: DIK2, the
//! factor, AT, TK2 and TK are opened and used here and erased when the session
//! ends; the caller only carries frames (its [`Transport`]: HTTP in the CLI). No
//! public call returns DIK2 or the factor.

use vtoken_rks::device::{download, KeySink, Outcome, Provisioned, Transport};
use vtoken_rks::tmk::Tmk;
use vtoken_rks::RksError;
use zeroize::Zeroizing;

use super::{DeviceRecord, DEVICE_KEY, DEVICE_LABEL};
use crate::error::{Error, Result};
use crate::session::SessionRef;
use crate::token::{Token, UserType};

/// The token's object store as the download's sink (S320: each key stored in one
/// transaction before it is acknowledged; a uid already held is not stored again).
struct TokenSink<'a> {
    token: &'a Token,
    sid: &'a SessionRef,
}

impl KeySink for TokenSink<'_> {
    fn holds(&mut self, uid: &[u8; 16]) -> vtoken_rks::Result<bool> {
        self.token
            .rks_holds(uid)
            .map_err(|e| RksError::Local(format!("token: {e}")))
    }

    fn store(&mut self, key: &Tmk) -> vtoken_rks::Result<()> {
        self.token
            .rks_store_key(self.sid, key)
            .map(|_| ())
            .map_err(|e| RksError::Local(format!("token: {e}")))
    }
}

impl Token {
    /// Device (K4): one download session with the remote key server behind
    /// `transport` (which sends a frame and returns the answer frame), the user
    /// logged in on `sid`. The outer error is the token's (not logged in, not
    /// provisioned, a damaged record) before any frame is sent; the inner one is
    /// the protocol's, as both sides report it.
    pub fn rks_download(
        &self,
        sid: &SessionRef,
        transport: &mut Transport<'_>,
    ) -> Result<std::result::Result<Outcome, RksError>> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        let r: DeviceRecord = self.rks_open(DEVICE_KEY, DEVICE_LABEL)?.ok_or_else(|| {
            Error::ArgumentsBad(
                "this token is not provisioned for remote key download \
                 (run `vtoken rks provision` at the key-loading station, then \
                 `vtoken rks inject` here)"
                    .into(),
            )
        })?;
        let p = Provisioned {
            dsn: self.serial().to_ascii_uppercase(),
            dik2: Zeroizing::new(r.dik2),
            factor: Zeroizing::new(r.factor.clone()),
            root_spki: r.root_spki.clone(),
        };
        drop(r);
        let mut sink = TokenSink { token: self, sid };
        Ok(download(&p, transport, &mut sink))
    }
}
