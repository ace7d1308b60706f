//! `weft bench`: the figures BENCHMARKS.md records, measured in-process on
//! loopback. Every phase starts a real server (SQLite in a temp dir, the
//! bundled `hello` plugin) and drives it over HTTP/1.1 keep-alive, like wrk.
//!
//! Phases: hello calls/s and latency through the full path (API-key auth,
//! plugin call, durable metering) with the server on 1 and on 2 worker
//! threads; per-call instantiate (and instantiate + call) time; load time of
//! a precompiled plugin; RSS per idle tenant with 1,000 tenants enabling
//! `hello`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::app::App;
use crate::capabilities::{Binding, types};
use crate::config::Config;
use crate::tenancy::Role;

/// Knobs of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds of load per HTTP phase.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Tenants for the memory phase.
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// Instantiations measured.
    #[arg(long, default_value_t = 5000)]
    pub instantiations: usize,
    /// Also run the HTTP phases with usage events acknowledged before
    /// commit (metering.durable_ack = false).
    #[arg(long)]
    pub async_metering: bool,
    /// Posts in the search phase (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub search_posts: usize,
}

struct Percentiles {
    p50: f64,
    p99: f64,
}

fn percentiles(mut micros: Vec<u64>) -> Percentiles {
    micros.sort_unstable();
    let at = |q: f64| {
        micros
            .get(((micros.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0) as f64
    };
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A server on its own tokio runtime with `workers` threads.
struct BenchServer {
    addr: std::net::SocketAddr,
    app: Arc<App>,
    key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    fn start(workers: usize, durable_ack: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            bind: "127.0.0.1:0".parse()?,
            data_dir: dir.path().to_path_buf(),
            seed_demo: false,
            ..Config::default()
        };
        config.metering.durable_ack = durable_ack;
        config.runtime.cache_dir = Some(std::env::temp_dir().join("weft-bench-artifacts"));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let setup = async {
                    let app = App::start(config).await?;
                    crate::seed::install_bundled(&app).await?;
                    let tenant = app.tenants.create("bench", "Bench").await?;
                    app.catalog.set_enabled(&tenant.id, "hello", true).await?;
                    let key = app
                        .api_keys
                        .create(&tenant.id, "bench", Role::User, None)
                        .await?;
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    anyhow::Ok((app, key.secret, listener))
                };
                match setup.await {
                    Ok((app, key, listener)) => {
                        let addr = match listener.local_addr() {
                            Ok(a) => a,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e.into()));
                                return;
                            }
                        };
                        let _ = ready_tx.send(Ok((addr, app.clone(), key)));
                        let _ = crate::api::serve(app, listener, async {
                            let _ = stop_rx.await;
                        })
                        .await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        });
        let (addr, app, key) = ready_rx.recv().context("bench server thread died")??;
        Ok(Self {
            addr,
            app,
            key,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        })
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Drives `path` with `connections` keep-alive connections for `duration`.
async fn load(
    addr: std::net::SocketAddr,
    path: &str,
    key: Option<&str>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Percentiles, u64)> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let path = path.to_owned();
        let auth = key.map(|k| format!("Bearer {k}"));
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let mut req = hyper::Request::get(path.as_str()).header("host", "bench");
                if let Some(auth) = &auth {
                    req = req.header("authorization", auth.as_str());
                }
                let req = req.body(Empty::<Bytes>::new())?;
                let started = Instant::now();
                let resp = sender.send_request(req).await?;
                let ok = resp.status().is_success();
                resp.into_body().collect().await?;
                latencies.push(started.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await??;
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = all.len() as f64 / elapsed;
    Ok((rate, percentiles(all), errors))
}

/// Indexes `posts` synthetic forum posts for one tenant, then times queries.
fn search_phase(posts: usize) -> anyhow::Result<()> {
    use crate::search::{FieldKind, FieldSpec, IndexSpec, Search, SearchRequest};
    use crate::storage::Owner;
    // A fixed vocabulary with a skewed (Zipf-like) pick, so that some words
    // are common and some rare, like real text.
    const WORDS: &[&str] = &[
        "rust",
        "wasm",
        "plugin",
        "tenant",
        "error",
        "handling",
        "async",
        "runtime",
        "memory",
        "limit",
        "forum",
        "topic",
        "reply",
        "search",
        "index",
        "query",
        "database",
        "postgres",
        "sqlite",
        "cache",
        "latency",
        "throughput",
        "deploy",
        "server",
        "client",
        "request",
        "response",
        "header",
        "body",
        "stream",
        "buffer",
        "thread",
        "lock",
        "channel",
        "future",
        "trait",
        "generic",
        "lifetime",
        "borrow",
        "compile",
        "cargo",
        "crate",
        "module",
        "function",
        "closure",
        "iterator",
        "vector",
        "string",
        "option",
        "result",
        "panic",
        "trap",
        "fuel",
        "epoch",
        "component",
        "interface",
        "world",
        "import",
        "export",
        "binding",
        "guest",
        "host",
        "linker",
        "store",
        "instance",
        "table",
        "global",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut word = || {
        let r = (next() % 10_000) as f64 / 10_000.0;
        WORDS[((r * r * r) * WORDS.len() as f64) as usize % WORDS.len()]
    };
    let dir = tempfile::tempdir()?;
    let search = Search::new(dir.path().to_path_buf());
    let tenant = crate::ids::TenantId::generate();
    let owner = Owner {
        tenant: &tenant,
        plugin: "forum",
    };
    let spec = IndexSpec {
        fields: vec![
            FieldSpec {
                name: "title".into(),
                kind: FieldKind::Text,
            },
            FieldSpec {
                name: "body".into(),
                kind: FieldKind::Text,
            },
            FieldSpec {
                name: "category".into(),
                kind: FieldKind::Keyword,
            },
            FieldSpec {
                name: "created_at".into(),
                kind: FieldKind::Integer,
            },
        ],
    };
    search.define(owner, "posts", &spec)?;
    let started = Instant::now();
    for i in 0..posts {
        let title: Vec<&str> = (0..6).map(|_| word()).collect();
        let body: Vec<&str> = (0..60).map(|_| word()).collect();
        let mut doc = serde_json::Map::new();
        doc.insert("title".into(), title.join(" ").into());
        doc.insert("body".into(), body.join(" ").into());
        doc.insert("category".into(), format!("c{}", i % 20).into());
        doc.insert("created_at".into(), (i as i64).into());
        search.upsert(owner, "posts", &format!("p{i}"), &doc)?;
        if i % 20_000 == 19_999 {
            search.commit_pending();
        }
    }
    search.commit(owner, "posts")?;
    let index_secs = started.elapsed().as_secs_f64();
    let queries = [
        "rust error",
        "async runtime memory",
        "\"component interface\"",
        "plugin AND tenant",
        "linker",
        "cargo crate module",
    ];
    let mut times = Vec::new();
    for round in 0..200 {
        for q in queries {
            let request = SearchRequest {
                query: q.into(),
                limit: 20,
                highlight: vec!["body".into()],
                offset: (round % 3) * 20,
                ..SearchRequest::default()
            };
            let t = Instant::now();
            let page = search.search(owner, "posts", &request)?;
            times.push(t.elapsed().as_micros() as u64);
            anyhow::ensure!(page.total > 0, "query {q} found nothing");
        }
    }
    let p = percentiles(times);
    println!(
        "\n## search ({posts} posts, one tenant; 60-word bodies; top 20 with body snippets)\n"
    );
    println!(
        "indexed in {index_secs:.1} s ({:.0} posts/s); query p50 {:.2} ms, p99 {:.2} ms",
        posts as f64 / index_secs,
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );
    println!(
        "RESULT search_posts={posts} index_posts_per_s={:.0} query_p50_ms={:.3} query_p99_ms={:.3}",
        posts as f64 / index_secs,
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );
    Ok(())
}

/// Runs every phase and prints the results.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration);
    println!(
        "weft bench — {} connections, {} s per phase, {} cores",
        args.connections,
        args.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("\n## hello through HTTP (API-key auth + plugin + metering)\n");
    println!("| server threads | metering | calls/s | p50 ms | p99 ms | non-2xx |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut variants = vec![(1, true), (2, true)];
    if args.async_metering {
        variants.push((2, false));
    }
    for (workers, durable) in variants {
        let server = BenchServer::start(workers, durable)?;
        // Warm up: compile caches, connections, the key cache.
        load(
            server.addr,
            "/t/bench/p/hello/hello",
            Some(&server.key),
            8,
            Duration::from_secs(1),
        )
        .await?;
        let (rate, p, errors) = load(
            server.addr,
            "/t/bench/p/hello/hello",
            Some(&server.key),
            args.connections,
            duration,
        )
        .await?;
        let mode = if durable { "durable ack" } else { "async" };
        println!(
            "| {workers} | {mode} | {rate:.0} | {:.2} | {:.2} | {errors} |",
            p.p50 / 1000.0,
            p.p99 / 1000.0
        );
        println!(
            "RESULT hello_http_threads{workers}_{}_rps={rate:.0} p50_ms={:.3} p99_ms={:.3}",
            if durable { "durable" } else { "async" },
            p.p50 / 1000.0,
            p.p99 / 1000.0
        );
        drop(server);
    }

    let server = BenchServer::start(2, true)?;
    let app = server.app.clone();
    let plugin = app.runtime.plugin("hello").context("hello is bundled")?;
    let tenant = app.tenants.by_slug("bench").await?;
    let binding = Binding {
        tenant: tenant.id.clone(),
        plugin: "hello".into(),
        version: plugin.manifest.plugin.version.clone(),
    };
    let request = types::Request {
        method: types::Method::Get,
        path: "/hello".into(),
        query: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        caller: None,
        request_id: "bench".into(),
    };
    println!("\n## per call (fresh Store each time, sequential)\n");
    println!("| what | p50 µs | p99 µs |");
    println!("|---|---:|---:|");
    for (label, with_call) in [("instantiate", false), ("instantiate + call /hello", true)] {
        let mut times = Vec::with_capacity(args.instantiations);
        for i in 0..args.instantiations + 200 {
            let started = Instant::now();
            let ok = app
                .runtime
                .probe(&plugin, binding.clone(), with_call.then_some(&request))
                .await;
            anyhow::ensure!(ok, "probe failed");
            if i >= 200 {
                times.push(started.elapsed().as_micros() as u64);
            }
        }
        let p = percentiles(times);
        println!("| {label} | {:.1} | {:.1} |", p.p50, p.p99);
        println!(
            "RESULT {}_us p50={:.1} p99={:.1}",
            if with_call {
                "instantiate_call"
            } else {
                "instantiate"
            },
            p.p50,
            p.p99
        );
    }

    let mut loads = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        app.runtime
            .load_precompiled(&plugin.component_hash)
            .context("precompiled artifact cached")?;
        loads.push(started.elapsed().as_micros() as u64);
    }
    let p = percentiles(loads);
    println!(
        "\n## precompiled plugin load (hello, deserialize from the artifact cache)\n\np50 {:.2} ms, p99 {:.2} ms",
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );
    println!(
        "RESULT precompiled_load_ms p50={:.3} p99={:.3}",
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );

    // Memory: tenants enabling hello, each called once over HTTP.
    let client_call = |slug: String| async move {
        let stream = tokio::net::TcpStream::connect(server.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let resp = sender
            .send_request(
                hyper::Request::get(format!("/t/{slug}/p/hello/hello"))
                    .header("host", "bench")
                    .body(Empty::<Bytes>::new())?,
            )
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "tenant {slug}: {}",
            resp.status()
        );
        anyhow::Ok(())
    };
    client_call("bench".into()).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    for i in 0..args.tenants {
        let slug = format!("t{i:05}");
        let tenant = app.tenants.create(&slug, &slug).await?;
        app.catalog.set_enabled(&tenant.id, "hello", true).await?;
        client_call(slug).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib();
    let per_tenant = (after.saturating_sub(before)) as f64 / args.tenants.max(1) as f64;
    println!(
        "\n## memory\n\nRSS {before} KiB before, {after} KiB after {} tenants enabling hello (each called once): {per_tenant:.2} KiB per tenant",
        args.tenants
    );
    println!(
        "RESULT rss_per_tenant_kib={per_tenant:.2} rss_before_kib={before} rss_after_kib={after}"
    );
    if args.search_posts > 0 {
        let posts = args.search_posts;
        tokio::task::spawn_blocking(move || search_phase(posts)).await??;
    }
    Ok(())
}
