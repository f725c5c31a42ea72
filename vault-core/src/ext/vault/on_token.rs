//! Input on the token itself (SPEC V6, ¶0065, ¶0081): besides the client, the
//! token's own input unit takes an entry — and the PIN — so the client never holds
//! the plaintext. vtoken's input unit is the trusted prompt agent
//! ([`crate::prompt::Prompt::ask`]): the terminal the tty agent opens, a pinentry,
//! or the command agent's program; the calling process only gets the new entry's
//! id and summary back.
//!
//! Order of the steps: the vault must be usable; the PIN is asked (secret) when
//! the user is not logged in, and verified like any login (counted, locks); then
//! each field of the entry's kind in turn — title, URL where the kind has one,
//! the kind's preset fields (secrets without echo), notes; then the token shows the
//! whole entry as received (V5) and stores it only on confirmation. A refusal or a
//! timeout at any step ends the input and stores nothing
//! ([`Error::FunctionRejected`]); an agent that cannot take typed input (`deny`
//! refuses; an embedding program's agent without `ask`) is that agent's error.

use super::*;
use crate::prompt::{Ask, AskReply, Prompt};

/// The fields asked for an entry of `kind`: (name, label, secret, required).
/// `url` is the entry's URL, not a field.
fn questions(kind: Kind) -> Vec<(&'static str, String, bool, bool)> {
    let mut q = vec![("title", "Title".to_string(), false, true)];
    if matches!(kind, Kind::Website | Kind::OnlineBanking) {
        q.push(("url", "URL".into(), false, false));
    }
    let preset = kind.preset();
    if preset.is_empty() {
        // A custom entry typed on the token: the usual login fields.
        q.push(("username", "User name".into(), false, false));
        q.push(("password", "Password".into(), true, false));
    }
    for &(name, secret, required) in preset {
        q.push((name, label_of(name), secret, required));
    }
    if !preset.iter().any(|(n, _, _)| *n == "notes") {
        q.push(("notes", "Notes".into(), false, false));
    }
    q
}

fn label_of(field: &str) -> String {
    let mut s = field.replace('_', " ");
    if let Some(c) = s.get_mut(0..1) {
        c.make_ascii_uppercase();
    }
    s
}

/// Asks `q` through `agent`: the text, or why nothing was taken.
fn ask(token: &Token, agent: &dyn Prompt, q: &Ask) -> Result<Zeroizing<String>> {
    match agent.ask(q) {
        Ok(AskReply::Text(t)) => Ok(t),
        Ok(a) => {
            warn!(serial = %token.serial(), agent = agent.name(), field = %q.label, answer = ?a,
                  "input on the token not given");
            Err(Error::FunctionRejected)
        }
        Err(e) => {
            warn!(serial = %token.serial(), agent = agent.name(), error = %e,
                  "the prompt agent cannot take input on the token");
            Err(e)
        }
    }
}

impl Token {
    /// Takes a new entry of `kind` — and the user PIN, when not logged in — on the
    /// token's trusted prompt (V6), shows it as received and stores it on
    /// confirmation (V5). Returns the id and the summary (no secret): all the
    /// caller ever learns.
    pub fn vault_add_on_token(&self, kind: Kind) -> Result<(u64, EntrySummary)> {
        self.vault_require()?;
        let agent = self.prompt_agent();
        let heading = format!("New vault entry ({kind}), typed on the token");
        if self.master_keys().is_none() {
            let pin = ask(
                self,
                &*agent,
                &Ask {
                    title: "Log in to the token".into(),
                    description: format!("{heading}: the user PIN first."),
                    label: "User PIN".into(),
                    secret: true,
                },
            )?;
            self.login(UserType::User, pin.as_bytes())?;
        }
        self.vault_require_user()?;
        let mut e = Entry::new(kind, "");
        // What has been typed so far, secrets as "(typed)": the context of each
        // question, never a secret.
        let mut so_far = String::new();
        for (name, label, secret, required) in questions(kind) {
            let description = if so_far.is_empty() {
                format!("{heading}.\nEmpty leaves an optional field out.")
            } else {
                format!("{heading}.\nSo far:{so_far}")
            };
            let value = ask(
                self,
                &*agent,
                &Ask {
                    title: heading.clone(),
                    description,
                    label: if required {
                        label
                    } else {
                        format!("{label} (optional)")
                    },
                    secret,
                },
            )?;
            if value.is_empty() {
                if required {
                    return Err(Error::ArgumentsBad(format!(
                        "the {} of a {kind} entry is required: nothing was stored",
                        name.replace('_', " ")
                    )));
                }
                continue;
            }
            match name {
                "title" => e.title = value.to_string(),
                "url" => e.url = value.to_string(),
                _ => e.set(name, &value, secret),
            }
            let shown = if secret { "(typed)" } else { value.as_str() };
            so_far.push_str(&format!("\n  {name}: {shown}"));
        }
        let id = self.vault_add(&e)?;
        info!(serial = %self.serial(), id, agent = agent.name(), "vault entry typed on the token");
        Ok((id, e.summary()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_asks_title_and_its_required_fields() {
        for kind in [
            Kind::Website,
            Kind::BankCard,
            Kind::OnlineBanking,
            Kind::Email,
            Kind::Custom,
        ] {
            let q = questions(kind);
            assert_eq!(q[0].0, "title");
            for &(name, secret, required) in kind.preset() {
                let got = q.iter().find(|x| x.0 == name).expect("preset field asked");
                assert_eq!((got.2, got.3), (secret, required), "{kind} {name}");
            }
            assert!(q.iter().any(|x| x.2), "{kind}: a secret is asked");
        }
        assert_eq!(label_of("card_pin"), "Card pin");
    }
}
