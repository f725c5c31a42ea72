//! The bank's HTTP routes (paths in `vtoken_wallet::api`) over [`Bank`], served by
//! the same layer as the CA ([`crate::http::serve`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use vtoken_wallet::api;

use crate::bank::Bank;
use crate::http::Refusal;

type St = State<Arc<Bank>>;

async fn blocking(
    bank: Arc<Bank>,
    f: impl FnOnce(&Bank) -> Result<Response, Refusal> + Send + 'static,
) -> Result<Response, Refusal> {
    crate::http::blocking(move || f(&bank)).await
}

fn message(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

fn logged(what: &str, r: Result<Response, Refusal>) -> Result<Response, Refusal> {
    if let Err(e) = &r {
        tracing::warn!(status = e.status, error = %e.message, "{what} refused");
    }
    r
}

async fn bank_pem(State(b): St) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        b.cert_pem().to_string(),
    )
        .into_response()
}

async fn load(State(b): St, body: Bytes) -> Result<Response, Refusal> {
    logged(
        "load",
        blocking(b, move |b| b.load(&body).map(message)).await,
    )
}

async fn load_sealed(State(b): St, body: Bytes) -> Result<Response, Refusal> {
    logged(
        "load (encrypted)",
        blocking(b, move |b| b.load_sealed(&body).map(message)).await,
    )
}

async fn receipt(State(b): St, body: Bytes) -> Result<Response, Refusal> {
    logged(
        "receipt",
        blocking(b, move |b| b.receipt(&body).map(message)).await,
    )
}

async fn abort(State(b): St, body: Bytes) -> Result<Response, Refusal> {
    logged(
        "abort",
        blocking(b, move |b| b.abort(&body).map(message)).await,
    )
}

async fn purchase(State(b): St, body: Bytes) -> Result<Response, Refusal> {
    logged(
        "purchase",
        blocking(b, move |b| {
            b.purchase(&body).map(|v| {
                ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
            })
        })
        .await,
    )
}

/// The bank's router, with the operations endpoints (`/readyz` follows its
/// database).
pub fn router(bank: Arc<Bank>) -> Router {
    let api = Router::new()
        .route(api::BANK_PEM, get(bank_pem))
        .route(api::LOAD, post(load))
        .route(api::LOAD_SEALED, post(load_sealed))
        .route(api::RECEIPT, post(receipt))
        .route(api::ABORT, post(abort))
        .route(api::PURCHASE, post(purchase))
        .layer(DefaultBodyLimit::max(64 << 10))
        .with_state(bank.clone());
    crate::ops::instrument(api, bank)
}
