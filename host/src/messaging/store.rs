//! The outbox tables as the workers, a tenant's admins, its users and the
//! providers' status webhooks see them.

use serde::Serialize;
use serde_json::Value;

use super::{Channel, Content};
use crate::db::{self, Db, Engine, Exec, Mode, Scope, Stmt};
use crate::ids::{TenantId, now_ms};
use crate::metering::UsageEvent;

/// A message as an admin sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub plugin: String,
    pub channel: String,
    pub recipient: String,
    /// queued, sent, delivered, bounced, failed or dead.
    pub status: String,
    pub attempts: i64,
    /// Unix ms; for a queued message, when it is (next) due.
    pub next_attempt_at: i64,
    pub provider: Option<String>,
    pub provider_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The rendered message.
    #[sqlx(skip)]
    #[schema(value_type = Object)]
    pub content: Value,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub provider: String,
    /// sent, transient or permanent.
    pub outcome: String,
    pub detail: Option<String>,
    pub at: i64,
}

const MESSAGE_SELECT: &str = "SELECT id, plugin, channel, recipient, status, CAST(attempts AS BIGINT) AS attempts, \
     next_attempt_at, provider, provider_id, last_error, created_at, updated_at, content FROM outbox_messages";

fn view(row: &sqlx::any::AnyRow) -> Result<MessageView, sqlx::Error> {
    use sqlx::{FromRow, Row};
    let mut view = MessageView::from_row(row)?;
    let content: String = row.try_get("content")?;
    view.content = serde_json::from_str(&content).unwrap_or(Value::Null);
    Ok(view)
}

/// The tenant's messages, newest first, by status and/or recipient.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    status: Option<&str>,
    recipient: Option<&str>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<MessageView>, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{MESSAGE_SELECT} WHERE tenant_id = $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR recipient = $3) \
         AND ($4 = '' OR id < $4) ORDER BY id DESC LIMIT $5"
    )))
    .bind(tenant.as_str())
    .bind(status.unwrap_or(""))
    .bind(recipient.unwrap_or(""))
    .bind(before.unwrap_or(""))
    .bind(i64::from(limit.clamp(1, 500)))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.iter().map(view).collect::<Result<_, _>>()?)
}

/// One message of the tenant with its attempts, oldest first.
pub async fn get(
    db: &Db,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<(MessageView, Vec<AttemptView>)>, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{MESSAGE_SELECT} WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(None);
    };
    let attempts: Vec<AttemptView> = sqlx::query_as(
        "SELECT CAST(attempt AS BIGINT) AS attempt, provider, outcome, detail, at FROM outbox_attempts \
         WHERE tenant_id = $1 AND message_id = $2 ORDER BY attempt",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some((view(&row)?, attempts)))
}

/// Why a replay was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such message")]
    NotFound,
    #[error("the message is {0}, not dead")]
    NotDead(String),
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl From<sqlx::Error> for ReplayError {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Queues a dead message again, due now, with its attempts reset (the
/// attempts so far stay in its history).
pub async fn replay(db: &Db, tenant: &TenantId, id: &str) -> Result<(), ReplayError> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Write).await?;
    let now = now_ms();
    let changed = sqlx::query(
        "UPDATE outbox_messages SET status = 'queued', attempts = 0, next_attempt_at = $3, updated_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND status = 'dead'",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM outbox_messages WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        return Err(status.map_or(ReplayError::NotFound, ReplayError::NotDead));
    }
    tx.commit().await?;
    Ok(())
}

/// A message claimed by a worker.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub tenant: TenantId,
    pub plugin: String,
    pub channel: Channel,
    pub content: Option<Content>,
    /// Including this one.
    pub attempts: u32,
}

/// Claims up to `limit` due messages, leasing them for `lease_ms`.
pub async fn claim(db: &Db, lease_ms: u64, limit: u32) -> Result<Vec<Claimed>, db::Error> {
    let now = now_ms();
    let lease_until = now + i64::try_from(lease_ms).unwrap_or(60_000);
    let lock = match db.engine() {
        Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        Engine::Sqlite => "",
    };
    let probe = Stmt::new(
        "SELECT 1 FROM outbox_messages WHERE status = 'queued' AND next_attempt_at <= $1 LIMIT 1",
    )
    .bind(now);
    if !db.may_claim(probe).await? {
        return Ok(Vec::new());
    }
    let claim = Stmt::new(format!(
        "UPDATE outbox_messages SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2 \
         WHERE id IN (SELECT id FROM outbox_messages WHERE status = 'queued' AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at LIMIT $3{lock}) \
         RETURNING id, tenant_id, plugin, channel, content, CAST(attempts AS BIGINT)"
    ))
    .bind(lease_until)
    .bind(now)
    .bind(i64::from(limit));
    // On SQLite the in-thread connection: no thread hop per statement.
    let mut tx = db.begin_unit(Scope::Platform).await?;
    let rows = tx.fetch_all(claim).await?;
    tx.commit().await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let channel: String = row.get(3)?;
        let content: String = row.get(4)?;
        let attempts: i64 = row.get(5)?;
        claimed.push(Claimed {
            id: row.get(0)?,
            tenant: TenantId::from_raw(row.get::<String>(1)?),
            plugin: row.get(2)?,
            channel: Channel::parse(&channel).unwrap_or(Channel::Email),
            content: serde_json::from_str(&content).ok(),
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        });
    }
    Ok(claimed)
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The provider accepted it (`delivered`: it is already where it goes,
    /// in-app or the dev inbox).
    Sent {
        provider_id: String,
        delivered: bool,
    },
    /// Try again at `next_attempt_at`.
    Retry { error: String, next_attempt_at: i64 },
    /// Given up.
    Dead { error: String, permanent: bool },
}

/// Records an attempt of `msg` through `provider`: the message's new
/// status, the attempt, and — once sent — its usage event (plugin
/// `outbox:<channel>`), in one transaction. For in-app messages and the
/// dev inbox, the stored copy is written in it too.
pub async fn record(
    db: &Db,
    msg: &Claimed,
    provider: &str,
    outcome: &Outcome,
) -> Result<(), db::Error> {
    let now = now_ms();
    // A unit's transaction: on SQLite the in-thread connection, and the
    // records of workers that finish together commit together.
    let mut tx = db.begin_unit(Scope::Tenant(&msg.tenant)).await?;
    let (status, provider_id, error, next, kind) = match outcome {
        Outcome::Sent {
            provider_id,
            delivered,
        } => (
            if *delivered { "delivered" } else { "sent" },
            Some(provider_id.as_str()),
            None,
            now,
            "sent",
        ),
        Outcome::Retry {
            error,
            next_attempt_at,
        } => (
            "queued",
            None,
            Some(error.as_str()),
            *next_attempt_at,
            "transient",
        ),
        Outcome::Dead { error, permanent } => (
            "dead",
            None,
            Some(error.as_str()),
            now,
            if *permanent { "permanent" } else { "transient" },
        ),
    };
    // Only the worker holding the claim records (a message replayed or
    // re-claimed meanwhile has moved on).
    let update = Stmt::new(
        "UPDATE outbox_messages SET status = $3, provider = $4, provider_id = COALESCE($5, provider_id), \
         last_error = $6, next_attempt_at = $7, updated_at = $8 \
         WHERE tenant_id = $1 AND id = $2 AND status = 'queued' AND attempts = $9",
    )
    .bind(msg.tenant.as_str())
    .bind(msg.id.as_str())
    .bind(status)
    .bind(provider)
    .bind(provider_id)
    .bind(error)
    .bind(next)
    .bind(now)
    .bind(i64::from(msg.attempts));
    let changed = tx.execute(update).await?;
    if changed == 0 {
        // Nothing was written: the commit only ends the transaction.
        tx.commit().await?;
        return Ok(());
    }
    // Numbered through the message's whole history: a replay starts its
    // attempts again, the log goes on.
    let attempt = Stmt::new(
        "INSERT INTO outbox_attempts (message_id, tenant_id, attempt, provider, outcome, detail, at) \
         SELECT $1, $2, COALESCE(MAX(attempt), 0) + 1, $3, $4, $5, $6 FROM outbox_attempts WHERE message_id = $1",
    )
    .bind(msg.id.as_str())
    .bind(msg.tenant.as_str())
    .bind(provider)
    .bind(kind)
    .bind(error)
    .bind(now);
    tx.execute(attempt).await?;
    if let Outcome::Sent { .. } = outcome {
        match (&msg.content, provider) {
            (
                Some(Content::InApp {
                    user,
                    title,
                    body,
                    link,
                    data,
                }),
                "in_app",
            ) => {
                let copy = Stmt::new(
                    "INSERT INTO notifications (id, tenant_id, user_id, title, body, link, data, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                )
                .bind(msg.id.as_str())
                .bind(msg.tenant.as_str())
                .bind(user.as_str())
                .bind(title.as_str())
                .bind(body.as_str())
                .bind(link.as_deref())
                .bind(data.to_string())
                .bind(now);
                tx.execute(copy).await?;
            }
            (Some(content), "dev") => {
                let copy = Stmt::new(
                    "INSERT INTO dev_inbox (message_id, tenant_id, channel, recipient, content, at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(msg.id.as_str())
                .bind(msg.tenant.as_str())
                .bind(msg.channel.as_str())
                .bind(content.recipient())
                .bind(serde_json::to_string(content).unwrap_or_default())
                .bind(now);
                tx.execute(copy).await?;
            }
            _ => {}
        }
        let usage = UsageEvent {
            tenant: msg.tenant.clone(),
            idempotency_key: format!("message:{}", msg.id),
            plugin: format!("outbox:{}", msg.channel.as_str()),
            version: msg.plugin.clone(),
            fuel: 0,
            wall_us: 0,
            peak_memory: 0,
            bytes_in: 0,
            bytes_out: 0,
            outcome: "ok".into(),
            request_id: msg.id.clone(),
            occurred_at: now,
        };
        crate::metering::insert(&mut tx, &[&usage])
            .await
            .map_err(|e| match e {
                crate::metering::Error::Db(db) => db,
                other => db::Error::Sqlx(sqlx::Error::Protocol(other.to_string())),
            })?;
    }
    tx.commit().await?;
    Ok(())
}

/// What one pruning pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub counters: u64,
    pub messages: u64,
    pub dev_inbox: u64,
}

/// Drops rate-limit windows older than ten minutes, day counters older
/// than two days, done messages (and so their attempts) older than
/// `retention_ms` and dev inbox entries older than `dev_inbox_ms`.
/// Queued messages are never pruned, whatever their age.
pub async fn prune(db: &Db, retention_ms: i64, dev_inbox_ms: i64) -> Result<Pruned, db::Error> {
    let now = now_ms();
    let minute = format!("m:{:010}", now / 60_000 - 10);
    let day = format!("d:{}", crate::billing::day_string(now - 2 * 86_400_000));
    let mut tx = db.begin(Scope::Platform, Mode::Write).await?;
    let counters = sqlx::query(
        "DELETE FROM outbox_counters WHERE (substr(win, 1, 2) = 'm:' AND win < $1) OR (substr(win, 1, 2) = 'd:' AND win < $2)",
    )
    .bind(minute)
    .bind(day)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let cutoff = now - retention_ms;
    // Attempts go first: PostgreSQL cascades, but a SQLite connection
    // without foreign keys on would leave them behind.
    sqlx::query(
        "DELETE FROM outbox_attempts WHERE message_id IN (SELECT id FROM outbox_messages \
         WHERE status <> 'queued' AND updated_at < $1)",
    )
    .bind(cutoff)
    .execute(&mut *tx)
    .await?;
    let messages =
        sqlx::query("DELETE FROM outbox_messages WHERE status <> 'queued' AND updated_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let dev_inbox = sqlx::query("DELETE FROM dev_inbox WHERE at < $1")
        .bind(now - dev_inbox_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Pruned {
        counters,
        messages,
        dev_inbox,
    })
}

/// An entry of the dev inbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DevEntry {
    pub message_id: String,
    pub tenant_id: String,
    pub channel: String,
    pub recipient: String,
    #[schema(value_type = Object)]
    pub content: Value,
    pub at: i64,
}

/// The dev inbox, newest first: one tenant's, or every tenant's.
pub async fn dev_inbox(
    db: &Db,
    tenant: Option<&TenantId>,
    limit: u32,
) -> Result<Vec<DevEntry>, db::Error> {
    let scope = tenant.map_or(Scope::Platform, Scope::Tenant);
    let mut tx = db.begin(scope, Mode::Read).await?;
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT message_id, tenant_id, channel, recipient, content, at FROM dev_inbox \
         WHERE ($1 = '' OR tenant_id = $1) ORDER BY at DESC, message_id DESC LIMIT $2",
    )
    .bind(tenant.map_or("", |t| t.as_str()))
    .bind(i64::from(limit.clamp(1, 500)))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(
            |(message_id, tenant_id, channel, recipient, content, at)| DevEntry {
                message_id,
                tenant_id,
                channel,
                recipient,
                content: serde_json::from_str(&content).unwrap_or(Value::Null),
                at,
            },
        )
        .collect())
}

/// An in-app notification as its user sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    #[sqlx(skip)]
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// `user`'s notifications, newest first (unread ones only if asked).
pub async fn notifications(
    db: &Db,
    tenant: &TenantId,
    user: &str,
    unread_only: bool,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Notification>, db::Error> {
    use sqlx::{FromRow, Row};
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let rows = sqlx::query(
        "SELECT id, title, body, link, data, created_at, read_at FROM notifications \
         WHERE tenant_id = $1 AND user_id = $2 AND ($3 = 0 OR read_at IS NULL) AND ($4 = '' OR id < $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(tenant.as_str())
    .bind(user)
    .bind(i64::from(unread_only))
    .bind(before.unwrap_or(""))
    .bind(i64::from(limit.clamp(1, 200)))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|row| {
            let mut n = Notification::from_row(row)?;
            let data: String = row.try_get("data")?;
            n.data = serde_json::from_str(&data).unwrap_or(Value::Null);
            Ok(n)
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db::Error::from)
}

/// The number of `user`'s unread notifications.
pub async fn unread_count(db: &Db, tenant: &TenantId, user: &str) -> Result<i64, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
    )
    .bind(tenant.as_str())
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Marks `user`'s notification `id` read (or all of them, when `id` is
/// `None`); the number of notifications that were unread, or `None` if
/// `id` is not one of the user's.
pub async fn mark_read(
    db: &Db,
    tenant: &TenantId,
    user: &str,
    id: Option<&str>,
) -> Result<Option<u64>, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Write).await?;
    let now = now_ms();
    if let Some(id) = id {
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT id FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
        )
        .bind(tenant.as_str())
        .bind(user)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
    }
    let n = sqlx::query(
        "UPDATE notifications SET read_at = $4 WHERE tenant_id = $1 AND user_id = $2 \
         AND ($3 = '' OR id = $3) AND read_at IS NULL",
    )
    .bind(tenant.as_str())
    .bind(user)
    .bind(id.unwrap_or(""))
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Some(n))
}

/// Applies a provider's status report to the tenant's message it names;
/// the number of messages changed. A dead message stays dead, and a
/// report of `queued`, a complaint or an unsubscription changes no status.
pub async fn apply_status(
    db: &Db,
    tenant: &TenantId,
    provider: &str,
    event: &weft_msg_wire::StatusEvent,
) -> Result<u64, db::Error> {
    use weft_msg_wire::DeliveryStatus as S;
    let status = match event.status {
        S::Sent => "sent",
        S::Delivered => "delivered",
        S::Bounced => "bounced",
        S::Failed => "failed",
        S::Queued | S::Complained | S::Unsubscribed => return Ok(0),
    };
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Write).await?;
    let n = sqlx::query(
        "UPDATE outbox_messages SET status = $4, last_error = COALESCE($5, last_error), updated_at = $6 \
         WHERE tenant_id = $1 AND provider = $2 AND provider_id = $3 AND status IN ('sent', 'delivered', 'bounced', 'failed')",
    )
    .bind(tenant.as_str())
    .bind(provider)
    .bind(event.provider_id.as_str())
    .bind(status)
    .bind(event.reason.as_deref())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}
