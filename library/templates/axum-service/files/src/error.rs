//! The one error type every handler returns, and its JSON shape:
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a handler can fail with; each variant has one status and one
/// stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 `not_found`.
    #[error("{0} not found")]
    NotFound(String),
    /// 422 `invalid_input`: the body parsed, but a value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// 400, 415 or 422 `invalid_body`: the body is not the JSON expected.
    #[error(transparent)]
    Body(#[from] JsonRejection),
{% if database != 'none' %}
    /// 503 `unavailable`: the database does not answer.
    #[error("the service is not ready")]
    Unavailable,
    /// 500 `internal`: logged with its detail, answered without it.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
{% endif %}
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            Self::Body(rejection) => (rejection.status(), "invalid_body"),
{% if database != 'none' %}
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
{% endif %}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            // The detail is for the logs: it can name tables, hosts or data
            // the caller has no business seeing.
            tracing::error!(error = ?self, "request failed");
            "something went wrong on our side".to_owned()
        } else {
            self.to_string()
        };
        let body = json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
