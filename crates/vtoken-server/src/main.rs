//! `vtoken-server`: the servers of vtoken's protocols: the certificate authority for
//! token enrollment (SPEC E6–E10, EST RFC 7030) and the relay in front of it.

#![forbid(unsafe_code)]

mod authority;
mod bank;
mod bank_http;
mod bank_store;
mod certsrv;
mod completions;
mod db;
mod http;
mod ops;
mod relay;
mod rks;
mod rks_store;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use vtoken_pki::{LocalCa, SerialRange, Usage, DEFAULT_LEAF_DAYS};

const EXAMPLES: &str = "\
Examples:
  vtoken-server ca init --dir /srv/vtoken-ca --name 'Example token CA'
  vtoken enroll operator-request --operator station-1 -o station-1.csr   # on the station
  vtoken-server ca operator add --dir /srv/vtoken-ca --name station-1 --csr station-1.csr \\
      -o station-1.pem                       # then: vtoken enroll operator-install ...
  vtoken-server ca serve --dir /srv/vtoken-ca --listen 127.0.0.1:8440 \\
      --serial-range 0000000000000000-00000000FFFFFFFF
  vtoken-server ca revoke --dir /srv/vtoken-ca --serial 00000000000000A1
  vtoken-server relay serve --listen 127.0.0.1:8441 --upstream http://127.0.0.1:8440 \\
      --station-cert station-1.pem --client-cert relay.pem --client-key relay.key \\
      --verify --serial-range 0000000000000000-00000000FFFFFFFF

  # EST with curl (RFC 7030):
  curl -s http://127.0.0.1:8440/.well-known/est/cacerts | openssl base64 -d |
      openssl pkcs7 -inform DER -print_certs

Logs go to stderr; VTOKEN_LOG sets the level (e.g. VTOKEN_LOG=debug), --log-format json
(or VTOKEN_LOG_FORMAT=json) writes one JSON object a line. Every line logged while
serving a request names its id (the x-request-id header, returned on every response).";

/// vtoken servers: the enrollment certificate authority and its relay.
#[derive(Parser)]
#[command(name = "vtoken-server", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr: text, or json (one object a line, for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "VTOKEN_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The certificate authority: issues certificates to tokens (E7, E8).
    #[command(subcommand)]
    Ca(CaCommand),
    /// The relay between issuing stations and the CA (E6).
    #[command(subcommand)]
    Relay(RelayCommand),
    /// The certificate server: the CA publishes issued certificates to it, stations
    /// collect them later by token serial (E8, seed 001 steps 310-311).
    #[command(subcommand)]
    Certs(certsrv::CertsCommand),
    /// The remote key server: terminal master key download with mutual
    /// authentication (seed 003, SPEC K1–K5).
    #[command(subcommand)]
    Rks(rks::RksCommand),
    /// The bank of the token e-wallet (SPEC W1-W7): accounts, wallet certificates, loads.
    #[command(subcommand)]
    Bank(bank::BankCommand),
    /// Print shell completions (bash, zsh, fish) or the man page (man).
    #[command(
        after_help = "Examples:\n  vtoken-server completions bash > ~/.local/share/bash-completion/completions/vtoken-server\n  vtoken-server completions man | man -l -\n  vtoken-server completions man --dir ~/.local/share/man/man1"
    )]
    Completions(completions::Args),
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a CA: ECDSA P-256 root key (ca.key, mode 0600), self-signed certificate
    /// (ca.pem) and the certificate database (ca.db) in DIR.
    #[command(
        after_help = "Example:\n  vtoken-server ca init --dir /srv/vtoken-ca --name 'Example token CA'"
    )]
    Init {
        /// Directory for the CA files (created if missing; an existing CA is never overwritten).
        #[arg(long)]
        dir: PathBuf,
        /// CA name (the certificate's CN).
        #[arg(long, default_value = "vtoken CA")]
        name: String,
        #[command(flatten)]
        db: db::DatabaseArgs,
    },
    /// Register, list and remove operators: the issuing stations and relays allowed to
    /// request certificates, and the profiles each may request.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Revoke certificates by certificate serial or token serial: the token may then
    /// enroll a new key (a live certificate for another key is refused with 409).
    #[command(
        after_help = "Example:\n  vtoken-server ca revoke --dir /srv/vtoken-ca --serial 00000000000000A1"
    )]
    Revoke {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// A certificate serial (hex) or a token serial (revokes all its live certificates).
        #[arg(long)]
        serial: String,
        #[command(flatten)]
        db: db::DatabaseArgs,
    },
    /// Serve the enrollment API and EST on LISTEN.
    #[command(after_help = "\
Every POST must be signed by a registered operator (headers x-vtoken-operator-cert,
-time, -nonce, -profile, -signature; see vtoken_pki::auth): 401 without a valid
signature or with a replayed nonce, 403 for an unregistered operator or a profile its
policy does not allow. The certificate's usage is the operator's policy profile (the
one it asks for in x-vtoken-profile if allowed, else its first), never the request's.

Endpoints:
  POST /api/v1/enroll                 DER PKCS#10 (application/pkcs10) -> DER certificate
  POST /api/v1/enroll-batch           {\"csrs\": [base64, ...]} -> {\"results\": [{serial, cert|error}, ...]}
  GET  /api/v1/certs/SERIAL           newest certificate of token SERIAL (404 if none)
  GET  /api/v1/ca.pem                 the CA certificate
  GET  /.well-known/est/cacerts       EST: base64 certs-only PKCS#7
  POST /.well-known/est/simpleenroll  EST: base64 PKCS#10 -> base64 certs-only PKCS#7
Refusals: 400 bad request or signature, 401/403 (above), 403 serial outside the range,
409 the token holds a live certificate for another key (revoke it first), 429 rate limit
(JSON {\"error\": ...}). Re-enrolling the same token, key and profile returns the stored
certificate.

Examples:
  vtoken-server ca serve --dir /srv/vtoken-ca --listen 127.0.0.1:8440 \\
      --serial-range 0000000000000000-00000000FFFFFFFF
  # several instances on one PostgreSQL database (each with a copy of the CA directory):
  VTOKEN_DATABASE=postgres://vtoken:secret@db.example.org/vtoken \\
      vtoken-server ca serve --dir /srv/vtoken-ca --listen 0.0.0.0:8440 --serial-range LO-HI
Operations: GET /healthz, /readyz (503 while the database is unreachable), /metrics
(Prometheus text).")]
    Serve {
        /// CA directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8440")]
        listen: String,
        /// Token serials this CA certifies, LO-HI in hex (e.g. 0000000000000000-00000000FFFFFFFF).
        #[arg(long)]
        serial_range: SerialRange,
        /// Validity of issued certificates, in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
        /// Requests kept in the database's request log (older ones are deleted).
        #[arg(long, default_value_t = store::DEFAULT_LOG_KEEP)]
        log_keep: u64,
        /// Publish every issued certificate to the certificate server at URL
        /// (`vtoken-server certs serve`), which records the "certificate ready"
        /// notice stations poll (E8, steps 310-311).
        #[arg(long, value_name = "URL")]
        publish_to: Option<String>,
        #[command(flatten)]
        db: db::DatabaseArgs,
        #[command(flatten)]
        limit: LimitArgs,
        #[command(flatten)]
        tls: TlsArgs,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Register an operator from its certificate (--cert), or from a PKCS#10 request
    /// (--csr) for which the CA issues an operator certificate (written to -o).
    #[command(after_help = "\
Examples:
  vtoken-server ca operator add --dir ca --name station-1 --csr station-1.csr -o station-1.pem
  vtoken-server ca operator add --dir ca --name relay --cert relay.pem --profiles device,client")]
    Add {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Unique operator name (shown in the log).
        #[arg(long)]
        name: String,
        /// The operator's certificate (PEM or DER); registered exactly (by SHA-256).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "csr",
            conflicts_with = "csr"
        )]
        cert: Option<PathBuf>,
        /// A PKCS#10 request signed by the operator's key (from `vtoken enroll operator-request`).
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// With --csr: where to write the issued operator certificate (PEM) [default: stdout].
        #[arg(short = 'o', long, value_name = "FILE", requires = "csr")]
        out: Option<PathBuf>,
        /// Profiles it may request, comma-separated; the first is its default
        /// (device, client, signing, operator).
        #[arg(long, value_delimiter = ',', default_value = "device", value_parser = parse_usage)]
        profiles: Vec<Usage>,
        /// With --csr: validity of the issued operator certificate, in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS, requires = "csr")]
        days: u32,
        #[command(flatten)]
        db: db::DatabaseArgs,
    },
    /// List the registered operators.
    List {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        db: db::DatabaseArgs,
    },
    /// Remove an operator (by name or certificate fingerprint): its requests are refused.
    Remove {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Operator name or SHA-256 fingerprint.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: db::DatabaseArgs,
    },
}

fn parse_usage(s: &str) -> Result<Usage, String> {
    s.parse().map_err(|e: vtoken_pki::Error| e.to_string())
}

/// The per-client rate limit.
#[derive(clap::Args)]
struct LimitArgs {
    /// Requests a minute each client may make (per peer address, and per operator on
    /// enrollment); bursts up to the same number. Beyond it: 429.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: u32,
}

/// HTTPS (rustls): both or neither.
#[derive(clap::Args)]
struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (server certificate first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    fn get(&self) -> Option<http::Tls> {
        Some(http::Tls {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Forward the enrollment API and EST to the CA at UPSTREAM.
    #[command(after_help = "\
The relay serves only the issuing stations agreed with it (--station-cert: their
operator certificates; every POST signed as for the CA, 401/403 otherwise) and forwards
their requests signed with its own credential (--client-cert/--client-key), which the CA
must know (`vtoken-server ca operator add --name relay --cert relay.pem ...`): the CA
applies the relay's policy. With --verify the relay also checks each request's
signature and that its token serial lies in --serial-range, and refuses bad requests
itself (400/403) without contacting the CA.

Example:
  vtoken-server relay serve --listen 127.0.0.1:8441 --upstream http://127.0.0.1:8440 \\
      --verify --serial-range 0000000000000000-00000000FFFFFFFF")]
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8441")]
        listen: String,
        /// The CA's base URL.
        #[arg(long)]
        upstream: String,
        /// Check request signatures and serial ranges before forwarding.
        #[arg(long, requires = "serial_range")]
        verify: bool,
        /// Token serials the relay lets through, LO-HI in hex (with --verify).
        #[arg(long, requires = "verify")]
        serial_range: Option<SerialRange>,
        /// For an https:// upstream: trust only these PEM root certificates
        /// [default: the Mozilla roots].
        #[arg(long, value_name = "PEM")]
        upstream_tls_ca: Option<PathBuf>,
        /// Operator certificate(s) of a station this relay serves (PEM, one or more per
        /// file; repeat the option for more files).
        #[arg(long, value_name = "PEM", required = true)]
        station_cert: Vec<PathBuf>,
        /// The relay's own operator certificate at the CA (PEM).
        #[arg(long, value_name = "PEM")]
        client_cert: PathBuf,
        /// The private key of --client-cert (PKCS#8 PEM, P-256 or RSA; keep it 0600).
        #[arg(long, value_name = "PEM")]
        client_key: PathBuf,
        #[command(flatten)]
        limit: LimitArgs,
        #[command(flatten)]
        tls: TlsArgs,
    },
}

/// A certificate file, PEM (first certificate) or DER.
fn read_cert(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match std::str::from_utf8(&data) {
        Ok(t) if t.contains("-----BEGIN") => {
            vtoken_pki::certs_from_pem(t).map_err(|e| format!("{}: {e}", path.display()))
        }
        _ => Ok(vec![data]),
    }
}

fn operator_command(cmd: OperatorCommand) -> Result<(), String> {
    let open = |dir: &PathBuf, db: &db::DatabaseArgs| {
        if !dir.join(vtoken_pki::CA_CERT_FILE).exists() {
            return Err(format!(
                "{} is not a CA directory (create one with `vtoken-server ca init`)",
                dir.display()
            ));
        }
        authority::open_store(dir, db.database.as_deref())
    };
    match cmd {
        OperatorCommand::Add {
            dir,
            name,
            cert,
            csr,
            out,
            profiles,
            days,
            db,
        } => {
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(format!(
                    "operator name {name:?}: 1 to 64 printable characters"
                ));
            }
            let store = open(&dir, &db)?;
            let issued = csr.is_some();
            let der = match (cert, csr) {
                (Some(c), _) => read_cert(&c)?.remove(0),
                (None, Some(r)) => {
                    let ca = LocalCa::load(&dir).map_err(|e| e.to_string())?;
                    let data = std::fs::read(&r).map_err(|e| format!("{}: {e}", r.display()))?;
                    let req = match std::str::from_utf8(&data) {
                        Ok(t) if t.contains("-----BEGIN") => {
                            der::pem::decode_vec(t.trim().as_bytes())
                                .map(|(_, d)| d)
                                .map_err(|e| format!("{}: {e}", r.display()))?
                        }
                        _ => data,
                    };
                    let info = vtoken_pki::verify_csr(&req)
                        .map_err(|e| format!("{}: {e}", r.display()))?;
                    let info = vtoken_pki::CsrInfo {
                        usage: Usage::Operator,
                        ..info
                    };
                    let der = ca.issue(&info, days).map_err(|e| e.to_string())?;
                    // Recorded, so `ca revoke --serial` revokes it and operator
                    // authorisation (E1, step 201) refuses it from then on.
                    let checked = vtoken_pki::verify_chain(
                        &der,
                        &[],
                        ca.cert_der(),
                        // A minute back: a certificate of --days 0 still checks.
                        std::time::SystemTime::now() - std::time::Duration::from_secs(60),
                    )
                    .map_err(|e| e.to_string())?;
                    store
                        .insert_operator_cert(&checked.cert_serial, &info.serial, &der)
                        .map_err(|e| e.to_string())?;
                    der
                }
                (None, None) => return Err("give --cert or --csr".into()),
            };
            let fingerprint = vtoken_pki::auth::fingerprint(&der);
            store
                .add_operator(&store::Operator {
                    name: name.clone(),
                    fingerprint: fingerprint.clone(),
                    cert: der.clone(),
                    profiles: profiles.clone(),
                })
                .map_err(|e| match e {
                    db::Error::Duplicate(_) => {
                        format!("an operator named {name:?} or with this certificate is already registered")
                    }
                    e => e.to_string(),
                })?;
            let pem = vtoken_pki::cert_der_to_pem(&der);
            match out {
                Some(f) => std::fs::write(&f, &pem).map_err(|e| format!("{}: {e}", f.display()))?,
                None if issued => print!("{pem}"),
                None => {}
            }
            eprintln!(
                "registered operator {name} (certificate SHA-256 {fingerprint}), profiles {}",
                profiles
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            Ok(())
        }
        OperatorCommand::List { dir, db } => {
            for op in open(&dir, &db)?.operators().map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}",
                    op.name,
                    op.fingerprint,
                    op.profiles
                        .iter()
                        .map(|u| u.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            Ok(())
        }
        OperatorCommand::Remove { dir, name, db } => {
            let n = open(&dir, &db)?
                .remove_operator(&name)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("no operator {name:?}"));
            }
            eprintln!("removed operator {name}");
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VTOKEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // The request's span (its id, method, route) rides on every line.
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the runtime: {e}"))
    };
    match cli.command {
        Command::Rks(cmd) => rks::run(cmd),
        Command::Certs(cmd) => certsrv::run(cmd),
        Command::Bank(c) => bank::run(c),
        Command::Completions(args) => {
            completions::run(&args, <Cli as clap::CommandFactory>::command())
        }
        Command::Ca(CaCommand::Init { dir, name, db }) => {
            // The database first: a wrong --database leaves no half-made CA behind.
            let target = db::Target::resolve(db.database.as_deref(), &dir.join(store::DB_FILE))
                .map_err(|e| e.to_string())?;
            if matches!(target, db::Target::Postgres(_)) {
                // A shared database holds one CA: a second `ca init` on it would mix
                // two CAs' certificates under one serial counter.
                let store = authority::open_store(&dir, db.database.as_deref())?;
                let certs = store.cert_count().map_err(|e| e.to_string())?;
                let operators = store.operators().map_err(|e| e.to_string())?.len();
                if certs > 0 || operators > 0 {
                    return Err(format!(
                        "{} already holds a CA ({certs} certificates, {operators} operators): \
                         give each CA its own database; the other instances of that CA need \
                         a copy of its directory (ca.pem, ca.key), not `ca init`",
                        store.describe()
                    ));
                }
            }
            let ca = LocalCa::init(&dir, &name).map_err(|e| e.to_string())?;
            let store = authority::open_store(&dir, db.database.as_deref())?;
            println!(
                "created CA {} in {} ({}, {}; database {})",
                ca.subject(),
                dir.display(),
                vtoken_pki::CA_CERT_FILE,
                vtoken_pki::CA_KEY_FILE,
                store.describe()
            );
            Ok(())
        }
        Command::Ca(CaCommand::Operator(cmd)) => operator_command(cmd),
        Command::Ca(CaCommand::Revoke { dir, serial, db }) => {
            let store = authority::open_store(&dir, db.database.as_deref())?;
            let revoked = store.revoke(serial.trim()).map_err(|e| e.to_string())?;
            if revoked.is_empty() {
                return Err(format!(
                    "no live certificate with serial or token serial {serial}"
                ));
            }
            for s in revoked {
                println!("revoked certificate {s}");
            }
            Ok(())
        }
        Command::Ca(CaCommand::Serve {
            dir,
            listen,
            serial_range,
            days,
            log_keep,
            publish_to,
            db,
            limit,
            tls,
        }) => {
            let mut authority = authority::Authority::open(
                &dir,
                db.database.as_deref(),
                serial_range,
                days,
                log_keep,
            )?;
            authority.publish_to = publish_to;
            tracing::info!(
                ca = %authority.subject(),
                database = %authority.database(),
                range = %serial_range,
                issued = authority.issued(),
                "CA loaded"
            );
            let router = http::router(Arc::new(authority), limit.rate_limit);
            runtime()?
                .block_on(http::serve("CA", &listen, router, tls.get().as_ref()))
                .map_err(|e| format!("{listen}: {e}"))
        }
        Command::Relay(RelayCommand::Serve {
            listen,
            upstream,
            verify,
            serial_range,
            upstream_tls_ca,
            station_cert,
            client_cert,
            client_key,
            limit,
            tls,
        }) => {
            if let Some(f) = &upstream_tls_ca {
                let pem = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
                vtoken_pki::client::trust_tls_roots(&pem)
                    .map_err(|e| format!("{}: {e}", f.display()))?;
            }
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&client_key)
                    .map_err(|e| format!("{}: {e}", client_key.display()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        "the relay key {} is readable by others (mode {:o}): chmod 600 it",
                        client_key.display(),
                        mode & 0o777
                    );
                }
            }
            let credential =
                vtoken_pki::auth::Credential::from_pem_files(&client_cert, &client_key)
                    .map_err(|e| format!("relay credential: {e}"))?;
            let mut stations = Vec::new();
            for f in &station_cert {
                for (i, der) in read_cert(f)?.into_iter().enumerate() {
                    let name = vtoken_pki::cert_token_serial(&der)
                        .map(|s| format!("station {s}"))
                        .unwrap_or_else(|_| format!("{}#{i}", f.display()));
                    stations.push((name, der));
                }
            }
            let relay = relay::Relay::new(
                upstream.trim_end_matches('/').to_string(),
                if verify { serial_range } else { None },
                stations,
                credential,
            );
            tracing::info!(%upstream, verify, stations = relay.stations.len(), "relay");
            let router = http::router(Arc::new(relay), limit.rate_limit);
            runtime()?
                .block_on(http::serve("relay", &listen, router, tls.get().as_ref()))
                .map_err(|e| format!("{listen}: {e}"))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vtoken-server: {e}");
            ExitCode::FAILURE
        }
    }
}
