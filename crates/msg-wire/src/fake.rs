//! In-process fakes of every provider, for the host's integration tests
//! and benchmarks. Each listens on `127.0.0.1` at a free port, stops when
//! dropped, and needs a Tokio runtime.
//!
//! Every fake checks requests the way its provider does and answers
//! refusals in the provider's error format; see each fake's docs for what
//! it checks. They share one way to script trouble:
//!
//! - `fail_next(times, status)`: the next `times` authenticated calls get
//!   `status` (500, 503, 429, …) in the provider's error shape, 429s with
//!   `Retry-After: 1` ([`FakeSmtp::fail_next`] takes only `times` and
//!   answers 451);
//! - `refuse_recipient(to)`: that address, number or device token is
//!   refused permanently, the way the provider refuses it;
//!
//! and one way to look: `accepted()` (each accepted message, decoded back
//! into the neutral type, with its provider id and raw request),
//! `accepted_count()`, `calls()`, and `without_recording()` for long runs.
//!
//! The HTTP fakes also produce status webhooks signed exactly as their
//! provider signs them ([`SignedWebhook`]); their secrets and keys are
//! exposed so a receiver can be configured.

mod fcm;
mod keys;
mod mailgun;
mod mime;
mod sendgrid;
mod smtp;
mod twilio;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

pub use fcm::FakeFcm;
pub use keys::{OTHER_TEST_RSA_KEY_PEM, TEST_RSA_KEY_PEM};
pub use mailgun::FakeMailgun;
pub use mime::MimePart;
pub use sendgrid::FakeSendGrid;
pub use smtp::{FakeSmtp, SmtpMessage};
pub use twilio::FakeTwilio;

/// One message a fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted<T> {
    /// The id the fake answered (what [`Sent::provider_id`](crate::Sent)
    /// holds).
    pub provider_id: String,
    /// The message decoded back into the neutral type. SendGrid's custom
    /// headers come back sorted by name (JSON objects are unordered).
    pub message: T,
    /// The request body as received (JSON or form).
    pub raw: String,
}

/// A status webhook signed the way its provider signs it, ready to be
/// posted (or inspected, or tampered with, in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWebhook {
    /// Where it goes (for Twilio, part of what is signed).
    pub url: String,
    /// The headers to send, including `Content-Type` and the signature.
    pub headers: Vec<(String, String)>,
    /// The exact body.
    pub body: Vec<u8>,
}

impl SignedWebhook {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// POSTs it to [`SignedWebhook::url`] and returns the answer's status.
    ///
    /// # Errors
    ///
    /// If the request cannot be made or gets no answer.
    pub async fn post(&self) -> std::io::Result<u16> {
        crate::http::ensure_crypto_provider();
        let mut request = reqwest::Client::new()
            .post(&self.url)
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(std::io::Error::other)?;
        Ok(response.status().as_u16())
    }
}

/// A bound listener serving `app` until dropped.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn bind() -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
    }

    fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // serve() only returns if the listener fails; then the fake is
            // simply gone and clients see connection errors.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, task })
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The part of a fake that scripts failures and keeps what was accepted.
struct Ledger<T> {
    state: Mutex<LedgerState<T>>,
}

struct LedgerState<T> {
    fail_times: usize,
    fail_status: u16,
    refused: HashSet<String>,
    record: bool,
    calls: usize,
    accepted_count: usize,
    accepted: Vec<Accepted<T>>,
}

impl<T: Clone> Ledger<T> {
    fn new() -> Self {
        Self {
            state: Mutex::new(LedgerState {
                fail_times: 0,
                fail_status: 500,
                refused: HashSet::new(),
                record: true,
                calls: 0,
                accepted_count: 0,
                accepted: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LedgerState<T>> {
        // A panic while holding the lock cannot leave the state
        // inconsistent in a way that matters to a fake.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail_next(&self, times: usize, status: u16) {
        let mut state = self.lock();
        state.fail_times = times;
        state.fail_status = status;
    }

    fn refuse(&self, recipient: String) {
        self.lock().refused.insert(recipient);
    }

    fn is_refused(&self, recipient: &str) -> bool {
        self.lock().refused.contains(recipient)
    }

    fn count_call(&self) {
        self.lock().calls += 1;
    }

    /// The scripted failure for this call, if one is left.
    fn scripted_failure(&self) -> Option<u16> {
        let mut state = self.lock();
        if state.fail_times == 0 {
            return None;
        }
        state.fail_times -= 1;
        Some(state.fail_status)
    }

    fn accept(&self, accepted: Accepted<T>) {
        let mut state = self.lock();
        state.accepted_count += 1;
        if state.record {
            state.accepted.push(accepted);
        }
    }

    fn set_recording(&self, record: bool) {
        self.lock().record = record;
    }

    fn accepted(&self) -> Vec<Accepted<T>> {
        self.lock().accepted.clone()
    }

    fn find(&self, provider_id: &str) -> Option<Accepted<T>> {
        self.lock()
            .accepted
            .iter()
            .find(|a| a.provider_id == provider_id)
            .cloned()
    }

    fn accepted_count(&self) -> usize {
        self.lock().accepted_count
    }

    fn calls(&self) -> usize {
        self.lock().calls
    }

    fn reset(&self) {
        let mut state = self.lock();
        state.fail_times = 0;
        state.refused.clear();
        state.calls = 0;
        state.accepted_count = 0;
        state.accepted.clear();
    }
}

/// A JSON response; 429s carry `Retry-After: 1`.
fn json(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The value of a header, if present and text.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of `Authorization: Bearer …`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    header_str(headers, "authorization")?
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_owned())
}

/// The user and password of `Authorization: Basic …`.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = header_str(headers, "authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether the request's `Content-Type` is `expected` (parameters such as
/// `charset` allowed).
fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    header_str(headers, "content-type").is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
    })
}

/// A form body as name/value pairs, in order.
fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(body).ok()
}

/// The first value of `name` in a form.
fn form_get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether `value` is an address or `Name <address>` a provider accepts.
fn valid_mailbox(value: &str) -> bool {
    value.parse::<lettre::message::Mailbox>().is_ok()
}

/// `bytes` random bytes as lowercase hex, for ids, tokens and secrets.
fn random_hex(bytes: usize) -> String {
    use ring::rand::{SecureRandom as _, SystemRandom};
    let mut buf = vec![0u8; bytes];
    if SystemRandom::new().fill(&mut buf).is_err() {
        // Ids only need to be unique within one fake; fall back to a
        // counter mixed with the time.
        static FALLBACK: AtomicU64 = AtomicU64::new(1);
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed) ^ crate::fcm::unix_now();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (n >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
    }
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_and_bearer_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Basic YXBpOmtleS0x"),
        );
        assert_eq!(basic_auth(&headers), Some(("api".into(), "key-1".into())));
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
    }

    #[test]
    fn ledger_counts_scripted_failures_down() {
        let ledger: Ledger<u8> = Ledger::new();
        ledger.fail_next(2, 503);
        assert_eq!(ledger.scripted_failure(), Some(503));
        assert_eq!(ledger.scripted_failure(), Some(503));
        assert_eq!(ledger.scripted_failure(), None);
    }

    #[test]
    fn random_hex_is_unique() {
        assert_ne!(random_hex(8), random_hex(8));
        assert_eq!(random_hex(8).len(), 16);
    }
}
