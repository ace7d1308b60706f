//! Schedules: the cron jobs of plugin manifests, run once per due time for
//! every tenant that enabled the plugin, whatever the number of replicas.
//!
//! Each tick computes, per (tenant, plugin, schedule), the latest due time
//! at or before now and inserts one schedule delivery for it; the unique
//! index on (tenant, plugin, schedule, due time) makes that insert the claim
//! (`ON CONFLICT DO NOTHING`). After downtime only the latest missed due
//! time is inserted: at most one catch-up run. Due times before the plugin
//! was enabled are not owed. The runs go through the event delivery queue
//! (retries, dead letters, replay). The clock is injectable for tests.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use croner::Cron;
use serde::Serialize;

use crate::app::App;
use crate::db::{self, Mode, Scope};
use crate::events::DeliveryView;
use crate::ids::{TenantId, now_ms};

/// Where "now" comes from for due times.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Parses a manifest cron expression (5 fields, or 6 with seconds first).
pub fn parse(expr: &str) -> Result<Cron, String> {
    Cron::from_str(expr).map_err(|e| format!("invalid cron expression {expr:?}: {e}"))
}

fn to_datetime(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// The latest due time at or before `now` (Unix ms).
pub fn latest_due(cron: &Cron, now: i64) -> Option<i64> {
    cron.find_previous_occurrence(&to_datetime(now)?, true)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The first due time after `now` (Unix ms).
pub fn next_due(cron: &Cron, now: i64) -> Option<i64> {
    cron.find_next_occurrence(&to_datetime(now)?, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

type RunKey = (TenantId, String, String);

/// The scheduler of one process.
#[derive(Debug)]
pub struct Scheduler {
    clock: RwLock<Arc<dyn Clock>>,
    /// The due time each schedule was last claimed for by this process.
    claimed: Mutex<HashMap<RunKey, i64>>,
    /// Parsed expressions.
    crons: Mutex<HashMap<String, Arc<Cron>>>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self {
            clock: RwLock::new(Arc::new(SystemClock)),
            claimed: Mutex::new(HashMap::new()),
            crons: Mutex::new(HashMap::new()),
        }
    }
}

/// A schedule of a tenant's enabled plugin, as its admin sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub plugin: String,
    pub schedule: String,
    pub cron: String,
    /// Unix ms of the next due time.
    pub next_due_at: Option<i64>,
    /// The latest run (by due time), if any.
    pub last_run: Option<DeliveryView>,
}

impl Scheduler {
    /// Replaces the clock (tests).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self.clock.write().unwrap_or_else(|p| p.into_inner()) = clock;
    }

    /// Now, by the scheduler's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .now_ms()
    }

    fn cron(&self, expr: &str) -> Option<Arc<Cron>> {
        let mut crons = self.crons.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cron) = crons.get(expr) {
            return Some(cron.clone());
        }
        let cron = Arc::new(parse(expr).ok()?);
        crons.insert(expr.to_owned(), cron.clone());
        Some(cron)
    }

    /// Queues the runs that are due; returns how many this call claimed.
    pub async fn tick(&self, app: &App) -> Result<usize, db::Error> {
        let now = self.now_ms();
        let scheduled: HashMap<String, Vec<(String, String)>> = app
            .runtime
            .loaded_plugins()
            .into_iter()
            .filter(|p| !p.manifest.schedules.is_empty())
            .map(|p| {
                let schedules = p
                    .manifest
                    .schedules
                    .iter()
                    .map(|s| (s.name.clone(), s.cron.clone()))
                    .collect();
                (p.manifest.plugin.name.clone(), schedules)
            })
            .collect();
        if scheduled.is_empty() {
            return Ok(0);
        }
        let mut tx = app.db.begin(Scope::Platform, Mode::Read).await?;
        let enabled: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT tenant_id, plugin, updated_at FROM tenant_plugins WHERE enabled = 1",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut queued = 0;
        for (tenant, plugin, since) in enabled {
            let Some(schedules) = scheduled.get(&plugin) else {
                continue;
            };
            let tenant = TenantId::from_raw(tenant);
            for (name, expr) in schedules {
                let Some(due) = self.cron(expr).and_then(|c| latest_due(&c, now)) else {
                    continue;
                };
                if due < since {
                    continue;
                }
                let key = (tenant.clone(), plugin.clone(), name.clone());
                if self
                    .claimed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    == Some(&due)
                {
                    continue;
                }
                if claim(app, &tenant, &plugin, name, due).await? {
                    queued += 1;
                }
                self.claimed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, due);
            }
        }
        if queued > 0 {
            app.events.wake();
        }
        Ok(queued)
    }

    /// The tenant's schedules with their last and next runs.
    pub async fn list(
        &self,
        app: &App,
        tenant: &TenantId,
    ) -> Result<Vec<ScheduleView>, crate::catalog::Error> {
        let now = self.now_ms();
        let enabled = app.catalog.tenant_plugins(tenant).await?;
        let mut out = Vec::new();
        for tp in enabled.into_iter().filter(|tp| tp.enabled) {
            let Some(plugin) = app.runtime.plugin(&tp.plugin) else {
                continue;
            };
            for schedule in &plugin.manifest.schedules {
                out.push(ScheduleView {
                    plugin: tp.plugin.clone(),
                    schedule: schedule.name.clone(),
                    cron: schedule.cron.clone(),
                    next_due_at: self.cron(&schedule.cron).and_then(|c| next_due(&c, now)),
                    last_run: crate::events::last_schedule_run(
                        &app.db,
                        tenant,
                        &tp.plugin,
                        &schedule.name,
                    )
                    .await?,
                });
            }
        }
        Ok(out)
    }

    /// Starts the tick loop (and the periodic pruning of old deliveries).
    pub fn spawn(app: &Arc<App>) {
        let weak = Arc::downgrade(app);
        let config = app.config.events.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(std::time::Duration::from_millis(config.schedule_tick_ms));
            let mut last_prune = std::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(app) = weak.upgrade() else { break };
                if let Err(err) = app.scheduler.tick(&app).await {
                    tracing::warn!(error = %err, "scheduler tick failed");
                }
                if last_prune.elapsed() >= std::time::Duration::from_secs(600) {
                    last_prune = std::time::Instant::now();
                    let retention =
                        i64::try_from(config.retention_hours * 3_600_000).unwrap_or(i64::MAX / 2);
                    if let Err(err) = crate::events::dispatch::prune(&app, retention).await {
                        tracing::warn!(error = %err, "pruning deliveries failed");
                    }
                }
            }
        });
    }
}

/// Inserts the run of `schedule` due at `due`, unless some process already
/// did; true if this call inserted it.
async fn claim(
    app: &App,
    tenant: &TenantId,
    plugin: &str,
    schedule: &str,
    due: i64,
) -> Result<bool, db::Error> {
    let now = now_ms();
    let mut tx = app.db.begin(Scope::Tenant(tenant), Mode::Write).await?;
    let inserted = sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, subscriber, kind, schedule, due_at, state, attempts, \
         next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'schedule', $4, $5, 'pending', 0, $6, $6, $6) ON CONFLICT DO NOTHING",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(tenant.as_str())
    .bind(plugin)
    .bind(schedule)
    .bind(due)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(inserted.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn five_and_six_field_expressions_parse() {
        assert!(parse("0 6 * * *").is_ok());
        assert!(parse("*/10 * * * * *").is_ok());
        assert!(parse("61 * * * *").is_err());
        assert!(parse("every day").is_err());
    }

    #[test]
    fn latest_and_next_due_bracket_now() {
        let daily = parse("0 6 * * *").expect("cron");
        // 2026-11-25T10:30:00Z
        let now = 1_795_516_200_000;
        let latest = latest_due(&daily, now).expect("latest");
        let next = next_due(&daily, now).expect("next");
        assert_eq!(next - latest, 24 * 60 * MIN);
        assert!(latest <= now && now < next);
        assert_eq!(latest % (60 * MIN), 6 * 60 * MIN % (60 * MIN));
        // A due time itself is the latest due at that instant.
        assert_eq!(latest_due(&daily, latest), Some(latest));
    }
}
