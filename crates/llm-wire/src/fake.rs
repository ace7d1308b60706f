//! An in-process fake LLM server speaking the OpenAI, Anthropic and Gemini
//! wire protocols, for the host's integration tests and benchmarks.
//!
//! It checks requests the way the real providers do (auth header, required
//! fields, image encoding) and answers deterministically:
//!
//! - **Reply text:** `"fake reply to: "` followed by the first 40 characters
//!   of the last user message's text (its text parts joined with a space).
//! - **Input tokens:** over every text in the request (system and all
//!   messages, each text part separately), `ceil(chars / 4)`, plus 85 per
//!   image.
//! - **Output tokens:** `ceil(reply chars / 4)`. When that exceeds the
//!   request's `max_tokens`, the reply is cut to `max_tokens * 4` characters,
//!   output tokens are `max_tokens` and the finish reason is the provider's
//!   "length" reason (`length`, `max_tokens`, `MAX_TOKENS`).
//! - **Embeddings:** 8-dimensional unit vectors derived from a hash of the
//!   text ([`FakeLlm::embedding`]); input tokens `ceil(chars / 4)` per input
//!   (OpenAI reports them; Gemini, like the real API, reports no usage).
//! - **Streams** split the reply into up to four deltas and report the
//!   final usage the way the provider does.
//!
//! Per-model [`Script`]s make it fail, slow down, cut streams or answer
//! fixed text and usage. Every request is recorded ([`Recorded`]).
//!
//! OpenAI, xAI and OpenAI-compatible clients all use the OpenAI routes and
//! are recorded as [`ProviderKind::OpenAi`].

mod anthropic;
mod gemini;
mod openai;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::Value;

use crate::types::{ProviderKind, Usage};

/// Tokens charged per image, whatever its size.
pub const IMAGE_TOKENS: u64 = 85;
/// Dimension of the fake's embedding vectors.
pub const EMBEDDING_DIM: usize = 8;
/// Characters of the last user text echoed in the default reply.
const ECHO_CHARS: usize = 40;
/// Real providers accept requests of tens of megabytes (images).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A running fake server; it stops when this is dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm").field("addr", &self.addr).finish()
    }
}

/// What the fake does for one model id. Build with the methods; a new
/// script for a model replaces the old one.
#[derive(Debug, Clone, Default)]
pub struct Script {
    fail_status: u16,
    fail_times: usize,
    delay: Duration,
    chunk_delay: Duration,
    reply: Option<String>,
    usage: Option<Usage>,
    cut_stream: bool,
}

impl Script {
    /// A script that changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail the next `times` requests with HTTP `status` (e.g. 500, 429,
    /// 503, 529), with a body in the provider's error shape; after that,
    /// answer normally.
    pub fn fail(mut self, status: u16, times: usize) -> Self {
        self.fail_status = status;
        self.fail_times = times;
        self
    }

    /// Wait this long before every response (to trigger client timeouts).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// In streams, wait this long between events (to trigger the client's
    /// gap timeout).
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Answer this text instead of the default echo (the `max_tokens` cut
    /// still applies).
    pub fn reply(mut self, text: impl Into<String>) -> Self {
        self.reply = Some(text.into());
        self
    }

    /// Report this usage instead of the counted one.
    pub fn usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// End streams without the provider's end marker (no `[DONE]`, no
    /// `message_stop`, no `finishReason`).
    pub fn cut_stream(mut self) -> Self {
        self.cut_stream = true;
        self
    }
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Which protocol's route it hit (xAI and compatible clients show as
    /// [`ProviderKind::OpenAi`]).
    pub provider: ProviderKind,
    /// The URL path, without query.
    pub path: String,
    /// The model id (from the body, or from the path for Gemini); empty if
    /// none could be read.
    pub model: String,
    /// Whether a streamed answer was asked for.
    pub stream: bool,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
    /// The key presented in the provider's auth header, if any.
    pub api_key: Option<String>,
}

impl FakeLlm {
    /// Starts the fake on `127.0.0.1` at a free port. Needs a Tokio
    /// runtime.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; use [`FakeLlm::try_start`] to
    /// handle that.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("fake LLM server cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Starts the fake on `127.0.0.1` at a free port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn try_start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                record: true,
                ..State::default()
            }),
        });
        let app = Router::new()
            .route(openai::CHAT_PATH, post(openai::chat))
            .route(openai::EMBEDDINGS_PATH, post(openai::embeddings))
            .route(anthropic::MESSAGES_PATH, post(anthropic::messages))
            .route("/v1beta/models/{target}", post(gemini::models))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(Arc::clone(&shared));
        // Streams are many small writes; Nagle would hold them back.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            // serve() only returns if the listener fails; then the fake is
            // simply gone and clients see connection errors.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// Requires exactly `key` from now on (by default any non-empty key is
    /// accepted). A wrong or missing key gets 401 in the provider's error
    /// shape.
    pub fn with_key(self, key: impl Into<String>) -> Self {
        self.shared.lock().key = Some(key.into());
        self
    }

    /// Stops keeping request bodies (counts are still kept), for long
    /// benchmark runs.
    pub fn without_recording(self) -> Self {
        self.shared.lock().record = false;
        self
    }

    /// The key required, if one was set with [`FakeLlm::with_key`].
    pub fn api_key(&self) -> Option<String> {
        self.shared.lock().key.clone()
    }

    /// The base URL to put in an [`Endpoint`](crate::Endpoint), e.g.
    /// `http://127.0.0.1:40123`; the same for every provider.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the script for `model`, replacing any earlier one.
    pub fn script(&self, model: impl Into<String>, script: Script) {
        let failures_left = script.fail_times;
        self.shared.lock().scripts.insert(
            model.into(),
            ScriptState {
                script,
                failures_left,
            },
        );
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.lock().requests.last().cloned()
    }

    /// How many requests named `model` (including refused and failed ones).
    pub fn count(&self, model: &str) -> usize {
        self.shared.lock().counts.get(model).copied().unwrap_or(0)
    }

    /// Forgets recorded requests, counts and scripts (the key and the
    /// recording setting stay).
    pub fn reset(&self) {
        let mut state = self.shared.lock();
        state.requests.clear();
        state.counts.clear();
        state.scripts.clear();
    }

    /// The vector the fake returns for `text`: deterministic, unit length,
    /// [`EMBEDDING_DIM`] values.
    pub fn embedding(text: &str) -> Vec<f32> {
        // FNV-1a seeds a splitmix64 sequence: stable across runs and
        // platforms, unlike std's randomly keyed hasher.
        let mut seed = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let mut values: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|_| {
                seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = seed;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                // The top 24 bits fit an f32 mantissa exactly.
                let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
                unit * 2.0 - 1.0
            })
            .collect();
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            values.iter_mut().for_each(|v| *v /= norm);
        }
        values
    }

    /// Input tokens the fake counts for one text: `ceil(chars / 4)`.
    pub fn text_tokens(text: &str) -> u64 {
        tokens(text.chars().count())
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    key: Option<String>,
    record: bool,
    scripts: HashMap<String, ScriptState>,
    counts: HashMap<String, usize>,
    requests: Vec<Recorded>,
}

struct ScriptState {
    script: Script,
    failures_left: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state
        // inconsistent in a way that matters to a fake.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the request and decides what to do with it.
    fn admit(&self, request: Recorded) -> Plan {
        let mut state = self.lock();
        let key_ok = match (&state.key, &request.api_key) {
            (Some(expected), Some(given)) => expected == given,
            (None, Some(given)) => !given.is_empty(),
            (_, None) => false,
        };
        match state.counts.get_mut(&request.model) {
            Some(n) => *n += 1,
            None => {
                state.counts.insert(request.model.clone(), 1);
            }
        }
        let mut plan = Plan {
            key_ok,
            ..Plan::default()
        };
        if let Some(scripted) = state.scripts.get_mut(&request.model) {
            if scripted.failures_left > 0 {
                scripted.failures_left -= 1;
                plan.fail = Some(scripted.script.fail_status);
            }
            let script = &scripted.script;
            plan.delay = script.delay;
            plan.chunk_delay = script.chunk_delay;
            plan.reply.clone_from(&script.reply);
            plan.usage = script.usage;
            plan.cut_stream = script.cut_stream;
        }
        if state.record {
            state.requests.push(request);
        }
        plan
    }
}

/// What to do with one request, decided under the lock and carried out
/// after it.
#[derive(Default)]
struct Plan {
    key_ok: bool,
    fail: Option<u16>,
    delay: Duration,
    chunk_delay: Duration,
    reply: Option<String>,
    usage: Option<Usage>,
    cut_stream: bool,
}

impl Plan {
    async fn wait(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// The answer for a valid request.
    fn answer(&self, seen: &Seen) -> Answer {
        let mut text = match &self.reply {
            Some(text) => text.clone(),
            None => {
                let echo: String = seen.last_user_text.chars().take(ECHO_CHARS).collect();
                format!("fake reply to: {echo}")
            }
        };
        let chars = text.chars().count();
        let mut output_tokens = tokens(chars);
        let mut truncated = false;
        if let Some(max) = seen.max_tokens
            && output_tokens > u64::from(max)
        {
            let keep = (max as usize).saturating_mul(4);
            if let Some((at, _)) = text.char_indices().nth(keep) {
                text.truncate(at);
            }
            output_tokens = u64::from(max);
            truncated = true;
        }
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: seen.input_tokens,
            output_tokens,
        });
        Answer {
            text,
            usage,
            truncated,
        }
    }
}

/// What a provider module read from a valid chat request.
#[derive(Default)]
struct Seen {
    input_tokens: u64,
    last_user_text: String,
    max_tokens: Option<u32>,
}

impl Seen {
    fn text(&mut self, text: &str) {
        self.input_tokens += tokens(text.chars().count());
    }

    fn image(&mut self) {
        self.input_tokens += IMAGE_TOKENS;
    }
}

/// The fake's reply to a valid chat request.
struct Answer {
    text: String,
    usage: Usage,
    /// Cut at `max_tokens`.
    truncated: bool,
}

impl Answer {
    /// The reply in up to four pieces, split at character boundaries.
    fn chunks(&self) -> Vec<&str> {
        let chars = self.text.chars().count();
        if chars == 0 {
            return Vec::new();
        }
        let per_chunk = chars.div_ceil(4);
        let mut out = Vec::with_capacity(4);
        let mut start = 0;
        for (n, (at, _)) in self.text.char_indices().enumerate() {
            if n > 0 && n % per_chunk == 0 {
                out.push(&self.text[start..at]);
                start = at;
            }
        }
        out.push(&self.text[start..]);
        out
    }

    /// Output tokens after the first `chars` characters, for providers
    /// that report running totals; never above the final count.
    fn output_tokens_after(&self, chars: usize) -> u64 {
        tokens(chars).min(self.usage.output_tokens)
    }
}

fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// A JSON response.
fn json(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A server-sent-events response; `events` are complete, formatted events.
fn sse(events: Vec<String>, gap: Duration) -> Response {
    let stream =
        futures::stream::iter(events.into_iter().enumerate()).then(move |(i, event)| async move {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            Ok::<_, Infallible>(Bytes::from(event))
        });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn not_found() -> Response {
    json(
        404,
        &serde_json::json!({"error": {"message": "no such route on the fake LLM server", "type": "not_found"}}),
    )
}

/// The value of a header, if present and text.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks base64 the way providers do: strict standard alphabet.
fn valid_base64(data: &str) -> bool {
    !data.is_empty() && BASE64.decode(data).is_ok()
}

/// A human status phrase for scripted failures.
fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = FakeLlm::embedding("hello");
        assert_eq!(a, FakeLlm::embedding("hello"));
        assert_ne!(a, FakeLlm::embedding("hello!"));
        assert_eq!(a.len(), EMBEDDING_DIM);
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn answer_follows_the_token_rules() {
        let plan = Plan::default();
        let seen = Seen {
            input_tokens: 3,
            last_user_text: "a".repeat(100),
            max_tokens: None,
        };
        let answer = plan.answer(&seen);
        assert_eq!(answer.text, format!("fake reply to: {}", "a".repeat(40)));
        assert_eq!(answer.usage.output_tokens, 14); // 55 chars
        assert!(!answer.truncated);
        assert_eq!(answer.chunks().concat(), answer.text);
        assert_eq!(answer.chunks().len(), 4);

        let capped = plan.answer(&Seen {
            max_tokens: Some(2),
            ..seen
        });
        assert_eq!(capped.text, "fake rep");
        assert_eq!(capped.usage.output_tokens, 2);
        assert!(capped.truncated);
    }

    #[test]
    fn chunks_respect_char_boundaries() {
        let answer = Answer {
            text: "héllo wörld ✓".into(),
            usage: Usage::default(),
            truncated: false,
        };
        assert_eq!(answer.chunks().concat(), "héllo wörld ✓");
    }
}
