//! Delivery-status webhooks: each provider's signature checked exactly as
//! the provider signs, and its events turned into [`StatusEvent`]s.
//!
//! The verifiers take the raw request body and header values, so they work
//! with any HTTP server: read the body as bytes *before* parsing it, since
//! every signature covers the exact bytes (or, for Twilio, the exact URL).

mod mailgun;
mod sendgrid;
mod twilio;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use mailgun::MailgunWebhook;
pub use sendgrid::{SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, SendGridWebhook};
pub use twilio::{TWILIO_SIGNATURE_HEADER, TwilioWebhook};

pub(crate) use mailgun::signature as mailgun_signature;
pub(crate) use sendgrid::spki_from_p256_point;
pub(crate) use twilio::signature as twilio_signature;

use crate::error::Provider;

/// Why a webhook was refused. Answer [`WebhookError::Malformed`] with 400
/// and the others with 401 or 403; do not echo the detail to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature (or for SendGrid, the timestamp) header is absent.
    #[error("the webhook is not signed")]
    MissingSignature,
    /// The signature does not match the body: tampered, or signed with
    /// another key.
    #[error("the webhook signature does not match")]
    BadSignature,
    /// The signed timestamp is further from now than the tolerance: a
    /// replay, or a badly wrong clock.
    #[error("the webhook timestamp is {age_secs} s from now, beyond {tolerance_secs} s")]
    Stale {
        /// Distance between the timestamp and now, in seconds.
        age_secs: u64,
        /// The verifier's tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// A Mailgun token seen before within the tolerance: a replay.
    #[error("the webhook token was already used")]
    Replayed,
    /// The signature is valid but the body is not what the provider sends.
    #[error("malformed webhook: {0}")]
    Malformed(String),
    /// The configured verification key cannot be used.
    #[error("invalid webhook key: {0}")]
    InvalidKey(String),
}

/// Where a message stands, in provider-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Accepted by the provider, not yet handed on (Twilio `queued`,
    /// SendGrid `processed`/`deferred`, Mailgun `accepted` or a temporary
    /// failure it will retry).
    Queued,
    /// Handed to the carrier or next hop (Twilio `sending`/`sent`).
    Sent,
    /// The recipient's server or handset has it.
    Delivered,
    /// The recipient's side refused it (Twilio `undelivered`, SendGrid
    /// `bounce`, Mailgun permanent `failed`).
    Bounced,
    /// The provider gave it up before delivery (Twilio `failed`/`canceled`,
    /// SendGrid `dropped`, Mailgun `rejected`).
    Failed,
    /// The recipient reported it as spam (SendGrid `spamreport`, Mailgun
    /// `complained`): stop emailing them.
    Complained,
    /// The recipient unsubscribed through the provider's link.
    Unsubscribed,
}

impl DeliveryStatus {
    /// Whether no further delivery status will follow (delivered, bounced
    /// or failed).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Bounced | Self::Failed)
    }
}

/// One status change reported by a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// Who reported it.
    pub provider: Provider,
    /// The message's id, comparable with [`Sent::provider_id`](crate::Sent):
    /// Twilio's `MessageSid`, SendGrid's `sg_message_id` up to its
    /// `.filter…` suffix, Mailgun's `message-id`.
    pub provider_id: String,
    /// The neutral status.
    pub status: DeliveryStatus,
    /// The provider's own event or status name (`undelivered`, `bounce`,
    /// `failed`, …).
    pub event: String,
    /// The recipient, when the provider names it.
    pub recipient: Option<String>,
    /// Why, for failures: Twilio's `ErrorCode`, SendGrid's `reason`,
    /// Mailgun's `delivery-status` message or `reason`.
    pub reason: Option<String>,
    /// When it happened, in Unix seconds, when the provider says.
    pub timestamp: Option<u64>,
}

/// Default distance allowed between a signed timestamp and now.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Checks a Unix-seconds timestamp against `now` within `tolerance`.
fn check_fresh(timestamp: u64, now: SystemTime, tolerance: Duration) -> Result<(), WebhookError> {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let age = now.abs_diff(timestamp);
    if age > tolerance.as_secs() {
        return Err(WebhookError::Stale {
            age_secs: age,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_symmetric() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let tolerance = Duration::from_secs(300);
        assert!(check_fresh(10_000 - 300, now, tolerance).is_ok());
        assert!(check_fresh(10_000 + 300, now, tolerance).is_ok());
        assert_eq!(
            check_fresh(10_000 - 301, now, tolerance),
            Err(WebhookError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(check_fresh(10_000 + 301, now, tolerance).is_err());
    }
}
