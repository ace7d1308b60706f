//! The event queue and schedules of a tenant, for its admins: deliveries by
//! state (pending, done, dead), replaying a dead one, and each schedule's
//! last and next run.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::tenant_for;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Auth;
use crate::app::App;
use crate::events::{self, ReplayError};
use crate::tenancy::Role;

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/tenants/{tenant}/deliveries", get(list))
        .route("/v1/tenants/{tenant}/deliveries/{id}", get(one))
        .route("/v1/tenants/{tenant}/deliveries/{id}/replay", post(replay))
        .route("/v1/tenants/{tenant}/schedules", get(schedules))
}

#[derive(Deserialize)]
struct ListQuery {
    /// `pending`, `done` or `dead`; all when absent.
    state: Option<String>,
    /// The last id of the previous page.
    before: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/deliveries", tag = "events", security(("bearer" = [])),
    params(("tenant" = String, Path), ("state" = Option<String>, Query, description = "pending, done or dead"),
        ("before" = Option<String>, Query, description = "next_before of the previous page"),
        ("limit" = Option<u32>, Query, description = "1-500, default 100")),
    responses((status = 200, description = "Event deliveries and schedule runs, newest first, with their events"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let state = q.state.filter(|s| !s.is_empty());
    if let Some(state) = &state
        && !["pending", "done", "dead"].contains(&state.as_str())
    {
        return Err(ApiError::invalid("state is pending, done or dead"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit is 1-500"));
    }
    let page = events::list(
        &app.db,
        &tenant.id,
        state.as_deref(),
        q.before.as_deref(),
        limit,
    )
    .await?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|d| d.id.clone()))
        .flatten();
    Ok(axum::Json(
        json!({ "deliveries": page, "next_before": next }),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/deliveries/{id}", tag = "events", security(("bearer" = [])),
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = events::DeliveryView), (status = 404, body = ErrorBody)))]
async fn one(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<events::DeliveryView>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    events::get(&app.db, &tenant.id, &id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("delivery_not_found", "no such delivery"))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/deliveries/{id}/replay", tag = "events", security(("bearer" = [])),
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "The delivery, pending again with its attempts reset", body = events::DeliveryView),
        (status = 404, body = ErrorBody), (status = 409, description = "Not dead", body = ErrorBody)))]
async fn replay(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<events::DeliveryView>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    match events::replay(&app.db, &tenant.id, &id).await {
        Ok(view) => {
            app.events.wake();
            Ok(axum::Json(view))
        }
        Err(ReplayError::NotFound) => Err(ApiError::not_found(
            "delivery_not_found",
            "no such delivery",
        )),
        Err(e @ ReplayError::NotDead(_)) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "delivery_not_dead",
            e.to_string(),
        )),
        Err(ReplayError::Db(e)) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/schedules", tag = "events", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, description = "Schedules of the tenant's enabled plugins with their last and next runs"),
        (status = 403, body = ErrorBody)))]
async fn schedules(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let schedules = app.scheduler.list(&app, &tenant.id).await?;
    Ok(axum::Json(json!({ "schedules": schedules })))
}
