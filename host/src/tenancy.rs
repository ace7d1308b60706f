//! Tenants, users, roles and credentials (passwords, session tokens, API keys).
//!
//! The tenant of a request always comes from its credential: a session token
//! names the user's tenant, an API key belongs to exactly one tenant.

mod api_keys;
mod passwords;
mod principal;
mod tenants;
mod tokens;
mod users;

pub use api_keys::{ApiKey, ApiKeys, CreatedApiKey};

/// What every API key secret starts with.
pub fn api_keys_prefix() -> &'static str {
    api_keys::KEY_PREFIX
}
pub use principal::{CredentialKind, Principal, Role};
pub use tenants::{Tenant, Tenants};
pub use tokens::{SessionToken, TokenSigner};
pub use users::{NewUser, User, Users};

/// Why a tenancy operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that can never be valid; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique name is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// Wrong password, unknown user, bad or expired token, revoked key.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
