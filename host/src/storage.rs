//! Tenant-scoped plugin storage: key-value entries and JSON documents, with
//! per-tenant quotas kept in the same transaction as every write.
//!
//! Every function takes an [`Owner`] — the (tenant, plugin) pair a call is
//! bound to — and every statement filters on both, so one tenant's data is
//! unreachable from another's calls whatever keys or cursors they pass. On
//! PostgreSQL, row-level security repeats the tenant check.

mod docs;
mod kv;
mod unit;

pub use docs::{Document, DocumentPage, Filter, FilterOp, Order, Query};
pub use kv::{Entry, EntryPage};
pub use unit::UnitOfWork;

use crate::config::QuotaConfig;
use crate::db::{self, Db, Engine, Exec, Stmt};
use crate::ids::TenantId;

/// Where a read runs: in a call's unit of work (which answers from what
/// it knows, and flushes before a scan), or in a read transaction.
#[derive(Debug)]
pub enum Reader<'a> {
    Unit(&'a mut UnitOfWork),
    Tx(&'a mut db::ReadTx, Owner<'a>),
}

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

    /// A read-only transaction for `owner`.
    pub async fn begin_read(&self, owner: Owner<'_>) -> Result<db::ReadTx> {
        Ok(self.db.begin_read(db::Scope::Tenant(owner.tenant)).await?)
    }

    async fn usage_in(&self, tx: &mut impl Exec, tenant: &TenantId) -> Result<StorageUsage> {
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT s.keys, s.bytes, COALESCE(t.quota_keys, $2) AS quota_keys, COALESCE(t.quota_bytes, $3) AS quota_bytes \
                     FROM tenant_storage s JOIN tenants t ON t.id = s.tenant_id WHERE s.tenant_id = $1",
                )
                .bind(tenant.as_str())
                .bind(self.quotas.keys)
                .bind(self.quotas.bytes),
            )
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
            keys: row.get(0)?,
            bytes: row.get(1)?,
            quota_keys: row.get(2)?,
            quota_bytes: row.get(3)?,
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
