//! `vtoken-server`: the servers of vtoken's protocols. Today: the certificate authority
//! for token enrollment (SPEC E6–E10, EST RFC 7030) and the relay in front of it.

#![forbid(unsafe_code)]

mod authority;
mod http;
mod relay;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use vtoken_pki::{LocalCa, SerialRange, DEFAULT_LEAF_DAYS};

const EXAMPLES: &str = "\
Examples:
  vtoken-server ca init --dir /srv/vtoken-ca --name 'Example token CA'
  vtoken-server ca serve --dir /srv/vtoken-ca --listen 127.0.0.1:8440 \\
      --serial-range 0000000000000000-00000000FFFFFFFF
  vtoken-server relay serve --listen 127.0.0.1:8441 --upstream http://127.0.0.1:8440 \\
      --verify --serial-range 0000000000000000-00000000FFFFFFFF

  # EST with curl (RFC 7030):
  curl -s http://127.0.0.1:8440/.well-known/est/cacerts | openssl base64 -d |
      openssl pkcs7 -inform DER -print_certs

Logs go to stderr; VTOKEN_LOG sets the level (e.g. VTOKEN_LOG=debug).";

/// vtoken servers: the enrollment certificate authority and its relay.
#[derive(Parser)]
#[command(name = "vtoken-server", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The certificate authority: issues certificates to tokens (E7, E8).
    #[command(subcommand)]
    Ca(CaCommand),
    /// The relay between issuing stations and the CA (E6).
    #[command(subcommand)]
    Relay(RelayCommand),
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
    },
    /// Serve the enrollment API and EST on LISTEN.
    #[command(after_help = "\
Endpoints:
  POST /api/v1/enroll                 DER PKCS#10 (application/pkcs10) -> DER certificate
  POST /api/v1/enroll-batch           {\"csrs\": [base64, ...]} -> {\"results\": [{serial, cert|error}, ...]}
  GET  /api/v1/certs/SERIAL           newest certificate of token SERIAL (404 if none)
  GET  /api/v1/ca.pem                 the CA certificate
  GET  /.well-known/est/cacerts       EST: base64 certs-only PKCS#7
  POST /.well-known/est/simpleenroll  EST: base64 PKCS#10 -> base64 certs-only PKCS#7
Refusals: 400 bad request or signature, 403 serial outside the range (JSON {\"error\": ...}).
Re-enrolling the same token, key and usage returns the stored certificate.

Example:
  vtoken-server ca serve --dir /srv/vtoken-ca --listen 127.0.0.1:8440 \\
      --serial-range 0000000000000000-00000000FFFFFFFF")]
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
        #[command(flatten)]
        tls: TlsArgs,
    },
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
With --verify the relay checks each request's signature and that its token serial lies
in --serial-range, and refuses bad requests itself (400/403) without contacting the CA.

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
        #[command(flatten)]
        tls: TlsArgs,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VTOKEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli) -> Result<(), String> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the runtime: {e}"))
    };
    match cli.command {
        Command::Ca(CaCommand::Init { dir, name }) => {
            let ca = LocalCa::init(&dir, &name).map_err(|e| e.to_string())?;
            let db = dir.join(store::DB_FILE);
            store::Store::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
            println!(
                "created CA {} in {} ({}, {}, {})",
                ca.subject(),
                dir.display(),
                vtoken_pki::CA_CERT_FILE,
                vtoken_pki::CA_KEY_FILE,
                store::DB_FILE
            );
            Ok(())
        }
        Command::Ca(CaCommand::Serve {
            dir,
            listen,
            serial_range,
            days,
            tls,
        }) => {
            let authority = authority::Authority::open(&dir, serial_range, days)?;
            tracing::info!(
                ca = %authority.subject(),
                range = %serial_range,
                issued = authority.issued(),
                "CA loaded"
            );
            let router = http::router(Arc::new(authority));
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
            tls,
        }) => {
            if let Some(f) = &upstream_tls_ca {
                let pem = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
                vtoken_pki::client::trust_tls_roots(&pem)
                    .map_err(|e| format!("{}: {e}", f.display()))?;
            }
            let relay = relay::Relay {
                upstream: upstream.trim_end_matches('/').to_string(),
                verify: if verify { serial_range } else { None },
            };
            tracing::info!(%upstream, verify, "relay");
            let router = http::router(Arc::new(relay));
            runtime()?
                .block_on(http::serve("relay", &listen, router, tls.get().as_ref()))
                .map_err(|e| format!("{listen}: {e}"))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vtoken-server: {e}");
            ExitCode::FAILURE
        }
    }
}
