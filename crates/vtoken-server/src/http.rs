//! The HTTP API (paths in [`vtoken_pki::api`]) over a [`Backend`]: the CA itself (E7,
//! E8) or a relay in front of it (E6).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use vtoken_pki::api::{
    self, BatchItem, BatchRequest, BatchResponse, ErrorBody, OperatorAnswer, OperatorAuthorised,
    OperatorChallenge,
};
use vtoken_pki::auth::Authenticated;
use vtoken_pki::{cert_der_to_pem, pkcs7, Usage};

/// Why a request was not served: an HTTP status and a one-line message.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status code.
    pub status: u16,
    /// Message for the client and the log.
    pub message: String,
}

impl Refusal {
    /// 400: malformed request or bad signature.
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            message: message.into(),
        }
    }

    /// 500: the server's own failure.
    pub fn internal(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 500,
            message: message.into(),
        }
    }

    /// A storage failure: 503 while the database is unreachable (nothing was changed;
    /// the client may retry, a balancer may send it elsewhere), 500 otherwise.
    pub fn database(e: &crate::db::Error) -> Refusal {
        tracing::error!("database: {e}");
        Refusal {
            status: if matches!(e, crate::db::Error::Unavailable(_)) {
                503
            } else {
                500
            },
            message: format!("database: {e}"),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&ErrorBody {
            error: self.message,
        })
        .unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Who made an enrollment request, once authenticated and allowed by policy.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The operator's registered name (for the log).
    pub name: String,
    /// The profile to issue (CA: resolved from policy) or to ask for (relay: what the
    /// station asked; the CA applies the relay's policy).
    pub profile: Option<Usage>,
}

/// What answers the API: blocking calls, run off the async threads.
pub trait Backend: Send + Sync + 'static {
    /// Decide whether a request with a verified signature comes from a registered
    /// operator with a fresh nonce, and which profile it gets. 401/403 otherwise.
    fn authenticate(&self, auth: &Authenticated) -> Result<Caller, Refusal>;
    /// Record a request refused before it reached [`Backend::enroll`] (unauthenticated,
    /// unknown operator, rate limit).
    fn log_refusal(&self, client: &str, body: &[u8], refusal: &Refusal);
    /// One DER PKCS#10 request to a DER certificate.
    fn enroll(&self, caller: &Caller, csr_der: &[u8]) -> Result<Vec<u8>, Refusal>;
    /// A batch; per-request refusals go into the items.
    fn enroll_batch(&self, caller: &Caller, req: BatchRequest) -> Result<BatchResponse, Refusal>;
    /// The newest published certificate of a token.
    fn cert(&self, token_serial: &str) -> Result<Option<Vec<u8>>, Refusal>;
    /// The CA certificates (DER), the root last.
    fn ca_certs(&self) -> Result<Vec<Vec<u8>>, Refusal>;
    /// A fresh operator-authorisation challenge (E1, step 201).
    fn operator_challenge(&self) -> Result<OperatorChallenge, Refusal>;
    /// The verdict on an operator token's answer to a challenge.
    fn operator_authorise(&self, answer: &OperatorAnswer) -> Result<OperatorAuthorised, Refusal>;
    /// Whether this instance can serve now (`/readyz`): the CA checks its database.
    fn ready(&self) -> Result<(), Refusal> {
        Ok(())
    }
    /// The database pool's state, for `/metrics` (none without a pool).
    fn pool_status(&self) -> Option<crate::ops::PoolStatus> {
        None
    }
}

/// Token buckets keyed by client (peer address or operator): `per_minute` requests a
/// minute on average, bursts of up to `per_minute`.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Most clients tracked at once; idle full buckets are dropped beyond this.
const MAX_TRACKED: usize = 10_000;

impl RateLimiter {
    /// A limiter allowing `per_minute` requests a minute per client (at least 1).
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request from `key`'s bucket; a 429 refusal when it is empty.
    pub fn take(&self, key: &str) -> Result<(), Refusal> {
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_TRACKED && !b.contains_key(key) {
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < cap
            });
        }
        let (tokens, at) = b.entry(key.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(cap);
        *at = now;
        if *tokens < 1.0 {
            return Err(Refusal {
                status: 429,
                message: format!(
                    "too many requests from {key} (at most {} a minute); try again later",
                    self.per_minute
                ),
            });
        }
        *tokens -= 1.0;
        Ok(())
    }
}

/// The router's state: the backend and the rate limiter.
#[derive(Clone)]
pub struct AppState {
    backend: Arc<dyn Backend>,
    limiter: Arc<RateLimiter>,
}

/// `/readyz` and `/metrics` of a CA or relay ask its backend.
struct BackendProbe(Arc<dyn Backend>);

impl crate::ops::Probe for BackendProbe {
    fn ready(&self) -> Result<(), Refusal> {
        self.0.ready()
    }
    fn pool_status(&self) -> Option<crate::ops::PoolStatus> {
        self.0.pool_status()
    }
}

/// Decode one batch entry, or the error item for it.
pub fn batch_entry(b64: &str) -> Result<Vec<u8>, BatchItem> {
    STANDARD.decode(b64.trim()).map_err(|e| BatchItem {
        serial: String::new(),
        cert: None,
        error: Some(format!("request is not base64: {e}")),
    })
}

/// The batch result for one request.
pub fn batch_item(csr: &[u8], outcome: Result<Vec<u8>, Refusal>) -> BatchItem {
    let serial = vtoken_pki::csr_token_serial(csr).unwrap_or_default();
    match outcome {
        Ok(cert) => BatchItem {
            serial,
            cert: Some(STANDARD.encode(cert)),
            error: None,
        },
        Err(r) => BatchItem {
            serial,
            cert: None,
            error: Some(r.message),
        },
    }
}

/// A request body as DER: DER as is, PEM, or base64.
fn csr_from_body(body: &[u8]) -> Result<Vec<u8>, Refusal> {
    if body.first() == Some(&0x30) {
        return Ok(body.to_vec());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| Refusal::bad_request("request body is neither DER, PEM nor base64"))?;
    if text.trim_start().starts_with("-----BEGIN") {
        let (_, der) = der::pem::decode_vec(text.trim().as_bytes())
            .map_err(|e| Refusal::bad_request(format!("PEM request: {e}")))?;
        return Ok(der);
    }
    pkcs7::base64_decode(body).map_err(|e| Refusal::bad_request(e.to_string()))
}

/// Run `f` on the blocking pool (it signs, or waits for the database), inside the
/// request's log span so its log lines carry the request id.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| Refusal::internal(format!("worker failed: {e}")))?
}

/// Every enrollment request passes here: the operator's signature (401 without a
/// valid one), its registration, the nonce and the policy (403/401), and the
/// per-operator rate limit (429). Refusals are logged by the backend.
async fn admit(
    s: &AppState,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Caller, Refusal> {
    let backend = s.backend.clone();
    let limiter = s.limiter.clone();
    let path = uri.path().to_string();
    let headers = headers.clone();
    let body = body.clone();
    blocking(move || {
        let client = peer.ip().to_string();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let outcome = vtoken_pki::auth::verify_now(header, "POST", &path, &body)
            .map_err(|e| Refusal {
                status: 401,
                message: format!("{e}"),
            })
            .and_then(|auth| backend.authenticate(&auth))
            .and_then(|caller| {
                limiter.take(&format!("operator {}", caller.name))?;
                Ok(caller)
            });
        if let Err(r) = &outcome {
            tracing::warn!(%client, status = r.status, "refused: {}", r.message);
            backend.log_refusal(&client, &body, r);
        }
        outcome
    })
    .await
}

async fn limit_by_peer(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    match s.limiter.take(&peer.ip().to_string()) {
        Ok(()) => next.run(req).await,
        Err(r) => {
            tracing::warn!(client = %peer.ip(), "{}", r.message);
            r.into_response()
        }
    }
}

async fn enroll(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let caller = admit(&s, peer, &uri, &headers, &body).await?;
    let csr = csr_from_body(&body)?;
    let b = s.backend.clone();
    let cert = blocking(move || b.enroll(&caller, &csr)).await?;
    Ok(([(header::CONTENT_TYPE, api::CT_CERT)], cert).into_response())
}

async fn enroll_batch(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let caller = admit(&s, peer, &uri, &headers, &body).await?;
    let req: BatchRequest = serde_json::from_slice(&body)
        .map_err(|e| Refusal::bad_request(format!("batch body: {e}")))?;
    if req.csrs.len() > api::MAX_BATCH {
        return Err(Refusal::bad_request(format!(
            "{} requests in one batch (at most {})",
            req.csrs.len(),
            api::MAX_BATCH
        )));
    }
    let b = s.backend.clone();
    let resp = blocking(move || b.enroll_batch(&caller, req)).await?;
    let json = serde_json::to_vec(&resp).map_err(|e| Refusal::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

async fn cert(State(s): State<AppState>, Path(serial): Path<String>) -> Result<Response, Refusal> {
    let lookup = serial.clone();
    let b = s.backend.clone();
    match blocking(move || b.cert(&lookup)).await? {
        Some(der) => Ok(([(header::CONTENT_TYPE, api::CT_CERT)], der).into_response()),
        None => Err(Refusal {
            status: 404,
            message: format!("no certificate published for token {serial}"),
        }),
    }
}

async fn ca_pem(State(s): State<AppState>) -> Result<Response, Refusal> {
    let b = s.backend.clone();
    let certs = blocking(move || b.ca_certs()).await?;
    let pem: String = certs.iter().map(|c| cert_der_to_pem(c)).collect();
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
}

fn est_reply(certs: &[Vec<u8>]) -> Result<Response, Refusal> {
    let p7 = pkcs7::certs_only(certs).map_err(|e| Refusal::internal(e.to_string()))?;
    let mut resp = pkcs7::base64_lines(&p7).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(api::CT_PKCS7_CERTS),
    );
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    Ok(resp)
}

async fn est_cacerts(State(s): State<AppState>) -> Result<Response, Refusal> {
    let b = s.backend.clone();
    let certs = blocking(move || b.ca_certs()).await?;
    est_reply(&certs)
}

async fn est_simpleenroll(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let caller = admit(&s, peer, &uri, &headers, &body).await?;
    let csr = csr_from_body(&body)?;
    let b = s.backend.clone();
    let cert = blocking(move || b.enroll(&caller, &csr)).await?;
    est_reply(&[cert])
}

async fn operator_challenge(State(s): State<AppState>) -> Result<Response, Refusal> {
    let b = s.backend.clone();
    let c = blocking(move || b.operator_challenge()).await?;
    let json = serde_json::to_vec(&c).map_err(|e| Refusal::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

async fn operator_authorise(State(s): State<AppState>, body: Bytes) -> Result<Response, Refusal> {
    let a: OperatorAnswer = serde_json::from_slice(&body)
        .map_err(|e| Refusal::bad_request(format!("authorisation body: {e}")))?;
    let b = s.backend.clone();
    let v = blocking(move || b.operator_authorise(&a)).await?;
    let json = serde_json::to_vec(&v).map_err(|e| Refusal::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The router serving the whole API from `backend`, every client limited to
/// `per_minute` requests a minute (per peer address, and per operator on enrollment).
pub fn router(backend: Arc<dyn Backend>, per_minute: u32) -> Router {
    let state = AppState {
        backend: backend.clone(),
        limiter: Arc::new(RateLimiter::new(per_minute)),
    };
    let api = Router::new()
        .route(api::ENROLL, post(enroll))
        .route(api::ENROLL_BATCH, post(enroll_batch))
        .route(&format!("{}:serial", api::CERTS), get(cert))
        .route(api::CA_PEM, get(ca_pem))
        .route(api::EST_CACERTS, get(est_cacerts))
        .route(api::EST_SIMPLEENROLL, post(est_simpleenroll))
        .route(api::EST_SIMPLEREENROLL, post(est_simpleenroll))
        .route(api::OPERATOR_CHALLENGE, post(operator_challenge))
        .route(api::OPERATOR_AUTHORISE, post(operator_authorise))
        .layer(middleware::from_fn_with_state(state.clone(), limit_by_peer))
        .layer(DefaultBodyLimit::max(16 << 20))
        .with_state(state);
    crate::ops::instrument(api, Arc::new(BackendProbe(backend)))
}

/// The server's TLS certificate chain and key (PEM files), for HTTPS.
#[derive(Clone, Debug)]
pub struct Tls {
    /// PEM certificate chain, the server's certificate first.
    pub cert: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

/// Serve `router` on `listen` until Ctrl-C or SIGTERM, over HTTPS (rustls) when `tls`
/// is given; prints the bound address on stdout first (so callers can listen on
/// port 0).
pub async fn serve(
    what: &str,
    listen: &str,
    router: Router,
    tls: Option<&Tls>,
) -> std::io::Result<()> {
    use std::io::Write;
    let Some(tls) = tls else {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        println!("vtoken-server: {what} listening on http://{addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, "{what} listening");
        return axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown())
        .await;
    };
    // ring is the one crypto provider compiled in; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "TLS certificate {} / key {}: {e}",
                    tls.cert.display(),
                    tls.key.display()
                ),
            )
        })?;
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    println!("vtoken-server: {what} listening on https://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, "{what} listening (TLS)");
    let handle = axum_server::Handle::new();
    let stop = handle.clone();
    tokio::spawn(async move {
        shutdown().await;
        stop.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
