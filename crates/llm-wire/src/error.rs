//! The crate's one error type.

use std::fmt;

/// Result with this crate's error.
pub type Result<T, E = WireError> = std::result::Result<T, E>;

/// A failed provider call.
///
/// `message` is short, safe to log and never contains the API key; it may
/// contain the provider's own error text (truncated), so the host should
/// still not forward it verbatim to other tenants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct WireError {
    /// What kind of failure, for retry and status decisions.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

/// Classification of a [`WireError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer (or no next stream chunk) within the endpoint's timeout.
    Timeout,
    /// HTTP 429, or a rate-limit error event inside a stream.
    RateLimited,
    /// The provider failed: HTTP 5xx (including Anthropic's 529
    /// "overloaded"), or a server error event inside a stream.
    Server {
        /// The HTTP status (500 for stream error events without one).
        status: u16,
    },
    /// The provider refused the request: any other 4xx (bad request, wrong
    /// key, unknown model, too large). Retrying will not help.
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The connection could not be made or broke mid-way.
    Transport,
    /// The provider answered something this crate cannot understand, or a
    /// stream ended without the provider's end marker.
    Protocol,
    /// The request cannot be expressed, so nothing was sent: embeddings on
    /// Anthropic (it has no embeddings API), a Gemini model id that cannot
    /// be placed in a URL path, an API key that is not a valid header
    /// value, or an invalid base URL. Not retryable.
    Unsupported,
}

impl ErrorKind {
    /// Whether the same request may succeed if sent again.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::RateLimited | Self::Server { .. } | Self::Transport
        )
    }

    /// The kind for a non-success HTTP status.
    pub fn from_status(status: u16) -> Self {
        match status {
            429 => Self::RateLimited,
            // Includes Anthropic's 529 "overloaded".
            500..=599 => Self::Server { status },
            400..=499 => Self::Rejected { status },
            // A 1xx/3xx that reqwest did not follow: not something we speak.
            _ => Self::Protocol,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timeout"),
            Self::RateLimited => f.write_str("rate limited"),
            Self::Server { status } => write!(f, "provider error ({status})"),
            Self::Rejected { status } => write!(f, "rejected ({status})"),
            Self::Transport => f.write_str("transport error"),
            Self::Protocol => f.write_str("protocol error"),
            Self::Unsupported => f.write_str("unsupported"),
        }
    }
}

impl WireError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the same request may succeed if sent again (timeouts, rate
    /// limits, provider failures, broken connections).
    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// Removes `secret` from the message; provider error bodies and transport
    /// errors are outside our control, so this is applied to every error
    /// before it leaves the client.
    pub(crate) fn redact(mut self, secret: &str) -> Self {
        if !secret.is_empty() && self.message.contains(secret) {
            self.message = self.message.replace(secret, "<redacted>");
        }
        self
    }
}

/// Longest provider error text kept in a message, in characters.
const MAX_DETAIL_CHARS: usize = 300;

/// `text` cut to [`MAX_DETAIL_CHARS`] characters, with an ellipsis if cut.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
