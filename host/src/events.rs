//! Durable events between the plugins of one tenant, and the delivery queue
//! that also carries schedule runs.
//!
//! `publish` writes the event and one delivery per subscriber of the same
//! tenant inside the publishing call's unit of work: an event exists only if
//! its call committed, and never reaches another tenant. Deliveries are
//! claimed by workers ([`crate::jobs::delivery`]) with a lease, and a
//! handler's writes commit together with the mark that its delivery is
//! done: a redelivery (a retry, an expired lease after a crash) can never
//! apply them twice.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use crate::config::EventsConfig;
use crate::db::{self, Db, Exec, Mode, Scope, Stmt, chunks, tuples};
use crate::ids::{TenantId, now_ms};
use crate::storage::{self, Owner};

/// Why `publish` was refused; everything but `Storage` is the plugin's to fix.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("invalid payload: {0}")]
    InvalidJson(String),
    #[error("payload larger than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

impl From<sqlx::Error> for PublishError {
    fn from(err: sqlx::Error) -> Self {
        Self::Storage(err.into())
    }
}

/// Checks a topic: 1-128 characters of `a-z 0-9 _ - .`.
pub fn check_topic(topic: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{topic:?}: topics are 1-128 characters of a-z, 0-9, '_', '-', '.'"
        ))
    }
}

/// The event service: who subscribes to what, publishing, and waking the
/// delivery workers.
#[derive(Debug)]
pub struct Events {
    /// Topic → plugins whose current version subscribes to it.
    subscriptions: RwLock<HashMap<String, Vec<String>>>,
    wake: Notify,
    config: EventsConfig,
}

impl Events {
    pub fn new(config: EventsConfig) -> Self {
        Self {
            subscriptions: RwLock::new(HashMap::new()),
            wake: Notify::new(),
            config,
        }
    }

    /// The delivery settings.
    pub fn config(&self) -> &EventsConfig {
        &self.config
    }

    /// Records that `plugin`'s current version subscribes to `topics`
    /// (replacing what an earlier version subscribed to).
    pub fn subscribe(&self, plugin: &str, topics: impl IntoIterator<Item = String>) {
        let mut subs = self
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for plugins in subs.values_mut() {
            plugins.retain(|p| p != plugin);
        }
        for topic in topics {
            let plugins = subs.entry(topic).or_default();
            if !plugins.iter().any(|p| p == plugin) {
                plugins.push(plugin.to_owned());
            }
        }
        subs.retain(|_, plugins| !plugins.is_empty());
    }

    fn subscribers(&self, topic: &str) -> Vec<String> {
        self.subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
            .unwrap_or_default()
    }

    /// Wakes the delivery loop (after a commit that queued deliveries); a
    /// wake while it is busy is kept for its next wait.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Self::wake`] is called.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Checks `payload` before any write: a JSON object within the limit.
    pub fn check(&self, topic: &str, payload: &str) -> Result<(), PublishError> {
        check_topic(topic).map_err(PublishError::InvalidTopic)?;
        if payload.len() as u64 > self.config.max_payload_bytes {
            return Err(PublishError::TooLarge(self.config.max_payload_bytes));
        }
        match serde_json::from_str::<Value>(payload) {
            Ok(Value::Object(_)) => Ok(()),
            Ok(_) => Err(PublishError::InvalidJson("not a JSON object".into())),
            Err(e) => Err(PublishError::InvalidJson(e.to_string())),
        }
    }

    /// A checked event, with its id: what a call publishes. It is written
    /// by [`Self::write`] when the call's unit of work commits.
    pub fn prepare(&self, topic: &str, payload: &str) -> Result<Pending, PublishError> {
        self.check(topic, payload)?;
        Ok(Pending {
            id: uuid::Uuid::now_v7().to_string(),
            topic: topic.to_owned(),
            payload: payload.to_owned(),
            created_at: now_ms(),
        })
    }

    /// Writes the events `owner` published in `tx` (the unit of work that
    /// published them, about to commit), with one delivery per plugin of
    /// the same tenant that is enabled and subscribes to the topic; true if
    /// any delivery was queued.
    pub async fn write(
        &self,
        tx: &mut impl Exec,
        owner: Owner<'_>,
        events: &[Pending],
    ) -> Result<bool, sqlx::Error> {
        for chunk in chunks(events) {
            let rows = chunk.len();
            let sql = format!(
                "INSERT INTO events (id, tenant_id, publisher, topic, payload, created_at) VALUES {}",
                tuples(rows, 6, &[])
            );
            let mut query = Stmt::new(sql);
            for e in chunk {
                query = query
                    .bind(e.id.as_str())
                    .bind(owner.tenant.as_str())
                    .bind(owner.plugin)
                    .bind(e.topic.as_str())
                    .bind(e.payload.as_str())
                    .bind(e.created_at);
            }
            tx.execute(query).await?;
        }
        let wanted: Vec<(&Pending, Vec<String>)> = events
            .iter()
            .map(|e| (e, self.subscribers(&e.topic)))
            .filter(|(_, subs)| !subs.is_empty())
            .collect();
        if wanted.is_empty() {
            return Ok(false);
        }
        let enabled: Vec<String> = tx
            .fetch_all(
                Stmt::new("SELECT plugin FROM tenant_plugins WHERE tenant_id = $1 AND enabled = 1")
                    .bind(owner.tenant.as_str()),
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect::<Result<_, _>>()?;
        let deliveries: Vec<(String, &Pending)> = wanted
            .iter()
            .flat_map(|(e, subs)| {
                subs.iter()
                    .filter(|s| enabled.contains(s))
                    .map(move |s| (s.clone(), *e))
            })
            .collect();
        for chunk in chunks(&deliveries) {
            let rows = chunk.len();
            let sql = format!(
                "INSERT INTO deliveries (id, tenant_id, subscriber, kind, event_id, state, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES {}",
                tuples(rows, 10, &[])
            );
            let mut query = Stmt::new(sql);
            for (subscriber, e) in chunk {
                query = query
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(owner.tenant.as_str())
                    .bind(subscriber.as_str())
                    .bind("event")
                    .bind(e.id.as_str())
                    .bind("pending")
                    .bind(0_i64)
                    .bind(e.created_at)
                    .bind(e.created_at)
                    .bind(e.created_at);
            }
            tx.execute(query).await?;
        }
        Ok(!deliveries.is_empty())
    }
}

/// An event a call published, written when its unit of work commits.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub topic: String,
    pub payload: String,
    pub created_at: i64,
}

/// Delay before retry number `attempts` (1-based): doubling from `base`,
/// capped, with ±20 % jitter so retries of a burst spread out.
pub fn backoff_ms(config: &EventsConfig, attempts: u32) -> u64 {
    let exp = attempts.saturating_sub(1).min(30);
    let delay = config
        .retry_base_ms
        .saturating_mul(1u64 << exp)
        .min(config.max_retry_delay_ms);
    let jitter = rand::random_range(0.8..1.2);
    (delay as f64 * jitter) as u64
}

/// A delivery as an admin sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub subscriber: String,
    /// `event` or `schedule`.
    pub kind: String,
    /// `pending`, `done` or `dead`.
    pub state: String,
    pub attempts: i64,
    /// Unix ms; for a pending delivery, when it is (next) due.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub event_id: Option<String>,
    pub topic: Option<String>,
    pub publisher: Option<String>,
    /// The event's JSON payload.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub schedule: Option<String>,
    pub due_at: Option<i64>,
}

/// A delivery row joined with its event, as [`VIEW_SELECT`] reads it.
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    subscriber: String,
    kind: String,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    event_id: Option<String>,
    topic: Option<String>,
    publisher: Option<String>,
    payload: Option<String>,
    schedule: Option<String>,
    due_at: Option<i64>,
}

fn view(row: DeliveryRow) -> DeliveryView {
    DeliveryView {
        id: row.id,
        subscriber: row.subscriber,
        kind: row.kind,
        state: row.state,
        attempts: row.attempts,
        next_attempt_at: row.next_attempt_at,
        last_error: row.last_error,
        created_at: row.created_at,
        updated_at: row.updated_at,
        event_id: row.event_id,
        topic: row.topic,
        publisher: row.publisher,
        payload: row.payload.and_then(|p| serde_json::from_str(&p).ok()),
        schedule: row.schedule,
        due_at: row.due_at,
    }
}

const VIEW_SELECT: &str = "SELECT d.id, d.subscriber, d.kind, d.state, CAST(d.attempts AS BIGINT) AS attempts, \
     d.next_attempt_at, d.last_error, d.created_at, d.updated_at, d.event_id, e.topic, e.publisher, \
     e.payload, d.schedule, d.due_at FROM deliveries d LEFT JOIN events e ON e.id = d.event_id";

/// A page of the tenant's deliveries, newest first, optionally of one
/// state; `before` is the last id of the previous page.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    state: Option<&str>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<DeliveryView>, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VIEW_SELECT} WHERE d.tenant_id = $1 AND ($2 = '' OR d.state = $2) \
         AND ($3 = '' OR d.id < $3) ORDER BY d.id DESC LIMIT $4"
    )))
    .bind(tenant.as_str())
    .bind(state.unwrap_or(""))
    .bind(before.unwrap_or(""))
    .bind(i64::from(limit.clamp(1, 500)))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(view).collect())
}

/// One delivery of the tenant.
pub async fn get(db: &Db, tenant: &TenantId, id: &str) -> Result<Option<DeliveryView>, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let row: Option<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VIEW_SELECT} WHERE d.tenant_id = $1 AND d.id = $2"
    )))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(view))
}

/// The latest run of `plugin`'s `schedule` for the tenant, by due time.
pub async fn last_schedule_run(
    db: &Db,
    tenant: &TenantId,
    plugin: &str,
    schedule: &str,
) -> Result<Option<DeliveryView>, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let row: Option<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VIEW_SELECT} WHERE d.tenant_id = $1 AND d.kind = 'schedule' AND d.subscriber = $2 \
         AND d.schedule = $3 ORDER BY d.due_at DESC LIMIT 1"
    )))
    .bind(tenant.as_str())
    .bind(plugin)
    .bind(schedule)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(view))
}

/// Why a replay was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such delivery")]
    NotFound,
    #[error("only dead deliveries can be replayed (this one is {0})")]
    NotDead(String),
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl From<sqlx::Error> for ReplayError {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Puts a dead delivery back in the queue with a fresh attempt count.
pub async fn replay(db: &Db, tenant: &TenantId, id: &str) -> Result<DeliveryView, ReplayError> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Write).await?;
    let now = now_ms();
    let replayed = sqlx::query(
        "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $3, \
         last_error = NULL, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND state = 'dead'",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let current = get(db, tenant, id).await?.ok_or(ReplayError::NotFound)?;
    if replayed.rows_affected() == 0 {
        return Err(ReplayError::NotDead(current.state));
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_checked() {
        assert!(check_topic("forum.post_created").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("Forum.Post").is_err());
        assert!(check_topic(&"a".repeat(129)).is_err());
    }

    #[test]
    fn payloads_must_be_objects_within_the_limit() {
        let events = Events::new(EventsConfig {
            max_payload_bytes: 32,
            ..EventsConfig::default()
        });
        assert!(events.check("t", r#"{"a":1}"#).is_ok());
        assert!(matches!(
            events.check("t", "[1]"),
            Err(PublishError::InvalidJson(_))
        ));
        assert!(matches!(
            events.check("t", "{"),
            Err(PublishError::InvalidJson(_))
        ));
        assert!(matches!(
            events.check("t", &format!(r#"{{"a":"{}"}}"#, "x".repeat(40))),
            Err(PublishError::TooLarge(32))
        ));
    }

    #[test]
    fn subscriptions_follow_the_current_version() {
        let events = Events::new(EventsConfig::default());
        events.subscribe("mailer", ["a".to_owned(), "b".to_owned()]);
        events.subscribe("audit", ["a".to_owned()]);
        assert_eq!(events.subscribers("a"), ["mailer", "audit"]);
        events.subscribe("mailer", ["b".to_owned()]);
        assert_eq!(events.subscribers("a"), ["audit"]);
        assert_eq!(events.subscribers("b"), ["mailer"]);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let config = EventsConfig {
            retry_base_ms: 1000,
            max_retry_delay_ms: 10_000,
            ..EventsConfig::default()
        };
        let first = backoff_ms(&config, 1);
        assert!((800..=1200).contains(&first), "{first}");
        let third = backoff_ms(&config, 3);
        assert!((3200..=4800).contains(&third), "{third}");
        let capped = backoff_ms(&config, 20);
        assert!(capped <= 12_000, "{capped}");
    }
}
