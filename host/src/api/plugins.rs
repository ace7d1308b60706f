//! Plugin catalog, install, per-tenant enablement and settings, plugin logs.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::admin::tenant_for;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::app::App;
use crate::catalog::TenantPlugin;
use crate::runtime::Installed;
use crate::tenancy::Role;

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/plugins", get(list).post(install))
        .route("/v1/plugins/{name}/routes", get(routes))
        .route("/v1/tenants/{tenant}/plugins", get(tenant_plugins))
        .route(
            "/v1/tenants/{tenant}/plugins/{name}",
            get(tenant_plugin).put(configure),
        )
        .route("/v1/tenants/{tenant}/plugins/{name}/logs", get(logs))
}

#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])), responses((status = 200, description = "Installed plugins and their versions")))]
async fn list(State(app): State<Arc<App>>, _auth: Auth) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(json!({ "plugins": app.catalog.list().await? })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct InstallBody {
    /// The `plugin.toml` text.
    manifest: String,
    /// The component bytes, base64.
    component_base64: String,
}

#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])), request_body = InstallBody, responses((status = 201, body = Installed), (status = 409, description = "Version already installed", body = ErrorBody), (status = 422, description = "Invalid manifest or component, or an undeclared import", body = ErrorBody)))]
async fn install(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<InstallBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    auth.require_superadmin()?;
    let component = base64::engine::general_purpose::STANDARD
        .decode(body.component_base64.trim())
        .map_err(|e| ApiError::invalid(format!("component_base64: {e}")))?;
    let installed = app.runtime.install(&body.manifest, &component).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(installed))))
}

#[utoipa::path(get, path = "/v1/plugins/{name}/routes", tag = "plugins", params(("name" = String, Path)), responses((status = 200, description = "Routes, mount point and limits of the current version"), (status = 404, body = ErrorBody)))]
async fn routes(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let plugin = app
        .runtime
        .plugin(&name)
        .ok_or_else(|| ApiError::not_found("plugin_not_found", "plugin not found"))?;
    let m = &plugin.manifest;
    Ok(axum::Json(json!({
        "name": m.plugin.name,
        "version": m.plugin.version,
        "wit": m.plugin.wit,
        "capabilities": m.plugin.capabilities,
        "mount": format!("/t/{{tenant}}/p/{}", m.plugin.name),
        "routes": m.routes,
        "subscriptions": m.subscriptions,
        "schedules": m.schedules,
        "limits": plugin.limits,
    })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins", tag = "plugins", security(("bearer" = [])), params(("tenant" = String, Path)), responses((status = 200, description = "Plugins the tenant enabled or configured")))]
async fn tenant_plugins(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(
        json!({ "plugins": app.catalog.tenant_plugins(&tenant.id).await? }),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins/{name}", tag = "plugins", security(("bearer" = [])), params(("tenant" = String, Path), ("name" = String, Path)), responses((status = 200, description = "Enablement, settings, effective settings and settings JSON Schema"), (status = 404, body = ErrorBody)))]
async fn tenant_plugin(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let plugin = app
        .runtime
        .plugin(&name)
        .ok_or_else(|| ApiError::not_found("plugin_not_found", "plugin not found"))?;
    let tp = app.catalog.tenant_plugin(&tenant.id, &name).await?;
    let stored = tp.as_ref().map(|t| t.settings.clone()).unwrap_or_default();
    Ok(axum::Json(json!({
        "plugin": name,
        "version": plugin.manifest.plugin.version,
        "enabled": tp.as_ref().is_some_and(|t| t.enabled),
        "settings": stored,
        "effective_settings": plugin.manifest.effective_settings(&stored),
        "settings_schema": plugin.manifest.settings_json_schema(),
        "capabilities": plugin.manifest.plugin.capabilities,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct ConfigureBody {
    enabled: Option<bool>,
    settings: Option<Map<String, Value>>,
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/plugins/{name}", tag = "plugins", security(("bearer" = [])), params(("tenant" = String, Path), ("name" = String, Path)), request_body = ConfigureBody, responses((status = 200, body = TenantPlugin), (status = 422, description = "Settings do not match the schema", body = ErrorBody)))]
async fn configure(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, name)): Path<(String, String)>,
    Json(body): Json<ConfigureBody>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    if body.enabled.is_none() && body.settings.is_none() {
        return Err(ApiError::invalid("give `enabled`, `settings` or both"));
    }
    let tp = app
        .configure_plugin(&tenant.id, &name, body.enabled, body.settings.as_ref())
        .await?;
    Ok(axum::Json(json!(tp)))
}

#[derive(Deserialize)]
struct LogQuery {
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins/{name}/logs", tag = "plugins", security(("bearer" = [])), params(("tenant" = String, Path), ("name" = String, Path), ("limit" = Option<i64>, Query)), responses((status = 200, description = "Newest plugin log lines first")))]
async fn logs(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(axum::Json(
        json!({ "lines": crate::plugin_logs::recent(&app.db, &tenant.id, &name, limit).await? }),
    ))
}
