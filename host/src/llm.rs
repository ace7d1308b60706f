//! The LLM gateway: every model call of the platform goes through here.
//!
//! A request is prepared, called, then settled:
//!
//! 1. **prepare** (one transaction): the tenant's account and plan, the
//!    user's overrides → the model chain (`select.rs`) → the cost estimate
//!    (input estimate + the output asked for, priced at the dearest model of
//!    the chain, with the margin). Refused with nothing written if the
//!    account is suspended, the day's tokens or sessions would pass the
//!    plan's limits, or the balance cannot cover the estimate. Otherwise the
//!    estimate is held (a `hold` entry) and the tokens reserved.
//! 2. **call**: the chain in order; a timeout, 429, 5xx or broken connection
//!    moves on to the next model, anything else stops. No transaction is
//!    open meanwhile.
//! 3. **settle** (one transaction): the hold is released, the tokens the
//!    provider reported are charged at the answering model's price (nothing
//!    if no model answered), the day's counters corrected, the call recorded
//!    with every attempt.
//!
//! A crash between 1 and 3 leaves a hold; `jobs/` releases holds older
//! than `billing.stale_hold_secs`.

pub mod config;
pub mod select;
mod settlement;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use weft_llm_wire as wire;

pub use config::{Complexity, LlmConfig, ModelConfig};
pub use select::{Ask, Catalog, Policy, SelectError};

use settlement::{Held, Outcome};

use crate::billing::{self, Billing, Micro};
use crate::db::{self, Db, Mode, Scope};
use crate::ids::TenantId;
use crate::secrets::Secrets;

/// Why a gateway request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error(transparent)]
    Billing(#[from] billing::Error),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::Error),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("the tenant's AI use is suspended")]
    Suspended,
    /// A daily limit of the plan (or the user's override) would be passed.
    #[error(
        "{what} for today would pass the limit of {limit} ({used} used); it resets at {reset_at}"
    )]
    DailyLimit {
        what: &'static str,
        limit: u64,
        used: u64,
        reset_at: String,
    },
    /// The estimate is more than the tenant can spend: its balance less
    /// what its calls in flight hold.
    #[error(
        "the estimate of {needed} credits is more than the {} available (balance {balance}, held {held})",
        *balance - *held
    )]
    InsufficientCredits {
        needed: Micro,
        balance: Micro,
        held: Micro,
    },
    /// Every model of the chain failed; nothing was charged.
    #[error("no model answered ({} tried)", attempts.len())]
    Unavailable { attempts: Vec<Attempt> },
    /// A provider refused the request (a 4xx other than 429); nothing was
    /// charged and no other model was tried.
    #[error("the provider refused the request (status {status})")]
    Rejected { status: u16, attempts: Vec<Attempt> },
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who is asking: the binding of the request, never the body.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    /// The user (or API key) id; per-user limits and usage key on it.
    pub user: String,
    /// The plugin making the call, if a plugin is.
    pub plugin: Option<String>,
}

/// A chat completion request.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    /// An explicit model (catalog id).
    pub model: Option<String>,
    pub task: String,
    pub complexity: Complexity,
    /// The caller's role (`architect`, `coder`, ...), for the plan's defaults.
    pub role: Option<String>,
    /// A session id; plans limit new sessions per day.
    pub session: Option<String>,
    pub system: Option<String>,
    pub messages: Vec<wire::Message>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// One model tried for a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub model: String,
    pub provider: String,
    /// `ok`, `timeout`, `rate_limited`, `server_error`, `rejected`,
    /// `transport_error`, `protocol_error`, `unsupported`.
    pub outcome: String,
    pub status: Option<u16>,
    pub latency_ms: u64,
}

/// What a request costs before it runs.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// The model chain, first choice first.
    pub models: Vec<String>,
    pub input_tokens: u64,
    pub max_output_tokens: u64,
    /// Credits held for the call (the dearest model of the chain).
    pub estimate: Micro,
    pub balance: Micro,
    /// What the tenant's calls in flight hold of the balance.
    pub held: Micro,
    /// What the tenant can spend: balance less held.
    pub available: Micro,
    pub plan: String,
}

/// A finished completion, with what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub id: String,
    pub model: String,
    pub provider: String,
    pub text: String,
    pub finish_reason: String,
    pub usage: wire::Usage,
    pub cost: Micro,
    pub estimate: Micro,
    pub balance: Micro,
    pub attempts: Vec<Attempt>,
    /// The answer ran on the tenant's own provider key: no credits charged.
    pub own_key: bool,
}

/// One item of a streamed completion.
#[derive(Debug)]
pub enum StreamItem {
    Delta(String),
    /// The end: the whole answer, billed from the provider's final usage.
    Done(Answer),
    /// The stream could not finish; what was delivered is billed.
    Failed(Error),
}

/// Embeddings, with what they cost.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedAnswer {
    pub id: String,
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    pub usage: wire::Usage,
    pub cost: Micro,
    pub balance: Micro,
    pub attempts: Vec<Attempt>,
}

/// Tokens of `text` as the gateway estimates them before a call (about four
/// characters per token, the providers' own rule of thumb).
pub fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Tokens an image is estimated at.
const IMAGE_TOKENS: u64 = 85;

fn input_tokens(system: Option<&str>, messages: &[wire::Message]) -> u64 {
    let parts = messages.iter().flat_map(|m| &m.parts);
    system.map_or(0, text_tokens)
        + parts
            .map(|p| match p {
                wire::Part::Text(t) => text_tokens(t),
                wire::Part::Image { .. } => IMAGE_TOKENS,
            })
            .sum::<u64>()
}

/// A user's limits set by a tenant admin, over the plan's.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLimits {
    /// Tokens per UTC day for this user.
    pub tokens_per_day: Option<u64>,
    /// Models this user may use (replaces the plan's list).
    pub allowed_models: Option<Vec<String>>,
    /// Default model per role for this user.
    pub default_models: Option<std::collections::BTreeMap<String, String>>,
}

/// The gateway service.
#[derive(Debug)]
pub struct Gateway {
    db: Db,
    billing: Arc<Billing>,
    config: LlmConfig,
    catalog: Catalog,
    /// Providers with the operator's key.
    endpoints: HashMap<String, wire::Endpoint>,
    /// Every provider without a key, for tenants that bring their own.
    templates: HashMap<String, wire::Endpoint>,
    secrets: Arc<Secrets>,
    client: wire::Client,
}

/// Secret names of a tenant's own provider keys: `llm.<provider>`.
pub const OWN_KEY_PREFIX: &str = "llm.";

impl Gateway {
    /// The gateway with `config`'s providers (keys read from the
    /// environment through `env`) and catalog.
    pub fn new(
        db: Db,
        billing: Arc<Billing>,
        secrets: Arc<Secrets>,
        config: LlmConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut endpoints = HashMap::new();
        let mut templates = HashMap::new();
        for p in &config.providers {
            let key = if p.api_key.is_empty() && !p.api_key_env.is_empty() {
                env(&p.api_key_env).unwrap_or_default()
            } else {
                p.api_key.clone()
            };
            let mut template =
                wire::Endpoint::new(p.kind, "", Duration::from_millis(p.timeout_ms.max(1)));
            if !p.base_url.is_empty() {
                template = template.with_base_url(p.base_url.clone());
            }
            templates.insert(p.name.clone(), template.clone());
            // A compatible local server may take no key at all.
            if key.is_empty() && p.kind != wire::ProviderKind::OpenAiCompatible {
                continue;
            }
            endpoints.insert(
                p.name.clone(),
                wire::Endpoint {
                    api_key: key,
                    ..template
                },
            );
        }
        for m in &config.models {
            if !config.providers.iter().any(|p| p.name == m.provider) {
                return Err(Error::Invalid(format!(
                    "model {:?} names provider {:?}, which is not configured",
                    m.id, m.provider
                )));
            }
        }
        let configured: HashSet<String> = endpoints.keys().cloned().collect();
        let client = wire::Client::new().map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Self {
            catalog: Catalog::new(config.models.clone(), configured),
            db,
            billing,
            config,
            endpoints,
            templates,
            secrets,
            client,
        })
    }

    /// Whether `provider` is one of the configured providers (a tenant may
    /// bring a key for it).
    pub fn has_provider(&self, provider: &str) -> bool {
        self.templates.contains_key(provider)
    }

    /// The endpoints of the providers `tenant` brought its own key for.
    async fn own_endpoints(&self, tenant: &TenantId) -> Result<HashMap<String, wire::Endpoint>> {
        let keys = self.secrets.values(tenant, OWN_KEY_PREFIX).await?;
        Ok(keys
            .into_iter()
            .filter_map(|(name, key)| {
                let provider = name.strip_prefix(OWN_KEY_PREFIX)?;
                let template = self.templates.get(provider)?;
                Some((
                    provider.to_owned(),
                    wire::Endpoint {
                        api_key: key,
                        ..template.clone()
                    },
                ))
            })
            .collect())
    }

    /// The catalog, with which providers are configured.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn max_output(&self, asked: Option<u32>) -> Result<u64> {
        let max = asked.unwrap_or(self.config.default_max_tokens);
        if max == 0 || max > self.config.max_tokens_limit {
            return Err(Error::Invalid(format!(
                "max_tokens must be 1-{}",
                self.config.max_tokens_limit
            )));
        }
        Ok(u64::from(max))
    }

    fn ask<'a>(&self, req: &'a CompletionRequest, tokens: u64) -> Ask<'a> {
        let images = req
            .messages
            .iter()
            .flat_map(|m| &m.parts)
            .any(|p| matches!(p, wire::Part::Image { .. }));
        Ask {
            task: &req.task,
            complexity: req.complexity,
            model: req.model.as_deref(),
            images,
            tokens,
        }
    }

    fn check_request(req: &CompletionRequest) -> Result<()> {
        if req.messages.is_empty() {
            return Err(Error::Invalid("messages must not be empty".into()));
        }
        if req.messages.iter().any(|m| m.parts.is_empty()) {
            return Err(Error::Invalid("a message has no content".into()));
        }
        if !matches!(
            req.task.as_str(),
            "chat" | "code" | "analysis" | "vision" | "summarize" | "extract"
        ) {
            return Err(Error::Invalid(format!(
                "task {:?} is not one of chat, code, analysis, vision, summarize, extract",
                req.task
            )));
        }
        if let Some(t) = req.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(Error::Invalid("temperature must be 0-2".into()));
        }
        Ok(())
    }

    /// What `req` would cost and whether it would be refused, without
    /// calling any model or writing anything.
    pub async fn estimate(&self, caller: &Caller, req: &CompletionRequest) -> Result<Estimate> {
        Self::check_request(req)?;
        let max_output = self.max_output(req.max_tokens)?;
        let input = input_tokens(req.system.as_deref(), &req.messages);
        let mut tx = self
            .db
            .begin(Scope::Tenant(&caller.tenant), Mode::Read)
            .await?;
        let ask = self.ask(req, input + max_output);
        let a = self
            .assess(&mut tx, caller, ask, req.role.as_deref(), input, max_output)
            .await?;
        Ok(Estimate {
            models: a.chain.iter().map(|m| m.id.clone()).collect(),
            input_tokens: a.input_tokens,
            max_output_tokens: a.max_output,
            estimate: a.estimate,
            balance: a.balance,
            held: a.held,
            available: a.balance - a.held,
            plan: a.plan.id,
        })
    }

    /// The endpoint `model` is called at: the tenant's own key first.
    fn endpoint<'a>(
        &'a self,
        model: &ModelConfig,
        own: &'a HashMap<String, wire::Endpoint>,
    ) -> Option<&'a wire::Endpoint> {
        own.get(&model.provider)
            .or_else(|| self.endpoints.get(&model.provider))
    }

    fn wire_request(
        model: &ModelConfig,
        req: &CompletionRequest,
        max_output: u64,
    ) -> wire::ChatRequest {
        wire::ChatRequest {
            model: model.model.clone(),
            system: req.system.clone(),
            messages: req.messages.clone(),
            max_tokens: u32::try_from(max_output).unwrap_or(u32::MAX),
            temperature: req.temperature,
        }
    }

    /// Runs `req`: prepare, call the chain, settle.
    pub async fn complete(&self, caller: &Caller, req: &CompletionRequest) -> Result<Answer> {
        Self::check_request(req)?;
        let max_output = self.max_output(req.max_tokens)?;
        let input = input_tokens(req.system.as_deref(), &req.messages);
        let ask = self.ask(req, input + max_output);
        let held = self
            .prepare(
                caller,
                ask,
                req.role.as_deref(),
                req.session.as_deref(),
                input,
                max_output,
            )
            .await?;
        let tried = self
            .try_chain(&held, |model, ep| {
                let request = Self::wire_request(model, req, max_output);
                async move { self.client.complete(ep, &request).await }
            })
            .await;
        let Settled {
            model,
            answer: c,
            cost,
            balance,
            attempts,
        } = self
            .settle_tried(caller, &held, tried, |c: &wire::Completion| c.usage)
            .await?;
        Ok(Answer {
            id: held.call_id.clone(),
            model: model.id.clone(),
            provider: model.provider.clone(),
            text: c.text,
            finish_reason: c.finish_reason,
            usage: c.usage,
            cost,
            estimate: held.assessment.estimate,
            balance,
            attempts,
            own_key: held.own_key(model),
        })
    }

    /// Runs `req` streamed. The stream is driven by a task of its own, so
    /// the call is settled even if the receiver goes away; a model that
    /// fails before its first piece of text is replaced by the next one.
    pub async fn stream(
        self: &Arc<Self>,
        caller: &Caller,
        req: CompletionRequest,
    ) -> Result<mpsc::Receiver<StreamItem>> {
        Self::check_request(&req)?;
        let max_output = self.max_output(req.max_tokens)?;
        let input = input_tokens(req.system.as_deref(), &req.messages);
        let ask = self.ask(&req, input + max_output);
        let held = self
            .prepare(
                caller,
                ask,
                req.role.as_deref(),
                req.session.as_deref(),
                input,
                max_output,
            )
            .await?;
        let (tx, rx) = mpsc::channel(64);
        let gateway = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            gateway
                .drive_stream(caller, req, held, max_output, tx)
                .await;
        });
        Ok(rx)
    }

    async fn drive_stream(
        &self,
        caller: Caller,
        req: CompletionRequest,
        held: Held,
        max_output: u64,
        out: mpsc::Sender<StreamItem>,
    ) {
        let mut attempts = Vec::new();
        let mut done: Option<(&ModelConfig, wire::Completion)> = None;
        let mut partial: Option<(&ModelConfig, String)> = None;
        let mut rejected = None;
        'models: for model in &held.assessment.chain {
            let Some(ep) = self.endpoint(model, &held.assessment.own) else {
                continue;
            };
            let started = Instant::now();
            let mut stream = match self
                .client
                .stream(ep, &Self::wire_request(model, &req, max_output))
                .await
            {
                Ok(stream) => stream,
                Err(e) => {
                    attempts.push(attempt(model, Some(&e), started));
                    if e.retryable() {
                        continue;
                    }
                    rejected = Some(status_of(&e).unwrap_or(400));
                    break;
                }
            };
            let mut text = String::new();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(wire::StreamEvent::Delta(piece)) => {
                        text.push_str(&piece);
                        // A receiver that left does not stop the call.
                        let _ = out.send(StreamItem::Delta(piece)).await;
                    }
                    Ok(wire::StreamEvent::Done(completion)) => {
                        attempts.push(attempt(model, None, started));
                        done = Some((model, completion));
                        break 'models;
                    }
                    Err(e) => {
                        attempts.push(attempt(model, Some(&e), started));
                        if text.is_empty() && e.retryable() {
                            continue 'models;
                        }
                        partial = Some((model, text));
                        break 'models;
                    }
                }
            }
            attempts.push(attempt(
                model,
                Some(&wire::WireError::new(
                    wire::ErrorKind::Protocol,
                    "stream ended early",
                )),
                started,
            ));
            partial = Some((model, text));
            break;
        }
        // What was delivered of a broken stream is billed as estimated.
        let partial_usage = partial.as_ref().map(|(m, text)| {
            (
                *m,
                wire::Usage {
                    input_tokens: held.assessment.input_tokens,
                    output_tokens: text_tokens(text),
                },
            )
        });
        let outcome = Outcome {
            answered: done.as_ref().map(|(m, c)| (*m, c.usage)).or(partial_usage),
            attempts: &attempts,
            code: if done.is_none() && partial.is_some() {
                "stream_interrupted"
            } else {
                outcome_code(done.is_some(), rejected)
            },
            streamed: true,
        };
        let settled = self.settle(&caller, &held, outcome).await;
        let item = match (settled, done) {
            (Err(e), _) => StreamItem::Failed(e),
            (Ok((cost, balance)), Some((model, c))) => StreamItem::Done(Answer {
                id: held.call_id.clone(),
                model: model.id.clone(),
                provider: model.provider.clone(),
                text: c.text,
                finish_reason: c.finish_reason,
                usage: c.usage,
                cost,
                estimate: held.assessment.estimate,
                balance,
                attempts,
                own_key: held.own_key(model),
            }),
            (Ok(_), None) => StreamItem::Failed(failure(rejected, attempts)),
        };
        let _ = out.send(item).await;
    }

    /// Embeds `inputs` with the chain for task `embed`.
    pub async fn embed(
        &self,
        caller: &Caller,
        model: Option<&str>,
        inputs: Vec<String>,
    ) -> Result<EmbedAnswer> {
        if inputs.is_empty() || inputs.len() > 2_048 {
            return Err(Error::Invalid("inputs must hold 1-2048 texts".into()));
        }
        let input: u64 = inputs.iter().map(|t| text_tokens(t)).sum();
        let longest = inputs.iter().map(|t| text_tokens(t)).max().unwrap_or(0);
        let ask = Ask {
            task: "embed",
            complexity: Complexity::Low,
            model,
            images: false,
            tokens: longest,
        };
        let held = self.prepare(caller, ask, None, None, input, 0).await?;
        let tried = self
            .try_chain(&held, |m, ep| {
                let request = wire::EmbedRequest {
                    model: m.model.clone(),
                    inputs: inputs.clone(),
                };
                async move {
                    let mut e = self.client.embed(ep, &request).await?;
                    // A provider that reports no usage is billed on the estimate.
                    if e.usage.input_tokens == 0 {
                        e.usage.input_tokens = input;
                    }
                    Ok(e)
                }
            })
            .await;
        let Settled {
            model: m,
            answer: e,
            cost,
            balance,
            attempts,
        } = self
            .settle_tried(caller, &held, tried, |e: &wire::Embeddings| e.usage)
            .await?;
        Ok(EmbedAnswer {
            id: held.call_id.clone(),
            model: m.id.clone(),
            vectors: e.vectors,
            usage: e.usage,
            cost,
            balance,
            attempts,
        })
    }

    /// Settles a request that was not streamed after trying its chain: the
    /// answering model and its answer with what it cost, or the chain's
    /// failure (settled too, charging nothing).
    async fn settle_tried<'a, T>(
        &self,
        caller: &Caller,
        held: &Held,
        tried: Tried<'a, T>,
        usage: fn(&T) -> wire::Usage,
    ) -> Result<Settled<'a, T>> {
        let outcome = Outcome {
            answered: tried.answer.as_ref().map(|(m, a)| (*m, usage(a))),
            attempts: &tried.attempts,
            code: tried.code(),
            streamed: false,
        };
        let (cost, balance) = self.settle(caller, held, outcome).await?;
        let Tried {
            answer,
            attempts,
            rejected,
        } = tried;
        let Some((model, answer)) = answer else {
            return Err(failure(rejected, attempts));
        };
        Ok(Settled {
            model,
            answer,
            cost,
            balance,
            attempts,
        })
    }

    /// Tries `chain` in order with `call` until a model answers or refuses
    /// (a 4xx other than 429); a timeout, 429, 5xx or broken connection
    /// moves on to the next model.
    async fn try_chain<'a, T, Fut>(
        &'a self,
        held: &'a Held,
        mut call: impl FnMut(&'a ModelConfig, &'a wire::Endpoint) -> Fut,
    ) -> Tried<'a, T>
    where
        Fut: std::future::Future<Output = wire::Result<T>>,
    {
        let mut tried = Tried {
            answer: None,
            attempts: Vec::new(),
            rejected: None,
        };
        for model in &held.assessment.chain {
            let Some(ep) = self.endpoint(model, &held.assessment.own) else {
                continue;
            };
            let started = Instant::now();
            let result = call(model, ep).await;
            tried
                .attempts
                .push(attempt(model, result.as_ref().err(), started));
            match result {
                Ok(answer) => {
                    tried.answer = Some((model, answer));
                    break;
                }
                Err(e) if e.retryable() => {}
                Err(e) => {
                    tried.rejected = Some(status_of(&e).unwrap_or(400));
                    break;
                }
            }
        }
        tried
    }
}

/// A settled answer of [`Gateway::settle_tried`].
struct Settled<'a, T> {
    model: &'a ModelConfig,
    answer: T,
    cost: Micro,
    balance: Micro,
    attempts: Vec<Attempt>,
}

/// How trying a chain went.
struct Tried<'a, T> {
    answer: Option<(&'a ModelConfig, T)>,
    attempts: Vec<Attempt>,
    /// The status of the refusal that stopped the chain.
    rejected: Option<u16>,
}

impl<T> Tried<'_, T> {
    /// The outcome recorded with the call.
    fn code(&self) -> &'static str {
        outcome_code(self.answer.is_some(), self.rejected)
    }
}

fn outcome_code(answered: bool, rejected: Option<u16>) -> &'static str {
    match (answered, rejected) {
        (true, _) => "ok",
        (false, Some(_)) => "llm_rejected",
        (false, None) => "llm_unavailable",
    }
}

/// The error of a chain no model answered.
fn failure(rejected: Option<u16>, attempts: Vec<Attempt>) -> Error {
    match rejected {
        Some(status) => Error::Rejected { status, attempts },
        None => Error::Unavailable { attempts },
    }
}

fn status_of(e: &wire::WireError) -> Option<u16> {
    match e.kind {
        wire::ErrorKind::Server { status } | wire::ErrorKind::Rejected { status } => Some(status),
        wire::ErrorKind::RateLimited => Some(429),
        _ => None,
    }
}

fn attempt(model: &ModelConfig, err: Option<&wire::WireError>, started: Instant) -> Attempt {
    let outcome = match err.map(|e| e.kind) {
        None => "ok",
        Some(wire::ErrorKind::Timeout) => "timeout",
        Some(wire::ErrorKind::RateLimited) => "rate_limited",
        Some(wire::ErrorKind::Server { .. }) => "server_error",
        Some(wire::ErrorKind::Rejected { .. }) => "rejected",
        Some(wire::ErrorKind::Transport) => "transport_error",
        Some(wire::ErrorKind::Protocol) => "protocol_error",
        Some(wire::ErrorKind::Unsupported) => "unsupported",
    };
    Attempt {
        model: model.id.clone(),
        provider: model.provider.clone(),
        outcome: outcome.into(),
        status: err.and_then(status_of),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_estimates_count_text_and_images() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        let messages = vec![wire::Message {
            role: wire::Role::User,
            parts: vec![
                wire::Part::Text("12345678".into()),
                wire::Part::Image {
                    media_type: "image/png".into(),
                    data: vec![1, 2, 3],
                },
            ],
        }];
        assert_eq!(input_tokens(Some("sys!"), &messages), 1 + 2 + IMAGE_TOKENS);
    }
}
