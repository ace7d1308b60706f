//! SIGKILL the real `weft` binary in the middle of a batch send to a list
//! of 10,000: after the restart every subscriber's email is queued exactly
//! once and reaches the SMTP sink.
//!
//! Each chunk's outbox rows commit with its progress mark and the event
//! delivery's done mark, so a chunk the kill interrupted is redone whole
//! and one that committed is not redone. Delivery itself is at least
//! once: an email the outbox worker had handed to SMTP when the process
//! died (accepted, but not yet recorded as sent) is sent again after the
//! lease runs out. That resend carries the same `Message-ID` (the plugin
//! derives it from the outbox key), which the test checks for every
//! address the sink saw twice, and counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::AssertSqlSafe;

use crate::common::{self, Engine};

const SUBSCRIBERS: usize = 10_000;
/// Rows per import call: an import holds the write lock while it writes,
/// and smaller calls stay under the write-hold cap on a loaded machine.
const PER_IMPORT: usize = 500;

async fn kill_mid_batch(engine: Engine) {
    common::install_tls();
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
    let smtp = weft_msg_wire::FakeSmtp::start().await;
    let addr = smtp.addr();
    // Short leases, so what the killed process had claimed (a chunk's
    // event, messages in flight) is due again soon after the restart;
    // no rate limit in the way of 10,000 emails.
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        format!(
            "[events]\nlease_ms = 1500\npoll_ms = 50\n\n\
             [messaging]\npoll_ms = 50\nlease_ms = 2000\nconcurrency = 32\nbatch_size = 128\n\n\
             [messaging.email]\nprovider = \"smtp\"\nhost = \"{}\"\nport = {}\ntls = \"none\"\nfrom = \"News <news@crash.example>\"\n\n\
             [messaging.limits.email]\nper_minute = 1000000\nper_day = 1000000\n",
            addr.ip(),
            addr.port()
        ),
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
    let key = printed
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("API key")
                .map(|k| k.trim().to_owned())
        })
        .expect("the first start prints the demo API key");
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}/t/demo/p/messaging{path}"))
            .bearer_auth(&key)
    };

    // The demo tenant has every bundled plugin enabled, messaging too.
    let resp = call(reqwest::Method::POST, "/lists")
        .json(&serde_json::json!({"id": "all", "name": "Everyone", "double_opt_in": false}))
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let resp = call(reqwest::Method::PUT, "/templates/news")
        .json(
            &serde_json::json!({"variants": {"en": {"subject": "News for {{ subscriber.name }}",
            "html": "<p>Hello {{ subscriber.name }}, here is issue {{ issue }}.</p>"}}}),
        )
        .send()
        .await
        .expect("template");
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    for chunk in 0..SUBSCRIBERS / PER_IMPORT {
        let mut csv = String::from("email,name\n");
        for i in chunk * PER_IMPORT..(chunk + 1) * PER_IMPORT {
            csv.push_str(&format!("reader{i:05}@crash.example,Reader {i}\n"));
        }
        let resp = call(reqwest::Method::POST, "/lists/all/import")
            .body(csv)
            .send()
            .await
            .expect("import");
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    }

    let resp = call(reqwest::Method::POST, "/lists/all/sends")
        .json(&serde_json::json!({"template": "news", "data": {"issue": 1}}))
        .send()
        .await
        .expect("batch");
    assert_eq!(resp.status(), 202);
    let batch: serde_json::Value = resp.json().await.expect("json");
    let id = batch["id"].as_str().expect("id").to_owned();
    assert_eq!(batch["total"], SUBSCRIBERS);
    let progress = |base: String| {
        let (client, key, id) = (client.clone(), key.clone(), id.clone());
        async move {
            let b: serde_json::Value = client
                .get(format!("{base}/t/demo/p/messaging/batches/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("progress")
                .json()
                .await
                .expect("json");
            b
        }
    };
    // Kill once the batch is well under way, however slow the machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before_kill = loop {
        let b = progress(base.clone()).await;
        if b["queued"].as_i64().unwrap_or(0) >= 2_000 || Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_eq!(
        before_kill["state"], "running",
        "killed during the batch: {before_kill}"
    );
    let delivered_before = smtp.accepted_count();

    let (mut child, base, _) = common::spawn_serve(dir.path(), &env).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let b = progress(base.clone()).await;
        let distinct: std::collections::HashSet<String> = smtp
            .accepted()
            .into_iter()
            .flat_map(|m| m.rcpt_to)
            .collect();
        if b["state"] == "done" && distinct.len() >= SUBSCRIBERS {
            assert_eq!(b["queued"], SUBSCRIBERS, "{b}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart: batch {b}, {} distinct addresses at the sink",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().expect("stop");
    child.wait().expect("reap");

    // Queued exactly once: one outbox row per subscriber.
    let db = weft::db::Db::connect(&url).await.expect("db");
    let mut tx = db
        .begin(weft::db::Scope::Platform, weft::db::Mode::Read)
        .await
        .expect("tx");
    let (rows, recipients, keys): (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(
        "SELECT COUNT(*), COUNT(DISTINCT recipient), COUNT(DISTINCT idempotency_key) FROM outbox_messages \
         WHERE plugin = 'messaging' AND idempotency_key LIKE 'batch:%'"
            .to_owned(),
    ))
    .fetch_one(&mut *tx)
    .await
    .expect("count");
    drop(tx);
    db.pool().close().await;
    assert_eq!(
        (rows, recipients, keys),
        (SUBSCRIBERS as i64, SUBSCRIBERS as i64, SUBSCRIBERS as i64)
    );

    // Delivered: every address; a repeat (in flight at the kill) is the
    // same message.
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    for m in smtp.accepted() {
        let message_id = m.header("Message-ID").unwrap_or_default();
        for r in m.rcpt_to {
            ids.entry(r).or_default().push(message_id.clone());
        }
    }
    assert_eq!(ids.len(), SUBSCRIBERS);
    let repeated: Vec<_> = ids.iter().filter(|(_, v)| v.len() > 1).collect();
    for (address, seen) in &repeated {
        assert!(
            seen.iter().all(|id| id == &seen[0]),
            "{address} got two different messages: {seen:?}"
        );
    }
    eprintln!(
        "{engine:?}: killed at {} queued / {delivered_before} delivered; {} addresses were sent their (same) email twice",
        before_kill["queued"],
        repeated.len()
    );
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_batch_of_10000_sqlite() {
    kill_mid_batch(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_batch_of_10000_postgres() {
    kill_mid_batch(Engine::Postgres).await;
}
