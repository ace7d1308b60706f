//! Tenant-scoped plugin storage: key-value entries and JSON documents, with
//! per-tenant quotas kept in the same transaction as every write.
//!
//! Every function takes an [`Owner`] — the (tenant, plugin) pair a call is
//! bound to — and every statement filters on both, so one tenant's data is
//! unreachable from another's calls whatever keys or cursors they pass. On
//! PostgreSQL, row-level security repeats the tenant check.

mod docs;
mod kv;

pub use docs::{Document, DocumentPage, Filter, FilterOp, Order, Query};
pub use kv::{Entry, EntryPage};

use crate::config::QuotaConfig;
use crate::db::{self, Db, Engine};
use crate::ids::TenantId;

/// Whose data a call touches: the binding of the Store making it.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub tenant: &'a TenantId,
    pub plugin: &'a str,
}

/// Why a storage call was refused. Everything but `Db` is the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("value larger than {0} bytes")]
    ValueTooLarge(u64),
    #[error("quota exceeded: {0}")]
    QuotaExceeded(&'static str),
    #[error("stored value is not an integer")]
    NotAnInteger,
    #[error("integer overflow")]
    Overflow,
    #[error("invalid page: {0}")]
    InvalidPage(String),
    #[error("invalid collection: {0}")]
    InvalidCollection(String),
    #[error("invalid document id: {0}")]
    InvalidId(String),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("document larger than {0} bytes")]
    DocumentTooLarge(u64),
    #[error("version conflict (current version {0})")]
    VersionConflict(u64),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
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

/// kv and docs over one database.
#[derive(Debug, Clone)]
pub struct Storage {
    db: Db,
    quotas: QuotaConfig,
}

/// Usage a tenant has against its quotas.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct StorageUsage {
    pub keys: i64,
    pub bytes: i64,
    pub quota_keys: i64,
    pub quota_bytes: i64,
}

impl Storage {
    /// Storage over `db` with default `quotas`.
    pub fn new(db: Db, quotas: QuotaConfig) -> Self {
        Self { db, quotas }
    }

    /// A write transaction for `owner`: one plugin call's unit of work.
    pub async fn begin_write(&self, owner: Owner<'_>) -> Result<db::Tx> {
        let mut tx = self
            .db
            .begin(db::Scope::Tenant(owner.tenant), db::Mode::Write)
            .await?;
        // Lock the tenant's storage row first: every write of a tenant is
        // serialized from here on, so read-modify-write (increment, CAS, the
        // quota deltas) never loses an update on PostgreSQL's READ COMMITTED.
        // SQLite's BEGIN IMMEDIATE already serialized it.
        if self.db.engine() == Engine::Postgres {
            sqlx::query("SELECT 1 FROM tenant_storage WHERE tenant_id = $1 FOR UPDATE")
                .bind(owner.tenant.as_str())
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// A read-only transaction for `owner`.
    pub async fn begin_read(&self, owner: Owner<'_>) -> Result<db::Tx> {
        Ok(self
            .db
            .begin(db::Scope::Tenant(owner.tenant), db::Mode::Read)
            .await?)
    }

    /// Adds `keys` and `bytes` (either may be negative) to the tenant's
    /// usage, refusing growth past its quota.
    async fn charge(
        &self,
        tx: &mut db::Tx,
        tenant: &TenantId,
        keys: i64,
        bytes: i64,
    ) -> Result<()> {
        if keys == 0 && bytes == 0 {
            return Ok(());
        }
        let done = sqlx::query(
            "UPDATE tenant_storage SET keys = keys + $2, bytes = bytes + $3 WHERE tenant_id = $1 \
             AND ($2 <= 0 OR keys + $2 <= COALESCE((SELECT quota_keys FROM tenants WHERE id = $1), $4)) \
             AND ($3 <= 0 OR bytes + $3 <= COALESCE((SELECT quota_bytes FROM tenants WHERE id = $1), $5))",
        )
        .bind(tenant.as_str())
        .bind(keys)
        .bind(bytes)
        .bind(self.quotas.keys)
        .bind(self.quotas.bytes)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let usage = self.usage_in(tx, tenant).await?;
        Err(Error::QuotaExceeded(
            if keys > 0 && usage.keys + keys > usage.quota_keys {
                "keys"
            } else {
                "bytes"
            },
        ))
    }

    async fn usage_in(&self, tx: &mut db::Tx, tenant: &TenantId) -> Result<StorageUsage> {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT s.keys, s.bytes, COALESCE(t.quota_keys, $2) AS quota_keys, COALESCE(t.quota_bytes, $3) AS quota_bytes \
             FROM tenant_storage s JOIN tenants t ON t.id = s.tenant_id WHERE s.tenant_id = $1",
        )
        .bind(tenant.as_str())
        .bind(self.quotas.keys)
        .bind(self.quotas.bytes)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(StorageUsage {
                keys: 0,
                bytes: 0,
                quota_keys: self.quotas.keys,
                quota_bytes: self.quotas.bytes,
            });
        };
        Ok(StorageUsage {
            keys: row.try_get("keys")?,
            bytes: row.try_get("bytes")?,
            quota_keys: row.try_get("quota_keys")?,
            quota_bytes: row.try_get("quota_bytes")?,
        })
    }

    /// The tenant's storage usage and quotas.
    pub async fn usage(&self, tenant: &TenantId) -> Result<StorageUsage> {
        let mut tx = self
            .db
            .begin(db::Scope::Tenant(tenant), db::Mode::Read)
            .await?;
        let usage = self.usage_in(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(usage)
    }

    fn blob_len(&self) -> &'static str {
        match self.db.engine() {
            Engine::Sqlite => "length",
            Engine::Postgres => "octet_length",
        }
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
