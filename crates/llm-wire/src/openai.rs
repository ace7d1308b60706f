//! OpenAI chat completions and embeddings; also spoken by xAI and by
//! OpenAI-compatible servers (llama.cpp, vLLM, Ollama, ...).
//!
//! `max_tokens` is sent rather than OpenAI's newer `max_completion_tokens`
//! because xAI and compatible servers only know the older name, and OpenAI
//! still accepts it for non-reasoning models.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::client::{HttpCall, Protocol, StreamDecoder, parse_json, stream_error};
use crate::error::{Result, WireError};
use crate::sse::SseEvent;
use crate::types::{
    ChatRequest, Completion, EmbedRequest, Embeddings, Endpoint, Part, ProviderKind, Role, Usage,
};

pub(crate) const CHAT_PATH: &str = "/v1/chat/completions";
pub(crate) const EMBEDDINGS_PATH: &str = "/v1/embeddings";

/// The OpenAI protocol.
pub(crate) struct OpenAi;

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Content<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    /// A lone text part goes as a plain string: every compatible server
    /// understands that, not all understand the array form.
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Serialize)]
struct ImageUrl {
    url: String,
}

fn wire_messages(req: &ChatRequest) -> Vec<WireMessage<'_>> {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(WireMessage {
            role: "system",
            content: Content::Text(system),
        });
    }
    for message in &req.messages {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let content = match message.parts.as_slice() {
            [Part::Text(text)] => Content::Text(text),
            parts => Content::Parts(
                parts
                    .iter()
                    .map(|part| match part {
                        Part::Text(text) => WirePart::Text { text },
                        Part::Image { media_type, data } => WirePart::ImageUrl {
                            image_url: ImageUrl {
                                url: format!("data:{media_type};base64,{}", BASE64.encode(data)),
                            },
                        },
                    })
                    .collect(),
            ),
        };
        messages.push(WireMessage { role, content });
    }
    messages
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    message: Option<ChoiceMessage>,
    delta: Option<ChoiceMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    error: Option<StreamErrorBody>,
}

#[derive(Deserialize)]
struct StreamErrorBody {
    #[serde(default)]
    message: String,
    #[serde(rename = "type", default)]
    error_type: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct EmbedBody<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbedResponse {
    data: Vec<EmbeddingItem>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// Parses a non-streamed chat completion.
pub(crate) fn parse_completion(body: &[u8], request_model: &str) -> Result<Completion> {
    let response: ChatResponse = parse_json("OpenAI", body)?;
    let choice = response
        .choices
        .into_iter()
        .find(|c| c.index == 0)
        .ok_or_else(|| WireError::protocol("OpenAI response has no choices"))?;
    Ok(Completion {
        text: choice.message.and_then(|m| m.content).unwrap_or_default(),
        model: non_empty_or(response.model, request_model),
        usage: response.usage.map(Usage::from).unwrap_or_default(),
        finish_reason: choice.finish_reason.unwrap_or_default(),
    })
}

/// Parses an embeddings response, ordering vectors by `index`.
pub(crate) fn parse_embeddings(body: &[u8], inputs: usize) -> Result<Embeddings> {
    let mut response: EmbedResponse = parse_json("OpenAI", body)?;
    if response.data.len() != inputs {
        return Err(WireError::protocol(format!(
            "OpenAI returned {} embeddings for {inputs} inputs",
            response.data.len()
        )));
    }
    // Documented to come back in order; sorting costs nothing when they do.
    response.data.sort_by_key(|d| d.index.unwrap_or(0));
    Ok(Embeddings {
        vectors: response.data.into_iter().map(|d| d.embedding).collect(),
        usage: Usage {
            input_tokens: response.usage.map_or(0, |u| u.prompt_tokens),
            output_tokens: 0,
        },
    })
}

fn non_empty_or(value: String, fallback: &str) -> String {
    if value.is_empty() {
        fallback.to_owned()
    } else {
        value
    }
}

impl Protocol for OpenAi {
    fn chat_call(&self, ep: &Endpoint, req: &ChatRequest, stream: bool) -> Result<HttpCall> {
        let body = ChatBody {
            model: &req.model,
            messages: wire_messages(req),
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            stream,
            // Without this, OpenAI sends no usage at all in a stream.
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        let mut call = HttpCall::json(ep, CHAT_PATH, &body)?;
        call.secret_header("authorization", "Bearer ", &ep.api_key)?;
        Ok(call)
    }

    fn parse_completion(&self, body: &[u8], req: &ChatRequest) -> Result<Completion> {
        parse_completion(body, &req.model)
    }

    fn decoder(&self, kind: ProviderKind, req: &ChatRequest) -> Box<dyn StreamDecoder> {
        Box::new(Decoder {
            kind,
            text: String::new(),
            model: req.model.clone(),
            finish_reason: String::new(),
            usage: Usage::default(),
        })
    }

    fn embed_call(&self, ep: &Endpoint, req: &EmbedRequest) -> Result<HttpCall> {
        let body = EmbedBody {
            model: &req.model,
            input: &req.inputs,
        };
        let mut call = HttpCall::json(ep, EMBEDDINGS_PATH, &body)?;
        call.secret_header("authorization", "Bearer ", &ep.api_key)?;
        Ok(call)
    }

    fn parse_embeddings(&self, body: &[u8], req: &EmbedRequest) -> Result<Embeddings> {
        parse_embeddings(body, req.inputs.len())
    }
}

/// Accumulates `chat.completion.chunk`s until `data: [DONE]`.
pub(crate) struct Decoder {
    kind: ProviderKind,
    text: String,
    model: String,
    finish_reason: String,
    usage: Usage,
}

impl StreamDecoder for Decoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<String>) -> Result<Option<Completion>> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Some(Completion {
                text: std::mem::take(&mut self.text),
                model: std::mem::take(&mut self.model),
                // Servers that ignore `stream_options` report no usage; the
                // zero here is then all we know.
                usage: self.usage,
                finish_reason: std::mem::take(&mut self.finish_reason),
            }));
        }
        if data.is_empty() {
            return Ok(None);
        }
        let chunk: StreamChunk = parse_json("OpenAI stream", data.as_bytes())?;
        if let Some(error) = chunk.error {
            let status = error
                .code
                .as_ref()
                .and_then(serde_json::Value::as_u64)
                .and_then(|c| u16::try_from(c).ok());
            let error_type = error.error_type.unwrap_or_default();
            return Err(stream_error(self.kind, &error_type, status, &error.message));
        }
        if !chunk.model.is_empty() {
            self.model = chunk.model;
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(content) = choice.delta.and_then(|d| d.content)
                && !content.is_empty()
            {
                self.text.push_str(&content);
                out.push(content);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = reason;
            }
        }
        // The usage chunk comes last (OpenAI) or rides on the finishing
        // chunk (some compatible servers); either way the last one wins.
        if let Some(usage) = chunk.usage {
            self.usage = usage.into();
        }
        Ok(None)
    }

    fn end_of_body(&mut self) -> Result<Completion> {
        Err(WireError::protocol(
            "OpenAI stream ended without `data: [DONE]`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    // Shapes as documented in the OpenAI API reference.
    const COMPLETION: &str = r#"{
      "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
      "object": "chat.completion",
      "created": 1741569952,
      "model": "gpt-4.1-2025-04-14",
      "choices": [
        {
          "index": 0,
          "message": {
            "role": "assistant",
            "content": "Hello! How can I assist you today?",
            "refusal": null,
            "annotations": []
          },
          "logprobs": null,
          "finish_reason": "stop"
        }
      ],
      "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}
      },
      "service_tier": "default"
    }"#;

    #[test]
    fn parses_documented_completion() {
        let c = parse_completion(COMPLETION.as_bytes(), "gpt-4.1").expect("parse");
        assert_eq!(c.text, "Hello! How can I assist you today?");
        assert_eq!(c.model, "gpt-4.1-2025-04-14");
        assert_eq!(c.finish_reason, "stop");
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: 19,
                output_tokens: 10
            }
        );
    }

    #[test]
    fn null_content_is_empty_text_and_no_choices_is_an_error() {
        let body = br#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"tool_calls"}]}"#;
        let c = parse_completion(body, "m").expect("parse");
        assert_eq!(c.text, "");
        assert_eq!(c.usage, Usage::default());
        let err = parse_completion(br#"{"choices":[]}"#, "m").expect_err("no choices");
        assert_eq!(err.kind, ErrorKind::Protocol);
        let err = parse_completion(b"not json", "m").expect_err("garbage");
        assert_eq!(err.kind, ErrorKind::Protocol);
    }

    #[test]
    fn parses_documented_stream() {
        let events = [
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            "[DONE]",
        ];
        let mut d = OpenAi.decoder(ProviderKind::OpenAi, &request("gpt-4o-mini"));
        let mut deltas = Vec::new();
        let mut done = None;
        for data in events {
            let ev = SseEvent {
                event: String::new(),
                data: data.into(),
            };
            if let Some(c) = d.event(&ev, &mut deltas).expect("event") {
                done = Some(c);
            }
        }
        assert_eq!(deltas, ["Hel", "lo"]);
        let done = done.expect("done");
        assert_eq!(done.text, "Hello");
        assert_eq!(done.finish_reason, "stop");
        assert_eq!(
            done.usage,
            Usage {
                input_tokens: 9,
                output_tokens: 2
            }
        );
        assert_eq!(
            d.end_of_body().expect_err("no DONE").kind,
            ErrorKind::Protocol
        );
    }

    #[test]
    fn stream_error_object_becomes_an_error() {
        let mut d = OpenAi.decoder(ProviderKind::OpenAi, &request("m"));
        let ev = SseEvent {
            event: String::new(),
            data: r#"{"error":{"message":"The server had an error","type":"server_error","code":null}}"#.into(),
        };
        let err = d.event(&ev, &mut Vec::new()).expect_err("error");
        assert_eq!(err.kind, ErrorKind::Server { status: 500 });
    }

    #[test]
    fn parses_documented_embeddings() {
        let body = br#"{
          "object": "list",
          "data": [
            {"object": "embedding", "embedding": [0.5, -0.25], "index": 1},
            {"object": "embedding", "embedding": [0.0023064255, -0.009327292], "index": 0}
          ],
          "model": "text-embedding-3-small",
          "usage": {"prompt_tokens": 8, "total_tokens": 8}
        }"#;
        let e = parse_embeddings(body, 2).expect("parse");
        assert_eq!(
            e.vectors,
            vec![vec![0.0023064255, -0.009327292], vec![0.5, -0.25]]
        );
        assert_eq!(e.usage.input_tokens, 8);
        assert_eq!(
            parse_embeddings(body, 3).expect_err("count").kind,
            ErrorKind::Protocol
        );
    }

    #[test]
    fn request_body_shape() {
        let ep = Endpoint::new(
            ProviderKind::OpenAi,
            "sk-test",
            std::time::Duration::from_secs(1),
        );
        let mut req = request("gpt-4o-mini");
        req.system = Some("be brief".into());
        req.messages[0].parts.push(Part::Image {
            media_type: "image/png".into(),
            data: vec![1, 2, 3],
        });
        let call = OpenAi.chat_call(&ep, &req, true).expect("call");
        assert_eq!(call.url, "https://api.openai.com/v1/chat/completions");
        let body: serde_json::Value = serde_json::from_slice(&call.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AQID"}}
                    ]}
                ],
                "max_tokens": 16,
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
        assert_eq!(
            call.headers.get("authorization").expect("auth"),
            "Bearer sk-test"
        );
        assert!(
            call.headers
                .get("authorization")
                .expect("auth")
                .is_sensitive()
        );
    }

    fn request(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            system: None,
            messages: vec![crate::Message::text(Role::User, "hi")],
            max_tokens: 16,
            temperature: None,
        }
    }
}
