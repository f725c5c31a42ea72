//! `vtoken vault import-csv|export-csv|import-kdbx|export-kdbx`: KeePassXC
//! interchange. The token matches, merges and confirms (vault-core's
//! `vault::interop`); this module reads and writes the files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;
use vault_core::gate::OpClass;
use vault_core::vault::ImportReport;
use zeroize::Zeroizing;

use crate::args::UserPin;
use crate::context::Ctx;
use crate::error::{bail, CliError, Result};
use crate::gated;
use crate::output::{outln, print_json, write_out};

use super::helpers::{cerr, open_user};
use super::{kdbx, write_private};

pub(super) const IMPORT_HELP: &str = "\
Reads KeePassXC's CSV export (Database > Export > CSV File, or `keepassxc-cli export
--format csv`) and vtoken's own export. Columns are found by their header: Title is
required; Group, Username, Password, URL, Notes, TOTP, Created and Last Modified are
used when present; vtoken's Kind column and named field columns (card_number (secret),
bank, ...) keep entries of every kind. A TOTP cell becomes an OTP credential on the
token (`vtoken otp list`), linked from the entry.

Importing the same file twice adds nothing: an entry is the same entry when its kind,
group, title, user name and URL are the same; its values are then updated from the
file, and an empty cell never erases a stored value. The token shows the new and
changed entries once through its prompt agent; nothing is written unless confirmed.

Examples:
  keepassxc-cli export --format csv Passwords.kdbx > pw.csv && vtoken vault import-csv pw.csv
  vtoken --json vault import-csv pw.csv      # {added, updated, unchanged, otp_added}";

pub(super) const EXPORT_CSV_HELP: &str = "\
The columns are KeePassXC's (Group, Title, Username, Password, URL, Notes, TOTP, Icon,
Last Modified, Created), then Kind and one column per other field, so a bank card's
number and PIN are in named columns, never in Password. TOTP holds the linked OTP
credential's otpauth:// URI. KeePassXC's CSV import ignores the extra columns; vtoken
reads them back without loss.

Examples:
  vtoken vault export-csv backup.csv             # asks the prompt agent; file mode 0600
  vtoken vault export-csv - --no-secrets          # no secrets, no confirmation";

pub(super) const IMPORT_KDBX_HELP: &str = "\
Opens the database with its passphrase (asked without echo on the terminal, or from
--passphrase-file / VTOKEN_KDBX_PASSPHRASE) and imports every entry outside the
recycle bin as `import-csv` does: groups, protected fields (secret), KeePassXC's TOTP
(an OTP credential), the vtoken-kind attribute. Key files and hardware keys are not
supported.

Example:
  keepassxc-cli db-create -p Passwords.kdbx && vtoken vault import-kdbx Passwords.kdbx";

pub(super) const EXPORT_KDBX_HELP: &str = "\
Writes a new KDBX 4 database (AES-256, Argon2d 64 MiB) that KeePassXC opens: one
entry per vault entry in its group, secrets as protected fields, the kind as the
vtoken-kind attribute (bank cards keep bank, card_number, card_pin), OTP credentials
as KeePassXC TOTP. The passphrase is asked twice without echo (or
--passphrase-file / VTOKEN_KDBX_PASSPHRASE). The token asks the prompt agent first:
every secret leaves the token.

Example:
  vtoken vault export-kdbx vault.kdbx && keepassxc-cli ls vault.kdbx";

/// The database passphrase.
#[derive(Debug, Args, Clone, Default)]
pub struct PassphraseArgs {
    /// Read the database passphrase from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The database passphrase (prefer the no-echo prompt or the file).
    #[arg(
        long,
        env = "VTOKEN_KDBX_PASSPHRASE",
        hide_env_values = true,
        hide = true
    )]
    pub passphrase: Option<String>,
}

/// The passphrase: file, variable, else asked without echo (twice when `new`).
fn passphrase(p: &PassphraseArgs, new: bool) -> Result<Zeroizing<String>> {
    if let Some(f) = &p.passphrase_file {
        let text = Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
            CliError::new(format!("cannot read passphrase file {}: {e}", f.display()))
        })?);
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Some(v) = p.passphrase.as_ref().filter(|v| !v.is_empty()) {
        return Ok(Zeroizing::new(v.clone()));
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no database passphrase given and stdin is not a terminal: use --passphrase-file \
             or VTOKEN_KDBX_PASSPHRASE"
        );
    }
    loop {
        let first = read_hidden("Database passphrase: ")?;
        if !new {
            return Ok(first);
        }
        if first.is_empty() {
            eprintln!("an empty passphrase leaves the database readable by anyone; try again");
            continue;
        }
        let again = read_hidden("Repeat the passphrase: ")?;
        if *first == *again {
            return Ok(first);
        }
        eprintln!("the two passphrases differ; try again");
    }
}

fn read_hidden(label: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(label)
        .map(Zeroizing::new)
        .map_err(|e| CliError::new(format!("cannot read the passphrase: {e}")))
}

fn report(json: bool, r: &ImportReport) -> Result<()> {
    if json {
        return print_json(&json!({
            "added": r.added, "updated": r.updated, "unchanged": r.unchanged,
            "otp_added": r.otp_added,
        }));
    }
    outln!(
        "{} vault entries imported, {} updated, {} unchanged{}",
        r.added.len(),
        r.updated.len(),
        r.unchanged.len(),
        if r.otp_added.is_empty() {
            String::new()
        } else {
            format!("; OTP credentials added: {}", r.otp_added.join(", "))
        }
    );
    Ok(())
}

pub(super) fn import_csv(ctx: &Ctx, json: bool, file: &Path, user: &UserPin) -> Result<()> {
    let bytes = Zeroizing::new(crate::output::read_in(file)?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::new(format!("{}: not UTF-8 text", file.display())))?;
    let open = open_user(ctx, user)?;
    let r = open.token.vault_import_csv(text).map_err(cerr)?;
    report(json, &r)
}

pub(super) fn export_csv(ctx: &Ctx, file: &Path, no_secrets: bool, user: &UserPin) -> Result<()> {
    let open = open_user(ctx, user)?;
    if !no_secrets {
        gated::before(
            ctx,
            &open,
            OpClass::VaultPassword,
            None,
            "export the vault with its secrets",
            true,
        )?;
    }
    let text = open.token.vault_export_csv(!no_secrets).map_err(cerr)?;
    if file != Path::new("-") {
        write_private(file, text.as_bytes())?;
        eprintln!(
            "vault exported to {}{}",
            file.display(),
            if no_secrets {
                " (without secrets)"
            } else {
                " WITH secrets in the clear: protect or delete the file"
            }
        );
        Ok(())
    } else {
        write_out(None, text.as_bytes())
    }
}

pub(super) fn import_kdbx(
    ctx: &Ctx,
    json: bool,
    file: &Path,
    pass: &PassphraseArgs,
    user: &UserPin,
) -> Result<()> {
    let open = open_user(ctx, user)?;
    let pw = passphrase(pass, false)?;
    let records = kdbx::read(file, &pw)?;
    let r = open.token.vault_import_records(records).map_err(cerr)?;
    report(json, &r)
}

pub(super) fn export_kdbx(
    ctx: &Ctx,
    json: bool,
    file: &Path,
    pass: &PassphraseArgs,
    user: &UserPin,
) -> Result<()> {
    let open = open_user(ctx, user)?;
    let pw = passphrase(pass, true)?;
    gated::before(
        ctx,
        &open,
        OpClass::VaultPassword,
        None,
        "export the vault with its secrets",
        true,
    )?;
    let records = open
        .token
        .vault_export_records_with_ids(true)
        .map_err(cerr)?;
    kdbx::write(&records, open.token.serial(), file, &pw)?;
    if json {
        print_json(&json!({ "exported": records.len(), "file": file.display().to_string() }))
    } else {
        eprintln!(
            "{} vault entries exported to {} (KDBX 4, passphrase-protected)",
            records.len(),
            file.display()
        );
        Ok(())
    }
}
