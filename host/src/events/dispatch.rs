//! Delivery workers: claim due deliveries in batches (with a lease, `FOR
//! UPDATE SKIP LOCKED` on PostgreSQL so replicas share the queue), call the
//! subscriber's `on-event` / `on-schedule` with the "done" mark as the
//! call's completion, and schedule a retry or dead-letter what failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::backoff_ms;
use crate::app::App;
use crate::capabilities::{Binding, Completion, types};
use crate::db::{self, Engine, Mode, Scope};
use crate::ids::{TenantId, now_ms};
use crate::runtime::{CallError, CallRequest, Invocation, Reply};

/// A claimed delivery.
#[derive(Debug, Clone)]
struct Claimed {
    id: String,
    tenant: TenantId,
    subscriber: String,
    kind: String,
    event_id: Option<String>,
    schedule: Option<String>,
    due_at: Option<i64>,
    /// Including this one.
    attempts: u32,
}

type ClaimedRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);

/// Claims up to `limit` due deliveries, leasing them to this worker.
async fn claim(app: &App, limit: u32) -> Result<Vec<Claimed>, db::Error> {
    let now = now_ms();
    let lease_until = now + i64::try_from(app.events.config().lease_ms).unwrap_or(60_000);
    let lock = match app.db.engine() {
        Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        Engine::Sqlite => "",
    };
    let mut tx = app.db.begin(Scope::Platform, Mode::Write).await?;
    let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2 \
         WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at LIMIT $3{lock}) \
         RETURNING id, tenant_id, subscriber, kind, event_id, schedule, due_at, CAST(attempts AS BIGINT)"
    )))
    .bind(lease_until)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, tenant, subscriber, kind, event_id, schedule, due_at, attempts)| Claimed {
                id,
                tenant: TenantId::from_raw(tenant),
                subscriber,
                kind,
                event_id,
                schedule,
                due_at,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            },
        )
        .collect())
}

/// The events of `claimed` deliveries, by id.
async fn load_events(
    app: &App,
    claimed: &[Claimed],
) -> Result<std::collections::HashMap<String, types::Event>, db::Error> {
    let ids: Vec<&str> = claimed
        .iter()
        .filter_map(|c| c.event_id.as_deref())
        .collect();
    let mut out = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let placeholders = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT id, topic, payload, publisher, created_at FROM events WHERE id IN ({placeholders})"
    );
    let mut query =
        sqlx::query_as::<_, (String, String, String, String, i64)>(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        query = query.bind(*id);
    }
    let mut tx = app.db.begin(Scope::Platform, Mode::Read).await?;
    for (id, topic, payload, publisher, published_at) in query.fetch_all(&mut *tx).await? {
        out.insert(
            id.clone(),
            types::Event {
                id,
                topic,
                payload,
                publisher,
                published_at,
                attempt: 0,
            },
        );
    }
    tx.commit().await?;
    Ok(out)
}

/// How a delivery attempt ended, when not done.
enum Failure {
    /// Try again after the backoff (dead past the attempt limit).
    Retry(String),
    /// Dead-letter now.
    Dead(String),
}

/// Records a failed attempt: back to pending after the backoff, or dead.
async fn fail(app: &App, d: &Claimed, failure: Failure) -> Result<(), db::Error> {
    let config = app.events.config();
    let (state, error) = match failure {
        Failure::Retry(e) if d.attempts < config.max_attempts => ("pending", e),
        Failure::Retry(e) => (
            "dead",
            format!("{e} (gave up after {} attempts)", d.attempts),
        ),
        Failure::Dead(e) => ("dead", e),
    };
    let now = now_ms();
    let next = now + i64::try_from(backoff_ms(config, d.attempts)).unwrap_or(i64::MAX / 2);
    let mut tx = app.db.begin(Scope::Tenant(&d.tenant), Mode::Write).await?;
    sqlx::query(
        "UPDATE deliveries SET state = $3, next_attempt_at = $4, last_error = $5, updated_at = $6 \
         WHERE id = $1 AND tenant_id = $2 AND state = 'pending'",
    )
    .bind(&d.id)
    .bind(d.tenant.as_str())
    .bind(state)
    .bind(next)
    .bind(&error)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if state == "dead" {
        tracing::warn!(delivery = %d.id, subscriber = %d.subscriber, %error, "delivery dead-lettered");
    }
    Ok(())
}

/// Calls the subscriber for one claimed delivery and records the result.
async fn deliver(app: &App, d: Claimed, event: Option<types::Event>) -> Result<(), db::Error> {
    let Some(plugin) = app.runtime.plugin(&d.subscriber) else {
        return fail(app, &d, Failure::Dead("the plugin is not installed".into())).await;
    };
    let tenant_plugin = match app.catalog.tenant_plugin(&d.tenant, &d.subscriber).await {
        Ok(Some(tp)) if tp.enabled => tp,
        Ok(_) => {
            let why = "the plugin is not enabled for the tenant";
            return fail(app, &d, Failure::Dead(why.into())).await;
        }
        Err(err) => return fail(app, &d, Failure::Retry(err.to_string())).await,
    };
    let invocation = match (d.kind.as_str(), event, &d.schedule, d.due_at) {
        ("event", Some(mut event), _, _) => {
            event.attempt = d.attempts;
            Invocation::Event(event)
        }
        ("schedule", _, Some(schedule), Some(due_at)) => {
            if !plugin
                .manifest
                .schedules
                .iter()
                .any(|s| &s.name == schedule)
            {
                let why = format!("the plugin no longer declares schedule {schedule:?}");
                return fail(app, &d, Failure::Dead(why)).await;
            }
            Invocation::Schedule(types::ScheduleRun {
                schedule: schedule.clone(),
                due_at,
                attempt: d.attempts,
            })
        }
        _ => return fail(app, &d, Failure::Dead("the event is gone".into())).await,
    };
    let call = CallRequest {
        binding: Binding {
            tenant: d.tenant.clone(),
            plugin: d.subscriber.clone(),
            version: plugin.manifest.plugin.version.clone(),
        },
        settings: Arc::new(plugin.manifest.effective_settings(&tenant_plugin.settings)),
        idempotency_key: format!("delivery:{}:{}", d.id, d.attempts),
        request_id: format!("delivery-{}-{}", d.id, d.attempts),
        invocation,
        completion: Some(Completion::Delivery { id: d.id.clone() }),
    };
    let outcome = app.runtime.call(&plugin, &app.meter, call).await;
    match outcome.result {
        Ok(Reply::Handled(Ok(())) | Reply::Http(_)) | Err(CallError::AlreadyCompleted) => Ok(()),
        Ok(Reply::Handled(Err(types::HandlerError::Retry(why)))) => {
            fail(
                app,
                &d,
                Failure::Retry(format!("handler asked to retry: {why}")),
            )
            .await
        }
        Ok(Reply::Handled(Err(types::HandlerError::Reject(why)))) => {
            fail(
                app,
                &d,
                Failure::Dead(format!("handler rejected it: {why}")),
            )
            .await
        }
        Err(CallError::NotExported) => {
            fail(app, &d, Failure::Dead(CallError::NotExported.message())).await
        }
        Err(err) => {
            fail(
                app,
                &d,
                Failure::Retry(format!("{}: {}", err.code(), err.message())),
            )
            .await
        }
    }
}

/// Claims one batch and delivers it, at most `permits` calls at once;
/// returns how many were claimed. With `wait`, returns once all are done.
async fn run_batch(
    app: &Arc<App>,
    permits: &Arc<Semaphore>,
    wait: bool,
) -> Result<usize, db::Error> {
    let batch = claim(app, app.events.config().batch_size.max(1)).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let events = load_events(app, &batch).await?;
    let claimed = batch.len();
    let mut tasks = Vec::with_capacity(claimed);
    for d in batch {
        let event = d.event_id.as_ref().and_then(|id| events.get(id).cloned());
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let id = d.id.clone();
            if let Err(err) = deliver(&app, d, event).await {
                // The lease runs out and the delivery is tried again.
                tracing::error!(delivery = %id, error = %err, "delivery bookkeeping failed");
            }
            drop(permit);
        }));
    }
    if wait {
        for task in tasks {
            let _ = task.await;
        }
    }
    Ok(claimed)
}

/// Delivers everything due now and waits for it (tests and benchmarks);
/// returns how many deliveries were attempted.
pub async fn drain(app: &Arc<App>) -> Result<usize, db::Error> {
    let permits = Arc::new(Semaphore::new(
        app.events.config().concurrency.max(1) as usize
    ));
    let mut total = 0;
    loop {
        let n = run_batch(app, &permits, true).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Starts the delivery loop: a batch whenever woken (a commit queued
/// deliveries) or every `poll_ms`, back to back while batches come full.
pub fn spawn(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    let config = app.events.config().clone();
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1) as usize));
    tokio::spawn(async move {
        loop {
            let Some(app) = weak.upgrade() else { break };
            let claimed = match run_batch(&app, &permits, false).await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming deliveries failed");
                    0
                }
            };
            if claimed as u32 >= config.batch_size {
                continue;
            }
            let events = app.events.clone();
            drop(app);
            tokio::select! {
                () = events.woken() => {}
                () = tokio::time::sleep(Duration::from_millis(config.poll_ms)) => {}
            }
        }
    });
}

/// Deletes done deliveries, and events nothing refers to any more, older
/// than `retention_ms`.
pub async fn prune(app: &App, retention_ms: i64) -> Result<(), db::Error> {
    let cutoff = now_ms() - retention_ms;
    let mut tx = app.db.begin(Scope::Platform, Mode::Write).await?;
    sqlx::query("DELETE FROM deliveries WHERE state = 'done' AND updated_at < $1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM events WHERE created_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)",
    )
    .bind(cutoff)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
