//! The tenant-scoped plugin log: what plugins wrote through `log` or to
//! stdout/stderr, capped per call (by the runtime) and per plugin (here).

use serde::Serialize;
use sqlx::AssertSqlSafe;
use sqlx::Row;

use crate::capabilities::LogLine;
use crate::db::{self, Db};
use crate::ids::{TenantId, now_ms};

/// A stored log line.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredLine {
    pub id: i64,
    pub plugin: String,
    pub request_id: String,
    pub stream: String,
    pub message: String,
    pub created_at: i64,
}

/// Appends lines of one call, then keeps only the newest `keep` lines of
/// that (tenant, plugin).
pub async fn append(
    db: &Db,
    tenant: &TenantId,
    plugin: &str,
    request_id: &str,
    lines: &[LogLine],
    keep: i64,
) -> Result<(), db::Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin(db::Scope::Tenant(tenant), db::Mode::Write).await?;
    let now = now_ms();
    for chunk in lines.chunks(200) {
        let mut sql = String::from(
            "INSERT INTO plugin_logs (tenant_id, plugin, request_id, stream, message, created_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 6;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            ));
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for line in chunk {
            q = q
                .bind(tenant.as_str())
                .bind(plugin)
                .bind(request_id)
                .bind(line.stream)
                .bind(&line.message)
                .bind(now);
        }
        q.execute(&mut *tx).await.map_err(db::Error::from)?;
    }
    sqlx::query(
        "DELETE FROM plugin_logs WHERE tenant_id = $1 AND plugin = $2 AND id <= \
         (SELECT id FROM plugin_logs WHERE tenant_id = $1 AND plugin = $2 ORDER BY id DESC LIMIT 1 OFFSET $3)",
    )
    .bind(tenant.as_str())
    .bind(plugin)
    .bind(keep)
    .execute(&mut *tx)
    .await
    .map_err(db::Error::from)?;
    tx.commit().await.map_err(db::Error::from)?;
    Ok(())
}

/// The newest `limit` lines of `plugin` for `tenant`, newest first.
pub async fn recent(
    db: &Db,
    tenant: &TenantId,
    plugin: &str,
    limit: i64,
) -> Result<Vec<StoredLine>, db::Error> {
    let mut tx = db.begin(db::Scope::Tenant(tenant), db::Mode::Read).await?;
    let rows = sqlx::query(
        "SELECT id, plugin, request_id, stream, message, created_at FROM plugin_logs \
         WHERE tenant_id = $1 AND plugin = $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(plugin)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(db::Error::from)?;
    tx.commit().await.map_err(db::Error::from)?;
    rows.iter()
        .map(|r| {
            Ok(StoredLine {
                id: r.try_get("id")?,
                plugin: r.try_get("plugin")?,
                request_id: r.try_get("request_id")?,
                stream: r.try_get("stream")?,
                message: r.try_get("message")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db::Error::from)
}
