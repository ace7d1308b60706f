//! Liveness, readiness and metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::error::ErrorBody;
use crate::app::App;

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "The process is alive")))]
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "Ready: the database answers"), (status = 503, body = ErrorBody)))]
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    match sqlx::query("SELECT 1").execute(app.db.pool()).await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "ready", "plugins": app.runtime.loaded().len() })),
        ),
        Err(err) => {
            tracing::error!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    json!({ "error": { "code": "not_ready", "message": "database unavailable" } }),
                ),
            )
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}
