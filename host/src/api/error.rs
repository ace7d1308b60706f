//! The one API error type: `{"error":{"code","message"}}` with a fitting
//! status. 5xx details go to the log with the request id, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{billing, catalog, db, llm, metering, runtime, storage, tenancy};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More fields of the error object, for clients to act on (a reset
    /// time, the attempts made); never internal detail.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
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
            details: None,
        }
    }
    /// The same error with `fields` added to its JSON object.
    pub fn with_details(mut self, fields: serde_json::Value) -> Self {
        if let serde_json::Value::Object(map) = fields {
            self.details = Some(map);
        }
        self
    }
    /// The same error under another code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
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
        let mut error = serde_json::Map::new();
        if let Some(details) = self.details {
            error.extend(details);
        }
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        (self.status, Json(json!({ "error": error }))).into_response()
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

impl From<billing::Error> for ApiError {
    fn from(err: billing::Error) -> Self {
        use billing::Error as E;
        match err {
            E::Db(e) => Self::internal(e),
            E::NoAccount => Self::internal("billing account missing"),
            e @ E::UnknownPlan(_) => Self::not_found("unknown_plan", e.to_string()),
            e @ E::UnknownPackage(_) => Self::not_found("unknown_package", e.to_string()),
            E::Invalid(m) => Self::invalid(m),
        }
    }
}

impl From<billing::stripe::CheckoutError> for ApiError {
    fn from(err: billing::stripe::CheckoutError) -> Self {
        use billing::stripe::{CheckoutError as C, StripeError as S};
        match err {
            C::Billing(e) => e.into(),
            C::Stripe(e @ S::NotConfigured) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stripe_not_configured",
                e.to_string(),
            ),
            C::Stripe(S::Signature(_)) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_signature",
                "the Stripe-Signature header does not verify (forged, tampered, stale or malformed)",
            ),
            C::Stripe(S::Api(detail)) => {
                tracing::warn!(%detail, "Stripe refused a request");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "stripe_error",
                    "Stripe refused the request",
                )
            }
        }
    }
}

impl From<llm::Error> for ApiError {
    fn from(err: llm::Error) -> Self {
        use llm::{Error as E, SelectError as S};
        let message = err.to_string();
        match err {
            E::Db(e) => Self::internal(e),
            E::Secrets(e) => Self::internal(e),
            E::Billing(e) => e.into(),
            E::Invalid(m) => Self::invalid(m),
            E::Select(S::UnknownModel(_)) => Self::invalid(message).with_code("unknown_model"),
            E::Select(S::NotAllowed(_)) => {
                Self::new(StatusCode::FORBIDDEN, "model_not_allowed", message)
            }
            E::Select(S::Incapable { .. }) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "model_incapable", message)
            }
            E::Select(S::NotConfigured(_)) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_not_configured",
                message,
            ),
            E::Select(S::NoModel(_)) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_model_available",
                message,
            ),
            E::Suspended => Self::new(StatusCode::FORBIDDEN, "account_suspended", message),
            E::DailyLimit {
                what,
                limit,
                used,
                reset_at,
            } => Self::new(StatusCode::FORBIDDEN, "daily_limit_exceeded", message).with_details(
                json!({ "limit_kind": what, "limit": limit, "used": used, "reset_at": reset_at }),
            ),
            E::InsufficientCredits {
                needed,
                balance,
                held,
            } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                message,
            )
            .with_details(json!({
                "needed": needed,
                "balance": balance,
                "held": held,
                "available": balance - held,
            })),
            E::Unavailable { attempts } => {
                Self::new(StatusCode::BAD_GATEWAY, "llm_unavailable", message)
                    .with_details(json!({ "attempts": attempts }))
            }
            E::Rejected { attempts, .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "llm_rejected", message)
                    .with_details(json!({ "attempts": attempts }))
            }
        }
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
