//! The crate's one error type for calls to Stripe (webhook verification has
//! its own, [`crate::WebhookError`], because its outcomes are answers to a
//! sender rather than failures of ours).

/// What can go wrong talking to Stripe.
///
/// No variant ever carries the secret key: messages come from Stripe's error
/// body or from the transport, and the key only ever travels in a header
/// that async-stripe marks sensitive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Stripe answered with an error body
    /// (`{"error": {"type": ..., "code": ..., "message": ...}}`).
    #[error("stripe returned {status} {kind}: {message}")]
    Api {
        /// The HTTP status code (400, 401, 402, 404, 409, 429, 5xx).
        status: u16,
        /// Stripe's error `type`: `invalid_request_error`, `idempotency_error`,
        /// `api_error`, `card_error`.
        kind: String,
        /// Stripe's machine-readable `code`, when it sends one
        /// (`resource_missing`, `parameter_missing`, ...).
        code: Option<String>,
        /// Stripe's human-readable message.
        message: String,
    },
    /// The request never got an answer: connection, TLS or timeout.
    #[error("could not reach stripe: {0}")]
    Transport(String),
    /// Stripe answered, but not with what the API documents.
    #[error("could not decode stripe's answer: {0}")]
    Decode(String),
    /// An argument was refused before anything was sent (an empty or
    /// over-long idempotency key, an unusable base URL or secret key).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<stripe::StripeError> for Error {
    fn from(err: stripe::StripeError) -> Self {
        match err {
            stripe::StripeError::Stripe(body, status) => Error::Api {
                status,
                kind: body.type_.as_str().to_owned(),
                code: body.code.as_ref().map(|code| code.as_str().to_owned()),
                message: body.message.clone().unwrap_or_default(),
            },
            stripe::StripeError::JSONDeserialize(msg) => Error::Decode(msg),
            stripe::StripeError::ClientError(msg) => Error::Transport(msg),
            stripe::StripeError::ConfigError(msg) => Error::InvalidInput(msg),
            stripe::StripeError::Timeout => Error::Transport("timed out".to_owned()),
        }
    }
}
