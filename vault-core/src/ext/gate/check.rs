//! The check itself (SPEC C2–C5): a picture through the prompt agent, or a pass a
//! captcha-aware caller earned with [`Token::gate_challenge`] and [`Token::gate_answer`];
//! the chances and the lock.

use super::*;
use crate::error::{GateError, GateFailure};

/// A picture handed out: its chance is already used.
pub(super) struct Issued {
    id: u64,
    class: OpClass,
    answer: Zeroizing<String>,
    png: Vec<u8>,
    /// Chances used, this picture included.
    used: u32,
    policy: GatePolicy,
    at: Instant,
}

impl Issued {
    /// Whether `reply` is the answer and arrived in time (both always evaluated;
    /// the comparison is constant-time).
    fn accepts(&self, reply: &str) -> (bool, bool) {
        let norm: Zeroizing<String> = Zeroizing::new(
            reply
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let right: bool = norm.as_bytes().ct_eq(self.answer.as_bytes()).into();
        let in_time = self.at.elapsed() <= self.policy.limit();
        (right, in_time)
    }

    fn chances_left(&self) -> u32 {
        self.policy.chances.saturating_sub(self.used) + 1
    }
}

pub(super) struct Pass {
    class: OpClass,
    until: Instant,
}

impl Token {
    // ------------------------------------------------------------------ the check

    /// The gate for one request: `Err(GateLocked)` when locked, `Ok` at once when
    /// the request is not gated, else a picture check — a pass earned through
    /// [`Token::gate_answer`], or the prompt agent (blocking). `what` describes the
    /// request to the user ("sign with key \"k1\"").
    pub fn gate_check(&self, class: OpClass, key: Option<&Attributes>, what: &str) -> Result<()> {
        self.gate_ensure_unlocked()?;
        if !self.gate_applies(class, key)? {
            return Ok(());
        }
        info!(serial = %self.serial(), class = class.as_str(), what, "high-privilege request: picture check");
        self.gate_run(class, what)
    }

    pub(super) fn gate_take_pass(&self, class: OpClass) -> bool {
        let mut passes = lock(&self.gate_rt().passes);
        let now = Instant::now();
        passes.retain(|p| p.until >= now);
        match passes.iter().position(|p| p.class == class) {
            Some(i) => {
                passes.remove(i);
                true
            }
            None => false,
        }
    }

    /// Hands out a picture: the chance is counted and committed first.
    pub(super) fn gate_issue(&self, class: OpClass) -> Result<Issued> {
        let mut st = self.store();
        let p = persisted(st.header()?)?;
        if p.locked {
            return Err(Error::Gate(GateError::Locked));
        }
        let policy = p.policy;
        let used = st.counter(COUNTER)?;
        if used >= policy.chances {
            // Chances used up without a recorded lock (a process died holding the
            // last picture): lock now.
            drop(st);
            return Err(self.gate_lock(None, None));
        }
        let used = st.increment_counter(COUNTER)?;
        drop(st);
        if used > policy.chances {
            return Err(self.gate_lock(None, None));
        }
        let answer = challenge::random_text(&policy.alphabet, policy.length as usize)?;
        let png = self.gate_picture(&answer)?;
        #[cfg(feature = "test-hooks")]
        if let Some(path) = std::env::var_os(TEST_ANSWER_FILE_ENV) {
            let _ = std::fs::write(path, answer.as_bytes());
        }
        let id = self.gate_rt().next_id.fetch_add(1, Ordering::Relaxed) + 1;
        info!(serial = %self.serial(), class = class.as_str(), used, chances = policy.chances, "picture challenge issued");
        Ok(Issued {
            id,
            class,
            answer,
            png,
            used,
            policy,
            at: Instant::now(),
        })
    }

    /// A right answer in time: the chances are back.
    pub(super) fn gate_passed(&self, iss: &Issued) -> Result<()> {
        let mut st = self.store();
        st.set_counter(COUNTER, 0)?;
        let locked = locked_in(st.header()?);
        drop(st);
        if locked {
            // Another process locked the token meanwhile.
            return Err(Error::Gate(GateError::Locked));
        }
        info!(serial = %self.serial(), class = iss.class.as_str(), "picture check passed");
        Ok(())
    }

    /// A picture that failed (`reason`): locks when it was the last chance.
    pub(super) fn gate_failed(
        &self,
        iss: &Issued,
        reason: GateFailure,
        agent: Option<&dyn Prompt>,
    ) -> Error {
        warn!(serial = %self.serial(), class = iss.class.as_str(), reason = reason.as_str(), used = iss.used, chances = iss.policy.chances, "picture check failed");
        if iss.used >= iss.policy.chances {
            return self.gate_lock(agent, Some(reason));
        }
        let left = iss.policy.chances - iss.used;
        Error::Gate(GateError::Rejected { reason, left })
    }

    /// Locks the token (persisted), logs out and warns the user; `last` is why the
    /// last chance failed, when a picture failed (the warning says whether the answer
    /// was wrong or came too late, so the user knows what happened to it).
    pub(super) fn gate_lock(&self, agent: Option<&dyn Prompt>, last: Option<GateFailure>) -> Error {
        let res = (|| -> Result<bool> {
            let mut st = self.store();
            let mut p = persisted(st.header()?)?;
            if p.locked {
                return Ok(false);
            }
            p.locked = true;
            p.locked_at = now();
            save(&mut st, &p)?;
            Ok(true)
        })();
        let locked_now = matches!(res, Ok(true));
        match res {
            Ok(true) => {
                let why = last.map(GateFailure::last_chance).unwrap_or_default();
                warn!(serial = %self.serial(), state = "locked", "{why}{COMPROMISED}");
                self.log_state(super::GateState::Locked);
                if let Some(agent) = agent {
                    let _ = agent.confirm(&crate::prompt::Request {
                        title: "WARNING: token locked".into(),
                        description: format!("{why}{COMPROMISED}"),
                    });
                }
            }
            Ok(false) => {}
            Err(e) => warn!(serial = %self.serial(), error = %e, "could not record the gate lock"),
        }
        self.set_blocked_seen(true);
        *lock(&self.gate_rt().pending) = None;
        lock(&self.gate_rt().passes).clear();
        let _ = self.logout();
        match (locked_now, last) {
            // This request's failure locked the token: say what became of it.
            (true, Some(last)) => Error::Gate(GateError::LockedNow { last }),
            _ => Error::Gate(GateError::Locked),
        }
    }

    /// The picture check through the prompt agent (or a pass).
    pub(super) fn gate_run(&self, class: OpClass, what: &str) -> Result<()> {
        if self.gate_take_pass(class) {
            info!(serial = %self.serial(), class = class.as_str(), "picture check: one-time pass used");
            return Ok(());
        }
        let _one_at_a_time = lock(&self.gate_rt().run);
        if self.gate_take_pass(class) {
            return Ok(());
        }
        let agent: Arc<dyn Prompt> = self.prompt_agent();
        let mut note = String::new();
        loop {
            let iss = self.gate_issue(class)?;
            let left = iss.chances_left();
            let description = format!(
                "{note}Type the characters shown in the picture to {what}.\n\
                 {left} chance{} left (a wrong answer, a refresh, a refusal or no answer \
                 within {} s uses one; then the token locks).",
                if left == 1 { "" } else { "s" },
                iss.policy.lifetime_ms.div_ceil(1000),
            );
            let reply = agent.captcha(&Captcha {
                title: format!("Picture check: {what}"),
                description,
                png: &iss.png,
                lifetime: iss.policy.lifetime(),
            });
            let reason = match reply {
                Ok(CaptchaReply::Answer(a)) => {
                    let (right, in_time) = iss.accepts(&a);
                    drop(a);
                    if right && in_time {
                        return self.gate_passed(&iss);
                    }
                    if right {
                        GateFailure::Late
                    } else {
                        GateFailure::Wrong
                    }
                }
                Ok(CaptchaReply::Refresh) => GateFailure::Refreshed,
                Ok(CaptchaReply::TimedOut) => {
                    return Err(self.gate_failed(&iss, GateFailure::Unanswered, Some(&*agent)))
                }
                Ok(CaptchaReply::Refused) => {
                    return match self.gate_failed(&iss, GateFailure::Refused, Some(&*agent)) {
                        Error::Gate(g) if g.is_locked() => Err(Error::Gate(g)),
                        _ => Err(Error::FunctionRejected),
                    };
                }
                Err(Error::FunctionNotSupported) => {
                    // Nothing was shown: the chance is given back.
                    let st = self.store();
                    let n = st.counter(COUNTER)?;
                    st.set_counter(COUNTER, n.saturating_sub(1))?;
                    warn!(serial = %self.serial(), agent = agent.name(), "the prompt agent cannot show pictures: gated request rejected");
                    return Err(crate::error::NotConfirmed::NoAgent {
                        why: format!(
                            "the token's {} prompt agent cannot show a picture here (the log \
                             says why); no chance was used",
                            agent.name()
                        ),
                    }
                    .into());
                }
                Err(e) => {
                    warn!(serial = %self.serial(), agent = agent.name(), error = %e, "no picture could be shown");
                    return match self.gate_failed(&iss, GateFailure::AgentFailed, Some(&*agent)) {
                        Error::Gate(g) if g.is_locked() => Err(Error::Gate(g)),
                        _ => Err(Error::FunctionRejected),
                    };
                }
            };
            match self.gate_failed(&iss, reason, Some(&*agent)) {
                Error::Gate(g) if g.is_locked() => return Err(Error::Gate(g)),
                _ => note = format!("{}. ", capitalized(reason.as_str())),
            }
        }
    }

    // ------------------------------------------------------------------ captcha-aware API

    /// A picture challenge for the next gated request of `class` (user logged in).
    /// A picture still pending is replaced (a refresh). Its chance is used now and
    /// given back by a right answer in time ([`Token::gate_answer`]).
    pub fn gate_challenge(&self, class: OpClass) -> Result<GateChallenge> {
        self.gate_ensure_unlocked()?;
        if self.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        let old = lock(&self.gate_rt().pending).take();
        if let Some(old) = old {
            if let Error::Gate(g) = self.gate_failed(&old, GateFailure::Replaced, None) {
                if g.is_locked() {
                    return Err(Error::Gate(g));
                }
            }
        }
        let iss = self.gate_issue(class)?;
        let c = GateChallenge {
            id: iss.id,
            png: iss.png.clone(),
            lifetime: iss.policy.lifetime(),
            chances_left: iss.chances_left(),
        };
        *lock(&self.gate_rt().pending) = Some(iss);
        Ok(c)
    }

    /// The answer to challenge `id`. Right and in time: a one-time pass for the
    /// next gated request of the challenge's class in this process (valid for the
    /// challenge lifetime plus transport). Wrong or late: [`GateError::Rejected`],
    /// or [`GateError::LockedNow`] (with the reason) when that was the last chance.
    pub fn gate_answer(&self, id: u64, answer: &str) -> Result<()> {
        self.gate_ensure_unlocked()?;
        let iss = {
            let mut p = lock(&self.gate_rt().pending);
            match p.as_ref() {
                Some(i) if i.id == id => p.take().expect("pending"),
                _ => {
                    return Err(Error::ArgumentsBad(
                        "no such picture challenge (answered, replaced or never issued)".into(),
                    ))
                }
            }
        };
        let (right, in_time) = iss.accepts(answer);
        if right && in_time {
            self.gate_passed(&iss)?;
            lock(&self.gate_rt().passes).push(Pass {
                class: iss.class,
                until: Instant::now() + iss.policy.limit(),
            });
            return Ok(());
        }
        let reason = if right {
            GateFailure::Late
        } else {
            GateFailure::Wrong
        };
        Err(self.gate_failed(&iss, reason, None))
    }

    /// Gives up challenge `id` (the user quit): its chance stays used, and when it
    /// was the last one the token locks now ([`GateError::LockedNow`]).
    pub fn gate_cancel(&self, id: u64) -> Result<()> {
        let iss = {
            let mut p = lock(&self.gate_rt().pending);
            match p.as_ref() {
                Some(i) if i.id == id => p.take().expect("pending"),
                _ => return Ok(()),
            }
        };
        match self.gate_failed(&iss, GateFailure::Abandoned, None) {
            Error::Gate(g) if g.is_locked() => Err(Error::Gate(g)),
            _ => Ok(()),
        }
    }

    /// Whether a one-time pass for `class` is held (for callers deciding whether
    /// to ask for a picture).
    pub fn gate_has_pass(&self, class: OpClass) -> bool {
        let now = Instant::now();
        lock(&self.gate_rt().passes)
            .iter()
            .any(|p| p.class == class && p.until >= now)
    }
}
