//! Push notifications through Firebase Cloud Messaging HTTP v1:
//! `POST /v1/projects/{project}/messages:send` with an OAuth access token
//! obtained from a service account (see `fcm/service_account.rs`).

mod service_account;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

pub use service_account::{FCM_SCOPE, ServiceAccount};
pub(crate) use service_account::{JWT_BEARER_GRANT, pem_der, unix_now};

use crate::error::{Provider, Result, SendError};
use crate::http::{self, Answer};
use crate::types::{Push, PushSender, SendFuture, Sent};
use service_account::TokenSource;

/// How to reach FCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcmConfig {
    /// The credentials; its `token_uri` is where tokens come from.
    pub service_account: ServiceAccount,
    /// The Firebase project to send as.
    pub project_id: String,
    /// `https://fcm.googleapis.com`, or a fake's
    /// [`base_url`](crate::FakeFcm::base_url).
    pub base_url: String,
    /// Limit for each request (token and send).
    pub timeout: Duration,
}

impl FcmConfig {
    /// FCM for the service account's own project, with a 30 s timeout.
    pub fn new(service_account: ServiceAccount) -> Self {
        Self {
            project_id: service_account.project_id.clone(),
            service_account,
            base_url: "https://fcm.googleapis.com".into(),
            timeout: Duration::from_secs(30),
        }
    }

    /// With a different project.
    pub fn with_project_id(mut self, project_id: impl Into<String>) -> Self {
        self.project_id = project_id.into();
        self
    }

    /// With a different base URL.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// With a different timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Sends [`Push`]es through FCM. Cheap to clone; clones share the cached
/// access token.
#[derive(Clone)]
pub struct FcmSender {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
    tokens: Arc<TokenSource>,
}

impl std::fmt::Debug for FcmSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmSender")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FcmSender {
    /// A sender with its own connection pool. No token is fetched until the
    /// first push.
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if the private key is not a PEM PKCS#8 RSA
    /// key, the project id cannot be placed in a URL path, or the HTTP
    /// client cannot be built.
    pub fn new(config: FcmConfig) -> Result<Self> {
        let http = http::client(Provider::Fcm)?;
        Self::with_client(config, http)
    }

    /// A sender sharing an existing `reqwest` client's pool.
    ///
    /// # Errors
    ///
    /// As for [`FcmSender::new`], except for the client.
    pub fn with_client(config: FcmConfig, http: reqwest::Client) -> Result<Self> {
        let project_ok = !config.project_id.is_empty()
            && config
                .project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
        if !project_ok {
            return Err(SendError::invalid(
                Provider::Fcm,
                format!("invalid FCM project id {:?}", config.project_id),
            ));
        }
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            http::trim_base(&config.base_url),
            config.project_id
        );
        Ok(Self {
            http,
            url,
            timeout: config.timeout,
            tokens: Arc::new(TokenSource::new(config.service_account, FCM_SCOPE)?),
        })
    }

    /// Sends one notification; [`Sent::provider_id`] is the message name
    /// (`projects/{project}/messages/{id}`).
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] for `UNREGISTERED` and `INVALID_ARGUMENT`
    /// (and other refusals: sender mismatch, a refused service account);
    /// [`SendError::Transient`] for `UNAVAILABLE`, `INTERNAL`,
    /// `QUOTA_EXCEEDED`/429, timeouts and connection failures, and for a
    /// refused access token (`UNAUTHENTICATED`), which is dropped so the
    /// next attempt fetches a fresh one.
    pub async fn send(&self, push: &Push) -> Result<Sent> {
        let token = self.tokens.token(&self.http, self.timeout).await?;
        let request = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, http::JSON)
            .body(message_body(push).to_string());
        let answer = http::execute(Provider::Fcm, request).await?;
        if !answer.is_success() {
            let error = error(&answer);
            if error.code() == Some("UNAUTHENTICATED") {
                self.tokens.invalidate().await;
            }
            return Err(error);
        }
        #[derive(Deserialize)]
        struct Name {
            name: String,
        }
        let name: Name = serde_json::from_slice(&answer.body)
            .map_err(|_| answer.unreadable(Provider::Fcm, "the answer has no name"))?;
        Ok(Sent {
            provider_id: name.name,
        })
    }
}

impl PushSender for FcmSender {
    fn send_push<'a>(&'a self, push: &'a Push) -> SendFuture<'a> {
        Box::pin(self.send(push))
    }
}

/// `{"message": {"token", "notification": {"title", "body"}, "data"}}`;
/// `data` only when there is some (FCM wants string values, which a
/// `BTreeMap<String, String>` guarantees).
fn message_body(push: &Push) -> Value {
    let mut message = json!({
        "token": push.token,
        "notification": {"title": push.title, "body": push.body},
    });
    if !push.data.is_empty() {
        message["data"] = json!(push.data);
    }
    json!({ "message": message })
}

/// Google's error shape, `{"error": {"code", "message", "status",
/// "details": [{"@type": "…FcmError", "errorCode"}]}}`, classified by
/// FCM's `errorCode` (else the status name), falling back to the HTTP
/// status.
fn error(answer: &Answer) -> SendError {
    #[derive(Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: Option<String>,
        status: Option<String>,
        #[serde(default)]
        details: Vec<Value>,
    }
    let Ok(body) = serde_json::from_slice::<Body>(&answer.body) else {
        return answer.error(Provider::Fcm, None, &answer.text());
    };
    let fcm_code = body
        .error
        .details
        .iter()
        .find_map(|d| d.get("errorCode").and_then(Value::as_str))
        .map(str::to_owned);
    let code = fcm_code.or(body.error.status);
    let message = body.error.message.unwrap_or_else(|| "no message".into());
    let mut error = answer.error(Provider::Fcm, code.clone(), &message);
    let transient = match code.as_deref() {
        Some("UNAVAILABLE" | "INTERNAL" | "QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED") => Some(true),
        // The token expired or was revoked early; a fresh one will do.
        Some("UNAUTHENTICATED") => Some(true),
        Some(
            "UNREGISTERED"
            | "INVALID_ARGUMENT"
            | "SENDER_ID_MISMATCH"
            | "THIRD_PARTY_AUTH_ERROR"
            | "PERMISSION_DENIED"
            | "NOT_FOUND",
        ) => Some(false),
        _ => None,
    };
    if let Some(transient) = transient
        && transient != error.is_transient()
    {
        let failure = error.failure().clone();
        error = if transient {
            failure.transient()
        } else {
            failure.permanent()
        };
    }
    error
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn body_has_notification_and_string_data() {
        let push = Push {
            token: "tok".into(),
            title: "T".into(),
            body: "B".into(),
            data: BTreeMap::from([("order".into(), "42".into())]),
        };
        assert_eq!(
            message_body(&push),
            json!({"message": {"token": "tok", "notification": {"title": "T", "body": "B"}, "data": {"order": "42"}}})
        );
        let bare = Push {
            data: BTreeMap::new(),
            ..push
        };
        assert!(message_body(&bare)["message"].get("data").is_none());
    }

    #[test]
    fn errors_are_classified_by_fcm_error_code() {
        let answer = |status: u16, body: Value| Answer {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body: body.to_string().into_bytes(),
        };
        let unregistered = error(&answer(
            404,
            json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
        ));
        assert!(!unregistered.is_transient());
        assert_eq!(unregistered.code(), Some("UNREGISTERED"));
        let unavailable = error(&answer(
            503,
            json!({"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}),
        ));
        assert!(unavailable.is_transient());
        let unauthenticated = error(&answer(
            401,
            json!({"error": {"code": 401, "message": "bad token", "status": "UNAUTHENTICATED"}}),
        ));
        assert!(unauthenticated.is_transient());
    }
}
