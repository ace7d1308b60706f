//! The forum plugin through HTTP, on SQLite (or PostgreSQL with
//! `--postgres`): replies created per second
//! (spread over 200 topics, one API key — one member — per connection);
//! then, with the forum filled to `--forum-posts` posts, search latency
//! through `GET /search` (auth, the plugin, the search import, snippets,
//! JSON), and a full rebuild of the index through `POST /admin/reindex`
//! (batches of 200 posts chained by events).

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use super::text::Text;
use super::{BenchArgs, BenchServer, http, load_with, percentiles};
use crate::db::{Mode, Scope};
use crate::tenancy::Role;

const TOPICS: usize = 200;
const F: &str = "/t/bench/p/forum";

/// The body of reply `i` of connection `c`: 60 words of its own.
fn reply_body(c: usize, i: usize) -> Value {
    let mut text = Text::nth((c as u64) << 32 | i as u64);
    json!({ "body": text.words(60) })
}

/// Search writes not yet committed to the index.
async fn journal_backlog(server: &BenchServer) -> anyhow::Result<i64> {
    let mut tx = server.app.db.begin(Scope::Platform, Mode::Read).await?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_journal")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// Writes `count` replies over `keys.len()` connections, round-robin over
/// `topics`.
async fn fill(
    server: &BenchServer,
    keys: &[String],
    topics: &[String],
    count: usize,
) -> anyhow::Result<()> {
    let per_conn = count.div_ceil(keys.len().max(1));
    let mut tasks = Vec::new();
    for (c, key) in keys.iter().enumerate() {
        let (addr, key, topics) = (server.addr, key.clone(), topics.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(addr).await?;
            for i in 0..per_conn {
                let topic = &topics[(c * 7 + i) % topics.len()];
                let body = reply_body(c + 1000, i);
                conn.json(
                    Method::POST,
                    &format!("{F}/topics/{topic}/posts"),
                    Some(&key),
                    Some(&body),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Runs the forum phase.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let server = BenchServer::start_on(2, true, args.postgres.as_deref())?;
    let engine = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    server.enable("forum").await?;
    let admin = server.key(Role::Admin).await?;
    let mut conn = http::Conn::open(server.addr).await?;
    conn.json(
        Method::POST,
        &format!("{F}/categories"),
        Some(&admin),
        Some(&json!({"name": "General"})),
    )
    .await?;
    let mut text = Text::new();
    let mut topics = Vec::with_capacity(TOPICS);
    for _ in 0..TOPICS {
        let created = conn
            .json(
                Method::POST,
                &format!("{F}/topics"),
                Some(&admin),
                Some(
                    &json!({"category": "general", "title": text.words(6), "body": text.words(60)}),
                ),
            )
            .await?;
        let id = created["topic"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        topics.push(id);
    }
    let mut keys = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        keys.push(server.key(Role::User).await?);
    }

    // Replies per second.
    let (plan_topics, plan_keys) = (topics.clone(), keys.clone());
    let (rate, p, errors) = load_with(
        server.addr,
        args.connections,
        Duration::from_secs(args.duration),
        move |c, i| {
            let topic = &plan_topics[(c * 13 + i) % plan_topics.len()];
            (
                Method::POST,
                format!("{F}/topics/{topic}/posts"),
                Some(plan_keys[c].clone()),
                Some(reply_body(c, i)),
            )
        },
    )
    .await?;
    let written = (rate * args.duration as f64) as usize;
    println!(
        "\n## forum through HTTP ({engine}, {} connections, one member each, {TOPICS} topics)\n",
        args.connections
    );
    println!("| figure | result |");
    println!("|---|---:|");
    println!(
        "| replies created | {rate:.0} posts/s, p50 {:.2} ms, p99 {:.2} ms, {errors} non-2xx |",
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );
    println!(
        "RESULT forum_posts_per_s={rate:.0} p50_ms={:.3} p99_ms={:.3} errors={errors}",
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );

    // Fill the forum, then search it.
    let total = args.forum_posts;
    let so_far = TOPICS + written;
    let started = Instant::now();
    if total > so_far {
        fill(&server, &keys, &topics, total - so_far).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while journal_backlog(&server).await? > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the search index did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ingest = started.elapsed().as_secs_f64();
    let tenant = server.tenant().await?;
    let owner = crate::storage::Owner {
        tenant: &tenant,
        plugin: "forum",
    };
    let indexed = server
        .app
        .search
        .search(
            owner,
            "posts",
            &crate::search::SearchRequest {
                limit: 1,
                ..Default::default()
            },
        )?
        .total;

    let queries = [
        "rust%20error",
        "async%20runtime%20memory",
        "%22component%20interface%22",
        "plugin%20AND%20tenant",
        "linker",
        "cargo%20crate%20module",
    ];
    let mut times = Vec::new();
    for round in 0..200 {
        for q in queries {
            let path = match round % 3 {
                0 => format!("{F}/search?q={q}&limit=20"),
                n => format!("{F}/search?q={q}&limit=20&cursor={}", n * 20),
            };
            let t = Instant::now();
            let found = conn.json(Method::GET, &path, None, None).await?;
            times.push(t.elapsed().as_micros() as u64);
            anyhow::ensure!(
                found["total"].as_u64().unwrap_or(0) > 0,
                "{q} found nothing"
            );
        }
    }
    let q = percentiles(times);
    println!(
        "| posts written to fill the forum, until all indexed | {} posts in {ingest:.1} s ({:.0} posts/s) |",
        total.saturating_sub(so_far),
        total.saturating_sub(so_far) as f64 / ingest
    );
    println!(
        "| search over {indexed} posts, `GET /search` top 20 with snippets | p50 {:.2} ms, p99 {:.2} ms |",
        q.p50 / 1000.0,
        q.p99 / 1000.0
    );

    // Rebuild the index from the posts.
    let started = Instant::now();
    let job = conn
        .json(
            Method::POST,
            &format!("{F}/admin/reindex"),
            Some(&admin),
            None,
        )
        .await?;
    let generation = job["generation"].clone();
    let processed = loop {
        let status = conn
            .json(
                Method::GET,
                &format!("{F}/admin/reindex"),
                Some(&admin),
                None,
            )
            .await?;
        let job = &status["reindex"];
        if job["generation"] == generation && !job["finished_at"].is_null() {
            break job["processed"].as_u64().unwrap_or(0);
        }
        anyhow::ensure!(Instant::now() < deadline, "the reindex did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while journal_backlog(&server).await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rebuild = started.elapsed().as_secs_f64();
    println!(
        "| full reindex through the plugin (`POST /admin/reindex`) | {processed} posts in {rebuild:.1} s ({:.0} posts/s) |",
        processed as f64 / rebuild
    );
    println!(
        "RESULT forum_search_posts={indexed} search_p50_ms={:.3} search_p99_ms={:.3} reindex_s={rebuild:.1} fill_posts_per_s={:.0}",
        q.p50 / 1000.0,
        q.p99 / 1000.0,
        total.saturating_sub(so_far) as f64 / ingest
    );
    Ok(())
}
