//! Stored answers to requests that carried an `Idempotency-Key`: a retry
//! gets the first answer back instead of running (and billing) again.

use sqlx::Row;

use crate::db::{self, Db};
use crate::ids::{TenantId, now_ms};

/// A stored response.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a key's first use found.
#[derive(Debug)]
pub enum Claim {
    /// This request owns the key: run it, then [`complete`] or [`release`].
    Fresh,
    /// A request with this key already finished: replay its answer.
    Done(StoredResponse),
    /// A request with this key is still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `key` for a request whose method, path and body hash to `fingerprint`.
pub async fn claim(
    db: &Db,
    tenant: &TenantId,
    key: &str,
    plugin: &str,
    fingerprint: &str,
) -> Result<Claim, db::Error> {
    let mut tx = db.begin(db::Scope::Tenant(tenant), db::Mode::Write).await?;
    let row = sqlx::query("SELECT fingerprint, status, headers, body FROM idempotent_responses WHERE tenant_id = $1 AND key = $2")
        .bind(tenant.as_str())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db::Error::from)?;
    let claim = match row {
        Some(row) => {
            let stored_fp: String = row.try_get("fingerprint").map_err(db::Error::from)?;
            let status: Option<i64> = row.try_get("status").map_err(db::Error::from)?;
            match status {
                _ if stored_fp != fingerprint => Claim::Mismatch,
                None => Claim::InFlight,
                Some(status) => {
                    let headers: Option<String> =
                        row.try_get("headers").map_err(db::Error::from)?;
                    Claim::Done(StoredResponse {
                        status: u16::try_from(status).unwrap_or(500),
                        headers: headers
                            .and_then(|h| serde_json::from_str(&h).ok())
                            .unwrap_or_default(),
                        body: row
                            .try_get::<Option<Vec<u8>>, _>("body")
                            .map_err(db::Error::from)?
                            .unwrap_or_default(),
                    })
                }
            }
        }
        None => {
            sqlx::query("INSERT INTO idempotent_responses (tenant_id, key, plugin, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant.as_str())
                .bind(key)
                .bind(plugin)
                .bind(fingerprint)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db::Error::from)?;
            Claim::Fresh
        }
    };
    tx.commit().await.map_err(db::Error::from)?;
    Ok(claim)
}

/// Stores the answer for a claimed key.
pub async fn complete(
    db: &Db,
    tenant: &TenantId,
    key: &str,
    response: &StoredResponse,
) -> Result<(), db::Error> {
    let mut tx = db.begin(db::Scope::Tenant(tenant), db::Mode::Write).await?;
    sqlx::query("UPDATE idempotent_responses SET status = $1, headers = $2, body = $3 WHERE tenant_id = $4 AND key = $5")
        .bind(i64::from(response.status))
        .bind(serde_json::to_string(&response.headers).unwrap_or_else(|_| "[]".into()))
        .bind(&response.body)
        .bind(tenant.as_str())
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(db::Error::from)?;
    tx.commit().await.map_err(db::Error::from)?;
    Ok(())
}

/// Gives a claimed key up (the call never ran), so a retry may run it.
pub async fn release(db: &Db, tenant: &TenantId, key: &str) -> Result<(), db::Error> {
    let mut tx = db.begin(db::Scope::Tenant(tenant), db::Mode::Write).await?;
    sqlx::query(
        "DELETE FROM idempotent_responses WHERE tenant_id = $1 AND key = $2 AND status IS NULL",
    )
    .bind(tenant.as_str())
    .bind(key)
    .execute(&mut *tx)
    .await
    .map_err(db::Error::from)?;
    tx.commit().await.map_err(db::Error::from)?;
    Ok(())
}
