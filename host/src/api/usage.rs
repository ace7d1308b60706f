//! Usage aggregates for tenant admins.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::tenant_for;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Auth;
use crate::app::App;
use crate::ids::now_ms;
use crate::tenancy::Role;

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/usage", get(own_usage))
        .route("/v1/tenants/{tenant}/usage", get(tenant_usage))
}

#[derive(Deserialize)]
struct Range {
    /// First day, `YYYY-MM-DD` (default: 30 days ago).
    from: Option<String>,
    /// Last day, inclusive (default: today).
    to: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

fn parse_day(s: &str) -> Result<i64, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &format)
        .map_err(|_| ApiError::invalid(format!("{s:?} is not a YYYY-MM-DD date")))?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// `[from, to)` in ms of a `from`/`to` pair of days (inclusive; default:
/// the last 30 days), at most 366 days long.
pub(super) fn day_range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    let today = now_ms() / DAY_MS * DAY_MS;
    let from = from
        .map(parse_day)
        .transpose()?
        .unwrap_or(today - 29 * DAY_MS);
    let to = to.map(parse_day).transpose()?.unwrap_or(today) + DAY_MS;
    if to <= from || to - from > 366 * DAY_MS {
        return Err(ApiError::invalid(
            "the range must be 1-366 days with from <= to",
        ));
    }
    Ok((from, to))
}

async fn usage_of(
    app: &App,
    tenant: &crate::tenancy::Tenant,
    range: Range,
) -> ApiResult<axum::Json<Value>> {
    let (from, to) = day_range(range.from.as_deref(), range.to.as_deref())?;
    let days = crate::metering::daily_usage(&app.db, &tenant.id, from, to).await?;
    Ok(axum::Json(json!({ "tenant": tenant.slug, "usage": days })))
}

#[utoipa::path(get, path = "/v1/usage", tag = "usage", security(("bearer" = [])), params(("from" = Option<String>, Query, description = "YYYY-MM-DD"), ("to" = Option<String>, Query, description = "YYYY-MM-DD, inclusive")), responses((status = 200, description = "Calls, errors, fuel, wall time and bytes by day and plugin"), (status = 403, body = ErrorBody)))]
async fn own_usage(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(range): Query<Range>,
) -> ApiResult<axum::Json<Value>> {
    let tenant_id = auth.tenant()?;
    auth.require(&tenant_id, Role::Admin)?;
    let tenant = app.tenants.by_id(&tenant_id).await?;
    usage_of(&app, &tenant, range).await
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage", tag = "usage", security(("bearer" = [])), params(("tenant" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query)), responses((status = 200, description = "Usage by day and plugin")))]
async fn tenant_usage(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Query(range): Query<Range>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    usage_of(&app, &tenant, range).await
}
