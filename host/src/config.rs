//! Operator configuration: `weft.toml` (optional) overlaid by `WEFT_*`
//! environment variables. Every field has a default so `cargo run` needs no file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A `WEFT_*` variable holds a value of the wrong shape.
    #[error("invalid value for {var}: {message}")]
    Env { var: String, message: String },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole operator configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds (`WEFT_BIND`).
    pub bind: SocketAddr,
    /// `sqlite://...` or `postgres://...` (`WEFT_DATABASE_URL`, or `DATABASE_URL`).
    pub database_url: String,
    /// Directory for the SQLite file, precompiled plugins and logs (`WEFT_DATA_DIR`).
    pub data_dir: PathBuf,
    /// HMAC secret for session tokens (`WEFT_JWT_SECRET`). When empty, a
    /// random secret is generated and kept in `data_dir/jwt.secret`.
    pub jwt_secret: String,
    /// AES-256 key (64 hex characters) for the secrets tenants bring, such
    /// as their own LLM provider keys (`WEFT_SECRETS_KEY`). When empty, a
    /// random key is generated and kept in `data_dir/secrets.key`; replicas
    /// of one installation must share it.
    pub secrets_key: String,
    /// Largest request body accepted, in bytes (`WEFT_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Plugin execution caps: a manifest may ask for less, never more.
    pub runtime: RuntimeConfig,
    /// Per-tenant storage quotas (a tenant row may override them).
    pub quotas: QuotaConfig,
    /// Usage metering.
    pub metering: MeteringConfig,
    /// Event delivery and schedule runs.
    pub events: EventsConfig,
    /// Full-text search indexes.
    pub search: SearchConfig,
    /// The LLM gateway: providers and the model catalog.
    pub llm: crate::llm::LlmConfig,
    /// Credits, plans, packages, Stripe and invoices.
    pub billing: crate::billing::BillingConfig,
    /// The outbox: delivery, default providers, per-tenant limits.
    pub messaging: crate::messaging::MessagingConfig,
    /// The code library: seed items, the embedding model, search settings.
    pub library: crate::library::LibraryConfig,
    /// Seed a demo tenant, user and API key and install the bundled plugins
    /// on first start (`WEFT_SEED_DEMO`).
    pub seed_demo: bool,
}

/// Limits applied to every plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Plugin instances running at once; further calls wait in line.
    pub max_concurrent_instances: u32,
    /// How long a call may wait for a free instance slot before 503.
    pub queue_timeout_ms: u64,
    /// Upper bound on a call's fuel.
    pub max_fuel: u64,
    /// Upper bound on a call's wall time.
    pub max_timeout_ms: u64,
    /// Upper bound on a call's linear memory.
    pub max_memory_mib: u64,
    /// Upper bound on a response body.
    pub max_response_bytes: u64,
    /// Captured stdout/stderr and log lines kept per call.
    pub max_log_bytes_per_call: usize,
    /// Log lines kept per tenant and plugin (older ones are pruned).
    pub max_log_lines_per_plugin: i64,
    /// Where precompiled plugin artifacts are cached (default `data_dir/cache`).
    pub cache_dir: Option<PathBuf>,
    /// On SQLite, how long a call may run after its first write (it holds
    /// the database's only write lock until it returns).
    pub max_write_hold_ms: u64,
}

/// Full-text search indexes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// How often indexes with pending writes are committed (writes become
    /// visible to queries then; until then they are safe in the journal).
    pub commit_interval_ms: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            commit_interval_ms: 250,
        }
    }
}

/// How events and schedule runs are delivered to plugins.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt up to `max_retry_delay_ms`
    /// (with ±20 % jitter).
    pub retry_base_ms: u64,
    pub max_retry_delay_ms: u64,
    /// How long a claimed delivery is reserved for its worker: past it, a
    /// crashed worker's delivery is due again. Longer than any call.
    pub lease_ms: u64,
    /// Deliveries claimed per query.
    pub batch_size: u32,
    /// Handler calls in flight at once, per process.
    pub concurrency: u32,
    /// How often workers look for due deliveries when not woken.
    pub poll_ms: u64,
    /// Largest event payload.
    pub max_payload_bytes: u64,
    /// How often the scheduler looks for due schedule runs.
    pub schedule_tick_ms: u64,
    /// Done deliveries and their events are kept this long.
    pub retention_hours: u64,
    /// Run delivery workers and the scheduler in this process.
    pub workers: bool,
}

/// Default storage quotas per tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// kv keys plus documents.
    pub keys: i64,
    /// Bytes of kv keys, values and document bodies.
    pub bytes: i64,
    /// Largest single kv value.
    pub max_value_bytes: u64,
    /// Largest single document body.
    pub max_document_bytes: u64,
}

/// How usage events are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeteringConfig {
    /// Events written per database transaction at most.
    pub batch_size: usize,
    /// `true`: a plugin response is sent only after its usage event is
    /// committed (group commit), so an acknowledged call is never lost.
    /// `false`: respond first and commit in the background (faster, may lose
    /// the last batch on a crash).
    pub durable_ack: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: String::new(),
            data_dir: PathBuf::from("data"),
            jwt_secret: String::new(),
            secrets_key: String::new(),
            max_body_bytes: 1 << 20,
            runtime: RuntimeConfig::default(),
            quotas: QuotaConfig::default(),
            metering: MeteringConfig::default(),
            events: EventsConfig::default(),
            search: SearchConfig::default(),
            llm: crate::llm::LlmConfig::default(),
            billing: crate::billing::BillingConfig::default(),
            messaging: crate::messaging::MessagingConfig::default(),
            library: crate::library::LibraryConfig::default(),
            seed_demo: true,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_concurrent_instances: 256,
            queue_timeout_ms: 10_000,
            max_fuel: 2_000_000_000,
            max_timeout_ms: 10_000,
            max_memory_mib: 128,
            max_response_bytes: 8 << 20,
            max_log_bytes_per_call: 64 << 10,
            max_log_lines_per_plugin: 10_000,
            cache_dir: None,
            max_write_hold_ms: 250,
        }
    }
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            keys: 1_000_000,
            bytes: 1 << 30,
            max_value_bytes: 1 << 20,
            max_document_bytes: 1 << 20,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base_ms: 1_000,
            max_retry_delay_ms: 3_600_000,
            lease_ms: 60_000,
            batch_size: 64,
            concurrency: 32,
            poll_ms: 200,
            max_payload_bytes: 64 << 10,
            schedule_tick_ms: 1_000,
            retention_hours: 72,
            workers: true,
        }
    }
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            batch_size: 512,
            durable_ack: true,
        }
    }
}

impl Config {
    /// Loads `path` (if it exists) and then applies `WEFT_*` variables.
    pub fn load(path: &Path) -> Result<Self> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| Error::Parse {
                path: path.to_owned(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Applies `WEFT_*` overrides read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, value: String) -> Result<T>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| Error::Env {
                var: name.into(),
                message: e.to_string(),
            })
        }
        if let Some(v) = var("WEFT_BIND") {
            self.bind = parse("WEFT_BIND", v)?;
        }
        if let Some(v) = var("WEFT_DATABASE_URL").or_else(|| var("DATABASE_URL")) {
            self.database_url = v;
        }
        if let Some(v) = var("WEFT_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("WEFT_JWT_SECRET") {
            self.jwt_secret = v;
        }
        if let Some(v) = var("WEFT_SECRETS_KEY") {
            self.secrets_key = v;
        }
        if let Some(v) = var("WEFT_MAX_BODY_BYTES") {
            self.max_body_bytes = parse("WEFT_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = var("WEFT_MAX_CONCURRENT_INSTANCES") {
            self.runtime.max_concurrent_instances = parse("WEFT_MAX_CONCURRENT_INSTANCES", v)?;
        }
        if let Some(v) = var("WEFT_SEED_DEMO") {
            self.seed_demo = parse("WEFT_SEED_DEMO", v)?;
        }
        if let Some(v) = var("WEFT_LIBRARY_FETCH_MODEL") {
            self.library.fetch_model = parse("WEFT_LIBRARY_FETCH_MODEL", v)?;
        }
        if let Some(v) = var("WEFT_STRIPE_SECRET_KEY") {
            self.billing.stripe.secret_key = v;
        }
        if let Some(v) = var("WEFT_STRIPE_WEBHOOK_SECRET") {
            self.billing.stripe.webhook_secret = v;
        }
        if let Some(v) = var("WEFT_METERING_DURABLE_ACK") {
            self.metering.durable_ack = parse("WEFT_METERING_DURABLE_ACK", v)?;
        }
        Ok(())
    }

    /// The database URL, defaulting to `data_dir/weft.db`.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("weft.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    /// Where precompiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.runtime
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_values() {
        let mut config: Config =
            toml::from_str("bind = \"127.0.0.1:9000\"\n[runtime]\nmax_fuel = 5\n")
                .expect("valid toml");
        config
            .apply_env(|name| (name == "WEFT_BIND").then(|| "127.0.0.1:9100".to_string()))
            .expect("valid env");
        assert_eq!(config.bind.port(), 9100);
        assert_eq!(config.runtime.max_fuel, 5);
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let mut config = Config::default();
        let err = config
            .apply_env(|name| (name == "WEFT_BIND").then(|| "not-an-address".to_string()))
            .expect_err("must fail");
        assert!(err.to_string().contains("WEFT_BIND"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("bnd = \"x\"").is_err());
    }

    #[test]
    fn default_database_is_sqlite_under_data_dir() {
        let config = Config::default();
        assert!(config.database_url().starts_with("sqlite://data/weft.db"));
    }
}
