//! The events the forum publishes for the tenant's other plugins, and the
//! ones it sends itself to split long work into calls of bounded size.
//!
//! Every payload names the category's read level (`read`), so a subscriber
//! that tells people about a post (a mailer, a chat bridge) can keep
//! moderator-only categories to moderators. Events are published in the
//! call's unit of work: they exist only if the forum's own writes commit.

use serde_json::json;
use weft_sdk::events;

use crate::categories::ReadLevel;
use crate::http::Result;
use crate::markdown;
use crate::moderation::Flag;
use crate::posts::Post;
use crate::topics::Topic;

/// A topic was started (its opening post follows as `forum.post_created`).
pub const TOPIC_CREATED: &str = "forum.topic_created";
/// A post was written: an opening post or a reply.
pub const POST_CREATED: &str = "forum.post_created";
/// A member flagged a post for the moderators.
pub const POST_FLAGGED: &str = "forum.post_flagged";
/// A daily digest of top topics is ready.
pub const DIGEST_READY: &str = "forum.digest_ready";
/// The forum's own: index the next batch of posts (see
/// [`search_index::reindex_batch`](crate::search_index::reindex_batch)).
pub const REINDEX: &str = "forum.reindex";

/// How much of a post's text the events carry.
const EXCERPT_CHARS: usize = 300;

fn read_name(read: ReadLevel) -> &'static str {
    match read {
        ReadLevel::Public => "public",
        ReadLevel::Users => "users",
        ReadLevel::Moderators => "moderators",
    }
}

/// `forum.topic_created`.
pub fn topic_created(topic: &Topic, read: ReadLevel) -> Result<()> {
    events::publish_json(
        TOPIC_CREATED,
        &json!({
            "topic_id": topic.id,
            "title": topic.title,
            "category": topic.category,
            "read": read_name(read),
            "tags": topic.tags,
            "author": topic.author,
            "created_at": topic.created_at,
        }),
    )?;
    Ok(())
}

/// `forum.post_created`.
pub fn post_created(post: &Post, topic: &Topic, read: ReadLevel) -> Result<()> {
    events::publish_json(
        POST_CREATED,
        &json!({
            "post_id": post.id,
            "topic_id": topic.id,
            "topic_title": topic.title,
            "number": post.number,
            "reply_to": post.reply_to,
            "category": topic.category,
            "read": read_name(read),
            "author": post.author,
            "excerpt": markdown::excerpt(&post.raw, EXCERPT_CHARS),
            "created_at": post.created_at,
        }),
    )?;
    Ok(())
}

/// `forum.post_flagged`.
pub fn post_flagged(flag: &Flag, hidden: bool) -> Result<()> {
    events::publish_json(
        POST_FLAGGED,
        &json!({
            "flag_id": flag.id,
            "post_id": flag.post_id,
            "topic_id": flag.topic_id,
            "reason": flag.reason,
            "note": flag.note,
            "flagged_by": flag.flagged_by,
            "post_hidden": hidden,
            "at": flag.at,
        }),
    )?;
    Ok(())
}

/// `forum.digest_ready`.
pub fn digest_ready(date: &str, topics: usize) -> Result<()> {
    events::publish_json(DIGEST_READY, &json!({ "date": date, "topics": topics }))?;
    Ok(())
}

/// `forum.reindex` for a full reindex: the posts after id `after` (`None`:
/// from the start) in run `generation`.
pub fn reindex_all(after: Option<&str>, generation: &str) -> Result<()> {
    events::publish_json(
        REINDEX,
        &json!({ "scope": "all", "after": after, "generation": generation }),
    )?;
    Ok(())
}

/// `forum.reindex` for the posts of `topic` after number `after`.
pub fn reindex_topic(topic: &str, after: u32) -> Result<()> {
    events::publish_json(
        REINDEX,
        &json!({ "scope": "topic", "topic": topic, "after": after }),
    )?;
    Ok(())
}
