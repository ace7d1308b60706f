//! The fake's Anthropic route: `/v1/messages`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Answer, Plan, Recorded, Seen, Shared, header_str, reason, sse, valid_base64};
use crate::types::ProviderKind;

pub(super) use crate::anthropic::MESSAGES_PATH;

/// Media types the Messages API accepts for base64 images.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// `POST /v1/messages`.
pub(super) async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let checked = check(&body);
    let api_key = header_str(&headers, "x-api-key").map(str::to_owned);
    let had_key = api_key.is_some();
    let has_version = header_str(&headers, "anthropic-version").is_some();
    let plan = shared.admit(Recorded {
        provider: ProviderKind::Anthropic,
        path: MESSAGES_PATH.to_owned(),
        model: model.clone(),
        stream,
        body,
        api_key,
    });
    plan.wait().await;
    if !plan.key_ok {
        let message = if had_key {
            "invalid x-api-key"
        } else {
            "x-api-key header is required"
        };
        return error(401, message);
    }
    if let Some(status) = plan.fail {
        return error(
            status,
            &format!("scripted failure: {status} {}", reason(status)),
        );
    }
    if !has_version {
        return error(400, "anthropic-version: header is required");
    }
    let seen = match checked {
        Ok(seen) => seen,
        Err(message) => return error(400, &message),
    };
    let answer = plan.answer(&seen);
    if stream {
        stream_answer(&model, &answer, &plan)
    } else {
        super::json(200, &message(&model, &answer))
    }
}

/// An error in Anthropic's shape.
fn error(status: u16, message: &str) -> Response {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ if status < 500 => "invalid_request_error",
        _ => "api_error",
    };
    super::json(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn stop_reason(answer: &Answer) -> &'static str {
    if answer.truncated {
        "max_tokens"
    } else {
        "end_turn"
    }
}

fn message(model: &str, answer: &Answer) -> Value {
    json!({
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": answer.text}],
        "stop_reason": stop_reason(answer),
        "stop_sequence": null,
        "usage": {
            "input_tokens": answer.usage.input_tokens,
            "output_tokens": answer.usage.output_tokens
        }
    })
}

fn stream_answer(model: &str, answer: &Answer, plan: &Plan) -> Response {
    fn event(name: &str, data: &Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }
    let start = json!({
        "type": "message_start",
        "message": {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            // Like the real API: input is final here, output only starts.
            "usage": {
                "input_tokens": answer.usage.input_tokens,
                "output_tokens": answer.usage.output_tokens.min(1)
            }
        }
    });
    let mut events = vec![
        event("message_start", &start),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    for piece in answer.chunks() {
        events.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    if !plan.cut_stream {
        events.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push(event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(answer), "stop_sequence": null},
                "usage": {"output_tokens": answer.usage.output_tokens}
            }),
        ));
        events.push(event("message_stop", &json!({"type": "message_stop"})));
    }
    sse(events, plan.chunk_delay)
}

fn check(body: &Value) -> Result<Seen, String> {
    let Some(obj) = body.as_object() else {
        return Err("The request body is not valid JSON.".into());
    };
    match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(_) => return Err("model: Input should be a valid string".into()),
        None => return Err("model: Field required".into()),
    }
    let max_tokens = match obj.get("max_tokens") {
        None => return Err("max_tokens: Field required".into()),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("max_tokens: Input should be a valid integer greater than or equal to 1")?,
    };
    let mut seen = Seen {
        max_tokens: Some(max_tokens),
        ..Seen::default()
    };
    match obj.get("temperature") {
        None => {}
        Some(t) if t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t)) => {}
        Some(_) => return Err("temperature: Input should be less than or equal to 1".into()),
    }
    match obj.get("stream") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => return Err("stream: Input should be a valid boolean".into()),
    }
    match obj.get("system") {
        None => {}
        Some(Value::String(text)) => seen.text(text),
        Some(Value::Array(blocks)) => {
            for (i, block) in blocks.iter().enumerate() {
                match (block["type"].as_str(), block["text"].as_str()) {
                    (Some("text"), Some(text)) => seen.text(text),
                    _ => return Err(format!("system.{i}: Input should be a valid text block")),
                }
            }
        }
        Some(_) => {
            return Err("system: Input should be a valid string or list of text blocks".into());
        }
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(Value::Array(_)) => return Err("messages: at least one message is required".into()),
        Some(_) => return Err("messages: Input should be a valid list".into()),
        None => return Err("messages: Field required".into()),
    };
    for (i, message) in messages.iter().enumerate() {
        let role = match message["role"].as_str() {
            Some(role @ ("user" | "assistant")) => role,
            Some("system") => {
                return Err("messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.".into());
            }
            _ => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ));
            }
        };
        let mut texts: Vec<&str> = Vec::new();
        match message.get("content") {
            Some(Value::String(text)) => {
                seen.text(text);
                texts.push(text);
            }
            Some(Value::Array(blocks)) => {
                for (j, block) in blocks.iter().enumerate() {
                    match block["type"].as_str() {
                        Some("text") => {
                            let Some(text) = block["text"].as_str() else {
                                return Err(format!(
                                    "messages.{i}.content.{j}.text: Field required"
                                ));
                            };
                            seen.text(text);
                            texts.push(text);
                        }
                        Some("image") => {
                            check_image(&block["source"], i, j)?;
                            seen.image();
                        }
                        Some(other) => {
                            return Err(format!(
                                "messages.{i}.content.{j}: Input tag '{other}' found using 'type' does not match any of the expected tags"
                            ));
                        }
                        None => {
                            return Err(format!("messages.{i}.content.{j}.type: Field required"));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(format!(
                    "messages.{i}.content: Input should be a valid list"
                ));
            }
            None => return Err(format!("messages.{i}.content: Field required")),
        }
        if role == "user" {
            seen.last_user_text = texts.join(" ");
        }
    }
    Ok(seen)
}

fn check_image(source: &Value, i: usize, j: usize) -> Result<(), String> {
    match source["type"].as_str() {
        Some("base64") => {
            let media_type = source["media_type"].as_str().unwrap_or_default();
            if !IMAGE_TYPES.contains(&media_type) {
                return Err(format!(
                    "messages.{i}.content.{j}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                ));
            }
            if !source["data"].as_str().is_some_and(valid_base64) {
                return Err(format!(
                    "messages.{i}.content.{j}.image.source.base64.data: The image data is not valid base64"
                ));
            }
            Ok(())
        }
        Some("url") if source["url"].is_string() => Ok(()),
        _ => Err(format!(
            "messages.{i}.content.{j}.image.source: Input tag found using 'type' does not match any of the expected tags: 'base64', 'url'"
        )),
    }
}
