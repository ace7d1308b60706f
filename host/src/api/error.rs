//! The one API error type: `{"error":{"code","message"}}` with a fitting
//! status. 5xx details go to the log with the request id, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{catalog, db, metering, runtime, storage, tenancy};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials",
        )
    }
    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    /// 500; `detail` is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

impl From<db::Error> for ApiError {
    fn from(err: db::Error) -> Self {
        Self::internal(err)
    }
}

impl From<tenancy::Error> for ApiError {
    fn from(err: tenancy::Error) -> Self {
        use tenancy::Error as E;
        match err {
            E::Invalid(m) => Self::invalid(m),
            E::NotFound(what) => Self::not_found("not_found", format!("{what} not found")),
            E::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            E::InvalidCredentials => Self::unauthorized(),
            E::Db(e) => Self::internal(e),
            E::Hash(e) => Self::internal(e),
        }
    }
}

impl From<catalog::Error> for ApiError {
    fn from(err: catalog::Error) -> Self {
        use catalog::Error as E;
        match err {
            E::InvalidManifest(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest", m)
            }
            E::InvalidSettings(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings", m)
            }
            e @ E::VersionExists(..) => {
                Self::new(StatusCode::CONFLICT, "version_exists", e.to_string())
            }
            E::PluginNotFound => Self::not_found("plugin_not_found", "plugin not found"),
            E::Db(e) => Self::internal(e),
        }
    }
}

impl From<runtime::Error> for ApiError {
    fn from(err: runtime::Error) -> Self {
        use runtime::Error as E;
        match err {
            E::InvalidComponent(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_component", m)
            }
            E::UndeclaredImport(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "undeclared_import", m)
            }
            E::Catalog(e) => e.into(),
            E::Internal(e) => Self::internal(e),
        }
    }
}

impl From<storage::Error> for ApiError {
    fn from(err: storage::Error) -> Self {
        match err {
            storage::Error::Db(e) => Self::internal(e),
            other => Self::invalid(other.to_string()),
        }
    }
}

impl From<metering::Error> for ApiError {
    fn from(err: metering::Error) -> Self {
        Self::internal(err)
    }
}

/// The JSON shape of every error, for the OpenAPI document.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// `code` is stable and machine-readable; `message` is for people.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}
