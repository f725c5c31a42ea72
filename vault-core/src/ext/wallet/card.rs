//! Trusted cards, the token-to-card transfer (patent steps G–I, SPEC W5) and
//! payments from the wallet (W7) on the token side.
//!
//! The transfer is two files (the token, the card) made to move as one: the token
//! first debits its wallet and records the transfer as pending (one header write),
//! the card then applies it once by (token serial, transfer id) (one atomic file
//! replace), and the token closes it after seeing the card applied it — or, when the
//! card never did, gives the amount back. Until closed, a new transfer with that
//! card settles it first ([`Token::wallet_transfer_finish`]), so a crash anywhere
//! ends with both moved or both unchanged.

use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use vtoken_wallet::msg::{unix_now, utc_date_time, Envelope, Kind, Payer, Purchase};
use vtoken_wallet::Amount;

use super::{no_wallet, wallet_err};
use crate::error::{Error, Result};
use crate::prompt::Request;
use crate::token::Token;

/// A transfer the wallet debited and the card may not have applied yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingTransfer {
    pub id: u64,
    pub card: String,
    pub amount: Amount,
}

impl Token {
    /// Adds a card number to the cards the wallet trusts (step G).
    pub fn wallet_trust_card(&self, number: &str) -> Result<()> {
        if number.is_empty()
            || number.len() > 32
            || !number.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::ArgumentsBad(format!(
                "{number:?} is not a card number"
            )));
        }
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            if s.trusted_cards.iter().any(|c| c == number) {
                return Ok(((), false));
            }
            s.trusted_cards.push(number.to_string());
            Ok(((), true))
        })
    }

    /// Step G (token side): whether the wallet trusts card `number`.
    pub fn wallet_trusts_card(&self, number: &str) -> Result<bool> {
        self.wallet_read(|s| Ok(s.trusted_cards.iter().any(|c| c == number)))
    }

    /// Step I (token side, first half): debits the wallet for a transfer to card
    /// `card` (trusted, step G) and records it as pending; returns its id. Refused
    /// while another transfer is pending.
    pub fn wallet_transfer_begin(&self, card: &str, amount: Amount) -> Result<u64> {
        if amount.is_zero() {
            return Err(Error::ArgumentsBad(
                "the amount must be more than 0.00".into(),
            ));
        }
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            if !s.trusted_cards.iter().any(|c| c == card) {
                return Err(wallet_err(format!(
                    "card {card} is not on this wallet's list of trusted cards (`vtoken wallet trust-card`)"
                )));
            }
            if let Some(t) = &s.transfer {
                return Err(wallet_err(format!(
                    "transfer {} to card {} is not settled yet",
                    t.id, t.card
                )));
            }
            let left = s.balance.checked_sub(amount).ok_or_else(|| {
                wallet_err(format!("insufficient wallet balance ({} {})", s.balance, s.currency))
            })?;
            let id = s.next_transfer;
            s.next_transfer += 1;
            s.balance = left;
            s.transfer = Some(PendingTransfer {
                id,
                card: card.to_string(),
                amount,
            });
            s.log("transfer", id, amount, "debited", card);
            Ok((id, true))
        })
    }

    /// Step I (token side, second half): closes the pending transfer. `applied`:
    /// whether the card holds it (then done); otherwise the wallet gets the amount
    /// back. Returns the closed transfer, if one was pending.
    pub fn wallet_transfer_finish(&self, applied: bool) -> Result<Option<PendingTransfer>> {
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            let Some(t) = s.transfer.take() else {
                return Ok((None, false));
            };
            if applied {
                s.log("transfer", t.id, t.amount, "done", &t.card);
            } else {
                s.balance = s
                    .balance
                    .checked_add(t.amount)
                    .ok_or_else(|| wallet_err("the wallet balance would overflow"))?;
                s.log("transfer", t.id, t.amount, "returned", &t.card);
            }
            Ok((Some(t), true))
        })
    }

    /// The pending transfer, if any.
    pub fn wallet_transfer_pending(&self) -> Result<Option<PendingTransfer>> {
        self.wallet_read(|s| Ok(s.transfer.clone()))
    }

    /// W7 (the first consumption form): shows the payment through the prompt
    /// agent, debits the wallet and returns the purchase record signed by the
    /// wallet key (amount, merchant, sequence, date).
    pub fn wallet_pay(&self, merchant: &str, amount: Amount) -> Result<Envelope> {
        if amount.is_zero() {
            return Err(Error::ArgumentsBad(
                "the amount must be more than 0.00".into(),
            ));
        }
        if merchant.is_empty() || merchant.len() > 64 {
            return Err(Error::ArgumentsBad(
                "a merchant id has 1 to 64 characters".into(),
            ));
        }
        let (currency, balance) = self.wallet_read(|s| Ok((s.currency.clone(), s.balance)))?;
        if balance < amount {
            return Err(wallet_err(format!(
                "insufficient wallet balance ({balance} {currency})"
            )));
        }
        self.confirm(&Request {
            title: "Pay from the e-wallet?".into(),
            description: format!("Pay {amount} {currency} to merchant {merchant}."),
        })?;
        let serial = self.serial().to_string();
        self.wallet_update(|s| {
            let s = s.as_mut().ok_or_else(no_wallet)?;
            let left = s.balance.checked_sub(amount).ok_or_else(|| {
                wallet_err(format!(
                    "insufficient wallet balance ({} {})",
                    s.balance, s.currency
                ))
            })?;
            let (d, t) = utc_date_time(unix_now());
            let mut random = [0u8; 16];
            rand_core::OsRng.fill_bytes(&mut random);
            let p = Purchase {
                payer: Payer::Token(serial.clone()),
                merchant: merchant.to_string(),
                amount,
                currency: s.currency.clone(),
                seq: s.pay_seq + 1,
                date: format!("{d} {t}"),
                random,
            };
            let key = s.signing_key()?;
            let env = Envelope::seal_with(Kind::Purchase, &serial, &p, &key)
                .map_err(|e| wallet_err(e.to_string()))?;
            s.pay_seq += 1;
            s.balance = left;
            s.log("pay", p.seq, amount, "paid", merchant);
            Ok((env, true))
        })
    }
}
