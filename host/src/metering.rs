//! Usage metering: one event per plugin call, written in batches by a
//! single writer task (group commit) with an idempotency key, so a retry
//! never counts twice and — with `durable_ack` — a call is answered only
//! after its event is committed.

use serde::Serialize;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::config::MeteringConfig;
use crate::db::{self, Db};
use crate::ids::TenantId;

/// Why metering failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    /// The writer task has stopped (the server is shutting down).
    #[error("usage writer stopped")]
    WriterStopped,
    /// The batch holding this event failed to commit.
    #[error("usage batch failed to commit")]
    BatchFailed,
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one plugin call used.
#[derive(Debug, Clone, Serialize)]
pub struct UsageEvent {
    pub tenant: TenantId,
    /// Unique per tenant: the client's `Idempotency-Key`, or the request id.
    pub idempotency_key: String,
    pub plugin: String,
    pub version: String,
    pub fuel: u64,
    pub wall_us: u64,
    pub peak_memory: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `ok` or the error code of the call.
    pub outcome: String,
    pub request_id: String,
    pub occurred_at: i64,
}

type Ack = oneshot::Sender<Result<()>>;

/// Hands events to the writer task.
#[derive(Debug, Clone)]
pub struct Meter {
    sender: mpsc::Sender<(UsageEvent, Option<Ack>)>,
    durable_ack: bool,
}

/// Usage of one plugin on one day.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DailyUsage {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub plugin: String,
    pub calls: i64,
    pub errors: i64,
    pub fuel: i64,
    pub wall_us: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub peak_memory_max: i64,
}

const COLUMNS: usize = 12;

impl Meter {
    /// Starts the writer task over `db`.
    pub fn start(db: Db, config: &MeteringConfig) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(config.batch_size.max(1) * 8);
        let batch_size = config.batch_size.clamp(1, 2000);
        let handle = tokio::spawn(write_loop(db, receiver, batch_size));
        (
            Self {
                sender,
                durable_ack: config.durable_ack,
            },
            handle,
        )
    }

    /// Records `event`; with `durable_ack`, returns once it is committed.
    pub async fn record(&self, event: UsageEvent) -> Result<()> {
        if !self.durable_ack {
            return self
                .sender
                .send((event, None))
                .await
                .map_err(|_| Error::WriterStopped);
        }
        let (ack, done) = oneshot::channel();
        self.sender
            .send((event, Some(ack)))
            .await
            .map_err(|_| Error::WriterStopped)?;
        done.await.map_err(|_| Error::WriterStopped)?
    }
}

async fn write_loop(
    db: Db,
    mut receiver: mpsc::Receiver<(UsageEvent, Option<Ack>)>,
    batch_size: usize,
) {
    let mut batch = Vec::with_capacity(batch_size);
    // Waits for the first event, then takes whatever else is already queued:
    // under load batches grow by themselves, idle costs nothing.
    while receiver.recv_many(&mut batch, batch_size).await > 0 {
        let result = write_batch(&db, &batch).await;
        if let Err(err) = &result {
            tracing::error!(error = %err, events = batch.len(), "usage batch failed");
        }
        for (_, ack) in batch.drain(..) {
            if let Some(ack) = ack {
                let _ = ack.send(result.as_ref().map(|_| ()).map_err(|_| Error::BatchFailed));
            }
        }
    }
}

/// Rows per INSERT statement, largest first. A batch is written as a few
/// statements of these fixed sizes, so the driver's statement cache holds
/// them all and SQLite never resolves hundreds of parameters per statement
/// (its name lookup is linear in the parameter count).
const CHUNKS: [usize; 3] = [16, 4, 1];

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO usage_events (tenant_id, idempotency_key, plugin, version, fuel, wall_us, peak_memory, \
         bytes_in, bytes_out, outcome, request_id, occurred_at) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", i * COLUMNS + c + 1));
        }
        sql.push(')');
    }
    // A retried call carries the same key: the first event stands.
    sql.push_str(" ON CONFLICT (tenant_id, idempotency_key) DO NOTHING");
    sql
}

async fn write_batch(db: &Db, batch: &[(UsageEvent, Option<Ack>)]) -> Result<()> {
    let mut tx = db.begin(db::Scope::Platform, db::Mode::Write).await?;
    let events: Vec<&UsageEvent> = batch.iter().map(|(e, _)| e).collect();
    insert(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes `events` in `tx` (a retried call's repeat is ignored by its key).
/// Every tenant's events may be in one batch: use a platform-scoped
/// transaction, or one scoped to the events' only tenant.
pub async fn insert(tx: &mut impl db::Exec, events: &[&UsageEvent]) -> Result<()> {
    static SQL: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| CHUNKS.map(insert_sql));
    let mut rest = events;
    while !rest.is_empty() {
        let (i, rows) = CHUNKS
            .iter()
            .enumerate()
            .find(|(_, n)| **n <= rest.len())
            .unwrap_or((2, &1));
        let (chunk, tail) = rest.split_at(*rows);
        let mut query = db::Stmt::new(sql[i].as_str());
        for e in chunk {
            query = query
                .bind(e.tenant.as_str())
                .bind(&e.idempotency_key)
                .bind(&e.plugin)
                .bind(&e.version)
                .bind(saturating(e.fuel))
                .bind(saturating(e.wall_us))
                .bind(saturating(e.peak_memory))
                .bind(saturating(e.bytes_in))
                .bind(saturating(e.bytes_out))
                .bind(&e.outcome)
                .bind(&e.request_id)
                .bind(e.occurred_at);
        }
        tx.execute(query).await?;
        rest = tail;
    }
    Ok(())
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Usage of `tenant` by day and plugin for days in `[from_ms, to_ms)`.
pub async fn daily_usage(
    db: &Db,
    tenant: &TenantId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DailyUsage>> {
    let mut tx = db.begin(db::Scope::Tenant(tenant), db::Mode::Read).await?;
    let rows = sqlx::query(
        "SELECT occurred_at / 86400000 AS day, plugin, COUNT(*) AS calls, \
         CAST(SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS errors, CAST(SUM(fuel) AS BIGINT) AS fuel, \
         CAST(SUM(wall_us) AS BIGINT) AS wall_us, CAST(SUM(bytes_in) AS BIGINT) AS bytes_in, \
         CAST(SUM(bytes_out) AS BIGINT) AS bytes_out, MAX(peak_memory) AS peak_memory_max \
         FROM usage_events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
         GROUP BY occurred_at / 86400000, plugin ORDER BY 1, 2",
    )
    .bind(tenant.as_str())
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|row| {
            let day: i64 = row.try_get("day")?;
            Ok(DailyUsage {
                day: day_string(day),
                plugin: row.try_get("plugin")?,
                calls: row.try_get("calls")?,
                errors: row.try_get("errors")?,
                fuel: row.try_get("fuel")?,
                wall_us: row.try_get("wall_us")?,
                bytes_in: row.try_get("bytes_in")?,
                bytes_out: row.try_get("bytes_out")?,
                peak_memory_max: row.try_get("peak_memory_max")?,
            })
        })
        .collect()
}

fn day_string(day: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap_or_default()
}

/// Number of usage events for `tenant` (for tests and the admin view).
pub async fn event_count(db: &Db, tenant: &TenantId) -> Result<i64> {
    let mut tx = db.begin(db::Scope::Tenant(tenant), db::Mode::Read).await?;
    let n = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM usage_events WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_format_as_dates() {
        assert_eq!(super::day_string(0), "1970-01-01");
        assert_eq!(super::day_string(20_000), "2024-10-04");
    }
}
