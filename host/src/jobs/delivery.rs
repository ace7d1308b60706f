//! Delivery workers: claim due deliveries (with a lease, `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL so replicas share the queue), run them through the
//! subscriber's `on-event` / `on-schedule`, and record how each ended.
//!
//! The deliveries claimed together for one (tenant, subscriber) run one
//! after the other in one unit of work, a [`Batch`]: each handler call is
//! a savepoint, so a failing one undoes only its own writes, and the
//! handlers' writes, their "done" marks, the failures and the usage events
//! commit in one transaction. A redelivery — a retry, or a lease that ran
//! out after a crash — can never apply a handler's writes twice: they
//! commit with its mark or not at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::app::App;
use crate::capabilities::{Binding, types};
use crate::catalog::manifest::Capability;
use crate::db::{self, Engine, Exec, Mode, Scope, Stmt};
use crate::events::backoff_ms;
use crate::ids::{TenantId, now_ms};
use crate::runtime::{Batch, CallError, CallRequest, Invocation, Reply};
use crate::search::Search;
use crate::storage::Owner;

/// How long one batch may hold its unit of work (on SQLite, the database's
/// write lock) before the rest of its deliveries go back to the queue.
const BATCH_BUDGET: Duration = Duration::from_millis(50);

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
    let probe = Stmt::new(
        "SELECT 1 FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1 LIMIT 1",
    )
    .bind(now);
    if !app.db.may_claim(probe).await? {
        return Ok(Vec::new());
    }
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
    let mut claimed: Vec<Claimed> = rows
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
        .collect();
    // RETURNING has no order; ids are time-ordered (UUIDv7).
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// The events of `claimed` deliveries, by id.
async fn load_events(
    app: &App,
    claimed: &[Claimed],
) -> Result<HashMap<String, types::Event>, db::Error> {
    let ids: Vec<&str> = claimed
        .iter()
        .filter_map(|c| c.event_id.as_deref())
        .collect();
    let mut out = HashMap::new();
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

/// How a delivery attempt ended.
#[derive(Debug)]
enum Outcome {
    /// The handler succeeded: its writes are in the batch.
    Done,
    /// Try again after the backoff (dead past the attempt limit).
    Retry(String),
    /// Dead-letter now.
    Dead(String),
    /// Not attempted (the batch ran out of time): back to the queue.
    Unclaimed,
}

impl Outcome {
    fn of(result: Result<Reply, CallError>) -> Self {
        match result {
            Ok(Reply::Handled(Ok(())) | Reply::Http(_)) => Outcome::Done,
            Ok(Reply::Handled(Err(types::HandlerError::Retry(why)))) => {
                Outcome::Retry(format!("handler asked to retry: {why}"))
            }
            Ok(Reply::Handled(Err(types::HandlerError::Reject(why)))) => {
                Outcome::Dead(format!("handler rejected it: {why}"))
            }
            Err(CallError::NotExported) => Outcome::Dead(CallError::NotExported.message()),
            Err(err) => Outcome::Retry(format!("{}: {}", err.code(), err.message())),
        }
    }
}

/// The call to make for delivery `d`, or why there is none.
fn invocation(
    d: &Claimed,
    event: Option<types::Event>,
    schedules: &[crate::catalog::manifest::Schedule],
) -> Result<Invocation, Outcome> {
    match (d.kind.as_str(), event, &d.schedule, d.due_at) {
        ("event", Some(mut event), _, _) => {
            event.attempt = d.attempts;
            Ok(Invocation::Event(event))
        }
        ("schedule", _, Some(schedule), Some(due_at)) => {
            if !schedules.iter().any(|s| &s.name == schedule) {
                return Err(Outcome::Dead(format!(
                    "the plugin no longer declares schedule {schedule:?}"
                )));
            }
            Ok(Invocation::Schedule(types::ScheduleRun {
                schedule: schedule.clone(),
                due_at,
                attempt: d.attempts,
            }))
        }
        _ => Err(Outcome::Dead("the event is gone".into())),
    }
}

/// Records the outcomes in `tx`. False if a delivery marked done here had
/// been completed by another attempt meanwhile (its lease ran out): then
/// this batch's writes must not commit.
async fn record(
    app: &App,
    tx: &mut impl Exec,
    outcomes: &[(Claimed, Outcome)],
) -> Result<bool, db::Error> {
    let config = app.events.config();
    let now = now_ms();
    let done: Vec<&str> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Done))
        .map(|(d, _)| d.id.as_str())
        .collect();
    for chunk in done.chunks(100) {
        let list = (0..chunk.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = Stmt::new(format!(
            "UPDATE deliveries SET state = 'done', last_error = NULL, updated_at = $1 \
             WHERE state = 'pending' AND id IN ({list})"
        ))
        .bind(now);
        for id in chunk {
            stmt = stmt.bind(*id);
        }
        if tx.execute(stmt).await? != chunk.len() as u64 {
            return Ok(false);
        }
    }
    for (d, outcome) in outcomes {
        let (state, error) = match outcome {
            Outcome::Done => continue,
            Outcome::Unclaimed => {
                tx.execute(
                    Stmt::new(
                        "UPDATE deliveries SET attempts = attempts - 1, next_attempt_at = $2, \
                         updated_at = $2 WHERE id = $1 AND state = 'pending'",
                    )
                    .bind(&d.id)
                    .bind(now),
                )
                .await?;
                continue;
            }
            Outcome::Retry(e) if d.attempts < config.max_attempts => ("pending", e.clone()),
            Outcome::Retry(e) => (
                "dead",
                format!("{e} (gave up after {} attempts)", d.attempts),
            ),
            Outcome::Dead(e) => ("dead", e.clone()),
        };
        let next = now + i64::try_from(backoff_ms(config, d.attempts)).unwrap_or(i64::MAX / 2);
        tx.execute(
            Stmt::new(
                "UPDATE deliveries SET state = $3, next_attempt_at = $4, last_error = $5, updated_at = $6 \
                 WHERE id = $1 AND tenant_id = $2 AND state = 'pending'",
            )
            .bind(&d.id)
            .bind(d.tenant.as_str())
            .bind(state)
            .bind(next)
            .bind(&error)
            .bind(now),
        )
        .await?;
        if state == "dead" {
            tracing::warn!(delivery = %d.id, subscriber = %d.subscriber, %error, "delivery dead-lettered");
        }
    }
    Ok(true)
}

/// Records outcomes when there is no batch to record them in.
async fn record_alone(
    app: &App,
    tenant: &TenantId,
    outcomes: &[(Claimed, Outcome)],
) -> Result<(), db::Error> {
    let mut tx = app.db.begin(Scope::Tenant(tenant), Mode::Write).await?;
    record(app, &mut tx, outcomes).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether the plugin may call the LLM gateway or the code library, which
/// it must do before its first write: its handlers cannot run inside an
/// open batch transaction.
fn uses_llm(manifest: &crate::catalog::Manifest) -> bool {
    let caps = &manifest.plugin.capabilities;
    caps.contains(&Capability::Llm) || caps.contains(&Capability::Library)
}

/// Which deliveries of a subscriber run apart ([`Batch::lazy`]).
struct Apart {
    /// All of them: the plugin may use the LLM gateway.
    all: bool,
    /// Those of these topics (`apart = true` in the manifest).
    topics: Vec<String>,
}

impl Apart {
    fn of(app: &App, subscriber: &str) -> Self {
        match app.runtime.plugin(subscriber) {
            Some(p) => Self::of_manifest(&p.manifest),
            None => Self {
                all: false,
                topics: Vec::new(),
            },
        }
    }

    fn of_manifest(manifest: &crate::catalog::Manifest) -> Self {
        Self {
            all: uses_llm(manifest),
            topics: (manifest.subscriptions.iter())
                .filter(|s| s.apart)
                .map(|s| s.topic.clone())
                .collect(),
        }
    }

    fn alone(&self, topic: Option<&str>) -> bool {
        self.all || topic.is_some_and(|t| self.topics.iter().any(|a| a == t))
    }
}

/// Adds a delivery to its (tenant, subscriber) group: one of its own if it
/// runs apart, else the group of the others that do not.
fn push_grouped<K: PartialEq, T>(
    groups: &mut Vec<(K, bool, Vec<T>)>,
    key: K,
    alone: bool,
    item: T,
) {
    match groups
        .iter_mut()
        .find(|(k, apart, _)| !alone && !*apart && *k == key)
    {
        Some((_, _, group)) => group.push(item),
        None => groups.push((key, alone, vec![item])),
    }
}

/// Deliveries of one tenant to one subscriber, in claim order, with their events.
type Group = Vec<(Claimed, Option<types::Event>)>;

/// Delivers `group` in one batch, and records the outcomes.
/// `apart`: the group is one delivery that runs apart ([`Batch::lazy`]).
async fn deliver_group(
    app: &App,
    tenant: TenantId,
    subscriber: String,
    group: Group,
    apart: bool,
) -> Result<(), db::Error> {
    let all = |outcome: fn(String) -> Outcome, why: &str| -> Vec<(Claimed, Outcome)> {
        group
            .iter()
            .map(|(d, _)| (d.clone(), outcome(why.to_owned())))
            .collect()
    };
    let Some(plugin) = app.runtime.plugin(&subscriber) else {
        let outcomes = all(Outcome::Dead, "the plugin is not installed");
        return record_alone(app, &tenant, &outcomes).await;
    };
    let tenant_plugin = match app.catalog.tenant_plugin(&tenant, &subscriber).await {
        Ok(Some(tp)) if tp.enabled => tp,
        Ok(_) => {
            let outcomes = all(Outcome::Dead, "the plugin is not enabled for the tenant");
            return record_alone(app, &tenant, &outcomes).await;
        }
        Err(err) => {
            let outcomes = all(Outcome::Retry, &err.to_string());
            return record_alone(app, &tenant, &outcomes).await;
        }
    };
    let settings = Arc::new(plugin.manifest.effective_settings(&tenant_plugin.settings));
    let owner = Owner {
        tenant: &tenant,
        plugin: &subscriber,
    };
    let mut batch = if apart {
        Batch::lazy()
    } else {
        match app.storage.begin_unit(owner).await {
            Ok(unit) => Batch::new(unit),
            Err(err) => {
                let outcomes = all(Outcome::Retry, &err.to_string());
                return record_alone(app, &tenant, &outcomes).await;
            }
        }
    };
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(group.len());
    for (d, event) in group {
        if started.elapsed() > BATCH_BUDGET || (batch.unit.is_none() && !batch.lazy) {
            outcomes.push((d, Outcome::Unclaimed));
            continue;
        }
        let invocation = match invocation(&d, event, &plugin.manifest.schedules) {
            Ok(invocation) => invocation,
            Err(outcome) => {
                outcomes.push((d, outcome));
                continue;
            }
        };
        let call = CallRequest {
            binding: Binding {
                tenant: tenant.clone(),
                plugin: subscriber.clone(),
                version: plugin.manifest.plugin.version.clone(),
            },
            settings: settings.clone(),
            idempotency_key: format!("delivery:{}:{}", d.id, d.attempts),
            request_id: format!("delivery-{}-{}", d.id, d.attempts),
            invocation,
        };
        let outcome = app.runtime.call_in_batch(&plugin, &mut batch, call).await;
        outcomes.push((d, Outcome::of(outcome.result)));
    }

    if batch.lazy && batch.unit.is_none() {
        // The call wrote nothing (or failed): the bookkeeping needs a unit.
        match app.storage.begin_unit(owner).await {
            Ok(unit) => batch.unit = Some(unit),
            Err(err) => {
                tracing::error!(error = %err, "beginning a delivery's bookkeeping failed");
                let outcomes: Vec<_> = outcomes
                    .into_iter()
                    .map(|(d, _)| (d, Outcome::Retry(err.to_string())))
                    .collect();
                return record_alone(app, &tenant, &outcomes).await;
            }
        }
    }
    let Some(mut unit) = batch.unit.take() else {
        // A savepoint could not be ended: the transaction is gone with
        // every write of the batch. Every delivery is tried again.
        let outcomes: Vec<_> = outcomes
            .into_iter()
            .map(|(d, _)| (d, Outcome::Retry("the batch's transaction failed".into())))
            .collect();
        return record_alone(app, &tenant, &outcomes).await;
    };
    if let Err(err) = app.storage.flush(&mut unit).await {
        tracing::error!(error = %err, "flushing a delivery batch failed");
        // Roll the batch back first: on SQLite it holds the write lock the
        // bookkeeping below needs.
        drop(unit);
        let outcomes: Vec<_> = outcomes
            .into_iter()
            .map(|(d, _)| (d, Outcome::Retry("the batch's writes failed".into())))
            .collect();
        return record_alone(app, &tenant, &outcomes).await;
    }
    let mut tx = unit.into_tx();
    if !record(app, &mut tx, &outcomes).await? {
        // Dropping the transaction rolls the batch back; what is still
        // pending is retried when its lease runs out.
        tracing::warn!(
            subscriber = %subscriber,
            "a delivery of the batch was completed by another worker; batch rolled back"
        );
        return Ok(());
    }
    let usage: Vec<_> = batch.usage.iter().collect();
    if let Err(err) = crate::metering::insert(&mut tx, &usage).await {
        tracing::error!(error = %err, "recording a delivery batch's usage failed");
        return Ok(());
    }
    let queued = app.events.write(&mut tx, owner, &batch.events).await?;
    if !batch.search_writes.is_empty()
        && let Err(err) = Search::journal(&mut tx, owner, &mut batch.search_writes).await
    {
        tracing::error!(error = %err, "journaling a delivery batch's search writes failed");
        return Ok(());
    }
    tx.commit().await?;
    if !batch.search_writes.is_empty() {
        app.search
            .apply(owner, std::mem::take(&mut batch.search_writes));
    }
    if queued {
        app.events.wake();
    }
    Ok(())
}

/// Claims one batch and delivers it, one task per (tenant, subscriber)
/// group, at most `permits` groups at once; returns how many were claimed.
/// With `wait`, returns once all are done.
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
    // (tenant, subscriber), whether the group runs apart, its deliveries.
    let mut groups: Vec<((TenantId, String), bool, Group)> = Vec::new();
    let mut subscribers: HashMap<String, Apart> = HashMap::new();
    for d in batch {
        let event = d.event_id.as_ref().and_then(|id| events.get(id).cloned());
        let key = (d.tenant.clone(), d.subscriber.clone());
        // A subscriber that uses the LLM gateway, or a subscription marked
        // `apart`, gets its deliveries one per batch (see `Batch::lazy`).
        let alone = subscribers
            .entry(d.subscriber.clone())
            .or_insert_with(|| Apart::of(app, &d.subscriber))
            .alone(event.as_ref().map(|e| e.topic.as_str()));
        push_grouped(&mut groups, key, alone, (d, event));
    }
    let mut tasks = Vec::with_capacity(groups.len());
    for ((tenant, subscriber), apart, group) in groups {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(err) = deliver_group(&app, tenant, subscriber.clone(), group, apart).await {
                // The leases run out and the deliveries are tried again.
                tracing::error!(%subscriber, error = %err, "delivery bookkeeping failed");
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

#[cfg(test)]
mod tests {
    use super::{Apart, push_grouped};
    use crate::catalog::Manifest;

    fn manifest(capabilities: &str) -> Manifest {
        Manifest::parse(&format!(
            r#"
[plugin]
name = "mailer"
version = "0.1.0"
wit = "0.5.0"
capabilities = [{capabilities}]

[[subscriptions]]
topic = "mailer.chunk"
apart = true

[[subscriptions]]
topic = "forum.post_created"
"#
        ))
        .expect("manifest")
    }

    #[test]
    fn only_deliveries_of_apart_topics_or_of_llm_plugins_run_apart() {
        let plain = Apart::of_manifest(&manifest(r#""events""#));
        assert!(plain.alone(Some("mailer.chunk")));
        assert!(!plain.alone(Some("forum.post_created")));
        // A schedule run has no event: it is batched as before.
        assert!(!plain.alone(None));
        let llm = Apart::of_manifest(&manifest(r#""events", "llm""#));
        assert!(llm.alone(Some("forum.post_created")) && llm.alone(None));
    }

    #[test]
    fn a_delivery_that_runs_apart_is_grouped_with_no_other() {
        let mut groups = Vec::new();
        // An apart delivery first: the next one of the same subscriber must
        // not join it.
        push_grouped(&mut groups, "mailer", true, 1);
        push_grouped(&mut groups, "mailer", false, 2);
        push_grouped(&mut groups, "mailer", true, 3);
        push_grouped(&mut groups, "mailer", false, 4);
        push_grouped(&mut groups, "forum", false, 5);
        assert_eq!(
            groups,
            vec![
                ("mailer", true, vec![1]),
                ("mailer", false, vec![2, 4]),
                ("mailer", true, vec![3]),
                ("forum", false, vec![5]),
            ]
        );
    }
}
