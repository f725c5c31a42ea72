//! `vtoken-server rks`: the remote key server (seed CN103714642A, SPEC K1, K4, K5):
//! its directory (root and working key pairs, DIK1 records, key queue, audit log in
//! SQLite or PostgreSQL, see [`crate::rks_store`]) and the download endpoint, served over the same
//! HTTP layer as the CA ([`crate::http::serve`]). The protocol logic is
//! [`vtoken_rks::server`]; this module only moves frames.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use clap::Subcommand;
use vtoken_rks::server::Server;
use vtoken_rks::tmk::{TmkType, USE_DECRYPT, USE_ENCRYPT, USE_UNWRAP, USE_WRAP};

use crate::rks_store::RksStore;

/// The download endpoint: one frame per POST, one frame back.
pub const RKS_PATH: &str = "/api/v1/rks";

/// `vtoken-server rks …`.
#[derive(Subcommand)]
pub enum RksCommand {
    /// Create a remote key server in DIR: root and working RSA-2048 key pairs (the
    /// root signs the working key), master key, database, root.pem (RKS_RCRT_PK for
    /// the key-loading station). Never overwrites.
    #[command(after_help = "Example:\n  vtoken-server rks init --dir /srv/vtoken-rks")]
    Init {
        /// Directory for the RKS (created if missing).
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: crate::db::DatabaseArgs,
    },
    /// DIK1 records: add one per DSN, export one sealed to a station token.
    #[command(subcommand)]
    Dik1(Dik1Command),
    /// Queue a terminal master key for a device (generated unless --value is given).
    #[command(after_help = "\
Examples:
  vtoken-server rks queue --dir rks --dsn 00000000000000A1 --label TMK1 --type des3
  vtoken-server rks queue --dir rks --dsn 00000000000000A1 --label TMK2 --type aes256 \\
      --value 000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F --usage wrap,unwrap")]
    Queue {
        /// RKS directory.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: crate::db::DatabaseArgs,
        /// The device's serial.
        #[arg(long)]
        dsn: String,
        /// CKA_LABEL of the key on the device.
        #[arg(long)]
        label: String,
        /// des3 (24 bytes) or aes256 (32 bytes).
        #[arg(long = "type")]
        ty: String,
        /// The key value in hex [default: generated].
        #[arg(long, value_name = "HEX")]
        value: Option<String>,
        /// CKA_ID in hex [default: empty].
        #[arg(long, value_name = "HEX", default_value = "")]
        id: String,
        /// What the device may do with it: encrypt, decrypt, wrap, unwrap (comma-separated).
        #[arg(long, default_value = "encrypt,decrypt,wrap,unwrap")]
        usage: String,
    },
    /// Per DSN: DIK1 present, keys queued and delivered, refusals (with --audit: the log).
    #[command(after_help = "Example:\n  vtoken-server rks status --dir rks --json")]
    Status {
        /// RKS directory.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: crate::db::DatabaseArgs,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Print the audit log instead (every step and every refusal).
        #[arg(long)]
        audit: bool,
    },
    /// Serve the download protocol on LISTEN (POST /api/v1/rks, one frame each way).
    #[command(after_help = "\
Examples:
  vtoken-server rks serve --dir rks --listen 127.0.0.1:8450
  vtoken rks download --token T --server http://127.0.0.1:8450
  # two instances on one PostgreSQL database (each with a copy of the directory:
  # master.key, root.pem); keep each download on one instance:
  vtoken-server rks serve --dir rks --database postgres://vtoken@db.example.org/vtoken")]
    Serve {
        /// RKS directory.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: crate::db::DatabaseArgs,
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8450")]
        listen: String,
        /// Serve HTTPS with this PEM certificate chain.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

/// `vtoken-server rks dik1 …`.
#[derive(Subcommand)]
pub enum Dik1Command {
    /// Add the DIK1 of a device, one DIK1 for a production batch (a list of DSNs),
    /// or one DIK1 for a range of DSNs; each device still gets its own DIK2 (K3
    /// diversifies by DSN). Random unless --key is given. Never replaces one; a
    /// DSN belongs to one batch at most; ranges never overlap.
    #[command(after_help = "\
At download (S306-S307) a device's DIK1 is looked up in this order: the DSN's own
record, then the batch that lists it, then the range that holds it.

The DSN file of a batch: one DSN per line (16 hex digits), blank lines and lines
starting with # ignored; a DSN listed twice, or already in another batch, is
refused with its line number and nothing is added.

Examples:
  vtoken-server rks dik1 add --dir rks --dsn 00000000000000A1
  vtoken-server rks dik1 add --dir rks --batch LOT-2026-11 --dsn-file lot-2026-11.txt
  vtoken-server rks dik1 add --dir rks --range 0000000000001000..0000000000001FFF")]
    Add {
        /// RKS directory.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: crate::db::DatabaseArgs,
        /// The device's serial.
        #[arg(long, required_unless_present_any = ["range", "batch"], conflicts_with_all = ["range", "batch"])]
        dsn: Option<String>,
        /// A range of serials FIRST..LAST (16 hex digits each, inclusive).
        #[arg(long, value_name = "FIRST..LAST", conflicts_with = "batch")]
        range: Option<String>,
        /// A production batch's name (letters, digits, '.', '_', '-'), with --dsn-file.
        #[arg(long, value_name = "NAME", requires = "dsn_file")]
        batch: Option<String>,
        /// The batch's DSNs, one per line.
        #[arg(long, value_name = "FILE", requires = "batch")]
        dsn_file: Option<PathBuf>,
        /// DIK1 in hex (24 bytes) [default: generated].
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
    },
    /// Export a DSN's, a batch's or a range's DIK1 sealed to the station token's
    /// device certificate (CMS AuthEnvelopedData, RSA-OAEP + AES-256-GCM): it opens
    /// only inside that token (`vtoken rks station-load`). A batch's export holds its
    /// member list too, so the station knows which devices the DIK1 serves.
    #[command(after_help = "\
Example:
  vtoken --token station device cert -o station.pem
  vtoken-server rks dik1 export --dir rks --dsn 00000000000000A1 --to-cert station.pem -o dik1.cms
  vtoken-server rks dik1 export --dir rks --batch LOT-2026-11 --to-cert station.pem -o lot.cms
  vtoken-server rks dik1 export --dir rks --range 0000000000001000..0000000000001FFF \\
      --to-cert station.pem -o range.cms")]
    Export {
        /// RKS directory.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: crate::db::DatabaseArgs,
        /// The device's serial.
        #[arg(long, required_unless_present_any = ["range", "batch"], conflicts_with_all = ["range", "batch"])]
        dsn: Option<String>,
        /// A DIK1 range added with `dik1 add --range` (exactly as added).
        #[arg(long, value_name = "FIRST..LAST", conflicts_with = "batch")]
        range: Option<String>,
        /// A DIK1 batch added with `dik1 add --batch`.
        #[arg(long, value_name = "NAME")]
        batch: Option<String>,
        /// The station token's device certificate (PEM or DER).
        #[arg(long)]
        to_cert: PathBuf,
        /// Output file.
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
}

/// Magic of the DIK1 export's plaintext: `MAGIC ‖ u16 len DSN ‖ DSN ‖ DIK1(24)`
/// (for a range the DSN field is `FIRST..LAST`).
pub const DIK1_EXPORT_MAGIC: &[u8] = b"vtoken rks dik1 v1\0";

/// Magic of a batch's DIK1 export (format v2): `MAGIC ‖ u16 len NAME ‖ NAME ‖
/// DIK1(24) ‖ u32 n ‖ n × 8-byte DSN` (each DSN's 16 hex digits as a big-endian
/// u64, so a list of thousands stays small). v1 (one DSN or a range) is
/// unchanged.
pub const DIK1_EXPORT_MAGIC_V2: &[u8] = b"vtoken rks dik1 v2\0";

fn batch_arg(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(format!(
            "--batch {name:?} is not a batch name (1 to 64 letters, digits, '.', '_', '-')"
        ));
    }
    Ok(name.to_string())
}

/// Reads a batch's DSN file: (line number, DSN upper-case) per DSN line.
fn dsn_file(path: &std::path::Path) -> Result<Vec<(usize, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let d = l.to_ascii_uppercase();
        if !crate::rks_store::is_dsn16(&d) {
            return Err(format!(
                "{} line {}: {l:?} is not a DSN (16 hex digits, e.g. 00000000000000A1)",
                path.display(),
                i + 1
            ));
        }
        out.push((i + 1, d));
    }
    Ok(out)
}

fn dsn_arg(dsn: &str) -> Result<String, String> {
    let d = dsn.trim().to_ascii_uppercase();
    if d.is_empty() || d.len() > 64 || !d.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "--dsn {dsn:?} is not a token serial (16 hex digits, e.g. 00000000000000A1)"
        ));
    }
    Ok(d)
}

/// `FIRST..LAST`: two DSNs of 16 hex digits, FIRST <= LAST.
fn range_arg(r: &str) -> Result<(String, String), String> {
    let bad = || {
        format!(
            "--range {r:?} is not FIRST..LAST with 16 hex digits each \
             (e.g. 0000000000001000..0000000000001FFF)"
        )
    };
    let (f, l) = r.trim().split_once("..").ok_or_else(bad)?;
    let (f, l) = (f.to_ascii_uppercase(), l.to_ascii_uppercase());
    if !crate::rks_store::is_dsn16(&f) || !crate::rks_store::is_dsn16(&l) {
        return Err(bad());
    }
    if f > l {
        return Err(format!("--range {r:?}: FIRST is above LAST"));
    }
    Ok((f, l))
}

fn hex_arg(name: &str, v: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    hex::decode(v.trim())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| format!("--{name} is not hex"))
}

fn usage_arg(s: &str) -> Result<u8, String> {
    let mut u = 0;
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        u |= match p {
            "encrypt" => USE_ENCRYPT,
            "decrypt" => USE_DECRYPT,
            "wrap" => USE_WRAP,
            "unwrap" => USE_UNWRAP,
            _ => {
                return Err(format!(
                    "--usage: unknown {p:?} (encrypt, decrypt, wrap, unwrap)"
                ))
            }
        };
    }
    if u == 0 {
        return Err("--usage names no use".into());
    }
    Ok(u)
}

fn read_cert(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if b.starts_with(b"-----") {
        let certs = vtoken_pki::certs_from_pem(&String::from_utf8_lossy(&b))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        return certs
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no certificate", path.display()));
    }
    Ok(b)
}

/// Seals an export's plaintext to the station certificate in `to_cert`, writes
/// it to `out` (a new file, 0600) and logs it.
fn export(
    store: &RksStore,
    what: &str,
    plain: &[u8],
    to_cert: &std::path::Path,
    out: &std::path::Path,
) -> Result<(), String> {
    let cert = read_cert(to_cert)?;
    let cms = vault_core::sealed::seal(&cert, plain)
        .map_err(|e| format!("{}: {e}", to_cert.display()))?;
    crate::rks_store::write_new_private(out, &cms)?;
    store.log(
        what,
        "",
        true,
        &format!("DIK1 exported sealed to {}", to_cert.display()),
    )?;
    println!(
        "DIK1 of {what} sealed to {} in {}",
        to_cert.display(),
        out.display()
    );
    Ok(())
}

/// Runs a `vtoken-server rks` command.
pub fn run(cmd: RksCommand) -> Result<(), String> {
    match cmd {
        RksCommand::Init { dir, db } => {
            RksStore::init(&dir, db.database.as_deref())?;
            println!(
                "created RKS in {} (root.pem: RKS_RCRT_PK for the key-loading station)",
                dir.display()
            );
            Ok(())
        }
        RksCommand::Dik1(Dik1Command::Add {
            dir,
            dsn,
            range,
            batch,
            dsn_file: file,
            key,
            db,
        }) => {
            let store = RksStore::open(&dir, db.database.as_deref())?;
            let key = match key {
                Some(k) => {
                    let k = hex_arg("key", &k)?;
                    let a: [u8; 24] = k.as_slice().try_into().map_err(|_| {
                        format!(
                            "--key has {} bytes; DIK1 is 24 bytes (48 hex digits)",
                            k.len()
                        )
                    })?;
                    Some(zeroize::Zeroizing::new(a))
                }
                None => None,
            };
            if let (Some(b), Some(file)) = (batch, file) {
                let b = batch_arg(&b)?;
                let members = dsn_file(&file)?;
                store
                    .add_dik1_batch(&b, &members, key.as_deref())
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                store.log(
                    &format!("batch {b}"),
                    "",
                    true,
                    &format!("DIK1 added for {} DSNs", members.len()),
                )?;
                println!("DIK1 added for batch {b} ({} DSNs)", members.len());
                return Ok(());
            }
            let what = match (dsn, range) {
                (_, Some(r)) => {
                    let (f, l) = range_arg(&r)?;
                    store.add_dik1_range(&f, &l, key.as_deref())?;
                    format!("{f}..{l}")
                }
                (Some(d), None) => {
                    let d = dsn_arg(&d)?;
                    store.add_dik1(&d, key.as_deref())?;
                    d
                }
                (None, None) => return Err("give --dsn, --batch or --range".into()),
            };
            store.log(&what, "", true, "DIK1 added")?;
            println!("DIK1 added for {what}");
            Ok(())
        }
        RksCommand::Dik1(Dik1Command::Export {
            dir,
            dsn,
            range,
            batch,
            to_cert,
            out,
            db,
        }) => {
            let store = RksStore::open(&dir, db.database.as_deref())?;
            if let Some(b) = batch {
                let b = batch_arg(&b)?;
                let k = store.get_dik1_batch(&b)?.ok_or_else(|| {
                    format!("no DIK1 batch {b} (add one with `rks dik1 add --batch`)")
                })?;
                let members = store.batch_members(&b)?;
                let mut plain = zeroize::Zeroizing::new(DIK1_EXPORT_MAGIC_V2.to_vec());
                plain.extend_from_slice(&(b.len() as u16).to_be_bytes());
                plain.extend_from_slice(b.as_bytes());
                plain.extend_from_slice(&k[..]);
                plain.extend_from_slice(&(members.len() as u32).to_be_bytes());
                for m in &members {
                    let v = u64::from_str_radix(m, 16)
                        .map_err(|_| format!("batch {b}: member {m:?} is not a DSN"))?;
                    plain.extend_from_slice(&v.to_be_bytes());
                }
                let what = format!("batch {b}");
                return export(&store, &what, &plain, &to_cert, &out);
            }
            let (what, dik1) = match (dsn, range) {
                (_, Some(r)) => {
                    let (f, l) = range_arg(&r)?;
                    let k = store.get_dik1_range(&f, &l)?.ok_or_else(|| {
                        format!("no DIK1 range {f}..{l} (add one with `rks dik1 add --range`)")
                    })?;
                    (format!("{f}..{l}"), k)
                }
                (Some(d), None) => {
                    let d = dsn_arg(&d)?;
                    let k = store
                        .get_dik1(&d)?
                        .ok_or_else(|| format!("no DIK1 for {d} (add one with `rks dik1 add`)"))?;
                    (d, k)
                }
                (None, None) => return Err("give --dsn, --batch or --range".into()),
            };
            let mut plain = zeroize::Zeroizing::new(DIK1_EXPORT_MAGIC.to_vec());
            plain.extend_from_slice(&(what.len() as u16).to_be_bytes());
            plain.extend_from_slice(what.as_bytes());
            plain.extend_from_slice(&dik1[..]);
            export(&store, &what, &plain, &to_cert, &out)
        }
        RksCommand::Queue {
            dir,
            dsn,
            label,
            ty,
            value,
            id,
            usage,
            db,
        } => {
            let dsn = dsn_arg(&dsn)?;
            let ty = TmkType::parse(&ty).map_err(|e| e.to_string())?;
            let usage = usage_arg(&usage)?;
            let value = value.map(|v| hex_arg("value", &v)).transpose()?;
            let id = hex_arg("id", &id)?;
            if label.is_empty() || label.len() > 256 {
                return Err("--label has 1 to 256 characters".into());
            }
            let store = RksStore::open(&dir, db.database.as_deref())?;
            let uid = store.queue(
                &dsn,
                &label,
                &id,
                ty,
                usage,
                value.as_deref().map(|v| &v[..]),
            )?;
            store.log(&dsn, "", true, &format!("key {label:?} queued ({uid})"))?;
            println!("queued {} key {label:?} for {dsn} (uid {uid})", ty.as_str());
            Ok(())
        }
        RksCommand::Status {
            dir,
            json,
            audit,
            db,
        } => {
            let store = RksStore::open(&dir, db.database.as_deref())?;
            if audit {
                let log = store.audit_log(None)?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&log).map_err(|e| e.to_string())?
                    );
                } else {
                    for l in log {
                        println!(
                            "{} {} {} {} {}",
                            l.at,
                            l.dsn,
                            if l.session.is_empty() {
                                "-"
                            } else {
                                &l.session
                            },
                            if l.ok { "ok" } else { "REFUSED" },
                            l.event
                        );
                    }
                }
                return Ok(());
            }
            let st = store.status()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{:<34} {:<14} {:>7} {:>9} {:>8}  last refusal",
                    "DSN", "DIK1", "queued", "delivered", "refusals"
                );
                for s in st {
                    println!(
                        "{:<34} {:<14} {:>7} {:>9} {:>8}  {}",
                        s.dsn,
                        match (s.kind, s.dik1, &s.dik1_range, &s.dik1_batch) {
                            ("range", ..) => "range".to_string(),
                            ("batch", ..) => format!("batch ({} DSNs)", s.members.unwrap_or(0)),
                            (_, true, _, Some(b)) => format!("batch {b}"),
                            (_, true, Some(_), _) => "range".to_string(),
                            (_, true, None, None) => "yes".to_string(),
                            _ => "no".to_string(),
                        },
                        s.queued,
                        s.delivered,
                        s.refusals,
                        s.last_refusal.unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        RksCommand::Serve {
            dir,
            listen,
            tls_cert,
            tls_key,
            db,
        } => {
            let store = RksStore::open(&dir, db.database.as_deref())?;
            tracing::info!(database = %store.describe(), "RKS loaded");
            let (working, sig) = store.working()?;
            let server = Arc::new(Server::new(store, working, sig).map_err(|e| e.to_string())?);
            let router = Router::new()
                .route(RKS_PATH, post(exchange))
                .layer(DefaultBodyLimit::max(64 << 10))
                .with_state(server.clone());
            let router = crate::ops::instrument(router, Arc::new(RksProbe(server)));
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(crate::http::Tls { cert, key }),
                _ => None,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the runtime: {e}"))?
                .block_on(crate::http::serve("RKS", &listen, router, tls.as_ref()))
                .map_err(|e| format!("{listen}: {e}"))
        }
    }
}

/// `/readyz` and `/metrics` of the key server ask its database.
struct RksProbe(Arc<Server<RksStore>>);

impl crate::ops::Probe for RksProbe {
    fn ready(&self) -> Result<(), crate::http::Refusal> {
        crate::ops::Probe::ready(self.0.directory().db())
    }
    fn pool_status(&self) -> Option<crate::ops::PoolStatus> {
        self.0.directory().db().pool_status()
    }
}

/// One frame in, one frame out (the protocol logic runs off the async threads: it
/// does RSA and database work). The protocol answers every refusal in a frame of its
/// own; only a worker that died gives an empty reply (a broken exchange to the
/// device, which starts again).
async fn exchange(State(server): State<Arc<Server<RksStore>>>, body: Bytes) -> impl IntoResponse {
    let reply = crate::http::blocking(move || Ok(server.handle(&body)))
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/octet-stream")], reply)
}
