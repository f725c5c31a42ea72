//! The load record (exactly-once money): one per load on each side, keyed by
//! (token serial, sequence number), moving only forward through explicit states.
//!
//! ```text
//! token:  Requested ──permit verified──▶ Credited ──settlement──▶ Confirmed
//!             └────── abort (313/315) ──▶ Refunded
//! bank:   (none) ──request verified──▶ Debited ──receipt verified──▶ Confirmed
//!                                         └──── abort / bad receipt ──▶ Refunded
//!         (none) ──── abort before any debit ─────────────────────────▶ Cancelled
//! ```
//!
//! The two invariants that make a crash at any point harmless: the token aborts
//! only from `Requested` (so never after crediting), and the bank refunds only
//! from `Debited` on an abort or a failed receipt (so never after confirming). A
//! terminal state never moves again; a repeated message gets the same answer.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where a load is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoadState {
    /// Token: the request is signed and may be at the bank.
    Requested,
    /// Bank: the account is debited, the permit is out.
    Debited,
    /// Token: the wallet is credited, the receipt is out.
    Credited,
    /// Both: the bank verified the receipt; done.
    Confirmed,
    /// Both: the load did not happen; any debit was given back.
    Refunded,
    /// Bank: aborted before any debit (the sequence number is burnt).
    Cancelled,
}

impl LoadState {
    /// Lower-case name (logs, SQLite, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadState::Requested => "requested",
            LoadState::Debited => "debited",
            LoadState::Credited => "credited",
            LoadState::Confirmed => "confirmed",
            LoadState::Refunded => "refunded",
            LoadState::Cancelled => "cancelled",
        }
    }

    /// Parses [`LoadState::as_str`].
    pub fn parse(s: &str) -> Result<LoadState, Error> {
        Ok(match s {
            "requested" => LoadState::Requested,
            "debited" => LoadState::Debited,
            "credited" => LoadState::Credited,
            "confirmed" => LoadState::Confirmed,
            "refunded" => LoadState::Refunded,
            "cancelled" => LoadState::Cancelled,
            _ => return Err(Error::State(format!("unknown load state {s:?}"))),
        })
    }

    /// Whether nothing moves it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            LoadState::Confirmed | LoadState::Refunded | LoadState::Cancelled
        )
    }

    /// The one check of every move: only the arrows of the module diagram.
    pub fn advance(self, to: LoadState) -> Result<LoadState, Error> {
        use LoadState::*;
        let ok = matches!(
            (self, to),
            (Requested, Credited)
                | (Requested, Refunded)
                | (Credited, Confirmed)
                | (Debited, Confirmed)
                | (Debited, Refunded)
        );
        if ok {
            Ok(to)
        } else {
            Err(Error::State(format!(
                "a load cannot go from {} to {}",
                self.as_str(),
                to.as_str()
            )))
        }
    }
}

impl std::fmt::Display for LoadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::LoadState::*;
    use super::*;

    #[test]
    fn only_the_diagram_arrows() {
        let all = [Requested, Debited, Credited, Confirmed, Refunded, Cancelled];
        let allowed = [
            (Requested, Credited),
            (Requested, Refunded),
            (Credited, Confirmed),
            (Debited, Confirmed),
            (Debited, Refunded),
        ];
        for a in all {
            for b in all {
                assert_eq!(
                    a.advance(b).is_ok(),
                    allowed.contains(&(a, b)),
                    "{a} -> {b}"
                );
            }
            assert_eq!(LoadState::parse(a.as_str()).unwrap(), a);
        }
        // Money moves once: a credited load can never be refunded, a confirmed one
        // never refunded, a refunded one never confirmed.
        assert!(Credited.advance(Refunded).is_err());
        assert!(Confirmed.advance(Refunded).is_err());
        assert!(Refunded.advance(Confirmed).is_err());
        assert!(Refunded.is_final() && Confirmed.is_final() && Cancelled.is_final());
    }
}
