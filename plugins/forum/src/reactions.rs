//! Reactions: each member has at most one reaction per post.
//!
//! The member's reaction lives in kv under `rx:{user}:{post}` (so the
//! reactions of one member in one topic are one key range); the post keeps
//! the counts per reaction, changed in the same call, so they are exact.

use std::collections::HashMap;

use weft_sdk::{Request, Response, kv};

use crate::http::{Body, Result, conflict, invalid, not_found};
use crate::ids::{parse_post_id, user_key};
use crate::members::{self, Viewer};
use crate::posts::{self, Post, PostView};
use crate::store::{self, collections::POSTS};

/// The reactions a member may give.
pub const REACTIONS: [&str; 6] = ["like", "heart", "laugh", "wow", "sad", "thanks"];

fn key(user_id: &str, post: &str) -> String {
    format!("rx:{}:{post}", user_key(user_id))
}

/// `viewer`'s reaction to `post`, if any.
pub fn mine(viewer: &Viewer, post: &str) -> Result<Option<String>> {
    let Some(user) = &viewer.principal else {
        return Ok(None);
    };
    Ok(kv::get(&key(&user.id, post))?.and_then(|v| String::from_utf8(v).ok()))
}

/// `viewer`'s reactions in `topic`, by post number (one kv call).
pub fn mine_in_topic(viewer: &Viewer, topic: &str) -> Result<HashMap<u32, String>> {
    let mut out = HashMap::new();
    let Some(user) = &viewer.principal else {
        return Ok(out);
    };
    let prefix = key(&user.id, &format!("{topic}."));
    let page = kv::list_prefix(&prefix, None, 1000)?;
    for entry in page.entries {
        let post = &entry.key[prefix.len() - topic.len() - 1..];
        if let (Some((_, number)), Ok(reaction)) =
            (parse_post_id(post), String::from_utf8(entry.value))
        {
            out.insert(number, reaction);
        }
    }
    Ok(out)
}

/// Moves one count from `from` to `to` (either may be none).
pub fn recount(
    counts: &mut std::collections::BTreeMap<String, u32>,
    from: Option<&str>,
    to: Option<&str>,
) {
    if let Some(from) = from
        && let Some(n) = counts.get_mut(from)
    {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(from);
        }
    }
    if let Some(to) = to {
        *counts.entry(to.to_owned()).or_insert(0) += 1;
    }
}

/// `PUT /posts/{id}/reaction {"reaction": "heart"}`: sets the caller's
/// reaction, replacing an earlier one.
pub fn set(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.writer()?;
    let body = Body::parse(req)?;
    let reaction = body.str("reaction")?;
    if !REACTIONS.contains(&reaction) {
        return Err(invalid(
            "reaction",
            &format!("must be one of {}", REACTIONS.join(", ")),
        ));
    }
    change(req, &viewer, Some(reaction))
}

/// `DELETE /posts/{id}/reaction`: removes the caller's reaction.
pub fn remove(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.writer()?;
    change(req, &viewer, None)
}

fn change(req: &Request, viewer: &Viewer, to: Option<&str>) -> Result {
    let user = viewer.user()?;
    let (post, _, _) = posts::load(viewer, req.param("id").unwrap_or_default())?;
    if post.value.deleted {
        return Err(conflict("post_deleted", "the post is deleted"));
    }
    if post.value.author.id == user.id {
        return Err(invalid("reaction", "cannot be given to your own post"));
    }
    let key = key(&user.id, &post.value.id);
    let from = kv::get(&key)?.and_then(|v| String::from_utf8(v).ok());
    if from.as_deref() == to {
        return respond(&post.value, viewer, to);
    }

    let id = post.value.id.clone();
    let (_, new) = store::modify(POSTS, &id, Some(post), |p| {
        let mut post: Post = p.cloned().ok_or_else(|| not_found("post"))?;
        recount(&mut post.reactions, from.as_deref(), to);
        Ok(post)
    })?;
    let post = new.value;
    match to {
        Some(to) => kv::set(&key, to)?,
        None => {
            kv::delete(&key)?;
        }
    }
    let delta = match (&from, to) {
        (None, Some(_)) => 1,
        (Some(_), None) => -1,
        _ => 0,
    };
    if delta != 0 {
        members::update(&post.author, None, |m| {
            m.reactions_received = (m.reactions_received + delta).max(0);
        })?;
    }
    if delta > 0 {
        crate::digest::record_reaction(&post)?;
    }
    respond(&post, viewer, to)
}

/// The post with its counts and the caller's reaction (`my_reaction`).
fn respond(post: &Post, viewer: &Viewer, mine: Option<&str>) -> Result {
    Ok(Response::json(200, &PostView::new(post, viewer, mine)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn counts_move_exactly() {
        let mut counts = BTreeMap::new();
        recount(&mut counts, None, Some("heart"));
        recount(&mut counts, None, Some("heart"));
        recount(&mut counts, Some("heart"), Some("like"));
        assert_eq!(counts.get("heart"), Some(&1));
        assert_eq!(counts.get("like"), Some(&1));
        recount(&mut counts, Some("heart"), None);
        assert_eq!(counts.get("heart"), None);
        recount(&mut counts, Some("wow"), None);
        assert_eq!(counts.len(), 1);
    }

    #[test]
    fn keys_group_by_member_and_topic() {
        let k = key("u1", "01topic.000003");
        assert_eq!(k, "rx:u1:01topic.000003");
        assert!(k.starts_with(&key("u1", "01topic.")));
    }
}
