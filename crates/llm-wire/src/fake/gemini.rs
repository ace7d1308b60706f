//! The fake's Gemini routes: `/v1beta/models/{model}:{method}` for
//! `generateContent`, `streamGenerateContent` and `batchEmbedContents`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Answer, FakeLlm, Plan, Recorded, Seen, Shared, header_str, reason, sse, valid_base64};
use crate::types::ProviderKind;

const PREFIX: &str = "/v1beta/models/";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Generate,
    Stream,
    Embed,
}

/// `POST /v1beta/models/{model}:{method}`.
pub(super) async fn models(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let target = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let (model, method) = match target.rsplit_once(':') {
        Some((model, "generateContent")) => (model, Method::Generate),
        Some((model, "streamGenerateContent")) => (model, Method::Stream),
        Some((model, "batchEmbedContents")) => (model, Method::Embed),
        _ => {
            return error(
                404,
                &format!(
                    "Method not found for path {}",
                    crate::error::truncate(uri.path())
                ),
            );
        }
    };
    let model = model.to_owned();
    let query = uri.query().unwrap_or_default();
    let alt_sse = query.split('&').any(|pair| pair == "alt=sse");
    // Like the real API, the key may also come as `?key=`.
    let api_key = header_str(&headers, "x-goog-api-key")
        .map(str::to_owned)
        .or_else(|| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
                .map(str::to_owned)
        });
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let checked = match method {
        Method::Embed => check_embed(&body, &model).map(Checked::Embed),
        Method::Generate | Method::Stream => check_generate(&body).map(Checked::Generate),
    };
    let plan = shared.admit(Recorded {
        provider: ProviderKind::Gemini,
        path: uri.path().to_owned(),
        model: model.clone(),
        stream: method == Method::Stream,
        body,
        api_key,
    });
    plan.wait().await;
    if !plan.key_ok {
        return error(401, "API key not valid. Please pass a valid API key.");
    }
    if let Some(status) = plan.fail {
        return error(
            status,
            &format!("scripted failure: {status} {}", reason(status)),
        );
    }
    match checked {
        Err(message) => error(400, &message),
        Ok(Checked::Embed(inputs)) => {
            let embeddings: Vec<Value> = inputs
                .iter()
                .map(|text| json!({"values": FakeLlm::embedding(text)}))
                .collect();
            // The real batchEmbedContents reports no usage.
            super::json(200, &json!({ "embeddings": embeddings }))
        }
        Ok(Checked::Generate(seen)) => {
            let answer = plan.answer(&seen);
            let chunks = chunks(&model, &answer, &plan);
            match method {
                Method::Stream if alt_sse => sse(
                    chunks
                        .iter()
                        .map(|chunk| format!("data: {chunk}\r\n\r\n"))
                        .collect(),
                    plan.chunk_delay,
                ),
                // Without `alt=sse` the real API streams one JSON array.
                Method::Stream => super::json(200, &Value::Array(chunks)),
                Method::Generate | Method::Embed => super::json(200, &response(&model, &answer)),
            }
        }
    }
}

enum Checked {
    Generate(Seen),
    Embed(Vec<String>),
}

/// An error in Google's shape.
fn error(status: u16, message: &str) -> Response {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status < 500 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    };
    super::json(
        status,
        &json!({"error": {"code": status, "message": message, "status": name}}),
    )
}

fn finish_reason(answer: &Answer) -> &'static str {
    if answer.truncated {
        "MAX_TOKENS"
    } else {
        "STOP"
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({
        "promptTokenCount": input,
        "candidatesTokenCount": output,
        "totalTokenCount": input + output
    })
}

fn response(model: &str, answer: &Answer) -> Value {
    json!({
        "candidates": [{
            "content": {"parts": [{"text": answer.text}], "role": "model"},
            "finishReason": finish_reason(answer),
            "index": 0
        }],
        "usageMetadata": usage(answer.usage.input_tokens, answer.usage.output_tokens),
        "modelVersion": model,
        "responseId": "fake"
    })
}

/// Stream chunks with running usage; the last carries the finish reason
/// and the final counts (unless the script cuts the stream).
fn chunks(model: &str, answer: &Answer, plan: &Plan) -> Vec<Value> {
    let mut pieces = answer.chunks();
    if pieces.is_empty() {
        pieces.push("");
    }
    let last = pieces.len() - 1;
    let mut sent_chars = 0;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            sent_chars += piece.chars().count();
            let output = if i == last {
                answer.usage.output_tokens
            } else {
                answer.output_tokens_after(sent_chars)
            };
            let mut candidate = json!({
                "content": {"parts": [{"text": piece}], "role": "model"},
                "index": 0
            });
            if i == last && !plan.cut_stream {
                candidate["finishReason"] = json!(finish_reason(answer));
            }
            json!({
                "candidates": [candidate],
                "usageMetadata": usage(answer.usage.input_tokens, output),
                "modelVersion": model,
                "responseId": "fake"
            })
        })
        .collect()
}

/// A field under either of its JSON names: the API accepts the proto
/// (snake_case) and the JSON (camelCase) spelling.
fn field<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel).or_else(|| obj.get(snake))
}

fn check_generate(body: &Value) -> Result<Seen, String> {
    let Some(obj) = body.as_object() else {
        return Err("Invalid JSON payload received.".into());
    };
    let mut seen = Seen::default();
    if let Some(system) = field(obj, "systemInstruction", "system_instruction") {
        let Some(parts) = system["parts"].as_array() else {
            return Err(
                "* GenerateContentRequest.system_instruction.parts: must be a list\n".into(),
            );
        };
        for part in parts {
            match part["text"].as_str() {
                Some(text) => seen.text(text),
                None => return Err(
                    "* GenerateContentRequest.system_instruction: only text parts are supported\n"
                        .into(),
                ),
            }
        }
    }
    if let Some(config) = field(obj, "generationConfig", "generation_config") {
        let Some(config) = config.as_object() else {
            return Err("Invalid JSON payload received. Unknown name \"generationConfig\": must be an object".into());
        };
        if let Some(max) = field(config, "maxOutputTokens", "max_output_tokens") {
            let max = max
                .as_u64()
                .filter(|n| *n >= 1)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("* GenerateContentRequest.generation_config.max_output_tokens: must be a positive integer\n")?;
            seen.max_tokens = Some(max);
        }
        if let Some(t) = config.get("temperature")
            && !t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t))
        {
            return Err(
                "* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]\n"
                    .into(),
            );
        }
    }
    let contents = match obj.get("contents") {
        Some(Value::Array(contents)) if !contents.is_empty() => contents,
        _ => return Err("* GenerateContentRequest.contents: contents is not specified\n".into()),
    };
    for (i, content) in contents.iter().enumerate() {
        let role = match content.get("role") {
            None => "user",
            Some(Value::String(role)) if role == "user" || role == "model" => role.as_str(),
            Some(_) => return Err("Please use a valid role: user, model.".into()),
        };
        let parts = match content["parts"].as_array() {
            Some(parts) if !parts.is_empty() => parts,
            _ => {
                return Err(format!(
                    "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
                ));
            }
        };
        let mut texts: Vec<&str> = Vec::new();
        for (j, part) in parts.iter().enumerate() {
            let Some(part) = part.as_object() else {
                return Err(format!(
                    "* GenerateContentRequest.contents[{i}].parts[{j}]: must be an object\n"
                ));
            };
            if let Some(text) = part.get("text") {
                let Some(text) = text.as_str() else {
                    return Err(format!(
                        "Invalid value at 'contents[{i}].parts[{j}].text' (TYPE_STRING)"
                    ));
                };
                seen.text(text);
                texts.push(text);
            } else if let Some(inline) = field(part, "inlineData", "inline_data") {
                let inline = inline.as_object();
                let mime = inline
                    .and_then(|o| field(o, "mimeType", "mime_type"))
                    .and_then(Value::as_str);
                let data = inline.and_then(|o| o.get("data")).and_then(Value::as_str);
                if mime.is_none_or(str::is_empty) {
                    return Err(format!(
                        "* GenerateContentRequest.contents[{i}].parts[{j}].inline_data.mime_type: a mime type is required\n"
                    ));
                }
                if !data.is_some_and(valid_base64) {
                    return Err(format!(
                        "Invalid value at 'contents[{i}].parts[{j}].inline_data.data' (TYPE_BYTES), Base64 decoding failed"
                    ));
                }
                seen.image();
            } else {
                return Err(format!(
                    "* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof field 'data' must have one initialized field\n"
                ));
            }
        }
        if role == "user" {
            seen.last_user_text = texts.join(" ");
        }
    }
    Ok(seen)
}

fn check_embed(body: &Value, model: &str) -> Result<Vec<String>, String> {
    let requests = match body["requests"].as_array() {
        Some(requests) if !requests.is_empty() => requests,
        _ => {
            return Err("* BatchEmbedContentsRequest.requests: requests is not specified\n".into());
        }
    };
    let expected = format!("models/{model}");
    requests
        .iter()
        .enumerate()
        .map(|(i, request)| {
            if request["model"].as_str() != Some(expected.as_str()) {
                return Err(format!("* BatchEmbedContentsRequest.requests[{i}].model: the model must be {expected:?}, the model in the URL\n"));
            }
            let parts = match request["content"]["parts"].as_array() {
                Some(parts) if !parts.is_empty() => parts,
                _ => return Err(format!("* BatchEmbedContentsRequest.requests[{i}].content.parts: must not be empty\n")),
            };
            let texts: Option<Vec<&str>> = parts.iter().map(|p| p["text"].as_str()).collect();
            texts
                .map(|t| t.join(" "))
                .ok_or_else(|| format!("* BatchEmbedContentsRequest.requests[{i}].content.parts: only text parts can be embedded\n"))
        })
        .collect()
}
