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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use weft_llm_wire as wire;

pub use config::{Complexity, LlmConfig, ModelConfig};
pub use select::{Ask, Catalog, Policy, SelectError};

use crate::billing::{self, Billing, Micro, NewEntry, PlanConfig, ledger};
use crate::db::{self, Db, Exec, Mode, Scope, Stmt};
use crate::ids::{TenantId, now_ms};

/// Why a gateway request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error(transparent)]
    Billing(#[from] billing::Error),
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
    #[error("the estimate of {needed} credits is more than the balance of {balance}")]
    InsufficientCredits { needed: Micro, balance: Micro },
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

const DAY_MS: i64 = 86_400_000;

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

/// Next UTC midnight after `day`, as RFC 3339.
fn reset_at(day: i64) -> String {
    let ms = (day + 1) * DAY_MS;
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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

/// What the limits and the chain came to for one request.
struct Assessment {
    plan: PlanConfig,
    user_limits: UserLimits,
    chain: Vec<ModelConfig>,
    input_tokens: u64,
    max_output: u64,
    estimate: Micro,
    balance: Micro,
    suspended: bool,
}

/// A prepared (held) request.
struct Held {
    call_id: String,
    task: String,
    hold_id: String,
    assessment: Assessment,
    day: i64,
    started: Instant,
}

/// How a request ended, for settling.
struct Outcome<'a> {
    answered: Option<(&'a ModelConfig, wire::Usage)>,
    attempts: &'a [Attempt],
    code: &'a str,
    streamed: bool,
}

/// The gateway service.
#[derive(Debug)]
pub struct Gateway {
    db: Db,
    billing: Arc<Billing>,
    config: LlmConfig,
    catalog: Catalog,
    endpoints: HashMap<String, wire::Endpoint>,
    client: wire::Client,
}

impl Gateway {
    /// The gateway with `config`'s providers (keys read from the
    /// environment through `env`) and catalog.
    pub fn new(
        db: Db,
        billing: Arc<Billing>,
        config: LlmConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut endpoints = HashMap::new();
        for p in &config.providers {
            let key = if p.api_key.is_empty() && !p.api_key_env.is_empty() {
                env(&p.api_key_env).unwrap_or_default()
            } else {
                p.api_key.clone()
            };
            // A compatible local server may take no key at all.
            if key.is_empty() && p.kind != wire::ProviderKind::OpenAiCompatible {
                continue;
            }
            let mut ep =
                wire::Endpoint::new(p.kind, key, Duration::from_millis(p.timeout_ms.max(1)));
            if !p.base_url.is_empty() {
                ep = ep.with_base_url(p.base_url.clone());
            }
            endpoints.insert(p.name.clone(), ep);
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
            client,
        })
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

    /// Reads the account, plan and overrides, and builds the chain and the
    /// estimate; writes nothing.
    async fn assess(
        &self,
        tx: &mut impl Exec,
        caller: &Caller,
        ask: Ask<'_>,
        role: Option<&str>,
        input_tokens: u64,
        max_output: u64,
    ) -> Result<Assessment> {
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT plan, suspended, balance FROM billing_accounts WHERE tenant_id = $1",
                )
                .bind(caller.tenant.as_str()),
            )
            .await?;
        let default_plan = &self.billing.config().default_plan;
        let (plan_id, suspended, balance) = match row {
            Some(row) => (row.get::<String>(0)?, row.get::<i64>(1)? != 0, row.get(2)?),
            None => (default_plan.clone(), false, 0),
        };
        let plan = self.billing.plan_or_default(&plan_id).clone();
        let limits_row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT limits FROM llm_user_limits WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(caller.tenant.as_str())
                .bind(&caller.user),
            )
            .await?;
        let user_limits: UserLimits = match limits_row {
            Some(row) => serde_json::from_str(&row.get::<String>(0)?).unwrap_or_default(),
            None => UserLimits::default(),
        };
        let role_key = role.unwrap_or("default");
        let pick = |map: &std::collections::BTreeMap<String, String>| {
            map.get(role_key).or_else(|| map.get("default")).cloned()
        };
        let default = user_limits
            .default_models
            .as_ref()
            .and_then(pick)
            .or_else(|| pick(&plan.default_models));
        let allowed: Option<Vec<String>> = user_limits.allowed_models.clone().or_else(|| {
            plan.allowed_models
                .get(role_key)
                .or_else(|| plan.allowed_models.get("default"))
                .cloned()
        });
        let policy = Policy {
            default: default.as_deref(),
            allowed: allowed.as_deref(),
        };
        let chain: Vec<ModelConfig> = self
            .catalog
            .chain(
                &ask,
                &policy,
                &self.config.default_model,
                self.config.max_attempts,
            )?
            .into_iter()
            .cloned()
            .collect();
        let margin = self.billing.config().margin_bp;
        let estimate = chain
            .iter()
            .map(|m| billing::credits::cost(m.price(), input_tokens, max_output, margin))
            .max()
            .unwrap_or_default();
        Ok(Assessment {
            plan,
            user_limits,
            chain,
            input_tokens,
            max_output,
            estimate,
            balance: Micro(balance),
            suspended,
        })
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
            plan: a.plan.id,
        })
    }

    /// Step 1: assess, check the limits, hold the estimate.
    async fn prepare(
        &self,
        caller: &Caller,
        ask: Ask<'_>,
        role: Option<&str>,
        session: Option<&str>,
        input: u64,
        max_output: u64,
    ) -> Result<Held> {
        let started = Instant::now();
        let tenant = &caller.tenant;
        let now = now_ms();
        let day = now / DAY_MS;
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        ledger::ensure_account(&mut tx, tenant, &self.billing.config().default_plan).await?;
        let a = self
            .assess(&mut tx, caller, ask, role, input, max_output)
            .await?;
        if a.suspended {
            return Err(Error::Suspended);
        }
        let tokens = a.input_tokens + a.max_output;
        // The account row first, as the settlement takes it: on PostgreSQL two
        // transactions locking the same rows in other orders deadlock.
        let call_id = uuid::Uuid::now_v7().to_string();
        let hold_id = format!("hold:{call_id}");
        let held = ledger::hold(
            &mut tx,
            tenant,
            a.estimate,
            &hold_id,
            &call_id,
            &caller.user,
        )
        .await?;
        if held.is_none() {
            return Err(Error::InsufficientCredits {
                needed: a.estimate,
                balance: a.balance,
            });
        }
        self.reserve_tokens(&mut tx, tenant, day, "", tokens, a.plan.tokens_per_day)
            .await?;
        self.reserve_tokens(
            &mut tx,
            tenant,
            day,
            &caller.user,
            tokens,
            a.user_limits.tokens_per_day,
        )
        .await?;
        if let (Some(session), Some(limit)) = (session, a.plan.sessions_per_day) {
            let opened = tx
                .execute(
                    Stmt::new(
                        "INSERT INTO llm_sessions (tenant_id, day, session, user_id, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant.as_str())
                    .bind(day)
                    .bind(session)
                    .bind(&caller.user)
                    .bind(now),
                )
                .await?;
            if opened == 1 {
                let row = tx
                    .fetch_optional(
                        Stmt::new(
                            "SELECT COUNT(*) FROM llm_sessions WHERE tenant_id = $1 AND day = $2",
                        )
                        .bind(tenant.as_str())
                        .bind(day),
                    )
                    .await?;
                let count = row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0);
                let count = u64::try_from(count).unwrap_or(0);
                if count > limit {
                    return Err(Error::DailyLimit {
                        what: "sessions",
                        limit,
                        used: count - 1,
                        reset_at: reset_at(day),
                    });
                }
            }
        }
        tx.execute(
            Stmt::new(
                "INSERT INTO credit_holds (id, tenant_id, amount, tokens, user_id, day, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&hold_id)
            .bind(tenant.as_str())
            .bind(a.estimate.0)
            .bind(i64::try_from(tokens).unwrap_or(i64::MAX))
            .bind(&caller.user)
            .bind(day)
            .bind(now),
        )
        .await?;
        tx.commit().await?;
        Ok(Held {
            call_id,
            task: ask.task.to_owned(),
            hold_id,
            assessment: a,
            day,
            started,
        })
    }

    /// Adds `tokens` to the day's counter of (`tenant`, `user`) unless that
    /// would pass `limit`; one statement, so concurrent calls cannot both
    /// slip under it.
    async fn reserve_tokens(
        &self,
        tx: &mut impl Exec,
        tenant: &TenantId,
        day: i64,
        user: &str,
        tokens: u64,
        limit: Option<u64>,
    ) -> Result<()> {
        let tokens_i = i64::try_from(tokens).unwrap_or(i64::MAX);
        let Some(limit) = limit else {
            tx.execute(
                Stmt::new(
                    "INSERT INTO llm_daily (tenant_id, day, user_id, tokens, calls) VALUES ($1, $2, $3, $4, 0) \
                     ON CONFLICT (tenant_id, day, user_id) DO UPDATE SET tokens = llm_daily.tokens + excluded.tokens",
                )
                .bind(tenant.as_str())
                .bind(day)
                .bind(user)
                .bind(tokens_i),
            )
            .await?;
            return Ok(());
        };
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        let changed = if tokens <= limit {
            tx.execute(
                Stmt::new(
                    "INSERT INTO llm_daily (tenant_id, day, user_id, tokens, calls) VALUES ($1, $2, $3, $4, 0) \
                     ON CONFLICT (tenant_id, day, user_id) DO UPDATE SET tokens = llm_daily.tokens + excluded.tokens \
                     WHERE llm_daily.tokens + excluded.tokens <= $5",
                )
                .bind(tenant.as_str())
                .bind(day)
                .bind(user)
                .bind(tokens_i)
                .bind(limit_i),
            )
            .await?
        } else {
            0
        };
        if changed == 0 {
            let row = tx
                .fetch_optional(
                    Stmt::new(
                        "SELECT tokens FROM llm_daily WHERE tenant_id = $1 AND day = $2 AND user_id = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(day)
                    .bind(user),
                )
                .await?;
            let used = row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0);
            return Err(Error::DailyLimit {
                what: if user.is_empty() {
                    "tokens"
                } else {
                    "your tokens"
                },
                limit,
                used: u64::try_from(used).unwrap_or(0),
                reset_at: reset_at(day),
            });
        }
        Ok(())
    }

    /// Step 3: release the hold, charge what was used, record the call.
    async fn settle(
        &self,
        caller: &Caller,
        held: &Held,
        outcome: Outcome<'_>,
    ) -> Result<(Micro, Micro)> {
        let tenant = &caller.tenant;
        let a = &held.assessment;
        let margin = self.billing.config().margin_bp;
        let (cost, usage) = match outcome.answered {
            Some((model, usage)) => (
                billing::credits::cost(
                    model.price(),
                    usage.input_tokens,
                    usage.output_tokens,
                    margin,
                ),
                usage,
            ),
            None => (Micro(0), wire::Usage::default()),
        };
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        let release_key = format!("release:{}", held.call_id);
        let charge_key = format!("charge:{}", held.call_id);
        let mut balance = None;
        for entry in [
            NewEntry {
                kind: billing::EntryKind::Release,
                amount: a.estimate,
                idempotency_key: &release_key,
                reason: None,
                reference: Some(&held.call_id),
                actor: Some(&caller.user),
            },
            NewEntry {
                kind: billing::EntryKind::Charge,
                amount: Micro(-cost.0),
                idempotency_key: &charge_key,
                reason: outcome.answered.map(|(m, _)| m.id.as_str()),
                reference: Some(&held.call_id),
                actor: Some(&caller.user),
            },
        ] {
            if entry.kind == billing::EntryKind::Charge && cost.0 == 0 {
                continue;
            }
            if let billing::Posted::New(b) = ledger::post(&mut tx, tenant, &entry).await? {
                balance = Some(b);
            }
        }
        let released = tx
            .execute(Stmt::new("DELETE FROM credit_holds WHERE id = $1").bind(&held.hold_id))
            .await?;
        let used = usage.input_tokens + usage.output_tokens;
        // The sweeper already gave the reservation back if the hold is gone.
        let reserved = if released == 1 {
            a.input_tokens + a.max_output
        } else {
            0
        };
        let delta = i64::try_from(used).unwrap_or(i64::MAX) - i64::try_from(reserved).unwrap_or(0);
        for user in ["", caller.user.as_str()] {
            tx.execute(
                Stmt::new(
                    "UPDATE llm_daily SET tokens = CASE WHEN tokens + $4 < 0 THEN 0 ELSE tokens + $4 END, calls = calls + 1 \
                     WHERE tenant_id = $1 AND day = $2 AND user_id = $3",
                )
                .bind(tenant.as_str())
                .bind(held.day)
                .bind(user)
                .bind(delta),
            )
            .await?;
        }
        let attempts = serde_json::to_string(outcome.attempts).unwrap_or_else(|_| "[]".into());
        let answered = outcome.answered.map(|(m, _)| m);
        tx.execute(
            Stmt::new(
                "INSERT INTO llm_calls (id, tenant_id, user_id, plugin, task, model, provider, \
                 input_tokens, output_tokens, cost, estimate, outcome, attempts, streamed, latency_us, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&held.call_id)
            .bind(tenant.as_str())
            .bind(&caller.user)
            .bind(caller.plugin.as_deref())
            .bind(&held.task)
            .bind(answered.map(|m| m.id.as_str()))
            .bind(answered.map(|m| m.provider.as_str()))
            .bind(i64::try_from(usage.input_tokens).unwrap_or(i64::MAX))
            .bind(i64::try_from(usage.output_tokens).unwrap_or(i64::MAX))
            .bind(cost.0)
            .bind(a.estimate.0)
            .bind(outcome.code)
            .bind(attempts)
            .bind(i64::from(outcome.streamed))
            .bind(i64::try_from(held.started.elapsed().as_micros()).unwrap_or(i64::MAX))
            .bind(now_ms()),
        )
        .await?;
        if used > 0 {
            tx.execute(
                Stmt::new(
                    "INSERT INTO meter_reports (identifier, tenant_id, event_name, value, occurred_at, state, attempts) \
                     SELECT $1, $2, $3, $4, $5, 'pending', 0 FROM billing_accounts \
                     WHERE tenant_id = $2 AND stripe_customer_id IS NOT NULL",
                )
                .bind(format!("llm:{}", held.call_id))
                .bind(tenant.as_str())
                .bind(&self.billing.config().stripe.meter_event_name)
                .bind(i64::try_from(used).unwrap_or(i64::MAX))
                .bind(now_ms()),
            )
            .await?;
        }
        tx.commit().await?;
        let balance = match balance {
            Some(b) => b,
            None => self.billing.ledger.balance(tenant).await?,
        };
        Ok((cost, balance))
    }

    fn endpoint(&self, model: &ModelConfig) -> Option<&wire::Endpoint> {
        self.endpoints.get(&model.provider)
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
        let mut attempts = Vec::new();
        let mut answer = None;
        let mut rejected = None;
        for model in &held.assessment.chain {
            let Some(ep) = self.endpoint(model) else {
                continue;
            };
            let started = Instant::now();
            let result = self
                .client
                .complete(ep, &Self::wire_request(model, req, max_output))
                .await;
            attempts.push(attempt(model, result.as_ref().err(), started));
            match result {
                Ok(completion) => {
                    answer = Some((model, completion));
                    break;
                }
                Err(e) if e.retryable() => {}
                Err(e) => {
                    rejected = Some(status_of(&e).unwrap_or(400));
                    break;
                }
            }
        }
        let outcome = Outcome {
            answered: answer.as_ref().map(|(m, c)| (*m, c.usage)),
            attempts: &attempts,
            code: match (&answer, rejected) {
                (Some(_), _) => "ok",
                (None, Some(_)) => "llm_rejected",
                (None, None) => "llm_unavailable",
            },
            streamed: false,
        };
        let (cost, balance) = self.settle(caller, &held, outcome).await?;
        match answer {
            Some((model, c)) => Ok(Answer {
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
            }),
            None => match rejected {
                Some(status) => Err(Error::Rejected { status, attempts }),
                None => Err(Error::Unavailable { attempts }),
            },
        }
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
            let Some(ep) = self.endpoint(model) else {
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
            code: match (&done, &partial, rejected) {
                (Some(_), _, _) => "ok",
                (None, Some(_), _) => "stream_interrupted",
                (None, None, Some(_)) => "llm_rejected",
                (None, None, None) => "llm_unavailable",
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
            }),
            (Ok(_), None) => StreamItem::Failed(match rejected {
                Some(status) => Error::Rejected { status, attempts },
                None => Error::Unavailable { attempts },
            }),
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
        let mut attempts = Vec::new();
        let mut answer = None;
        let mut rejected = None;
        for m in &held.assessment.chain {
            let Some(ep) = self.endpoint(m) else {
                continue;
            };
            let started = Instant::now();
            let request = wire::EmbedRequest {
                model: m.model.clone(),
                inputs: inputs.clone(),
            };
            let result = self.client.embed(ep, &request).await;
            attempts.push(attempt(m, result.as_ref().err(), started));
            match result {
                Ok(mut e) => {
                    // A provider that reports no usage is billed on the estimate.
                    if e.usage.input_tokens == 0 {
                        e.usage.input_tokens = input;
                    }
                    answer = Some((m, e));
                    break;
                }
                Err(e) if e.retryable() => {}
                Err(e) => {
                    rejected = Some(status_of(&e).unwrap_or(400));
                    break;
                }
            }
        }
        let outcome = Outcome {
            answered: answer.as_ref().map(|(m, e)| (*m, e.usage)),
            attempts: &attempts,
            code: if answer.is_some() {
                "ok"
            } else {
                "llm_unavailable"
            },
            streamed: false,
        };
        let (cost, balance) = self.settle(caller, &held, outcome).await?;
        match answer {
            Some((m, e)) => Ok(EmbedAnswer {
                id: held.call_id.clone(),
                model: m.id.clone(),
                vectors: e.vectors,
                usage: e.usage,
                cost,
                balance,
                attempts,
            }),
            None => match rejected {
                Some(status) => Err(Error::Rejected { status, attempts }),
                None => Err(Error::Unavailable { attempts }),
            },
        }
    }

    /// A user's overrides (empty when the admin set none).
    pub async fn user_limits(&self, tenant: &TenantId, user: &str) -> Result<UserLimits> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT limits FROM llm_user_limits WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant.as_str())
                .bind(user),
            )
            .await?;
        Ok(match row {
            Some(row) => serde_json::from_str(&row.get::<String>(0)?).unwrap_or_default(),
            None => UserLimits::default(),
        })
    }

    /// Stores a user's overrides; every model named must be in the catalog.
    pub async fn set_user_limits(
        &self,
        tenant: &TenantId,
        user: &str,
        limits: &UserLimits,
    ) -> Result<()> {
        let named = limits
            .allowed_models
            .iter()
            .flatten()
            .chain(limits.default_models.iter().flat_map(|m| m.values()));
        for id in named {
            if self.catalog.get(id).is_none() {
                return Err(SelectError::UnknownModel(id.clone()).into());
            }
        }
        let json = serde_json::to_string(limits).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        tx.execute(
            Stmt::new(
                "INSERT INTO llm_user_limits (tenant_id, user_id, limits, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at",
            )
            .bind(tenant.as_str())
            .bind(user)
            .bind(json)
            .bind(now_ms()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Releases holds older than `age` (left by a crash between prepare and
    /// settle): the estimate goes back, the reserved tokens too. Returns
    /// how many were released.
    pub async fn release_stale_holds(&self, age: Duration) -> Result<usize> {
        let cutoff = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.db.begin(Scope::Platform, Mode::Read).await?;
        let rows = tx
            .fetch_all(
                Stmt::new(
                    "SELECT id, tenant_id, amount, tokens, user_id, day FROM credit_holds \
                     WHERE created_at < $1 ORDER BY created_at LIMIT 500",
                )
                .bind(cutoff),
            )
            .await?;
        drop(tx);
        let mut released = 0;
        for row in rows {
            let hold_id: String = row.get(0)?;
            let tenant = TenantId::from_raw(row.get::<String>(1)?);
            let amount: i64 = row.get(2)?;
            let tokens: i64 = row.get(3)?;
            let user: String = row.get(4)?;
            let day: i64 = row.get(5)?;
            let mut tx = self.db.begin_unit(Scope::Tenant(&tenant)).await?;
            // The account row first, in the settlement's lock order.
            tx.execute(
                Stmt::new(
                    "UPDATE billing_accounts SET updated_at = updated_at WHERE tenant_id = $1",
                )
                .bind(tenant.as_str()),
            )
            .await?;
            let gone = tx
                .execute(Stmt::new("DELETE FROM credit_holds WHERE id = $1").bind(&hold_id))
                .await?;
            if gone == 0 {
                continue;
            }
            let call = hold_id.trim_start_matches("hold:");
            let key = format!("release:{call}");
            ledger::post(
                &mut tx,
                &tenant,
                &NewEntry {
                    kind: billing::EntryKind::Release,
                    amount: Micro(amount),
                    idempotency_key: &key,
                    reason: Some("stale hold"),
                    reference: Some(call),
                    actor: Some("system"),
                },
            )
            .await?;
            for u in ["", user.as_str()] {
                tx.execute(
                    Stmt::new(
                        "UPDATE llm_daily SET tokens = CASE WHEN tokens - $4 < 0 THEN 0 ELSE tokens - $4 END \
                         WHERE tenant_id = $1 AND day = $2 AND user_id = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(day)
                    .bind(u)
                    .bind(tokens),
                )
                .await?;
            }
            tx.commit().await?;
            released += 1;
        }
        Ok(released)
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

    #[test]
    fn limits_reset_at_the_next_utc_midnight() {
        // Day 20,000 since the epoch is 2024-10-04.
        assert_eq!(reset_at(20_000), "2024-10-05T00:00:00Z");
    }
}
