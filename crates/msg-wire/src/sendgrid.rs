//! Email through SendGrid's v3 Mail Send API: `POST /v3/mail/send` with a
//! bearer API key; 202 Accepted and an `X-Message-Id` header on success.

use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{Provider, Result, SendError};
use crate::http::{self, Answer};
use crate::types::{CheckedEmail, Email, EmailSender, SendFuture, Sent};

/// The Mail Send path.
pub(crate) const MAIL_SEND_PATH: &str = "/v3/mail/send";

/// How to reach SendGrid.
#[derive(Clone, PartialEq, Eq)]
pub struct SendGridConfig {
    /// An API key with the Mail Send permission.
    pub api_key: String,
    /// `https://api.sendgrid.com` (or `https://api.eu.sendgrid.com` for
    /// EU-pinned subusers, or a fake's [`base_url`](crate::FakeSendGrid::base_url)).
    pub base_url: String,
    /// Limit for the whole request.
    pub timeout: Duration,
}

impl fmt::Debug for SendGridConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridConfig")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SendGridConfig {
    /// SendGrid's global API with a 30 s timeout.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: "https://api.sendgrid.com".into(),
            timeout: Duration::from_secs(30),
        }
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

/// Sends [`Email`]s through SendGrid. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SendGridSender {
    http: reqwest::Client,
    config: SendGridConfig,
}

impl SendGridSender {
    /// A sender with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if the HTTP client cannot be built.
    pub fn new(config: SendGridConfig) -> Result<Self> {
        Ok(Self::with_client(config, http::client(Provider::SendGrid)?))
    }

    /// A sender sharing an existing `reqwest` client's pool. The client must
    /// not have a global timeout shorter than the config's.
    pub fn with_client(config: SendGridConfig, http: reqwest::Client) -> Self {
        Self { http, config }
    }

    /// Sends one email; [`Sent::provider_id`] is SendGrid's `X-Message-Id`.
    ///
    /// # Errors
    ///
    /// [`SendError::Transient`] for timeouts, connection failures, 429 and
    /// 5xx; [`SendError::Permanent`] for other refusals (a wrong key is 401
    /// or 403, a bad field 400) and emails that cannot be expressed.
    pub async fn send(&self, email: &Email) -> Result<Sent> {
        let checked = email.check(Provider::SendGrid)?;
        let body = mail_send_body(&checked);
        let request = self
            .http
            .post(format!(
                "{}{MAIL_SEND_PATH}",
                http::trim_base(&self.config.base_url)
            ))
            .timeout(self.config.timeout)
            .bearer_auth(&self.config.api_key)
            .header(reqwest::header::CONTENT_TYPE, http::JSON)
            .body(body.to_string());
        let answer = http::execute(Provider::SendGrid, request).await?;
        if !answer.is_success() {
            return Err(error(&answer));
        }
        match answer
            .headers
            .get("x-message-id")
            .and_then(|v| v.to_str().ok())
        {
            Some(id) if !id.is_empty() => Ok(Sent {
                provider_id: id.to_owned(),
            }),
            _ => Err(answer.unreadable(Provider::SendGrid, "no X-Message-Id header")),
        }
    }
}

impl EmailSender for SendGridSender {
    fn send_email<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(self.send(email))
    }
}

/// The Mail Send JSON. SendGrid requires `text/plain` before `text/html`
/// in `content`.
fn mail_send_body(checked: &CheckedEmail<'_>) -> Value {
    let email = checked.email;
    let mut body = json!({
        "personalizations": [{"to": [address(&checked.to)]}],
        "from": address(&checked.from),
        "subject": email.subject,
    });
    let mut content = Vec::new();
    if let Some(text) = &email.text {
        content.push(json!({"type": "text/plain", "value": text}));
    }
    if let Some(html) = &email.html {
        content.push(json!({"type": "text/html", "value": html}));
    }
    body["content"] = Value::Array(content);
    if let Some(reply_to) = &checked.reply_to {
        body["reply_to"] = address(reply_to);
    }
    if !email.headers.is_empty() {
        let headers: Map<String, Value> = email
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        body["headers"] = Value::Object(headers);
    }
    body
}

/// `{"email", "name"}`, without `name` when the mailbox has none.
fn address(mailbox: &Mailbox) -> Value {
    match &mailbox.name {
        Some(name) => json!({"email": mailbox.email.to_string(), "name": name}),
        None => json!({"email": mailbox.email.to_string()}),
    }
}

/// SendGrid's error shape: `{"errors": [{"message", "field", "help"}]}`.
fn error(answer: &Answer) -> SendError {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        message: Option<String>,
        field: Option<String>,
    }
    let first = serde_json::from_slice::<Body>(&answer.body)
        .ok()
        .and_then(|body| body.errors.into_iter().next());
    match first {
        Some(item) => {
            let message = item.message.unwrap_or_else(|| "no message".into());
            answer.error(Provider::SendGrid, item.field, &message)
        }
        None => answer.error(Provider::SendGrid, None, &answer.text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_orders_content_and_carries_headers() {
        let email = Email {
            from: "Weft <noreply@weft.test>".into(),
            to: "ada@example.com".into(),
            reply_to: None,
            subject: "Hi".into(),
            html: Some("<p>Hi</p>".into()),
            text: Some("Hi".into()),
            headers: vec![("List-Unsubscribe".into(), "<https://u.test/1>".into())],
        };
        let body = mail_send_body(&email.check(Provider::SendGrid).expect("valid"));
        assert_eq!(body["content"][0]["type"], "text/plain");
        assert_eq!(body["content"][1]["type"], "text/html");
        assert_eq!(
            body["from"],
            json!({"email": "noreply@weft.test", "name": "Weft"})
        );
        assert_eq!(
            body["personalizations"][0]["to"][0],
            json!({"email": "ada@example.com"})
        );
        assert_eq!(body["headers"]["List-Unsubscribe"], "<https://u.test/1>");
        assert!(body.get("reply_to").is_none());
    }
}
