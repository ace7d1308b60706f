//! The test harness: a real Weft server on 127.0.0.1:0 over a freshly
//! migrated database — SQLite in a temp dir, or a new PostgreSQL database
//! owned by a new ordinary role (so row-level security applies) — with the
//! real plugins compiled by the build script.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use weft::app::App;
use weft::config::Config;
use weft::tenancy::{NewUser, Role};

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// An ordinary user of a test tenant, signed in.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The host's user id (what plugins see as the caller's id).
    pub id: String,
    pub token: String,
}

/// A running server and what a test needs to talk to it.
pub struct Server {
    pub base: String,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    pub root_token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
    pg: Option<PgDb>,
}

/// A tenant made for a test, with an admin session and an API key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub slug: String,
    pub admin_token: String,
    pub api_key: String,
}

pub struct PgDb {
    admin_url: String,
    name: String,
}

fn admin_pg_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates a database and an ordinary login role that owns it; `None`
/// (test skipped) when PostgreSQL is not reachable outside CI.
pub async fn create_pg_db() -> Option<PgDb> {
    use sqlx::Connection;
    install_tls();
    let admin_url = admin_pg_url();
    let mut conn = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(err) => {
            assert!(
                std::env::var("CI").is_err(),
                "PostgreSQL at {admin_url} is required in CI: {err}"
            );
            eprintln!("skipping PostgreSQL variant: {admin_url} unreachable ({err})");
            return None;
        }
    };
    let name = format!("weft_t_{}", uuid::Uuid::new_v4().simple());
    for stmt in [
        format!("CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE DATABASE {name} OWNER {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut conn)
            .await
            .expect("create test database");
    }
    Some(PgDb { admin_url, name })
}

impl PgDb {
    pub fn url(&self) -> String {
        let rest = self.admin_url.trim_start_matches("postgres://");
        let host = rest.split_once('@').map_or(rest, |(_, h)| h);
        let host = host.split('/').next().unwrap_or("127.0.0.1:5432");
        format!("postgres://{}@{host}/{}", self.name, self.name)
    }

    pub async fn drop_db(&self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            for stmt in [
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
                format!("DROP ROLE IF EXISTS {}", self.name),
            ] {
                let _ = sqlx::query(sqlx::AssertSqlSafe(stmt))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// Installs ring as the process's one rustls provider (reqwest and sqlx
/// are built without one); every entry point of the suite calls it, so a
/// test passes when run alone too.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts a server on `engine`; `None` if that engine is unavailable here.
pub async fn start(engine: Engine) -> Option<Server> {
    start_with(engine, |_| {}).await
}

/// Starts a server with a config adjusted by `tweak`.
pub async fn start_with(engine: Engine, tweak: impl FnOnce(&mut Config)) -> Option<Server> {
    install_tls();
    // WEFT_LOG=info shows the server's log under `--nocapture`.
    if let Ok(filter) = std::env::var("WEFT_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(filter)
            .try_init();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(create_pg_db().await?),
    };
    let mut config = Config {
        bind: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        jwt_secret: "test-secret-test-secret-test-secret".into(),
        seed_demo: false,
        ..Config::default()
    };
    config.database_url = pg.as_ref().map(PgDb::url).unwrap_or_default();
    config.runtime.max_concurrent_instances = 32;
    // Compiled plugins are shared by every test of this run.
    config.runtime.cache_dir =
        Some(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("weft-artifacts"));
    tweak(&mut config);
    let app = App::start(config).await.expect("app starts");
    weft::seed::install_bundled(&app)
        .await
        .expect("bundled plugins install");
    app.spawn_background();
    app.users
        .create(NewUser {
            tenant: None,
            email: "root@test.local",
            name: "Root",
            password: "root-password",
            role: Role::Superadmin,
        })
        .await
        .expect("superadmin");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(weft::api::serve(app.clone(), listener, async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let mut server = Server {
        base,
        app,
        client,
        root_token: String::new(),
        shutdown: Some(tx),
        _dir: dir,
        pg,
    };
    let (status, body) = server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "root@test.local", "password": "root-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.root_token = body["token"].as_str().expect("token").to_owned();
    Some(server)
}

impl Server {
    /// Stops the server and drops its PostgreSQL database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(pg) = self.pg.take() {
            self.app.db.pool().close().await;
            pg.drop_db().await;
        }
    }

    /// Sends a request; returns status and JSON body (or the text as a string).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.send_raw(method, path, token, body, &[]).await;
        (status, body)
    }

    /// Like [`send`] with extra headers, also returning response headers.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, token, None).await
    }

    /// Starts a GET in the background (for calls that must overlap others).
    pub fn spawn_get(
        &self,
        path: &str,
        token: &str,
    ) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let (client, url, token) = (
            self.client.clone(),
            format!("{}{path}", self.base),
            token.to_owned(),
        );
        tokio::spawn(async move {
            let resp = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("send");
            let status = resp.status();
            (status, resp.json().await.unwrap_or(Value::Null))
        })
    }

    /// Creates a tenant with an admin user (signed in) and an admin API key.
    pub async fn tenant(&self, slug: &str) -> TestTenant {
        let root = Some(self.root_token.as_str());
        let (status, body) = self
            .post(
                "/v1/tenants",
                root,
                json!({"slug": slug, "name": format!("Tenant {slug}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .post(&format!("/v1/tenants/{slug}/users"), root, json!({"email": format!("admin@{slug}.test"), "name": "Admin", "password": "admin-password", "role": "admin"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .post("/v1/auth/login", None, json!({"tenant": slug, "email": format!("admin@{slug}.test"), "password": "admin-password"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let admin_token = body["token"].as_str().expect("token").to_owned();
        let (status, body) = self
            .post(
                &format!("/v1/tenants/{slug}/api-keys"),
                Some(&admin_token),
                json!({"name": "test", "role": "admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let api_key = body["secret"].as_str().expect("secret").to_owned();
        TestTenant {
            slug: slug.to_owned(),
            admin_token,
            api_key,
        }
    }

    /// Creates an ordinary user of `tenant` named `name` and signs them in.
    pub async fn user(&self, tenant: &TestTenant, name: &str) -> TestUser {
        let email = format!("{}@{}.test", name.to_lowercase(), tenant.slug);
        let (status, body) = self
            .post(
                &format!("/v1/tenants/{}/users", tenant.slug),
                Some(&tenant.admin_token),
                json!({"email": email, "name": name, "password": "user-password", "role": "user"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().expect("user id").to_owned();
        let (status, body) = self
            .post(
                "/v1/auth/login",
                None,
                json!({"tenant": tenant.slug, "email": email, "password": "user-password"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        TestUser {
            id,
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Enables `plugin` for `tenant` through the API.
    pub async fn enable(&self, tenant: &TestTenant, plugin: &str) {
        let (status, body) = self
            .put(
                &format!("/v1/tenants/{}/plugins/{plugin}", tenant.slug),
                Some(&tenant.admin_token),
                json!({"enabled": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Installs a test plugin through the REST upload; returns status and body.
    pub async fn install(&self, manifest: &str, component: &[u8]) -> (StatusCode, Value) {
        let body = json!({ "manifest": manifest, "component_base64": base64::engine::general_purpose::STANDARD.encode(component) });
        self.post("/v1/plugins", Some(&self.root_token), body).await
    }

    /// Installs test plugin `name` as built, asserting success.
    pub async fn install_test_plugin(&self, name: &str) {
        let (manifest, component) = weft::bundled::test_plugin(name).expect("test plugin built");
        let (status, body) = self.install(&manifest, &component).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// Runs the test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! both_engines {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) = $crate::common::start($crate::common::Engine::Sqlite).await {
                    ($body)(&server).await;
                    server.stop().await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = $crate::common::start($crate::common::Engine::Postgres).await
                {
                    ($body)(&server).await;
                    server.stop().await;
                }
            }
        }
    };
}

/// [`both_engines!`] with the config adjusted by `$tweak` (a `fn(&mut Config)`).
#[macro_export]
macro_rules! both_engines_with {
    ($name:ident, $tweak:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) =
                    $crate::common::start_with($crate::common::Engine::Sqlite, $tweak).await
                {
                    ($body)(&server).await;
                    server.stop().await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) =
                    $crate::common::start_with($crate::common::Engine::Postgres, $tweak).await
                {
                    ($body)(&server).await;
                    server.stop().await;
                }
            }
        }
    };
}

/// A config whose background scheduler never ticks during a test (the
/// test ticks by hand, with its own clock); deliveries are polled often.
pub fn manual_scheduler(c: &mut Config) {
    c.events.schedule_tick_ms = 3_600_000;
    c.events.poll_ms = 50;
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(out) = check().await {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The error code of an API error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// The real `weft serve` on `127.0.0.1:0` over `data` (plus `env`), run
/// until it prints its address: the child, its base URL and the lines it
/// printed before (the demo banner, when it seeds one).
pub async fn spawn_serve(
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, Vec<String>) {
    use std::io::BufRead;
    install_tls();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .arg("serve")
        .env("WEFT_DATA_DIR", data)
        .env("WEFT_CONFIG", data.join("none.toml"))
        .env("WEFT_BIND", "127.0.0.1:0")
        .env("WEFT_LOG", "warn")
        .env("WEFT_SEED_DEMO", "false")
        // The served process's library runs keyword-only: embedding the
        // seed items would take both cores for its first seconds.
        .env("WEFT_EMBEDDINGS_DIR", data.join("no-model"))
        .env("WEFT_LIBRARY_FETCH_MODEL", "false")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn weft serve");
    let stdout = child.stdout.take().expect("stdout");
    let (base, printed) = tokio::task::spawn_blocking(move || {
        let mut printed = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.strip_prefix("weft listening on ") {
                return (addr.trim().to_owned(), printed);
            }
            printed.push(line);
        }
        (String::new(), printed)
    })
    .await
    .expect("read stdout");
    assert!(!base.is_empty(), "weft serve did not start: {printed:?}");
    (child, base, printed)
}
