//! `assistant`: uses the LLM gateway (`weft:platform@0.3.0`).
//!
//! - `POST /ask` `{"text", "task"?, "model"?, "max_tokens"?, "image"?: bool}`:
//!   completes, then stores the answer under `last` (a write after the
//!   model call), and answers with the completion.
//! - `POST /estimate` (same body): the estimate.
//! - `POST /embed` `{"texts": [..]}`: the embeddings.
//! - `POST /write-then-ask`: writes first, then asks (refused by the host).
//! - `POST /question` `{"text"}`: publishes `assistant.question`; its
//!   handler asks the model and stores `answers/<event id>`, so the
//!   handler's model call runs outside any write.
//! - `GET /answers`: `{"answers": {event id: text}}`.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use weft_sdk::llm::{self, Ask};
use weft_sdk::{Event, HandlerError, Plugin, Request, Response, Router, events, kv};

struct Assistant;

#[derive(Deserialize)]
struct AskBody {
    text: String,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// Send a one-pixel PNG with the text.
    #[serde(default)]
    image: bool,
}

/// A 1×1 PNG.
const PIXEL: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
];

fn ask_of(body: &AskBody) -> Ask {
    let mut ask = Ask::new(body.task.as_deref().unwrap_or("chat"));
    if let Some(model) = &body.model {
        ask = ask.model(model);
    }
    if let Some(n) = body.max_tokens {
        ask = ask.max_tokens(n);
    }
    if body.image {
        ask.user_image("image/png", PIXEL.to_vec(), &body.text)
    } else {
        ask.user(&body.text)
    }
}

fn completion_json(c: &llm::Completion) -> Value {
    json!({
        "id": c.id,
        "model": c.model,
        "provider": c.provider,
        "text": c.text,
        "input_tokens": c.usage.input_tokens,
        "output_tokens": c.usage.output_tokens,
        "cost": c.cost,
        "balance": c.balance,
        "attempts": c.attempts.iter().map(|a| json!({
            "model": a.model, "outcome": a.outcome, "status": a.status,
        })).collect::<Vec<_>>(),
    })
}

fn ask(req: &Request) -> weft_sdk::Result {
    let body: AskBody = req.json()?;
    let answer = ask_of(&body).complete()?;
    kv::set("last", answer.text.as_bytes())?;
    Ok(Response::json(200, &completion_json(&answer)))
}

fn estimate(req: &Request) -> weft_sdk::Result {
    let body: AskBody = req.json()?;
    let e = ask_of(&body).estimate()?;
    Ok(Response::json(
        200,
        &json!({"models": e.models, "estimate": e.estimate, "balance": e.balance, "plan": e.plan}),
    ))
}

fn embed(req: &Request) -> weft_sdk::Result {
    #[derive(Deserialize)]
    struct Body {
        texts: Vec<String>,
    }
    let body: Body = req.json()?;
    let e = llm::embed(&body.texts, None)?;
    Ok(Response::json(
        200,
        &json!({"model": e.model, "dims": e.vectors.first().map(Vec::len), "count": e.vectors.len(), "cost": e.cost}),
    ))
}

fn write_then_ask(_req: &Request) -> weft_sdk::Result {
    kv::set("before", b"x")?;
    let answer = Ask::new("chat").user("hello").complete()?;
    Ok(Response::text(200, answer.text))
}

fn question(req: &Request) -> weft_sdk::Result {
    let body: Value = req.json()?;
    let id = events::publish_json("assistant.question", &body)?;
    Ok(Response::json(202, &json!({ "event": id })))
}

fn answers(_req: &Request) -> weft_sdk::Result {
    let page = kv::list_prefix("answers/", None, 1000)?;
    let mut out = Map::new();
    for entry in page.entries {
        out.insert(
            entry.key["answers/".len()..].to_owned(),
            json!(String::from_utf8_lossy(&entry.value)),
        );
    }
    Ok(Response::json(200, &json!({ "answers": out })))
}

impl Plugin for Assistant {
    fn handle(req: Request) -> Response {
        Router::new()
            .post("/ask", ask)
            .post("/estimate", estimate)
            .post("/embed", embed)
            .post("/write-then-ask", write_then_ask)
            .post("/question", question)
            .get("/answers", answers)
            .handle(req)
    }

    fn on_event(event: Event) -> Result<(), HandlerError> {
        let payload: Map<String, Value> = event.payload_as().unwrap_or_default();
        let text = payload.get("text").and_then(Value::as_str).unwrap_or("?");
        let answer = Ask::new("chat")
            .user(text)
            .complete()
            .map_err(|e| HandlerError::Retry(format!("{e:?}")))?;
        kv::set(&format!("answers/{}", event.id), answer.text.as_bytes())
            .map_err(|e| HandlerError::Retry(format!("{e:?}")))
    }
}

weft_sdk::plugin!(Assistant);
