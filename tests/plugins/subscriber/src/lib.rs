//! `subscriber`: handles `test.ping` and the forum's events, and the `tick`
//! schedule.
//!
//! Every handled event increments `applied/<event id>`, `topics/<topic>` and
//! `total` in kv; the payload's `mode` picks a failure first (the forum's
//! `forum.post_created` always gets `fail_first`):
//! - `ok` (default): apply.
//! - `fail_first`: apply, then ask for a retry on attempt 1 (the writes
//!   roll back), apply for good on attempt 2.
//! - `trap_first`: apply, then panic on attempt 1.
//! - `always_retry`: apply, then ask for a retry, every time (dead-lettered).
//! - `reject`: refuse at once (dead-lettered without retries).
//!
//! Every schedule run increments `runs/<schedule>/<due_at>`.
//!
//! - `GET /applied`: `{"total": n, "entries": {id: count}}`.
//! - `GET /topics`: `{"total": n, "entries": {topic: count}}`.
//! - `GET /runs`: `{"total": n, "entries": {"tick/<due_at>": count}}`.

use serde_json::{Map, Value, json};
use weft_sdk::{Event, HandlerError, Plugin, Request, Response, Router, ScheduleRun, kv};

struct Subscriber;

impl Plugin for Subscriber {
    fn handle(req: Request) -> Response {
        Router::new()
            .get("/applied", |_| counts("applied/"))
            .get("/topics", |_| counts("topics/"))
            .get("/runs", |_| counts("runs/"))
            .handle(req)
    }

    fn on_event(event: Event) -> Result<(), HandlerError> {
        let payload: Map<String, Value> = event.payload_as().unwrap_or_default();
        let mode = match event.topic.as_str() {
            "forum.post_created" => "fail_first",
            _ => payload.get("mode").and_then(Value::as_str).unwrap_or("ok"),
        };
        if mode == "reject" {
            return Err(HandlerError::Reject("this event is refused".into()));
        }
        let key = format!("applied/{}", event.id);
        kv::increment(&key, 1).map_err(retry)?;
        kv::increment(&format!("topics/{}", event.topic), 1).map_err(retry)?;
        kv::increment("total", 1).map_err(retry)?;
        match (mode, event.attempt) {
            ("fail_first", 1) => Err(HandlerError::Retry("failing the first attempt".into())),
            ("trap_first", 1) => panic!("trapping on the first attempt"),
            ("always_retry", _) => Err(HandlerError::Retry("never succeeds".into())),
            _ => Ok(()),
        }
    }

    fn on_schedule(run: ScheduleRun) -> Result<(), HandlerError> {
        let key = format!("runs/{}/{}", run.schedule, run.due_at);
        kv::increment(&key, 1).map_err(retry)?;
        Ok(())
    }
}

weft_sdk::plugin!(Subscriber);

fn retry(e: kv::Error) -> HandlerError {
    HandlerError::Retry(format!("kv: {e:?}"))
}

fn counts(prefix: &str) -> Response {
    let mut out = Map::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match kv::list_prefix(prefix, cursor.as_deref(), 1000) {
            Ok(page) => page,
            Err(e) => return e.into(),
        };
        for entry in page.entries {
            let n: i64 = String::from_utf8_lossy(&entry.value).parse().unwrap_or(-1);
            out.insert(entry.key[prefix.len()..].to_owned(), json!(n));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let total = kv::get_i64("total").ok().flatten().unwrap_or(0);
    Response::json(200, &json!({ "total": total, "entries": out }))
}
