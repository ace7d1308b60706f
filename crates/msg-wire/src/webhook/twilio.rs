//! Twilio status callbacks: a form POST signed with
//! `X-Twilio-Signature = base64(HMAC-SHA1(auth token, URL + each parameter's
//! name and value, sorted by name))`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use super::{DeliveryStatus, StatusEvent, WebhookError};
use crate::error::Provider;

/// The header carrying the signature.
pub const TWILIO_SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Verifies and parses Twilio status callbacks for one account.
#[derive(Clone)]
pub struct TwilioWebhook {
    key: hmac::Key,
}

impl fmt::Debug for TwilioWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioWebhook").finish_non_exhaustive()
    }
}

impl TwilioWebhook {
    /// A verifier for callbacks signed with `auth_token` (the account's
    /// auth token, as in [`TwilioConfig`](crate::TwilioConfig)).
    pub fn new(auth_token: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes()),
        }
    }

    /// Checks the signature and reads the status.
    ///
    /// `url` is the full URL Twilio requested, scheme, host, port, path and
    /// query exactly as configured in `StatusCallback` (behind a proxy,
    /// rebuild it from the public address, not the internal one). `body`
    /// is the raw `application/x-www-form-urlencoded` body and `signature`
    /// the [`TWILIO_SIGNATURE_HEADER`] value. Twilio signs no timestamp, so
    /// there is no staleness check.
    ///
    /// # Errors
    ///
    /// [`WebhookError::MissingSignature`] / [`WebhookError::BadSignature`]
    /// for an unsigned or wrongly signed request;
    /// [`WebhookError::Malformed`] for a body without `MessageSid` and a
    /// known `MessageStatus`.
    pub fn verify(
        &self,
        url: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<StatusEvent, WebhookError> {
        let signature = signature
            .filter(|s| !s.trim().is_empty())
            .ok_or(WebhookError::MissingSignature)?;
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| WebhookError::Malformed(format!("not a form body: {e}")))?;
        let tag = STANDARD
            .decode(signature.trim())
            .map_err(|_| WebhookError::BadSignature)?;
        hmac::verify(&self.key, &signed_data(url, &params), &tag)
            .map_err(|_| WebhookError::BadSignature)?;
        parse(&params)
    }
}

/// The signature Twilio sends for `params` posted to `url` with
/// `auth_token`.
pub(crate) fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    STANDARD.encode(hmac::sign(&key, &signed_data(url, params)))
}

/// The URL followed by each name and value, sorted by name (byte order,
/// case-sensitive; equal names keep their order).
fn signed_data(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut data = url.as_bytes().to_vec();
    for (name, value) in sorted {
        data.extend_from_slice(name.as_bytes());
        data.extend_from_slice(value.as_bytes());
    }
    data
}

fn parse(params: &[(String, String)]) -> Result<StatusEvent, WebhookError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .ok_or_else(|| WebhookError::Malformed("no MessageSid".into()))?;
    let event = get("MessageStatus")
        .or_else(|| get("SmsStatus"))
        .ok_or_else(|| WebhookError::Malformed("no MessageStatus".into()))?;
    let status = match event {
        "accepted" | "scheduled" | "queued" => DeliveryStatus::Queued,
        "sending" | "sent" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Bounced,
        "failed" | "canceled" => DeliveryStatus::Failed,
        other => {
            return Err(WebhookError::Malformed(format!(
                "unknown MessageStatus {other:?}"
            )));
        }
    };
    Ok(StatusEvent {
        provider: Provider::Twilio,
        provider_id: sid.to_owned(),
        status,
        event: event.to_owned(),
        recipient: get("To").map(str::to_owned),
        reason: get("ErrorCode").map(str::to_owned),
        timestamp: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example in Twilio's webhook-security documentation.
    #[test]
    fn matches_twilios_documented_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(
            signature("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn maps_statuses_and_refuses_bad_signatures() {
        let url = "https://host.test/twilio/status";
        let params = vec![
            ("MessageSid".to_owned(), "SM1".to_owned()),
            ("MessageStatus".to_owned(), "undelivered".to_owned()),
            ("ErrorCode".to_owned(), "30003".to_owned()),
        ];
        let body = serde_urlencoded::to_string(&params).expect("form");
        let good = signature("tok", url, &params);
        let hook = TwilioWebhook::new("tok");
        let event = hook
            .verify(url, body.as_bytes(), Some(&good))
            .expect("valid");
        assert_eq!(event.status, DeliveryStatus::Bounced);
        assert_eq!(event.reason.as_deref(), Some("30003"));
        assert_eq!(
            hook.verify(url, body.as_bytes(), Some("bm9wZQ==")),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            hook.verify(url, body.as_bytes(), None),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            hook.verify("https://host.test/other", body.as_bytes(), Some(&good)),
            Err(WebhookError::BadSignature)
        );
    }
}
