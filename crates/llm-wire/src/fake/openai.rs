//! The fake's OpenAI routes: chat completions and embeddings.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Answer, FakeLlm, Plan, Recorded, Seen, Shared, header_str, reason, sse, valid_base64};
use crate::types::ProviderKind;

pub(super) use crate::openai::{CHAT_PATH, EMBEDDINGS_PATH};

/// `POST /v1/chat/completions`.
pub(super) async fn chat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let checked = check_chat(&body);
    let api_key = bearer(&headers);
    let had_key = api_key.is_some();
    let plan = shared.admit(Recorded {
        provider: ProviderKind::OpenAi,
        path: CHAT_PATH.to_owned(),
        model: model.clone(),
        stream,
        body,
        api_key,
    });
    if let Some(refusal) = refuse(&plan, had_key).await {
        return refusal;
    }
    let seen = match checked {
        Ok(seen) => seen,
        Err(message) => return error(400, &message),
    };
    let answer = plan.answer(&seen);
    if stream {
        stream_answer(&model, &answer, include_usage, &plan)
    } else {
        super::json(200, &completion(&model, &answer))
    }
}

/// `POST /v1/embeddings`.
pub(super) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let checked = check_embeddings(&body);
    let api_key = bearer(&headers);
    let had_key = api_key.is_some();
    let plan = shared.admit(Recorded {
        provider: ProviderKind::OpenAi,
        path: EMBEDDINGS_PATH.to_owned(),
        model: model.clone(),
        stream: false,
        body,
        api_key,
    });
    if let Some(refusal) = refuse(&plan, had_key).await {
        return refusal;
    }
    let inputs = match checked {
        Ok(inputs) => inputs,
        Err(message) => return error(400, &message),
    };
    let tokens: u64 = inputs.iter().map(|t| FakeLlm::text_tokens(t)).sum();
    let tokens = plan.usage.map_or(tokens, |u| u.input_tokens);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": FakeLlm::embedding(text)})
        })
        .collect();
    super::json(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
        }),
    )
}

/// Delay, auth and scripted failure, in that order.
async fn refuse(plan: &Plan, had_key: bool) -> Option<Response> {
    plan.wait().await;
    if !plan.key_ok {
        return Some(if had_key {
            error(
                401,
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            )
        } else {
            error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        });
    }
    plan.fail.map(|status| {
        error(
            status,
            &format!("scripted failure: {status} {}", reason(status)),
        )
    })
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    header_str(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer"))
        .map(|key| key.trim().to_owned())
}

/// An error in OpenAI's shape.
fn error(status: u16, message: &str) -> Response {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", Value::Null),
        _ => ("server_error", Value::Null),
    };
    super::json(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

fn finish_reason(answer: &Answer) -> &'static str {
    if answer.truncated { "length" } else { "stop" }
}

fn usage(answer: &Answer) -> Value {
    json!({
        "prompt_tokens": answer.usage.input_tokens,
        "completion_tokens": answer.usage.output_tokens,
        "total_tokens": answer.usage.input_tokens + answer.usage.output_tokens
    })
}

fn completion(model: &str, answer: &Answer) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason(answer)
        }],
        "usage": usage(answer)
    })
}

fn stream_answer(model: &str, answer: &Answer, include_usage: bool, plan: &Plan) -> Response {
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        format!("data: {chunk}\n\n")
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for piece in answer.chunks() {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    if !plan.cut_stream {
        events.push(chunk(json!({}), json!(finish_reason(answer))));
        if include_usage {
            let last = json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage(answer)
            });
            events.push(format!("data: {last}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_owned());
    }
    sse(events, plan.chunk_delay)
}

fn check_chat(body: &Value) -> Result<Seen, String> {
    let Some(obj) = body.as_object() else {
        return Err("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)".into());
    };
    match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => return Err("you must provide a model parameter".into()),
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(messages)) if messages.is_empty() => {
            return Err("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".into());
        }
        Some(Value::Array(messages)) => messages,
        None => return Err("Missing required parameter: 'messages'.".into()),
        Some(_) => return Err("Invalid type for 'messages': expected an array.".into()),
    };
    let mut seen = Seen {
        max_tokens: match positive(obj, "max_completion_tokens")? {
            Some(n) => Some(n),
            None => positive(obj, "max_tokens")?,
        },
        ..Seen::default()
    };
    match obj.get("temperature") {
        None | Some(Value::Null) => {}
        Some(t) if t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) => {}
        Some(_) => return Err("Invalid 'temperature': expected a number between 0 and 2.".into()),
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("Invalid type for 'stream': expected a boolean.".into()),
    };
    if obj.get("stream_options").is_some_and(|v| !v.is_null()) && !stream {
        return Err(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.".into(),
        );
    }
    for (i, message) in messages.iter().enumerate() {
        let Some(role) = message["role"].as_str() else {
            return Err(format!("Missing required parameter: 'messages[{i}].role'."));
        };
        if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
            return Err(format!(
                "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'."
            ));
        }
        let mut texts: Vec<&str> = Vec::new();
        match message.get("content") {
            Some(Value::String(text)) => {
                seen.text(text);
                texts.push(text);
            }
            Some(Value::Array(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    match part["type"].as_str() {
                        Some("text") => {
                            let Some(text) = part["text"].as_str() else {
                                return Err(format!(
                                    "Missing required parameter: 'messages[{i}].content[{j}].text'."
                                ));
                            };
                            seen.text(text);
                            texts.push(text);
                        }
                        Some("image_url") => {
                            if role != "user" {
                                return Err(format!(
                                    "Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user', but this message with role '{role}' contains an image URL."
                                ));
                            }
                            check_image_url(part["image_url"]["url"].as_str(), i, j)?;
                            seen.image();
                        }
                        Some(other) => {
                            return Err(format!(
                                "Invalid value: '{other}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', and 'file'."
                            ));
                        }
                        None => {
                            return Err(format!(
                                "Missing required parameter: 'messages[{i}].content[{j}].type'."
                            ));
                        }
                    }
                }
            }
            // An assistant turn that only called tools has no content.
            None | Some(Value::Null) if role == "assistant" => {}
            _ => {
                return Err(format!(
                    "Missing required parameter: 'messages[{i}].content'."
                ));
            }
        }
        if role == "user" {
            seen.last_user_text = texts.join(" ");
        }
    }
    Ok(seen)
}

fn check_image_url(url: Option<&str>, i: usize, j: usize) -> Result<(), String> {
    let Some(url) = url else {
        return Err(format!(
            "Missing required parameter: 'messages[{i}].content[{j}].image_url.url'."
        ));
    };
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    let valid = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .is_some_and(|(meta, data)| {
            meta.strip_suffix(";base64")
                .is_some_and(|mime| mime.starts_with("image/"))
                && valid_base64(data)
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Invalid 'messages[{i}].content[{j}].image_url.url'. Expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value without the 'data:' prefix or with an invalid encoding."
        ))
    }
}

/// An optional positive integer field.
fn positive(obj: &serde_json::Map<String, Value>, field: &str) -> Result<Option<u32>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!("Invalid '{field}': integer below minimum value. Expected a value >= 1.")
            }),
    }
}

fn check_embeddings(body: &Value) -> Result<Vec<String>, String> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => return Err("you must provide a model parameter".into()),
    }
    let invalid = || {
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.".to_owned()
    };
    match body.get("input") {
        Some(Value::String(text)) if !text.is_empty() => Ok(vec![text.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(text) if !text.is_empty() => Ok(text.clone()),
                _ => Err(invalid()),
            })
            .collect(),
        None => Err("Missing required parameter: 'input'.".into()),
        Some(_) => Err(invalid()),
    }
}
