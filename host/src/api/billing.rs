//! `/v1/billing` and the billing routes under `/v1/tenants/{tenant}`: the
//! balance and ledger, plans, packages, LLM usage by model and day, and the
//! superadmin's grants, plan changes and suspensions.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::tenant_for;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::app::App;
use crate::billing::{EntryKind, Micro, NewEntry, Package, Posted};
use crate::ids::{TenantId, now_ms};
use crate::llm::UserLimits;
use crate::tenancy::Role;

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/billing", get(own_account))
        .route("/v1/billing/ledger", get(own_ledger))
        .route("/v1/billing/usage", get(own_usage))
        .route("/v1/billing/usage/me", get(my_usage))
        .route("/v1/billing/plans", get(plans))
        .route("/v1/billing/packages", get(packages))
        .route("/v1/billing/packages/{id}", put(put_package))
        .route(
            "/v1/tenants/{tenant}/billing",
            get(tenant_account).put(set_account),
        )
        .route("/v1/tenants/{tenant}/billing/ledger", get(tenant_ledger))
        .route("/v1/tenants/{tenant}/billing/usage", get(tenant_usage))
        .route("/v1/tenants/{tenant}/credits", post(grant))
        .route("/v1/billing/checkout", post(checkout))
        .route("/v1/billing/stripe/webhook", post(stripe_webhook))
        .route("/v1/billing/invoices", get(own_invoices))
        .route("/v1/billing/invoices/{period}", get(own_invoice))
        .route(
            "/v1/tenants/{tenant}/billing/invoices",
            get(tenant_invoices).post(make_invoice),
        )
        .route(
            "/v1/tenants/{tenant}/billing/invoices/{period}",
            get(tenant_invoice),
        )
        .route(
            "/v1/tenants/{tenant}/users/{user}/llm-limits",
            get(user_limits).put(set_user_limits),
        )
}

async fn account_json(app: &App, tenant: &TenantId) -> ApiResult<Value> {
    let account = app.billing.account(tenant).await?;
    let plan = app.billing.plan_or_default(&account.plan).clone();
    let tokens_today = app.billing.tokens_today(tenant, "").await?;
    Ok(json!({
        "balance": account.balance,
        "held": account.held,
        "plan": plan,
        "suspended": account.suspended,
        "tokens_today": tokens_today,
        "stripe_customer_id": account.stripe_customer_id,
        "subscription_status": account.subscription_status,
        "current_period_end": account.current_period_end,
    }))
}

#[utoipa::path(get, path = "/v1/billing", tag = "billing", security(("bearer" = [])), responses((status = 200, description = "Balance (exact decimal credits), what calls in flight hold of it, plan with its limits, suspension, tokens used today, subscription"), (status = 403, body = ErrorBody)))]
async fn own_account(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::Admin)?;
    Ok(axum::Json(account_json(&app, &tenant).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path)), responses((status = 200, description = "The tenant's account (its admins and the superadmin)")))]
async fn tenant_account(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(account_json(&app, &tenant.id).await?))
}

/// A superadmin's change to an account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountChange {
    plan: Option<String>,
    suspended: Option<bool>,
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/billing", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path)), request_body = AccountChange, responses((status = 200, description = "The account after the change (superadmin)"), (status = 404, description = "unknown_plan", body = ErrorBody)))]
async fn set_account(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Json(change): Json<AccountChange>,
) -> ApiResult<axum::Json<Value>> {
    auth.require_superadmin()?;
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    if let Some(plan) = &change.plan {
        app.billing.set_plan(&tenant.id, plan).await?;
    }
    if let Some(suspended) = change.suspended {
        app.billing.set_suspended(&tenant.id, suspended).await?;
    }
    Ok(axum::Json(account_json(&app, &tenant.id).await?))
}

/// A grant (positive) or deduction (negative) by the superadmin.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantBody {
    /// Credits, an integer or a decimal string (`"-2.5"` deducts).
    #[schema(value_type = String)]
    amount: Micro,
    reason: String,
    /// Makes a retried request harmless; one is made up when omitted.
    idempotency_key: Option<String>,
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/credits", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path)), request_body = GrantBody, responses((status = 201, description = "Appended (or 200 with duplicate: true for a repeated key); the balance after"), (status = 400, body = ErrorBody)))]
async fn grant(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Json(body): Json<GrantBody>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<Value>)> {
    auth.require_superadmin()?;
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    if body.amount.0 == 0 {
        return Err(ApiError::invalid("amount must not be 0"));
    }
    if body.reason.trim().is_empty() || body.reason.len() > 500 {
        return Err(ApiError::invalid("reason must be 1-500 characters"));
    }
    let key = body
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("admin:{}", uuid::Uuid::now_v7()));
    let kind = if body.amount.0 > 0 {
        EntryKind::Grant
    } else {
        EntryKind::Adjustment
    };
    let posted = app
        .billing
        .ledger
        .append(
            &tenant.id,
            &NewEntry {
                kind,
                amount: body.amount,
                idempotency_key: &key,
                reason: Some(body.reason.trim()),
                reference: None,
                actor: Some(&auth.0.id),
            },
        )
        .await?;
    let balance = app.billing.ledger.balance(&tenant.id).await?;
    let status = match posted {
        Posted::New(_) => axum::http::StatusCode::CREATED,
        Posted::Duplicate => axum::http::StatusCode::OK,
    };
    Ok((
        status,
        axum::Json(json!({
            "balance": balance,
            "duplicate": posted == Posted::Duplicate,
            "idempotency_key": key,
        })),
    ))
}

#[derive(Deserialize)]
struct Page {
    before: Option<String>,
    limit: Option<i64>,
}

async fn ledger_json(app: &App, tenant: &TenantId, page: Page) -> ApiResult<Value> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit must be 1-500"));
    }
    let entries = app
        .billing
        .ledger
        .entries(tenant, page.before.as_deref(), limit)
        .await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    let audit = app.billing.ledger.audit(tenant).await?;
    Ok(json!({
        "balance": audit.balance,
        "sum_of_entries": audit.sum_of_entries,
        "held": audit.held,
        "entries": entries,
        "next": next,
    }))
}

#[utoipa::path(get, path = "/v1/billing/ledger", tag = "billing", security(("bearer" = [])), params(("before" = Option<String>, Query, description = "entry id of the previous page's last entry"), ("limit" = Option<i64>, Query)), responses((status = 200, description = "Entries newest first, the balance and the sum of all entries")))]
async fn own_ledger(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(page): Query<Page>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::Admin)?;
    Ok(axum::Json(ledger_json(&app, &tenant, page).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing/ledger", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path), ("before" = Option<String>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "The tenant's ledger (its admins and the superadmin)")))]
async fn tenant_ledger(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(ledger_json(&app, &tenant.id, page).await?))
}

#[derive(Deserialize)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

async fn usage_json(
    app: &App,
    tenant: &TenantId,
    user: Option<&str>,
    range: Range,
) -> ApiResult<Value> {
    let (from, to) = super::usage::day_range(range.from.as_deref(), range.to.as_deref())?;
    let usage = app.billing.llm_usage(tenant, user, from, to).await?;
    Ok(json!({ "usage": usage }))
}

#[utoipa::path(get, path = "/v1/billing/usage", tag = "billing", security(("bearer" = [])), params(("from" = Option<String>, Query, description = "YYYY-MM-DD"), ("to" = Option<String>, Query, description = "YYYY-MM-DD, inclusive")), responses((status = 200, description = "The tenant's LLM calls, tokens and credits by day and model (admins)")))]
async fn own_usage(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(range): Query<Range>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::Admin)?;
    Ok(axum::Json(usage_json(&app, &tenant, None, range).await?))
}

#[utoipa::path(get, path = "/v1/billing/usage/me", tag = "billing", security(("bearer" = [])), params(("from" = Option<String>, Query), ("to" = Option<String>, Query)), responses((status = 200, description = "The caller's own LLM usage by day and model, and tokens used today")))]
async fn my_usage(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(range): Query<Range>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    let mut value = usage_json(&app, &tenant, Some(&auth.0.id), range).await?;
    value["tokens_today"] = json!(app.billing.tokens_today(&tenant, &auth.0.id).await?);
    Ok(axum::Json(value))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing/usage", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query)), responses((status = 200, description = "LLM usage by day and model of any tenant (superadmin) or one's own (admin)")))]
async fn tenant_usage(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Query(range): Query<Range>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(usage_json(&app, &tenant.id, None, range).await?))
}

#[utoipa::path(get, path = "/v1/billing/plans", tag = "billing", security(("bearer" = [])), responses((status = 200, description = "Plans with fees, daily limits and models per role")))]
async fn plans(State(app): State<Arc<App>>, _auth: Auth) -> axum::Json<Value> {
    axum::Json(json!({ "plans": app.billing.plans() }))
}

#[utoipa::path(get, path = "/v1/billing/packages", tag = "billing", security(("bearer" = [])), responses((status = 200, description = "Credit packages on sale (the superadmin also sees inactive ones)")))]
async fn packages(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    let all = auth.0.role == Role::Superadmin;
    Ok(axum::Json(
        json!({ "packages": app.billing.packages(all).await? }),
    ))
}

/// A package as the superadmin sets it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PackageBody {
    name: String,
    #[schema(value_type = String)]
    credits: Micro,
    price_minor: i64,
    currency: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(put, path = "/v1/billing/packages/{id}", tag = "billing", security(("bearer" = [])), params(("id" = String, Path)), request_body = PackageBody, responses((status = 200, description = "The package as stored (superadmin)"), (status = 400, body = ErrorBody)))]
async fn put_package(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<PackageBody>,
) -> ApiResult<axum::Json<Package>> {
    auth.require_superadmin()?;
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(ApiError::invalid(
            "a package id is 1-64 of a-z, 0-9, _ and -",
        ));
    }
    let package = Package {
        id,
        name: body.name,
        credits: body.credits,
        price_minor: body.price_minor,
        currency: body
            .currency
            .unwrap_or_else(|| app.billing.config().currency.clone()),
        active: body.active,
    };
    app.billing.put_package(&package).await?;
    Ok(axum::Json(package))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/users/{user}/llm-limits", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path), ("user" = String, Path)), responses((status = 200, description = "The user's overrides of the plan (empty when none)")))]
async fn user_limits(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, user)): Path<(String, String)>,
) -> ApiResult<axum::Json<UserLimits>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(app.llm.user_limits(&tenant.id, &user).await?))
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/users/{user}/llm-limits", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path), ("user" = String, Path)), request_body = UserLimits, responses((status = 200, description = "Stored"), (status = 400, description = "an unknown model", body = ErrorBody), (status = 404, description = "no such user in the tenant", body = ErrorBody)))]
async fn set_user_limits(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, user)): Path<(String, String)>,
    Json(limits): Json<UserLimits>,
) -> ApiResult<axum::Json<UserLimits>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let known = app.users.list(&tenant.id).await?;
    if !known.iter().any(|u| u.id.as_str() == user) {
        return Err(ApiError::not_found("not_found", "user not found"));
    }
    app.llm.set_user_limits(&tenant.id, &user, &limits).await?;
    Ok(axum::Json(limits))
}

#[derive(Deserialize)]
struct Format {
    /// `json` (default) or `csv`.
    format: Option<String>,
}

fn invoice_response(
    invoice: crate::billing::invoices::Invoice,
    format: Option<&str>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    match format.unwrap_or("json") {
        "json" => Ok(axum::Json(invoice).into_response()),
        "csv" => {
            let name = format!("attachment; filename=\"invoice-{}.csv\"", invoice.period);
            Ok((
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "text/csv; charset=utf-8".to_owned(),
                    ),
                    (axum::http::header::CONTENT_DISPOSITION, name),
                ],
                crate::billing::invoices::to_csv(&invoice),
            )
                .into_response())
        }
        other => Err(ApiError::invalid(format!(
            "format {other:?} is not \"json\" or \"csv\""
        ))),
    }
}

async fn stored_invoice(
    app: &App,
    tenant: &TenantId,
    period: &str,
) -> ApiResult<crate::billing::invoices::Invoice> {
    crate::billing::invoices::month_bounds(period)?;
    app.billing
        .invoices(tenant)
        .await?
        .into_iter()
        .find(|i| i.period == period)
        .ok_or_else(|| ApiError::not_found("not_found", format!("no invoice for {period}")))
}

#[utoipa::path(get, path = "/v1/billing/invoices", tag = "billing", security(("bearer" = [])), responses((status = 200, description = "The tenant's invoices, newest first (admins)")))]
async fn own_invoices(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::Admin)?;
    Ok(axum::Json(
        json!({ "invoices": app.billing.invoices(&tenant).await? }),
    ))
}

#[utoipa::path(get, path = "/v1/billing/invoices/{period}", tag = "billing", security(("bearer" = [])), params(("period" = String, Path, description = "YYYY-MM"), ("format" = Option<String>, Query, description = "json (default) or csv")), responses((status = 200, description = "The invoice as JSON or CSV"), (status = 404, body = ErrorBody)))]
async fn own_invoice(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(period): Path<String>,
    Query(format): Query<Format>,
) -> ApiResult<axum::response::Response> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::Admin)?;
    let invoice = stored_invoice(&app, &tenant, &period).await?;
    invoice_response(invoice, format.format.as_deref())
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing/invoices", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path)), responses((status = 200, description = "A tenant's invoices")))]
async fn tenant_invoices(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(
        json!({ "invoices": app.billing.invoices(&tenant.id).await? }),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing/invoices/{period}", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path), ("period" = String, Path), ("format" = Option<String>, Query)), responses((status = 200, description = "The invoice as JSON or CSV")))]
async fn tenant_invoice(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, period)): Path<(String, String)>,
    Query(format): Query<Format>,
) -> ApiResult<axum::response::Response> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let invoice = stored_invoice(&app, &tenant.id, &period).await?;
    invoice_response(invoice, format.format.as_deref())
}

/// A month to invoice.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InvoiceBody {
    /// `YYYY-MM`, a month that has ended.
    period: String,
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/billing/invoices", tag = "billing", security(("bearer" = [])), params(("tenant" = String, Path)), request_body = InvoiceBody, responses((status = 200, description = "The month's invoice, made now if the monthly job has not yet (superadmin)"), (status = 400, body = ErrorBody)))]
async fn make_invoice(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Json(body): Json<InvoiceBody>,
) -> ApiResult<axum::Json<crate::billing::invoices::Invoice>> {
    auth.require_superadmin()?;
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    Ok(axum::Json(
        app.billing.invoice(&tenant.id, &body.period).await?,
    ))
}

/// What to buy.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckoutBody {
    /// A credit package id.
    package: Option<String>,
    /// A plan id (a subscription).
    plan: Option<String>,
}

#[utoipa::path(post, path = "/v1/billing/checkout", tag = "billing", security(("bearer" = [])), request_body = CheckoutBody, responses((status = 201, description = "A Stripe Checkout Session: send the buyer to `url`; credits or the plan arrive by webhook"), (status = 404, description = "unknown_package, unknown_plan", body = ErrorBody), (status = 503, description = "stripe_not_configured", body = ErrorBody)))]
async fn checkout(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<CheckoutBody>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<Value>)> {
    use crate::billing::stripe::Purchase;
    let tenant_id = auth.tenant()?;
    auth.require(&tenant_id, Role::Admin)?;
    let what = match (body.package, body.plan) {
        (Some(p), None) => Purchase::Package(p),
        (None, Some(p)) => Purchase::Plan(p),
        _ => {
            return Err(ApiError::invalid(
                "name exactly one of \"package\" and \"plan\"",
            ));
        }
    };
    let tenant = app.tenants.by_id(&tenant_id).await?;
    let session = app
        .billing
        .checkout(&tenant.id, &tenant.name, &what)
        .await?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(json!(session))))
}

#[utoipa::path(post, path = "/v1/billing/stripe/webhook", tag = "billing", request_body(content = String, description = "Stripe's event JSON, signed in the Stripe-Signature header"), responses((status = 200, description = "Processed, a duplicate (acknowledged, nothing done) or ignored"), (status = 400, description = "invalid_signature: forged, tampered, stale or malformed", body = ErrorBody)))]
async fn stripe_webhook(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<Value>> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = now_ms() / 1000;
    let outcome = app.billing.webhook(&body, signature, now).await?;
    Ok(axum::Json(json!({ "received": true, "outcome": outcome })))
}
