//! The gate as the kernel sees it: the token's key-use hook
//! ([`crate::token::hooks::KeyUseHook`]). Its verdict is the gate record read for
//! one file version ([`GateRecord`]), which a session keeps with a reused key.

use std::any::Any;
use std::sync::{Arc, LazyLock};

use super::{locked_in, GateRecord, GateRuntime, OpClass};
use crate::attr::Attributes;
use crate::error::{Error, GateError, Result};
use crate::store::Header;
use crate::token::hooks::{KeyUseHook, KeyVerdict};
use crate::token::Token;

/// The gate's key-use hook; it owns the gate's in-process state.
#[derive(Default)]
pub(crate) struct GateHook {
    pub(super) rt: GateRuntime,
}

impl KeyVerdict for GateRecord {
    fn blocks(&self) -> bool {
        self.locked
    }

    fn lets_through(&self, class: Option<OpClass>, key: &Attributes) -> bool {
        GateRecord::lets_through(self, class, key)
    }
}

impl KeyUseHook for GateHook {
    fn fresh(&self, t: &Token) -> Result<(i64, Arc<dyn KeyVerdict>)> {
        let (dv, record) = t.gate_fresh()?;
        Ok((dv, record))
    }

    fn blocked_in(&self, h: &Header) -> bool {
        locked_in(h)
    }

    fn check(
        &self,
        t: &Token,
        class: OpClass,
        key: &Attributes,
        verdict: &dyn KeyVerdict,
        verb: &str,
    ) -> Result<()> {
        if verdict.blocks() {
            return Err(Error::Gate(GateError::Locked));
        }
        // Not locked: lets through exactly when the policy does not cover the use.
        if verdict.lets_through(Some(class), key) {
            return Ok(());
        }
        let what = format!("{verb} (key \"{}\")", key.label());
        t.gate_check(class, Some(key), &what)
    }

    fn check_request(
        &self,
        t: &Token,
        class: OpClass,
        key: Option<&Attributes>,
        what: &str,
    ) -> Result<()> {
        t.gate_check(class, key, what)
    }

    fn check_value_read(&self, t: &Token, attrs: &Attributes) -> Result<()> {
        t.gate_check_value_read(attrs)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Token {
    /// The gate's in-process state: the registered hook's (every token opens with
    /// the gate registered, `crate::extensions`; the fallback only keeps this total).
    pub(super) fn gate_rt(&self) -> &GateRuntime {
        static NONE: LazyLock<GateHook> = LazyLock::new(GateHook::default);
        match self.hooks.key_use_any().downcast_ref::<GateHook>() {
            Some(g) => &g.rt,
            None => &NONE.rt,
        }
    }
}
