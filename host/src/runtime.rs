//! The plugin runtime: one wasmtime engine, each plugin version compiled
//! once (and cached precompiled on disk), a fresh Store per call bound to one
//! (tenant, plugin) pair, with fuel, wall-time and memory limits and a cap on
//! concurrent instances.

mod artifacts;
mod call;
mod imports;
mod limits;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config as EngineConfig, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

pub use call::{Batch, CallError, CallOutcome, CallRequest, CallStats, Invocation, Reply};
pub use limits::EffectiveLimits;

use crate::capabilities::bindings::{v0_1, v0_2, v0_3, v0_4, v0_5};
use crate::capabilities::{Capabilities, Services};
use crate::catalog::{self, Catalog, Manifest};
use crate::config::RuntimeConfig;
use crate::db::Db;

/// How often the epoch advances: the granularity of wall-time limits and
/// of cooperative yielding by long-running guests.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each memory and table slot reset with memset instead of madvise.
/// With `PAGEMAP_SCAN` (Linux 6.7+) only the pages a call dirtied are reset,
/// wherever they lie, up to this much; without it, the lowest addresses.
const KEEP_RESIDENT: usize = 4 << 20;
/// Slots decommitted together.
const DECOMMIT_BATCH: usize = 16;

/// Why loading or installing a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a valid component for this engine.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The component imports something its manifest does not declare.
    #[error("{0}")]
    UndeclaredImport(String),
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    /// Engine set-up or artifact cache failure.
    #[error("runtime: {0}")]
    Internal(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A plugin version ready to instantiate.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub component_hash: String,
    pub limits: EffectiveLimits,
    pre: call::Pre,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.plugin.name)
            .field("version", &self.manifest.plugin.version)
            .finish()
    }
}

/// What an install did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub component_hash: String,
    /// The interfaces the component imports.
    pub imports: Vec<String>,
}

/// The runtime and the services its capabilities reach.
pub struct Runtime {
    engine: Engine,
    linker: Linker<call::StoreData>,
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    permits: Arc<Semaphore>,
    config: RuntimeConfig,
    cache_dir: PathBuf,
    catalog: Arc<Catalog>,
    services: Arc<Services>,
    db: Db,
    stop_ticker: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Runtime {
    /// Builds the engine (pooling allocator, fuel, epochs) and linker.
    pub fn new(
        config: RuntimeConfig,
        cache_dir: PathBuf,
        db: Db,
        catalog: Arc<Catalog>,
        services: Arc<Services>,
    ) -> Result<Self> {
        let mut engine_config = EngineConfig::new();
        engine_config
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_component_model(true);
        let mut pool = PoolingAllocationConfig::default();
        let instances = config.max_concurrent_instances.max(1);
        // A component instance holds several core instances, memories and
        // tables (its module plus the shims wit-component adds); slots only
        // reserve address space, so err on the generous side.
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 4)
            .total_tables(instances * 8)
            .max_memory_size(usize::try_from(config.max_memory_mib << 20).unwrap_or(usize::MAX))
            // Reset the first pages of a slot with memset and the rest with
            // batched madvise: per-call madvise cost page faults and TLB
            // shootdowns across cores (seen at the top of a profile).
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            // A Rust guest's stack sits at the bottom of its memory with the
            // data and heap above it, so "the lowest addresses" are mostly
            // untouched stack: find the dirty pages instead.
            .pagemap_scan(Enabled::Auto)
            .decommit_batch_size(DECOMMIT_BATCH);
        engine_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `WEFT_PROFILER=perfmap` writes /tmp/perf-<pid>.map, so `perf`
        // names the plugins' compiled functions.
        if std::env::var("WEFT_PROFILER").is_ok_and(|p| p == "perfmap") {
            engine_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine =
            Engine::new(&engine_config).map_err(|e| Error::Internal(format!("engine: {e}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Internal(format!("wasi linker: {e}")))?;
        Capabilities::add_to_linker(&mut linker, |d: &mut call::StoreData| &mut d.caps)
            .map_err(|e| Error::Internal(format!("linker: {e}")))?;

        let stop_ticker = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("epoch thread: {e}")))?;

        Ok(Self {
            engine,
            linker,
            plugins: RwLock::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(instances as usize)),
            config,
            cache_dir,
            catalog,
            services,
            db,
            stop_ticker,
        })
    }

    /// The current version of `name`, if installed.
    pub fn plugin(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The current version of every loaded plugin.
    pub fn loaded_plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Names and versions of the loaded plugins.
    pub fn loaded(&self) -> Vec<(String, String)> {
        let plugins = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = plugins
            .iter()
            .map(|(n, p)| (n.clone(), p.manifest.plugin.version.clone()))
            .collect();
        out.sort();
        out
    }

    /// Checks, compiles, records and activates a plugin version. New calls
    /// use it at once; calls in flight finish on the version they started.
    pub async fn install(&self, manifest_text: &str, component: &[u8]) -> Result<Installed> {
        let manifest = Manifest::parse(manifest_text)?;
        let hash = hex::encode(Sha256::digest(component));
        let compiled = self.compile(component, &hash).await?;
        let imports = imports::check(&self.engine, &compiled, &manifest)?;
        let loaded = self.prepare(compiled, manifest.clone(), hash.clone())?;
        self.catalog
            .record_install(manifest_text, &manifest, component, &hash)
            .await?;
        self.activate(loaded);
        Ok(Installed {
            name: manifest.plugin.name,
            version: manifest.plugin.version,
            component_hash: hash,
            imports,
        })
    }

    /// Loads the current version of every installed plugin that is not
    /// loaded yet or has changed (another replica may have installed it).
    pub async fn sync(&self) -> Result<usize> {
        let mut changed = 0;
        for (name, version) in self.catalog.current_versions().await? {
            if self
                .plugin(&name)
                .is_some_and(|p| p.manifest.plugin.version == version)
            {
                continue;
            }
            let stored = self.catalog.load_version(&name, &version, false).await?;
            let compiled = match self.load_precompiled(&stored.component_hash) {
                Some(c) => c,
                None => {
                    let full = self.catalog.load_version(&name, &version, true).await?;
                    self.compile(&full.component, &full.component_hash).await?
                }
            };
            let loaded = self.prepare(compiled, stored.manifest, stored.component_hash)?;
            self.activate(loaded);
            changed += 1;
        }
        Ok(changed)
    }

    fn prepare(
        &self,
        component: Component,
        manifest: Manifest,
        hash: String,
    ) -> Result<LoadedPlugin> {
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::InvalidComponent(format!("{e:#}")))?;
        let invalid = |e: wasmtime::Error| Error::InvalidComponent(format!("{e:#}"));
        let pre = match manifest.plugin.wit.as_str() {
            "0.1.0" => call::Pre::V0_1(v0_1::PluginPre::new(instance_pre).map_err(invalid)?),
            "0.2.0" => call::Pre::V0_2(v0_2::PluginPre::new(instance_pre).map_err(invalid)?),
            "0.3.0" => call::Pre::V0_3(v0_3::PluginPre::new(instance_pre).map_err(invalid)?),
            "0.4.0" => call::Pre::V0_4(v0_4::PluginPre::new(instance_pre).map_err(invalid)?),
            _ => call::Pre::V0_5(v0_5::PluginPre::new(instance_pre).map_err(invalid)?),
        };
        let limits = EffectiveLimits::new(&manifest.limits, &self.config);
        Ok(LoadedPlugin {
            manifest,
            component_hash: hash,
            limits,
            pre,
        })
    }

    fn activate(&self, loaded: LoadedPlugin) {
        tracing::info!(plugin = %loaded.manifest.plugin.name, version = %loaded.manifest.plugin.version, "plugin active");
        self.services.events.subscribe(
            &loaded.manifest.plugin.name,
            loaded
                .manifest
                .subscriptions
                .iter()
                .map(|s| s.topic.clone()),
        );
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(loaded.manifest.plugin.name.clone(), Arc::new(loaded));
    }

    /// Compiles `bytes` (hash `hash`), or loads the precompiled artifact.
    async fn compile(&self, bytes: &[u8], hash: &str) -> Result<Component> {
        if let Some(component) = self.load_precompiled(hash) {
            return Ok(component);
        }
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
            .await
            .map_err(|e| Error::Internal(format!("compile task: {e}")))?
            .map_err(|e| Error::InvalidComponent(format!("{e:#}")))?;
        artifacts::store(&self.engine, &self.cache_dir, hash, &component);
        Ok(component)
    }

    /// The precompiled artifact of component `hash`, if cached.
    pub fn load_precompiled(&self, hash: &str) -> Option<Component> {
        artifacts::load(&self.engine, &self.cache_dir, hash)
    }
}
