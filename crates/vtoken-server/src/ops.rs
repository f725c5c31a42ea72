//! Operations endpoints of the CA and the relay (issue 21): `/healthz` (the process
//! answers), `/readyz` (it can serve: for the CA, its database answers; 503
//! otherwise, so a load balancer takes the instance out) and `/metrics` (Prometheus
//! text format 0.0.4: requests by route and status, latency histogram, database
//! pool). Counted by a middleware over every route; the route label is the matched
//! route pattern, never the raw path (a token serial in a path would make one series
//! per token).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::AppState;

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

/// Middleware: counts every request by matched route and status, and its latency.
pub async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let start = Instant::now();
    let resp = next.run(req).await;
    s.metrics.record(
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the backend can serve (its database answers), else 503
/// with the reason.
pub async fn readyz(State(s): State<AppState>) -> Response {
    let b = s.backend.clone();
    match tokio::task::spawn_blocking(move || b.ready()).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(r)) => r.into_response(),
        Err(e) => crate::http::Refusal::internal(format!("worker failed: {e}")).into_response(),
    }
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(s): State<AppState>) -> Response {
    let b = s.backend.clone();
    let pool = tokio::task::spawn_blocking(move || b.pool_status())
        .await
        .ok()
        .flatten();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(pool),
    )
        .into_response()
}
