//! SIGKILL the real `weft` binary in the middle of a stream of calls: every
//! call that was answered 200 has its usage event after the restart, and no
//! call is counted twice.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::common::{self, Engine};

/// Starts `weft serve` seeded with the demo tenant; returns the child, its
/// base URL and the demo API key read from its first-run banner.
fn spawn_weft(data_dir: &std::path::Path, database_url: &str) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("serve")
        .env("WEFT_DATA_DIR", data_dir)
        .env("WEFT_BIND", "127.0.0.1:0")
        .env("WEFT_DATABASE_URL", database_url)
        .env("WEFT_SEED_DEMO", "true")
        .env("WEFT_METERING_DURABLE_ACK", "true")
        .env("WEFT_LOG", "warn")
        .env("WEFT_CONFIG", data_dir.join("none.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weft");
    let stdout = child.stdout.take().expect("stdout");
    let mut key = String::new();
    let mut base = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(k) = line.trim().strip_prefix("API key") {
            key = k.trim().to_owned();
        }
        if let Some(addr) = line.strip_prefix("weft listening on ") {
            base = addr.trim().to_owned();
            break;
        }
    }
    assert!(
        !base.is_empty() && key.starts_with("wft_"),
        "weft did not start (base {base:?}, key {key:?})"
    );
    (child, base, key)
}

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
    let (mut child, base, key) = tokio::task::spawn_blocking({
        let (d, u) = (dir.path().to_path_buf(), url.clone());
        move || spawn_weft(&d, &u)
    })
    .await
    .expect("spawn");

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
    let (mut child, base, _) = tokio::task::spawn_blocking({
        let (d, u) = (dir.path().to_path_buf(), url.clone());
        move || {
            // The demo is seeded once: the second start prints no key.
            let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
                .arg("serve")
                .env("WEFT_DATA_DIR", &d)
                .env("WEFT_BIND", "127.0.0.1:0")
                .env("WEFT_DATABASE_URL", &u)
                .env("WEFT_LOG", "warn")
                .env("WEFT_CONFIG", d.join("none.toml"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("respawn");
            let stdout = child.stdout.take().expect("stdout");
            let base = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.strip_prefix("weft listening on ")
                        .map(|a| a.trim().to_owned())
                })
                .expect("restarted");
            (child, base, ())
        }
    })
    .await
    .expect("respawn");
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
