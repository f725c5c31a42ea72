//! The bank over HTTP(S): postcard messages in, postcard messages or a JSON
//! refusal out (paths in `vtoken_wallet::api`).

use vtoken_wallet::Envelope;

/// What a call to the bank gave.
pub(super) enum Reply {
    /// A signed message.
    Message(Envelope),
    /// The bank refused (status, its message): nothing was debited for it.
    Refused(u16, String),
}

/// No answer (connection refused, timeout, reset): the bank may or may not have
/// acted, so the pending record stays for the next contact.
pub(super) struct NoAnswer(pub String);

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build()
}

/// POSTs `env` to `base` + `path`.
pub(super) fn post(base: &str, path: &str, env: &Envelope) -> Result<Reply, NoAnswer> {
    post_bytes(base, path, &env.to_bytes())
}

/// POSTs `body` (a message's wire bytes, or them encrypted) to `base` + `path`.
pub(super) fn post_bytes(base: &str, path: &str, body: &[u8]) -> Result<Reply, NoAnswer> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    match agent()
        .post(&url)
        .set("content-type", "application/octet-stream")
        .send_bytes(body)
    {
        Ok(r) => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut r.into_reader().take_limit(), &mut body)
                .map_err(|e| NoAnswer(format!("{url}: {e}")))?;
            Envelope::from_bytes(&body)
                .map(Reply::Message)
                .map_err(|e| NoAnswer(format!("{url}: {e}")))
        }
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            Ok(Reply::Refused(code, msg))
        }
        Err(e) => Err(NoAnswer(format!("{url}: {e}"))),
    }
}

/// GETs the bank certificate (PEM) and returns it as DER.
pub(super) fn bank_cert(base: &str) -> Result<Vec<u8>, NoAnswer> {
    let url = format!(
        "{}{}",
        base.trim_end_matches('/'),
        vtoken_wallet::api::BANK_PEM
    );
    let pem = agent()
        .get(&url)
        .call()
        .map_err(|e| NoAnswer(format!("{url}: {e}")))?
        .into_string()
        .map_err(|e| NoAnswer(format!("{url}: {e}")))?;
    vtoken_wallet::keys::cert_der_of(pem.as_bytes()).map_err(|e| NoAnswer(format!("{url}: {e}")))
}

trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(1 << 20)
    }
}

impl<R: std::io::Read> TakeLimit for R {}
