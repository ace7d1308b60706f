//! `publisher`: publishes events for the host's tests and benchmark.
//!
//! - `POST /publish {"topic", "count", "payload"}`: publishes `count` events
//!   (default 1) on `topic`, each `payload` plus `"n": i`; answers their ids.
//! - `POST /publish-then-trap`: publishes, then panics: the call rolls back
//!   and the event must never be delivered.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use weft_sdk::{Plugin, Request, Response, Router, events};

struct Publisher;

impl Plugin for Publisher {
    fn handle(req: Request) -> Response {
        Router::new()
            .post("/publish", publish)
            .post("/publish-then-trap", publish_then_trap)
            .handle(req)
    }
}

weft_sdk::plugin!(Publisher);

#[derive(Deserialize)]
struct Publish {
    topic: String,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    payload: Map<String, Value>,
}

fn one() -> u32 {
    1
}

fn publish(req: &Request) -> weft_sdk::Result {
    let body: Publish = req.json()?;
    let mut ids = Vec::with_capacity(body.count as usize);
    for n in 0..body.count {
        let mut payload = body.payload.clone();
        payload.insert("n".into(), json!(n));
        ids.push(events::publish_json(&body.topic, &payload)?);
    }
    Ok(Response::json(201, &json!({ "ids": ids })))
}

fn publish_then_trap(req: &Request) -> weft_sdk::Result {
    let body: Publish = req.json()?;
    events::publish_json(&body.topic, &body.payload)?;
    panic!("trapping after publishing, on purpose");
}
