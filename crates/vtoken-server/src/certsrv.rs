//! The certificate server (E8, seed 001 steps 310–311): the CA publishes every
//! certificate it issues here ("the security terminal sends the certificate to the
//! certificate server") and the publication is the "certificate ready" notice the
//! station polls; the station downloads the certificates later, by token serial
//! (`vtoken enroll collect`), for batches issued asynchronously.
//!
//! Its state is one table (SQLite `certsrv.db` in its directory, or PostgreSQL schema
//! `certsrv` shared by several instances, see [`crate::db`]): one row per published
//! certificate, whose id is the notice's sequence number. Ids are handed out in
//! commit order (one publication at a time: SQLite's single writer, a PostgreSQL
//! advisory lock), so a station that has read the notices up to N never misses one
//! committed later with a lower id. Publishing needs
//! no credential because a certificate authenticates itself: the server accepts only
//! certificates that chain to the CA certificate it was started with (`--ca-cert`),
//! so nobody can plant a certificate the station would not also refuse. Publishing
//! the same certificate again is a no-op (the CA may retry).
//!
//! | method, path | request | answer |
//! |---|---|---|
//! | `POST /api/v1/publish` | [`Publish`] JSON | [`Published`] JSON |
//! | `GET /api/v1/notices?after=N` | — | [`Notices`] JSON (at most [`MAX_NOTICES`]) |
//! | `GET /api/v1/certs/{serial}` | — | newest certificate of the token, DER; 404 if none |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use clap::Subcommand;
use vtoken_pki::api::{Notice, Notices, Publish, Published, CT_CERT, MAX_NOTICES};

use crate::db::{params, DatabaseArgs, Db, Dialect, Migration, Mode, Role, Step, Target};
use crate::http::{blocking, Refusal};

/// File name of the database in the certificate server's directory.
pub const DB_FILE: &str = "certsrv.db";

/// The certificate server's schema versions: 1 is the schema from before
/// versioning (SQLite: `CREATE ... IF NOT EXISTS`, so an existing `certsrv.db`
/// opens with its data).
pub const ROLE: Role = Role {
    name: "certsrv",
    migrations: &[Migration {
        version: 1,
        sqlite: Step::Sql(SCHEMA),
        postgres: Step::Sql(PG_V1),
    }],
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS published (
    id           INTEGER PRIMARY KEY,
    token_serial TEXT NOT NULL,
    cert_serial  TEXT NOT NULL UNIQUE,
    cert         BLOB NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS published_by_token ON published (token_serial);
";

const PG_V1: &str = "
CREATE TABLE published (
    id           BIGINT PRIMARY KEY,
    token_serial TEXT NOT NULL,
    cert_serial  TEXT NOT NULL UNIQUE,
    cert         BYTEA NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX published_by_token ON published (token_serial);
";

/// `vtoken-server certs`.
#[derive(Subcommand)]
pub enum CertsCommand {
    /// Serve the certificate server on LISTEN: the CA publishes to it (`ca serve
    /// --publish-to URL`), stations collect from it (`vtoken enroll collect`).
    #[command(after_help = "\
Endpoints:
  POST /api/v1/publish          {\"cert\": base64 DER} -> {\"notice\": N, \"token_serial\": ...}
                                (only certificates of --ca-cert; republishing is a no-op)
  GET  /api/v1/notices?after=N  {\"notices\": [{id, token_serial, cert_serial}, ...]}
  GET  /api/v1/certs/SERIAL     newest certificate of token SERIAL, DER (404 if none)
  GET  /healthz, /readyz, /metrics   operations (readiness follows the database)

Examples:
  vtoken-server certs serve --dir /srv/vtoken-certs --ca-cert /srv/vtoken-ca/ca.pem \\
      --listen 127.0.0.1:8442
  vtoken-server ca serve --dir /srv/vtoken-ca --serial-range 0-FFFFFFFF \\
      --publish-to http://127.0.0.1:8442
  # several instances on one PostgreSQL database:
  VTOKEN_DATABASE=postgres://vtoken@db.internal/vtoken \\
      vtoken-server certs serve --dir /srv/vtoken-certs --ca-cert ca.pem")]
    Serve {
        /// Directory of the certificate server's database (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// The CA certificate (PEM or DER) published certificates must chain to.
        #[arg(long, value_name = "FILE")]
        ca_cert: PathBuf,
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8442")]
        listen: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

struct CertServer {
    db: Db,
    ca_cert: Vec<u8>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn db_err(e: crate::db::Error) -> Refusal {
    Refusal::database(&e)
}

impl CertServer {
    fn open(dir: &Path, database: Option<&str>, ca_cert: Vec<u8>) -> Result<CertServer, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let target = Target::resolve(database, &dir.join(DB_FILE)).map_err(|e| e.to_string())?;
        let db = Db::open(&target, &ROLE).map_err(|e| format!("{}: {e}", target_name(&target)))?;
        Ok(CertServer { db, ca_cert })
    }

    /// Step 310: stores a certificate of the CA and records its notice (one row, so
    /// the notice exists exactly when the certificate does). Publications are
    /// serialised (SQLite's single writer; on PostgreSQL an advisory lock held to the
    /// commit), so the next id is the largest committed one plus one and ids appear
    /// in commit order.
    fn publish(&self, p: &Publish) -> Result<Published, Refusal> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(p.cert.trim())
            .map_err(|_| Refusal::bad_request("the certificate is not base64"))?;
        let v =
            vtoken_pki::verify_chain(&der, &[], &self.ca_cert, SystemTime::now()).map_err(|e| {
                Refusal {
                    status: 403,
                    message: format!("not a certificate of this server's CA: {e}"),
                }
            })?;
        let token = v.token_serial.to_ascii_uppercase();
        let id = self
            .db
            .tx(Mode::ReadCommitted, |t| {
                if t.dialect() == Dialect::Postgres {
                    t.query(
                        "SELECT pg_advisory_xact_lock(hashtextextended('vtoken certsrv publish', 0))",
                        &[],
                    )?;
                }
                if let Some(r) = t.query_opt(
                    "SELECT id FROM published WHERE cert_serial = $1",
                    params![&v.cert_serial],
                )? {
                    return r.int(0);
                }
                t.query_one(
                    "INSERT INTO published (id, token_serial, cert_serial, cert, at)
                     SELECT coalesce(max(id), 0) + 1, $1, $2, $3, $4 FROM published
                     RETURNING id",
                    params![&token, &v.cert_serial, &der, now()],
                )?
                .int(0)
            })
            .map_err(db_err)?;
        tracing::info!(token = %v.token_serial, cert = %v.cert_serial, notice = id, "published");
        Ok(Published {
            notice: id as u64,
            token_serial: v.token_serial,
            cert_serial: v.cert_serial,
        })
    }

    fn notices(&self, after: u64) -> Result<Notices, Refusal> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = self
            .db
            .query(
                "SELECT id, token_serial, cert_serial FROM published WHERE id > $1
                 ORDER BY id LIMIT $2",
                params![after, MAX_NOTICES as i64],
            )
            .map_err(db_err)?;
        let notices = rows
            .iter()
            .map(|r| {
                Ok(Notice {
                    id: r.int(0)? as u64,
                    token_serial: r.text(1)?,
                    cert_serial: r.text(2)?,
                })
            })
            .collect::<crate::db::Result<_>>()
            .map_err(db_err)?;
        Ok(Notices { notices })
    }

    fn latest(&self, serial: &str) -> Result<Option<Vec<u8>>, Refusal> {
        self.db
            .query_opt(
                "SELECT cert FROM published WHERE token_serial = upper($1) ORDER BY id DESC LIMIT 1",
                params![serial],
            )
            .and_then(|r| r.map(|r| r.blob(0)).transpose())
            .map_err(db_err)
    }
}

fn target_name(t: &Target) -> String {
    match t {
        Target::Sqlite(p) => p.display().to_string(),
        Target::Postgres(_) => "PostgreSQL".into(),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<Response, Refusal> {
    let body = serde_json::to_vec(v).map_err(|e| Refusal::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn publish(State(s): State<Arc<CertServer>>, body: Bytes) -> Result<Response, Refusal> {
    let p: Publish = serde_json::from_slice(&body)
        .map_err(|e| Refusal::bad_request(format!("publish body: {e}")))?;
    json(&blocking(move || s.publish(&p)).await?)
}

#[derive(serde::Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

async fn notices(
    State(s): State<Arc<CertServer>>,
    Query(q): Query<After>,
) -> Result<Response, Refusal> {
    json(&blocking(move || s.notices(q.after)).await?)
}

async fn cert(
    State(s): State<Arc<CertServer>>,
    UrlPath(serial): UrlPath<String>,
) -> Result<Response, Refusal> {
    let lookup = serial.clone();
    match blocking(move || s.latest(&lookup)).await? {
        Some(der) => Ok(([(header::CONTENT_TYPE, CT_CERT)], der).into_response()),
        None => Err(Refusal {
            status: 404,
            message: format!("no certificate published for token {serial}"),
        }),
    }
}

/// `/readyz` and `/metrics` of the certificate server ask its database.
struct CertsProbe(Arc<CertServer>);

impl crate::ops::Probe for CertsProbe {
    fn ready(&self) -> Result<(), Refusal> {
        crate::ops::Probe::ready(&self.0.db)
    }
    fn pool_status(&self) -> Option<crate::ops::PoolStatus> {
        self.0.db.pool_status()
    }
}

fn router(s: Arc<CertServer>) -> Router {
    let api = Router::new()
        .route(vtoken_pki::api::PUBLISH, post(publish))
        .route(vtoken_pki::api::NOTICES, get(notices))
        .route(&format!("{}:serial", vtoken_pki::api::CERTS), get(cert))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(s.clone());
    crate::ops::instrument(api, Arc::new(CertsProbe(s)))
}

/// `vtoken-server certs ...`.
pub fn run(cmd: CertsCommand) -> Result<(), String> {
    let CertsCommand::Serve {
        dir,
        ca_cert,
        listen,
        db,
    } = cmd;
    let data = std::fs::read(&ca_cert).map_err(|e| format!("{}: {e}", ca_cert.display()))?;
    let ca = match std::str::from_utf8(&data) {
        Ok(t) if t.contains("-----BEGIN") => vtoken_pki::certs_from_pem(t)
            .map_err(|e| format!("{}: {e}", ca_cert.display()))?
            .remove(0),
        _ => data,
    };
    let server = Arc::new(CertServer::open(&dir, db.database.as_deref(), ca)?);
    tracing::info!(database = %server.db.describe(), "certificate server loaded");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?
        .block_on(crate::http::serve(
            "certificate server",
            &listen,
            router(server),
            None,
        ))
        .map_err(|e| e.to_string())
}
