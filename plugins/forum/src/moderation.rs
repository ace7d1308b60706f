//! Moderation: flags (docs `flags`), the queue of flagged posts (docs
//! `queue`, one document per post with pending flags), hiding and
//! approving posts, and bans (on the member record).
//!
//! Every `/moderation/...` route answers `403 forbidden` to a caller who
//! does not moderate, before it reads anything else of the request.

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::{self, Query};
use weft_sdk::{Request, Response};

use crate::http::{self, Body, Result, conflict, invalid, not_found};
use crate::ids::{check_user_id, flag_id, now_ms, user_key};
use crate::members::{self, Author, Member, Viewer};
use crate::posts::{self, Post, PostView};
use crate::settings;
use crate::store::{
    self, Versioned,
    collections::{FLAGS, MEMBERS, POSTS, QUEUE},
};
use crate::{events, search_index};

/// Why a post is flagged.
pub const REASONS: [&str; 4] = ["spam", "offensive", "off_topic", "other"];
const MAX_NOTE: usize = 1000;
const MAX_BAN_REASON: usize = 500;

/// Where a flag stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagStatus {
    /// Waiting for a moderator.
    Pending,
    /// A moderator hid the post.
    Agreed,
    /// A moderator approved the post.
    Dismissed,
}

/// A flag as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flag {
    pub id: String,
    pub post_id: String,
    pub topic_id: String,
    pub reason: String,
    #[serde(default)]
    pub note: Option<String>,
    pub flagged_by: Author,
    pub at: i64,
    pub status: FlagStatus,
}

/// A post waiting for a moderator, with its pending flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntry {
    pub post_id: String,
    pub topic_id: String,
    pub first_at: i64,
    pub flags: Vec<Flag>,
}

/// True once a post's pending flags should hide it.
pub fn should_hide(pending: usize, flags_to_hide: i64) -> bool {
    flags_to_hide > 0 && pending as i64 >= flags_to_hide
}

/// `POST /posts/{id}/flags {reason, note?}`: one flag per member and post;
/// enough of them hide the post until a moderator decides.
pub fn flag(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let by = Author::from(viewer.writer()?);
    let s = settings::get()?;
    let body = Body::parse(req)?;
    let reason = body.str("reason")?;
    if !REASONS.contains(&reason) {
        return Err(invalid(
            "reason",
            &format!("must be one of {}", REASONS.join(", ")),
        ));
    }
    let note = body
        .opt_str("note")?
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(invalid("note", "must be at most 1000 characters"));
    }
    let (post, _, _) = posts::load(&viewer, req.param("id").unwrap_or_default())?;
    if post.value.deleted {
        return Err(conflict("post_deleted", "the post is deleted"));
    }
    let id = flag_id(&post.value.id, &user_key(&by.id));
    let already = || conflict("already_flagged", "you have flagged this post already");
    if docs::get(FLAGS, &id)?.is_some() {
        return Err(already());
    }

    let flag = Flag {
        id: id.clone(),
        post_id: post.value.id.clone(),
        topic_id: post.value.topic.clone(),
        reason: reason.to_owned(),
        note: note.map(str::to_owned),
        flagged_by: by.clone(),
        at: now_ms(),
        status: FlagStatus::Pending,
    };
    if !store::insert(FLAGS, &id, &flag)? {
        return Err(already());
    }
    let queued = store::get::<QueueEntry>(QUEUE, &flag.post_id)?;
    let (_, entry) = store::modify(QUEUE, &flag.post_id, queued, |e| {
        let mut entry = e.cloned().unwrap_or_else(|| QueueEntry {
            post_id: flag.post_id.clone(),
            topic_id: flag.topic_id.clone(),
            first_at: flag.at,
            flags: Vec::new(),
        });
        entry.flags.push(flag.clone());
        Ok(entry)
    })?;
    let mut post = post;
    if should_hide(entry.value.flags.len(), s.flags_to_hide) && !post.value.hidden {
        post = set_hidden(post, true, None)?;
    }
    members::update(&post.value.author, None, |m| m.flags_against += 1)?;
    events::post_flagged(&flag, post.value.hidden)?;
    Ok(Response::json(
        201,
        &json!({ "flag": flag, "post_hidden": post.value.hidden }),
    ))
}

/// Hides or shows a post and takes it out of or back into search.
fn set_hidden(post: Versioned<Post>, hidden: bool, by: Option<Author>) -> Result<Versioned<Post>> {
    let id = post.value.id.clone();
    let (_, new) = store::modify(POSTS, &id, Some(post), |p| {
        let mut post = p.cloned().ok_or_else(|| not_found("post"))?;
        post.hidden = hidden;
        post.hidden_by = if hidden { by.clone() } else { None };
        Ok(post)
    })?;
    if hidden {
        search_index::remove_post(&id)?;
    } else {
        search_index::reindex_post(&new.value)?;
    }
    Ok(new)
}

/// `GET /moderation/queue`: posts with pending flags, oldest flag first.
pub fn queue(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_moderator()?;
    let cursor = http::cursor(req);
    let q = Query::new()
        .order_by("first_at", false)
        .limit(http::page_limit(req, settings::get()?.page_size)?)
        .cursor(cursor.as_deref());
    let (entries, next) = store::query::<QueueEntry>(QUEUE, &q, cursor.is_some())?;
    let mut items = Vec::with_capacity(entries.len());
    for (_, entry) in entries {
        let post = store::get::<Post>(POSTS, &entry.post_id)?.map(|p| p.value);
        items.push(json!({
            "post": post.as_ref().map(|p| PostView::new(p, &viewer, None)),
            "pending": entry.flags.len(),
            "flags": entry.flags,
        }));
    }
    Ok(Response::json(
        200,
        &json!({ "items": items, "next_cursor": next }),
    ))
}

/// `POST /moderation/posts/{id}/hide`: hides the post; its pending flags
/// are agreed with.
pub fn hide(req: &Request) -> Result {
    decide(req, true)
}

/// `POST /moderation/posts/{id}/approve`: shows the post; its pending
/// flags are dismissed.
pub fn approve(req: &Request) -> Result {
    decide(req, false)
}

fn decide(req: &Request, hide: bool) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_moderator()?;
    let moderator = viewer.author();
    let (post, _, _) = posts::load(&viewer, req.param("id").unwrap_or_default())?;
    let post = if post.value.hidden == hide {
        post
    } else {
        set_hidden(post, hide, moderator)?
    };
    if let Some(entry) = store::get::<QueueEntry>(QUEUE, &post.value.id)? {
        let status = if hide {
            FlagStatus::Agreed
        } else {
            FlagStatus::Dismissed
        };
        for mut flag in entry.value.flags {
            flag.status = status;
            store::put(FLAGS, &flag.id.clone(), &flag)?;
        }
        docs::delete(QUEUE, &post.value.id)?;
    }
    Ok(Response::json(
        200,
        &PostView::new(&post.value, &viewer, None),
    ))
}

/// A ban as shown.
#[derive(Debug, Serialize)]
struct BanView<'a> {
    user_id: &'a str,
    name: &'a str,
    reason: Option<&'a str>,
    banned_by: Option<&'a Author>,
    banned_at: Option<i64>,
}

impl<'a> BanView<'a> {
    fn new(m: &'a Member) -> Self {
        Self {
            user_id: &m.user_id,
            name: &m.name,
            reason: m.ban_reason.as_deref(),
            banned_by: m.banned_by.as_ref(),
            banned_at: m.banned_at,
        }
    }
}

/// `POST /moderation/bans {user_id, reason, name?}`: bans a member from
/// every write; `201` (or `200` if they were banned already: the reason
/// is replaced).
pub fn ban(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_moderator()?;
    let body = Body::parse(req)?;
    let user_id = body.str("user_id")?;
    check_user_id(user_id).map_err(|why| invalid("user_id", &why))?;
    if viewer.is(user_id) {
        return Err(invalid("user_id", "cannot be yourself"));
    }
    let reason = body.str("reason")?.trim();
    match reason.chars().count() {
        0 => return Err(invalid("reason", "must not be empty")),
        n if n > MAX_BAN_REASON => {
            return Err(invalid("reason", "must be at most 500 characters"));
        }
        _ => {}
    }
    let name = body
        .opt_str("name")?
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let known = store::get::<Member>(MEMBERS, &user_key(user_id))?;
    let was_banned = known.as_ref().is_some_and(|m| m.value.banned);
    let target = Author {
        id: user_id.to_owned(),
        name: name
            .map(str::to_owned)
            .or_else(|| known.as_ref().map(|m| m.value.name.clone()))
            .unwrap_or_else(|| user_id.to_owned()),
    };
    let moderator = viewer.author();
    let now = now_ms();
    let member = members::update(&target, known, |m| {
        m.banned = true;
        m.ban_reason = Some(reason.to_owned());
        m.banned_by.clone_from(&moderator);
        m.banned_at = Some(now);
        if let Some(name) = name {
            m.name = name.to_owned();
        }
    })?;
    let status = if was_banned { 200 } else { 201 };
    Ok(Response::json(status, &BanView::new(&member)))
}

/// `DELETE /moderation/bans/{user_id}`: lifts a ban.
pub fn unban(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_moderator()?;
    let user_id = req.param("user_id").unwrap_or_default();
    let known = store::get::<Member>(MEMBERS, &user_key(user_id))?
        .filter(|m| m.value.banned)
        .ok_or_else(|| not_found("ban"))?;
    let target = Author {
        id: user_id.to_owned(),
        name: known.value.name.clone(),
    };
    members::update(&target, Some(known), |m| {
        m.banned = false;
        m.ban_reason = None;
        m.banned_by = None;
        m.banned_at = None;
    })?;
    Ok(Response::json(
        200,
        &json!({ "user_id": user_id, "banned": false }),
    ))
}

/// `GET /moderation/bans`: banned members.
pub fn bans(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_moderator()?;
    let (members, next) = members::page_where(req, "banned")?;
    let bans: Vec<BanView> = members.iter().map(|(_, m)| BanView::new(m)).collect();
    Ok(Response::json(
        200,
        &json!({ "bans": bans, "next_cursor": next }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiding_threshold() {
        assert!(!should_hide(2, 3));
        assert!(should_hide(3, 3));
        assert!(should_hide(4, 3));
        // 0 (or less) turns automatic hiding off.
        assert!(!should_hide(10, 0));
    }

    #[test]
    fn flags_serialize_in_snake_case() {
        let flag = Flag {
            id: "p.f.u".into(),
            post_id: "p".into(),
            topic_id: "t".into(),
            reason: "off_topic".into(),
            note: None,
            flagged_by: Author {
                id: "u".into(),
                name: "U".into(),
            },
            at: 1,
            status: FlagStatus::Pending,
        };
        let v = serde_json::to_value(&flag).unwrap_or_default();
        assert_eq!(v["status"], "pending");
        assert_eq!(v["reason"], "off_topic");
    }
}
