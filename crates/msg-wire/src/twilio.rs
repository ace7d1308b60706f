//! Text messages through Twilio's Programmable Messaging API:
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic
//! auth `sid:token` and form fields; 201 and a Message resource on success.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Provider, Result, SendError};
use crate::http::{self, Answer};
use crate::types::{SendFuture, Sent, Sms, SmsSender};

/// How to reach Twilio.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// The account sid (`AC…`); also the basic-auth user.
    pub account_sid: String,
    /// The auth token; also the key of the status webhooks' signatures.
    pub auth_token: String,
    /// A messaging service (`MG…`) that picks the sending number, used
    /// when an [`Sms`] has an empty `from`.
    pub messaging_service_sid: Option<String>,
    /// Where Twilio should POST status changes (`StatusCallback`); verify
    /// them with [`TwilioWebhook`](crate::TwilioWebhook).
    pub status_callback: Option<String>,
    /// `https://api.twilio.com`, or a fake's
    /// [`base_url`](crate::FakeTwilio::base_url).
    pub base_url: String,
    /// Limit for the whole request.
    pub timeout: Duration,
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("messaging_service_sid", &self.messaging_service_sid)
            .field("status_callback", &self.status_callback)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TwilioConfig {
    /// Twilio's API with a 30 s timeout, no messaging service and no
    /// status callback.
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            messaging_service_sid: None,
            status_callback: None,
            base_url: "https://api.twilio.com".into(),
            timeout: Duration::from_secs(30),
        }
    }

    /// With a messaging service for messages without a `from`.
    pub fn with_messaging_service(mut self, sid: impl Into<String>) -> Self {
        self.messaging_service_sid = Some(sid.into());
        self
    }

    /// With a status callback URL sent along with every message.
    pub fn with_status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
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

/// Sends [`Sms`]es through Twilio. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TwilioSender {
    http: reqwest::Client,
    config: TwilioConfig,
}

impl TwilioSender {
    /// A sender with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if the account sid cannot be placed in a URL
    /// path or the HTTP client cannot be built.
    pub fn new(config: TwilioConfig) -> Result<Self> {
        let http = http::client(Provider::Twilio)?;
        Self::with_client(config, http)
    }

    /// A sender sharing an existing `reqwest` client's pool.
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if the account sid cannot be placed in a URL
    /// path.
    pub fn with_client(config: TwilioConfig, http: reqwest::Client) -> Result<Self> {
        let sid_ok = !config.account_sid.is_empty()
            && config
                .account_sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric());
        if !sid_ok {
            return Err(SendError::invalid(
                Provider::Twilio,
                "the Twilio account sid must be letters and digits",
            ));
        }
        Ok(Self { http, config })
    }

    /// Sends one text message; [`Sent::provider_id`] is the message sid
    /// (`SM…`), the `MessageSid` of its status callbacks.
    ///
    /// # Errors
    ///
    /// [`SendError::Transient`] for timeouts, connection failures, 429 and
    /// 5xx; [`SendError::Permanent`] for other refusals, with Twilio's code
    /// in [`Failure::code`](crate::Failure) (21211 invalid `To`, 20003
    /// wrong credentials, 21610 unsubscribed recipient, …).
    pub async fn send(&self, sms: &Sms) -> Result<Sent> {
        let mut fields: Vec<(&str, &str)> = vec![("To", &sms.to), ("Body", &sms.body)];
        match (&self.config.messaging_service_sid, sms.from.is_empty()) {
            (_, false) => fields.push(("From", &sms.from)),
            (Some(service), true) => fields.push(("MessagingServiceSid", service)),
            (None, true) => {
                return Err(SendError::invalid(
                    Provider::Twilio,
                    "the message has no From and no messaging service is configured",
                ));
            }
        }
        if let Some(callback) = &self.config.status_callback {
            fields.push(("StatusCallback", callback));
        }
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            http::trim_base(&self.config.base_url),
            self.config.account_sid
        );
        let request = self
            .http
            .post(url)
            .timeout(self.config.timeout)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header(reqwest::header::CONTENT_TYPE, http::FORM)
            .body(http::form(&fields));
        let answer = http::execute(Provider::Twilio, request).await?;
        if !answer.is_success() {
            return Err(error(&answer));
        }
        #[derive(Deserialize)]
        struct Message {
            sid: String,
        }
        let message: Message = serde_json::from_slice(&answer.body)
            .map_err(|_| answer.unreadable(Provider::Twilio, "the answer has no sid"))?;
        Ok(Sent {
            provider_id: message.sid,
        })
    }
}

impl SmsSender for TwilioSender {
    fn send_sms<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a> {
        Box::pin(self.send(sms))
    }
}

/// Twilio's error shape: `{"code", "message", "more_info", "status"}`.
fn error(answer: &Answer) -> SendError {
    #[derive(Deserialize)]
    struct Body {
        code: Option<u32>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(&answer.body) {
        Ok(body) => answer.error(
            Provider::Twilio,
            body.code.map(|c| c.to_string()),
            body.message.as_deref().unwrap_or("no message"),
        ),
        Err(_) => answer.error(Provider::Twilio, None, &answer.text()),
    }
}
