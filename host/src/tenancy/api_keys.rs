//! API keys: random secrets shown once, stored as SHA-256 hashes, scoped to
//! one tenant, revocable.

use sqlx::AssertSqlSafe;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{CredentialKind, Error, Principal, Result, Role};
use crate::db::Db;
use crate::ids::{ApiKeyId, TenantId, UserId, now_ms};

/// Every key starts with this, so leaked keys are easy to scan for.
pub const KEY_PREFIX: &str = "wft_";
/// How long a verified key is trusted without asking the database again.
/// Revocation through this process takes effect at once; through another
/// replica within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// A stored API key (never the secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    pub name: String,
    /// The first characters of the secret, for recognising it.
    pub prefix: String,
    pub role: Role,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A key just created: the only time the secret is seen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret. Shown once; store it now.
    pub secret: String,
}

/// The API key store with a short-lived verification cache.
#[derive(Debug)]
pub struct ApiKeys {
    db: Db,
    cache: RwLock<HashMap<String, (Principal, Instant)>>,
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<ApiKey> {
    let role: String = row.try_get("role")?;
    Ok(ApiKey {
        id: ApiKeyId::from_raw(row.try_get::<String, _>("id")?),
        tenant_id: TenantId::from_raw(row.try_get::<String, _>("tenant_id")?),
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        role: Role::parse(&role).ok_or(Error::Invalid(format!("stored role {role}")))?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const COLUMNS: &str = "id, tenant_id, name, prefix, role, created_at, revoked_at";

impl ApiKeys {
    /// The store over `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Creates a key for `tenant` acting with `role` (user or admin).
    pub async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        created_by: Option<&UserId>,
    ) -> Result<CreatedApiKey> {
        if role == Role::Superadmin {
            return Err(Error::Invalid(
                "API keys act within a tenant: role must be user or admin".into(),
            ));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::Invalid("name must be 1-100 characters".into()));
        }
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let secret = format!("{KEY_PREFIX}{}", hex::encode(raw));
        let key = ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: tenant.clone(),
            name: name.to_owned(),
            prefix: secret[..KEY_PREFIX.len() + 8].to_owned(),
            role,
            created_at: now_ms(),
            revoked_at: None,
        };
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, role, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id.as_str())
        .bind(tenant.as_str())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(hash_secret(&secret))
        .bind(role.as_str())
        .bind(created_by.map(|u| u.as_str().to_owned()))
        .bind(key.created_at)
        .execute(self.db.pool())
        .await;
        match inserted {
            Err(e) if matches!(&e, sqlx::Error::Database(d) if d.is_foreign_key_violation()) => {
                Err(Error::NotFound("tenant"))
            }
            other => other
                .map(|_| CreatedApiKey { key, secret })
                .map_err(Into::into),
        }
    }

    /// Keys of `tenant`, revoked ones included.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
        )))
        .bind(tenant.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes key `id` of `tenant`; it stops working at once.
    pub async fn revoke(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<ApiKey> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id.as_str())
            .bind(tenant.as_str())
            .execute(self.db.pool())
            .await?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (p, _)| p.id != id.as_str());
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id.as_str())
        .bind(tenant.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        let key = row
            .as_ref()
            .map(from_row)
            .transpose()?
            .ok_or(Error::NotFound("API key"))?;
        if done.rows_affected() == 0 && key.revoked_at.is_none() {
            return Err(Error::NotFound("API key"));
        }
        Ok(key)
    }

    /// The principal behind `secret`, if it is a live key.
    pub async fn verify(&self, secret: &str) -> Result<Principal> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 128 {
            return Err(Error::InvalidCredentials);
        }
        let hash = hash_secret(secret);
        if let Some((principal, at)) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(principal.clone());
        }
        let row = sqlx::query(
            "SELECT k.id, k.name, k.role, k.tenant_id, t.slug FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(Error::InvalidCredentials)?;
        let role: String = row.try_get("role")?;
        let principal = Principal {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            tenant: Some(TenantId::from_raw(row.try_get::<String, _>("tenant_id")?)),
            tenant_slug: Some(row.try_get("slug")?),
            role: Role::parse(&role).ok_or(Error::InvalidCredentials)?,
            kind: CredentialKind::ApiKey,
        };
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 100_000 {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        cache.insert(hash, (principal.clone(), Instant::now()));
        Ok(principal)
    }
}
