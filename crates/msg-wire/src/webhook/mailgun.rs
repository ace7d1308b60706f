//! Mailgun webhooks: one JSON event per POST, `{"signature": {"timestamp",
//! "token", "signature"}, "event-data": {...}}`, where `signature` is the
//! hex HMAC-SHA256 of timestamp followed by token under the webhook
//! signing key.
//!
//! That signature covers only the timestamp and token, not the event, so a
//! captured post could be replayed with another event inside the time
//! window; the verifier therefore refuses a token it has seen before, as
//! Mailgun advises.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde::Deserialize;
use serde_json::Value;

use super::{DEFAULT_TOLERANCE, DeliveryStatus, StatusEvent, WebhookError, check_fresh};
use crate::error::Provider;
use crate::mailgun::strip_angle_brackets;

/// Verifies and parses Mailgun webhooks for one signing key.
///
/// Clones share the record of seen tokens. That record lives in this
/// process: a host running several replicas behind one webhook URL should
/// also deduplicate events (by `event-data.id`) where it stores them.
#[derive(Clone)]
pub struct MailgunWebhook {
    key: hmac::Key,
    tolerance: Duration,
    /// Tokens accepted within the tolerance, with their timestamps.
    seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl fmt::Debug for MailgunWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailgunWebhook")
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl MailgunWebhook {
    /// A verifier for the account's HTTP webhook signing key (not the API
    /// key), allowing [`DEFAULT_TOLERANCE`](super::DEFAULT_TOLERANCE) of
    /// clock distance.
    pub fn new(signing_key: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_bytes()),
            tolerance: DEFAULT_TOLERANCE,
            seen: Arc::default(),
        }
    }

    /// With a different allowed distance between the timestamp and now.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Checks the signature and timestamp and reads the event; `None` for
    /// events that say nothing about delivery (`opened`, `clicked`,
    /// `stored`).
    ///
    /// # Errors
    ///
    /// [`WebhookError::MissingSignature`] for a body without `signature`,
    /// [`WebhookError::BadSignature`], [`WebhookError::Stale`],
    /// [`WebhookError::Replayed`] for a token already accepted, or
    /// [`WebhookError::Malformed`] for a body that is not Mailgun's JSON.
    pub fn verify(&self, body: &[u8]) -> Result<Option<StatusEvent>, WebhookError> {
        self.verify_at(body, SystemTime::now())
    }

    /// [`MailgunWebhook::verify`] as if the time were `now`.
    ///
    /// # Errors
    ///
    /// As for [`MailgunWebhook::verify`].
    pub fn verify_at(
        &self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Option<StatusEvent>, WebhookError> {
        #[derive(Deserialize)]
        struct Body {
            signature: Option<Signature>,
            #[serde(rename = "event-data")]
            event_data: Option<Value>,
        }
        #[derive(Deserialize)]
        struct Signature {
            timestamp: String,
            token: String,
            signature: String,
        }
        let body: Body = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("not Mailgun's webhook JSON: {e}")))?;
        let signature = body.signature.ok_or(WebhookError::MissingSignature)?;
        let tag =
            hex::decode(signature.signature.trim()).map_err(|_| WebhookError::BadSignature)?;
        let signed = format!("{}{}", signature.timestamp, signature.token);
        hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| WebhookError::BadSignature)?;
        let seconds = signature
            .timestamp
            .trim()
            .parse::<u64>()
            .map_err(|_| WebhookError::Malformed("the timestamp is not Unix seconds".into()))?;
        check_fresh(seconds, now, self.tolerance)?;
        self.remember(signature.token, seconds, now)?;
        let data = body
            .event_data
            .ok_or_else(|| WebhookError::Malformed("no event-data".into()))?;
        parse(&data)
    }
}

impl MailgunWebhook {
    /// Records `token`, refusing one already recorded; forgets tokens that
    /// have gone stale (those are refused by the timestamp check anyway).
    fn remember(&self, token: String, timestamp: u64, now: SystemTime) -> Result<(), WebhookError> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let window = self.tolerance.as_secs();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| now.abs_diff(*at) <= window);
        if seen.contains_key(&token) {
            return Err(WebhookError::Replayed);
        }
        seen.insert(token, timestamp);
        Ok(())
    }
}

/// The hex signature Mailgun sends for `timestamp` and `token`.
pub(crate) fn signature(signing_key: &str, timestamp: &str, token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_bytes());
    hex::encode(hmac::sign(&key, format!("{timestamp}{token}").as_bytes()))
}

fn parse(data: &Value) -> Result<Option<StatusEvent>, WebhookError> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let event = data["event"]
        .as_str()
        .ok_or_else(|| WebhookError::Malformed("no event name".into()))?;
    let status = match (event, data["severity"].as_str()) {
        ("accepted", _) | ("failed", Some("temporary")) => DeliveryStatus::Queued,
        ("delivered", _) => DeliveryStatus::Delivered,
        ("failed", _) => DeliveryStatus::Bounced,
        ("rejected", _) => DeliveryStatus::Failed,
        ("complained", _) => DeliveryStatus::Complained,
        ("unsubscribed", _) => DeliveryStatus::Unsubscribed,
        _ => return Ok(None),
    };
    let id = data["message"]["headers"]["message-id"]
        .as_str()
        .ok_or_else(|| WebhookError::Malformed("no message.headers.message-id".into()))?;
    let reason = text(&data["delivery-status"]["message"])
        .filter(|m| !m.is_empty())
        .or_else(|| text(&data["delivery-status"]["description"]).filter(|m| !m.is_empty()))
        .or_else(|| text(&data["reason"]));
    Ok(Some(StatusEvent {
        provider: Provider::Mailgun,
        provider_id: strip_angle_brackets(id),
        status,
        event: event.to_owned(),
        recipient: text(&data["recipient"]),
        reason,
        // Mailgun sends fractional seconds.
        timestamp: data["timestamp"].as_f64().map(|t| t as u64),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(key: &str, timestamp: &str, event: Value) -> Vec<u8> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3d{n:04}");
        json!({
            "signature": {"timestamp": timestamp, "token": token, "signature": signature(key, timestamp, &token)},
            "event-data": event,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn verifies_and_maps_failures_by_severity() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let hook = MailgunWebhook::new("key-1");
        let event = json!({"event": "failed", "severity": "permanent", "recipient": "a@x.test",
            "timestamp": 1_700_000_000.25, "delivery-status": {"code": 550, "message": "no such user"},
            "message": {"headers": {"message-id": "id1@mg.test"}}});
        let parsed = hook
            .verify_at(&body("key-1", "1700000000", event.clone()), now)
            .expect("valid")
            .expect("a delivery event");
        assert_eq!(parsed.status, DeliveryStatus::Bounced);
        assert_eq!(parsed.provider_id, "id1@mg.test");
        assert_eq!(parsed.reason.as_deref(), Some("no such user"));
        assert_eq!(parsed.timestamp, Some(1_700_000_000));

        let mut temporary = event.clone();
        temporary["severity"] = json!("temporary");
        let parsed = hook
            .verify_at(&body("key-1", "1700000000", temporary), now)
            .expect("valid");
        assert_eq!(parsed.map(|e| e.status), Some(DeliveryStatus::Queued));

        assert_eq!(
            hook.verify_at(&body("key-2", "1700000000", event.clone()), now),
            Err(WebhookError::BadSignature)
        );
        assert!(matches!(
            hook.verify_at(&body("key-1", "1699990000", event), now),
            Err(WebhookError::Stale { .. })
        ));
        let opened = json!({"event": "opened", "message": {"headers": {"message-id": "x"}}});
        let opened = body("key-1", "1700000000", opened);
        assert_eq!(hook.verify_at(&opened, now), Ok(None));
        assert_eq!(hook.verify_at(&opened, now), Err(WebhookError::Replayed));
    }
}
