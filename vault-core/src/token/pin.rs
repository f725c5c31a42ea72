//! The PIN state machine (SPEC T2): who is logged in, PIN checks, changes and resets.
//!
//! PIN checks persist the failure counter *before* the check's outcome is known
//! (count, check, then reset on success), so a process killed mid-check never gains
//! a free try. The committed count alone decides whether a PIN is checked at all
//! ([`crate::store::Store::pin_attempt`]): processes trying at once can never check
//! more PINs than the limit, and a missing counter row reads as locked.

use super::*;

/// Who is logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserType {
    /// The security officer (`CKU_SO`).
    So,
    /// The normal user (`CKU_USER`).
    User,
}

impl UserType {
    /// From `CKU_*`.
    pub fn from_ck(u: CK_USER_TYPE) -> Result<UserType> {
        match u {
            CKU_SO => Ok(UserType::So),
            CKU_USER | CKU_CONTEXT_SPECIFIC => Ok(UserType::User),
            _ => Err(Error::UserTypeInvalid),
        }
    }
    pub(super) fn counter(self) -> &'static str {
        match self {
            UserType::So => crate::store::PIN_COUNTERS[1],
            UserType::User => crate::store::PIN_COUNTERS[0],
        }
    }
}

/// PIN status flags of one PIN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PinStatus {
    /// Consecutive failures so far.
    pub failures: u32,
    /// Failures allowed before the PIN locks.
    pub max_tries: u32,
    /// `*_COUNT_LOW`: at least one failure since the last success.
    pub count_low: bool,
    /// `*_FINAL_TRY`: one more failure locks.
    pub final_try: bool,
    /// `*_LOCKED`.
    pub locked: bool,
    /// `*_TO_BE_CHANGED`.
    pub to_be_changed: bool,
}

impl PinStatus {
    /// The token flags for this PIN, given its `[COUNT_LOW, FINAL_TRY, LOCKED,
    /// TO_BE_CHANGED]` flag values.
    pub(super) fn flags(&self, names: [CK_FLAGS; 4]) -> CK_FLAGS {
        [
            self.count_low,
            self.final_try,
            self.locked,
            self.to_be_changed,
        ]
        .iter()
        .zip(names)
        .filter(|(on, _)| **on)
        .fold(0, |acc, (_, f)| acc | f)
    }
}

/// Checks a PIN against the policy.
pub fn check_pin_len(policy: &PinPolicy, pin: &[u8]) -> Result<()> {
    if pin.len() < policy.min_len || pin.len() > policy.max_len {
        return Err(Error::PinLenRange {
            min: policy.min_len,
            max: policy.max_len,
        });
    }
    Ok(())
}

impl Token {
    pub(super) fn pin_status(store: &mut Store, who: UserType) -> Result<PinStatus> {
        let h = store.header()?.clone();
        let max = match who {
            UserType::User => h.pin_policy.user_max_tries,
            UserType::So => h.pin_policy.so_max_tries,
        };
        // A missing row is a locked PIN (see `PIN_COUNTERS`).
        let failures = store.pin_counter(who.counter())?.unwrap_or(max);
        Ok(PinStatus {
            failures,
            max_tries: max,
            count_low: failures > 0 && failures < max,
            final_try: max > 1 && failures.checked_add(1) == Some(max),
            locked: failures >= max,
            to_be_changed: match who {
                UserType::User => h.user_pin_to_be_changed,
                UserType::So => h.so_pin_to_be_changed,
            },
        })
    }

    /// Verifies `pin` for `who`. The try is counted and committed first, and that
    /// committed count alone decides whether the PIN is checked: a counter already
    /// at the limit (or a missing counter row) is `PinLocked` without a check, so
    /// processes racing each other check at most the limit between two successes.
    /// The counter is reset only on success.
    ///
    /// A PIN whose length the token's policy can never accept is a wrong PIN like
    /// any other: it uses a try (and sets the count-low flag), but is not run
    /// through the KDF. PKCS#11 has one answer for a wrong PIN (`CKR_PIN_INCORRECT`),
    /// and a client that keeps sending a short PIN must see the PIN lock as it would
    /// with any other wrong one.
    pub(crate) fn verify_pin(&self, who: UserType, pin: &[u8]) -> Result<Key32> {
        let mut st = self.store();
        let h = st.header()?.clone();
        let wrapped = match who {
            UserType::So => h.so.clone(),
            UserType::User => h.user.clone().ok_or(Error::UserPinNotInitialized)?,
        };
        let max = match who {
            UserType::User => h.pin_policy.user_max_tries,
            UserType::So => h.pin_policy.so_max_tries,
        };
        let name = who.counter();
        let failures = match st.pin_attempt(name, max)? {
            PinAttempt::Check(n) => n,
            PinAttempt::Locked => {
                warn!(serial = %self.serial, ?who, "login refused: PIN locked");
                return Err(Error::PinLocked);
            }
        };
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::pin_check_pause();
        let role = if who == UserType::So { "so" } else { "user" };
        let right = if pin.len() < h.pin_policy.min_len || pin.len() > h.pin_policy.max_len {
            None
        } else {
            wrapped.unwrap(pin, &wrap_ad(&self.serial, role))?
        };
        match right {
            Some(master) => {
                st.set_counter(name, 0)?;
                info!(serial = %self.serial, ?who, "PIN verified");
                Ok(master)
            }
            None => {
                warn!(serial = %self.serial, ?who, failures, max, "wrong PIN");
                if failures >= max {
                    // This failure locked the PIN: a state transition (SPEC C6).
                    if who == UserType::User {
                        self.log_state(TokenState::PinLocked);
                    }
                    Err(Error::PinLocked)
                } else {
                    Err(Error::PinIncorrect)
                }
            }
        }
    }

    /// `C_Login`. Context-specific logins re-verify the user PIN without changing state.
    pub fn login(&self, who: UserType, pin: &[u8]) -> Result<()> {
        {
            let l = self.login.read().unwrap_or_else(|p| p.into_inner());
            match l.user {
                Some(u) if u == who => return Err(Error::UserAlreadyLoggedIn),
                Some(_) => return Err(Error::UserAnotherAlreadyLoggedIn),
                None => {}
            }
        }
        if who == UserType::So && self.has_read_only_session() {
            return Err(Error::SessionReadOnlyExists);
        }
        self.ensure_unblocked()?;
        let master = self.verify_pin(who, pin)?;
        let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
        l.user = Some(who);
        l.keys = Some(Arc::new(MasterKeys::new(master)));
        drop(l);
        self.fresh.bump();
        if who == UserType::User {
            self.log_state(TokenState::PinVerified);
            self.migrate_public_keys();
        }
        Ok(())
    }

    /// Re-verifies the logged-in user's PIN (`CKU_CONTEXT_SPECIFIC`).
    pub fn verify_user_pin(&self, pin: &[u8]) -> Result<()> {
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        self.verify_pin(UserType::User, pin).map(|_| ())
    }

    /// `C_Logout`: forgets the master key and private objects; ends operations.
    pub fn logout(&self) -> Result<()> {
        let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
        if l.user.is_none() {
            return Err(Error::UserNotLoggedIn);
        }
        let was_user = l.user == Some(UserType::User);
        l.user = None;
        l.keys = None;
        drop(l);
        self.fresh.bump();
        self.forget_private();
        if was_user && !self.blocked_fresh().unwrap_or(false) {
            self.log_state(TokenState::Initial);
        }
        Ok(())
    }

    /// Drops private objects from the cache (after logout).
    pub(crate) fn forget_private(&self) {
        let mut c = self.cache_write();
        c.objects
            .retain(|_, (_, o)| !o.attrs.bool_or(CKA_PRIVATE, true));
        drop(c);
        self.sessions_forget_private();
    }

    /// `C_InitPIN`: the SO sets (or resets and unlocks) the user PIN.
    pub fn init_pin(&self, pin: &[u8]) -> Result<()> {
        let keys = {
            let l = self.login.read().unwrap_or_else(|p| p.into_inner());
            if l.user != Some(UserType::So) {
                return Err(Error::UserNotLoggedIn);
            }
            l.keys.clone().ok_or(Error::UserNotLoggedIn)?
        };
        let mut st = self.store();
        let mut h = st.header()?.clone();
        check_pin_len(&h.pin_policy, pin)?;
        // The SO replacing an existing user PIN: the user must choose a new one
        // (`CKF_USER_PIN_TO_BE_CHANGED` until `C_SetPIN`). A first PIN is the user's.
        h.user_pin_to_be_changed = h.user.is_some();
        h.user = Some(WrappedKey::wrap(
            &keys.master,
            pin,
            self.kdf,
            &wrap_ad(&self.serial, "user"),
        )?);
        st.write_header(&h)?;
        st.set_counter(UserType::User.counter(), 0)?;
        drop(st);
        info!(serial = %self.serial, "user PIN initialized by the SO");
        self.log_state(TokenState::of(
            self.blocked_fresh().unwrap_or(false),
            self.logged_in(),
        ));
        // The token's device identity is made with its first user PIN (SPEC V7).
        for hook in self.hooks.lifecycle.iter() {
            hook.user_pin_set(self)?;
        }
        Ok(())
    }

    /// `C_SetPIN`: changes the PIN of whoever is logged in, or the user PIN when no
    /// one is. `old` is verified (and counted) like a login.
    pub fn set_pin(&self, old: &[u8], new: &[u8]) -> Result<()> {
        let who = self.logged_in().unwrap_or(UserType::User);
        self.change_pin(who, old, new)
    }

    /// Changes the PIN of `who` after verifying `old`.
    pub fn change_pin(&self, who: UserType, old: &[u8], new: &[u8]) -> Result<()> {
        {
            let mut st = self.store();
            let policy = st.header()?.pin_policy;
            check_pin_len(&policy, new)?;
        }
        let master = self.verify_pin(who, old)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        match who {
            UserType::User => {
                h.user = Some(WrappedKey::wrap(
                    &master,
                    new,
                    self.kdf,
                    &wrap_ad(&self.serial, "user"),
                )?);
                h.user_pin_to_be_changed = false;
            }
            UserType::So => {
                h.so = WrappedKey::wrap(&master, new, self.kdf, &wrap_ad(&self.serial, "so"))?;
                h.so_pin_to_be_changed = false;
            }
        }
        st.write_header(&h)?;
        info!(serial = %self.serial, ?who, "PIN changed");
        Ok(())
    }

    /// The SO unlocks the user PIN and sets a new one (`vtoken pin unlock`), without
    /// a prior login: verifies `so_pin` like a login, then re-wraps.
    pub fn unlock_user(&self, so_pin: &[u8], new_user_pin: &[u8]) -> Result<()> {
        {
            let mut st = self.store();
            let policy = st.header()?.pin_policy;
            check_pin_len(&policy, new_user_pin)?;
        }
        let master = self.verify_pin(UserType::So, so_pin)?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        h.user = Some(WrappedKey::wrap(
            &master,
            new_user_pin,
            self.kdf,
            &wrap_ad(&self.serial, "user"),
        )?);
        // The SO chose this PIN: the user must change it (`CKF_USER_PIN_TO_BE_CHANGED`).
        h.user_pin_to_be_changed = true;
        st.write_header(&h)?;
        st.set_counter(UserType::User.counter(), 0)?;
        info!(serial = %self.serial, "user PIN reset and unlocked by the SO");
        drop(st);
        self.log_state(TokenState::of(
            self.blocked_fresh().unwrap_or(false),
            self.logged_in(),
        ));
        Ok(())
    }

    /// Whether the SO PIN is locked (such a token can only be deleted).
    pub fn so_locked(&self) -> Result<bool> {
        let mut st = self.store();
        Ok(Token::pin_status(&mut st, UserType::So)?.locked)
    }
}
