//! The senders' one error type: every failure is either worth retrying
//! later or not.

use std::fmt;
use std::time::Duration;

/// Result with the senders' error.
pub type Result<T, E = SendError> = std::result::Result<T, E>;

/// Which provider a failure (or a webhook event) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Any SMTP relay.
    Smtp,
    /// Twilio SendGrid's v3 mail API.
    SendGrid,
    /// Mailgun's messages API.
    Mailgun,
    /// Twilio's Programmable Messaging API.
    Twilio,
    /// Firebase Cloud Messaging HTTP v1.
    Fcm,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Smtp => "SMTP",
            Self::SendGrid => "SendGrid",
            Self::Mailgun => "Mailgun",
            Self::Twilio => "Twilio",
            Self::Fcm => "FCM",
        })
    }
}

/// A message that was not sent.
///
/// The two variants are the only decision an outbox has to make: try again
/// later, or give the message up. The [`Failure`] says why, for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Sending again later may succeed: the connection failed or timed
    /// out, the provider answered HTTP 408, 429 or 5xx (or an error code it
    /// documents as temporary), or the SMTP server replied 4xx.
    #[error("transient {0}")]
    Transient(Failure),
    /// Sending again will fail the same way: the provider refused the
    /// request (other 4xx, SMTP 5xx, an invalid recipient or credentials),
    /// the message cannot be expressed (bad address, header injection, no
    /// body), or the sender's configuration is malformed.
    #[error("permanent {0}")]
    Permanent(Failure),
}

/// Why a message was not sent.
///
/// `message` is short and never contains credentials; it may contain the
/// provider's own error text (truncated) and so the recipient's address,
/// which is why the host should log it rather than show it to other
/// tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The provider that failed or refused.
    pub provider: Provider,
    /// The HTTP status, or the SMTP reply code (e.g. 451, 550); `None` when
    /// no answer was received.
    pub status: Option<u16>,
    /// The provider's own error code when it gives one: Twilio's numeric
    /// code (`"21211"`), FCM's `errorCode` (`"UNREGISTERED"`), SendGrid's
    /// error `field`, Google's OAuth `error` (`"invalid_grant"`).
    pub code: Option<String>,
    /// Human-readable detail.
    pub message: String,
    /// How long the provider asked us to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failure", self.provider)?;
        match (&self.status, &self.code) {
            (Some(status), Some(code)) => write!(f, " ({status}, {code})")?,
            (Some(status), None) => write!(f, " ({status})")?,
            (None, Some(code)) => write!(f, " ({code})")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl Failure {
    /// A failure of `provider` with only a message.
    pub fn new(provider: Provider, message: impl Into<String>) -> Self {
        Self {
            provider,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// With the HTTP status or SMTP reply code.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// With the provider's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// With the wait the provider asked for.
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// This failure as a [`SendError::Transient`].
    pub fn transient(self) -> SendError {
        SendError::Transient(self)
    }

    /// This failure as a [`SendError::Permanent`].
    pub fn permanent(self) -> SendError {
        SendError::Permanent(self)
    }
}

impl SendError {
    /// Whether sending the same message again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// Why the message was not sent.
    pub fn failure(&self) -> &Failure {
        match self {
            Self::Transient(failure) | Self::Permanent(failure) => failure,
        }
    }

    /// The provider that failed or refused.
    pub fn provider(&self) -> Provider {
        self.failure().provider
    }

    /// The HTTP status or SMTP reply code, if an answer was received.
    pub fn status(&self) -> Option<u16> {
        self.failure().status
    }

    /// The provider's own error code, if it gave one.
    pub fn code(&self) -> Option<&str> {
        self.failure().code.as_deref()
    }

    /// How long the provider asked us to wait before retrying, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.failure().retry_after
    }

    /// The message cannot be sent as given (checked before anything goes on
    /// the wire), or the sender is misconfigured.
    pub(crate) fn invalid(provider: Provider, message: impl Into<String>) -> Self {
        Failure::new(provider, message).permanent()
    }
}

/// Longest provider error text kept in a message, in characters.
const MAX_DETAIL_CHARS: usize = 300;

/// `text` cut to [`MAX_DETAIL_CHARS`] characters, with an ellipsis if cut.
pub(crate) fn truncate(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_class_provider_and_codes() {
        let error = Failure::new(Provider::Twilio, "invalid To")
            .with_status(400)
            .with_code("21211")
            .permanent();
        assert_eq!(
            error.to_string(),
            "permanent Twilio failure (400, 21211): invalid To"
        );
        assert!(!error.is_transient());
        assert_eq!(error.code(), Some("21211"));
    }

    #[test]
    fn truncate_cuts_at_char_boundaries() {
        let long = "é".repeat(400);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
