//! Email through Mailgun's messages API: `POST /v3/{domain}/messages` with
//! HTTP basic auth `api:{key}` and form fields; `{"id", "message"}` on
//! success.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Provider, Result, SendError};
use crate::http::{self, Answer};
use crate::types::{Email, EmailSender, SendFuture, Sent};

/// How to reach Mailgun.
#[derive(Clone, PartialEq, Eq)]
pub struct MailgunConfig {
    /// The sending domain, as registered with Mailgun (`mg.example.com`).
    pub domain: String,
    /// A private API key or a domain sending key.
    pub api_key: String,
    /// `https://api.mailgun.net` (US), `https://api.eu.mailgun.net` (EU),
    /// or a fake's [`base_url`](crate::FakeMailgun::base_url).
    pub base_url: String,
    /// Limit for the whole request.
    pub timeout: Duration,
}

impl fmt::Debug for MailgunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailgunConfig")
            .field("domain", &self.domain)
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl MailgunConfig {
    /// Mailgun's US region with a 30 s timeout.
    pub fn new(domain: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            api_key: api_key.into(),
            base_url: "https://api.mailgun.net".into(),
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

/// Sends [`Email`]s through Mailgun. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MailgunSender {
    http: reqwest::Client,
    config: MailgunConfig,
}

impl MailgunSender {
    /// A sender with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if the domain cannot be placed in a URL path
    /// or the HTTP client cannot be built.
    pub fn new(config: MailgunConfig) -> Result<Self> {
        let http = http::client(Provider::Mailgun)?;
        Self::with_client(config, http)
    }

    /// A sender sharing an existing `reqwest` client's pool.
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if the domain cannot be placed in a URL path.
    pub fn with_client(config: MailgunConfig, http: reqwest::Client) -> Result<Self> {
        let domain_ok = !config.domain.is_empty()
            && config
                .domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !domain_ok {
            return Err(SendError::invalid(
                Provider::Mailgun,
                format!("invalid Mailgun domain {:?}", config.domain),
            ));
        }
        Ok(Self { http, config })
    }

    /// Sends one email; [`Sent::provider_id`] is Mailgun's message id
    /// without angle brackets (as its webhooks report it).
    ///
    /// # Errors
    ///
    /// [`SendError::Transient`] for timeouts, connection failures, 429 and
    /// 5xx; [`SendError::Permanent`] for other refusals (a wrong key is 401,
    /// an unknown domain 404, a bad field 400) and emails that cannot be
    /// expressed.
    pub async fn send(&self, email: &Email) -> Result<Sent> {
        email.check(Provider::Mailgun)?;
        let header_fields: Vec<(String, &str)> = email
            .reply_to
            .iter()
            .map(|r| ("h:Reply-To".to_owned(), r.as_str()))
            .chain(
                email
                    .headers
                    .iter()
                    .map(|(name, value)| (format!("h:{name}"), value.as_str())),
            )
            .collect();
        let mut fields: Vec<(&str, &str)> = vec![
            ("from", &email.from),
            ("to", &email.to),
            ("subject", &email.subject),
        ];
        if let Some(text) = &email.text {
            fields.push(("text", text));
        }
        if let Some(html) = &email.html {
            fields.push(("html", html));
        }
        fields.extend(header_fields.iter().map(|(n, v)| (n.as_str(), *v)));
        let url = format!(
            "{}/v3/{}/messages",
            http::trim_base(&self.config.base_url),
            self.config.domain
        );
        let request = self
            .http
            .post(url)
            .timeout(self.config.timeout)
            .basic_auth("api", Some(&self.config.api_key))
            .header(reqwest::header::CONTENT_TYPE, http::FORM)
            .body(http::form(&fields));
        let answer = http::execute(Provider::Mailgun, request).await?;
        if !answer.is_success() {
            return Err(error(&answer));
        }
        #[derive(Deserialize)]
        struct Queued {
            id: String,
        }
        let queued: Queued = serde_json::from_slice(&answer.body)
            .map_err(|_| answer.unreadable(Provider::Mailgun, "the answer has no id"))?;
        Ok(Sent {
            provider_id: strip_angle_brackets(&queued.id),
        })
    }
}

impl EmailSender for MailgunSender {
    fn send_email<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(self.send(email))
    }
}

/// `<id@domain>` as `id@domain`.
pub(crate) fn strip_angle_brackets(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// Mailgun's error shape: `{"message": ...}`, or plain text (`Forbidden`
/// for a wrong key).
fn error(answer: &Answer) -> SendError {
    #[derive(Deserialize)]
    struct Body {
        message: String,
    }
    match serde_json::from_slice::<Body>(&answer.body) {
        Ok(body) => answer.error(Provider::Mailgun, None, &body.message),
        Err(_) => answer.error(Provider::Mailgun, None, &answer.text()),
    }
}
