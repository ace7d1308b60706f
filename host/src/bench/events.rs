//! Events end to end between two plugins: the `publisher` test plugin
//! publishes over HTTP (50 events per call, 8 connections), the host
//! delivers each to the `subscriber` test plugin's `on-event` (a kv write
//! per event, committed with the delivery's done mark), on SQLite or, with
//! `--postgres`, PostgreSQL.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use super::{BenchServer, http, percentiles};
use crate::db::{Mode, Scope};

const PER_CALL: usize = 50;
const CONNECTIONS: usize = 8;

/// Event deliveries done so far.
async fn done(server: &BenchServer) -> anyhow::Result<i64> {
    let mut tx = server.app.db.begin(Scope::Platform, Mode::Read).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE kind = 'event' AND state = 'done'",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Publishes about `events` events and waits until all are delivered.
pub async fn run(events: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    let server = BenchServer::start_on(2, true, postgres)?;
    let engine = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    server.install_test_plugin("publisher").await?;
    server.install_test_plugin("subscriber").await?;
    let calls = events.div_ceil(PER_CALL).max(CONNECTIONS);
    let total = calls.div_ceil(CONNECTIONS) * CONNECTIONS * PER_CALL;

    let started = Instant::now();
    let mut publishers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (addr, key) = (server.addr, server.key.clone());
        publishers.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(addr).await?;
            let body = json!({"topic": "test.ping", "count": PER_CALL});
            for _ in 0..calls.div_ceil(CONNECTIONS) {
                conn.json(
                    Method::POST,
                    "/t/bench/p/publisher/publish",
                    Some(&key),
                    Some(&body),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for p in publishers {
        p.await??;
    }
    let published = started.elapsed();
    let done_when_published = done(&server).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while done(&server).await? < total as i64 {
        if Instant::now() > deadline {
            let mut tx = server.app.db.begin(Scope::Platform, Mode::Read).await?;
            let states: Vec<(String, i64)> = sqlx::query_as(
                "SELECT state, COUNT(*) FROM deliveries WHERE kind = 'event' GROUP BY state",
            )
            .fetch_all(&mut *tx)
            .await?;
            anyhow::bail!("deliveries stalled: {states:?} of {total}");
        }
        // Counting is a scan of the queue: not too often, or the bench
        // itself slows the deliveries down.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = started.elapsed();

    // Publish-to-done lag of every delivery, from the queue's own clocks.
    let mut tx = server.app.db.begin(Scope::Platform, Mode::Read).await?;
    let lags: Vec<i64> = sqlx::query_scalar(
        "SELECT d.updated_at - e.created_at FROM deliveries d JOIN events e ON e.id = d.event_id \
         WHERE d.kind = 'event' AND d.state = 'done'",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let lag = percentiles(lags.into_iter().map(|ms| ms.max(0) as u64 * 1000).collect());

    let end_to_end = total as f64 / delivered.as_secs_f64();
    let backlog = total as f64 - done_when_published as f64;
    let drain = backlog / (delivered - published).as_secs_f64().max(1e-6);
    println!(
        "\n## events, publisher → subscriber ({total} events, {PER_CALL} per publish call, {CONNECTIONS} connections, {engine})\n"
    );
    println!("| figure | result |");
    println!("|---|---:|");
    println!(
        "| published | {:.0} events/s ({:.1} s) |",
        total as f64 / published.as_secs_f64(),
        published.as_secs_f64()
    );
    println!(
        "| delivered end to end (first publish → last done) | {end_to_end:.0} events/s ({:.1} s) |",
        delivered.as_secs_f64()
    );
    println!("| delivered from the backlog after publishing ended | {drain:.0} events/s |");
    println!(
        "| publish → done lag | p50 {:.0} ms, p99 {:.0} ms |",
        lag.p50 / 1000.0,
        lag.p99 / 1000.0
    );
    println!(
        "RESULT events_total={total} delivered_per_s={end_to_end:.0} backlog_drain_per_s={drain:.0} lag_p50_ms={:.0} lag_p99_ms={:.0}",
        lag.p50 / 1000.0,
        lag.p99 / 1000.0
    );
    Ok(())
}
