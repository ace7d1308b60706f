//! SIGKILL the real `weft` binary in the middle of a stream of calls: every
//! call that was answered 200 has its usage event after the restart, and no
//! call is counted twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::common::{self, Engine};

async fn kill_mid_stream(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => match common::create_pg_db().await {
            Some(pg) => Some(pg),
            None => return,
        },
    };
    let url = pg
        .as_ref()
        .map(common::PgDb::url)
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("weft.db").display()));
    let (mut child, base, printed) = common::spawn_serve(
        dir.path(),
        &[
            ("WEFT_DATABASE_URL", &url),
            ("WEFT_SEED_DEMO", "true"),
            ("WEFT_METERING_DURABLE_ACK", "true"),
        ],
    )
    .await;
    let key = printed
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("API key")
                .map(|k| k.trim().to_owned())
        })
        .expect("the first start prints the demo API key");

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, base, key, acknowledged) = (
            client.clone(),
            base.clone(),
            key.clone(),
            acknowledged.clone(),
        );
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("crash-{w}-{i}");
                let sent = client
                    .post(format!("{base}/t/demo/p/hello/counter/increment"))
                    .bearer_auth(&key)
                    .header("x-request-id", &id)
                    .json(&serde_json::json!({}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => {
                        acknowledged.lock().expect("lock").push(id)
                    }
                    Ok(resp) => panic!("unexpected status {}", resp.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    child.wait().expect("reap");
    for w in workers {
        w.await.expect("worker");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 20,
        "the stream was under way when killed ({} calls)",
        acknowledged.len()
    );

    // Restart on the same data: the server comes up and serves again.
    // The demo is seeded once: the second start prints no key.
    let (mut child, base, _) =
        common::spawn_serve(dir.path(), &[("WEFT_DATABASE_URL", &url)]).await;
    let health = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert!(health.status().is_success());
    child.kill().expect("stop");
    child.wait().expect("reap");

    let db = weft::db::Db::connect(&url).await.expect("db");
    let mut tx = db
        .begin(weft::db::Scope::Platform, weft::db::Mode::Read)
        .await
        .expect("tx");
    let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(
        "SELECT request_id, COUNT(*) FROM usage_events WHERE plugin = 'hello' GROUP BY request_id"
            .to_owned(),
    ))
    .fetch_all(&mut *tx)
    .await
    .expect("events");
    drop(tx);
    db.pool().close().await;
    let recorded: HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        rows.iter().all(|(_, n)| *n == 1),
        "a call was metered twice"
    );
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !recorded.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged calls lost their usage event, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_usage_sqlite() {
    kill_mid_stream(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_usage_postgres() {
    kill_mid_stream(Engine::Postgres).await;
}
