//! Request extractors that answer in the API's error shape.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::App;
use crate::ids::TenantId;
use crate::tenancy::{Principal, Role, api_keys_prefix};

/// A JSON body; malformed JSON, a wrong content type or an oversized body
/// get a 4xx in the API's error shape.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            )),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                e.body_text(),
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(e.body_text())),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(body_too_large())
            }
            Err(e) => Err(ApiError::new(e.status(), "bad_request", e.body_text())),
        }
    }
}

/// 413 `body_too_large`.
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "request body is larger than allowed",
    )
}

/// The bearer credential of a request, if it has one; an invalid one is a 401.
pub async fn principal_of(app: &App, parts: &Parts) -> Result<Option<Principal>, ApiError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    let principal = if token.starts_with(api_keys_prefix()) {
        app.api_keys.verify(token).await?
    } else {
        app.users.verify_session(token)?
    };
    Ok(Some(principal))
}

/// An authenticated caller (401 without valid credentials).
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<Arc<App>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        principal_of(app, parts)
            .await?
            .map(Auth)
            .ok_or_else(ApiError::unauthorized)
    }
}

impl Auth {
    /// Requires `role` on `tenant`: 403 otherwise. A caller of another
    /// tenant gets 404, so tenants cannot probe each other's ids.
    pub fn require(&self, tenant: &TenantId, role: Role) -> Result<(), ApiError> {
        if self.0.can(tenant, role) {
            return Ok(());
        }
        if self.0.tenant.as_ref() != Some(tenant) {
            return Err(ApiError::not_found("not_found", "tenant not found"));
        }
        Err(ApiError::forbidden(format!(
            "this needs the {} role",
            role.as_str()
        )))
    }

    /// Requires the platform operator.
    pub fn require_superadmin(&self) -> Result<(), ApiError> {
        if self.0.role == Role::Superadmin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs the superadmin role"))
        }
    }

    /// The caller's own tenant (superadmins must name one).
    pub fn tenant(&self) -> Result<TenantId, ApiError> {
        self.0.tenant.clone().ok_or_else(|| {
            ApiError::invalid("a superadmin must name the tenant: use /v1/tenants/{id}/...")
        })
    }
}
