//! `messaging`: templated messages for each tenant, sent through the
//! platform's outbox on every channel a recipient allows.
//!
//! - templates with variables, conditionals, loops and locale variants
//!   ([`templates`]), rendered strictly (a missing variable is named);
//! - contacts with channel preferences and quiet hours ([`channels`]);
//! - `POST /send`: one outbox message per allowed channel, keys derived
//!   from the request ([`fanout`] plans, [`send`] writes);
//! - signed unsubscribe links, one-click (RFC 8058), honoured on every
//!   later send ([`unsubscribe`], [`tokens`]);
//! - lists with double opt-in and CSV import/export ([`lists`]), batch
//!   sends in chunks chained by events ([`batches`]);
//! - scheduled and quiet-hours-deferred sends released by a schedule;
//! - rules turning other plugins' events into messages to watchers
//!   ([`rules`]), and a delivery log ([`delivery_log`]).
//!
//! `README.md` lists every route with examples.

mod batches;
mod channels;
mod contacts;
mod csvio;
mod delivery_log;
mod fanout;
mod http;
mod lists;
mod rules;
mod send;
mod store;
mod template_routes;
mod templates;
mod text;
mod tokens;
mod unsubscribe;

use weft_sdk::{Event, HandlerError, Plugin, Request, Response, Router, ScheduleRun, log};

struct Messaging;

/// The schedule that releases waiting sends.
const RELEASE: &str = "release";
/// Waiting sends released per run (the rest go in the next minute).
const RELEASE_PER_RUN: u32 = 200;

impl Plugin for Messaging {
    fn handle(req: Request) -> Response {
        router().handle(req)
    }

    fn on_event(event: Event) -> Result<(), HandlerError> {
        if event.topic == batches::TOPIC {
            return batches::on_chunk(&event.payload);
        }
        rules::on_event(&event)
    }

    fn on_schedule(run: ScheduleRun) -> Result<(), HandlerError> {
        match run.schedule.as_str() {
            RELEASE => release(run.due_at),
            other => Err(HandlerError::Reject(format!("no schedule {other:?}"))),
        }
    }
}

weft_sdk::plugin!(Messaging);

fn retry(r: Response) -> HandlerError {
    HandlerError::Retry(format!(
        "{}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    ))
}

/// Sends whose time has come (`due_at`, the scheduler's clock, is "now"),
/// and stalled batches nudged.
fn release(due_at: i64) -> Result<(), HandlerError> {
    let due = store::due(due_at, RELEASE_PER_RUN).map_err(retry)?;
    if !due.is_empty() {
        let settings = send::Settings::load().map_err(retry)?;
        for (id, waiting) in due {
            match send::run_stored(&waiting.job, &settings, due_at).map_err(retry)? {
                Some(r) if r.throttled() => {
                    return Err(HandlerError::Retry(
                        "the outbox is rate limiting this tenant".into(),
                    ));
                }
                _ => store::unschedule(&id).map_err(retry)?,
            }
        }
    }
    let nudged = batches::resume_stalled(due_at).map_err(retry)?;
    if nudged > 0 {
        log::warn(&format!("{nudged} stalled batches resumed"));
    }
    Ok(())
}

fn router() -> Router {
    Router::new()
        .get("/templates", template_routes::list)
        .get("/templates/{name}", template_routes::get)
        .put("/templates/{name}", template_routes::put)
        .delete("/templates/{name}", template_routes::delete)
        .post("/preview", template_routes::preview)
        .post("/send", template_routes::send)
        .get("/me/contact", contacts::get_mine)
        .put("/me/contact", contacts::put_mine)
        .get("/contacts/{user_id}", contacts::get_any)
        .put("/contacts/{user_id}", contacts::put_any)
        .get("/u/{token}", unsubscribe::page_get)
        .post("/u/{token}", unsubscribe::post)
        .get("/confirm/{token}", lists::confirm)
        .get("/suppressions", unsubscribe::list)
        .get("/lists", lists::list_all)
        .post("/lists", lists::create)
        .get("/lists/{id}", lists::get)
        .delete("/lists/{id}", lists::delete)
        .get("/lists/{id}/subscribers", lists::subscribers)
        .post("/lists/{id}/subscribers", lists::subscribe)
        .post("/lists/{id}/unsubscribe", lists::admin_unsubscribe)
        .post("/lists/{id}/import", lists::import)
        .get("/lists/{id}/export", lists::export)
        .post("/lists/{id}/sends", batches::create)
        .get("/batches", batches::list)
        .get("/batches/{id}", batches::get)
        .get("/rules", rules::list)
        .put("/rules/{id}", rules::put)
        .delete("/rules/{id}", rules::delete)
        .get("/watches", contacts::my_watches)
        .put("/watches/{key}", contacts::watch)
        .delete("/watches/{key}", contacts::unwatch)
        .get("/watchers/{key}", contacts::list_watchers)
        .get("/log", delivery_log::search)
}
