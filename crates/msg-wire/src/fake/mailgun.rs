//! The fake Mailgun: `POST /v3/{domain}/messages` and HMAC-signed webhook
//! posts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::{
    Accepted, Ledger, Server, SignedWebhook, basic_auth, content_type_is, form_get, form_pairs,
    random_hex, valid_mailbox,
};
use crate::fcm::unix_now;
use crate::mailgun::{MailgunConfig, strip_angle_brackets};
use crate::types::Email;
use crate::webhook::{DeliveryStatus, mailgun_signature};

/// A running fake Mailgun; it stops when dropped.
///
/// It checks, like Mailgun: HTTP basic auth with user `api` and the key
/// set with [`FakeMailgun::with_api_key`] (else any non-empty one; a plain
/// `Forbidden` 401 otherwise), the domain set with
/// [`FakeMailgun::with_domain`] if any (404 `Domain not found`), a form
/// body (the fake reads `application/x-www-form-urlencoded`, not
/// multipart), `from`, `to` and `subject` present, `from`/`to` valid
/// addresses, and at least one of `text`, `html`, `template`. Refusals are
/// 400s with `{"message": …}`. `h:Name` fields become headers (`h:Reply-To`
/// the reply-to). Success is `{"id": "<…@domain>", "message": "Queued.
/// Thank you."}`.
pub struct FakeMailgun {
    server: Server,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeMailgun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMailgun")
            .field("addr", &self.server.addr)
            .finish()
    }
}

struct Shared {
    ledger: Ledger<Email>,
    settings: Mutex<Settings>,
    signing_key: String,
}

#[derive(Default, Clone)]
struct Settings {
    api_key: Option<String>,
    domain: Option<String>,
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeMailgun {
    /// Starts the fake on `127.0.0.1` at a free port, with a fresh webhook
    /// signing key.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; [`FakeMailgun::try_start`]
    /// returns the error instead.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("fake Mailgun cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Starts the fake on `127.0.0.1` at a free port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn try_start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            ledger: Ledger::new(),
            settings: Mutex::new(Settings::default()),
            signing_key: random_hex(16),
        });
        let app = Router::new()
            .route("/v3/{domain}/messages", post(messages))
            .with_state(Arc::clone(&shared));
        let server = Server::serve(Server::bind().await?, app)?;
        Ok(Self { server, shared })
    }

    /// Requires exactly `key` as the basic-auth password from now on.
    pub fn with_api_key(self, key: impl Into<String>) -> Self {
        self.shared.settings().api_key = Some(key.into());
        self
    }

    /// Knows only `domain` from now on.
    pub fn with_domain(self, domain: impl Into<String>) -> Self {
        self.shared.settings().domain = Some(domain.into());
        self
    }

    /// Stops keeping messages (they are still counted), for long runs.
    pub fn without_recording(self) -> Self {
        self.shared.ledger.set_recording(false);
        self
    }

    /// The base URL for [`MailgunConfig::with_base_url`].
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// A sender configuration for this fake: its domain (or
    /// `mg.weft.test`), its key (or `key-fake`), its URL, a 5 s timeout.
    pub fn config(&self) -> MailgunConfig {
        let settings = self.shared.settings().clone();
        MailgunConfig::new(
            settings.domain.unwrap_or_else(|| "mg.weft.test".into()),
            settings.api_key.unwrap_or_else(|| "key-fake".into()),
        )
        .with_base_url(self.base_url())
        .with_timeout(std::time::Duration::from_secs(5))
    }

    /// The HTTP webhook signing key, for
    /// [`MailgunWebhook::new`](crate::MailgunWebhook::new).
    pub fn webhook_signing_key(&self) -> String {
        self.shared.signing_key.clone()
    }

    /// Answers `status` (500, 503, 429, …) to the next `times`
    /// authenticated calls.
    pub fn fail_next(&self, times: usize, status: u16) {
        self.shared.ledger.fail_next(times, status);
    }

    /// Refuses mail to `address` (the `to` field exactly) from now on.
    pub fn refuse_recipient(&self, address: impl Into<String>) {
        self.shared.ledger.refuse(address.into());
    }

    /// The messages accepted so far, oldest first. `provider_id` is the id
    /// without angle brackets, as the sender returns it.
    pub fn accepted(&self) -> Vec<Accepted<Email>> {
        self.shared.ledger.accepted()
    }

    /// How many messages were accepted (also without recording).
    pub fn accepted_count(&self) -> usize {
        self.shared.ledger.accepted_count()
    }

    /// How many messages calls arrived, refused ones included.
    pub fn calls(&self) -> usize {
        self.shared.ledger.calls()
    }

    /// Forgets messages, counts and scripted trouble.
    pub fn reset(&self) {
        self.shared.ledger.reset();
    }

    /// A webhook post reporting `status` for the message `provider_id`,
    /// signed now. Statuses become Mailgun events: Queued and Sent
    /// `accepted`, Delivered `delivered`, Bounced `failed` (permanent),
    /// Failed `rejected`, Complained `complained`, Unsubscribed
    /// `unsubscribed`.
    pub fn signed_event(
        &self,
        url: &str,
        provider_id: &str,
        status: DeliveryStatus,
    ) -> SignedWebhook {
        self.signed_event_at(url, provider_id, status, unix_now())
    }

    /// [`FakeMailgun::signed_event`] signed with timestamp `timestamp`
    /// (Unix seconds), to test stale-timestamp refusal.
    pub fn signed_event_at(
        &self,
        url: &str,
        provider_id: &str,
        status: DeliveryStatus,
        timestamp: u64,
    ) -> SignedWebhook {
        let recipient = self
            .shared
            .ledger
            .find(provider_id)
            .map(|a| a.message.to)
            .unwrap_or_else(|| "unknown@fake.test".into());
        let token = random_hex(25);
        let timestamp_text = timestamp.to_string();
        let mut data = json!({
            "id": random_hex(11),
            "timestamp": timestamp as f64 + 0.25,
            "recipient": recipient,
            "message": {"headers": {"message-id": provider_id}},
        });
        let (event, severity, code, message) = match status {
            DeliveryStatus::Queued | DeliveryStatus::Sent => ("accepted", None, None, ""),
            DeliveryStatus::Delivered => ("delivered", None, Some(250), "OK"),
            DeliveryStatus::Bounced => (
                "failed",
                Some("permanent"),
                Some(550),
                "5.1.1 The email account that you tried to reach does not exist.",
            ),
            DeliveryStatus::Failed => ("rejected", None, None, ""),
            DeliveryStatus::Complained => ("complained", None, None, ""),
            DeliveryStatus::Unsubscribed => ("unsubscribed", None, None, ""),
        };
        data["event"] = json!(event);
        if let Some(severity) = severity {
            data["severity"] = json!(severity);
            data["reason"] = json!("bounce");
        }
        if let Some(code) = code {
            data["delivery-status"] = json!({"code": code, "message": message});
        }
        let body = json!({
            "signature": {
                "timestamp": timestamp_text,
                "token": token,
                "signature": mailgun_signature(&self.shared.signing_key, &timestamp_text, &token),
            },
            "event-data": data,
        });
        SignedWebhook {
            url: url.to_owned(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Signs and posts [`FakeMailgun::signed_event`]; the answer's status.
    ///
    /// # Errors
    ///
    /// If the receiver cannot be reached.
    pub async fn post_event(
        &self,
        url: &str,
        provider_id: &str,
        status: DeliveryStatus,
    ) -> std::io::Result<u16> {
        self.signed_event(url, provider_id, status).post().await
    }
}

fn message(status: u16, text: &str) -> Response {
    super::json(status, &json!({ "message": text }))
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ledger = &shared.ledger;
    ledger.count_call();
    let settings = shared.settings().clone();
    let key_ok = match (basic_auth(&headers), settings.api_key.as_deref()) {
        (Some((user, given)), Some(expected)) => user == "api" && given == expected,
        (Some((user, given)), None) => user == "api" && !given.is_empty(),
        (None, _) => false,
    };
    if !key_ok {
        // Mailgun answers a wrong key with plain text, not JSON.
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain")],
            "Forbidden",
        )
            .into_response();
    }
    if settings.domain.as_deref().is_some_and(|d| d != domain) {
        return message(404, &format!("Domain not found: {domain}"));
    }
    if let Some(status) = ledger.scripted_failure() {
        return message(status, "Internal server error, please retry later");
    }
    if !content_type_is(&headers, "application/x-www-form-urlencoded") {
        return message(
            400,
            "the fake Mailgun reads application/x-www-form-urlencoded bodies only",
        );
    }
    let Some(fields) = form_pairs(&body) else {
        return message(400, "malformed form body");
    };
    let email = match check(&fields) {
        Ok(email) => email,
        Err(text) => return message(400, &text),
    };
    if ledger.is_refused(&email.to) {
        return message(
            400,
            &format!(
                "{} is on the suppression list and cannot receive mail",
                email.to
            ),
        );
    }
    let id = format!(
        "<{}.{}@{domain}>",
        unix_now(),
        random_hex(8).to_ascii_uppercase()
    );
    ledger.accept(Accepted {
        provider_id: strip_angle_brackets(&id),
        message: email,
        raw: String::from_utf8_lossy(&body).into_owned(),
    });
    super::json(200, &json!({"id": id, "message": "Queued. Thank you."}))
}

/// What Mailgun checks; on success the email decoded back.
fn check(fields: &[(String, String)]) -> Result<Email, String> {
    let required = |name: &str| {
        form_get(fields, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("'{name}' parameter is missing"))
    };
    let from = required("from")?;
    let to = required("to")?;
    let subject = required("subject")?;
    if !valid_mailbox(from) {
        return Err("from parameter is not a valid address. please check documentation".into());
    }
    if !to.split(',').all(|t| valid_mailbox(t.trim())) {
        return Err("to parameter is not a valid address. please check documentation".into());
    }
    let text = form_get(fields, "text").map(str::to_owned);
    let html = form_get(fields, "html").map(str::to_owned);
    if text.is_none() && html.is_none() && form_get(fields, "template").is_none() {
        return Err(
            "Need at least one of 'text', 'html' or 'template' parameters specified".into(),
        );
    }
    let mut reply_to = None;
    let mut headers = Vec::new();
    for (name, value) in fields {
        if let Some(header) = name.strip_prefix("h:") {
            if header.eq_ignore_ascii_case("Reply-To") {
                reply_to = Some(value.clone());
            } else {
                headers.push((header.to_owned(), value.clone()));
            }
        }
    }
    Ok(Email {
        from: from.to_owned(),
        to: to.to_owned(),
        reply_to,
        subject: subject.to_owned(),
        html,
        text,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn checks_required_fields_and_reads_headers() {
        let email = check(&fields(&[
            ("from", "Weft <noreply@weft.test>"),
            ("to", "ada@example.com"),
            ("subject", "Hi"),
            ("text", "Hi"),
            ("h:Reply-To", "help@weft.test"),
            ("h:List-Unsubscribe", "<https://u.test/1>"),
        ]))
        .expect("valid");
        assert_eq!(email.reply_to.as_deref(), Some("help@weft.test"));
        assert_eq!(
            email.headers,
            vec![(
                "List-Unsubscribe".to_owned(),
                "<https://u.test/1>".to_owned()
            )]
        );
        assert_eq!(
            check(&fields(&[
                ("from", "a@b.test"),
                ("to", "c@d.test"),
                ("subject", "x")
            ])),
            Err("Need at least one of 'text', 'html' or 'template' parameters specified".into())
        );
        assert_eq!(
            check(&fields(&[("to", "c@d.test")])),
            Err("'from' parameter is missing".into())
        );
    }
}
