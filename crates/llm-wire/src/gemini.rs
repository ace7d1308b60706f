//! Google Gemini, Generative Language API `v1beta`: `generateContent`,
//! `streamGenerateContent?alt=sse` and `batchEmbedContents`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::client::{HttpCall, Protocol, StreamDecoder, parse_json, stream_error};
use crate::error::{ErrorKind, Result, WireError};
use crate::sse::SseEvent;
use crate::types::{
    ChatRequest, Completion, EmbedRequest, Embeddings, Endpoint, Part, ProviderKind, Role, Usage,
};

/// The Gemini protocol.
pub(crate) struct Gemini;

/// The model id as it goes in the URL: without `models/`, and only of
/// characters that cannot change the path or query (a model id may come
/// from a plugin).
pub(crate) fn model_path(model: &str) -> Result<&str> {
    let id = model.strip_prefix("models/").unwrap_or(model);
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if valid {
        Ok(id)
    } else {
        Err(WireError::new(
            ErrorKind::Unsupported,
            format!(
                "invalid Gemini model id {:?}",
                crate::error::truncate(model)
            ),
        ))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateBody<'a> {
    contents: Vec<WireContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    generation_config: GenerationConfig,
}

#[derive(Serialize)]
struct WireContent<'a> {
    role: &'static str,
    parts: Vec<WirePart<'a>>,
}

#[derive(Serialize)]
struct SystemInstruction<'a> {
    parts: [WirePart<'a>; 1],
}

#[derive(Serialize)]
#[serde(untagged)]
enum WirePart<'a> {
    Text { text: &'a str },
    Inline { inline_data: InlineData<'a> },
}

#[derive(Serialize)]
struct InlineData<'a> {
    mime_type: &'a str,
    data: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    max_output_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

fn wire_contents(req: &ChatRequest) -> Vec<WireContent<'_>> {
    req.messages
        .iter()
        .map(|message| WireContent {
            role: match message.role {
                Role::User => "user",
                Role::Assistant => "model",
            },
            parts: message
                .parts
                .iter()
                .map(|part| match part {
                    Part::Text(text) => WirePart::Text { text },
                    Part::Image { media_type, data } => WirePart::Inline {
                        inline_data: InlineData {
                            mime_type: media_type,
                            data: BASE64.encode(data),
                        },
                    },
                })
                .collect(),
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
    #[serde(default)]
    index: u32,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<ResponsePart>,
}

#[derive(Deserialize)]
struct ResponsePart {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
}

impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Self {
        Usage {
            input_tokens: u.prompt_token_count.unwrap_or(0),
            // Thinking tokens are billed as output, as OpenAI's reasoning
            // tokens are (and there they are inside completion_tokens).
            output_tokens: u.candidates_token_count.unwrap_or(0)
                + u.thoughts_token_count.unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u16>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
}

impl GenerateResponse {
    /// The first candidate's visible text (thought summaries skipped).
    fn text(&self) -> Option<String> {
        let candidate = self.candidates.iter().find(|c| c.index == 0)?;
        let parts = &candidate.content.as_ref()?.parts;
        Some(
            parts
                .iter()
                .filter(|p| !p.thought)
                .filter_map(|p| p.text.as_deref())
                .collect(),
        )
    }

    /// The finish reason, or the block reason when the prompt was refused
    /// (then there are no candidates at all).
    fn finish_reason(&self) -> Option<String> {
        self.candidates
            .iter()
            .find(|c| c.index == 0)
            .and_then(|c| c.finish_reason.clone())
            .or_else(|| {
                self.prompt_feedback
                    .as_ref()
                    .and_then(|f| f.block_reason.clone())
            })
    }
}

#[derive(Serialize)]
struct BatchEmbedBody<'a> {
    requests: Vec<EmbedContentRequest<'a>>,
}

#[derive(Serialize)]
struct EmbedContentRequest<'a> {
    model: &'a str,
    content: EmbedContent<'a>,
}

#[derive(Serialize)]
struct EmbedContent<'a> {
    parts: [WirePart<'a>; 1],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchEmbedResponse {
    #[serde(default)]
    embeddings: Vec<ContentEmbedding>,
    usage_metadata: Option<UsageMetadata>,
}

#[derive(Deserialize)]
struct ContentEmbedding {
    values: Vec<f32>,
}

/// Parses a non-streamed `generateContent` response.
pub(crate) fn parse_completion(body: &[u8], request_model: &str) -> Result<Completion> {
    let response: GenerateResponse = parse_json("Gemini", body)?;
    let finish_reason = response.finish_reason();
    let text = match (response.text(), &finish_reason) {
        (Some(text), _) => text,
        // Blocked prompt, or a candidate without content (SAFETY etc.).
        (None, Some(_)) => String::new(),
        (None, None) => return Err(WireError::protocol("Gemini response has no candidates")),
    };
    Ok(Completion {
        text,
        model: response
            .model_version
            .unwrap_or_else(|| request_model.to_owned()),
        usage: response.usage_metadata.map(Usage::from).unwrap_or_default(),
        finish_reason: finish_reason.unwrap_or_default(),
    })
}

/// Parses a `batchEmbedContents` response.
pub(crate) fn parse_embeddings(body: &[u8], inputs: usize) -> Result<Embeddings> {
    let response: BatchEmbedResponse = parse_json("Gemini", body)?;
    if response.embeddings.len() != inputs {
        return Err(WireError::protocol(format!(
            "Gemini returned {} embeddings for {inputs} inputs",
            response.embeddings.len()
        )));
    }
    Ok(Embeddings {
        vectors: response.embeddings.into_iter().map(|e| e.values).collect(),
        usage: Usage {
            input_tokens: response
                .usage_metadata
                .and_then(|u| u.prompt_token_count)
                .unwrap_or(0),
            output_tokens: 0,
        },
    })
}

impl Protocol for Gemini {
    fn chat_call(&self, ep: &Endpoint, req: &ChatRequest, stream: bool) -> Result<HttpCall> {
        let model = model_path(&req.model)?;
        let body = GenerateBody {
            contents: wire_contents(req),
            system_instruction: req.system.as_deref().map(|text| SystemInstruction {
                parts: [WirePart::Text { text }],
            }),
            generation_config: GenerationConfig {
                max_output_tokens: req.max_tokens,
                temperature: req.temperature,
            },
        };
        let path = if stream {
            format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
        } else {
            format!("/v1beta/models/{model}:generateContent")
        };
        let mut call = HttpCall::json(ep, &path, &body)?;
        call.secret_header("x-goog-api-key", "", &ep.api_key)?;
        Ok(call)
    }

    fn parse_completion(&self, body: &[u8], req: &ChatRequest) -> Result<Completion> {
        parse_completion(body, &req.model)
    }

    fn decoder(&self, _kind: ProviderKind, req: &ChatRequest) -> Box<dyn StreamDecoder> {
        Box::new(Decoder {
            text: String::new(),
            model: req.model.clone(),
            finish_reason: None,
            usage: Usage::default(),
        })
    }

    fn embed_call(&self, ep: &Endpoint, req: &EmbedRequest) -> Result<HttpCall> {
        let model = model_path(&req.model)?;
        let qualified = format!("models/{model}");
        let body = BatchEmbedBody {
            requests: req
                .inputs
                .iter()
                .map(|text| EmbedContentRequest {
                    model: &qualified,
                    content: EmbedContent {
                        parts: [WirePart::Text { text }],
                    },
                })
                .collect(),
        };
        let mut call = HttpCall::json(
            ep,
            &format!("/v1beta/models/{model}:batchEmbedContents"),
            &body,
        )?;
        call.secret_header("x-goog-api-key", "", &ep.api_key)?;
        Ok(call)
    }

    fn parse_embeddings(&self, body: &[u8], req: &EmbedRequest) -> Result<Embeddings> {
        parse_embeddings(body, req.inputs.len())
    }
}

/// Accumulates `GenerateContentResponse` chunks. Gemini has no end marker:
/// the stream is complete when the body ends after a chunk that carried a
/// finish (or block) reason.
struct Decoder {
    text: String,
    model: String,
    finish_reason: Option<String>,
    usage: Usage,
}

impl StreamDecoder for Decoder {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<String>) -> Result<Option<Completion>> {
        if event.data.trim().is_empty() {
            return Ok(None);
        }
        let chunk: GenerateResponse = parse_json("Gemini stream", event.data.as_bytes())?;
        if let Some(error) = chunk.error {
            return Err(stream_error(
                ProviderKind::Gemini,
                &error.status,
                error.code,
                &error.message,
            ));
        }
        if let Some(text) = chunk.text()
            && !text.is_empty()
        {
            self.text.push_str(&text);
            out.push(text);
        }
        if let Some(reason) = chunk.finish_reason() {
            self.finish_reason = Some(reason);
        }
        // Each chunk's usage is the running total; the last is final.
        if let Some(usage) = chunk.usage_metadata {
            self.usage = usage.into();
        }
        if let Some(model) = chunk.model_version {
            self.model = model;
        }
        Ok(None)
    }

    fn end_of_body(&mut self) -> Result<Completion> {
        let Some(finish_reason) = self.finish_reason.take() else {
            return Err(WireError::protocol(
                "Gemini stream ended before a chunk with finishReason",
            ));
        };
        Ok(Completion {
            text: std::mem::take(&mut self.text),
            model: std::mem::take(&mut self.model),
            usage: self.usage,
            finish_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes as documented in the Gemini API reference.
    const RESPONSE: &str = r#"{
      "candidates": [
        {
          "content": {
            "parts": [
              {"text": "thinking about it", "thought": true},
              {"text": "In a small town, "},
              {"text": "a robot lived."}
            ],
            "role": "model"
          },
          "finishReason": "STOP",
          "avgLogprobs": -0.27,
          "index": 0
        }
      ],
      "usageMetadata": {
        "promptTokenCount": 8,
        "candidatesTokenCount": 120,
        "thoughtsTokenCount": 30,
        "totalTokenCount": 158,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]
      },
      "modelVersion": "gemini-2.5-flash",
      "responseId": "Pj6iaJ2nL9qtz7IPqf7M8AY"
    }"#;

    #[test]
    fn parses_documented_response() {
        let c = parse_completion(RESPONSE.as_bytes(), "gemini").expect("parse");
        assert_eq!(c.text, "In a small town, a robot lived.");
        assert_eq!(c.model, "gemini-2.5-flash");
        assert_eq!(c.finish_reason, "STOP");
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: 8,
                output_tokens: 150
            }
        );
    }

    #[test]
    fn blocked_prompt_has_empty_text_and_the_block_reason() {
        let body = br#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}"#;
        let c = parse_completion(body, "gemini-2.0-flash").expect("parse");
        assert_eq!(c.text, "");
        assert_eq!(c.finish_reason, "SAFETY");
        assert_eq!(c.model, "gemini-2.0-flash");
        assert_eq!(c.usage.input_tokens, 5);
        let err = parse_completion(b"{}", "m").expect_err("empty");
        assert_eq!(err.kind, ErrorKind::Protocol);
    }

    #[test]
    fn parses_documented_stream() {
        let chunks = [
            r#"{"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 10,"totalTokenCount": 10},"modelVersion": "gemini-2.0-flash"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": " sky is blue."}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 10,"candidatesTokenCount": 3,"totalTokenCount": 13},"modelVersion": "gemini-2.0-flash"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 10,"candidatesTokenCount": 5,"totalTokenCount": 15},"modelVersion": "gemini-2.0-flash"}"#,
        ];
        let mut d = Gemini.decoder(ProviderKind::Gemini, &request());
        let mut deltas = Vec::new();
        for data in chunks {
            let ev = SseEvent {
                event: String::new(),
                data: data.into(),
            };
            assert!(d.event(&ev, &mut deltas).expect("event").is_none());
        }
        assert_eq!(deltas, ["The", " sky is blue."]);
        let done = d.end_of_body().expect("done");
        assert_eq!(done.text, "The sky is blue.");
        assert_eq!(done.finish_reason, "STOP");
        assert_eq!(
            done.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 5
            }
        );
    }

    #[test]
    fn stream_cut_before_finish_reason_is_a_protocol_error() {
        let mut d = Gemini.decoder(ProviderKind::Gemini, &request());
        let ev = SseEvent {
            event: String::new(),
            data: r#"{"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"},"index": 0}]}"#.into(),
        };
        d.event(&ev, &mut Vec::new()).expect("event");
        assert_eq!(d.end_of_body().expect_err("cut").kind, ErrorKind::Protocol);
    }

    #[test]
    fn parses_documented_embeddings() {
        let body = br#"{"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}"#;
        let e = parse_embeddings(body, 2).expect("parse");
        assert_eq!(e.vectors, vec![vec![0.1, 0.2], vec![0.3, 0.4]]);
        assert_eq!(e.usage, Usage::default());
    }

    #[test]
    fn model_ids_that_could_change_the_url_are_refused() {
        assert_eq!(
            model_path("models/gemini-2.0-flash").expect("ok"),
            "gemini-2.0-flash"
        );
        for bad in [
            "",
            "a/b",
            "x:generateContent?alt=",
            "../v1",
            "m#frag",
            "m o",
        ] {
            assert_eq!(model_path(bad).expect_err(bad).kind, ErrorKind::Unsupported);
        }
    }

    #[test]
    fn request_body_shape() {
        let ep = Endpoint::new(
            ProviderKind::Gemini,
            "AIza-key",
            std::time::Duration::from_secs(1),
        );
        let mut req = request();
        req.system = Some("be brief".into());
        req.messages
            .push(crate::Message::text(Role::Assistant, "ok"));
        req.messages[0].parts.push(Part::Image {
            media_type: "image/png".into(),
            data: vec![1, 2, 3],
        });
        let call = Gemini.chat_call(&ep, &req, true).expect("call");
        assert_eq!(
            call.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        let body: serde_json::Value = serde_json::from_slice(&call.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "hi"},
                        {"inline_data": {"mime_type": "image/png", "data": "AQID"}}
                    ]},
                    {"role": "model", "parts": [{"text": "ok"}]}
                ],
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "generationConfig": {"maxOutputTokens": 16}
            })
        );
        assert_eq!(call.headers.get("x-goog-api-key").expect("key"), "AIza-key");
        assert!(!call.url.contains("AIza-key"));
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "models/gemini-2.0-flash".into(),
            system: None,
            messages: vec![crate::Message::text(Role::User, "hi")],
            max_tokens: 16,
            temperature: None,
        }
    }
}
