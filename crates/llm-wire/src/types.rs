//! Provider-neutral request and response types.
//!
//! These are what the host speaks; each provider module translates them to
//! and from its own wire format.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A chat (completion) request, independent of the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The provider's model id, e.g. `gpt-4o-mini`, `claude-sonnet-4-5`,
    /// `gemini-2.0-flash` (a `models/` prefix is accepted for Gemini).
    pub model: String,
    /// System instructions; each provider puts them where it expects them
    /// (a `system` message, a top-level `system`, `systemInstruction`).
    pub system: Option<String>,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Sampling temperature; the provider's default when `None`.
    pub temperature: Option<f32>,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who spoke.
    pub role: Role,
    /// What was said, in order.
    pub parts: Vec<Part>,
}

impl Message {
    /// A message holding a single text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            parts: vec![Part::Text(text.into())],
        }
    }
}

/// The speaker of a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The end user (or the plugin on its behalf).
    User,
    /// The model.
    Assistant,
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Plain text.
    Text(String),
    /// An image; sent base64-encoded on the wire.
    Image {
        /// MIME type, e.g. `image/png`.
        media_type: String,
        /// The raw image bytes (not base64).
        data: Vec<u8>,
    },
}

/// Token usage as reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, including any cached prompt tokens the provider
    /// reports separately (Anthropic's cache counters are added in).
    pub input_tokens: u64,
    /// Generated tokens, including reasoning/thinking tokens.
    pub output_tokens: u64,
}

/// A finished, non-streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated text (all text parts joined).
    pub text: String,
    /// The model that answered, as the provider reports it.
    pub model: String,
    /// Token usage.
    pub usage: Usage,
    /// The provider's own stop reason, unchanged (`stop`, `length`,
    /// `end_turn`, `max_tokens`, `STOP`, `MAX_TOKENS`, ...); empty if the
    /// provider sent none.
    pub finish_reason: String,
}

/// One item of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A piece of generated text.
    Delta(String),
    /// The end of the stream: the full text and the final usage reported by
    /// the provider. Always the last event of a successful stream.
    Done(Completion),
}

/// An embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedRequest {
    /// The provider's embedding model id.
    pub model: String,
    /// Texts to embed; one vector comes back for each, in order.
    pub inputs: Vec<String>,
}

/// Embedding vectors, one per input, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The vectors.
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens (output is always 0). Gemini's `batchEmbedContents`
    /// reports no usage, so it is 0 there unless the response carries
    /// `usageMetadata`.
    pub usage: Usage,
}

/// Which wire protocol an [`Endpoint`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI chat completions and embeddings.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic messages.
    Anthropic,
    /// Google Gemini (Generative Language API, `v1beta`).
    Gemini,
    /// xAI, which speaks the OpenAI protocol.
    Xai,
    /// Any server speaking the OpenAI protocol (llama.cpp, vLLM, Ollama...).
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// The provider's public API root (no version path). For
    /// [`ProviderKind::OpenAiCompatible`] there is no public root; the
    /// conventional local address `http://127.0.0.1:8080` is returned.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com",
            Self::Anthropic => "https://api.anthropic.com",
            Self::Gemini => "https://generativelanguage.googleapis.com",
            Self::Xai => "https://api.x.ai",
            Self::OpenAiCompatible => "http://127.0.0.1:8080",
        }
    }

    /// The serde name (`openai`, `anthropic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Xai => "xai",
            Self::OpenAiCompatible => "openai_compatible",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how to reach one provider account.
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    /// The protocol spoken.
    pub kind: ProviderKind,
    /// API root without version path, e.g. `https://api.openai.com` or
    /// `http://127.0.0.1:8080`; a trailing `/` is ignored.
    pub base_url: String,
    /// The API key; never logged and never put into error messages.
    pub api_key: String,
    /// Per-request timeout: the whole request when not streamed; for streams
    /// the wait for the response head and each gap between chunks.
    pub timeout: Duration,
}

impl Endpoint {
    /// An endpoint at the provider's public base URL.
    pub fn new(kind: ProviderKind, api_key: impl Into<String>, timeout: Duration) -> Self {
        Self {
            kind,
            base_url: kind.default_base_url().to_owned(),
            api_key: api_key.into(),
            timeout,
        }
    }

    /// The same endpoint at another base URL (a fake, a proxy, a local
    /// server).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}

// Hand-written so the key cannot end up in logs through `{:?}`.
impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}
