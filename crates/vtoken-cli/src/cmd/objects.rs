//! `vtoken objects list`: the token's objects, private ones too with the user PIN.

use clap::Subcommand;
use vault_core::token::UserType;
use vault_core::Attributes;

use crate::args::UserPin;
use crate::context::Ctx;
use crate::error::Result;
use crate::output::{outln, print_json};
use crate::pin;
use crate::select::ObjectInfo;

#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// List objects: public ones without a PIN, private ones too with --pin or VTOKEN_PIN.
    #[command(after_help = "\
Examples:
  vtoken objects list
  VTOKEN_PIN=123456 vtoken objects list --json")]
    List {
        #[command(flatten)]
        user: UserPin,
    },
}

/// `vtoken objects …`.
pub fn run(ctx: &Ctx, json: bool, cmd: &ObjectsCommand) -> Result<()> {
    let ObjectsCommand::List { user } = cmd;
    list(ctx, json, user)
}

/// `vtoken objects list`.
fn list(ctx: &Ctx, json: bool, user: &UserPin) -> Result<()> {
    let open = ctx.open()?;
    // Only with a PIN given without prompting: public objects need none.
    let logged_in = match pin::user_given(user)? {
        Some(p) => open.login(UserType::User, &p).map(|_| true)?,
        None => false,
    };
    let mut infos = Vec::new();
    for h in open.token.search(&Attributes::new())? {
        let a = open.token.attributes(h)?;
        infos.push(ObjectInfo::new(h, &a));
    }
    if json {
        return print_json(&infos);
    }
    outln!(
        "Token '{}' ({}): {} object(s)",
        open.entry.label,
        open.entry.serial,
        infos.len()
    );
    for i in &infos {
        outln!("{}", i.line());
    }
    if !logged_in {
        let info = open.token.info()?;
        if info.private_objects > 0 {
            eprintln!(
                "({} private object(s) hidden: give the user PIN with --pin or VTOKEN_PIN to list them)",
                info.private_objects
            );
        }
    }
    Ok(())
}
