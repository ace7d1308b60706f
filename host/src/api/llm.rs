//! `/v1/llm`: the gateway over REST — completions (streamed as server-sent
//! events when asked), estimates, embeddings, and the model catalog.
//!
//! The tenant and user come from the credential; the body names models by
//! catalog id and never carries a provider key.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_llm_wire as wire;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::app::App;
use crate::llm::{Caller, CompletionRequest, Complexity, StreamItem};

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/llm/complete", post(complete))
        .route("/v1/llm/estimate", post(estimate))
        .route("/v1/llm/embed", post(embed))
        .route("/v1/llm/models", get(models))
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

#[utoipa::path(post, path = "/v1/llm/estimate", tag = "llm", security(("bearer" = [])), request_body = CompleteBody, responses((status = 200, description = "The model chain, token estimate, credits that would be held, and the balance; no model is called")))]
async fn estimate(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<CompleteBody>,
) -> ApiResult<axum::Json<Value>> {
    let caller = caller_of(&auth)?;
    let (request, _) = body.into_request()?;
    let estimate = app.llm.estimate(&caller, &request).await?;
    let affordable = estimate.balance >= estimate.estimate;
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

#[utoipa::path(get, path = "/v1/llm/models", tag = "llm", security(("bearer" = [])), responses((status = 200, description = "The catalog: provider, prices in credits per 1K tokens, context, vision, tasks, tiers, and whether its provider is configured")))]
async fn models(State(app): State<Arc<App>>, _auth: Auth) -> axum::Json<Value> {
    let catalog = app.llm.catalog();
    let models: Vec<Value> = catalog
        .models()
        .iter()
        .map(|m| {
            let mut v = serde_json::to_value(m).unwrap_or_default();
            v["configured"] = json!(catalog.is_configured(m));
            v
        })
        .collect();
    axum::Json(json!({ "models": models }))
}
