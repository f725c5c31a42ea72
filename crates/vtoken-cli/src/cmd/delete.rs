//! `vtoken delete`: objects matching a selector, or (with --token-file) the whole
//! token file.

use std::io::IsTerminal;

use clap::Args;
use serde_json::json;
use vault_core::slots::slot_id_for_serial;
use vault_core::token::UserType;

use crate::args::{Selector, UserPin};
use crate::context::Ctx;
use crate::error::{bail, Result};
use crate::output::{outln, print_json};
use crate::pin;
use crate::select::{self, ObjectInfo};

// `vtoken delete`. A plain comment: the help text is on the `Command` variant, and
// a doc comment here would become the subcommand's about text.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub select: Selector,
    /// Delete the whole token file instead of objects.
    #[arg(long, conflicts_with_all = ["label", "id", "handle"])]
    pub token_file: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub user: UserPin,
}

/// `vtoken delete`.
pub fn run(ctx: &Ctx, json: bool, args: &DeleteArgs) -> Result<()> {
    if args.token_file {
        delete_token(ctx, json, args.force)
    } else {
        delete_objects(ctx, json, &args.select, args.force, &args.user)
    }
}

/// `vtoken delete` (objects).
fn delete_objects(
    ctx: &Ctx,
    json: bool,
    select: &Selector,
    force: bool,
    user: &UserPin,
) -> Result<()> {
    let open = ctx.open()?;
    open.login(UserType::User, &pin::user(user)?)?;
    let handles = select::select(&open, select, &[])?;
    if handles.is_empty() {
        bail!("no object matches {}", select::describe_selector(select));
    }
    let infos: Vec<ObjectInfo> = handles
        .iter()
        .map(|h| open.token.attributes(*h).map(|a| ObjectInfo::new(*h, &a)))
        .collect::<std::result::Result<_, _>>()?;
    if !force {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to delete {} object(s) without --force (stdin is not a terminal)",
                infos.len()
            );
        }
        eprintln!("About to delete:");
        for i in &infos {
            eprintln!("{}", i.line());
        }
        eprint!("Delete {} object(s)? [y/N] ", infos.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not deleted");
        }
    }
    for h in &handles {
        open.token.destroy_object(&open.sid, *h)?;
    }
    if json {
        return print_json(&json!({ "deleted": infos }));
    }
    for i in &infos {
        outln!("deleted {}", i.line().trim_start());
    }
    Ok(())
}

/// `vtoken delete --token-file`: removes the selected token's file.
fn delete_token(ctx: &Ctx, json: bool, force: bool) -> Result<()> {
    let entry = ctx.entry()?;
    if !force {
        bail!(
            "refusing to delete token '{}' ({}) and all its keys without --force",
            entry.label,
            entry.serial
        );
    }
    // An e-wallet with value on it is not deleted with the file (SPEC W4; a token
    // that does not open is deleted as before).
    if let Ok(t) = ctx.registry.open(&entry) {
        if t.wallet_holds_value().unwrap_or(false) {
            bail!(
                "token '{}' has an e-wallet that holds value: spend or move it first, or give it up with `vtoken wallet discard --so-pin ...`",
                entry.label
            );
        }
    }
    ctx.registry.delete(&entry)?;
    if json {
        print_json(
            &json!({"deleted": {"serial": entry.serial, "label": entry.label, "path": entry.path}}),
        )
    } else {
        outln!(
            "Deleted token '{}' (serial {}, slot {}): {}",
            entry.label,
            entry.serial,
            slot_id_for_serial(&entry.serial),
            entry.path.display()
        );
        Ok(())
    }
}
