//! `forum`: a small Discourse for each tenant — categories with read and
//! post permissions, topics with Markdown posts rendered to sanitized HTML,
//! replies with quotes, reactions, edits with revisions, soft deletion,
//! flags and a moderation queue, bans, trust levels, unread tracking,
//! full-text search and a daily digest of top topics.
//!
//! Each route's handler is in the module of its area; `README.md` lists the
//! routes with example calls. The forum publishes `forum.topic_created`,
//! `forum.post_created`, `forum.post_flagged` and `forum.digest_ready` for
//! the tenant's other plugins (see [`events`]).

mod categories;
mod digest;
mod events;
mod http;
mod ids;
mod markdown;
mod members;
mod moderation;
mod posts;
mod reactions;
mod search_index;
mod settings;
mod store;
mod topic_index;
mod topics;
mod unread;

use weft_sdk::{Event, HandlerError, Plugin, Request, Response, Router, ScheduleRun, log};

use topics::Switch;

struct Forum;

impl Plugin for Forum {
    fn handle(req: Request) -> Response {
        router().handle(req)
    }

    fn on_event(event: Event) -> Result<(), HandlerError> {
        match event.topic.as_str() {
            events::REINDEX => match event.payload_as::<search_index::Reindex>() {
                Ok(request) => search_index::on_reindex(request),
                Err(e) => Err(HandlerError::Reject(format!("bad reindex payload: {e}"))),
            },
            other => {
                log::warn(&format!("ignoring an event on topic {other:?}"));
                Ok(())
            }
        }
    }

    fn on_schedule(run: ScheduleRun) -> Result<(), HandlerError> {
        match run.schedule.as_str() {
            digest::SCHEDULE => digest::on_schedule(run.due_at),
            other => Err(HandlerError::Reject(format!("no schedule {other:?}"))),
        }
    }
}

weft_sdk::plugin!(Forum);

fn router() -> Router {
    Router::new()
        // Categories.
        .get("/categories", categories::list)
        .post("/categories", categories::create)
        .get("/categories/{id}", categories::get)
        .patch("/categories/{id}", categories::patch)
        .delete("/categories/{id}", categories::delete)
        .get("/categories/{id}/topics", topics::list_in_category)
        // Topics.
        .get("/topics", topics::list)
        .post("/topics", topics::create)
        .get("/topics/{id}", topics::get)
        .patch("/topics/{id}", topics::patch)
        .post("/topics/{id}/posts", posts::create)
        .post("/topics/{id}/read", unread::read)
        .post("/topics/{id}/pin", |r: &Request| {
            topics::switch(r, Switch::Pin)
        })
        .post("/topics/{id}/unpin", |r: &Request| {
            topics::switch(r, Switch::Unpin)
        })
        .post("/topics/{id}/lock", |r: &Request| {
            topics::switch(r, Switch::Lock)
        })
        .post("/topics/{id}/unlock", |r: &Request| {
            topics::switch(r, Switch::Unlock)
        })
        .post("/topics/{id}/close", |r: &Request| {
            topics::switch(r, Switch::Close)
        })
        .post("/topics/{id}/open", |r: &Request| {
            topics::switch(r, Switch::Open)
        })
        .get("/unread", unread::list)
        // Posts.
        .get("/posts/{id}", posts::get)
        .patch("/posts/{id}", posts::patch)
        .delete("/posts/{id}", posts::delete)
        .get("/posts/{id}/revisions", posts::revisions)
        .post("/posts/{id}/recover", posts::recover)
        .put("/posts/{id}/reaction", reactions::set)
        .delete("/posts/{id}/reaction", reactions::remove)
        .post("/posts/{id}/flags", moderation::flag)
        // Moderation.
        .get("/moderation/queue", moderation::queue)
        .post("/moderation/posts/{id}/hide", moderation::hide)
        .post("/moderation/posts/{id}/approve", moderation::approve)
        .get("/moderation/bans", moderation::bans)
        .post("/moderation/bans", moderation::ban)
        .delete("/moderation/bans/{user_id}", moderation::unban)
        // Members.
        .get("/me", members::me)
        .get("/users/{id}", members::user)
        .get("/moderators", members::list_moderators)
        .put("/moderators/{user_id}", members::appoint)
        .delete("/moderators/{user_id}", members::dismiss)
        // Search and digests.
        .get("/search", search_index::query)
        .get("/digests", digest::list)
        .get("/digests/{date}", digest::get)
        .get("/admin/reindex", search_index::status)
        .post("/admin/reindex", search_index::start)
}
