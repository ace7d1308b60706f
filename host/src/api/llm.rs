//! `/v1/llm`: the gateway over REST — completions (streamed as server-sent
//! events when asked), estimates, embeddings, and the model catalog.
//!
//! The tenant and user come from the credential; the body names models by
//! catalog id and never carries a provider key.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_llm_wire as wire;

use super::admin::tenant_for;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::app::App;
use crate::llm::{Caller, CompletionRequest, Complexity, StreamItem};
use crate::tenancy::Role;

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/llm/complete", post(complete))
        .route("/v1/llm/estimate", post(estimate))
        .route("/v1/llm/embed", post(embed))
        .route("/v1/llm/models", get(models))
        .route("/v1/tenants/{tenant}/llm/keys", get(own_keys))
        .route(
            "/v1/tenants/{tenant}/llm/keys/{provider}",
            axum::routing::put(set_own_key).delete(delete_own_key),
        )
}

/// One message of a conversation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageBody {
    /// `user` or `assistant`.
    role: String,
    /// A string, or a list of `{"type":"text","text"}` and
    /// `{"type":"image","media_type","data"}` (base64) parts.
    #[schema(value_type = Object)]
    content: Value,
}

/// A completion request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CompleteBody {
    /// A catalog model id; omitted: the plan's default or the selector's pick.
    model: Option<String>,
    /// `chat` (default), `code`, `analysis`, `vision`, `summarize`, `extract`.
    task: Option<String>,
    complexity: Option<Complexity>,
    /// The caller's role, for the plan's per-role defaults (`architect`, `coder`).
    role: Option<String>,
    /// A session id: plans limit the sessions opened per day.
    session: Option<String>,
    system: Option<String>,
    messages: Vec<MessageBody>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    /// Answer as server-sent events (`delta`, then `done` or `error`).
    #[serde(default)]
    stream: bool,
}

fn parts_of(content: Value) -> Result<Vec<wire::Part>, ApiError> {
    match content {
        Value::String(text) => Ok(vec![wire::Part::Text(text)]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
                match kind {
                    "text" => item
                        .get("text")
                        .and_then(Value::as_str)
                        .map(|t| wire::Part::Text(t.to_owned()))
                        .ok_or_else(|| ApiError::invalid("a text part needs \"text\"")),
                    "image" => {
                        let media_type = item
                            .get("media_type")
                            .and_then(Value::as_str)
                            .filter(|m| m.starts_with("image/"))
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    "an image part needs \"media_type\": \"image/...\"",
                                )
                            })?;
                        let data = item
                            .get("data")
                            .and_then(Value::as_str)
                            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                            .filter(|d| !d.is_empty())
                            .ok_or_else(|| {
                                ApiError::invalid("an image part needs base64 \"data\"")
                            })?;
                        Ok(wire::Part::Image {
                            media_type: media_type.to_owned(),
                            data,
                        })
                    }
                    other => Err(ApiError::invalid(format!(
                        "content part type {other:?} is not \"text\" or \"image\""
                    ))),
                }
            })
            .collect(),
        _ => Err(ApiError::invalid(
            "content must be a string or a list of parts",
        )),
    }
}

impl CompleteBody {
    fn into_request(self) -> Result<(CompletionRequest, bool), ApiError> {
        let messages = self
            .messages
            .into_iter()
            .map(|m| {
                let role = match m.role.as_str() {
                    "user" => wire::Role::User,
                    "assistant" => wire::Role::Assistant,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "role {other:?} is not \"user\" or \"assistant\" (system text goes in \"system\")"
                        )));
                    }
                };
                Ok(wire::Message {
                    role,
                    parts: parts_of(m.content)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            CompletionRequest {
                model: self.model,
                task: self.task.unwrap_or_else(|| "chat".into()),
                complexity: self.complexity.unwrap_or_default(),
                role: self.role,
                session: self.session,
                system: self.system,
                messages,
                max_tokens: self.max_tokens,
                temperature: self.temperature,
            },
            self.stream,
        ))
    }
}

/// The caller of a gateway route: a credential of a tenant.
fn caller_of(auth: &Auth) -> Result<Caller, ApiError> {
    let tenant =
        auth.0.tenant.clone().ok_or_else(|| {
            ApiError::invalid("the LLM gateway is used with a tenant's credential")
        })?;
    Ok(Caller {
        tenant,
        user: auth.0.id.clone(),
        plugin: None,
    })
}

#[utoipa::path(post, path = "/v1/llm/complete", tag = "llm", security(("bearer" = [])), request_body = CompleteBody, responses((status = 200, description = "The answer, its usage, cost, balance and the models tried; with \"stream\": true, server-sent events"), (status = 402, description = "insufficient_credits", body = ErrorBody), (status = 403, description = "daily_limit_exceeded, model_not_allowed, account_suspended", body = ErrorBody), (status = 502, description = "llm_unavailable: every model failed, nothing charged", body = ErrorBody)))]
async fn complete(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<CompleteBody>,
) -> ApiResult<Response> {
    let caller = caller_of(&auth)?;
    let (request, stream) = body.into_request()?;
    if !stream {
        let answer = app.llm.complete(&caller, &request).await?;
        return Ok(axum::Json(answer).into_response());
    }
    let items = app.llm.stream(&caller, request).await?;
    let events =
        futures::StreamExt::map(Receiver(items), |item| Ok::<_, Infallible>(event_of(item)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One streamed item as a server-sent event.
fn event_of(item: StreamItem) -> Event {
    match item {
        StreamItem::Delta(text) => Event::default()
            .event("delta")
            .data(json!({ "text": text }).to_string()),
        StreamItem::Done(answer) => Event::default()
            .event("done")
            .data(serde_json::to_string(&answer).unwrap_or_default()),
        StreamItem::Failed(err) => {
            let err = ApiError::from(err);
            let mut body = err.details.unwrap_or_default();
            body.insert("code".into(), json!(err.code));
            body.insert("message".into(), json!(err.message));
            Event::default()
                .event("error")
                .data(json!({ "error": body }).to_string())
        }
    }
}

/// A `Stream` over the gateway's channel (what `tokio-stream` offers, in a
/// few lines instead of a dependency).
struct Receiver(tokio::sync::mpsc::Receiver<StreamItem>);

impl futures::Stream for Receiver {
    type Item = StreamItem;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<StreamItem>> {
        self.0.poll_recv(cx)
    }
}

#[utoipa::path(post, path = "/v1/llm/estimate", tag = "llm", security(("bearer" = [])), request_body = CompleteBody, responses((status = 200, description = "The model chain, token estimate, credits that would be held, the balance, what calls in flight hold and what is available; no model is called")))]
async fn estimate(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<CompleteBody>,
) -> ApiResult<axum::Json<Value>> {
    let caller = caller_of(&auth)?;
    let (request, _) = body.into_request()?;
    let estimate = app.llm.estimate(&caller, &request).await?;
    let affordable = estimate.available >= estimate.estimate;
    let mut value = serde_json::to_value(&estimate).map_err(ApiError::internal)?;
    value["affordable"] = json!(affordable);
    Ok(axum::Json(value))
}

/// An embeddings request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EmbedBody {
    /// A catalog embedding model; omitted: the cheapest configured one.
    model: Option<String>,
    inputs: Vec<String>,
}

#[utoipa::path(post, path = "/v1/llm/embed", tag = "llm", security(("bearer" = [])), request_body = EmbedBody, responses((status = 200, description = "One vector per input, usage, cost")))]
async fn embed(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<EmbedBody>,
) -> ApiResult<axum::Json<crate::llm::EmbedAnswer>> {
    let caller = caller_of(&auth)?;
    let answer = app
        .llm
        .embed(&caller, body.model.as_deref(), body.inputs)
        .await?;
    Ok(axum::Json(answer))
}

#[utoipa::path(get, path = "/v1/llm/models", tag = "llm", security(("bearer" = [])), responses((status = 200, description = "The catalog: provider, prices in credits per 1K tokens, context, vision, tasks, tiers, whether the caller's tenant can call it (`configured`) and whether that is on the tenant's own key (`own_key`)")))]
async fn models(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    let own: Vec<String> = match &auth.0.tenant {
        Some(tenant) => app
            .secrets
            .list(tenant, crate::llm::OWN_KEY_PREFIX)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .filter_map(|k| {
                k.name
                    .strip_prefix(crate::llm::OWN_KEY_PREFIX)
                    .map(str::to_owned)
            })
            .collect(),
        None => Vec::new(),
    };
    let catalog = app.llm.catalog();
    let models: Vec<Value> = catalog
        .models()
        .iter()
        .map(|m| {
            let own_key = own.contains(&m.provider);
            let mut v = serde_json::to_value(m).unwrap_or_default();
            v["configured"] = json!(own_key || catalog.is_configured(m));
            v["own_key"] = json!(own_key);
            v
        })
        .collect();
    Ok(axum::Json(json!({ "models": models })))
}

/// A tenant's own key for one provider.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OwnKeyBody {
    /// The provider's API key; stored encrypted, never shown again.
    api_key: String,
}

/// The provider of a tenant key route, checked against the configuration.
fn own_key_name(app: &App, provider: &str) -> Result<String, ApiError> {
    if !app.llm.has_provider(provider) {
        return Err(ApiError::not_found(
            "unknown_provider",
            format!("no provider {provider:?} is configured on this platform"),
        ));
    }
    Ok(format!("{}{provider}", crate::llm::OWN_KEY_PREFIX))
}

fn own_key_view(info: crate::secrets::SecretInfo) -> Value {
    let provider = info
        .name
        .strip_prefix(crate::llm::OWN_KEY_PREFIX)
        .unwrap_or(&info.name)
        .to_owned();
    json!({ "provider": provider, "hint": format!("…{}", info.hint), "updated_at": info.updated_at })
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/llm/keys", tag = "llm", security(("bearer" = [])), params(("tenant" = String, Path)), responses((status = 200, description = "The providers the tenant brought its own key for, with the key's last four characters (never the key)")))]
async fn own_keys(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let keys = app
        .secrets
        .list(&tenant.id, crate::llm::OWN_KEY_PREFIX)
        .await
        .map_err(ApiError::internal)?;
    let keys: Vec<Value> = keys.into_iter().map(own_key_view).collect();
    Ok(axum::Json(json!({ "keys": keys })))
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/llm/keys/{provider}", tag = "llm", security(("bearer" = [])), params(("tenant" = String, Path), ("provider" = String, Path)), request_body = OwnKeyBody, responses((status = 200, description = "Stored, encrypted: the tenant's calls to this provider use it and cost no credits"), (status = 400, description = "not a plausible key", body = ErrorBody), (status = 404, description = "unknown_provider", body = ErrorBody)))]
async fn set_own_key(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, provider)): Path<(String, String)>,
    Json(body): Json<OwnKeyBody>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let name = own_key_name(&app, &provider)?;
    let key = body.api_key.trim();
    if !(8..=512).contains(&key.len()) || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(
            "api_key must be 8-512 characters without spaces",
        ));
    }
    let info = app
        .secrets
        .put(&tenant.id, &name, key)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(own_key_view(info)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/llm/keys/{provider}", tag = "llm", security(("bearer" = [])), params(("tenant" = String, Path), ("provider" = String, Path)), responses((status = 204, description = "Removed: the platform's key (and credits) apply again"), (status = 404, description = "no key for this provider", body = ErrorBody)))]
async fn delete_own_key(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((slug, provider)): Path<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    let tenant = tenant_for(&app, &auth, &slug, Role::Admin).await?;
    let name = own_key_name(&app, &provider)?;
    if app
        .secrets
        .delete(&tenant.id, &name)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "not_found",
            format!("the tenant has no own key for {provider:?}"),
        ))
    }
}
