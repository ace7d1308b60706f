//! The HTTP API: `/v1` for administration, `/t/{tenant}/p/{plugin}/...` for
//! plugin routes, plus health and metrics. Routers are merged by area; all
//! share one [`App`].

mod admin;
mod billing;
mod error;
mod events;
mod extract;
mod gateway;
mod library;
mod llm;
mod messaging;
mod openapi;
mod ops;
mod plugins;
mod usage;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

pub use error::{ApiError, ApiResult};

use crate::app::App;

/// Largest plugin upload (base64 JSON).
const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// The whole HTTP surface.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.config.max_body_bytes;
    let uploads = plugins::router().layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES));
    Router::new()
        .merge(admin::router().layer(DefaultBodyLimit::max(body_limit)))
        .merge(usage::router())
        .merge(billing::router())
        .merge(llm::router())
        .merge(messaging::router())
        .merge(library::router())
        .merge(events::router())
        .merge(uploads)
        .merge(gateway::router())
        .merge(ops::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::not_found("route_not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the route does not accept this method",
            )
        })
        .layer(middleware::from_fn_with_state(body_limit, refuse_oversized))
        .layer(middleware::from_fn(request_context))
        .with_state(app)
}

/// Bytes of an oversized body read and thrown away before answering 413,
/// and for how long at most.
const DRAIN_BYTES: u64 = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Answers 413 to a request whose declared length is over its route's
/// limit. The body is drained first (bounded): closing a socket with unread
/// data resets the connection, and the client would lose the 413.
async fn refuse_oversized(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let limit = if req.uri().path() == "/v1/plugins" {
        MAX_UPLOAD_BYTES
    } else {
        limit
    } as u64;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => {
            if len <= DRAIN_BYTES {
                let mut body = req.into_body().into_data_stream();
                let _ = tokio::time::timeout(DRAIN_TIME, async {
                    use futures::StreamExt;
                    while let Some(Ok(_)) = body.next().await {}
                })
                .await;
            }
            extract::body_too_large().into_response()
        }
        _ => next.run(req).await,
    }
}

/// Gives every request an id (the caller's `x-request-id` if sane), a
/// tracing span carrying it, and the id on the response; counts statuses.
async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(gateway::RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        tenant = tracing::field::Empty,
        plugin = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    crate::metrics::record_http(status);
    span.in_scope(|| {
        tracing::debug!(
            status,
            micros = started.elapsed().as_micros() as u64,
            "done"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    // Axum's own rejections (e.g. a malformed path) come without our shape.
    if response.status().is_client_error() && response.headers().get("content-type").is_none() {
        let code = if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_request"
        };
        let mut shaped = ApiError::new(
            response.status(),
            code,
            response
                .status()
                .canonical_reason()
                .unwrap_or("bad request"),
        )
        .into_response();
        shaped.headers_mut().insert(
            "x-request-id",
            HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("")),
        );
        return shaped;
    }
    response
}

/// Binds `addr` and serves until `shutdown` resolves.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
