//! The composition root: every service built once from the configuration
//! and shared by the API, the CLI and the benchmarks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::billing::Billing;
use crate::capabilities::Services;
use crate::catalog::{self, Catalog, TenantPlugin};
use crate::config::Config;
use crate::db::Db;
use crate::events::Events;
use crate::ids::TenantId;
use crate::jobs::scheduler::Scheduler;
use crate::library::Library;
use crate::llm::Gateway;
use crate::messaging::Messaging;
use crate::metering::Meter;
use crate::runtime::Runtime;
use crate::search::Search;
use crate::secrets::Secrets;
use crate::storage::Storage;
use crate::tenancy::{self, ApiKeys, Tenant, Tenants, TokenSigner, Users};

/// The services of one Weft process.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub db: Db,
    pub tenants: Tenants,
    pub users: Users,
    pub api_keys: ApiKeys,
    pub catalog: Arc<Catalog>,
    pub storage: Arc<Storage>,
    pub events: Arc<Events>,
    pub search: Arc<Search>,
    pub scheduler: Scheduler,
    pub runtime: Runtime,
    pub meter: Meter,
    pub billing: Arc<Billing>,
    pub llm: Arc<Gateway>,
    pub secrets: Arc<Secrets>,
    pub messaging: Arc<Messaging>,
    pub library: Arc<Library>,
    tenant_cache: RwLock<HashMap<String, (Tenant, Instant)>>,
}

/// A tenant seen by slug is trusted this long (tenants are rarely renamed).
const TENANT_CACHE_TTL: Duration = Duration::from_secs(10);

impl App {
    /// Connects, migrates, starts the metering writer, loads plugins and
    /// replays the search journal. Background work starts with
    /// [`App::spawn_background`].
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        let db = Db::connect(&config.database_url()).await?;
        db.migrate().await?;
        if db.rls_bypassed().await? {
            tracing::warn!(
                "the PostgreSQL role bypasses row-level security (superuser or BYPASSRLS): the second tenant wall is off; connect as an ordinary role"
            );
        }
        let secret = jwt_secret(&config)?;
        let catalog = Arc::new(Catalog::new(db.clone()));
        let storage = Arc::new(Storage::new(db.clone(), config.quotas.clone()));
        let events = Arc::new(Events::new(config.events.clone()));
        let search = Arc::new(Search::new(config.data_dir.join("search")).with_journal(db.clone()));
        let billing = Arc::new(Billing::new(db.clone(), config.billing.clone())?);
        let secrets_key = crate::secrets::load_key(&config.secrets_key, &config.data_dir)?;
        let secrets = Arc::new(Secrets::new(db.clone(), &secrets_key)?);
        let llm = Arc::new(Gateway::new(
            db.clone(),
            billing.clone(),
            secrets.clone(),
            config.llm.clone(),
            |name| std::env::var(name).ok(),
        )?);
        let messaging = Arc::new(Messaging::new(
            db.clone(),
            config.messaging.clone(),
            secrets.clone(),
            billing.clone(),
        ));
        let library = Arc::new(Library::new(
            db.clone(),
            config.library.clone(),
            config.data_dir.clone(),
            config.cache_dir(),
        ));
        let services = Arc::new(Services {
            storage: storage.clone(),
            events: events.clone(),
            search: search.clone(),
            llm: llm.clone(),
            messaging: messaging.clone(),
            library: library.clone(),
        });
        let runtime = Runtime::new(
            config.runtime.clone(),
            config.cache_dir(),
            db.clone(),
            catalog.clone(),
            services,
        )?;
        let (meter, _writer) = Meter::start(db.clone(), &config.metering);
        let app = Arc::new(Self {
            tenants: Tenants::new(db.clone()),
            users: Users::new(db.clone(), TokenSigner::new(&secret)),
            api_keys: ApiKeys::new(db.clone()),
            catalog,
            storage,
            events,
            search,
            scheduler: Scheduler::default(),
            runtime,
            meter,
            billing,
            llm,
            secrets,
            messaging,
            library,
            db,
            config,
            tenant_cache: RwLock::new(HashMap::new()),
        });
        app.runtime.sync().await?;
        app.billing.seed_packages().await?;
        let replayed = app.search.recover().await?;
        if replayed > 0 {
            tracing::info!(writes = replayed, "search journal replayed");
        }
        Ok(app)
    }

    /// Starts the background work of a serving process: plugin sync, the
    /// search committer, and (unless `events.workers` is off) event
    /// delivery and the scheduler.
    pub fn spawn_background(self: &Arc<Self>) {
        self.spawn_sync();
        self.search.spawn_committer(Duration::from_millis(
            self.config.search.commit_interval_ms.max(10),
        ));
        if self.config.events.workers {
            crate::jobs::spawn(self);
        }
        let every = self.config.library.refresh_secs;
        if every > 0 {
            let app = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(every));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(app) = app.upgrade() else { break };
                    match app.library.read_changes().await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(
                            changes = n,
                            "code library: changes from other processes indexed"
                        ),
                        Err(err) => {
                            tracing::warn!(%err, "code library: reading other processes' changes failed")
                        }
                    }
                }
            });
        }
    }

    /// The tenant with `slug` (cached: this is on every plugin call).
    pub async fn tenant_by_slug(&self, slug: &str) -> tenancy::Result<Tenant> {
        if let Some((tenant, at)) = self
            .tenant_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(slug)
            && at.elapsed() < TENANT_CACHE_TTL
        {
            return Ok(tenant.clone());
        }
        let tenant = self.tenants.by_slug(slug).await?;
        let mut cache = self.tenant_cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(slug.to_owned(), (tenant.clone(), Instant::now()));
        Ok(tenant)
    }

    /// Enables/disables `plugin` for `tenant` and/or replaces its settings,
    /// checked against the current version's schema: enabling needs every
    /// required setting. The one path for the API and the CLI.
    pub async fn configure_plugin(
        &self,
        tenant: &TenantId,
        plugin: &str,
        enabled: Option<bool>,
        settings: Option<&Map<String, Value>>,
    ) -> catalog::Result<TenantPlugin> {
        let loaded = self
            .runtime
            .plugin(plugin)
            .ok_or(catalog::Error::PluginNotFound)?;
        if let Some(settings) = settings {
            loaded.manifest.check_settings(settings)?;
        }
        if enabled == Some(true) && settings.is_none() {
            let stored = self
                .catalog
                .tenant_plugin(tenant, plugin)
                .await?
                .map(|t| t.settings)
                .unwrap_or_default();
            loaded.manifest.check_settings(&stored)?;
        }
        if let Some(settings) = settings {
            self.catalog.set_settings(tenant, plugin, settings).await?;
        }
        if let Some(enabled) = enabled {
            return self.catalog.set_enabled(tenant, plugin, enabled).await;
        }
        self.catalog
            .tenant_plugin(tenant, plugin)
            .await?
            .ok_or(catalog::Error::PluginNotFound)
    }

    /// Periodically picks up plugin versions installed by other replicas.
    fn spawn_sync(self: &Arc<Self>) {
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(app) = app.upgrade() else { break };
                if let Err(err) = app.runtime.sync().await {
                    tracing::warn!(error = %err, "plugin sync failed");
                }
            }
        });
    }
}

fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if !config.jwt_secret.is_empty() {
        return Ok(config.jwt_secret.as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt.secret");
    if let Ok(secret) = std::fs::read(&path)
        && secret.len() >= 32
    {
        return Ok(secret);
    }
    use rand::RngCore;
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let hex = hex::encode(&secret).into_bytes();
    std::fs::create_dir_all(&config.data_dir)?;
    // A short (damaged) secret is replaced: sessions signed with it end.
    let _ = std::fs::remove_file(&path);
    crate::secrets::write_private(&path, &hex)?;
    Ok(hex)
}
