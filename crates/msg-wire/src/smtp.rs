//! Email over SMTP (RFC 5321) with `lettre`: pooled connections (see
//! `smtp/pool.rs`), TLS by STARTTLS or on connect, optional AUTH, and a MIME
//! message built from an [`Email`].

mod pool;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Message, MultiPart, SinglePart};
use lettre::transport::smtp;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::extension::ClientId;

use pool::{Pool, Relay};

use crate::error::{Failure, Provider, Result, SendError, truncate};
use crate::types::{Email, EmailSender, SendFuture, Sent};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text only (a trusted local relay, or the fake). Credentials
    /// travel in the clear.
    None,
    /// Connect in plain text and upgrade with STARTTLS, which is required:
    /// a server that does not offer it is refused (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Implicit,
}

/// AUTH credentials; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    /// The user name.
    pub username: String,
    /// The password or API key.
    pub password: String,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where and how to reach an SMTP relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The relay's host name (also the name its certificate must carry).
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// Connection protection.
    pub tls: SmtpTls,
    /// AUTH PLAIN/LOGIN credentials, if the relay wants them.
    pub credentials: Option<SmtpCredentials>,
    /// Limit for connecting (through AUTH), and for each message's whole
    /// transaction.
    pub timeout: Duration,
    /// The name announced in EHLO; the local host name if `None`.
    pub hello_name: Option<String>,
    /// Most connections open at once: sends beyond it wait for a free
    /// connection. Relays often limit connections per account.
    pub max_connections: u32,
}

impl SmtpConfig {
    /// A relay at `host:port` without credentials, a 30 s timeout and up
    /// to 4 pooled connections.
    pub fn new(host: impl Into<String>, port: u16, tls: SmtpTls) -> Self {
        Self {
            host: host.into(),
            port,
            tls,
            credentials: None,
            timeout: Duration::from_secs(30),
            hello_name: None,
            max_connections: 4,
        }
    }

    /// With AUTH credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some(SmtpCredentials {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// With a different timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With the name to announce in EHLO.
    pub fn with_hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// With a different connection pool size (at least 1).
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }
}

/// Sends [`Email`]s through one SMTP relay over a pool of connections.
/// Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct SmtpSender {
    pool: Arc<Pool>,
}

impl SmtpSender {
    /// A sender for the relay in `config`. Connects lazily, on the first
    /// message, and keeps connections open (idle ones for up to 30 s).
    ///
    /// # Errors
    ///
    /// [`SendError::Permanent`] if the TLS configuration cannot be built.
    pub fn new(config: &SmtpConfig) -> Result<Self> {
        crate::http::ensure_crypto_provider();
        let tls_parameters = match config.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Implicit => Some(tls_parameters(&config.host)?),
        };
        let relay = Relay {
            host: config.host.clone(),
            port: config.port,
            tls: config.tls,
            tls_parameters,
            hello: config
                .hello_name
                .clone()
                .map_or_else(ClientId::default, ClientId::Domain),
            credentials: config
                .credentials
                .as_ref()
                .map(|c| Credentials::new(c.username.clone(), c.password.clone())),
            timeout: config.timeout,
        };
        Ok(Self {
            pool: Arc::new(Pool::new(relay, config.max_connections as usize)),
        })
    }

    /// Sends one email: MAIL FROM the `from` address, RCPT TO the `to`
    /// address, and the MIME message as DATA.
    ///
    /// # Errors
    ///
    /// [`SendError::Transient`] for 4xx replies, timeouts and connection
    /// or TLS failures; [`SendError::Permanent`] for 5xx replies (an unknown
    /// recipient, refused credentials) and emails that cannot be expressed.
    pub async fn send(&self, email: &Email) -> Result<Sent> {
        let (message, provider_id) = mime_message(email)?;
        // Built from Strings, encoded by lettre: always UTF-8.
        let formatted = String::from_utf8(message.formatted()).map_err(|_| {
            SendError::invalid(Provider::Smtp, "the formatted message is not UTF-8")
        })?;
        self.pool.send(message.envelope(), &formatted).await?;
        Ok(Sent { provider_id })
    }
}

impl EmailSender for SmtpSender {
    fn send_email<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(self.send(email))
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters> {
    TlsParameters::new(host.to_owned())
        .map_err(|e| SendError::invalid(Provider::Smtp, format!("cannot configure TLS: {e}")))
}

/// The MIME message for `email` and its `Message-ID` without angle
/// brackets: a caller's `Message-ID` header if present, else a random one
/// at the sender's domain.
pub(crate) fn mime_message(email: &Email) -> Result<(Message, String)> {
    let checked = email.check(Provider::Smtp)?;
    let invalid = |message: String| SendError::invalid(Provider::Smtp, message);
    let message_id = match email.header("Message-ID") {
        Some(id) => id.trim().to_owned(),
        None => format!("<{}@{}>", random_hex(16)?, checked.from.email.domain()),
    };
    let mut builder = Message::builder()
        .from(checked.from)
        .to(checked.to)
        .subject(email.subject.clone())
        .message_id(Some(message_id.clone()));
    if let Some(reply_to) = checked.reply_to {
        builder = builder.reply_to(reply_to);
    }
    for (name, value) in &email.headers {
        if name.eq_ignore_ascii_case("Message-ID") {
            continue;
        }
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
        builder = builder.raw_header(HeaderValue::new(name, value.clone()));
    }
    let built = match (&email.text, &email.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text.clone())),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
        // `check` refused this already.
        (None, None) => return Err(invalid("the email has no body".into())),
    };
    let message = built.map_err(|e| invalid(format!("cannot build the message: {e}")))?;
    let id = message_id
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    Ok((message, id))
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    use ring::rand::{SecureRandom as _, SystemRandom};
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Failure::new(Provider::Smtp, "no system randomness").transient())?;
    Ok(hex::encode(buf))
}

/// Classifies a `lettre` error: replies by their first digit, everything
/// on the way there (connection, TLS, timeout, a garbled reply) as
/// transient; lettre's own client errors (no common AUTH mechanism, a
/// server lacking SMTPUTF8 for a non-ASCII address) as permanent.
pub(crate) fn from_lettre(e: &smtp::Error) -> SendError {
    let message = truncate(&e.to_string());
    let mut failure = Failure::new(Provider::Smtp, message.clone());
    if let Some(code) = e.status() {
        failure = failure.with_status(u16::from(code));
        if let Some(enhanced) = enhanced_status(&message) {
            failure = failure.with_code(enhanced);
        }
    }
    if e.is_permanent() || e.is_client() {
        failure.permanent()
    } else {
        failure.transient()
    }
}

/// The RFC 3463 enhanced status code (`5.1.1`) in a reply text, if any.
fn enhanced_status(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            from: "Weft <noreply@weft.test>".into(),
            to: "ada@example.com".into(),
            reply_to: Some("help@weft.test".into()),
            subject: "Grüße".into(),
            html: Some("<p>Hello</p>".into()),
            text: Some("Hello".into()),
            headers: vec![
                ("List-Unsubscribe".into(), "<https://weft.test/u/1>".into()),
                (
                    "List-Unsubscribe-Post".into(),
                    "List-Unsubscribe=One-Click".into(),
                ),
            ],
        }
    }

    #[test]
    fn builds_multipart_alternative_with_headers() {
        let (message, id) = mime_message(&email()).expect("message");
        let text = String::from_utf8(message.formatted()).expect("utf-8");
        assert!(id.ends_with("@weft.test"), "{id}");
        assert!(text.contains(&format!("Message-ID: <{id}>")));
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("List-Unsubscribe: <https://weft.test/u/1>"));
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(text.contains("Reply-To: help@weft.test"));
        let plain = text.find("text/plain").expect("plain part");
        let html = text.find("text/html").expect("html part");
        assert!(plain < html, "text/plain comes first");
    }

    #[test]
    fn a_callers_message_id_is_kept() {
        let mut email = email();
        email
            .headers
            .push(("Message-ID".into(), "<fixed@weft.test>".into()));
        let (message, id) = mime_message(&email).expect("message");
        assert_eq!(id, "fixed@weft.test");
        let text = String::from_utf8(message.formatted()).expect("utf-8");
        assert_eq!(text.matches("Message-ID:").count(), 1);
    }

    #[test]
    fn finds_enhanced_status_codes() {
        assert_eq!(
            enhanced_status("permanent error (550): 5.1.1 no such user").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(enhanced_status("transient error (451): try later"), None);
    }
}
