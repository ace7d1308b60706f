//! Anthropic Messages API (`/v1/messages`, `anthropic-version: 2023-06-01`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::client::{HttpCall, Protocol, StreamDecoder, parse_json, stream_error};
use crate::error::{ErrorKind, Result, WireError};
use crate::sse::SseEvent;
use crate::types::{
    ChatRequest, Completion, EmbedRequest, Embeddings, Endpoint, Part, ProviderKind, Role, Usage,
};

pub(crate) const MESSAGES_PATH: &str = "/v1/messages";
/// The API version this module speaks; Anthropic requires the header.
pub(crate) const API_VERSION: &str = "2023-06-01";

/// The Anthropic protocol.
pub(crate) struct Anthropic;

#[derive(Serialize)]
struct MessagesBody<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: &'a str },
    Image { source: ImageSource<'a> },
}

#[derive(Serialize)]
struct ImageSource<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    media_type: &'a str,
    data: String,
}

fn wire_messages(req: &ChatRequest) -> Vec<WireMessage<'_>> {
    req.messages
        .iter()
        .map(|message| WireMessage {
            role: match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
            content: message
                .parts
                .iter()
                .map(|part| match part {
                    Part::Text(text) => Block::Text { text },
                    Part::Image { media_type, data } => Block::Image {
                        source: ImageSource {
                            kind: "base64",
                            media_type,
                            data: BASE64.encode(data),
                        },
                    },
                })
                .collect(),
        })
        .collect()
}

#[derive(Deserialize)]
struct MessageResponse {
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<ResponseBlock>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct ResponseBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// All prompt tokens: Anthropic counts cached ones separately, the
    /// other providers (and so [`Usage`]) include them.
    fn input(&self) -> Option<u64> {
        let parts = [
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().flatten().sum())
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    /// `ping`, `content_block_start`, `content_block_stop` and event types
    /// added later carry nothing we need.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct BlockDelta {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize, Default)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Parses a non-streamed Messages response; text blocks are joined,
/// others (thinking, tool use) skipped.
pub(crate) fn parse_completion(body: &[u8], request_model: &str) -> Result<Completion> {
    let response: MessageResponse = parse_json("Anthropic", body)?;
    let text = response
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .map(|b| b.text.as_str())
        .collect();
    Ok(Completion {
        text,
        model: if response.model.is_empty() {
            request_model.to_owned()
        } else {
            response.model
        },
        usage: Usage {
            input_tokens: response.usage.input().unwrap_or(0),
            output_tokens: response.usage.output_tokens.unwrap_or(0),
        },
        finish_reason: response.stop_reason.unwrap_or_default(),
    })
}

impl Protocol for Anthropic {
    fn chat_call(&self, ep: &Endpoint, req: &ChatRequest, stream: bool) -> Result<HttpCall> {
        let body = MessagesBody {
            model: &req.model,
            max_tokens: req.max_tokens,
            system: req.system.as_deref(),
            messages: wire_messages(req),
            temperature: req.temperature,
            stream,
        };
        let mut call = HttpCall::json(ep, MESSAGES_PATH, &body)?;
        call.secret_header("x-api-key", "", &ep.api_key)?;
        call.header("anthropic-version", API_VERSION);
        Ok(call)
    }

    fn parse_completion(&self, body: &[u8], req: &ChatRequest) -> Result<Completion> {
        parse_completion(body, &req.model)
    }

    fn decoder(&self, _kind: ProviderKind, req: &ChatRequest) -> Box<dyn StreamDecoder> {
        Box::new(Decoder {
            text: String::new(),
            model: req.model.clone(),
            finish_reason: String::new(),
            usage: Usage::default(),
        })
    }

    fn embed_call(&self, _ep: &Endpoint, _req: &EmbedRequest) -> Result<HttpCall> {
        Err(WireError::new(
            ErrorKind::Unsupported,
            "Anthropic has no embeddings API; use another provider for embeddings",
        ))
    }

    fn parse_embeddings(&self, _body: &[u8], _req: &EmbedRequest) -> Result<Embeddings> {
        Err(WireError::new(
            ErrorKind::Unsupported,
            "Anthropic has no embeddings API",
        ))
    }
}

/// Accumulates Messages stream events until `message_stop`.
struct Decoder {
    text: String,
    model: String,
    finish_reason: String,
    usage: Usage,
}

impl StreamDecoder for Decoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<String>) -> Result<Option<Completion>> {
        match parse_json::<WireEvent>("Anthropic stream", event.data.as_bytes())? {
            WireEvent::MessageStart { message } => {
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                self.usage.input_tokens = message.usage.input().unwrap_or(0);
                self.usage.output_tokens = message.usage.output_tokens.unwrap_or(0);
            }
            WireEvent::ContentBlockDelta { delta } => {
                // thinking, signature and tool-input deltas are not text.
                if delta.kind == "text_delta" && !delta.text.is_empty() {
                    self.text.push_str(&delta.text);
                    out.push(delta.text);
                }
            }
            WireEvent::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    self.finish_reason = reason;
                }
                // Counts here are cumulative, so they replace, not add.
                if let Some(output) = usage.output_tokens {
                    self.usage.output_tokens = output;
                }
                if let Some(input) = usage.input() {
                    self.usage.input_tokens = input;
                }
            }
            WireEvent::MessageStop => {
                return Ok(Some(Completion {
                    text: std::mem::take(&mut self.text),
                    model: std::mem::take(&mut self.model),
                    usage: self.usage,
                    finish_reason: std::mem::take(&mut self.finish_reason),
                }));
            }
            WireEvent::Error { error } => {
                return Err(stream_error(
                    ProviderKind::Anthropic,
                    &error.kind,
                    None,
                    &error.message,
                ));
            }
            WireEvent::Other => {}
        }
        Ok(None)
    }

    fn end_of_body(&mut self) -> Result<Completion> {
        Err(WireError::protocol(
            "Anthropic stream ended without message_stop",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

    // Shapes as documented in Anthropic's Messages API reference.
    const MESSAGE: &str = r#"{
      "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
      "type": "message",
      "role": "assistant",
      "model": "claude-sonnet-4-5-20250929",
      "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "abc"},
        {"type": "text", "text": "Hi! My name is Claude."},
        {"type": "text", "text": " Nice to meet you."}
      ],
      "stop_reason": "end_turn",
      "stop_sequence": null,
      "usage": {
        "input_tokens": 2095,
        "output_tokens": 503,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 100
      }
    }"#;

    #[test]
    fn parses_documented_message() {
        let c = parse_completion(MESSAGE.as_bytes(), "claude").expect("parse");
        assert_eq!(c.text, "Hi! My name is Claude. Nice to meet you.");
        assert_eq!(c.model, "claude-sonnet-4-5-20250929");
        assert_eq!(c.finish_reason, "end_turn");
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: 2200,
                output_tokens: 503
            }
        );
    }

    const STREAM: &str = "event: message_start\n\
data: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-opus-4-1-20250805\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"output_tokens\": 1}}}\n\
\n\
event: content_block_start\n\
data: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\
\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\
\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hello\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"!\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\": \"content_block_stop\", \"index\": 0}\n\
\n\
event: message_delta\n\
data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n\
\n\
event: message_stop\n\
data: {\"type\": \"message_stop\"}\n\
\n";

    fn run(stream: &str) -> (Vec<String>, Result<Completion>) {
        let mut parser = SseParser::new();
        parser.push(stream.as_bytes());
        let mut decoder = Anthropic.decoder(ProviderKind::Anthropic, &request());
        let mut deltas = Vec::new();
        while let Some(ev) = parser.next_event().expect("sse") {
            match decoder.event(&ev, &mut deltas) {
                Ok(Some(done)) => return (deltas, Ok(done)),
                Ok(None) => {}
                Err(e) => return (deltas, Err(e)),
            }
        }
        let end = decoder.end_of_body();
        (deltas, end)
    }

    #[test]
    fn parses_documented_stream() {
        let (deltas, done) = run(STREAM);
        assert_eq!(deltas, ["Hello", "!"]);
        let done = done.expect("done");
        assert_eq!(done.text, "Hello!");
        assert_eq!(done.model, "claude-opus-4-1-20250805");
        assert_eq!(done.finish_reason, "end_turn");
        assert_eq!(
            done.usage,
            Usage {
                input_tokens: 25,
                output_tokens: 15
            }
        );
    }

    #[test]
    fn stream_without_message_stop_is_a_protocol_error() {
        let cut = STREAM.split("event: message_stop").next().expect("prefix");
        let (_, done) = run(cut);
        assert_eq!(done.expect_err("cut").kind, ErrorKind::Protocol);
    }

    #[test]
    fn error_event_is_an_error() {
        let stream = "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
        let (_, done) = run(stream);
        let err = done.expect_err("error");
        assert_eq!(err.kind, ErrorKind::Server { status: 529 });
        assert!(err.retryable());
    }

    #[test]
    fn request_body_shape() {
        let ep = Endpoint::new(
            ProviderKind::Anthropic,
            "sk-ant",
            std::time::Duration::from_secs(1),
        );
        let mut req = request();
        req.system = Some("be brief".into());
        req.temperature = Some(0.5);
        req.messages[0].parts.push(Part::Image {
            media_type: "image/jpeg".into(),
            data: vec![0xff, 0xd8],
        });
        let call = Anthropic.chat_call(&ep, &req, false).expect("call");
        assert_eq!(call.url, "https://api.anthropic.com/v1/messages");
        let body: serde_json::Value = serde_json::from_slice(&call.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "model": "claude",
                "max_tokens": 16,
                "system": "be brief",
                "temperature": 0.5,
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9g="}}
                ]}]
            })
        );
        assert_eq!(call.headers.get("x-api-key").expect("key"), "sk-ant");
        assert_eq!(
            call.headers.get("anthropic-version").expect("version"),
            "2023-06-01"
        );
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "claude".into(),
            system: None,
            messages: vec![crate::Message::text(Role::User, "hi")],
            max_tokens: 16,
            temperature: None,
        }
    }
}
