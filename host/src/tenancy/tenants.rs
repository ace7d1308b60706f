//! Tenants: the businesses on the platform.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::{Error, Result};
use crate::db::{self, Db};
use crate::ids::{TenantId, now_ms};

/// A tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    #[schema(value_type = String)]
    pub id: TenantId,
    /// URL name: `[a-z0-9][a-z0-9-]{1,62}`.
    pub slug: String,
    pub name: String,
    /// kv keys + documents allowed (`None`: the operator's default).
    pub quota_keys: Option<i64>,
    /// Stored bytes allowed (`None`: the operator's default).
    pub quota_bytes: Option<i64>,
    pub created_at: i64,
}

/// The tenant directory.
#[derive(Debug, Clone)]
pub struct Tenants {
    db: Db,
}

/// Checks a tenant slug.
pub fn validate_slug(slug: &str) -> Result<()> {
    let ok = (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && slug.as_bytes()[0] != b'-';
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            "slug must be 2-63 characters of a-z, 0-9 and '-', not starting with '-'".into(),
        ))
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId::from_raw(row.try_get::<String, _>("id")?),
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        quota_keys: row.try_get("quota_keys")?,
        quota_bytes: row.try_get("quota_bytes")?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str = "id, slug, name, quota_keys, quota_bytes, created_at";

impl Tenants {
    /// The directory over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Creates a tenant.
    pub async fn create(&self, slug: &str, name: &str) -> Result<Tenant> {
        validate_slug(slug)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::Invalid("name must be 1-200 characters".into()));
        }
        let tenant = Tenant {
            id: TenantId::generate(),
            slug: slug.to_owned(),
            name: name.to_owned(),
            quota_keys: None,
            quota_bytes: None,
            created_at: now_ms(),
        };
        let mut tx = self
            .db
            .begin(db::Scope::Tenant(&tenant.id), db::Mode::Write)
            .await?;
        let inserted =
            sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(tenant.id.as_str())
                .bind(&tenant.slug)
                .bind(&tenant.name)
                .bind(tenant.created_at)
                .execute(&mut *tx)
                .await;
        match inserted {
            Err(e) if db::is_unique_violation(&e) => return Err(Error::Conflict("tenant slug")),
            other => other?,
        };
        sqlx::query("INSERT INTO tenant_storage (tenant_id, keys, bytes) VALUES ($1, 0, 0)")
            .bind(tenant.id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// All tenants, oldest first.
    pub async fn list(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tenants ORDER BY created_at, id"
        )))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The tenant with `slug`.
    pub async fn by_slug(&self, slug: &str) -> Result<Tenant> {
        self.find_by("slug", slug).await
    }

    /// The tenant with `id`.
    pub async fn by_id(&self, id: &TenantId) -> Result<Tenant> {
        self.find_by("id", id.as_str()).await
    }

    /// The tenant whose unique `column` (a constant: `id` or `slug`) is `value`.
    async fn find_by(&self, column: &'static str, value: &str) -> Result<Tenant> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tenants WHERE {column} = $1"
        )))
        .bind(value)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref()
            .map(from_row)
            .transpose()?
            .ok_or(Error::NotFound("tenant"))
    }

    /// Sets the tenant's own quotas (`None`: back to the operator's default).
    pub async fn set_quotas(
        &self,
        id: &TenantId,
        keys: Option<i64>,
        bytes: Option<i64>,
    ) -> Result<Tenant> {
        if keys.is_some_and(|k| k < 0) || bytes.is_some_and(|b| b < 0) {
            return Err(Error::Invalid("quotas must not be negative".into()));
        }
        let done =
            sqlx::query("UPDATE tenants SET quota_keys = $1, quota_bytes = $2 WHERE id = $3")
                .bind(keys)
                .bind(bytes)
                .bind(id.as_str())
                .execute(self.db.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("tenant"));
        }
        self.by_id(id).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert!(super::validate_slug("acme").is_ok());
        assert!(super::validate_slug("acme-2").is_ok());
        assert!(super::validate_slug("-acme").is_err());
        assert!(super::validate_slug("Acme").is_err());
        assert!(super::validate_slug("a").is_err());
        assert!(super::validate_slug("a/b").is_err());
    }
}
