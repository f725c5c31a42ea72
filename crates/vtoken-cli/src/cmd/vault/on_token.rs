//! `vtoken vault add --on-token` (SPEC V6, ¶0065, ¶0081): the PIN and the entry are
//! typed on the token's trusted prompt; this program passes only the kind and prints
//! the id and title the token returns.

use serde_json::json;
use vault_core::token::UserType;
use vault_core::vault::Kind;

use super::helpers::cerr;
use super::FieldArgs;
use crate::context::Ctx;
use crate::error::{bail, Result};
use crate::output::{outln, print_json, printable};

/// Whether any field value was given on the command line.
fn any_field(f: &FieldArgs) -> bool {
    [
        &f.url,
        &f.username,
        &f.password,
        &f.bank,
        &f.bank_other,
        &f.card_number,
        &f.card_pin,
        &f.address,
        &f.server,
        &f.notes,
    ]
    .iter()
    .any(|v| v.is_some())
        || !f.fields.is_empty()
        || !f.secret_fields.is_empty()
}

/// Runs `vtoken vault add --kind KIND --on-token`.
pub(super) fn add(ctx: &Ctx, json: bool, kind: Kind, fields: &FieldArgs) -> Result<()> {
    if any_field(fields) {
        bail!(
            "with --on-token every field is typed on the token's prompt: drop the field \
             options (--url, --password, --field, ...)"
        );
    }
    // No PIN is read here: the token asks for it on its own prompt (¶0081).
    let open = ctx.open()?;
    let (id, summary) = open.token.vault_add_on_token(kind).map_err(|e| match e {
        e @ (vault_core::Error::PinIncorrect | vault_core::Error::PinLocked) => {
            crate::context::pin_error(&open.token, UserType::User, e)
        }
        e => cerr(e),
    })?;
    if json {
        print_json(&json!({ "id": id, "title": summary.title, "kind": summary.kind }))
    } else {
        outln!(
            "vault entry {id} added on the token: {}",
            printable(&summary.title)
        );
        Ok(())
    }
}
