//! The outbox over REST: a tenant's messages for its admins (list, one with
//! its attempts, replay a dead one) and its own providers; the dev inbox;
//! a user's in-app notifications; and the providers' signed status
//! webhooks.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_msg_wire::{
    MailgunWebhook, SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, SendGridWebhook,
    StatusEvent, TWILIO_SIGNATURE_HEADER, TwilioWebhook, WebhookError,
};

use super::admin::tenant_for;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::app::App;
use crate::messaging::providers;
use crate::messaging::store::{self, ReplayError};
use crate::messaging::{Channel, ProviderSettings};
use crate::tenancy::{CredentialKind, Role};

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/tenants/{tenant}/messages", get(list))
        .route("/v1/tenants/{tenant}/messages/{id}", get(one))
        .route("/v1/tenants/{tenant}/messages/{id}/replay", post(replay))
        .route(
            "/v1/tenants/{tenant}/messaging/providers/{channel}",
            get(provider).put(set_provider).delete(delete_provider),
        )
        .route("/v1/dev/outbox", get(dev_outbox))
        .route("/v1/me/notifications", get(notifications))
        .route("/v1/me/notifications/read-all", post(read_all))
        .route("/v1/me/notifications/{id}/read", post(read_one))
        .route("/v1/webhooks/messaging/{provider}/{tenant}", post(webhook))
}

const STATUSES: [&str; 6] = ["queued", "sent", "delivered", "bounced", "failed", "dead"];

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    recipient: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

fn limit_of(limit: Option<u32>, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(100.min(max));
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid(format!("limit is 1-{max}")));
    }
    Ok(limit)
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/messages", tag = "messaging", security(("bearer" = [])),
    params(("tenant" = String, Path), ("status" = Option<String>, Query, description = "queued, sent, delivered, bounced, failed or dead"),
        ("recipient" = Option<String>, Query, description = "exact address, number, token or user id"),
        ("before" = Option<String>, Query, description = "next_before of the previous page"),
        ("limit" = Option<u32>, Query, description = "1-500, default 100")),
    responses((status = 200, description = "The tenant's outbox messages, newest first"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::invalid(
            "status is queued, sent, delivered, bounced, failed or dead",
        ));
    }
    let limit = limit_of(q.limit, 500)?;
    let page = store::list(
        &app.db,
        &tenant.id,
        status.as_deref(),
        q.recipient.as_deref().filter(|r| !r.is_empty()),
        q.before.as_deref(),
        limit,
    )
    .await?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|m| m.id.clone()))
        .flatten();
    Ok(axum::Json(json!({ "messages": page, "next_before": next })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/messages/{id}", tag = "messaging", security(("bearer" = [])),
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "The message and its delivery attempts"), (status = 404, body = ErrorBody)))]
async fn one(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let (message, attempts) = store::get(&app.db, &tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("message_not_found", "no such message"))?;
    let mut out = serde_json::to_value(message).map_err(ApiError::internal)?;
    out["attempt_log"] = serde_json::to_value(attempts).map_err(ApiError::internal)?;
    Ok(axum::Json(out))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/messages/{id}/replay", tag = "messaging", security(("bearer" = [])),
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "The message, queued again with its attempts reset"),
        (status = 404, body = ErrorBody), (status = 409, description = "Not dead", body = ErrorBody)))]
async fn replay(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    match store::replay(&app.db, &tenant.id, &id).await {
        Ok(()) => {
            app.messaging.wake();
            let (message, _) = store::get(&app.db, &tenant.id, &id)
                .await?
                .ok_or_else(|| ApiError::not_found("message_not_found", "no such message"))?;
            Ok(axum::Json(
                serde_json::to_value(message).map_err(ApiError::internal)?,
            ))
        }
        Err(ReplayError::NotFound) => {
            Err(ApiError::not_found("message_not_found", "no such message"))
        }
        Err(e @ ReplayError::NotDead(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "message_not_dead",
            e.to_string(),
        )),
        Err(ReplayError::Db(e)) => Err(e.into()),
    }
}

fn channel_of(name: &str) -> Result<Channel, ApiError> {
    match Channel::parse(name) {
        Some(Channel::InApp) | None => Err(ApiError::not_found(
            "unknown_channel",
            "providers are set for email, sms or push",
        )),
        Some(c) => Ok(c),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/messaging/providers/{channel}", tag = "messaging", security(("bearer" = [])),
    params(("tenant" = String, Path), ("channel" = String, Path, description = "email, sms or push")),
    responses((status = 200, description = "Who delivers the channel for the tenant: its own provider (secrets redacted), the platform's, or the dev inbox")))]
async fn provider(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, channel)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let channel = channel_of(&channel)?;
    let providers = app.messaging.providers();
    let own = providers
        .own(&tenant.id, channel)
        .await
        .map_err(ApiError::internal)?;
    let out = match (own, providers.platform(channel)) {
        (Some(own), _) => json!({"source": "tenant", "settings": own.redacted()}),
        (None, Some(platform)) => json!({"source": "platform", "provider": platform.name()}),
        (None, None) if app.config.messaging.dev_inbox => json!({"source": "dev_inbox"}),
        (None, None) => json!({"source": "none"}),
    };
    Ok(axum::Json(out))
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/messaging/providers/{channel}", tag = "messaging", security(("bearer" = [])),
    params(("tenant" = String, Path), ("channel" = String, Path, description = "email, sms or push")),
    request_body(content = Object, description = "{\"provider\": \"smtp\" | \"sendgrid\" | \"mailgun\" | \"twilio\" | \"fcm\", ...its credentials and sender}"),
    responses((status = 200, description = "Stored encrypted; the tenant's messages on the channel go through it"),
        (status = 400, description = "settings that do not make a sender, or of another channel", body = ErrorBody)))]
async fn set_provider(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, channel)): Path<(String, String)>,
    Json(settings): Json<ProviderSettings>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let channel = channel_of(&channel)?;
    if settings.channel() != channel {
        return Err(ApiError::invalid(format!(
            "{} does not deliver {}",
            settings.name(),
            channel.as_str()
        )));
    }
    providers::check(&settings).map_err(ApiError::invalid)?;
    app.messaging
        .providers()
        .set_own(&tenant.id, &settings)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(
        json!({"source": "tenant", "settings": settings.redacted()}),
    ))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/messaging/providers/{channel}", tag = "messaging", security(("bearer" = [])),
    params(("tenant" = String, Path), ("channel" = String, Path)),
    responses((status = 204, description = "Removed: the platform's provider (or the dev inbox) applies again"), (status = 404, body = ErrorBody)))]
async fn delete_provider(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, channel)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let channel = channel_of(&channel)?;
    if app
        .messaging
        .providers()
        .delete_own(&tenant.id, channel)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "not_found",
            format!("the tenant has no own {} provider", channel.as_str()),
        ))
    }
}

#[derive(Deserialize)]
struct DevQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/dev/outbox", tag = "messaging", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "1-500, default 100")),
    responses((status = 200, description = "What would have been sent on channels with no provider: the caller's tenant's (a tenant admin) or every tenant's (a superadmin)")))]
async fn dev_outbox(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(q): Query<DevQuery>,
) -> ApiResult<axum::Json<Value>> {
    let limit = limit_of(q.limit, 500)?;
    let tenant = if auth.0.role == Role::Superadmin {
        None
    } else {
        let tenant = auth.tenant()?;
        auth.require(&tenant, Role::Admin)?;
        Some(tenant)
    };
    let entries = store::dev_inbox(&app.db, tenant.as_ref(), limit).await?;
    Ok(axum::Json(json!({ "messages": entries })))
}

/// The signed-in user (a session, not an API key) and their tenant.
fn me(auth: &Auth) -> Result<(crate::ids::TenantId, String), ApiError> {
    if auth.0.kind != CredentialKind::Session {
        return Err(ApiError::forbidden(
            "notifications belong to a user: sign in (an API key has none)",
        ));
    }
    Ok((auth.tenant()?, auth.0.id.clone()))
}

#[derive(Deserialize)]
struct NotificationsQuery {
    unread: Option<bool>,
    before: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/me/notifications", tag = "messaging", security(("bearer" = [])),
    params(("unread" = Option<bool>, Query, description = "only unread ones"),
        ("before" = Option<String>, Query, description = "next_before of the previous page"),
        ("limit" = Option<u32>, Query, description = "1-200, default 50")),
    responses((status = 200, description = "The caller's in-app notifications, newest first, and the unread count")))]
async fn notifications(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(q): Query<NotificationsQuery>,
) -> ApiResult<axum::Json<Value>> {
    let (tenant, user) = me(&auth)?;
    let limit = limit_of(Some(q.limit.unwrap_or(50)), 200)?;
    let page = store::notifications(
        &app.db,
        &tenant,
        &user,
        q.unread.unwrap_or(false),
        q.before.as_deref(),
        limit,
    )
    .await?;
    let unread = store::unread_count(&app.db, &tenant, &user).await?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|n| n.id.clone()))
        .flatten();
    Ok(axum::Json(
        json!({ "notifications": page, "unread": unread, "next_before": next }),
    ))
}

#[utoipa::path(post, path = "/v1/me/notifications/{id}/read", tag = "messaging", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "Marked read"), (status = 404, description = "not one of the caller's", body = ErrorBody)))]
async fn read_one(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let (tenant, user) = me(&auth)?;
    match store::mark_read(&app.db, &tenant, &user, Some(&id)).await? {
        Some(n) => Ok(axum::Json(json!({ "marked": n }))),
        None => Err(ApiError::not_found(
            "notification_not_found",
            "no such notification",
        )),
    }
}

#[utoipa::path(post, path = "/v1/me/notifications/read-all", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, description = "Every unread notification of the caller marked read")))]
async fn read_all(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    let (tenant, user) = me(&auth)?;
    let n = store::mark_read(&app.db, &tenant, &user, None)
        .await?
        .unwrap_or(0);
    Ok(axum::Json(json!({ "marked": n })))
}

fn webhook_refused(err: WebhookError) -> ApiError {
    match err {
        WebhookError::Malformed(m) => ApiError::invalid(format!("malformed webhook: {m}")),
        other => ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", other.to_string()),
    }
}

#[utoipa::path(post, path = "/v1/webhooks/messaging/{provider}/{tenant}", tag = "messaging",
    request_body(content = String, description = "The provider's status callback, signed as it signs them"),
    params(("provider" = String, Path, description = "twilio, sendgrid or mailgun"), ("tenant" = String, Path, description = "the tenant's slug")),
    responses((status = 200, description = "Verified; the statuses of the messages it names are updated"),
        (status = 401, description = "missing or wrong signature", body = ErrorBody),
        (status = 404, description = "unknown tenant or provider, or the tenant has no such provider", body = ErrorBody)))]
async fn webhook(
    State(app): State<Arc<App>>,
    Path((provider, slug)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let not_found = || {
        ApiError::not_found(
            "webhook_not_configured",
            "no such tenant, or it has no such provider",
        )
    };
    let tenant = app.tenant_by_slug(&slug).await.map_err(|_| not_found())?;
    let channel = match provider.as_str() {
        "twilio" => Channel::Sms,
        "sendgrid" | "mailgun" => Channel::Email,
        _ => return Err(not_found()),
    };
    let settings = app
        .messaging
        .providers()
        .settings(&tenant.id, channel)
        .await
        .map_err(ApiError::internal)?
        .filter(|s| s.name() == provider)
        .ok_or_else(not_found)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let events: Vec<StatusEvent> = match &settings {
        ProviderSettings::Twilio { auth_token, .. } => {
            let base = if app.config.messaging.public_url.is_empty() {
                format!("http://{}", header("host").unwrap_or("localhost"))
            } else {
                app.config
                    .messaging
                    .public_url
                    .trim_end_matches('/')
                    .to_owned()
            };
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            let url = format!("{base}{path}");
            vec![
                TwilioWebhook::new(auth_token)
                    .verify(&url, &body, header(TWILIO_SIGNATURE_HEADER))
                    .map_err(webhook_refused)?,
            ]
        }
        ProviderSettings::Sendgrid {
            webhook_public_key: Some(key),
            ..
        } => SendGridWebhook::new(key)
            .map_err(|_| ApiError::internal("the tenant's SendGrid webhook key does not parse"))?
            .verify(
                &body,
                header(SENDGRID_SIGNATURE_HEADER),
                header(SENDGRID_TIMESTAMP_HEADER),
            )
            .map_err(webhook_refused)?,
        ProviderSettings::Mailgun {
            webhook_signing_key: Some(key),
            ..
        } => MailgunWebhook::new(key)
            .verify(&body)
            .map_err(webhook_refused)?
            .into_iter()
            .collect(),
        _ => return Err(not_found()),
    };
    let mut updated = 0;
    for event in &events {
        updated += store::apply_status(&app.db, &tenant.id, &provider, event).await?;
    }
    Ok(axum::Json(
        json!({ "events": events.len(), "updated": updated }),
    ))
}
