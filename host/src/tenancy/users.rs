//! User accounts and password login.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::{Error, Principal, Result, Role, SessionToken, TokenSigner, passwords, tokens};
use crate::db::{self, Db};
use crate::ids::{TenantId, UserId, now_ms};

/// A user (never with its password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    #[schema(value_type = String)]
    pub id: UserId,
    /// `None` for a superadmin.
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<TenantId>,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
}

/// What is needed to create a user.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// `None` only for a superadmin.
    pub tenant: Option<&'a TenantId>,
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub role: Role,
}

/// The user directory.
#[derive(Debug, Clone)]
pub struct Users {
    db: Db,
    signer: TokenSigner,
}

const COLUMNS: &str = "id, tenant_id, email, name, role, disabled, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: UserId::from_raw(row.try_get::<String, _>("id")?),
        tenant_id: row
            .try_get::<Option<String>, _>("tenant_id")?
            .map(TenantId::from_raw),
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or(Error::Invalid(format!("stored role {role}")))?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// Trimmed and lowercased, and an address the outbox could send to
/// (`messaging::check_email`, the one address check).
fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    crate::messaging::check_email(&email)
        .map_err(|_| Error::Invalid("email is not a valid address".into()))?;
    Ok(email)
}

impl Users {
    /// The directory over `db`, issuing tokens with `signer`.
    pub fn new(db: Db, signer: TokenSigner) -> Self {
        Self { db, signer }
    }

    /// Creates a user. Superadmins have no tenant; everyone else has one.
    pub async fn create(&self, new: NewUser<'_>) -> Result<User> {
        if (new.role == Role::Superadmin) != new.tenant.is_none() {
            return Err(Error::Invalid(
                "superadmins have no tenant; every other user has one".into(),
            ));
        }
        let email = normalize_email(new.email)?;
        let name = new.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::Invalid("name must be 1-200 characters".into()));
        }
        if new.password.chars().count() < 8 || new.password.len() > 1024 {
            return Err(Error::Invalid("password must be 8-1024 characters".into()));
        }
        let user = User {
            id: UserId::generate(),
            tenant_id: new.tenant.cloned(),
            email,
            name: name.to_owned(),
            role: new.role,
            disabled: false,
            created_at: now_ms(),
        };
        let hash = passwords::hash(new.password)?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, tenant_id, email, name, password_hash, role, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        )
        .bind(user.id.as_str())
        .bind(user.tenant_id.as_ref().map(|t| t.as_str().to_owned()))
        .bind(&user.email)
        .bind(&user.name)
        .bind(hash)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .execute(self.db.pool())
        .await;
        match inserted {
            Err(e) if db::is_unique_violation(&e) => Err(Error::Conflict("user with this email")),
            Err(e) if matches!(&e, sqlx::Error::Database(d) if d.is_foreign_key_violation()) => {
                Err(Error::NotFound("tenant"))
            }
            other => other.map(|_| user).map_err(Into::into),
        }
    }

    /// Users of `tenant`.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<User>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY created_at, id"
        )))
        .bind(tenant.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Checks `email` + `password` (within the tenant `slug`, or among
    /// superadmins when `slug` is `None`) and issues a 24-hour session token.
    pub async fn login(
        &self,
        slug: Option<&str>,
        email: &str,
        password: &str,
    ) -> Result<(String, User)> {
        let email = email.trim().to_lowercase();
        let row = match slug {
            Some(slug) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT u.password_hash, t.slug, {} FROM users u JOIN tenants t ON t.id = u.tenant_id \
                     WHERE t.slug = $1 AND u.email = $2",
                    COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                )))
                .bind(slug)
                .bind(&email)
                .fetch_optional(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT password_hash, NULL AS slug, {COLUMNS} FROM users WHERE tenant_id IS NULL AND email = $1"
                )))
                .bind(&email)
                .fetch_optional(self.db.pool())
                .await?
            }
        };
        let Some(row) = row else {
            passwords::dummy_verify(password);
            return Err(Error::InvalidCredentials);
        };
        let hash: String = row.try_get("password_hash")?;
        let user = from_row(&row)?;
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || passwords::verify(&password, &hash))
            .await
            .unwrap_or(false);
        if !ok || user.disabled {
            return Err(Error::InvalidCredentials);
        }
        let now = now_ms() / 1000;
        let token = self.signer.sign(&SessionToken {
            sub: user.id.to_string(),
            name: user.name.clone(),
            tid: user.tenant_id.as_ref().map(ToString::to_string),
            tslug: row.try_get::<Option<String>, _>("slug")?,
            role: user.role,
            iat: now,
            exp: now + tokens::SESSION_TTL_SECS,
        });
        Ok((token, user))
    }

    /// The principal behind a session token.
    pub fn verify_session(&self, token: &str) -> Result<Principal> {
        let claims = self.signer.verify(token, now_ms() / 1000)?;
        Ok(Principal {
            id: claims.sub,
            name: claims.name,
            tenant: claims.tid.map(TenantId::from_raw),
            tenant_slug: claims.tslug,
            role: claims.role,
            kind: super::CredentialKind::Session,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            super::normalize_email(" Ann@Example.com ").expect("ok"),
            "ann@example.com"
        );
        assert!(super::normalize_email("no-at-sign").is_err());
        assert!(super::normalize_email("a@b").is_err());
        assert!(super::normalize_email("a b@c.d").is_err());
    }
}
