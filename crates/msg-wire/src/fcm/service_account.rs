//! Google service-account credentials: the JSON key file, the RS256 JWT
//! bearer assertion (RFC 7523) exchanged at `token_uri` for an access
//! token, and the cache that keeps that token until shortly before it
//! expires.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use serde_json::json;

use crate::error::{Failure, Provider, Result, SendError};
use crate::http;

/// The OAuth scope FCM HTTP v1 needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The JWT bearer grant type.
pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is valid; Google accepts at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A cached token is replaced this long before it expires, so no request
/// goes out with a token about to lapse in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A Google service-account JSON key, as downloaded from the Cloud console.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceAccount {
    /// The Firebase/Google Cloud project id.
    #[serde(default)]
    pub project_id: String,
    /// The account's email, the assertion's issuer.
    pub client_email: String,
    /// The RSA private key, PEM-encoded PKCS#8 (`-----BEGIN PRIVATE
    /// KEY-----`).
    pub private_key: String,
    /// The key's id, sent as the JWT `kid` when present.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Where assertions are exchanged for access tokens.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("private_key", &"<redacted>")
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

impl ServiceAccount {
    /// Parses a service-account JSON key.
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if it is not JSON with `client_email` and
    /// `private_key`. The key itself is checked by
    /// [`FcmSender::new`](crate::FcmSender::new).
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| {
            // serde's message names the field, never the key material.
            SendError::invalid(Provider::Fcm, format!("invalid service-account JSON: {e}"))
        })
    }
}

/// The DER inside the first PEM block of `pem` labelled `label`.
pub(crate) fn pem_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let base64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(base64).ok()
}

/// The account's RSA key pair.
pub(crate) fn key_pair(account: &ServiceAccount) -> Result<RsaKeyPair> {
    let invalid = |what: &str| {
        SendError::invalid(
            Provider::Fcm,
            format!("the service account's private_key {what}"),
        )
    };
    let der = pem_der(&account.private_key, "PRIVATE KEY")
        .ok_or_else(|| invalid("is not a PEM PKCS#8 key"))?;
    RsaKeyPair::from_pkcs8(&der).map_err(|e| invalid(&format!("is not a usable RSA key ({e})")))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fetches and caches access tokens for one service account.
pub(crate) struct TokenSource {
    account: ServiceAccount,
    key: RsaKeyPair,
    scope: &'static str,
    /// Held across the token request, so concurrent senders wait for one
    /// request instead of each making their own.
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
}

impl TokenSource {
    pub(crate) fn new(account: ServiceAccount, scope: &'static str) -> Result<Self> {
        let key = key_pair(&account)?;
        Ok(Self {
            account,
            key,
            scope,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one from `token_uri`.
    pub(crate) async fn token(&self, http: &reqwest::Client, timeout: Duration) -> Result<String> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let (value, lifetime) = self.fetch(http, timeout).await?;
        *cached = Some(CachedToken {
            value: value.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        Ok(value)
    }

    /// Forgets the cached token (after the API refused it).
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self, http: &reqwest::Client, timeout: Duration) -> Result<(String, Duration)> {
        let assertion = self.assertion(unix_now())?;
        let request = http
            .post(&self.account.token_uri)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, http::FORM)
            .body(http::form(&[
                ("grant_type", JWT_BEARER_GRANT),
                ("assertion", &assertion),
            ]));
        let answer = http::execute(Provider::Fcm, request).await?;
        if !answer.is_success() {
            #[derive(Deserialize)]
            struct OauthError {
                error: String,
                error_description: Option<String>,
            }
            return Err(match serde_json::from_slice::<OauthError>(&answer.body) {
                Ok(e) => answer.error(
                    Provider::Fcm,
                    Some(e.error.clone()),
                    &format!(
                        "token request refused: {}",
                        e.error_description.unwrap_or(e.error)
                    ),
                ),
                Err(_) => answer.error(
                    Provider::Fcm,
                    None,
                    &format!("token request refused: {}", answer.text()),
                ),
            });
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            #[serde(default = "default_lifetime")]
            expires_in: u64,
        }
        fn default_lifetime() -> u64 {
            3600
        }
        let token: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|_| {
            // Nothing was sent yet, so asking again is safe.
            Failure::new(
                Provider::Fcm,
                "the token endpoint's answer has no access_token",
            )
            .with_status(answer.status)
            .transient()
        })?;
        Ok((token.access_token, Duration::from_secs(token.expires_in)))
    }

    /// The signed JWT: `iss` the account, `aud` the token URI, valid for an
    /// hour from `now`.
    pub(crate) fn assertion(&self, now: u64) -> Result<String> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.account.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.account.client_email,
            "scope": self.scope,
            "aud": self.account.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        sign_jwt(&self.key, &header, &claims)
    }
}

/// `header.claims.signature`, each base64url without padding, RS256.
fn sign_jwt(
    key: &RsaKeyPair,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String> {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| SendError::invalid(Provider::Fcm, "cannot sign the token assertion"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::TEST_RSA_KEY_PEM;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn account() -> ServiceAccount {
        ServiceAccount {
            project_id: "demo".into(),
            client_email: "push@demo.iam.gserviceaccount.com".into(),
            private_key: TEST_RSA_KEY_PEM.into(),
            private_key_id: Some("k1".into()),
            token_uri: "https://oauth2.example/token".into(),
        }
    }

    #[test]
    fn assertion_is_a_verifiable_rs256_jwt() {
        let source = TokenSource::new(account(), FCM_SCOPE).expect("key");
        let jwt = source.assertion(1_700_000_000).expect("signed");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).expect("base64url");
        let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).expect("json");
        let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).expect("json");
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}));
        assert_eq!(claims["aud"], "https://oauth2.example/token");
        assert_eq!(claims["scope"], FCM_SCOPE);
        assert_eq!(claims["exp"], 1_700_003_600);
        let public = source.key.public().as_ref().to_vec();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &decode(parts[2]),
            )
            .expect("valid signature");
    }

    #[test]
    fn a_broken_key_is_a_permanent_config_error() {
        let mut account = account();
        account.private_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into();
        let error = TokenSource::new(account, FCM_SCOPE).err().expect("refused");
        assert!(!error.is_transient());
        assert!(!error.to_string().contains("AAAA"));
    }

    #[test]
    fn service_account_json_defaults_the_token_uri() {
        let account = ServiceAccount::from_json(
            r#"{"type":"service_account","client_email":"a@b","private_key":"x"}"#,
        )
        .expect("parses");
        assert_eq!(account.token_uri, "https://oauth2.googleapis.com/token");
        assert!(!format!("{account:?}").contains("\"x\""));
    }
}
