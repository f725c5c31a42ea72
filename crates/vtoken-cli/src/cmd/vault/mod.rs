//! `vtoken vault`: the token's second storage area (SPEC V1–V5, V9, V10): bank
//! cards, online-banking, website and e-mail logins and custom entries, kept as
//! private data objects on the token; activation and enable; password output in
//! the clear, RSA-OAEP-encrypted or as a dynamic password; clipboard copy with
//! automatic clearing; KeePassXC CSV import and export.

mod display;
mod generate;
mod helpers;
mod interop;
mod kdbx;
mod on_token;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use vault_core::gate::OpClass;
use vault_core::vault::{
    Entry, Kind, PasswordOutput, PublicKeyRef, Query, SecretDisplay, BANKS, MASK,
};
use zeroize::Zeroizing;

use crate::args::{SoPin, UserPin};
use crate::context::Ctx;
use crate::error::{bail, CliError, Result};
use crate::gated;
use crate::output::{outln, print_json, printable, write_out};

use helpers::{
    apply_fields, ask_secret, cerr, clip, key_by_label, open_user, print_list, print_status,
    read_spki, resolve, when,
};

// ---------------------------------------------------------------------- clap

/// Entry kinds on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Website,
    BankCard,
    OnlineBanking,
    Email,
    Custom,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Website => Kind::Website,
            KindArg::BankCard => Kind::BankCard,
            KindArg::OnlineBanking => Kind::OnlineBanking,
            KindArg::Email => Kind::Email,
            KindArg::Custom => Kind::Custom,
        }
    }
}

/// Field values of `add` and `edit`.
#[derive(Debug, Args, Clone, Default)]
pub struct FieldArgs {
    /// The URL (website, online banking).
    #[arg(long)]
    pub url: Option<String>,
    /// The user name (website, online banking).
    #[arg(long)]
    pub username: Option<String>,
    /// The password (visible in the process list: prefer the no-echo prompt).
    #[arg(long)]
    pub password: Option<String>,
    /// The bank, one of the preset list (`vtoken vault banks`).
    #[arg(long, conflicts_with = "bank_other")]
    pub bank: Option<String>,
    /// A bank that is not in the preset list.
    #[arg(long, value_name = "NAME")]
    pub bank_other: Option<String>,
    /// Bank card: the card number (secret).
    #[arg(long, value_name = "NUMBER")]
    pub card_number: Option<String>,
    /// Bank card: the card PIN (secret).
    #[arg(long, value_name = "PIN")]
    pub card_pin: Option<String>,
    /// E-mail: the address.
    #[arg(long)]
    pub address: Option<String>,
    /// E-mail: the server.
    #[arg(long)]
    pub server: Option<String>,
    /// Notes.
    #[arg(long)]
    pub notes: Option<String>,
    /// A field shown in listings (repeatable).
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// A secret field, masked unless revealed (repeatable).
    #[arg(long = "secret-field", value_name = "NAME=VALUE")]
    pub secret_fields: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Show the vault state: absent, activated, enabled or disabled (and the mode
    /// and activation tries).
    Status,
    /// Enter the activation code of an optional vault (then `vtoken vault enable`).
    #[command(after_help = "\
The code is the one printed by `vtoken init --vault optional` (or supplied by the
issuer); spaces, dashes and case do not matter, and the look-alikes O and 0, and
I, L and 1, are the same character (Crockford base32), so such a typo is no try. Wrong codes are counted: after 5 the
vault can never be activated on this token (only re-initializing it helps).
Activating does not switch the vault on: that is `vtoken vault enable` (S201, S202).

Example:
  vtoken vault activate && vtoken vault enable")]
    Activate {
        /// The activation code [default: asked without echo].
        #[arg(
            long,
            value_name = "CODE",
            env = "VTOKEN_VAULT_CODE",
            hide_env_values = true
        )]
        code: Option<String>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Switch the vault on: needed once after `vtoken init` (available vault) or
    /// after `vtoken vault activate` (optional vault).
    #[command(after_help = "\
Example:
  vtoken init --label mykey && vtoken vault enable && vtoken vault add ...")]
    Enable {
        #[command(flatten)]
        user: UserPin,
    },
    /// Switch the vault off: its entries stay on the token, invisible and unusable.
    Disable {
        #[command(flatten)]
        user: UserPin,
    },
    /// Show or set (SO) how the token's prompt shows the secrets of an entry about
    /// to be stored: in the clear, or as per-write fingerprints (V5).
    #[command(after_help = "\
plain (the default) shows each secret as the token received it. fingerprint shows a
short keyed hash of each secret under a fresh random of that write; `vtoken vault
add` and `edit` print the fingerprints of what they send on standard error, and the
user compares them with the prompt (¶0087-0088: data changed on its way to the
token shows a different fingerprint), with no secret on the screen.

Examples:
  vtoken vault policy
  vtoken vault policy --show-secrets fingerprint     # asks the SO PIN")]
    Policy {
        /// The new policy (needs the SO PIN); without it, show the current one.
        #[arg(long, value_name = "plain|fingerprint")]
        show_secrets: Option<SecretDisplay>,
        #[command(flatten)]
        so: SoPin,
    },
    /// The preset bank list of bank-card and online-banking entries.
    Banks,
    /// Add an entry (shown through the prompt agent for confirmation first).
    #[command(after_help = "\
Kinds and their fields:
  website         --url, --username, --password, --notes
  bank-card       --bank|--bank-other, --card-number, --card-pin
  online-banking  --bank|--bank-other, --username, --password, --url
  email           --address, --password, --server
  custom          --field NAME=VALUE / --secret-field NAME=VALUE only
Any kind takes extra --field / --secret-field values. A missing password, card
number or card PIN is asked for without echo when stdin is a terminal.

The token shows the entry as it received it (secrets included, V5) through its
prompt agent (token policy: `vtoken prompt show`; the SO changes it with `vtoken
prompt set`) and stores it only once the user confirms.

With --on-token (SPEC V6) nothing is typed into this program: the token's prompt
agent asks for the user PIN, the title and each field of the kind (tty: on the
terminal, secrets without echo; pinentry: its entry box; command: the program's
output), shows the entry and stores it on confirmation. This program only prints
the new entry's id and title. Ctrl-D (tty) or Cancel refuses; nothing is stored.

--generate makes the password (like `pass generate`): --length characters (20) from
letters, digits and symbols (--no-symbols: letters and digits), drawn uniformly from
the system's random source; it is shown once on stderr (or, with -c, copied to the
clipboard and cleared after 45 seconds). A title, key label or ID that exists already
is warned about on stderr (not an error: two logins may share a title).

Examples:
  vtoken vault add --kind website --title github --url https://github.com --username me
  vtoken vault add --kind website --title shop --username me --generate --length 24
  vtoken vault add --kind website --title router --generate --no-symbols -c
  vtoken vault add --kind website --on-token
  vtoken vault add --kind bank-card --title visa --bank HSBC --card-number 4111111111111111
  vtoken vault add --kind custom --title wifi --field ssid=home --secret-field psk=...")]
    Add {
        #[arg(long, value_enum)]
        kind: KindArg,
        #[arg(long, required_unless_present = "on_token")]
        title: Option<String>,
        /// Type the PIN and the whole entry on the token's trusted prompt instead
        /// (V6): this program never sees them.
        /// VTOKEN_PIN is not used then.
        #[arg(long, conflicts_with_all = ["title", "pin_file"])]
        on_token: bool,
        #[command(flatten)]
        fields: FieldArgs,
        #[command(flatten)]
        gen: generate::GenerateArgs,
        #[command(flatten)]
        user: UserPin,
    },
    /// Store an entry by the remote-management flow of the patent's Fig. 6: the
    /// token is verified against a root, the entry travels sealed to it, and the
    /// token shows it and stores it on confirmation.
    #[command(after_help = "\
Steps (SPEC V4-V8): the vault's state is asked (it must be enabled); a fresh random
goes to the token, the user PIN is entered, the token signs the random with its
device key and returns its certificate; the client checks both against --root
(V7); the entry is sealed to that certificate (CMS, RSA-OAEP + AES-256-GCM, V8); the
token opens it inside, shows it as received (secrets included, V5) and stores it
only once the user confirms. Fields as for `vtoken vault add`.

Example:
  vtoken vault put --sealed --root ca.pem --kind bank-card --title visa \\
      --bank HSBC --card-number 4111111111111111 --card-pin 1234")]
    Put {
        /// Use the sealed flow (the only one `put` has).
        #[arg(long, required = true)]
        sealed: bool,
        /// The root the token's device certificate must lead to (PEM or DER).
        #[arg(long, value_name = "CA.pem")]
        root: PathBuf,
        #[arg(long, value_enum)]
        kind: KindArg,
        #[arg(long)]
        title: String,
        #[command(flatten)]
        fields: FieldArgs,
        #[command(flatten)]
        user: UserPin,
    },
    /// The SO moves an entry's event counter forward (V9 resync): the next
    /// `get --dynamic --event` uses NEXT. Never backwards, so no password repeats.
    #[command(after_help = "\
The user PIN names the entry (the vault is the user's); the SO PIN authorizes the
change (verified and counted like a login). A value below the current counter is
refused: an event value is never used twice.

Example:
  vtoken vault resync vpn --next 120 --so-pin-file so.txt")]
    Resync {
        /// The entry: its id or its title.
        entry: String,
        /// The event the next dynamic password uses.
        #[arg(long, value_name = "N")]
        next: u64,
        #[command(flatten)]
        user: UserPin,
        #[command(flatten)]
        so: SoPin,
    },
    /// Change an entry (confirmed like `add`).
    Edit {
        /// The entry: its id or its title.
        entry: String,
        /// A new title.
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        fields: FieldArgs,
        /// Remove a field (repeatable).
        #[arg(long = "remove-field", value_name = "NAME")]
        remove: Vec<String>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Delete an entry (confirmed through the prompt agent).
    Delete {
        /// The entry: its id or its title.
        entry: String,
        #[command(flatten)]
        user: UserPin,
    },
    /// List entries (no secrets).
    List {
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Search entries by title or URL (case-insensitive substring) and kind.
    Search {
        /// Text to find in the title or the URL.
        text: Option<String>,
        /// Text to find in the URL only.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Show an entry, secrets masked unless --reveal.
    Show {
        /// The entry: its id or its title.
        entry: String,
        /// Show secret values.
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        user: UserPin,
    },
    /// Output a password: in the clear, encrypted to a public key, or as a dynamic
    /// password; or copy it to the clipboard.
    #[command(after_help = "\
Forms:
  (default)              the value itself, on stdout
  --encrypt-to LABEL     RSA-OAEP (SHA-256, MGF1-SHA-256) to the RSA key LABEL on the
                         token; --encrypt-to-pem FILE: to a public key in a PEM/DER file.
                         Binary: use -o FILE (or --json for hex). Decrypt with e.g.
                         openssl pkeyutl -decrypt -inkey key.pem -pkeyopt rsa_padding_mode:oaep
                           -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
  --dynamic              a dynamic password (SPEC V9, ¶0093) from the value, with the
                         token's factors: --time (the default; --period 30), --event
                         (the entry's event counter, kept and advanced by the token and
                         committed before the password is shown: it never repeats), or
                         both for the combined factor; --digits 6..10
  -c/--clip              copy to the clipboard (wl-copy, xclip or xsel) and clear it
                         after --clip-seconds (45), like `pass -c`

Without ENTRY the token lists its entries through the prompt agent, one request per
entry with the whole list shown and that entry marked; the user confirms the account
the password is for (refusing moves to the next; a timeout or refusing all gets
nothing). The client never chooses (SPEC V10, ¶0098).

Examples:
  vtoken vault get                               # pick the entry on the token's prompt
  vtoken vault get --encrypt-to-pem client.pem -o pw.bin
  vtoken vault get github
  vtoken vault get github --field username
  vtoken vault get github -c
  vtoken vault get 12 --encrypt-to web-key -o pw.bin
  vtoken vault get visa --field card_pin --dynamic --event
  vtoken vault get github --dynamic --time --event")]
    Get {
        /// The entry: its id or its title [default: the token shows its entry list
        /// through the prompt agent and the user picks one there (V10)].
        entry: Option<String>,
        /// The field [default: password, else card_pin, else the first secret field].
        #[arg(long)]
        field: Option<String>,
        /// Encrypt to the RSA key with this label on the token.
        #[arg(long, value_name = "KEY_LABEL", conflicts_with_all = ["encrypt_to_pem", "dynamic"])]
        encrypt_to: Option<String>,
        /// Encrypt to the RSA public key in this file (PEM or DER SubjectPublicKeyInfo).
        #[arg(long, value_name = "FILE", conflicts_with = "dynamic")]
        encrypt_to_pem: Option<PathBuf>,
        /// A dynamic password instead of the value.
        #[arg(long)]
        dynamic: bool,
        /// Dynamic password length.
        #[arg(long, default_value_t = 6, requires = "dynamic")]
        digits: u32,
        /// Dynamic password: the event factor (the entry's counter on the token,
        /// advanced by each use).
        #[arg(long, requires = "dynamic")]
        event: bool,
        /// Dynamic password: the time factor (the default without --event).
        #[arg(long, requires = "dynamic")]
        time: bool,
        /// Dynamic password: time step in seconds.
        #[arg(long, default_value_t = 30, requires = "dynamic")]
        period: u64,
        /// Copy to the clipboard instead of printing.
        #[arg(short = 'c', long = "clip", conflicts_with_all = ["encrypt_to", "encrypt_to_pem", "out"])]
        clip: bool,
        /// Clear the clipboard after this many seconds.
        #[arg(long, default_value_t = 45, requires = "clip")]
        clip_seconds: u64,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        user: UserPin,
    },
    /// Import a KeePassXC CSV export (one confirmation for the whole file;
    /// importing the same file again adds nothing).
    #[command(after_help = interop::IMPORT_HELP)]
    ImportCsv {
        file: PathBuf,
        #[command(flatten)]
        user: UserPin,
    },
    /// Export the vault as KeePassXC CSV; with secrets (the default) only after the
    /// user confirms through the prompt agent.
    #[command(after_help = interop::EXPORT_CSV_HELP)]
    ExportCsv {
        /// Output file ("-" for stdout).
        file: PathBuf,
        /// Leave passwords and other secrets out (no confirmation needed).
        #[arg(long)]
        no_secrets: bool,
        #[command(flatten)]
        user: UserPin,
    },
    /// Import a KeePass/KeePassXC database (KDBX 4 or 3.1), like import-csv.
    #[command(after_help = interop::IMPORT_KDBX_HELP)]
    ImportKdbx {
        /// The database file.
        file: PathBuf,
        #[command(flatten)]
        pass: interop::PassphraseArgs,
        #[command(flatten)]
        user: UserPin,
    },
    /// Export the vault, secrets and OTP credentials included, as a KDBX 4
    /// database KeePassXC opens (after the user confirms through the prompt agent).
    #[command(after_help = interop::EXPORT_KDBX_HELP)]
    ExportKdbx {
        /// The database file to write (replaced if it exists).
        file: PathBuf,
        #[command(flatten)]
        pass: interop::PassphraseArgs,
        #[command(flatten)]
        user: UserPin,
    },
}

// ---------------------------------------------------------------------- run

/// Runs `vtoken vault …`; a refused confirmation is explained by the token's
/// prompt agent ([`crate::context::explain_rejection`]).
pub fn run(ctx: &Ctx, json: bool, cmd: &VaultCommand) -> Result<()> {
    run_inner(ctx, json, cmd).map_err(|e| crate::context::explain_rejection(ctx, e))
}

fn run_inner(ctx: &Ctx, json: bool, cmd: &VaultCommand) -> Result<()> {
    match cmd {
        VaultCommand::Status => {
            let open = ctx.open()?;
            print_status(&open.token.vault_status()?, json)
        }
        VaultCommand::Policy { show_secrets, so } => display::policy(ctx, json, *show_secrets, so),
        VaultCommand::Banks => {
            if json {
                return print_json(BANKS);
            }
            for b in BANKS {
                outln!("{b}");
            }
            Ok(())
        }
        VaultCommand::Activate { code, user } => {
            let open = open_user(ctx, user)?;
            let code = match code {
                Some(c) if !c.is_empty() => Zeroizing::new(c.clone()),
                _ => ask_secret("vault activation code", "--code or VTOKEN_VAULT_CODE")?,
            };
            open.token.vault_activate(&code).map_err(cerr)?;
            if json {
                print_status(&open.token.vault_status()?, true)
            } else {
                outln!("vault activated; switch it on with `vtoken vault enable`");
                Ok(())
            }
        }
        VaultCommand::Enable { user } | VaultCommand::Disable { user } => {
            let on = matches!(cmd, VaultCommand::Enable { .. });
            let open = open_user(ctx, user)?;
            if on {
                open.token.vault_enable()
            } else {
                open.token.vault_disable()
            }
            .map_err(cerr)?;
            if json {
                print_status(&open.token.vault_status()?, true)
            } else {
                outln!("vault {}", if on { "enabled" } else { "disabled" });
                Ok(())
            }
        }
        VaultCommand::Add {
            kind,
            title: None,
            on_token: true,
            fields,
            ..
        } => on_token::add(ctx, json, (*kind).into(), fields),
        VaultCommand::Add {
            kind,
            title,
            fields,
            gen,
            user,
            ..
        } => {
            let title = title.as_deref().unwrap_or_default();
            let mut e = Entry::new((*kind).into(), title);
            let generated = generate::apply(&mut e, gen)?;
            apply_fields(&mut e, fields, true)?;
            e.normalize().map_err(cerr)?;
            let open = open_user(ctx, user)?;
            if !open
                .token
                .vault_find_title(&e.title)
                .map_err(cerr)?
                .is_empty()
            {
                eprintln!(
                    "warning: a vault entry titled \"{}\" exists already; this adds another \
                     (give the id to `vault get`/`edit`/`delete`)",
                    printable(&e.title)
                );
            }
            display::announce(&open.token, &e)?;
            let id = open.token.vault_add(&e).map_err(cerr)?;
            if let Some(pw) = &generated {
                generate::hand_out(pw, gen)?;
            }
            if json {
                print_json(&json!({ "id": id, "title": e.title, "kind": e.kind }))
            } else {
                outln!("vault entry {id} added: {}", printable(&e.title));
                Ok(())
            }
        }
        VaultCommand::Put {
            sealed: _,
            root,
            kind,
            title,
            fields,
            user,
        } => {
            let mut e = Entry::new((*kind).into(), title);
            apply_fields(&mut e, fields, true)?;
            e.normalize().map_err(cerr)?;
            let root = crate::identity::read_certs(root)?
                .into_iter()
                .next()
                .ok_or_else(|| CliError::new(format!("{}: no certificate", root.display())))?;
            let pin = crate::pin::user(user)?;
            let open = ctx.open()?;
            let id = vtoken_device::vault_put::put_sealed(
                &open.token,
                pin.as_bytes(),
                &root,
                &e,
                std::time::SystemTime::now(),
                |envelope| envelope,
            )
            .map_err(|e| match e {
                vtoken_device::Error::Token(t) => cerr(t),
                e => CliError::new(e.to_string()),
            })?;
            if json {
                print_json(&json!({ "id": id, "title": e.title, "kind": e.kind }))
            } else {
                outln!(
                    "vault entry {id} stored on the verified token: {}",
                    printable(&e.title)
                );
                Ok(())
            }
        }
        VaultCommand::Edit {
            entry,
            title,
            fields,
            remove,
            user,
        } => {
            let open = open_user(ctx, user)?;
            let id = resolve(&open.token, entry)?;
            let mut e = open.token.vault_get(id).map_err(cerr)?;
            if let Some(t) = title {
                e.title = t.clone();
            }
            apply_fields(&mut e, fields, false)?;
            for r in remove {
                if !e.remove(r) {
                    bail!("the entry has no field \"{r}\"");
                }
            }
            display::announce(&open.token, &e)?;
            open.token.vault_update(id, &e).map_err(cerr)?;
            if json {
                print_json(&json!({ "id": id, "title": e.title }))
            } else {
                outln!("vault entry {id} changed");
                Ok(())
            }
        }
        VaultCommand::Resync {
            entry,
            next,
            user,
            so,
        } => {
            let open = open_user(ctx, user)?;
            let id = resolve(&open.token, entry)?;
            let so_pin = crate::pin::so(so)?;
            let was = open
                .token
                .vault_event_resync(id, so_pin.as_bytes(), *next)
                .map_err(|e| match e {
                    e @ (vault_core::Error::PinIncorrect | vault_core::Error::PinLocked) => {
                        crate::context::pin_error(&open.token, vault_core::token::UserType::So, e)
                    }
                    e => cerr(e),
                })?;
            if json {
                print_json(&json!({ "id": id, "was": was, "next": next }))
            } else {
                outln!("vault entry {id}: event counter {was} -> {next}");
                Ok(())
            }
        }
        VaultCommand::Delete { entry, user } => {
            let open = open_user(ctx, user)?;
            let id = resolve(&open.token, entry)?;
            open.token.vault_delete(id).map_err(cerr)?;
            if json {
                print_json(&json!({ "deleted": id }))
            } else {
                outln!("vault entry {id} deleted");
                Ok(())
            }
        }
        VaultCommand::List { kind, user } => {
            let open = open_user(ctx, user)?;
            let list = open
                .token
                .vault_search(&Query {
                    kind: kind.map(Into::into),
                    ..Query::default()
                })
                .map_err(cerr)?;
            print_list(&list, json)
        }
        VaultCommand::Search {
            text,
            url,
            kind,
            user,
        } => {
            let open = open_user(ctx, user)?;
            let list = open
                .token
                .vault_search(&Query {
                    text: text.clone(),
                    url: url.clone(),
                    kind: kind.map(Into::into),
                })
                .map_err(cerr)?;
            print_list(&list, json)
        }
        VaultCommand::Show {
            entry,
            reveal,
            user,
        } => {
            let open = open_user(ctx, user)?;
            let id = resolve(&open.token, entry)?;
            let e = if *reveal {
                // Secrets shown in the clear: the gate (vault-password) and the
                // token's vault-read confirmation, in the core.
                gated::before(
                    ctx,
                    &open,
                    OpClass::VaultPassword,
                    None,
                    "reveal the secrets of a vault entry",
                    true,
                )?;
                open.token.vault_reveal(id).map_err(cerr)?
            } else {
                open.token.vault_get(id).map_err(cerr)?
            };
            let value = |f: &vault_core::vault::Field| -> String {
                if *reveal || !f.secret {
                    f.value.clone()
                } else {
                    MASK.to_string()
                }
            };
            if json {
                let fields: Vec<_> = e
                    .fields
                    .iter()
                    .map(|f| json!({ "name": f.name, "value": value(f), "secret": f.secret }))
                    .collect();
                return print_json(&json!({
                    "id": id, "kind": e.kind, "title": e.title, "url": e.url,
                    "fields": fields, "created": e.created, "modified": e.modified,
                }));
            }
            outln!("id:       {id}");
            outln!("kind:     {}", e.kind);
            outln!("title:    {}", printable(&e.title));
            if !e.url.is_empty() {
                outln!("url:      {}", printable(&e.url));
            }
            for f in &e.fields {
                let name = format!("{}:", printable(&f.name));
                outln!("{name:<9} {}", printable(&value(f)));
            }
            outln!("created:  {}", when(e.created));
            outln!("modified: {}", when(e.modified));
            Ok(())
        }
        VaultCommand::Get {
            entry,
            field,
            encrypt_to,
            encrypt_to_pem,
            dynamic,
            digits,
            event,
            time,
            period,
            clip: to_clip,
            clip_seconds,
            out,
            user,
        } => {
            let open = open_user(ctx, user)?;
            let id = match entry {
                Some(entry) => resolve(&open.token, entry)?,
                None => open
                    .token
                    .vault_pick("Password request from vtoken vault get")
                    .map_err(cerr)?,
            };
            let output = if let Some(label) = encrypt_to {
                PasswordOutput::RsaOaep(PublicKeyRef::Object(key_by_label(&open.token, label)?))
            } else if let Some(f) = encrypt_to_pem {
                PasswordOutput::RsaOaep(PublicKeyRef::Spki(read_spki(f)?))
            } else if *dynamic {
                let use_time = *time || !*event;
                PasswordOutput::Dynamic {
                    time_period: use_time.then_some(*period),
                    event: *event,
                    digits: *digits,
                }
            } else {
                PasswordOutput::Plain
            };
            // `vault_password` passes the gate (vault-password) and asks the prompt
            // agent itself when the token's policy confirms "vault-read".
            gated::before(
                ctx,
                &open,
                OpClass::VaultPassword,
                None,
                "output a vault password",
                true,
            )?;
            let v = open
                .token
                .vault_password(id, field.as_deref(), &output)
                .map_err(cerr)?;
            let binary = matches!(output, PasswordOutput::RsaOaep(_));
            if *to_clip {
                clip(&v, *clip_seconds)?;
                eprintln!("copied to the clipboard; it is cleared in {clip_seconds} seconds");
                return Ok(());
            }
            if json {
                let value = if binary {
                    hex::encode(&v[..])
                } else {
                    String::from_utf8_lossy(&v).into_owned()
                };
                let key = if binary { "ciphertext_hex" } else { "value" };
                return print_json(&json!({ "id": id, key: value }));
            }
            if binary || out.is_some() {
                return write_out(out.as_deref(), &v);
            }
            let mut line = Zeroizing::new(v.to_vec());
            line.push(b'\n');
            write_out(None, &line)
        }
        VaultCommand::ImportCsv { file, user } => interop::import_csv(ctx, json, file, user),
        VaultCommand::ExportCsv {
            file,
            no_secrets,
            user,
        } => interop::export_csv(ctx, file, *no_secrets, user),
        VaultCommand::ImportKdbx { file, pass, user } => {
            interop::import_kdbx(ctx, json, file, pass, user)
        }
        VaultCommand::ExportKdbx { file, pass, user } => {
            interop::export_kdbx(ctx, json, file, pass, user)
        }
    }
}

/// Writes a file readable by its owner only (it may hold secrets).
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}
