//! The outbox: messages to people (email, SMS, push, in-app) that plugins
//! queue in their call's unit of work and host workers deliver
//! ([`crate::jobs::outbox`]).
//!
//! `queue` checks the message and its recipient, applies the tenant's rate
//! limit and daily quota for the channel (counters kept in the same
//! transaction, so a call that fails counts nothing) and writes the message
//! — all in the calling plugin's unit of work: a message exists only if
//! its call committed. The same idempotency key from the same plugin of
//! the tenant answers the first message's id.
//!
//! Providers are chosen per tenant and channel (`providers.rs`): the
//! tenant's own, stored encrypted, else the platform's from `[messaging]`,
//! else the dev inbox. `store.rs` holds the admin's, users' and webhooks'
//! views of the tables.

pub mod config;
mod counts;
pub mod providers;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

pub use config::{MessagingConfig, ProviderSettings};
pub use counts::Counts;

use crate::db::{Db, Exec, Stmt, UnitTx};
use crate::ids::now_ms;
use crate::secrets::Secrets;
use crate::storage::{self, Owner};

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    InApp,
}

impl Channel {
    /// The stored (and URL) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::InApp => "in_app",
        }
    }

    /// The channel named `name` (`in-app` accepted for `in_app`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "push" => Channel::Push,
            "in_app" | "in-app" => Channel::InApp,
            _ => return None,
        })
    }
}

/// A rendered message, as stored (`content`, JSON) and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Content {
    Email {
        to: String,
        subject: String,
        html: Option<String>,
        text: Option<String>,
        headers: Vec<(String, String)>,
    },
    Sms {
        to: String,
        body: String,
    },
    Push {
        token: String,
        title: String,
        body: String,
        data: BTreeMap<String, String>,
    },
    InApp {
        user: String,
        title: String,
        body: String,
        link: Option<String>,
        data: Value,
    },
}

impl Content {
    /// The message's channel.
    pub fn channel(&self) -> Channel {
        match self {
            Content::Email { .. } => Channel::Email,
            Content::Sms { .. } => Channel::Sms,
            Content::Push { .. } => Channel::Push,
            Content::InApp { .. } => Channel::InApp,
        }
    }

    /// Who it is for: an address, a number, a device token or a user id.
    pub fn recipient(&self) -> &str {
        match self {
            Content::Email { to, .. } | Content::Sms { to, .. } => to,
            Content::Push { token, .. } => token,
            Content::InApp { user, .. } => user,
        }
    }
}

/// Why `send` was refused: nothing was queued. Everything but `Storage` is
/// the plugin's to fix (or to wait out).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("invalid recipient: {0}")]
    InvalidRecipient(String),
    #[error("rate limited: {0}")]
    RateLimited(String),
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    #[error("channel not configured: {0}")]
    ChannelNotConfigured(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

impl From<sqlx::Error> for SendError {
    fn from(err: sqlx::Error) -> Self {
        Self::Storage(err.into())
    }
}

/// The outbox service.
#[derive(Debug)]
pub struct Messaging {
    db: Db,
    /// The plans, whose daily message quotas override the configured ones.
    billing: Arc<crate::billing::Billing>,
    config: MessagingConfig,
    providers: providers::Providers,
    wake: Notify,
    /// Each tenant's plan as last read, for [`PLAN_TTL`]: a batch of sends
    /// need not read it once per message.
    plans:
        std::sync::Mutex<std::collections::HashMap<String, (Option<String>, std::time::Instant)>>,
}

/// How long a tenant's plan is trusted for its message quotas (a plan
/// change reaches sends within this time).
const PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl Messaging {
    pub fn new(
        db: Db,
        config: MessagingConfig,
        secrets: Arc<Secrets>,
        billing: Arc<crate::billing::Billing>,
    ) -> Self {
        Self {
            providers: providers::Providers::new(secrets, config.clone()),
            db,
            billing,
            config,
            wake: Notify::new(),
            plans: Default::default(),
        }
    }

    /// The delivery settings.
    pub fn config(&self) -> &MessagingConfig {
        &self.config
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Who delivers for a tenant.
    pub fn providers(&self) -> &providers::Providers {
        &self.providers
    }

    /// Wakes the delivery workers (after a commit that queued messages).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Self::wake`] is called.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Checks a message before any write: the recipient's shape, the
    /// content, the size and the idempotency key.
    pub fn check(&self, content: &Content, key: &str) -> Result<(), SendError> {
        let invalid = |m: &str| Err(SendError::InvalidRequest(m.to_owned()));
        if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("the idempotency key is 1-200 printable ASCII characters");
        }
        let size = serde_json::to_string(content).map(|s| s.len()).unwrap_or(0);
        if size > self.config.max_message_bytes {
            return Err(SendError::InvalidRequest(format!(
                "the message is larger than {} bytes",
                self.config.max_message_bytes
            )));
        }
        match content {
            Content::Email {
                to,
                subject,
                html,
                text,
                headers,
            } => {
                check_email(to).map_err(SendError::InvalidRecipient)?;
                if subject.trim().is_empty() || subject.len() > 998 || has_line_break(subject) {
                    return invalid("an email needs a one-line subject of at most 998 bytes");
                }
                if html.is_none() && text.is_none() {
                    return invalid("an email needs an html or a text part");
                }
                for (name, value) in headers {
                    let token = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if !token || has_line_break(value) {
                        return Err(SendError::InvalidRequest(format!(
                            "header {name:?}: names are letters, digits, '-' and '_'; values one line"
                        )));
                    }
                    let reserved = weft_msg_wire::Email::RESERVED_HEADERS
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(name));
                    if reserved {
                        return Err(SendError::InvalidRequest(format!(
                            "header {name:?} is set by the host"
                        )));
                    }
                }
            }
            Content::Sms { to, body } => {
                check_e164(to).map_err(SendError::InvalidRecipient)?;
                if body.is_empty() || body.chars().count() > 1600 {
                    return invalid("an SMS body is 1-1600 characters");
                }
            }
            Content::Push {
                token, title, body, ..
            } => {
                if token.is_empty() || token.len() > 4096 || token.contains(char::is_whitespace) {
                    return Err(SendError::InvalidRecipient(
                        "a push token is 1-4096 characters without spaces".into(),
                    ));
                }
                if title.is_empty() && body.is_empty() {
                    return invalid("a push notification needs a title or a body");
                }
            }
            Content::InApp {
                user,
                title,
                link,
                data,
                ..
            } => {
                if user.is_empty() {
                    return Err(SendError::InvalidRecipient("no user id".into()));
                }
                if title.trim().is_empty() {
                    return invalid("an in-app notification needs a title");
                }
                if link.as_ref().is_some_and(|l| l.len() > 2048) {
                    return invalid("the link is at most 2048 bytes");
                }
                if !data.is_object() {
                    return invalid("data is a JSON object");
                }
            }
        }
        Ok(())
    }

    /// Queues a checked message in `unit`, the sending call's unit of
    /// work: the first message's id for a key already used, else checks
    /// the in-app recipient and the channel's limits, writes the message
    /// and counts it (in the unit, written at its flush).
    pub async fn queue(
        &self,
        unit: &mut storage::UnitOfWork,
        content: &Content,
        key: &str,
    ) -> Result<String, SendError> {
        let (tx, counts, owner) = unit.outbox_parts();
        let tenant = owner.tenant.as_str();
        let channel = content.channel();
        if let Content::InApp { user, .. } = content {
            let found = tx
                .fetch_optional(
                    Stmt::new(
                        "SELECT id FROM users WHERE id = $1 AND tenant_id = $2 AND disabled = 0",
                    )
                    .bind(user.as_str())
                    .bind(tenant),
                )
                .await?;
            if found.is_none() {
                return Err(SendError::InvalidRecipient(format!(
                    "{user:?} is not a user of this tenant"
                )));
            }
        } else if !self.config.dev_inbox && !self.providers.configured(owner.tenant, channel).await
        {
            return Err(SendError::ChannelNotConfigured(format!(
                "no {} provider is configured for this tenant",
                channel.as_str()
            )));
        }
        // One statement for a new message: the row, which a key already
        // used leaves alone (that rarer case answers the first message's
        // id). The limits are checked first, against the unit's counts.
        let windows = match self.check_limits(tx, counts, owner.tenant, channel).await {
            Ok(windows) => windows,
            // Past a limit, a key already used still answers its message.
            Err(refusal @ (SendError::QuotaExceeded(_) | SendError::RateLimited(_))) => {
                return match Self::first_with_key(tx, owner, key).await? {
                    Some(id) => Ok(id),
                    None => Err(refusal),
                };
            }
            Err(other) => return Err(other),
        };
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let body =
            serde_json::to_string(content).map_err(|e| SendError::InvalidRequest(e.to_string()))?;
        let inserted = tx
            .execute(
                Stmt::new(
                    "INSERT INTO outbox_messages (id, tenant_id, plugin, idempotency_key, channel, recipient, content, status, attempts, next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8, $8) \
                     ON CONFLICT (tenant_id, plugin, idempotency_key) DO NOTHING",
                )
                .bind(id.as_str())
                .bind(tenant)
                .bind(owner.plugin)
                .bind(key)
                .bind(channel.as_str())
                .bind(content.recipient())
                .bind(body)
                .bind(now),
            )
            .await?;
        if inserted == 1 {
            counts.add_one(channel, &windows);
            return Ok(id);
        }
        match Self::first_with_key(tx, owner, key).await? {
            Some(id) => Ok(id),
            None => Err(SendError::from(sqlx::Error::Protocol(
                "an outbox key conflicted with no message".into(),
            ))),
        }
    }

    /// The id of the message `owner`'s plugin queued with `key`, if any.
    async fn first_with_key(
        tx: &mut impl Exec,
        owner: Owner<'_>,
        key: &str,
    ) -> Result<Option<String>, SendError> {
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT id FROM outbox_messages WHERE tenant_id = $1 AND plugin = $2 AND idempotency_key = $3",
                )
                .bind(owner.tenant.as_str())
                .bind(owner.plugin)
                .bind(key),
            )
            .await?;
        Ok(row.map(|r| r.get(0)).transpose()?)
    }

    /// The plan of `tenant` (`None`: no account yet), read in `tx` at most
    /// once per [`PLAN_TTL`].
    async fn plan_of(&self, tx: &mut impl Exec, tenant: &str) -> Result<Option<String>, SendError> {
        let cached = self
            .plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .filter(|(_, at)| at.elapsed() < PLAN_TTL)
            .map(|(plan, _)| plan.clone());
        if let Some(plan) = cached {
            return Ok(plan);
        }
        let plan: Option<String> = tx
            .fetch_optional(
                Stmt::new("SELECT plan FROM billing_accounts WHERE tenant_id = $1").bind(tenant),
            )
            .await?
            .map(|row| row.get(0))
            .transpose()?;
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() > 10_000 {
            plans.clear();
        }
        plans.insert(tenant.to_owned(), (plan.clone(), std::time::Instant::now()));
        Ok(plan)
    }

    /// Checks one more message of `channel` against the tenant's
    /// per-day and per-minute limits, with the unit's counts. Returns the
    /// windows to count it in once written.
    async fn check_limits(
        &self,
        tx: &mut UnitTx,
        counts: &mut Counts,
        tenant: &crate::ids::TenantId,
        channel: Channel,
    ) -> Result<[String; 2], SendError> {
        let mut limit = self.config.limits.of(channel);
        // The tenant's plan (the default plan until it has an account).
        let plan = self.plan_of(tx, tenant.as_str()).await?;
        let plan = self.billing.plan_or_default(
            plan.as_deref()
                .unwrap_or(&self.billing.config().default_plan),
        );
        if let Some(per_day) = plan.messages_per_day.get(channel.as_str()) {
            limit.per_day = *per_day;
        }
        let now = now_ms();
        let windows = [
            format!("d:{}", crate::billing::day_string(now)),
            format!("m:{:010}", now / 60_000),
        ];
        let [day, minute] = counts.get(tx, tenant, channel, &windows).await?;
        let day = u64::try_from(day).unwrap_or(0);
        let minute = u64::try_from(minute).unwrap_or(0);
        if day >= limit.per_day {
            return Err(SendError::QuotaExceeded(format!(
                "the tenant's {} quota of {} messages a day (plan {}) is used up",
                channel.as_str(),
                limit.per_day,
                plan.id
            )));
        }
        if minute >= limit.per_minute {
            return Err(SendError::RateLimited(format!(
                "more than {} {} messages a minute; retry later",
                limit.per_minute,
                channel.as_str()
            )));
        }
        Ok(windows)
    }

    /// The status of message `id` sent by `owner`'s plugin, read in `tx`.
    pub async fn status_in(
        tx: &mut impl Exec,
        owner: Owner<'_>,
        id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT status FROM outbox_messages WHERE id = $1 AND tenant_id = $2 AND plugin = $3",
                )
                .bind(id)
                .bind(owner.tenant.as_str())
                .bind(owner.plugin),
            )
            .await?;
        row.map(|r| r.get(0)).transpose()
    }
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

pub use weft_addr::{check_e164, check_email};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_through_json() {
        let content = Content::Push {
            token: "tok".into(),
            title: "t".into(),
            body: "b".into(),
            data: BTreeMap::from([("k".into(), "v".into())]),
        };
        let text = serde_json::to_string(&content).expect("json");
        assert!(text.contains("\"channel\":\"push\""), "{text}");
        assert_eq!(
            serde_json::from_str::<Content>(&text).expect("back"),
            content
        );
    }
}
