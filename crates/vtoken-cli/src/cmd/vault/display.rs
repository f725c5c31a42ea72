//! The secret display policy of vault writes (SPEC V5, ¶0087–0088): `vtoken vault
//! policy`, and the fingerprints the client shows beside the token's prompt.

use serde_json::json;
use vault_core::token::Token;
use vault_core::vault::{fingerprint, Entry, SecretDisplay};

use super::helpers::cerr;
use crate::args::SoPin;
use crate::context::Ctx;
use crate::output::{outln, print_json};
use crate::{error::Result, pin};

/// Runs `vtoken vault policy [--show-secrets plain|fingerprint]`.
pub(super) fn policy(ctx: &Ctx, json: bool, show: Option<SecretDisplay>, so: &SoPin) -> Result<()> {
    let open = ctx.open()?;
    if let Some(d) = show {
        let so_pin = pin::so(so)?;
        open.token
            .vault_set_secret_display(so_pin.as_bytes(), d)
            .map_err(|e| {
                crate::context::pin_error(&open.token, vault_core::token::UserType::So, e)
            })?;
    }
    let d = open.token.vault_secret_display().map_err(cerr)?;
    if json {
        print_json(&json!({ "show_secrets": d.as_str() }))
    } else {
        outln!("show-secrets: {}", d.as_str());
        Ok(())
    }
}

/// Under the `fingerprint` policy: asks the token for this write's random and
/// prints, on standard error, the fingerprint of each secret this client is about
/// to send, for the user to compare with the token's prompt. Nothing otherwise.
pub(super) fn announce(token: &Token, e: &Entry) -> Result<()> {
    if token.vault_secret_display().map_err(cerr)? != SecretDisplay::Fingerprint {
        return Ok(());
    }
    let nonce = token.vault_write_nonce().map_err(cerr)?;
    let secrets: Vec<_> = e.fields.iter().filter(|f| f.secret).collect();
    if secrets.is_empty() {
        return Ok(());
    }
    eprintln!("The token's prompt must show these fingerprints of the secrets sent:");
    for f in secrets {
        eprintln!("  {}: {}", f.name, fingerprint(&nonce, &f.name, &f.value));
    }
    Ok(())
}
