//! The plugin catalog: installed plugin versions (manifest + component) and
//! which tenants enabled which plugin with which settings.

use sqlx::AssertSqlSafe;
pub mod manifest;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;

pub use manifest::Manifest;

use crate::db::{self, Db};
use crate::ids::{TenantId, now_ms};

/// How long a tenant's enablement and settings are trusted without asking
/// the database: changes through this process apply at once, changes made
/// by another replica within this time.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `plugin.toml` is not valid; the message says where.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// Settings do not match the plugin's schema.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// This plugin version is already installed (versions are immutable).
    #[error("plugin {0} version {1} is already installed")]
    VersionExists(String, String),
    #[error("plugin not found")]
    PluginNotFound,
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A plugin in the catalog.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginSummary {
    pub name: String,
    pub current_version: String,
    pub description: String,
    /// Every installed version, oldest first.
    pub versions: Vec<String>,
}

/// One installed version, with its component.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub manifest: Manifest,
    pub component_hash: String,
    pub component: Vec<u8>,
}

/// A tenant's use of a plugin.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantPlugin {
    pub plugin: String,
    pub enabled: bool,
    /// Settings as the admin stored them (defaults not filled in).
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    pub updated_at: i64,
}

type CacheKey = (TenantId, String);

/// The catalog over the database.
#[derive(Debug)]
pub struct Catalog {
    db: Db,
    cache: RwLock<HashMap<CacheKey, (Option<TenantPlugin>, Instant)>>,
}

fn tenant_plugin_from_row(row: &sqlx::any::AnyRow) -> Result<TenantPlugin> {
    let settings: String = row.try_get("settings")?;
    Ok(TenantPlugin {
        plugin: row.try_get("plugin")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        updated_at: row.try_get("updated_at")?,
    })
}

impl Catalog {
    /// The catalog over `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Records a checked plugin version and makes it the current one.
    pub async fn record_install(
        &self,
        manifest_text: &str,
        manifest: &Manifest,
        component: &[u8],
        hash: &str,
    ) -> Result<()> {
        let p = &manifest.plugin;
        let now = now_ms();
        let mut tx = self.db.begin(db::Scope::Platform, db::Mode::Write).await?;
        sqlx::query(
            "INSERT INTO plugins (name, current_version, description, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET current_version = excluded.current_version, \
             description = excluded.description, updated_at = excluded.updated_at",
        )
        .bind(&p.name)
        .bind(&p.version)
        .bind(&p.description)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO plugin_versions (plugin, version, wit_version, manifest, component_hash, component, installed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&p.name)
        .bind(&p.version)
        .bind(&p.wit)
        .bind(manifest_text)
        .bind(hash)
        .bind(component)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if db::is_unique_violation(&e) => {
                return Err(Error::VersionExists(p.name.clone(), p.version.clone()));
            }
            other => other?,
        };
        tx.commit().await?;
        Ok(())
    }

    /// The current version of every plugin: `(name, version)`.
    pub async fn current_versions(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, current_version FROM plugins ORDER BY name")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("current_version")?)))
            .collect()
    }

    /// Hash of an installed version's component, without loading it.
    pub async fn version_hash(&self, name: &str, version: &str) -> Result<String> {
        sqlx::query_scalar::<_, String>(
            "SELECT component_hash FROM plugin_versions WHERE plugin = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(Error::PluginNotFound)
    }

    /// An installed version; `with_component` false leaves the bytes empty
    /// (the runtime's artifact cache usually has the compiled form).
    pub async fn load_version(
        &self,
        name: &str,
        version: &str,
        with_component: bool,
    ) -> Result<StoredVersion> {
        let columns = if with_component {
            "manifest, component_hash, component"
        } else {
            "manifest, component_hash"
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM plugin_versions WHERE plugin = $1 AND version = $2"
        )))
        .bind(name)
        .bind(version)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(Error::PluginNotFound)?;
        let text: String = row.try_get("manifest")?;
        Ok(StoredVersion {
            manifest: Manifest::parse(&text)?,
            component_hash: row.try_get("component_hash")?,
            component: if with_component {
                row.try_get("component")?
            } else {
                Vec::new()
            },
        })
    }

    /// Every plugin with its versions.
    pub async fn list(&self) -> Result<Vec<PluginSummary>> {
        let plugins =
            sqlx::query("SELECT name, current_version, description FROM plugins ORDER BY name")
                .fetch_all(self.db.pool())
                .await?;
        let versions =
            sqlx::query("SELECT plugin, version FROM plugin_versions ORDER BY installed_at")
                .fetch_all(self.db.pool())
                .await?;
        let mut by_plugin: HashMap<String, Vec<String>> = HashMap::new();
        for row in &versions {
            by_plugin
                .entry(row.try_get("plugin")?)
                .or_default()
                .push(row.try_get("version")?);
        }
        plugins
            .iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                Ok(PluginSummary {
                    versions: by_plugin.remove(&name).unwrap_or_default(),
                    name,
                    current_version: row.try_get("current_version")?,
                    description: row.try_get("description")?,
                })
            })
            .collect()
    }

    /// Enables or disables `plugin` for `tenant`.
    pub async fn set_enabled(
        &self,
        tenant: &TenantId,
        plugin: &str,
        enabled: bool,
    ) -> Result<TenantPlugin> {
        self.upsert(tenant, plugin, Some(enabled), None).await
    }

    /// Replaces the tenant's settings of `plugin` (already checked against
    /// the manifest by the caller).
    pub async fn set_settings(
        &self,
        tenant: &TenantId,
        plugin: &str,
        settings: &Map<String, Value>,
    ) -> Result<TenantPlugin> {
        self.upsert(tenant, plugin, None, Some(settings)).await
    }

    async fn upsert(
        &self,
        tenant: &TenantId,
        plugin: &str,
        enabled: Option<bool>,
        settings: Option<&Map<String, Value>>,
    ) -> Result<TenantPlugin> {
        let mut tx = self
            .db
            .begin(db::Scope::Tenant(tenant), db::Mode::Write)
            .await?;
        let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM plugins WHERE name = $1")
            .bind(plugin)
            .fetch_one(&mut *tx)
            .await?;
        if exists == 0 {
            return Err(Error::PluginNotFound);
        }
        let settings_text = settings.map(|s| Value::Object(s.clone()).to_string());
        sqlx::query(
            "INSERT INTO tenant_plugins (tenant_id, plugin, enabled, settings, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, plugin) DO UPDATE SET \
             enabled = CASE WHEN $6 = 1 THEN excluded.enabled ELSE tenant_plugins.enabled END, \
             settings = CASE WHEN $7 = 1 THEN excluded.settings ELSE tenant_plugins.settings END, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(plugin)
        .bind(i64::from(enabled.unwrap_or(false)))
        .bind(settings_text.unwrap_or_else(|| "{}".into()))
        .bind(now_ms())
        .bind(i64::from(enabled.is_some()))
        .bind(i64::from(settings.is_some()))
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT plugin, enabled, settings, updated_at FROM tenant_plugins WHERE tenant_id = $1 AND plugin = $2")
            .bind(tenant.as_str())
            .bind(plugin)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let tp = tenant_plugin_from_row(&row)?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (tenant.clone(), plugin.to_owned()),
                (Some(tp.clone()), Instant::now()),
            );
        Ok(tp)
    }

    /// The tenant's use of `plugin` (cached briefly: this is on every call).
    pub async fn tenant_plugin(
        &self,
        tenant: &TenantId,
        plugin: &str,
    ) -> Result<Option<TenantPlugin>> {
        let key = (tenant.clone(), plugin.to_owned());
        if let Some((tp, at)) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(tp.clone());
        }
        let mut tx = self
            .db
            .begin(db::Scope::Tenant(tenant), db::Mode::Read)
            .await?;
        let row = sqlx::query("SELECT plugin, enabled, settings, updated_at FROM tenant_plugins WHERE tenant_id = $1 AND plugin = $2")
            .bind(tenant.as_str())
            .bind(plugin)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let tp = row.as_ref().map(tenant_plugin_from_row).transpose()?;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 100_000 {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        cache.insert(key, (tp.clone(), Instant::now()));
        Ok(tp)
    }

    /// Every plugin the tenant has enabled or configured.
    pub async fn tenant_plugins(&self, tenant: &TenantId) -> Result<Vec<TenantPlugin>> {
        let mut tx = self
            .db
            .begin(db::Scope::Tenant(tenant), db::Mode::Read)
            .await?;
        let rows = sqlx::query("SELECT plugin, enabled, settings, updated_at FROM tenant_plugins WHERE tenant_id = $1 ORDER BY plugin")
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(tenant_plugin_from_row).collect()
    }
}
