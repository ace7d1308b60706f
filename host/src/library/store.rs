//! The library's rows: items, their versions, ratings, uses and the
//! record of generation requests. Every read names the owners it may see
//! (`tenant_id IS NULL OR tenant_id = $tenant`) even where PostgreSQL's
//! row-level security would also stop it.

use sqlx::{AssertSqlSafe, Row};

use super::item::ItemInput;
use crate::db::{self, Db, Mode, Scope};
use crate::ids::{TenantId, now_ms};

/// Whose items: the global library's or one tenant's.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Global,
    Tenant(&'a TenantId),
}

impl Owner<'_> {
    fn scope(&self) -> Scope<'_> {
        match self {
            Owner::Global => Scope::Platform,
            Owner::Tenant(t) => Scope::Tenant(t),
        }
    }

    /// The condition on `column` that keeps `owner`'s rows, the tenant
    /// bound at `$param`.
    fn filter(&self, column: &str, param: usize) -> String {
        match self {
            Owner::Global => format!("{column} IS NULL"),
            Owner::Tenant(_) => format!("{column} = ${param}"),
        }
    }

    fn tenant(&self) -> Option<&str> {
        match self {
            Owner::Global => None,
            Owner::Tenant(t) => Some(t.as_str()),
        }
    }
}

/// One version of an item with the item's counters.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: String,
    pub tenant: Option<String>,
    pub current_version: i64,
    pub version: i64,
    pub input: ItemInput,
    pub embedding: Option<Vec<u8>>,
    pub lint_violations: i64,
    pub uses: i64,
    pub stars: i64,
    pub ratings: i64,
    pub tests_pass: Option<bool>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version_created_at: i64,
    pub version_created_by: String,
}

const COLS: &str = "i.id, i.tenant_id, i.current_version, i.uses, i.stars, i.ratings, \
     i.tests_pass, i.created_at, i.updated_at, v.version, v.title, v.description, v.language, \
     v.kind, v.tags, v.license, v.dependencies, v.placeholders, v.code, v.embedding, \
     v.lint_violations, v.created_at AS v_created_at, v.created_by AS v_created_by";

fn json_list<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
    serde_json::from_str(text).unwrap_or_default()
}

fn decode(r: &sqlx::any::AnyRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant_id")?,
        current_version: r.try_get("current_version")?,
        version: r.try_get("version")?,
        input: ItemInput {
            title: r.try_get("title")?,
            description: r.try_get("description")?,
            language: r.try_get("language")?,
            kind: r.try_get("kind")?,
            tags: json_list(&r.try_get::<String, _>("tags")?),
            license: r.try_get("license")?,
            dependencies: json_list(&r.try_get::<String, _>("dependencies")?),
            placeholders: json_list(&r.try_get::<String, _>("placeholders")?),
            code: r.try_get("code")?,
        },
        embedding: r.try_get("embedding")?,
        lint_violations: r.try_get("lint_violations")?,
        uses: r.try_get("uses")?,
        stars: r.try_get("stars")?,
        ratings: r.try_get("ratings")?,
        tests_pass: r.try_get::<Option<i64>, _>("tests_pass")?.map(|v| v != 0),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        version_created_at: r.try_get("v_created_at")?,
        version_created_by: r.try_get("v_created_by")?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// The current version of every live item of `owner` (only its own, not
/// the global ones for a tenant).
pub async fn current(db: &Db, owner: Owner<'_>) -> Result<Vec<Stored>, db::Error> {
    let mut tx = db.begin(owner.scope(), Mode::Read).await?;
    let filter = owner.filter("i.tenant_id", 1);
    let sql = format!(
        "SELECT {COLS} FROM library_items i JOIN library_versions v \
         ON v.item_id = i.id AND v.version = i.current_version \
         WHERE {filter} AND i.deleted_at IS NULL ORDER BY i.id"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    if let Some(t) = owner.tenant() {
        q = q.bind(t.to_owned());
    }
    let rows = q.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Version `version` (the current one when `None`) of item `id`, if
/// `tenant` (or, with `None`, the platform) may see it.
pub async fn get(
    db: &Db,
    tenant: Option<&TenantId>,
    id: &str,
    version: Option<i64>,
) -> Result<Option<Stored>, db::Error> {
    let scope = tenant.map_or(Scope::Platform, Scope::Tenant);
    let mut tx = db.begin(scope, Mode::Read).await?;
    let version_filter = if version.is_some() {
        "v.version = $3"
    } else {
        "v.version = i.current_version"
    };
    let sql = format!(
        "SELECT {COLS} FROM library_items i JOIN library_versions v ON v.item_id = i.id \
         AND {version_filter} WHERE i.id = $1 AND i.deleted_at IS NULL \
         AND (i.tenant_id IS NULL OR i.tenant_id = $2 OR $2 = '*')"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_owned())
        .bind(tenant.map_or("*".to_owned(), |t| t.as_str().to_owned()));
    if let Some(v) = version {
        q = q.bind(v);
    }
    let row = q.fetch_optional(&mut *tx).await?;
    tx.commit().await?;
    Ok(row.as_ref().map(decode).transpose()?)
}

/// Every version of item `id`: (version, title, created_at, created_by), oldest first.
pub async fn versions(
    db: &Db,
    tenant: Option<&TenantId>,
    id: &str,
) -> Result<Vec<(i64, String, i64, String)>, db::Error> {
    let scope = tenant.map_or(Scope::Platform, Scope::Tenant);
    let mut tx = db.begin(scope, Mode::Read).await?;
    let rows = sqlx::query(
        "SELECT v.version, v.title, v.created_at, v.created_by FROM library_versions v \
         JOIN library_items i ON i.id = v.item_id WHERE v.item_id = $1 AND i.deleted_at IS NULL \
         AND (i.tenant_id IS NULL OR i.tenant_id = $2 OR $2 = '*') ORDER BY v.version",
    )
    .bind(id.to_owned())
    .bind(tenant.map_or("*".to_owned(), |t| t.as_str().to_owned()))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("version")?,
                r.try_get("title")?,
                r.try_get("created_at")?,
                r.try_get("created_by")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db::Error::from)
}

/// A new version's row values.
#[derive(Debug)]
pub struct NewVersion<'a> {
    pub input: &'a ItemInput,
    pub created_by: &'a str,
    pub embedding: Option<Vec<u8>>,
    pub lint_violations: i64,
}

async fn insert_version(
    tx: &mut db::Tx,
    owner: Owner<'_>,
    id: &str,
    version: i64,
    v: &NewVersion<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let i = v.input;
    sqlx::query(
        "INSERT INTO library_versions (item_id, version, tenant_id, title, description, language, \
         kind, tags, license, dependencies, placeholders, code, code_hash, embedding, \
         lint_violations, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(id.to_owned())
    .bind(version)
    .bind(owner.tenant().map(str::to_owned))
    .bind(i.title.trim().to_owned())
    .bind(i.description.clone())
    .bind(i.language.clone())
    .bind(i.kind.clone())
    .bind(to_json(&i.tags))
    .bind(i.license.trim().to_owned())
    .bind(to_json(&i.dependencies))
    .bind(to_json(&i.placeholders))
    .bind(i.code.clone())
    .bind(i.code_hash())
    .bind(v.embedding.clone())
    .bind(v.lint_violations)
    .bind(v.created_by.to_owned())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates item `id` of `owner` with its first version.
pub async fn create(
    db: &Db,
    owner: Owner<'_>,
    id: &str,
    v: &NewVersion<'_>,
) -> Result<(), db::Error> {
    let now = now_ms();
    let mut tx = db.begin(owner.scope(), Mode::Write).await?;
    sqlx::query(
        "INSERT INTO library_items (id, tenant_id, current_version, created_by, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $4)",
    )
    .bind(id.to_owned())
    .bind(owner.tenant().map(str::to_owned))
    .bind(v.created_by.to_owned())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    insert_version(&mut tx, owner, id, 1, v, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds a version to item `id` of `owner` and makes it current; `None`
/// when `owner` has no such live item.
pub async fn add_version(
    db: &Db,
    owner: Owner<'_>,
    id: &str,
    v: &NewVersion<'_>,
) -> Result<Option<i64>, db::Error> {
    let now = now_ms();
    let mut tx = db.begin(owner.scope(), Mode::Write).await?;
    let filter = owner.filter("tenant_id", 3);
    let sql = format!(
        "UPDATE library_items SET current_version = current_version + 1, updated_at = $2 \
         WHERE id = $1 AND deleted_at IS NULL AND {filter} RETURNING current_version"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_owned())
        .bind(now);
    if let Some(t) = owner.tenant() {
        q = q.bind(t.to_owned());
    }
    let Some(row) = q.fetch_optional(&mut *tx).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let version: i64 = row.try_get("current_version")?;
    insert_version(&mut tx, owner, id, version, v, now).await?;
    tx.commit().await?;
    Ok(Some(version))
}

/// Stores the embedding of a version computed after it was written.
pub async fn set_embedding(
    db: &Db,
    id: &str,
    version: i64,
    embedding: &[u8],
) -> Result<(), db::Error> {
    let mut tx = db.begin(Scope::Platform, Mode::Write).await?;
    sqlx::query("UPDATE library_versions SET embedding = $3 WHERE item_id = $1 AND version = $2")
        .bind(id.to_owned())
        .bind(version)
        .bind(embedding.to_vec())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// An item row changed at `updated_at` (added, edited or deleted).
#[derive(Debug)]
pub struct Changed {
    pub id: String,
    pub tenant: Option<String>,
    pub updated_at: i64,
    pub deleted: bool,
}

/// Items of any owner changed after `since` (ms), oldest first, at most
/// `limit`.
pub async fn changed_since(db: &Db, since: i64, limit: i64) -> Result<Vec<Changed>, db::Error> {
    let mut tx = db.begin(Scope::Platform, Mode::Read).await?;
    let rows = sqlx::query(
        "SELECT id, tenant_id, updated_at, deleted_at FROM library_items \
         WHERE updated_at > $1 ORDER BY updated_at, id LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(Changed {
                id: r.try_get("id")?,
                tenant: r.try_get("tenant_id")?,
                updated_at: r.try_get("updated_at")?,
                deleted: r.try_get::<Option<i64>, _>("deleted_at")?.is_some(),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Marks item `id` of `owner` deleted (its versions stay); whether it was live.
pub async fn delete(db: &Db, owner: Owner<'_>, id: &str) -> Result<bool, db::Error> {
    let mut tx = db.begin(owner.scope(), Mode::Write).await?;
    let filter = owner.filter("tenant_id", 3);
    let sql = format!(
        "UPDATE library_items SET deleted_at = $2, updated_at = $2 \
         WHERE id = $1 AND deleted_at IS NULL AND {filter}"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_owned())
        .bind(now_ms());
    if let Some(t) = owner.tenant() {
        q = q.bind(t.to_owned());
    }
    let done = q.execute(&mut *tx).await?.rows_affected() > 0;
    tx.commit().await?;
    Ok(done)
}

/// Records `user`'s rating of item `id` (replacing theirs) and returns the
/// item's new (sum of stars, number of ratings) over every tenant.
pub async fn rate(
    db: &Db,
    tenant: &TenantId,
    user: &str,
    id: &str,
    stars: i64,
) -> Result<(i64, i64), db::Error> {
    // The totals span tenants (a global item is rated by many), so this
    // runs as the platform; the caller checked the item is visible.
    let mut tx = db.begin(Scope::Platform, Mode::Write).await?;
    sqlx::query(
        "INSERT INTO library_ratings (item_id, tenant_id, user_id, stars, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (item_id, tenant_id, user_id) \
         DO UPDATE SET stars = excluded.stars, created_at = excluded.created_at",
    )
    .bind(id.to_owned())
    .bind(tenant.as_str().to_owned())
    .bind(user.to_owned())
    .bind(stars)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "UPDATE library_items SET \
         stars = (SELECT COALESCE(SUM(stars), 0) FROM library_ratings WHERE item_id = $1), \
         ratings = (SELECT COUNT(*) FROM library_ratings WHERE item_id = $1) \
         WHERE id = $1 RETURNING stars, ratings",
    )
    .bind(id.to_owned())
    .fetch_one(&mut *tx)
    .await?;
    let totals = (row.try_get("stars")?, row.try_get("ratings")?);
    tx.commit().await?;
    Ok(totals)
}

/// Counts one use of item `id`; its new use count.
pub async fn record_use(db: &Db, id: &str) -> Result<i64, db::Error> {
    let mut tx = db.begin(Scope::Platform, Mode::Write).await?;
    let row = sqlx::query("UPDATE library_items SET uses = uses + 1 WHERE id = $1 RETURNING uses")
        .bind(id.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.map(|r| r.try_get("uses")).transpose()?.unwrap_or(0))
}

/// Records a search-first generation request of `tenant`.
pub async fn record_request(
    db: &Db,
    tenant: &TenantId,
    query: &str,
    served_by: &str,
    item: Option<&str>,
    confidence: f64,
) -> Result<(), db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Write).await?;
    sqlx::query(
        "INSERT INTO library_requests (id, tenant_id, query, served_by, item_id, confidence, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(tenant.as_str().to_owned())
    .bind(query.chars().take(2_000).collect::<String>())
    .bind(served_by.to_owned())
    .bind(item.map(str::to_owned))
    .bind(confidence)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// (requests served from the library, all requests) of `tenant`, or of
/// every tenant with `None`, since `since` (ms).
pub async fn hit_rate(
    db: &Db,
    tenant: Option<&TenantId>,
    since: i64,
) -> Result<(i64, i64), db::Error> {
    let scope = tenant.map_or(Scope::Platform, Scope::Tenant);
    let mut tx = db.begin(scope, Mode::Read).await?;
    let row = sqlx::query(
        "SELECT COALESCE(SUM(CASE WHEN served_by = 'library' THEN 1 ELSE 0 END), 0) AS hits, \
         COUNT(*) AS total FROM library_requests WHERE created_at >= $1 AND (tenant_id = $2 OR $2 = '*')",
    )
    .bind(since)
    .bind(tenant.map_or("*".to_owned(), |t| t.as_str().to_owned()))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((row.try_get("hits")?, row.try_get("total")?))
}

/// A live item visible to `tenant` whose current code has `hash`.
pub async fn find_by_hash(
    db: &Db,
    tenant: &TenantId,
    hash: &str,
) -> Result<Option<String>, db::Error> {
    let mut tx = db.begin(Scope::Tenant(tenant), Mode::Read).await?;
    let row = sqlx::query(
        "SELECT i.id FROM library_versions v JOIN library_items i \
         ON i.id = v.item_id AND v.version = i.current_version \
         WHERE v.code_hash = $1 AND i.deleted_at IS NULL \
         AND (i.tenant_id IS NULL OR i.tenant_id = $2) ORDER BY i.id LIMIT 1",
    )
    .bind(hash.to_owned())
    .bind(tenant.as_str().to_owned())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}
