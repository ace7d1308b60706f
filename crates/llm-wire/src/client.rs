//! The HTTP client: one connection pool for every provider, timeouts, status
//! mapping and the streaming driver. What goes on the wire is decided by
//! the provider modules through [`Protocol`].

use std::collections::VecDeque;
use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::error::{ErrorKind, Result, WireError, truncate};
use crate::sse::{SseEvent, SseParser};
use crate::types::{
    ChatRequest, Completion, EmbedRequest, Embeddings, Endpoint, ProviderKind, StreamEvent,
};
use crate::{anthropic, gemini, openai};

/// A client for every provider, sharing one connection pool.
///
/// Cheap to clone (the pool is shared). There is no global timeout; each
/// call uses its [`Endpoint::timeout`].
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client with its own connection pool.
    ///
    /// TLS uses the process-wide rustls provider; if the program has not
    /// installed one, ring is installed (the host installs ring at start,
    /// so this only matters for other users).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Transport`] if the TLS configuration cannot be built
    /// (for example no usable root certificates).
    pub fn new() -> Result<Self> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: any installed
            // provider will do.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder().build().map_err(|e| {
            WireError::new(
                ErrorKind::Transport,
                format!("cannot build HTTP client: {}", describe(&e)),
            )
        })?;
        Ok(Self { http })
    }

    /// A client over an existing `reqwest` client (to share its pool or
    /// settings). It must not have a global timeout shorter than the
    /// endpoints' timeouts, or long streams are cut.
    pub fn from_reqwest(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// Sends a chat request and waits for the whole answer.
    ///
    /// # Errors
    ///
    /// See [`ErrorKind`]: the provider's refusal or failure, a timeout
    /// (the whole request must finish within [`Endpoint::timeout`]), a
    /// broken connection or an answer that cannot be parsed.
    pub async fn complete(&self, ep: &Endpoint, req: &ChatRequest) -> Result<Completion> {
        let proto = protocol(ep.kind);
        let result = async {
            let call = proto.chat_call(ep, req, false)?;
            let body = self.fetch(ep, call).await?;
            proto.parse_completion(&body, req)
        }
        .await;
        result.map_err(|e| e.redact(&ep.api_key))
    }

    /// Sends a chat request and streams the answer: [`StreamEvent::Delta`]s
    /// followed by exactly one [`StreamEvent::Done`]. An error item ends the
    /// stream. Polling on after `Done` reads the connection to its end so
    /// it can be reused, then yields `None`.
    ///
    /// # Errors
    ///
    /// Errors before the first event (refusal, failure status, no response
    /// head within the timeout) are returned here; later ones arrive as
    /// stream items, including [`ErrorKind::Timeout`] when a gap between
    /// chunks exceeds the timeout and [`ErrorKind::Protocol`] when the
    /// stream ends without the provider's end marker.
    pub async fn stream(
        &self,
        ep: &Endpoint,
        req: &ChatRequest,
    ) -> Result<BoxStream<'static, Result<StreamEvent>>> {
        let proto = protocol(ep.kind);
        let result = async {
            let call = proto.chat_call(ep, req, true)?;
            // An error answer's body is read within the same deadline.
            let response = within(ep.timeout, async {
                let response = self.send(ep.kind, call).await?;
                check_status(ep, response).await
            })
            .await??;
            Ok(StreamState {
                body: response.bytes_stream().boxed(),
                sse: SseParser::new(),
                decoder: proto.decoder(ep.kind, req),
                queue: VecDeque::new(),
                gap: ep.timeout,
                phase: Phase::Reading,
                secret: ep.api_key.clone(),
            })
        }
        .await;
        let state = result.map_err(|e: WireError| e.redact(&ep.api_key))?;
        Ok(futures::stream::unfold(state, StreamState::step).boxed())
    }

    /// Embeds texts, one vector per input in input order.
    ///
    /// # Errors
    ///
    /// As for [`Client::complete`]; [`ErrorKind::Unsupported`] for
    /// Anthropic, which has no embeddings API.
    pub async fn embed(&self, ep: &Endpoint, req: &EmbedRequest) -> Result<Embeddings> {
        let proto = protocol(ep.kind);
        let result = async {
            let call = proto.embed_call(ep, req)?;
            let body = self.fetch(ep, call).await?;
            proto.parse_embeddings(&body, req)
        }
        .await;
        result.map_err(|e| e.redact(&ep.api_key))
    }

    /// Sends `call` and reads the whole successful body, all within the
    /// endpoint's timeout.
    async fn fetch(&self, ep: &Endpoint, call: HttpCall) -> Result<Bytes> {
        within(ep.timeout, async {
            let response = self.send(ep.kind, call).await?;
            let response = check_status(ep, response).await?;
            response.bytes().await.map_err(|e| from_reqwest(ep.kind, e))
        })
        .await?
    }

    async fn send(&self, kind: ProviderKind, call: HttpCall) -> Result<reqwest::Response> {
        self.http
            .post(call.url)
            .headers(call.headers)
            .body(call.body)
            .send()
            .await
            .map_err(|e| from_reqwest(kind, e))
    }
}

/// What a provider module wants sent.
pub(crate) struct HttpCall {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpCall {
    /// A JSON POST to `base_url` + `path`.
    pub(crate) fn json(ep: &Endpoint, path: &str, body: &impl serde::Serialize) -> Result<Self> {
        let body = serde_json::to_vec(body).map_err(|e| {
            WireError::new(
                ErrorKind::Unsupported,
                format!("cannot encode request: {e}"),
            )
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(Self {
            url: format!("{}{path}", ep.base_url.trim_end_matches('/')),
            headers,
            body,
        })
    }

    /// Adds a header holding the key, marked sensitive so it is never
    /// printed by `Debug`.
    pub(crate) fn secret_header(
        &mut self,
        name: &'static str,
        prefix: &str,
        key: &str,
    ) -> Result<()> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{key}")).map_err(|_| {
            WireError::new(
                ErrorKind::Unsupported,
                "the API key contains characters not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(())
    }

    /// Adds a plain header.
    pub(crate) fn header(&mut self, name: &'static str, value: &'static str) {
        self.headers.insert(name, HeaderValue::from_static(value));
    }
}

/// The wire protocol of one provider family.
pub(crate) trait Protocol: Sync {
    /// The chat request; `stream` asks for server-sent events.
    fn chat_call(&self, ep: &Endpoint, req: &ChatRequest, stream: bool) -> Result<HttpCall>;
    /// Parses a successful non-streamed chat response.
    fn parse_completion(&self, body: &[u8], req: &ChatRequest) -> Result<Completion>;
    /// A fresh decoder for one streamed answer.
    fn decoder(&self, kind: ProviderKind, req: &ChatRequest) -> Box<dyn StreamDecoder>;
    /// The embeddings request.
    fn embed_call(&self, ep: &Endpoint, req: &EmbedRequest) -> Result<HttpCall>;
    /// Parses a successful embeddings response.
    fn parse_embeddings(&self, body: &[u8], req: &EmbedRequest) -> Result<Embeddings>;
}

/// Turns one provider's SSE events into [`StreamEvent`]s.
pub(crate) trait StreamDecoder: Send {
    /// Handles one event, pushing text deltas to `out`; returns the final
    /// completion when this event is the provider's end marker.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<String>) -> Result<Option<Completion>>;
    /// Called when the body ends before an end marker: the completion if
    /// the provider ends streams by closing (Gemini), else an error.
    fn end_of_body(&mut self) -> Result<Completion>;
}

fn protocol(kind: ProviderKind) -> &'static dyn Protocol {
    match kind {
        ProviderKind::OpenAi | ProviderKind::Xai | ProviderKind::OpenAiCompatible => {
            &openai::OpenAi
        }
        ProviderKind::Anthropic => &anthropic::Anthropic,
        ProviderKind::Gemini => &gemini::Gemini,
    }
}

async fn within<T>(timeout: Duration, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| timed_out(timeout))
}

fn timed_out(timeout: Duration) -> WireError {
    WireError::new(
        ErrorKind::Timeout,
        format!("no answer within {} ms", timeout.as_millis()),
    )
}

/// Passes a success response through; turns anything else into an error
/// carrying the provider's own message.
async fn check_status(ep: &Endpoint, response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // The body of an error is small; if it cannot be read, the status
    // alone still says what happened.
    let body = response.bytes().await.unwrap_or_default();
    Err(status_error(ep.kind, status.as_u16(), &body))
}

/// The error for a non-success status, with the provider's message.
pub(crate) fn status_error(kind: ProviderKind, status: u16, body: &[u8]) -> WireError {
    let detail = error_detail(body);
    let message = if detail.is_empty() {
        format!("{kind} answered HTTP {status}")
    } else {
        format!("{kind} answered HTTP {status}: {detail}")
    };
    WireError::new(ErrorKind::from_status(status), message)
}

/// The provider's error text from an error body: `error.message` for
/// OpenAI, Anthropic and Gemini (with `error.type` / `error.status` in
/// front), a few shapes OpenAI-compatible servers use, else the raw text.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Option<serde_json::Value>,
        message: Option<String>,
        detail: Option<serde_json::Value>,
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let Ok(parsed) = serde_json::from_str::<Body>(text) else {
        return truncate(text);
    };
    let detail = match parsed.error {
        Some(serde_json::Value::Object(error)) => {
            let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
            let label = ["type", "status"]
                .iter()
                .find_map(|k| error.get(*k).and_then(|v| v.as_str()));
            match label {
                Some(label) if !message.is_empty() => format!("{label}: {message}"),
                Some(label) => label.to_owned(),
                None => message.to_owned(),
            }
        }
        Some(serde_json::Value::String(message)) => message,
        _ => match (parsed.message, parsed.detail) {
            (Some(message), _) => message,
            (None, Some(serde_json::Value::String(detail))) => detail,
            (None, Some(detail)) => detail.to_string(),
            (None, None) => text.to_owned(),
        },
    };
    truncate(&detail)
}

/// The error for a failed `reqwest` operation. The URL is dropped (it is
/// ours, and a base URL could carry credentials).
fn from_reqwest(kind: ProviderKind, e: reqwest::Error) -> WireError {
    let error_kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_builder() {
        ErrorKind::Unsupported
    } else if e.is_decode() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Transport
    };
    let e = e.without_url();
    WireError::new(error_kind, format!("{kind}: {}", describe(&e)))
}

/// The error and its causes on one line; reqwest's own message alone
/// ("error sending request") hides the reason.
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

/// Parses a JSON body, naming the provider in the error.
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(kind: &str, body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        WireError::protocol(format!(
            "unexpected {kind} response: {}",
            truncate(&e.to_string())
        ))
    })
}

enum Phase {
    Reading,
    /// `Done` was queued; read the rest of the body so the connection can
    /// go back to the pool.
    Draining,
    Finished,
}

struct StreamState {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    sse: SseParser,
    decoder: Box<dyn StreamDecoder>,
    queue: VecDeque<Result<StreamEvent>>,
    gap: Duration,
    phase: Phase,
    secret: String,
}

impl StreamState {
    async fn step(mut self) -> Option<(Result<StreamEvent>, Self)> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                let item = item.map_err(|e| e.redact(&self.secret));
                return Some((item, self));
            }
            match self.phase {
                Phase::Finished => return None,
                Phase::Draining => {
                    self.drain().await;
                    return None;
                }
                Phase::Reading => {}
            }
            match tokio::time::timeout(self.gap, self.body.next()).await {
                Err(_) => self.fail(timed_out(self.gap)),
                Ok(Some(Err(e))) => self.fail(from_reqwest_stream(e)),
                Ok(Some(Ok(chunk))) => {
                    self.sse.push(&chunk);
                    if let Err(e) = self.decode_buffered() {
                        self.fail(e);
                    }
                }
                Ok(None) => {
                    if let Err(e) = self.decode_end() {
                        self.fail(e);
                    }
                }
            }
        }
    }

    fn decode_buffered(&mut self) -> Result<()> {
        while let Some(event) = self.sse.next_event()? {
            if self.handle(&event)? {
                return Ok(());
            }
        }
        Ok(())
    }

    fn decode_end(&mut self) -> Result<()> {
        for event in self.sse.finish()? {
            if self.handle(&event)? {
                self.phase = Phase::Finished;
                return Ok(());
            }
        }
        let done = self.decoder.end_of_body()?;
        self.queue.push_back(Ok(StreamEvent::Done(done)));
        self.phase = Phase::Finished;
        Ok(())
    }

    /// Feeds one event to the decoder; true once the end marker was seen.
    fn handle(&mut self, event: &SseEvent) -> Result<bool> {
        let mut deltas = Vec::new();
        let done = self.decoder.event(event, &mut deltas)?;
        self.queue
            .extend(deltas.into_iter().map(|d| Ok(StreamEvent::Delta(d))));
        match done {
            Some(done) => {
                self.queue.push_back(Ok(StreamEvent::Done(done)));
                self.phase = Phase::Draining;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn fail(&mut self, e: WireError) {
        self.queue.push_back(Err(e));
        self.phase = Phase::Finished;
    }

    async fn drain(&mut self) {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(self.gap, self.body.next()).await {}
        self.phase = Phase::Finished;
    }
}

fn from_reqwest_stream(e: reqwest::Error) -> WireError {
    let e = e.without_url();
    WireError::new(
        ErrorKind::Transport,
        format!("stream broken: {}", describe(&e)),
    )
}

/// The error for an `error` object inside a stream: the status if the
/// provider gave one, else a class from the error type.
pub(crate) fn stream_error(
    kind: ProviderKind,
    error_type: &str,
    status: Option<u16>,
    message: &str,
) -> WireError {
    let error_kind = match (status, error_type) {
        (Some(status), _) => ErrorKind::from_status(status),
        (None, "rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED") => {
            ErrorKind::RateLimited
        }
        (None, "overloaded_error") => ErrorKind::Server { status: 529 },
        (None, "invalid_request_error" | "INVALID_ARGUMENT") => ErrorKind::Rejected { status: 400 },
        (None, _) => ErrorKind::Server { status: 500 },
    };
    let label = if error_type.is_empty() {
        "error"
    } else {
        error_type
    };
    WireError::new(
        error_kind,
        format!("{kind} stream error ({label}): {}", truncate(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_reads_each_provider_shape() {
        let openai = br#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(
            error_detail(openai),
            "invalid_request_error: Incorrect API key provided."
        );
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_detail(anthropic), "overloaded_error: Overloaded");
        let gemini =
            br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(error_detail(gemini), "INVALID_ARGUMENT: API key not valid.");
        assert_eq!(
            error_detail(br#"{"error":"model not loaded"}"#),
            "model not loaded"
        );
        assert_eq!(
            error_detail(br#"{"object":"error","message":"bad"}"#),
            "bad"
        );
        assert_eq!(
            error_detail(b"<html>502 Bad Gateway</html>"),
            "<html>502 Bad Gateway</html>"
        );
        let long = "x".repeat(1000);
        assert!(error_detail(long.as_bytes()).chars().count() <= 301);
    }

    #[test]
    fn status_mapping() {
        assert_eq!(
            status_error(ProviderKind::OpenAi, 429, b"").kind,
            ErrorKind::RateLimited
        );
        assert_eq!(
            status_error(ProviderKind::Anthropic, 529, b"").kind,
            ErrorKind::Server { status: 529 }
        );
        assert_eq!(
            status_error(ProviderKind::Gemini, 403, b"").kind,
            ErrorKind::Rejected { status: 403 }
        );
        assert!(!status_error(ProviderKind::Gemini, 400, b"").retryable());
        assert!(status_error(ProviderKind::Gemini, 503, b"").retryable());
    }

    #[test]
    fn redaction_removes_the_key() {
        let e = status_error(
            ProviderKind::OpenAi,
            401,
            br#"{"error":{"message":"bad key sk-secret-123"}}"#,
        )
        .redact("sk-secret-123");
        assert!(!e.message.contains("sk-secret-123"), "{}", e.message);
    }
}
