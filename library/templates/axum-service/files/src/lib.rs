//! `{{ service_name }}`: the router and its state, apart from `main` so that
//! tests can drive the same app in-process.

{% if database != 'none' %}
pub mod db;
{% endif %}
pub mod error;
pub mod notes;

{% if database != 'none' %}
use axum::extract::State;
{% endif %}
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;

{% if database != 'none' %}
use crate::error::{ApiError, ApiResult};
{% else %}
use crate::error::ApiError;
{% endif %}

/// What every handler shares; cheap to clone (the {% if database == 'none' %}store{% else %}pool{% endif %} is reference-counted).
#[derive(Clone{% if database == 'none' %}, Default{% endif %})]
pub struct AppState {
{% if database == 'sqlite' %}
    pub db: sqlx::SqlitePool,
{% elif database == 'postgres' %}
    pub db: sqlx::PgPool,
{% else %}
    /// The notes, in memory: gone when the process stops.
    pub notes: notes::Store,
{% endif %}
}

/// Every route of the service.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
{% if database != 'none' %}
        .route("/ready", get(ready))
{% endif %}
        .route("/v1/notes", get(notes::list).post(notes::create))
        .route("/v1/notes/{id}", get(notes::get))
        .fallback(not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Liveness: the process answers. Touches nothing, so a slow dependency
/// never gets a healthy process restarted.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
{% if database != 'none' %}

/// Readiness: the database answers, so the instance can take traffic.
async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    db::ping(&state.db).await.map_err(|error| {
        tracing::warn!(%error, "database not ready");
        ApiError::Unavailable
    })?;
    Ok(Json(json!({ "status": "ready" })))
}
{% endif %}

/// Unknown routes answer in the same JSON shape as every other error.
async fn not_found() -> ApiError {
    ApiError::NotFound("route".to_owned())
}
