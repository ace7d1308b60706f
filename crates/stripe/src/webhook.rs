//! Stripe webhooks: signature verification and the events billing reads.
//!
//! Verification is done here with hmac/sha2 rather than through
//! async-stripe-webhook (rc.10), because that crate
//! - fixes the tolerance at 300 seconds (ours is the caller's choice),
//! - reports a header without `t` or `v1` as a bad signature, where the
//!   host wants to tell a malformed request from a forged one, and
//! - parses `data.object` into its typed models of the one API version it
//!   was generated for, so an endpoint pinned to another version, or a new
//!   required field, turns a genuine event into a parse failure. Billing
//!   reads a handful of fields, so the object stays JSON and the accessors
//!   below read what they need, tolerating both older and newer shapes.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

/// Stripe's own libraries accept signatures up to five minutes old.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a webhook request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The `Stripe-Signature` header has no `t=` timestamp or no `v1=`
    /// signature, or the signed payload is not a Stripe event.
    #[error("malformed webhook request")]
    Malformed,
    /// No `v1` signature matches the payload under the endpoint's secret:
    /// forged, tampered with, or signed with another secret.
    #[error("webhook signature does not match")]
    BadSignature,
    /// The signature is genuine but its timestamp is outside the tolerance,
    /// so the request may be a replay.
    #[error("webhook signature timestamp outside tolerance")]
    Stale,
}

/// A verified Stripe event.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    /// The event's id (`evt_...`); Stripe may deliver one event more than
    /// once, so handlers deduplicate on it.
    pub id: String,
    /// The event type, e.g. `checkout.session.completed`.
    pub kind: String,
    /// When the event happened (unix seconds).
    pub created: i64,
    /// Whether it comes from live mode rather than test mode.
    pub livemode: bool,
    /// The API version the object is rendered in, when Stripe says.
    pub api_version: Option<String>,
    /// `data.object`: the object the event is about, as Stripe sent it.
    pub object: Value,
}

/// A `checkout.session.completed` event's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutCompleted {
    /// The session's id (`cs_...`).
    pub session_id: String,
    /// The paying customer, when the session had one.
    pub customer: Option<String>,
    /// `payment`, `subscription` or `setup`.
    pub mode: String,
    /// The total in minor units, when Stripe computed one.
    pub amount_total: Option<i64>,
    /// The session's currency.
    pub currency: Option<String>,
    /// The subscription a subscription-mode session created.
    pub subscription: Option<String>,
    /// The session's metadata.
    pub metadata: BTreeMap<String, String>,
    /// Our reference, as given when the session was created.
    pub client_reference_id: Option<String>,
    /// `paid`, `unpaid` (delayed payment methods) or `no_payment_required`.
    pub payment_status: String,
}

/// A subscription's status.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Paid up.
    Active,
    /// In a free trial.
    Trialing,
    /// The latest invoice failed; Stripe is retrying.
    PastDue,
    /// Ended.
    Canceled,
    /// The first payment has not gone through yet.
    Incomplete,
    /// The first payment never went through; the subscription is dead.
    IncompleteExpired,
    /// Retries are exhausted and the invoice stays unpaid.
    Unpaid,
    /// A trial ended without a payment method.
    Paused,
    /// A status this crate does not know, kept verbatim.
    Other(String),
}

impl SubscriptionStatus {
    /// Reads Stripe's spelling.
    pub fn parse(status: &str) -> Self {
        match status {
            "active" => Self::Active,
            "trialing" => Self::Trialing,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "unpaid" => Self::Unpaid,
            "paused" => Self::Paused,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Stripe's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Trialing => "trialing",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
            Self::Other(other) => other,
        }
    }
}

/// A `customer.subscription.*` event's subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// The subscription's id (`sub_...`).
    pub id: String,
    /// Its customer.
    pub customer: String,
    /// Its status after the change.
    pub status: SubscriptionStatus,
    /// The price of each item, in item order.
    pub price_ids: Vec<String>,
    /// The lookup keys of those prices that have one.
    pub lookup_keys: Vec<String>,
    /// When the current period ends: the subscription's own field in API
    /// versions before 2025-03-31, the latest of its items' since.
    pub current_period_end: Option<i64>,
    /// Whether it ends when the current period does.
    pub cancel_at_period_end: bool,
    /// The subscription's metadata (Checkout copies
    /// `subscription_data[metadata]` here).
    pub metadata: BTreeMap<String, String>,
}

/// An `invoice.paid` or `invoice.payment_failed` event's invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceEvent {
    /// The invoice's id (`in_...`).
    pub id: String,
    /// Its customer.
    pub customer: Option<String>,
    /// The subscription it bills: the invoice's own field in older API
    /// versions, `parent.subscription_details.subscription` since 2025-03-31.
    pub subscription: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: Option<String>,
    /// What was paid, in minor units.
    pub amount_paid: i64,
    /// What was due, in minor units.
    pub amount_due: i64,
    /// The invoice's currency.
    pub currency: Option<String>,
    /// The end of the period the invoice covers.
    pub period_end: Option<i64>,
}

/// Checks a webhook request and parses its event.
///
/// `signature_header` is the `Stripe-Signature` header:
/// `t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`. The request is accepted when
/// any `v1` is HMAC-SHA256 of `"<t>.<payload>"` under `secret` (compared in
/// constant time; several appear while a secret is being rolled) and
/// `|now_unix - t| <= tolerance_secs`. The signature is checked before the
/// timestamp, so [`WebhookError::Stale`] is only ever said of a genuine
/// signature.
///
/// # Errors
/// [`WebhookError::Malformed`], [`WebhookError::BadSignature`] or
/// [`WebhookError::Stale`].
pub fn verify_webhook(
    payload: &[u8],
    signature_header: &str,
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<WebhookEvent, WebhookError> {
    let header = SignatureHeader::parse(signature_header)?;
    let expected = mac(secret, header.timestamp_text, payload);
    let genuine = header.v1.iter().any(|candidate| {
        // A candidate that is not hex cannot match; it is not a reason to
        // refuse the others.
        hex::decode(candidate).is_ok_and(|bytes| expected.clone().verify_slice(&bytes).is_ok())
    });
    if !genuine {
        return Err(WebhookError::BadSignature);
    }
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if now_unix.abs_diff(header.timestamp) > tolerance {
        return Err(WebhookError::Stale);
    }
    parse_event(payload)
}

/// The `Stripe-Signature` header value for `payload` signed at `timestamp`,
/// as Stripe would send it.
pub(crate) fn signature_header(secret: &str, payload: &[u8], timestamp: i64) -> String {
    let digest = mac(secret, &timestamp.to_string(), payload)
        .finalize()
        .into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

fn mac(secret: &str, timestamp: &str, payload: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (longer ones are hashed first), so no
    // secret can make this fail.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

struct SignatureHeader<'a> {
    timestamp: i64,
    /// The timestamp exactly as sent: it is what was signed.
    timestamp_text: &'a str,
    v1: Vec<&'a str>,
}

impl<'a> SignatureHeader<'a> {
    fn parse(header: &'a str) -> Result<Self, WebhookError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                return Err(WebhookError::Malformed);
            };
            match key {
                "t" => {
                    let parsed = value.parse::<i64>().map_err(|_| WebhookError::Malformed)?;
                    timestamp = Some((parsed, value));
                }
                "v1" => v1.push(value),
                // v0 is test-mode only and other schemes may come; neither
                // is trusted.
                _ => {}
            }
        }
        let Some((timestamp, timestamp_text)) = timestamp else {
            return Err(WebhookError::Malformed);
        };
        if v1.is_empty() {
            return Err(WebhookError::Malformed);
        }
        Ok(Self {
            timestamp,
            timestamp_text,
            v1,
        })
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    data: EnvelopeData,
}

#[derive(Deserialize)]
struct EnvelopeData {
    object: Value,
}

fn parse_event(payload: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|_| WebhookError::Malformed)?;
    if !envelope.data.object.is_object() {
        return Err(WebhookError::Malformed);
    }
    Ok(WebhookEvent {
        id: envelope.id,
        kind: envelope.kind,
        created: envelope.created,
        livemode: envelope.livemode,
        api_version: envelope.api_version,
        object: envelope.data.object,
    })
}

impl WebhookEvent {
    /// The session of a `checkout.session.completed` event; `None` for any
    /// other event or a session missing its id, mode or payment status.
    pub fn checkout_completed(&self) -> Option<CheckoutCompleted> {
        if self.kind != "checkout.session.completed" {
            return None;
        }
        let object = &self.object;
        Some(CheckoutCompleted {
            session_id: str_field(object, "id")?,
            customer: id_field(object, "customer"),
            mode: str_field(object, "mode")?,
            amount_total: object.get("amount_total").and_then(Value::as_i64),
            currency: str_field(object, "currency"),
            subscription: id_field(object, "subscription"),
            metadata: metadata(object),
            client_reference_id: str_field(object, "client_reference_id"),
            payment_status: str_field(object, "payment_status")?,
        })
    }

    /// The subscription of a `customer.subscription.*` event (`created`,
    /// `updated`, `deleted`, and also `paused`, `resumed`, ...: each carries
    /// the subscription as it now is); `None` for any other event or a
    /// subscription missing its id, customer or status.
    pub fn subscription(&self) -> Option<SubscriptionChange> {
        if !self.kind.starts_with("customer.subscription.") {
            return None;
        }
        let object = &self.object;
        let items: &[Value] = object
            .pointer("/items/data")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut price_ids = Vec::new();
        let mut lookup_keys = Vec::new();
        for item in items {
            if let Some(id) = id_field(item, "price") {
                price_ids.push(id);
            }
            if let Some(key) = item.pointer("/price/lookup_key").and_then(Value::as_str) {
                lookup_keys.push(key.to_owned());
            }
        }
        let current_period_end = object
            .get("current_period_end")
            .and_then(Value::as_i64)
            .or_else(|| {
                items
                    .iter()
                    .filter_map(|item| item.get("current_period_end").and_then(Value::as_i64))
                    .max()
            });
        Some(SubscriptionChange {
            id: str_field(object, "id")?,
            customer: id_field(object, "customer")?,
            status: SubscriptionStatus::parse(object.get("status")?.as_str()?),
            price_ids,
            lookup_keys,
            current_period_end,
            cancel_at_period_end: object
                .get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            metadata: metadata(object),
        })
    }

    /// The invoice of an `invoice.paid` or `invoice.payment_failed` event;
    /// `None` for any other event or an invoice without an id.
    pub fn invoice(&self) -> Option<InvoiceEvent> {
        if self.kind != "invoice.paid" && self.kind != "invoice.payment_failed" {
            return None;
        }
        let object = &self.object;
        let subscription = id_field(object, "subscription").or_else(|| {
            object
                .pointer("/parent/subscription_details")
                .and_then(|d| id_field(d, "subscription"))
        });
        Some(InvoiceEvent {
            id: str_field(object, "id")?,
            customer: id_field(object, "customer"),
            subscription,
            status: str_field(object, "status"),
            amount_paid: object
                .get("amount_paid")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            amount_due: object
                .get("amount_due")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            currency: str_field(object, "currency"),
            period_end: object.get("period_end").and_then(Value::as_i64),
        })
    }
}

fn str_field(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A reference to another object: its id, or the object itself when the
/// request expanded it.
fn id_field(object: &Value, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(id) => Some(id.clone()),
        expanded @ Value::Object(_) => str_field(expanded, "id"),
        _ => None,
    }
}

fn metadata(object: &Value) -> BTreeMap<String, String> {
    object
        .get("metadata")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const NOW: i64 = 1_700_000_000;

    fn event(kind: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "object": "event",
            "api_version": "2024-06-20",
            "created": NOW,
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind,
        }))
        .expect("serializable")
    }

    fn parse(payload: &[u8]) -> WebhookEvent {
        let header = signature_header(SECRET, payload, NOW);
        verify_webhook(payload, &header, SECRET, NOW, DEFAULT_TOLERANCE_SECS).expect("verifies")
    }

    #[test]
    fn a_valid_signature_verifies_and_parses() {
        let payload = event("customer.created", serde_json::json!({"id": "cus_1"}));
        let header = signature_header(SECRET, &payload, NOW - 10);
        let event = verify_webhook(&payload, &header, SECRET, NOW, 300).expect("valid");
        assert_eq!(event.id, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
        assert_eq!(event.kind, "customer.created");
        assert_eq!(event.created, NOW);
        assert!(!event.livemode);
        assert_eq!(event.api_version.as_deref(), Some("2024-06-20"));
        assert_eq!(event.object["id"], "cus_1");
    }

    #[test]
    fn the_wrong_secret_is_a_bad_signature() {
        let payload = event("customer.created", serde_json::json!({"id": "cus_1"}));
        let forged = signature_header("whsec_attacker", &payload, NOW);
        assert_eq!(
            verify_webhook(&payload, &forged, SECRET, NOW, 300),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let payload = event(
            "invoice.paid",
            serde_json::json!({"id": "in_1", "amount_paid": 100}),
        );
        let header = signature_header(SECRET, &payload, NOW);
        let tampered = String::from_utf8(payload)
            .expect("utf-8")
            .replace("100", "999999");
        assert_eq!(
            verify_webhook(tampered.as_bytes(), &header, SECRET, NOW, 300),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_re_signed_timestamp_is_a_bad_signature() {
        // Moving `t` forward to dodge the tolerance breaks the signature.
        let payload = event("customer.created", serde_json::json!({"id": "cus_1"}));
        let old = signature_header(SECRET, &payload, NOW - 3600);
        let moved = old.replacen(&format!("t={}", NOW - 3600), &format!("t={NOW}"), 1);
        assert_eq!(
            verify_webhook(&payload, &moved, SECRET, NOW, 300),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn outside_the_tolerance_is_stale_either_way() {
        let payload = event("customer.created", serde_json::json!({"id": "cus_1"}));
        let old = signature_header(SECRET, &payload, NOW - 301);
        assert_eq!(
            verify_webhook(&payload, &old, SECRET, NOW, 300),
            Err(WebhookError::Stale)
        );
        let future = signature_header(SECRET, &payload, NOW + 301);
        assert_eq!(
            verify_webhook(&payload, &future, SECRET, NOW, 300),
            Err(WebhookError::Stale)
        );
        let edge = signature_header(SECRET, &payload, NOW - 300);
        assert!(verify_webhook(&payload, &edge, SECRET, NOW, 300).is_ok());
        // Extreme values do not overflow.
        let far = signature_header(SECRET, &payload, i64::MIN);
        assert_eq!(
            verify_webhook(&payload, &far, SECRET, i64::MAX, 300),
            Err(WebhookError::Stale)
        );
    }

    #[test]
    fn malformed_headers_are_malformed() {
        let payload = event("customer.created", serde_json::json!({"id": "cus_1"}));
        let v1 = signature_header(SECRET, &payload, NOW);
        let only_v1 = v1.split(',').nth(1).expect("v1 part").to_owned();
        for header in [
            String::new(),
            "garbage".to_owned(),
            only_v1,
            format!("t={NOW}"),
            format!("t=soon,{}", v1.split(',').nth(1).expect("v1 part")),
            format!("t={NOW},v0=abcd"),
        ] {
            assert_eq!(
                verify_webhook(&payload, &header, SECRET, NOW, 300),
                Err(WebhookError::Malformed),
                "header {header:?}"
            );
        }
    }

    #[test]
    fn any_matching_v1_among_several_is_enough() {
        let payload = event("customer.created", serde_json::json!({"id": "cus_1"}));
        let good = signature_header(SECRET, &payload, NOW);
        let good_sig = good.split_once(",v1=").expect("v1").1;
        let bad_sig = signature_header("whsec_old", &payload, NOW);
        let bad_sig = bad_sig.split_once(",v1=").expect("v1").1;
        let header = format!("t={NOW},v1={bad_sig},v1=not-hex,v1={good_sig},v0={bad_sig}");
        assert!(verify_webhook(&payload, &header, SECRET, NOW, 300).is_ok());
        let none = format!("t={NOW},v1={bad_sig},v0={good_sig}");
        assert_eq!(
            verify_webhook(&payload, &none, SECRET, NOW, 300),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_signed_payload_that_is_not_an_event_is_malformed() {
        for payload in [
            &b"not json"[..],
            br#"{"id":"evt_1"}"#,
            br#"{"id":"evt_1","type":"x","created":1,"data":{"object":7}}"#,
        ] {
            let header = signature_header(SECRET, payload, NOW);
            assert_eq!(
                verify_webhook(payload, &header, SECRET, NOW, 300),
                Err(WebhookError::Malformed)
            );
        }
    }

    // The objects below follow the examples in Stripe's API reference.

    #[test]
    fn checkout_session_completed_reads_the_session() {
        let payload = event(
            "checkout.session.completed",
            serde_json::json!({
                "id": "cs_test_a11YYufWQzNY63zpQ6QSNRQhkUpVph4WRmzW0zWJO2znZKdVujZ0N0S22u",
                "object": "checkout.session",
                "amount_subtotal": 2198,
                "amount_total": 2198,
                "cancel_url": null,
                "client_reference_id": "tenant-42",
                "created": 1679600215,
                "currency": "usd",
                "customer": "cus_NffrFeUfNV2Hib",
                "livemode": false,
                "metadata": { "tenant": "t_42", "kind": "top_up" },
                "mode": "payment",
                "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
                "payment_status": "paid",
                "status": "complete",
                "subscription": null,
                "success_url": "https://example.com/success",
                "url": null
            }),
        );
        let event = parse(&payload);
        let done = event.checkout_completed().expect("a completed checkout");
        assert_eq!(
            done.session_id,
            "cs_test_a11YYufWQzNY63zpQ6QSNRQhkUpVph4WRmzW0zWJO2znZKdVujZ0N0S22u"
        );
        assert_eq!(done.customer.as_deref(), Some("cus_NffrFeUfNV2Hib"));
        assert_eq!(done.mode, "payment");
        assert_eq!(done.amount_total, Some(2198));
        assert_eq!(done.currency.as_deref(), Some("usd"));
        assert_eq!(done.subscription, None);
        assert_eq!(
            done.metadata.get("tenant").map(String::as_str),
            Some("t_42")
        );
        assert_eq!(done.client_reference_id.as_deref(), Some("tenant-42"));
        assert_eq!(done.payment_status, "paid");
        assert!(event.subscription().is_none());
        assert!(event.invoice().is_none());
    }

    #[test]
    fn an_expanded_customer_reads_as_its_id() {
        let payload = event(
            "checkout.session.completed",
            serde_json::json!({
                "id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
                "payment_status": "paid", "customer": { "id": "cus_9", "object": "customer" },
                "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs", "metadata": {}
            }),
        );
        let done = parse(&payload).checkout_completed().expect("completed");
        assert_eq!(done.customer.as_deref(), Some("cus_9"));
        assert_eq!(
            done.subscription.as_deref(),
            Some("sub_1MowQVLkdIwHu7ixeRlqHVzs")
        );
    }

    #[test]
    fn subscription_events_read_items_and_period_either_shape() {
        // 2025-03-31 and later: the period lives on the items.
        let newer = event(
            "customer.subscription.updated",
            serde_json::json!({
                "id": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
                "object": "subscription",
                "cancel_at_period_end": true,
                "customer": "cus_Na6dX7aXxi11N4",
                "items": {
                    "object": "list",
                    "data": [{
                        "id": "si_Na6dzxczY5fwHx",
                        "object": "subscription_item",
                        "current_period_end": 1682451400,
                        "current_period_start": 1679773000,
                        "price": {
                            "id": "price_1MowQULkdIwHu7ixraBm864M",
                            "object": "price",
                            "lookup_key": "pro_monthly",
                            "recurring": { "interval": "month", "interval_count": 1 }
                        },
                        "quantity": 1
                    }],
                    "has_more": false,
                    "url": "/v1/subscription_items?subscription=sub_1MowQVLkdIwHu7ixeRlqHVzs"
                },
                "metadata": { "tenant": "t_1" },
                "status": "past_due"
            }),
        );
        let change = parse(&newer).subscription().expect("a subscription");
        assert_eq!(change.id, "sub_1MowQVLkdIwHu7ixeRlqHVzs");
        assert_eq!(change.customer, "cus_Na6dX7aXxi11N4");
        assert_eq!(change.status, SubscriptionStatus::PastDue);
        assert_eq!(
            change.price_ids,
            vec!["price_1MowQULkdIwHu7ixraBm864M".to_owned()]
        );
        assert_eq!(change.lookup_keys, vec!["pro_monthly".to_owned()]);
        assert_eq!(change.current_period_end, Some(1682451400));
        assert!(change.cancel_at_period_end);
        assert_eq!(
            change.metadata.get("tenant").map(String::as_str),
            Some("t_1")
        );

        // Older versions: on the subscription; a price without lookup key.
        let older = event(
            "customer.subscription.deleted",
            serde_json::json!({
                "id": "sub_2", "object": "subscription", "customer": "cus_2",
                "current_period_end": 1700000000, "status": "canceled",
                "items": { "object": "list", "data": [
                    { "id": "si_2", "price": { "id": "price_2", "lookup_key": null } }
                ]}
            }),
        );
        let change = parse(&older).subscription().expect("a subscription");
        assert_eq!(change.status, SubscriptionStatus::Canceled);
        assert_eq!(change.price_ids, vec!["price_2".to_owned()]);
        assert!(change.lookup_keys.is_empty());
        assert_eq!(change.current_period_end, Some(1700000000));
        assert!(!change.cancel_at_period_end);
        assert!(parse(&older).checkout_completed().is_none());
    }

    #[test]
    fn invoice_events_read_the_subscription_either_shape() {
        let newer = event(
            "invoice.paid",
            serde_json::json!({
                "id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
                "object": "invoice",
                "amount_due": 1500,
                "amount_paid": 1500,
                "currency": "usd",
                "customer": "cus_NeZwdNtLEOXuvB",
                "parent": {
                    "type": "subscription_details",
                    "quote_details": null,
                    "subscription_details": {
                        "metadata": {},
                        "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs"
                    }
                },
                "period_end": 1680644467,
                "period_start": 1680644467,
                "status": "paid"
            }),
        );
        let invoice = parse(&newer).invoice().expect("an invoice");
        assert_eq!(invoice.id, "in_1MtHbELkdIwHu7ixl4OzzPMv");
        assert_eq!(invoice.customer.as_deref(), Some("cus_NeZwdNtLEOXuvB"));
        assert_eq!(
            invoice.subscription.as_deref(),
            Some("sub_1MowQVLkdIwHu7ixeRlqHVzs")
        );
        assert_eq!(invoice.status.as_deref(), Some("paid"));
        assert_eq!(invoice.amount_paid, 1500);
        assert_eq!(invoice.amount_due, 1500);
        assert_eq!(invoice.currency.as_deref(), Some("usd"));
        assert_eq!(invoice.period_end, Some(1680644467));

        let older = event(
            "invoice.payment_failed",
            serde_json::json!({
                "id": "in_2", "object": "invoice", "customer": "cus_2",
                "subscription": "sub_2", "status": "open", "amount_due": 900,
                "amount_paid": 0, "period_end": 1
            }),
        );
        let invoice = parse(&older).invoice().expect("an invoice");
        assert_eq!(invoice.subscription.as_deref(), Some("sub_2"));
        assert_eq!(invoice.amount_paid, 0);
        assert_eq!(invoice.status.as_deref(), Some("open"));

        let other = event("invoice.created", serde_json::json!({"id": "in_3"}));
        assert!(parse(&other).invoice().is_none());
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            "active",
            "trialing",
            "past_due",
            "canceled",
            "incomplete",
            "incomplete_expired",
            "unpaid",
            "paused",
            "something_new",
        ] {
            assert_eq!(SubscriptionStatus::parse(status).as_str(), status);
        }
    }
}
