//! Operations endpoints of every server role (CA, relay, key server, bank,
//! certificate server): `/healthz` (the process answers), `/readyz` (it can serve:
//! the role's database answers; 503 otherwise, so a load balancer takes the
//! instance out) and `/metrics` (Prometheus text format 0.0.4: requests by route and
//! status, latency histogram, database pool); and for every request an id
//! (`x-request-id`) carried by its log lines. Counted by a middleware over every
//! route; the route label is the matched route pattern, never the raw path (a token
//! serial in a path would make one series per token).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::Instrument;

use crate::db::Db;
use crate::http::Refusal;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A database pool's state, as the backend reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStatus {
    /// Most connections the pool opens.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections idle now.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

#[derive(Default)]
struct Counts {
    /// (route, status) → requests.
    requests: BTreeMap<(String, u16), u64>,
    /// Per bucket (and +Inf last): requests at most that long.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// The counters of one server process.
#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl Metrics {
    fn record(&self, route: &str, status: u16, secs: f64) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.requests.entry((route.to_string(), status)).or_default() += 1;
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        for b in &mut c.buckets[i..] {
            *b += 1;
        }
        c.sum += secs;
        c.count += 1;
    }

    /// The Prometheus text of the counters and of `pool`.
    pub fn render(&self, pool: Option<PoolStatus>) -> String {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP vtoken_http_requests_total HTTP requests answered, by route and status.\n\
             # TYPE vtoken_http_requests_total counter\n",
        );
        for ((route, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "vtoken_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let errors: u64 = c
            .requests
            .iter()
            .filter(|((_, s), _)| *s >= 500)
            .map(|(_, n)| n)
            .sum();
        let _ = write!(
            out,
            "# HELP vtoken_http_errors_total Requests answered with a 5xx status (the server's own failures).\n\
             # TYPE vtoken_http_errors_total counter\n\
             vtoken_http_errors_total {errors}\n\
             # HELP vtoken_http_request_duration_seconds Time from request to response.\n\
             # TYPE vtoken_http_request_duration_seconds histogram\n"
        );
        for (b, n) in BUCKETS.iter().zip(&c.buckets) {
            let _ = writeln!(
                out,
                "vtoken_http_request_duration_seconds_bucket{{le=\"{b}\"}} {n}"
            );
        }
        let _ = write!(
            out,
            "vtoken_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
             vtoken_http_request_duration_seconds_sum {}\n\
             vtoken_http_request_duration_seconds_count {}\n",
            c.buckets[BUCKETS.len()],
            c.sum,
            c.count
        );
        if let Some(p) = pool {
            let _ = write!(
                out,
                "# HELP vtoken_db_pool_connections Database connections, by state.\n\
                 # TYPE vtoken_db_pool_connections gauge\n\
                 vtoken_db_pool_connections{{state=\"max\"}} {}\n\
                 vtoken_db_pool_connections{{state=\"open\"}} {}\n\
                 vtoken_db_pool_connections{{state=\"idle\"}} {}\n\
                 # HELP vtoken_db_pool_waiting Requests waiting for a database connection.\n\
                 # TYPE vtoken_db_pool_waiting gauge\n\
                 vtoken_db_pool_waiting {}\n",
                p.max, p.open, p.idle, p.waiting
            );
        }
        out
    }
}

/// What `/readyz` and `/metrics` ask of a role.
pub trait Probe: Send + Sync + 'static {
    /// Whether this instance can serve now: its database answers (503 otherwise).
    fn ready(&self) -> Result<(), Refusal> {
        Ok(())
    }
    /// The database pool's state (none without a pool).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
}

/// A role whose state is one database: ready while the database answers.
impl Probe for Db {
    fn ready(&self) -> Result<(), Refusal> {
        self.ping().map_err(|e| Refusal::database(&e))
    }
    fn pool_status(&self) -> Option<PoolStatus> {
        Db::pool_status(self)
    }
}

#[derive(Clone)]
struct Ops {
    metrics: Arc<Metrics>,
    probe: Arc<dyn Probe>,
}

/// `router` with the operations endpoints (`/healthz`, `/readyz`, `/metrics`) and
/// every route observed: a request id, a log span, the counters. Call it last, so
/// the role's own layers (rate limit, body limit) are inside the observation and
/// their refusals are counted too.
pub fn instrument(router: Router, probe: Arc<dyn Probe>) -> Router {
    let ops = Ops {
        metrics: Arc::default(),
        probe,
    };
    router
        .merge(
            Router::new()
                .route("/healthz", get(healthz))
                .route("/readyz", get(readyz))
                .route("/metrics", get(metrics))
                .with_state(ops.clone()),
        )
        .route_layer(middleware::from_fn_with_state(ops, observe))
}

/// The header carrying a request's id: taken from the request when a load balancer
/// set a plausible one, else made here; always returned on the response.
pub const REQUEST_ID: &str = "x-request-id";

/// A request id from a client or balancer is used only if it cannot forge log lines
/// or labels: 1 to 64 characters of `[A-Za-z0-9._-]`.
fn plausible_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A fresh request id: 16 hex digits, random (unique across instances and restarts
/// without coordination).
fn new_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Middleware: gives the request an id (header [`REQUEST_ID`]) and a log span
/// carrying it (every log line of the request, in blocking workers too through
/// [`crate::http::blocking`], names it), counts it by matched route and status with
/// its latency, and logs its end: a 5xx as a warning, a refusal (4xx) as info, a
/// success at debug level (an access log per request would cost the throughput the
/// servers are measured by).
async fn observe(State(ops): State<Ops>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| plausible_id(v))
        .map(str::to_string)
        .unwrap_or_else(new_id);
    let span = tracing::info_span!("request", id = %id, method = %req.method(), route = %route);
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    ops.metrics.record(&route, status, secs);
    span.in_scope(|| {
        let ms = secs * 1e3;
        if status >= 500 {
            tracing::warn!(status, ms, "request failed");
        } else if status >= 400 {
            tracing::info!(status, ms, "request refused");
        } else {
            tracing::debug!(status, ms, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// `GET /healthz`: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the role can serve (its database answers), else 503
/// with the reason.
async fn readyz(State(ops): State<Ops>) -> Response {
    let p = ops.probe.clone();
    match crate::http::blocking(move || p.ready()).await {
        Ok(()) => "ready\n".into_response(),
        Err(r) => r.into_response(),
    }
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(ops): State<Ops>) -> Response {
    let p = ops.probe.clone();
    let pool = crate::http::blocking(move || Ok(p.pool_status()))
        .await
        .ok()
        .flatten();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(pool),
    )
        .into_response()
}
