//! SIGKILL the real `weft` binary in the middle of a stream of calls: every
//! call that was answered 200 has its usage event after the restart, and no
//! call is counted twice. And in the middle of a stream of events between
//! two plugins: every event of an answered publish is delivered after the
//! restart, and none is applied twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::common::{self, Engine};

/// A data dir and a database for one test: SQLite in the dir, or a new
/// PostgreSQL database (`None`: PostgreSQL is unreachable outside CI).
async fn scratch(engine: Engine) -> Option<(tempfile::TempDir, Option<common::PgDb>, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(common::create_pg_db().await?),
    };
    let url = database_url(dir.path(), pg.as_ref());
    Some((dir, pg, url))
}

/// The demo API key a first start printed.
fn demo_key(printed: &[String]) -> String {
    printed
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("API key")
                .map(|k| k.trim().to_owned())
        })
        .expect("the first start prints the demo API key")
}

/// Module `$name` with tests `sqlite` and `postgres`, each running `$test`.
macro_rules! on_both_engines {
    ($name:ident, $test:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $test(Engine::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $test(Engine::Postgres).await;
            }
        }
    };
}

/// The server's database: the given PostgreSQL one, or SQLite in `dir`.
fn database_url(dir: &std::path::Path, pg: Option<&common::PgDb>) -> String {
    pg.map(common::PgDb::url)
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("weft.db").display()))
}

async fn kill_mid_stream(engine: Engine) {
    let Some((dir, pg, url)) = scratch(engine).await else {
        return;
    };
    let (mut child, base, printed) = common::spawn_serve(
        dir.path(),
        &[
            ("WEFT_DATABASE_URL", &url),
            ("WEFT_SEED_DEMO", "true"),
            ("WEFT_METERING_DURABLE_ACK", "true"),
        ],
    )
    .await;
    let key = demo_key(&printed);

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
    // Kill once the stream is well under way, however slow the machine.
    let under_way = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").len() < 200 && std::time::Instant::now() < under_way {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

on_both_engines!(sigkill_loses_no_acknowledged_usage, kill_mid_stream);

/// Runs the `weft` CLI on the data in `dir`, asserting success.
fn cli(dir: &std::path::Path, url: &str, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_DATA_DIR", dir)
        .env("WEFT_CONFIG", dir.join("none.toml"))
        .env("WEFT_DATABASE_URL", url)
        .env("WEFT_LOG", "warn")
        .env("WEFT_SEED_DEMO", "false")
        .output()
        .expect("run weft");
    assert!(
        out.status.success(),
        "weft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pending deliveries in the database (read with the server down).
async fn pending_deliveries(url: &str) -> i64 {
    let db = weft::db::Db::connect(url).await.expect("db");
    let mut tx = db
        .begin(weft::db::Scope::Platform, weft::db::Mode::Read)
        .await
        .expect("tx");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    drop(tx);
    db.pool().close().await;
    n
}

async fn kill_mid_event_stream(engine: Engine) {
    let Some((dir, pg, url)) = scratch(engine).await else {
        return;
    };
    cli(dir.path(), &url, &["migrate"]);
    for name in ["publisher", "subscriber"] {
        let (_, manifest, component) = weft::bundled::TEST_PLUGINS
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("test plugin");
        cli(
            dir.path(),
            &url,
            &["plugin", "install", manifest, component],
        );
    }
    // Few delivery workers, so a backlog builds up behind the publishers;
    // a short lease, so what the killed process had claimed is due again
    // soon after the restart.
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "[events]\nconcurrency = 2\nbatch_size = 4\nlease_ms = 1500\npoll_ms = 50\n",
    )
    .expect("config");
    let config = config.display().to_string();
    let env = [
        ("WEFT_DATABASE_URL", url.as_str()),
        ("WEFT_CONFIG", config.as_str()),
    ];
    let mut first = env.to_vec();
    first.push(("WEFT_SEED_DEMO", "true"));
    let (mut child, base, printed) = common::spawn_serve(dir.path(), &first).await;
    let key = demo_key(&printed);
    let client = reqwest::Client::new();
    // The demo forum comes with a category to post in.
    let categories: serde_json::Value = client
        .get(format!("{base}/t/demo/p/forum/categories"))
        .send()
        .await
        .expect("categories")
        .json()
        .await
        .expect("json");
    assert_eq!(categories["categories"][0]["id"], "general", "{categories}");
    for name in ["publisher", "subscriber"] {
        let resp = client
            .put(format!("{base}/v1/tenants/demo/plugins/{name}"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"enabled": true}))
            .send()
            .await
            .expect("enable");
        assert!(
            resp.status().is_success(),
            "enable {name}: {}",
            resp.status()
        );
    }

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, base, key, acknowledged) = (
            client.clone(),
            base.clone(),
            key.clone(),
            acknowledged.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let sent = client
                    .post(format!("{base}/t/demo/p/publisher/publish"))
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"topic": "test.ping", "count": 5}))
                    .send()
                    .await;
                let body: serde_json::Value = match sent {
                    Ok(resp) if resp.status().is_success() => match resp.json().await {
                        Ok(body) => body,
                        Err(_) => break, // killed while answering
                    },
                    Ok(resp) => panic!("unexpected status {}", resp.status()),
                    Err(_) => break, // the server is gone
                };
                let ids = body["ids"].as_array().cloned().unwrap_or_default();
                acknowledged
                    .lock()
                    .expect("lock")
                    .extend(ids.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            }
        }));
    }
    // Kill once the stream is well under way, however slow the machine.
    let under_way = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").len() < 200 && std::time::Instant::now() < under_way {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    for w in workers {
        w.await.expect("worker");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 200,
        "the stream was under way when killed ({} events)",
        acknowledged.len()
    );
    let backlog = pending_deliveries(&url).await;
    assert!(
        backlog > 0,
        "deliveries were still owed when the server died"
    );

    // Restart: the backlog and what the dead process had claimed are
    // delivered; each event is applied once.
    let (mut child, base, _) = common::spawn_serve(dir.path(), &env).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let applied = loop {
        let body: serde_json::Value = client
            .get(format!("{base}/t/demo/p/subscriber/applied"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("applied")
            .json()
            .await
            .expect("json");
        let entries = body["entries"].as_object().cloned().unwrap_or_default();
        let all_in = acknowledged.iter().all(|id| entries.contains_key(id));
        if all_in {
            let pending: serde_json::Value = client
                .get(format!("{base}/v1/tenants/demo/deliveries?state=pending"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("pending")
                .json()
                .await
                .expect("json");
            if pending["deliveries"].as_array().is_some_and(Vec::is_empty) {
                break entries;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} acknowledged events delivered after the restart",
            acknowledged
                .iter()
                .filter(|id| entries.contains_key(*id))
                .count(),
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().expect("stop");
    child.wait().expect("reap");
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "events applied more than once: {twice:?}");
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}

on_both_engines!(
    sigkill_loses_no_event_and_applies_none_twice,
    kill_mid_event_stream
);

/// Search writes are durable when their call is: a post the forum indexed
/// but the index never committed (the server died first) is found after
/// the restart, replayed from the journal.
async fn search_survives_a_crash(engine: Engine) {
    let Some((dir, pg, url)) = scratch(engine).await else {
        return;
    };
    // The index commits only every ten minutes: nothing reaches it before the kill.
    let config = dir.path().join("slow-index.toml");
    std::fs::write(&config, "[search]\ncommit_interval_ms = 600000\n").expect("config");
    let config = config.display().to_string();
    let (mut child, base, printed) = common::spawn_serve(
        dir.path(),
        &[
            ("WEFT_DATABASE_URL", url.as_str()),
            ("WEFT_CONFIG", config.as_str()),
            ("WEFT_SEED_DEMO", "true"),
        ],
    )
    .await;
    let key = demo_key(&printed);
    let client = reqwest::Client::new();
    let forum = format!("{base}/t/demo/p/forum");
    let created = client
        .post(format!("{forum}/topics"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"category": "general", "title": "Durable words", "body": "the zanzibar shipment"}))
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let search = |base: String| {
        let client = client.clone();
        async move {
            let found: serde_json::Value = client
                .get(format!("{base}/t/demo/p/forum/search?q=zanzibar"))
                .send()
                .await
                .expect("search")
                .json()
                .await
                .expect("json");
            found["total"].as_u64().unwrap_or(0)
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(search(base.clone()).await, 0, "not in the index yet");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let (mut child, base, _) =
        common::spawn_serve(dir.path(), &[("WEFT_DATABASE_URL", url.as_str())]).await;
    assert_eq!(
        search(base).await,
        1,
        "replayed from the journal at start-up"
    );
    child.kill().expect("stop");
    child.wait().expect("reap");
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}

on_both_engines!(search_survives_a_crash, search_survives_a_crash);
