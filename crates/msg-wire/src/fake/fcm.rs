//! The fake FCM: Google's OAuth token endpoint for service-account JWTs
//! and `POST /v1/projects/{project}/messages:send`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use super::{
    Accepted, Ledger, Server, TEST_RSA_KEY_PEM, bearer, content_type_is, form_get, form_pairs,
    random_hex,
};
use crate::fcm::{FCM_SCOPE, FcmConfig, JWT_BEARER_GRANT, ServiceAccount, pem_der, unix_now};
use crate::types::Push;

/// The token endpoint's path.
const TOKEN_PATH: &str = "/token";
/// Clock distance the token endpoint tolerates on `iat`.
const CLOCK_SKEW: u64 = 300;
/// Data keys FCM reserves.
const RESERVED_DATA_KEYS: [&str; 3] = ["from", "notification", "message_type"];

/// A running fake FCM with its own OAuth token endpoint; it stops when
/// dropped.
///
/// The token endpoint (`{base_url}/token`, the `token_uri` of
/// [`FakeFcm::service_account_json`]) checks, like Google's: the JWT
/// bearer `grant_type`, an RS256 JWT whose signature verifies with the
/// service account's public key (that of [`TEST_RSA_KEY_PEM`]), `iss` the
/// account's email, `aud` the token URI, the FCM scope, and `iat`/`exp`
/// at most an hour apart around now; refusals are 400 `{"error":
/// "invalid_grant", "error_description"}`. Tokens live
/// [`FakeFcm::with_token_lifetime`] (3599 s by default).
///
/// The send endpoint checks: a bearer token it issued and that has not
/// expired (401 `UNAUTHENTICATED`), the project (403 `PERMISSION_DENIED`),
/// a JSON `message` with exactly one of `token`, `topic`, `condition`, a
/// non-empty token, string `notification` fields, string `data` values and
/// no reserved data keys (`from`, `notification`, `message_type`,
/// `google.*`, `gcm.*`) — 400 `INVALID_ARGUMENT` otherwise. A refused
/// token gets 404 `NOT_FOUND` with `errorCode` `UNREGISTERED`. Errors use
/// Google's `{"error": {"code", "message", "status", "details"}}`.
pub struct FakeFcm {
    server: Server,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeFcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFcm")
            .field("addr", &self.server.addr)
            .finish()
    }
}

struct Shared {
    ledger: Ledger<Push>,
    project_id: String,
    client_email: String,
    token_uri: String,
    /// The service account's public key, DER RSAPublicKey.
    public_key: Vec<u8>,
    tokens: Mutex<Tokens>,
}

struct Tokens {
    lifetime: Duration,
    issued: HashMap<String, Instant>,
    requests: usize,
}

impl Shared {
    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeFcm {
    /// Starts the fake on `127.0.0.1` at a free port for project
    /// `weft-fake`, trusting [`TEST_RSA_KEY_PEM`].
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; [`FakeFcm::try_start`] returns
    /// the error instead.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("fake FCM cannot start: {e}"),
        }
    }

    /// Starts the fake on `127.0.0.1` at a free port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn try_start() -> std::io::Result<Self> {
        let key = pem_der(TEST_RSA_KEY_PEM, "PRIVATE KEY")
            .and_then(|der| RsaKeyPair::from_pkcs8(&der).ok())
            .ok_or_else(|| std::io::Error::other("the built-in test key does not load"))?;
        let listener = Server::bind().await?;
        let addr = listener.local_addr()?;
        let project_id = "weft-fake".to_owned();
        let shared = Arc::new(Shared {
            ledger: Ledger::new(),
            client_email: format!("firebase-adminsdk@{project_id}.iam.gserviceaccount.com"),
            project_id,
            token_uri: format!("http://{addr}{TOKEN_PATH}"),
            public_key: key.public_key().as_ref().to_vec(),
            tokens: Mutex::new(Tokens {
                lifetime: Duration::from_secs(3599),
                issued: HashMap::new(),
                requests: 0,
            }),
        });
        let app = Router::new()
            .route(TOKEN_PATH, post(token))
            .route("/v1/projects/{project}/messages:send", post(send))
            .with_state(Arc::clone(&shared));
        let server = Server::serve(listener, app)?;
        Ok(Self { server, shared })
    }

    /// Issues tokens valid for `lifetime` from now on (a lifetime under a
    /// minute makes the sender fetch a new token for every push).
    pub fn with_token_lifetime(self, lifetime: Duration) -> Self {
        self.shared.tokens().lifetime = lifetime;
        self
    }

    /// Stops keeping messages (they are still counted), for long runs.
    pub fn without_recording(self) -> Self {
        self.shared.ledger.set_recording(false);
        self
    }

    /// The base URL for [`FcmConfig::with_base_url`].
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The project the fake serves.
    pub fn project_id(&self) -> String {
        self.shared.project_id.clone()
    }

    /// A service-account JSON key the fake trusts: its project, its
    /// account email, [`TEST_RSA_KEY_PEM`], and its own token URI.
    pub fn service_account_json(&self) -> String {
        self.service_account_json_with_key(TEST_RSA_KEY_PEM)
    }

    /// The same service-account JSON with another private key (PEM
    /// PKCS#8), e.g. [`OTHER_TEST_RSA_KEY_PEM`](super::OTHER_TEST_RSA_KEY_PEM)
    /// to test a key the fake does not trust.
    pub fn service_account_json_with_key(&self, private_key_pem: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": self.shared.project_id,
            "private_key_id": "fake-key-1",
            "private_key": private_key_pem,
            "client_email": self.shared.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.shared.token_uri,
        })
        .to_string()
    }

    /// A sender configuration for this fake: [`FakeFcm::service_account_json`],
    /// its URL, a 5 s timeout.
    pub fn config(&self) -> FcmConfig {
        let account = ServiceAccount {
            project_id: self.shared.project_id.clone(),
            client_email: self.shared.client_email.clone(),
            private_key: TEST_RSA_KEY_PEM.to_owned(),
            private_key_id: Some("fake-key-1".into()),
            token_uri: self.shared.token_uri.clone(),
        };
        FcmConfig::new(account)
            .with_base_url(self.base_url())
            .with_timeout(Duration::from_secs(5))
    }

    /// Answers `status` (500, 503, 429, …) to the next `times` send calls
    /// that carry a valid token.
    pub fn fail_next(&self, times: usize, status: u16) {
        self.shared.ledger.fail_next(times, status);
    }

    /// Answers `UNREGISTERED` for device `token` from now on.
    pub fn refuse_recipient(&self, token: impl Into<String>) {
        self.shared.ledger.refuse(token.into());
    }

    /// How many token requests arrived, refused ones included.
    pub fn token_requests(&self) -> usize {
        self.shared.tokens().requests
    }

    /// Forgets every issued token, as if they had been revoked: the next
    /// send with a cached token gets `UNAUTHENTICATED`.
    pub fn revoke_tokens(&self) {
        self.shared.tokens().issued.clear();
    }

    /// The pushes accepted so far, oldest first.
    pub fn accepted(&self) -> Vec<Accepted<Push>> {
        self.shared.ledger.accepted()
    }

    /// How many pushes were accepted (also without recording).
    pub fn accepted_count(&self) -> usize {
        self.shared.ledger.accepted_count()
    }

    /// How many send calls arrived, refused ones included.
    pub fn calls(&self) -> usize {
        self.shared.ledger.calls()
    }

    /// Forgets pushes, counts and scripted trouble (issued tokens stay
    /// valid; the token-request count is reset).
    pub fn reset(&self) {
        self.shared.ledger.reset();
        self.shared.tokens().requests = 0;
    }
}

/// Google's OAuth error body.
fn oauth_error(error: &str, description: &str) -> Response {
    super::json(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

/// `POST /token`.
async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.tokens().requests += 1;
    if !content_type_is(&headers, "application/x-www-form-urlencoded") {
        return oauth_error("invalid_request", "Invalid content type.");
    }
    let fields = form_pairs(&body).unwrap_or_default();
    let grant_type = form_get(&fields, "grant_type").unwrap_or_default();
    if grant_type != JWT_BEARER_GRANT {
        return oauth_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let Some(assertion) = form_get(&fields, "assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    if let Err(description) = check_assertion(&shared, assertion) {
        return oauth_error("invalid_grant", &description);
    }
    let token = format!("ya29.fake-{}", random_hex(24));
    let lifetime = {
        let mut tokens = shared.tokens();
        let lifetime = tokens.lifetime;
        tokens
            .issued
            .insert(token.clone(), Instant::now() + lifetime);
        lifetime
    };
    super::json(
        200,
        &json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}),
    )
}

/// Verifies the JWT as Google does; the refusal's description otherwise.
fn check_assertion(shared: &Shared, jwt: &str) -> Result<(), String> {
    let bad_signature = || "Invalid JWT Signature.".to_owned();
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("Invalid JWT: not three parts.".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let header: Value = decode(header)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(bad_signature)?;
    if header["alg"] != "RS256" {
        return Err(bad_signature());
    }
    let signature = decode(signature).ok_or_else(bad_signature)?;
    let signed = &jwt[..jwt.rfind('.').unwrap_or(0)];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &shared.public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| bad_signature())?;
    let claims: Value = decode(claims)
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or_else(|| "Invalid JWT: claims are not JSON.".to_owned())?;
    if claims["iss"] != shared.client_email.as_str() {
        return Err("Invalid grant: account not found".into());
    }
    if claims["aud"] != shared.token_uri.as_str() {
        return Err(format!(
            "Invalid JWT: Failed audience check. The right audience is {}",
            shared.token_uri
        ));
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == FCM_SCOPE) {
        return Err("Invalid JWT: the firebase.messaging scope is missing.".into());
    }
    let now = unix_now();
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("Invalid JWT: iat and exp are required.".into());
    };
    let timely = iat <= now + CLOCK_SKEW && exp > now && exp > iat && exp - iat <= 3600;
    if !timely {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.".into());
    }
    Ok(())
}

/// Google's API error body; `error_code` adds FCM's `FcmError` detail.
fn api_error(status: u16, status_name: &str, message: &str, error_code: Option<&str>) -> Response {
    let mut error = json!({"code": status, "message": message, "status": status_name});
    if let Some(code) = error_code {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": code,
        }]);
    }
    super::json(status, &json!({ "error": error }))
}

fn invalid_argument(message: &str) -> Response {
    api_error(400, "INVALID_ARGUMENT", message, Some("INVALID_ARGUMENT"))
}

/// `POST /v1/projects/{project}/messages:send`.
async fn send(
    State(shared): State<Arc<Shared>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ledger = &shared.ledger;
    ledger.count_call();
    let token_ok = bearer(&headers).is_some_and(|token| {
        shared
            .tokens()
            .issued
            .get(&token)
            .is_some_and(|expires| Instant::now() < *expires)
    });
    if !token_ok {
        return api_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            None,
        );
    }
    if project != shared.project_id {
        return api_error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."
            ),
            None,
        );
    }
    if let Some(status) = ledger.scripted_failure() {
        return match status {
            429 => api_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded.",
                Some("QUOTA_EXCEEDED"),
            ),
            503 => api_error(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                Some("UNAVAILABLE"),
            ),
            _ => api_error(
                status,
                "INTERNAL",
                "Internal error encountered.",
                Some("INTERNAL"),
            ),
        };
    }
    if !content_type_is(&headers, "application/json") {
        return invalid_argument("Invalid JSON payload received.");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid_argument("Invalid JSON payload received.");
    };
    let push = match check(&request["message"]) {
        Ok(push) => push,
        Err(message) => return invalid_argument(&message),
    };
    if ledger.is_refused(&push.token) {
        return api_error(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            Some("UNREGISTERED"),
        );
    }
    let name = format!(
        "projects/{project}/messages/0:{}%{}",
        unix_now(),
        random_hex(8)
    );
    ledger.accept(Accepted {
        provider_id: name.clone(),
        message: push,
        raw: String::from_utf8_lossy(&body).into_owned(),
    });
    super::json(200, &json!({ "name": name }))
}

/// What FCM checks in `message`; on success the push decoded back.
fn check(message: &Value) -> Result<Push, String> {
    if !message.is_object() {
        return Err("Invalid value at 'message': a message object is required.".into());
    }
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|t| message.get(**t).is_some())
        .count();
    if targets != 1 {
        return Err(
            "Invalid value at 'message': exactly one of token, topic or condition is required."
                .into(),
        );
    }
    let Some(token) = message["token"].as_str().filter(|t| !t.is_empty()) else {
        return Err("The registration token is not a valid FCM registration token".into());
    };
    let notification = &message["notification"];
    let field = |name: &str| -> Result<String, String> {
        match &notification[name] {
            Value::Null => Ok(String::new()),
            Value::String(text) => Ok(text.clone()),
            other => Err(format!(
                "Invalid value at 'message.notification.{name}' (TYPE_STRING), {other}"
            )),
        }
    };
    let title = field("title")?;
    let body = field("body")?;
    let mut data = BTreeMap::new();
    match &message["data"] {
        Value::Null => {}
        Value::Object(entries) => {
            for (key, value) in entries {
                let reserved = RESERVED_DATA_KEYS.contains(&key.as_str())
                    || key.starts_with("google.")
                    || key.starts_with("gcm.");
                if reserved {
                    return Err(format!("Invalid data payload key: {key}"));
                }
                let Some(value) = value.as_str() else {
                    return Err(format!(
                        "Invalid value at 'message.data[{key}].value' (TYPE_STRING), {value}"
                    ));
                };
                data.insert(key.clone(), value.to_owned());
            }
        }
        other => return Err(format!("Invalid value at 'message.data', {other}")),
    }
    Ok(Push {
        token: token.to_owned(),
        title,
        body,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_targets_and_data() {
        let ok =
            json!({"token": "t", "notification": {"title": "T", "body": "B"}, "data": {"k": "v"}});
        assert_eq!(check(&ok).map(|p| p.data.len()), Ok(1));
        assert!(check(&json!({"token": "t", "topic": "news"})).is_err());
        assert!(check(&json!({"token": "t", "data": {"k": 1}})).is_err());
        assert!(check(&json!({"token": "t", "data": {"google.x": "v"}})).is_err());
        assert!(check(&json!({"token": ""})).is_err());
    }
}
