//! The scheduler: the runs of plugin manifests' cron jobs, queued once per
//! due time for every tenant that enabled the plugin, whatever the number
//! of replicas.
//!
//! Each tick computes, per (tenant, plugin, schedule), the latest due time
//! at or before now and inserts one schedule delivery for it; the unique
//! index on (tenant, plugin, schedule, due time) makes that insert the claim
//! (`ON CONFLICT DO NOTHING`). After downtime only the latest missed due
//! time is inserted: at most one catch-up run. Due times before the plugin
//! was enabled are not owed. The runs go through the delivery queue
//! ([`super::delivery`]: retries, dead letters, replay).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use croner::Cron;
use serde::Serialize;

use crate::app::App;
use crate::db::{self, Mode, Scope};
use crate::events::DeliveryView;
use crate::ids::{TenantId, now_ms};
use crate::schedules::{Clock, SystemClock, latest_due, next_due, parse};

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
                    if let Err(err) = super::delivery::prune(&app, retention).await {
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
