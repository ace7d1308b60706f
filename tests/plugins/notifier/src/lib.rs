//! `notifier`: the outbox (`weft:platform@0.4.0`) in one call with a write.
//!
//! - `POST /send` `{"key", "message": {"channel": "email" | "sms" | "push" |
//!   "in_app", ...}, "messages"?: [..], "fail_after"?: bool}`: stores
//!   `notes/<key>`, sends the message (and any in `messages`, keys
//!   `<key>-<n>`), then panics if `fail_after` (the call traps: nothing it
//!   did may stay). In-app recipient `"me"` is the caller. Answers
//!   `{"id", "ids"}`, or the outbox's refusal as its error code.
//! - `GET /status/{id}`: `{"status"}` (`null` if unknown).
//! - `GET /notes/{key}`: 200 if the note exists, 404 otherwise.

use serde_json::{Value, json};
use weft_sdk::outbox::{self, Email, Message};
use weft_sdk::{Plugin, Request, Response, Router, docs};

struct Notifier;

fn text(m: &Value, field: &str) -> String {
    m.get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn opt(m: &Value, field: &str) -> Option<String> {
    m.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn pairs(m: &Value, field: &str) -> Vec<(String, String)> {
    match m.get(field) {
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

fn message_of(m: &Value, caller: &str) -> Message {
    match m.get("channel").and_then(Value::as_str).unwrap_or("") {
        "sms" => outbox::sms(&text(m, "to"), &text(m, "body")),
        "push" => {
            let data = pairs(m, "data");
            let data: Vec<(&str, &str)> =
                data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            outbox::push(
                &text(m, "token"),
                &text(m, "title"),
                &text(m, "body"),
                &data,
            )
        }
        "in_app" => {
            let user = match text(m, "user").as_str() {
                "me" => caller.to_owned(),
                other => other.to_owned(),
            };
            outbox::in_app(
                &user,
                &text(m, "title"),
                &text(m, "body"),
                opt(m, "link").as_deref(),
                m.get("data").unwrap_or(&json!({})),
            )
        }
        _ => {
            let mut email = Email::to(&text(m, "to"), &text(m, "subject"));
            if let Some(html) = opt(m, "html") {
                email = email.html(&html);
            }
            if let Some(t) = opt(m, "text") {
                email = email.text(&t);
            }
            for (name, value) in pairs(m, "headers") {
                email = email.header(&name, &value);
            }
            email.into()
        }
    }
}

fn send(req: &Request) -> weft_sdk::Result {
    let body: Value = req.json()?;
    let key = text(&body, "key");
    let caller = req
        .caller
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    docs::put_json("notes", &key, &json!({"key": key}), None)?;
    let id = outbox::send(message_of(&body["message"], &caller), &key)?;
    let mut ids = vec![id.clone()];
    if let Some(Value::Array(more)) = body.get("messages") {
        for (n, m) in more.iter().enumerate() {
            ids.push(outbox::send(message_of(m, &caller), &format!("{key}-{n}"))?);
        }
    }
    if body.get("fail_after").and_then(Value::as_bool) == Some(true) {
        panic!("failing after the send, on purpose");
    }
    let status = outbox::status(&id).map(|s| s.as_str());
    Ok(Response::json(
        200,
        &json!({"id": id, "ids": ids, "status": status}),
    ))
}

fn status(req: &Request) -> Response {
    let id = req.param("id").unwrap_or("");
    let status = outbox::status(id).map(|s| s.as_str());
    Response::json(200, &json!({ "status": status }))
}

fn note(req: &Request) -> weft_sdk::Result {
    let key = req.param("key").unwrap_or("");
    Ok(match docs::get("notes", key)? {
        Some(_) => Response::json(200, &json!({"key": key})),
        None => Response::error(404, "not_found", "no such note"),
    })
}

impl Plugin for Notifier {
    fn handle(req: Request) -> Response {
        Router::new()
            .post("/send", send)
            .get("/status/{id}", status)
            .get("/notes/{key}", note)
            .handle(req)
    }
}

weft_sdk::plugin!(Notifier);
