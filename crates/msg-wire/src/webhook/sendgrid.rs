//! SendGrid's signed Event Webhook: a JSON array of events, signed with
//! ECDSA P-256 / SHA-256 over the timestamp header followed by the raw
//! body.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;

use super::{DEFAULT_TOLERANCE, DeliveryStatus, StatusEvent, WebhookError, check_fresh};
use crate::error::Provider;

/// The header carrying the base64 DER signature.
pub const SENDGRID_SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// The header carrying the signed Unix timestamp.
pub const SENDGRID_TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// DER `AlgorithmIdentifier` contents for an elliptic-curve key on P-256:
/// OID 1.2.840.10045.2.1 (ecPublicKey), OID 1.2.840.10045.3.1.7
/// (prime256v1).
const P256_ALGORITHM: [u8; 19] = [
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x03, 0x01, 0x07,
];

/// Verifies and parses SendGrid Event Webhook posts for one key.
#[derive(Clone)]
pub struct SendGridWebhook {
    /// The uncompressed point (`04 || X || Y`).
    point: Vec<u8>,
    tolerance: Duration,
}

impl fmt::Debug for SendGridWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridWebhook")
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl SendGridWebhook {
    /// A verifier for the verification key as SendGrid shows it (base64
    /// DER SubjectPublicKeyInfo of a P-256 key), allowing
    /// [`DEFAULT_TOLERANCE`](super::DEFAULT_TOLERANCE) of clock distance.
    ///
    /// # Errors
    ///
    /// [`WebhookError::InvalidKey`] if it is not such a key.
    pub fn new(public_key_base64: &str) -> Result<Self, WebhookError> {
        let der = STANDARD
            .decode(public_key_base64.trim())
            .map_err(|_| WebhookError::InvalidKey("not base64".into()))?;
        let point = p256_point_from_spki(&der).ok_or_else(|| {
            WebhookError::InvalidKey("not a DER SubjectPublicKeyInfo of a P-256 key".into())
        })?;
        Ok(Self {
            point,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// With a different allowed distance between the timestamp and now.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Checks the signature and timestamp and reads the delivery events.
    /// Engagement events (`open`, `click`, `group_resubscribe`) and events
    /// without `sg_message_id` are left out.
    ///
    /// `signature` and `timestamp` are the [`SENDGRID_SIGNATURE_HEADER`] and
    /// [`SENDGRID_TIMESTAMP_HEADER`] values; `body` the raw request body.
    ///
    /// # Errors
    ///
    /// [`WebhookError::MissingSignature`], [`WebhookError::BadSignature`],
    /// [`WebhookError::Stale`], or [`WebhookError::Malformed`] for a body
    /// that is not a JSON array of events.
    pub fn verify(
        &self,
        body: &[u8],
        signature: Option<&str>,
        timestamp: Option<&str>,
    ) -> Result<Vec<StatusEvent>, WebhookError> {
        self.verify_at(body, signature, timestamp, SystemTime::now())
    }

    /// [`SendGridWebhook::verify`] as if the time were `now`.
    ///
    /// # Errors
    ///
    /// As for [`SendGridWebhook::verify`].
    pub fn verify_at(
        &self,
        body: &[u8],
        signature: Option<&str>,
        timestamp: Option<&str>,
        now: SystemTime,
    ) -> Result<Vec<StatusEvent>, WebhookError> {
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
            return Err(WebhookError::MissingSignature);
        };
        let der = STANDARD
            .decode(signature.trim())
            .map_err(|_| WebhookError::BadSignature)?;
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(&signed, &der)
            .map_err(|_| WebhookError::BadSignature)?;
        // Checked after the signature, so an unsigned request learns
        // nothing from the answer.
        let seconds = timestamp
            .trim()
            .parse::<u64>()
            .map_err(|_| WebhookError::Malformed("the timestamp is not Unix seconds".into()))?;
        check_fresh(seconds, now, self.tolerance)?;
        parse(body)
    }
}

/// SendGrid's `sg_message_id` up to its `.filter…`/`.recvd…` suffix: the
/// `X-Message-Id` the send returned.
pub(crate) fn message_id_from_sg(sg_message_id: &str) -> &str {
    [".filter", ".recvd"]
        .iter()
        .find_map(|suffix| sg_message_id.find(suffix))
        .map_or(sg_message_id, |at| &sg_message_id[..at])
}

fn parse(body: &[u8]) -> Result<Vec<StatusEvent>, WebhookError> {
    #[derive(Deserialize)]
    struct Event {
        event: String,
        sg_message_id: Option<String>,
        email: Option<String>,
        timestamp: Option<u64>,
        reason: Option<String>,
    }
    let events: Vec<Event> = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("not a JSON array of events: {e}")))?;
    Ok(events
        .into_iter()
        .filter_map(|event| {
            let status = match event.event.as_str() {
                "processed" | "deferred" => DeliveryStatus::Queued,
                "delivered" => DeliveryStatus::Delivered,
                "bounce" | "blocked" => DeliveryStatus::Bounced,
                "dropped" => DeliveryStatus::Failed,
                "spamreport" => DeliveryStatus::Complained,
                "unsubscribe" | "group_unsubscribe" => DeliveryStatus::Unsubscribed,
                _ => return None,
            };
            let sg_id = event.sg_message_id?;
            Some(StatusEvent {
                provider: Provider::SendGrid,
                provider_id: message_id_from_sg(&sg_id).to_owned(),
                status,
                event: event.event,
                recipient: event.email,
                reason: event.reason,
                timestamp: event.timestamp,
            })
        })
        .collect())
}

/// Reads one DER tag-length-value at the start of `input`: the tag, the
/// contents, and what follows.
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 2 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The uncompressed point inside a P-256 SubjectPublicKeyInfo:
/// `SEQUENCE { SEQUENCE { ecPublicKey, prime256v1 }, BIT STRING point }`.
fn p256_point_from_spki(der: &[u8]) -> Option<Vec<u8>> {
    let (0x30, spki, []) = der_item(der)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_item(spki)? else {
        return None;
    };
    if algorithm != P256_ALGORITHM {
        return None;
    }
    let (0x03, bits, []) = der_item(rest)? else {
        return None;
    };
    // No unused bits, then the uncompressed point 04 || X || Y.
    match bits {
        [0, point @ ..] if point.len() == 65 && point[0] == 0x04 => Some(point.to_vec()),
        _ => None,
    }
}

/// The DER SubjectPublicKeyInfo for an uncompressed P-256 point, as the
/// fake shows its key.
pub(crate) fn spki_from_p256_point(point: &[u8]) -> Vec<u8> {
    let algorithm_len = P256_ALGORITHM.len() as u8;
    let bits_len = point.len() as u8 + 1;
    let mut der = vec![0x30, 0, 0x30, algorithm_len];
    der.extend_from_slice(&P256_ALGORITHM);
    der.extend_from_slice(&[0x03, bits_len, 0x00]);
    der.extend_from_slice(point);
    der[1] = (der.len() - 2) as u8;
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_round_trips() {
        let mut point = vec![0x04];
        point.extend(1..=64u8);
        let der = spki_from_p256_point(&point);
        assert_eq!(der.len(), 91);
        assert_eq!(&der[..4], &[0x30, 0x59, 0x30, 0x13]);
        assert_eq!(p256_point_from_spki(&der), Some(point));
        assert_eq!(p256_point_from_spki(&der[..90]), None);
        let mut other_curve = der.clone();
        other_curve[20] ^= 1;
        assert_eq!(p256_point_from_spki(&other_curve), None);
    }

    #[test]
    fn sg_message_ids_lose_their_filter_suffix() {
        assert_eq!(
            message_id_from_sg("14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"),
            "14c5d75ce93.dfd.64b469"
        );
        assert_eq!(message_id_from_sg("W2B3o9ZfRx.recvd-5f4-1-0"), "W2B3o9ZfRx");
        assert_eq!(message_id_from_sg("plain"), "plain");
    }

    #[test]
    fn parses_delivery_events_and_skips_engagement() {
        let body = br#"[
            {"email":"a@x.test","timestamp":1700000000,"event":"processed","sg_message_id":"m1.filter1"},
            {"email":"a@x.test","timestamp":1700000001,"event":"open","sg_message_id":"m1.filter1"},
            {"email":"b@x.test","timestamp":1700000002,"event":"bounce","reason":"550 no such user","sg_message_id":"m2.filter1"}
        ]"#;
        let events = parse(body).expect("parses");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].provider_id, "m1");
        assert_eq!(events[0].status, DeliveryStatus::Queued);
        assert_eq!(events[1].status, DeliveryStatus::Bounced);
        assert_eq!(events[1].reason.as_deref(), Some("550 no such user"));
    }
}
