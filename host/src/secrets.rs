//! Secrets a tenant brings — its own LLM provider keys today, messaging
//! credentials next — encrypted at rest.
//!
//! AES-256-GCM under the operator's secrets key (`secrets_key` /
//! `WEFT_SECRETS_KEY`, 64 hex characters; without one, a random key is
//! made once and kept in `data_dir/secrets.key`). Every value has its own
//! random nonce, and the tenant id and the secret's name are the associated
//! data: a ciphertext copied to another tenant or name does not decrypt.
//! Values never leave the host through the API; listings show the last
//! four characters only. Replicas of one installation must share the key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use crate::db::{self, Db, Exec, Mode, Scope, Stmt};
use crate::ids::{TenantId, now_ms};

/// Why a secret could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    /// The secrets key is not 64 hex characters.
    #[error("the secrets key must be 64 hex characters (32 bytes)")]
    BadKey,
    /// A stored value does not decrypt under this key (another key, or a
    /// row that was tampered with).
    #[error("secret {0:?} does not decrypt with this installation's secrets key")]
    Undecryptable(String),
    /// Encryption itself failed (the system's random source).
    #[error("encrypting a secret failed")]
    Crypto,
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stored secret as listed: never its value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretInfo {
    pub name: String,
    /// The value's last four characters.
    pub hint: String,
    pub updated_at: i64,
}

/// How long decrypted values of a tenant are reused (changes made through
/// this process drop them at once).
const CACHE_TTL: Duration = Duration::from_secs(5);

type Cached = (HashMap<String, String>, Instant);

/// The tenant secrets store.
pub struct Secrets {
    db: Db,
    key: LessSafeKey,
    rng: SystemRandom,
    /// Decrypted values by tenant and name prefix.
    cache: RwLock<HashMap<(TenantId, String), Cached>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive()
    }
}

/// The key `configured` names, or the one kept in `data_dir` (made on first
/// use).
pub fn load_key(configured: &str, data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let decode =
        |text: &str| -> Option<[u8; 32]> { hex::decode(text.trim()).ok()?.try_into().ok() };
    if !configured.is_empty() {
        return decode(configured).ok_or_else(|| Error::BadKey.into());
    }
    let path = data_dir.join("secrets.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return decode(&text)
            .ok_or_else(|| anyhow::anyhow!("{}: {}", path.display(), Error::BadKey));
    }
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Error::Crypto)?;
    std::fs::create_dir_all(data_dir)?;
    write_private(&path, hex::encode(key).as_bytes())?;
    Ok(key)
}

/// Writes `bytes` to a new file only the owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

fn aad(tenant: &TenantId, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.as_str().len() + name.len() + 1);
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn hint(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

impl Secrets {
    /// The store over `db` with `key`.
    pub fn new(db: Db, key: &[u8; 32]) -> Result<Self> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::BadKey)?;
        Ok(Self {
            db,
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
            cache: RwLock::new(HashMap::new()),
        })
    }

    fn seal(&self, tenant: &TenantId, name: &str, value: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Error::Crypto)?;
        let mut data = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tenant, name)),
                &mut data,
            )
            .map_err(|_| Error::Crypto)?;
        Ok((nonce.to_vec(), data))
    }

    fn open(&self, tenant: &TenantId, name: &str, nonce: &[u8], sealed: Vec<u8>) -> Result<String> {
        let undecryptable = || Error::Undecryptable(name.to_owned());
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
        let mut data = sealed;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(tenant, name)), &mut data)
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())
    }

    fn forget(&self, tenant: &TenantId) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _), _| t != tenant);
    }

    /// Stores `value` as `name` (replacing it).
    pub async fn put(&self, tenant: &TenantId, name: &str, value: &str) -> Result<SecretInfo> {
        let (nonce, sealed) = self.seal(tenant, name, value)?;
        let info = SecretInfo {
            name: name.to_owned(),
            hint: hint(value),
            updated_at: now_ms(),
        };
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Write).await?;
        tx.execute(
            Stmt::new(
                "INSERT INTO tenant_secrets (tenant_id, name, nonce, ciphertext, hint, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, name) DO UPDATE SET \
                 nonce = excluded.nonce, ciphertext = excluded.ciphertext, hint = excluded.hint, \
                 updated_at = excluded.updated_at",
            )
            .bind(tenant.as_str())
            .bind(name)
            .bind(nonce)
            .bind(sealed)
            .bind(info.hint.as_str())
            .bind(info.updated_at),
        )
        .await?;
        tx.commit().await.map_err(db::Error::from)?;
        self.forget(tenant);
        Ok(info)
    }

    /// Removes `name`; whether it existed.
    pub async fn delete(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Write).await?;
        let n = tx
            .execute(
                Stmt::new("DELETE FROM tenant_secrets WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name),
            )
            .await?;
        tx.commit().await.map_err(db::Error::from)?;
        self.forget(tenant);
        Ok(n > 0)
    }

    /// The secrets whose name starts with `prefix`, without their values.
    pub async fn list(&self, tenant: &TenantId, prefix: &str) -> Result<Vec<SecretInfo>> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let rows = tx
            .fetch_all(
                Stmt::new(
                    "SELECT name, hint, updated_at FROM tenant_secrets \
                     WHERE tenant_id = $1 AND substr(name, 1, CAST($2 AS INTEGER)) = $3 ORDER BY name",
                )
                .bind(tenant.as_str())
                .bind(i64::try_from(prefix.len()).unwrap_or(i64::MAX))
                .bind(prefix),
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SecretInfo {
                    name: r.get(0)?,
                    hint: r.get(1)?,
                    updated_at: r.get(2)?,
                })
            })
            .collect::<Result<_, db::Error>>()
            .map_err(Error::from)
    }

    /// The decrypted values whose name starts with `prefix`, by name
    /// (cached for a few seconds).
    pub async fn values(&self, tenant: &TenantId, prefix: &str) -> Result<HashMap<String, String>> {
        let cache_key = (tenant.clone(), prefix.to_owned());
        if let Some((values, at)) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(values.clone());
        }
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let rows = tx
            .fetch_all(
                Stmt::new(
                    "SELECT name, nonce, ciphertext FROM tenant_secrets \
                     WHERE tenant_id = $1 AND substr(name, 1, CAST($2 AS INTEGER)) = $3",
                )
                .bind(tenant.as_str())
                .bind(i64::try_from(prefix.len()).unwrap_or(i64::MAX))
                .bind(prefix),
            )
            .await?;
        let mut values = HashMap::new();
        for row in &rows {
            let name: String = row.get(0)?;
            let nonce: Vec<u8> = row.get(1)?;
            let value = self.open(tenant, &name, &nonce, row.get(2)?)?;
            values.insert(name, value);
        }
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(cache_key, (values.clone(), Instant::now()));
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        Db::connect(&url).await.expect("connect")
    }

    #[tokio::test]
    async fn values_open_only_for_their_tenant_and_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Secrets::new(db(&dir).await, &[7u8; 32]).expect("key");
        let a = TenantId::from_raw("a");
        let b = TenantId::from_raw("b");
        let (nonce, sealed) = s.seal(&a, "llm.openai", "sk-secret-1234").expect("seal");
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "the value is not stored in the clear"
        );
        assert_eq!(
            s.open(&a, "llm.openai", &nonce, sealed.clone())
                .expect("open"),
            "sk-secret-1234"
        );
        assert!(s.open(&b, "llm.openai", &nonce, sealed.clone()).is_err());
        assert!(s.open(&a, "llm.gemini", &nonce, sealed.clone()).is_err());
        let other = Secrets::new(db(&dir).await, &[8u8; 32]).expect("key");
        assert!(other.open(&a, "llm.openai", &nonce, sealed).is_err());
        assert_eq!(hint("sk-secret-1234"), "1234");
        assert_eq!(hint("ab"), "ab");
    }

    #[test]
    fn the_kept_key_is_made_once_and_reread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_key("", dir.path()).expect("made");
        let again = load_key("", dir.path()).expect("read");
        assert_eq!(first, again);
        assert!(load_key("abcd", dir.path()).is_err());
        let hex = "11".repeat(32);
        assert_eq!(load_key(&hex, dir.path()).expect("configured"), [0x11; 32]);
    }
}
