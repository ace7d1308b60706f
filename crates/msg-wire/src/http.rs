//! What the HTTP senders share: the client, transport-error and status
//! classification, `Retry-After`, form bodies.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use crate::error::{Failure, Provider, Result, SendError, truncate};

/// Installs ring as the process-wide rustls provider unless one is
/// installed already (the host installs ring at start; this is for other
/// users and for the fakes' webhook posts).
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: any installed
        // provider will do.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A `reqwest` client with its own pool. No global timeout: each request
/// carries its sender's.
pub(crate) fn client(provider: Provider) -> Result<reqwest::Client> {
    ensure_crypto_provider();
    reqwest::Client::builder().build().map_err(|e| {
        SendError::invalid(
            provider,
            format!("cannot build HTTP client: {}", describe(&e)),
        )
    })
}

/// `base` without a trailing slash, so paths can be appended.
pub(crate) fn trim_base(base: &str) -> String {
    base.trim_end_matches('/').to_owned()
}

/// A provider's answer, read whole.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The failure for this (non-success) answer, classified by status:
    /// 408, 429 and 5xx are transient.
    pub fn error(&self, provider: Provider, code: Option<String>, message: &str) -> SendError {
        let mut failure = Failure::new(provider, truncate(message))
            .with_status(self.status)
            .with_retry_after(retry_after(&self.headers, SystemTime::now()));
        failure.code = code;
        if transient_status(self.status) {
            failure.transient()
        } else {
            failure.permanent()
        }
    }

    /// The failure for a success answer whose body is not what the provider
    /// documents. Permanent: the provider may well have accepted the
    /// message, and sending it again could deliver it twice.
    pub fn unreadable(&self, provider: Provider, what: &str) -> SendError {
        Failure::new(
            provider,
            format!("accepted, but {what}; not retrying to avoid a duplicate"),
        )
        .with_status(self.status)
        .permanent()
    }

    /// The body as text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Whether an HTTP status says "try again later".
pub(crate) fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// Sends `request` (which carries its timeout) and reads the whole answer.
pub(crate) async fn execute(
    provider: Provider,
    request: reqwest::RequestBuilder,
) -> Result<Answer> {
    let response = request.send().await.map_err(|e| transport(provider, &e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| transport(provider, &e))?
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The error for a request that got no (complete) answer. Only a request
/// that could not be built is permanent: that is our configuration (for
/// example a malformed base URL).
fn transport(provider: Provider, e: &reqwest::Error) -> SendError {
    let message = if e.is_timeout() {
        "no answer within the timeout".to_owned()
    } else {
        describe(e)
    };
    let failure = Failure::new(provider, message);
    if e.is_builder() {
        failure.permanent()
    } else {
        failure.transient()
    }
}

/// The error and its causes on one line. `reqwest` names the URL; ours
/// never carry credentials (they travel in headers).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    truncate(&text)
}

/// `Retry-After` as a wait from `now`: delta-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An `application/x-www-form-urlencoded` body.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    // Encoding string pairs cannot fail.
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";
pub(crate) const JSON: &str = "application/json";

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).expect("ascii"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn statuses_are_classified() {
        for status in [408, 429, 500, 502, 503] {
            assert!(transient_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(!transient_status(status), "{status}");
        }
    }

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(
            form(&[("To", "+1 555"), ("h:X-A", "a&b")]),
            "To=%2B1+555&h%3AX-A=a%26b"
        );
    }
}
