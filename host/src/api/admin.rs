//! Tenants, users, login and API keys.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::app::App;
use crate::ids::{ApiKeyId, UserId};
use crate::tenancy::{ApiKey, CreatedApiKey, NewUser, Role, Tenant, User};

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/me", get(me))
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/tenants/{tenant}", get(get_tenant))
        .route("/v1/tenants/{tenant}/quotas", put(set_quotas))
        .route(
            "/v1/tenants/{tenant}/users",
            post(create_user).get(list_users),
        )
        .route(
            "/v1/tenants/{tenant}/api-keys",
            post(create_key).get(list_keys),
        )
        .route("/v1/tenants/{tenant}/api-keys/{key}", delete(revoke_key))
}

/// The tenant named by a URL slug, if the caller may see it with `role`.
pub async fn tenant_for(app: &App, auth: &Auth, slug: &str, role: Role) -> ApiResult<Tenant> {
    let tenant = match app.tenant_by_slug(slug).await {
        Ok(t) => t,
        Err(crate::tenancy::Error::NotFound(_)) => {
            return Err(ApiError::not_found("not_found", "tenant not found"));
        }
        Err(e) => return Err(e.into()),
    };
    auth.require(&tenant.id, role)?;
    Ok(tenant)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct LoginBody {
    /// Tenant slug; omit to sign in as a superadmin.
    tenant: Option<String>,
    email: String,
    password: String,
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginBody, responses((status = 200, description = "A 24-hour session token and the user"), (status = 401, description = "Wrong email or password", body = ErrorBody)))]
async fn login(
    State(app): State<Arc<App>>,
    Json(body): Json<LoginBody>,
) -> ApiResult<axum::Json<Value>> {
    let (token, user) = app
        .users
        .login(body.tenant.as_deref(), &body.email, &body.password)
        .await?;
    Ok(axum::Json(
        json!({ "token": token, "token_type": "Bearer", "expires_in": 86400, "user": user }),
    ))
}

#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])), responses((status = 200, description = "The authenticated principal"), (status = 401, body = ErrorBody)))]
async fn me(auth: Auth) -> axum::Json<Value> {
    axum::Json(json!(auth.0))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct TenantBody {
    slug: String,
    name: String,
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])), request_body = TenantBody, responses((status = 201, body = Tenant), (status = 403, description = "Not a superadmin", body = ErrorBody), (status = 409, description = "Slug taken", body = ErrorBody)))]
async fn create_tenant(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<TenantBody>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    auth.require_superadmin()?;
    Ok((
        StatusCode::CREATED,
        axum::Json(app.tenants.create(&body.slug, &body.name).await?),
    ))
}

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])), responses((status = 200, description = "Every tenant (superadmin)"), (status = 403, body = ErrorBody)))]
async fn list_tenants(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    auth.require_superadmin()?;
    Ok(axum::Json(json!({ "tenants": app.tenants.list().await? })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", security(("bearer" = [])), params(("tenant" = String, Path, description = "Tenant slug")), responses((status = 200, description = "The tenant and its storage usage"), (status = 404, body = ErrorBody)))]
async fn get_tenant(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::User).await?;
    let storage = app.storage.usage(&tenant.id).await?;
    Ok(axum::Json(json!({ "tenant": tenant, "storage": storage })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct QuotaBody {
    keys: Option<i64>,
    bytes: Option<i64>,
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/quotas", tag = "tenants", security(("bearer" = [])), params(("tenant" = String, Path)), request_body = QuotaBody, responses((status = 200, body = Tenant), (status = 403, body = ErrorBody)))]
async fn set_quotas(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Json(body): Json<QuotaBody>,
) -> ApiResult<axum::Json<Tenant>> {
    auth.require_superadmin()?;
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(
        app.tenants
            .set_quotas(&tenant.id, body.keys, body.bytes)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct UserBody {
    email: String,
    name: String,
    password: String,
    #[serde(default = "default_role")]
    role: Role,
}

fn default_role() -> Role {
    Role::User
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/users", tag = "users", security(("bearer" = [])), params(("tenant" = String, Path)), request_body = UserBody, responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Json(body): Json<UserBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    if body.role == Role::Superadmin {
        return Err(ApiError::invalid("role must be user or admin"));
    }
    let user = app
        .users
        .create(NewUser {
            tenant: Some(&tenant.id),
            email: &body.email,
            name: &body.name,
            password: &body.password,
            role: body.role,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(json!(user))))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/users", tag = "users", security(("bearer" = [])), params(("tenant" = String, Path)), responses((status = 200, description = "Users of the tenant"), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(
        json!({ "users": app.users.list(&tenant.id).await? }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct KeyBody {
    name: String,
    #[serde(default = "default_role")]
    role: Role,
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys", security(("bearer" = [])), params(("tenant" = String, Path)), request_body = KeyBody, responses((status = 201, body = CreatedApiKey, description = "The secret is shown only in this response"), (status = 403, body = ErrorBody)))]
async fn create_key(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Json(body): Json<KeyBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let by = (auth.0.kind == crate::tenancy::CredentialKind::Session)
        .then(|| UserId::from_raw(auth.0.id.clone()));
    let key = app
        .api_keys
        .create(&tenant.id, &body.name, body.role, by.as_ref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(json!(key))))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys", security(("bearer" = [])), params(("tenant" = String, Path)), responses((status = 200, description = "Keys (prefix only)"), (status = 403, body = ErrorBody)))]
async fn list_keys(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(
        json!({ "api_keys": app.api_keys.list(&tenant.id).await? }),
    ))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/api-keys/{key}", tag = "api-keys", security(("bearer" = [])), params(("tenant" = String, Path), ("key" = String, Path)), responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(json!(
        app.api_keys
            .revoke(&tenant.id, &ApiKeyId::from_raw(key))
            .await?
    )))
}
