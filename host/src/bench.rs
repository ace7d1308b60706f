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

mod cpu;
mod events;
mod forum;
mod http;
mod library;
mod llm;
mod messaging;
mod outbox;
mod search;
mod text;

use anyhow::Context;
use hyper::Method;

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
    /// Events published in the events phase (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Posts the forum phase writes through HTTP before it searches them
    /// (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub forum_posts: usize,
    /// Requests of the LLM gateway phase (0 skips it and the ledger phase).
    #[arg(long, default_value_t = 20_000)]
    pub llm_requests: usize,
    /// Run only the phases after the HTTP and per-call ones (search,
    /// events, forum, LLM gateway, ledger, outbox).
    #[arg(long)]
    pub skip_hello: bool,
    /// Emails of the outbox phase, queued by a plugin and delivered over
    /// SMTP to a local sink (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Subscribers of the messaging plugin's batch-send phase: emails
    /// rendered from a template and queued by the plugin, then delivered
    /// over SMTP to a local sink (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub plugin_messages: usize,
    /// Items of the code library's large search phase (0 skips the phase;
    /// it also measures 1,000 items and needs the embedding model).
    #[arg(long, default_value_t = 100_000)]
    pub library_items: usize,
    /// Run the phases that write (events, forum, LLM gateway and ledger,
    /// outbox, messaging) on PostgreSQL: an admin URL under which each
    /// server gets a new database owned by a new ordinary role (dropped
    /// afterwards), as the tests do.
    #[arg(long, value_name = "ADMIN_URL")]
    pub postgres: Option<String>,
}

struct Percentiles {
    p50: f64,
    p99: f64,
    /// How many were measured.
    count: usize,
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
        count: micros.len(),
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
    /// The PostgreSQL admin URL and the database made for this server.
    pg: Option<(String, String)>,
}

/// Runs `f` on a runtime of its own, on a thread of its own: the bench's
/// servers start and stop from inside the caller's runtime.
fn on_own_runtime<T: Send>(f: impl AsyncFnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(f())
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("database set-up thread panicked")))
    })
}

/// Makes a database owned by a new ordinary role (row-level security
/// applies to it, as in production); returns its name and URL.
fn create_pg_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    use sqlx::Connection;
    let name = format!("weft_bench_{}", uuid::Uuid::new_v4().simple());
    on_own_runtime(async || {
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        for stmt in [
            format!("CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS"),
            format!("CREATE DATABASE {name} OWNER {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(stmt))
                .execute(&mut conn)
                .await?;
        }
        anyhow::Ok(())
    })?;
    let rest = admin_url.trim_start_matches("postgres://");
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap_or("127.0.0.1:5432");
    Ok((name.clone(), format!("postgres://{name}@{host}/{name}")))
}

fn drop_pg_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    let _ = on_own_runtime(async || {
        if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
            for stmt in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("DROP ROLE IF EXISTS {name}"),
            ] {
                let _ = sqlx::query(sqlx::AssertSqlSafe(stmt))
                    .execute(&mut conn)
                    .await;
            }
        }
        anyhow::Ok(())
    });
}

impl BenchServer {
    /// A server on SQLite in a temp dir, or on a new PostgreSQL database
    /// under `postgres` (an admin URL).
    fn start(workers: usize, durable_ack: bool) -> anyhow::Result<Self> {
        Self::start_on(workers, durable_ack, None)
    }

    fn start_on(workers: usize, durable_ack: bool, postgres: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with(workers, durable_ack, postgres, |_| {})
    }

    /// [`BenchServer::start_on`] with the config adjusted by `tweak`.
    fn start_with(
        workers: usize,
        durable_ack: bool,
        postgres: Option<&str>,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            bind: "127.0.0.1:0".parse()?,
            data_dir: dir.path().to_path_buf(),
            seed_demo: false,
            ..Config::default()
        };
        let pg = match postgres {
            Some(admin) => {
                let (name, url) = create_pg_database(admin)?;
                config.database_url = url;
                Some((admin.to_owned(), name))
            }
            None => None,
        };
        config.metering.durable_ack = durable_ack;
        config.runtime.cache_dir = Some(std::env::temp_dir().join("weft-bench-artifacts"));
        tweak(&mut config);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name(cpu::SERVER_THREADS)
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
                    // Event delivery, the scheduler and the search committer,
                    // as `weft serve` runs them.
                    app.spawn_background();
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
            pg,
        })
    }
}

impl BenchServer {
    /// The bench tenant's id.
    async fn tenant(&self) -> anyhow::Result<crate::ids::TenantId> {
        Ok(self.app.tenants.by_slug("bench").await?.id)
    }

    /// Enables installed plugin `name` for the bench tenant.
    async fn enable(&self, name: &str) -> anyhow::Result<()> {
        let tenant = self.tenant().await?;
        self.app.catalog.set_enabled(&tenant, name, true).await?;
        Ok(())
    }

    /// Installs test plugin `name` (built beside this binary by the build
    /// script) and enables it for the bench tenant.
    async fn install_test_plugin(&self, name: &str) -> anyhow::Result<()> {
        let (manifest, component) = crate::bundled::test_plugin(name)
            .with_context(|| format!("test plugin {name} (run from the build tree)"))?;
        self.app.runtime.install(&manifest, &component).await?;
        self.enable(name).await
    }

    /// A new API key of the bench tenant with `role`.
    async fn key(&self, role: Role) -> anyhow::Result<String> {
        let tenant = self.tenant().await?;
        Ok(self
            .app
            .api_keys
            .create(&tenant, "bench", role, None)
            .await?
            .secret)
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
        if let Some((admin, name)) = self.pg.take() {
            drop_pg_database(&admin, &name);
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
    let path = path.to_owned();
    let key = key.map(str::to_owned);
    load_with(addr, connections, duration, move |_, _| {
        (Method::GET, path.clone(), key.clone(), None)
    })
    .await
}

/// One request of a load: method, path, bearer token, JSON body.
type Planned = (Method, String, Option<String>, Option<serde_json::Value>);

/// Drives `connections` keep-alive connections for `duration`, connection
/// `c` sending `plan(c, i)` as its `i`th request; returns requests/s, the
/// latencies and the number of non-2xx answers.
async fn load_with(
    addr: std::net::SocketAddr,
    connections: usize,
    duration: Duration,
    plan: impl Fn(usize, usize) -> Planned + Send + Sync + 'static,
) -> anyhow::Result<(f64, Percentiles, u64)> {
    let deadline = Instant::now() + duration;
    let plan = Arc::new(plan);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let plan = plan.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(addr).await?;
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let mut i = 0;
            while Instant::now() < deadline {
                let (method, path, key, body) = plan(c, i);
                i += 1;
                let started = Instant::now();
                let (status, _) = conn
                    .send(method, &path, key.as_deref(), body.as_ref())
                    .await?;
                latencies.push(started.elapsed().as_micros() as u64);
                if !status.is_success() {
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

/// The hello phases: HTTP throughput and latency, per-call instantiation,
/// precompiled load, memory per tenant.
async fn hello_phases(args: &BenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration);
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
        let mut conn = http::Conn::open(server.addr).await?;
        let (status, _) = conn
            .send(Method::GET, &format!("/t/{slug}/p/hello/hello"), None, None)
            .await?;
        anyhow::ensure!(status.is_success(), "tenant {slug}: {status}");
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
    Ok(())
}

/// Runs every phase and prints the results.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "weft bench — {} connections, {} s per phase, {} cores",
        args.connections,
        args.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if !args.skip_hello {
        hello_phases(&args).await?;
    }
    if args.search_posts > 0 {
        let posts = args.search_posts;
        tokio::task::spawn_blocking(move || search::run(posts)).await??;
    }
    if args.events > 0 {
        events::run(args.events, args.postgres.as_deref()).await?;
    }
    if args.forum_posts > 0 {
        forum::run(&args).await?;
    }
    if args.llm_requests > 0 {
        llm::run(&args).await?;
    }
    if args.messages > 0 {
        outbox::run(args.messages, args.postgres.as_deref()).await?;
    }
    if args.plugin_messages > 0 {
        messaging::run(args.plugin_messages, args.postgres.as_deref()).await?;
    }
    if args.library_items > 0 {
        let items = args.library_items;
        tokio::task::spawn_blocking(move || library::run(items)).await??;
    }
    Ok(())
}
