//! The load (patent steps 301–318, SPEC W3–W6) on the token side.
//!
//! ```text
//! 301      wallet_check_bank(cert the server presents)   == the one the token holds
//! 302-305  the user PIN (the caller's login)
//! 306-308  wallet_load_request: the trusted prompt shows the load-initialise command;
//!          refused / timed out → nothing stored, nothing sent
//! 309      ...then: seq taken, the request signed, the load recorded `Requested`
//! 313-314  wallet_load_permit: permit verified against the bank certificate and the
//!          pending request → balance credited, `Credited`, receipt signed
//! 313/315  wallet_load_abort: `Requested` → `Refunded` (never credited after this),
//!          abort signed for the bank to refund
//! 316-318  wallet_load_settled: the bank's signed settlement closes the record
//! ```
//!
//! One pending load at a time: a new load first settles the old one (the receipt
//! or the abort is re-sent until the bank's settlement arrives), so after a crash
//! of either side the next contact finishes it, and the money moves exactly once.

use rand_core::RngCore;
use vtoken_wallet::msg::{
    unix_now, Envelope, Kind, LoadAbort, LoadPermit, LoadReceipt, LoadRequest, Outcome, Settlement,
    ALG_ECDSA_P256_SHA256,
};
use vtoken_wallet::{keys, Amount, LoadState};

use super::{no_wallet, wallet_err, PendingLoad};
use crate::error::{Error, Result};
use crate::prompt::Request;
use crate::token::Token;

impl Token {
    /// Step 301: the certificate the server presents must be the bank certificate
    /// the wallet holds.
    pub fn wallet_check_bank(&self, presented_der: &[u8]) -> Result<()> {
        use subtle::ConstantTimeEq;
        self.wallet_read(|s| {
            if presented_der.len() == s.bank_cert.len()
                && bool::from(presented_der.ct_eq(&s.bank_cert))
            {
                Ok(())
            } else {
                Err(wallet_err(
                    "the server's certificate is not the bank certificate this wallet trusts",
                ))
            }
        })
    }

    /// Steps 306–309: shows the load through the token's prompt agent and, once the
    /// user confirms, signs the load request and records it as `Requested`.
    /// Refused while another load is unsettled. A refusal or timeout of the prompt
    /// is `FunctionRejected` and changes nothing.
    pub fn wallet_load_request(&self, account: &str, amount: Amount) -> Result<Envelope> {
        if amount.is_zero() {
            return Err(Error::ArgumentsBad(
                "the amount must be more than 0.00".into(),
            ));
        }
        let (currency, balance, seq) = self.wallet_read(|s| {
            if s.cert.is_none() {
                return Err(wallet_err(
                    "the wallet certificate is not installed (`vtoken wallet install`)",
                ));
            }
            if let Some(p) = &s.pending {
                return Err(wallet_err(format!(
                    "load {} is not settled yet ({}): settle it first",
                    p.req.seq, p.state
                )));
            }
            Ok((s.currency.clone(), s.balance, s.next_seq))
        })?;
        // 306-308: the load-initialise command, shown by the agent the token's
        // policy names (not the caller's choice).
        self.confirm(&Request {
            title: "Load the e-wallet?".into(),
            description: format!(
                "Load {amount} {currency} from bank account {account} into the wallet of \
                 token {} (balance {balance} {currency}, online transaction {seq}).",
                self.serial()
            ),
        })?;
        let serial = self.serial().to_string();
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            if s.pending.is_some() || s.next_seq != seq {
                return Err(wallet_err("another load started meanwhile"));
            }
            let mut random = [0u8; 16];
            rand_core::OsRng.fill_bytes(&mut random);
            let req = LoadRequest {
                token_serial: serial.clone(),
                account: account.to_string(),
                amount,
                currency: s.currency.clone(),
                wallet_balance: s.balance,
                seq: s.next_seq,
                key_version: s.key_version,
                alg: ALG_ECDSA_P256_SHA256.into(),
                random,
                time: unix_now(),
            };
            let key = s.signing_key()?;
            let env = Envelope::seal_with(Kind::LoadRequest, &serial, &req, &key)
                .map_err(|e| wallet_err(e.to_string()))?;
            // The sequence number is used up now, whatever happens next.
            s.next_seq += 1;
            s.log("load", req.seq, amount, "requested", account);
            s.pending = Some(PendingLoad {
                req,
                request: env.clone(),
                state: LoadState::Requested,
                answer: None,
            });
            Ok((env, true))
        })
    }

    /// Steps 313–314: verifies the bank's permit (signature and check code with the
    /// bank certificate; token, account, amount, sequence number and random of the
    /// pending request), credits the wallet and returns the signed execution
    /// receipt. Any mismatch is an error and changes nothing (the caller then
    /// aborts, step 315). A permit for a load that is not `Requested` (a replay) is
    /// refused.
    pub fn wallet_load_permit(&self, permit: &Envelope) -> Result<Envelope> {
        let serial = self.serial().to_string();
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            let bank =
                keys::verifying_key_of_cert(&s.bank_cert).map_err(|e| wallet_err(e.to_string()))?;
            let p: LoadPermit = permit
                .open(Kind::LoadPermit, &bank)
                .map_err(|e| wallet_err(format!("bank permit: {e}")))?;
            let pending = s
                .pending
                .as_ref()
                .ok_or_else(|| wallet_err("a permit, but no load is pending (replayed?)"))?;
            let r = &pending.req;
            if pending.state != LoadState::Requested
                || permit.user != serial
                || p.token_serial != serial
                || p.seq != r.seq
                || p.random != r.random
                || p.amount != r.amount
                || p.account != r.account
            {
                return Err(wallet_err(
                    "the bank permit does not match the pending load (replayed or altered)",
                ));
            }
            let (seq, random, amount, account) = (r.seq, r.random, r.amount, r.account.clone());
            let balance = s
                .balance
                .checked_add(amount)
                .ok_or_else(|| wallet_err("the wallet balance would overflow"))?;
            let state = LoadState::Requested
                .advance(LoadState::Credited)
                .map_err(|e| wallet_err(e.to_string()))?;
            let receipt = LoadReceipt {
                token_serial: serial.clone(),
                seq,
                random,
                amount,
                wallet_balance: balance,
            };
            let key = s.signing_key()?;
            let env = Envelope::seal_with(Kind::LoadReceipt, &serial, &receipt, &key)
                .map_err(|e| wallet_err(e.to_string()))?;
            s.balance = balance;
            let pending = s.pending.as_mut().expect("checked above");
            pending.state = state;
            pending.answer = Some(env.clone());
            s.log("load", seq, amount, "credited", &account);
            Ok((env, true))
        })
    }

    /// Steps 313/315: gives up the pending `Requested` load (it will never be
    /// credited) and returns the signed abort for the bank to refund. For a load
    /// already aborted, the same abort again.
    pub fn wallet_load_abort(&self, reason: &str) -> Result<Envelope> {
        let serial = self.serial().to_string();
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            let p = s
                .pending
                .as_ref()
                .ok_or_else(|| wallet_err("no load is pending"))?;
            match p.state {
                LoadState::Refunded => {
                    let a = p
                        .answer
                        .clone()
                        .ok_or_else(|| wallet_err("abort missing"))?;
                    return Ok((a, false));
                }
                LoadState::Requested => {}
                st => {
                    return Err(wallet_err(format!(
                        "load {} is {st}: it cannot be aborted",
                        p.req.seq
                    )))
                }
            }
            let abort = LoadAbort {
                token_serial: serial.clone(),
                seq: p.req.seq,
                random: p.req.random,
                reason: reason.chars().take(200).collect(),
            };
            let (seq, amount, account) = (p.req.seq, p.req.amount, p.req.account.clone());
            let key = s.signing_key()?;
            let env = Envelope::seal_with(Kind::LoadAbort, &serial, &abort, &key)
                .map_err(|e| wallet_err(e.to_string()))?;
            let p = s.pending.as_mut().expect("checked above");
            p.state = LoadState::Requested
                .advance(LoadState::Refunded)
                .map_err(|e| wallet_err(e.to_string()))?;
            p.answer = Some(env.clone());
            s.log("load", seq, amount, "aborted", &account);
            Ok((env, true))
        })
    }

    /// What the pending load needs sent next: the request (`Requested`: the bank
    /// may or may not have it), the receipt (`Credited`) or the abort (`Refunded`).
    pub fn wallet_pending(&self) -> Result<Option<(LoadState, Envelope)>> {
        self.wallet_read(|s| {
            Ok(s.pending.as_ref().map(|p| match (&p.answer, p.state) {
                (Some(a), st) => (st, a.clone()),
                (None, st) => (st, p.request.clone()),
            }))
        })
    }

    /// Steps 316–318: the bank's signed settlement of the pending load closes it:
    /// `Credited` + confirmed → `Confirmed`; aborted + refunded or cancelled → the
    /// record stays refunded. Any other combination is refused and keeps the record
    /// (it cannot happen with an honest bank: it would mean money moved twice).
    pub fn wallet_load_settled(&self, settlement: &Envelope) -> Result<Outcome> {
        let serial = self.serial().to_string();
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            let bank =
                keys::verifying_key_of_cert(&s.bank_cert).map_err(|e| wallet_err(e.to_string()))?;
            let st: Settlement = settlement
                .open(Kind::Settlement, &bank)
                .map_err(|e| wallet_err(format!("bank settlement: {e}")))?;
            let p = s
                .pending
                .as_ref()
                .ok_or_else(|| wallet_err("a settlement, but no load is pending"))?;
            if st.token_serial != serial || st.seq != p.req.seq || st.random != p.req.random {
                return Err(wallet_err("the settlement is for another load (replayed?)"));
            }
            let (seq, amount, account) = (p.req.seq, p.req.amount, p.req.account.clone());
            let state = match (p.state, st.outcome) {
                (LoadState::Credited, Outcome::Confirmed) => LoadState::Confirmed,
                (LoadState::Refunded, Outcome::Refunded | Outcome::Cancelled) => {
                    LoadState::Refunded
                }
                (mine, theirs) => {
                    return Err(wallet_err(format!(
                        "load {seq}: the bank says {theirs:?} but the wallet is {mine}; \
                         contact the bank (nothing changed)"
                    )))
                }
            };
            s.pending = None;
            let word = match st.outcome {
                Outcome::Confirmed => "confirmed",
                Outcome::Refunded => "refunded",
                Outcome::Cancelled => "cancelled",
            };
            let _ = state;
            s.log("load", seq, amount, word, &account);
            Ok((st.outcome, true))
        })
    }
}
