//! Posts (docs `posts`, by `{topic}.{number:06}`): replies, edits with
//! revisions (docs `revisions`), soft deletion and recovery.
//!
//! A post keeps its Markdown (`raw`) and the sanitized HTML made from it
//! (`html`). Deleted posts stay in place, blanked for everyone but
//! moderators; hidden posts (flagged or hidden by a moderator) are shown
//! only to moderators and their author.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::{Op, Query};
use weft_sdk::{Request, Response};

use crate::categories::{Category, PostLevel, ReadLevel};
use crate::http::{self, Body, Result, conflict, forbidden, internal, invalid, not_found};
use crate::ids::{self, MAX_POST_NUMBER, MAX_REVISION, now_ms, parse_post_id, post_id};
use crate::markdown::{self, Rendered};
use crate::members::{self, Author, Viewer};
use crate::settings::{self, Settings};
use crate::store::{
    self, Versioned,
    collections::{POSTS, REVISIONS},
};
use crate::topics::{self, Topic};
use crate::{categories, events, search_index, unread};

/// The text a reply quotes from an earlier post of its topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quote {
    /// The quoted post's number.
    pub number: u32,
    /// Its author's name when quoted.
    pub name: String,
    pub text: String,
}

/// A post as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Post {
    pub id: String,
    pub topic: String,
    pub number: u32,
    pub author: Author,
    pub raw: String,
    pub html: String,
    #[serde(default)]
    pub reply_to: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
    pub created_at: i64,
    #[serde(default)]
    pub edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<Author>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_reason: Option<String>,
    pub revision: u32,
    #[serde(default)]
    pub reactions: BTreeMap<String, u32>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<Author>,
    #[serde(default)]
    pub hidden: bool,
    /// Who hid it; `None` on a hidden post: its flags did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_by: Option<Author>,
}

/// A post body checked and rendered, ready to store.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub raw: String,
    pub rendered: Rendered,
}

/// Checks and renders the `body` a caller sent: not empty, at most
/// `max_post_length` characters, and no links or images below trust
/// level 1 (`422 trust_level_too_low`).
pub fn prepare_body(raw: &str, viewer: &Viewer, s: &Settings) -> Result<Prepared> {
    check_body_length(raw, s)?;
    let rendered = markdown::render(raw);
    if viewer.trust_level(s) < 1
        && let Some(what) = rendered.media.refused()
    {
        return Err(Response::error(
            422,
            "trust_level_too_low",
            &format!("body: members at trust level 0 cannot post {what}"),
        ));
    }
    Ok(Prepared {
        raw: raw.to_owned(),
        rendered,
    })
}

fn check_body_length(raw: &str, s: &Settings) -> Result<()> {
    if raw.trim().is_empty() {
        return Err(invalid("body", "must not be empty"));
    }
    if raw.chars().count() as i64 > s.max_post_length {
        return Err(invalid(
            "body",
            &format!("must be at most {} characters", s.max_post_length),
        ));
    }
    Ok(())
}

impl Post {
    /// Post `number` of `topic`, as first written.
    pub fn new(
        topic: &str,
        number: u32,
        author: Author,
        body: Prepared,
        reply_to: Option<u32>,
        quote: Option<Quote>,
        now: i64,
    ) -> Self {
        let html = compose_html(quote.as_ref(), &body.rendered.html);
        Self {
            id: post_id(topic, number),
            topic: topic.to_owned(),
            number,
            author,
            raw: body.raw,
            html,
            reply_to,
            quote,
            created_at: now,
            edited_at: None,
            edited_by: None,
            edit_reason: None,
            revision: 1,
            reactions: BTreeMap::new(),
            deleted: false,
            deleted_at: None,
            deleted_by: None,
            hidden: false,
            hidden_by: None,
        }
    }

    /// True if it belongs in search results.
    pub fn searchable(&self) -> bool {
        !self.deleted && !self.hidden
    }
}

/// The quote (if any) before the body.
fn compose_html(quote: Option<&Quote>, body_html: &str) -> String {
    match quote {
        Some(q) => markdown::quote_html(q.number, &q.name, &q.text) + body_html,
        None => body_html.to_owned(),
    }
}

/// A post as one caller sees it.
#[derive(Debug, Serialize)]
pub struct PostView<'a> {
    pub id: &'a str,
    pub topic: &'a str,
    pub number: u32,
    pub author: &'a Author,
    pub raw: &'a str,
    pub html: &'a str,
    pub reply_to: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote: Option<&'a Quote>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit_reason: Option<&'a str>,
    pub revision: u32,
    pub reactions: &'a BTreeMap<String, u32>,
    pub deleted: bool,
    pub hidden: bool,
    /// Signed-in callers: their reaction, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_reaction: Option<&'a str>,
}

impl<'a> PostView<'a> {
    /// `post` for `viewer`: deleted posts are blanked for all but
    /// moderators, hidden ones for all but moderators and the author.
    pub fn new(post: &'a Post, viewer: &Viewer, my_reaction: Option<&'a str>) -> Self {
        let blank =
            !viewer.moderator && (post.deleted || (post.hidden && !viewer.is(&post.author.id)));
        Self {
            id: &post.id,
            topic: &post.topic,
            number: post.number,
            author: &post.author,
            raw: if blank { "" } else { &post.raw },
            html: if blank { "" } else { &post.html },
            reply_to: post.reply_to,
            quote: if blank { None } else { post.quote.as_ref() },
            created_at: post.created_at,
            edited_at: post.edited_at,
            edit_reason: if blank {
                None
            } else {
                post.edit_reason.as_deref()
            },
            revision: post.revision,
            reactions: &post.reactions,
            deleted: post.deleted,
            hidden: post.hidden,
            my_reaction,
        }
    }
}

/// True if `viewer` may see `post` at all (hidden posts: moderators and the
/// author only).
pub fn visible(post: &Post, viewer: &Viewer) -> bool {
    !post.hidden || viewer.moderator || viewer.is(&post.author.id)
}

/// Writes a new post (its id must be free).
pub fn insert(post: &Post) -> Result<()> {
    if store::insert(POSTS, &post.id, post)? {
        Ok(())
    } else {
        Err(internal(&format!("post {} already exists", post.id)))
    }
}

/// Up to `limit` posts of `topic` after number `after`, in number order,
/// and the cursor of the rest.
pub fn page(topic: &str, after: u32, limit: u32) -> Result<(Vec<Post>, Option<String>)> {
    let (start, end) = ids::post_range(topic);
    let start = if after == 0 {
        start
    } else {
        post_id(topic, after)
    };
    let q = Query::new()
        .filter("id", Op::Gt, start)
        .filter("id", Op::Lt, end)
        .limit(limit);
    let (items, more) = store::query::<Post>(POSTS, &q, false)?;
    let posts: Vec<Post> = items.into_iter().map(|(_, p)| p).collect();
    let next = more
        .and(posts.last())
        .map(|p| http::number_cursor(p.number));
    Ok((posts, next))
}

/// A post the viewer may see, with its topic and category. `404` for a
/// post the viewer may not see (hidden, or in a topic they may not read).
pub fn load(
    viewer: &Viewer,
    id: &str,
) -> Result<(Versioned<Post>, Versioned<Topic>, Option<Category>)> {
    let (topic_id, _) = parse_post_id(id).ok_or_else(|| not_found("post"))?;
    let (topic, category) = topics::load(viewer, topic_id)?;
    let post = store::get::<Post>(POSTS, id)?.ok_or_else(|| not_found("post"))?;
    if !visible(&post.value, viewer) {
        return Err(not_found("post"));
    }
    Ok((post, topic, category))
}

fn read_level(category: Option<&Category>) -> ReadLevel {
    category.map_or(ReadLevel::Moderators, |c| c.read)
}

/// `GET /posts/{id}`.
pub fn get(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let (post, _, _) = load(&viewer, req.param("id").unwrap_or_default())?;
    let mine = crate::reactions::mine(&viewer, &post.value.id)?;
    Ok(Response::json(
        200,
        &PostView::new(&post.value, &viewer, mine.as_deref()),
    ))
}

/// `POST /topics/{id}/posts {body, reply_to?, quote?}`: a reply; `201`.
pub fn create(req: &Request) -> Result {
    let mut viewer = Viewer::load(req)?;
    let author = Author::from(viewer.writer()?);
    let s = settings::get()?;
    let (topic, category) = topics::load(&viewer, req.param("id").unwrap_or_default())?;
    check_can_reply(&viewer, &topic.value)?;
    let post_level = category.as_ref().map_or(PostLevel::Moderators, |c| c.post);
    if !viewer.can_post(post_level, &s) {
        return Err(forbidden(post_level.refusal()));
    }

    let body = Body::parse(req)?;
    let prepared = prepare_body(body.str("body")?, &viewer, &s)?;
    let reply_to = match body.opt_i64("reply_to")? {
        None => None,
        Some(n) => Some(replied_post(&viewer, &topic.value, n)?),
    };
    let quote = match body.opt_str("quote")? {
        None => None,
        Some(text) => {
            let source = reply_to
                .as_ref()
                .ok_or_else(|| invalid("quote", "needs reply_to, the post it quotes"))?;
            let text =
                markdown::check_quote(text, &source.raw).map_err(|why| invalid("quote", why))?;
            Some(Quote {
                number: source.number,
                name: source.author.name.clone(),
                text,
            })
        }
    };

    // Writes from here on; the topic is rewritten first, which gives the
    // post its number and serializes concurrent replies.
    let now = now_ms();
    let (_, topic) = topics::update(topic, |t| {
        let mut topic = t.cloned().ok_or_else(|| not_found("topic"))?;
        check_can_reply(&viewer, &topic)?;
        if topic.last_number >= MAX_POST_NUMBER {
            return Err(conflict(
                "topic_full",
                "the topic has reached its post limit",
            ));
        }
        topic.last_number += 1;
        topic.post_count += 1;
        topic.bump = now;
        topic.last_post_at = now;
        topic.last_poster = author.clone();
        Ok(topic)
    })?;
    let post = Post::new(
        &topic.id,
        topic.last_number,
        author.clone(),
        prepared,
        reply_to.map(|p| p.number),
        quote,
        now,
    );
    insert(&post)?;
    let known = viewer.member.take();
    members::update(&author, known, |m| {
        m.posts += 1;
        m.last_posted_at = Some(now);
    })?;
    // The new post is the topic's last (its number came from the topic
    // rewrite above, in this transaction), so the author's mark moves to it
    // without reading the old one first.
    unread::mark(&author.id, &topic.id, post.number)?;
    crate::digest::record_post(&post)?;
    let read = read_level(category.as_ref());
    search_index::index_post(&post, &topic, read)?;
    events::post_created(&post, &topic, read)?;
    Ok(Response::json(201, &PostView::new(&post, &viewer, None)))
}

/// Closed topics take replies from moderators only; locked ones too.
fn check_can_reply(viewer: &Viewer, topic: &Topic) -> Result<()> {
    if topic.deleted {
        return Err(conflict("topic_deleted", "the topic is deleted"));
    }
    if viewer.moderator {
        return Ok(());
    }
    if topic.locked {
        return Err(conflict("topic_locked", "the topic is locked"));
    }
    if topic.closed {
        return Err(conflict("topic_closed", "the topic is closed"));
    }
    Ok(())
}

/// The post a reply answers: an existing, visible post of the same topic.
fn replied_post(viewer: &Viewer, topic: &Topic, number: i64) -> Result<Post> {
    let refuse = || invalid("reply_to", "must be the number of a post in this topic");
    let number = u32::try_from(number).map_err(|_| refuse())?;
    if number == 0 || number > topic.last_number {
        return Err(refuse());
    }
    let post = store::get::<Post>(POSTS, &post_id(&topic.id, number))?
        .ok_or_else(refuse)?
        .value;
    if post.deleted || !visible(&post, viewer) {
        return Err(refuse());
    }
    Ok(post)
}

/// Authors change their posts unless the topic is locked; moderators
/// change any.
fn check_can_change(viewer: &Viewer, post: &Post, topic: &Topic) -> Result<()> {
    if viewer.moderator {
        return Ok(());
    }
    if !viewer.is(&post.author.id) {
        return Err(forbidden(
            "only the author or a moderator may change this post",
        ));
    }
    if topic.locked {
        return Err(conflict("topic_locked", "the topic is locked"));
    }
    Ok(())
}

const MAX_REASON: usize = 500;

/// A revision as stored: an earlier state of an edited post.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revision {
    pub number: u32,
    pub raw: String,
    pub editor: Author,
    pub at: i64,
    #[serde(default)]
    pub reason: Option<String>,
}

impl Revision {
    /// The revision `post` is at now.
    fn current(post: &Post) -> Self {
        Self {
            number: post.revision,
            raw: post.raw.clone(),
            editor: post
                .edited_by
                .clone()
                .unwrap_or_else(|| post.author.clone()),
            at: post.edited_at.unwrap_or(post.created_at),
            reason: post.edit_reason.clone(),
        }
    }
}

/// `PATCH /posts/{id} {body, reason?}`: a new revision, by the author
/// (unless the topic is locked) or a moderator.
pub fn patch(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let editor = Author::from(viewer.writer()?);
    let s = settings::get()?;
    let (post, topic, category) = load(&viewer, req.param("id").unwrap_or_default())?;
    check_can_change(&viewer, &post.value, &topic.value)?;
    if post.value.deleted {
        return Err(conflict("post_deleted", "the post is deleted"));
    }
    let body = Body::parse(req)?;
    let prepared = prepare_body(body.str("body")?, &viewer, &s)?;
    let reason = body
        .opt_str("reason")?
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(invalid("reason", "must be at most 500 characters"));
    }
    if prepared.raw == post.value.raw {
        return Ok(Response::json(
            200,
            &PostView::new(&post.value, &viewer, None),
        ));
    }

    let now = now_ms();
    let id = post.value.id.clone();
    let (old, new) = store::modify(POSTS, &id, Some(post), |p| {
        let mut post = p.cloned().ok_or_else(|| not_found("post"))?;
        if post.deleted {
            return Err(conflict("post_deleted", "the post is deleted"));
        }
        if post.revision >= MAX_REVISION {
            return Err(conflict(
                "too_many_revisions",
                "the post cannot be edited again",
            ));
        }
        post.raw.clone_from(&prepared.raw);
        post.html = compose_html(post.quote.as_ref(), &prepared.rendered.html);
        post.revision += 1;
        post.edited_at = Some(now);
        post.edited_by = Some(editor.clone());
        post.edit_reason = reason.map(str::to_owned);
        Ok(post)
    })?;
    let old = old.ok_or_else(|| not_found("post"))?;
    store::put(
        REVISIONS,
        &ids::revision_id(&id, old.revision),
        &Revision::current(&old),
    )?;
    let post = new.value;
    search_index::index_post(&post, &topic.value, read_level(category.as_ref()))?;
    Ok(Response::json(200, &PostView::new(&post, &viewer, None)))
}

/// `GET /posts/{id}/revisions?cursor=`: every revision, oldest first, the
/// current one last. Deleted posts' revisions are for moderators only.
pub fn revisions(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let (post, _, _) = load(&viewer, req.param("id").unwrap_or_default())?;
    let post = post.value;
    if post.deleted && !viewer.moderator {
        return Err(not_found("post"));
    }
    let limit = http::page_limit(req, settings::get()?.page_size)?;
    let after = http::parse_number_cursor(http::cursor(req).as_deref())?;
    let start = if after == 0 {
        format!("{}.r", post.id)
    } else {
        ids::revision_id(&post.id, after)
    };
    let q = Query::new()
        .filter("id", Op::Gt, start)
        .filter("id", Op::Lt, format!("{}.s", post.id))
        .limit(limit);
    let (items, more) = store::query::<Revision>(REVISIONS, &q, false)?;
    let mut list: Vec<Revision> = items.into_iter().map(|(_, r)| r).collect();
    if more.is_none() && (list.len() as u32) < limit && post.revision > after {
        list.push(Revision::current(&post));
    }
    let last = list.last().map_or(after, |r| r.number);
    let next = (last < post.revision && !list.is_empty()).then(|| http::number_cursor(last));
    Ok(Response::json(
        200,
        &json!({ "revisions": list, "next_cursor": next }),
    ))
}

/// `DELETE /posts/{id}`: soft deletion by the author or a moderator.
/// Deleting the opening post deletes the topic too.
pub fn delete(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let actor = Author::from(viewer.writer()?);
    let (post, topic, _) = load(&viewer, req.param("id").unwrap_or_default())?;
    check_can_change(&viewer, &post.value, &topic.value)?;
    if post.value.deleted {
        return Ok(Response::json(
            200,
            &PostView::new(&post.value, &viewer, None),
        ));
    }
    let now = now_ms();
    let id = post.value.id.clone();
    let (_, new) = store::modify(POSTS, &id, Some(post), |p| {
        let mut post = p.cloned().ok_or_else(|| not_found("post"))?;
        post.deleted = true;
        post.deleted_at = Some(now);
        post.deleted_by = Some(actor.clone());
        Ok(post)
    })?;
    let post = new.value;
    let opening = post.number == 1;
    let (old_topic, topic) = topics::update(topic, |t| {
        let mut topic = t.cloned().ok_or_else(|| not_found("topic"))?;
        topic.post_count = topic.post_count.saturating_sub(1);
        if opening {
            topic.deleted = true;
            topic.deleted_at = Some(now);
            topic.deleted_by = Some(actor.clone());
        }
        Ok(topic)
    })?;
    if opening && !old_topic.deleted {
        categories::count_topics(&topic.category, -1)?;
        search_index::remove_topic(&topic)?;
    } else {
        search_index::remove_post(&post.id)?;
    }
    Ok(Response::json(200, &PostView::new(&post, &viewer, None)))
}

/// `POST /posts/{id}/recover` (moderators): undoes a deletion (of the
/// topic too, for an opening post).
pub fn recover(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_moderator()?;
    let (post, topic, category) = load(&viewer, req.param("id").unwrap_or_default())?;
    if !post.value.deleted {
        return Ok(Response::json(
            200,
            &PostView::new(&post.value, &viewer, None),
        ));
    }
    let id = post.value.id.clone();
    let (_, new) = store::modify(POSTS, &id, Some(post), |p| {
        let mut post = p.cloned().ok_or_else(|| not_found("post"))?;
        post.deleted = false;
        post.deleted_at = None;
        post.deleted_by = None;
        Ok(post)
    })?;
    let post = new.value;
    let opening = post.number == 1;
    let (old_topic, topic) = topics::update(topic, |t| {
        let mut topic = t.cloned().ok_or_else(|| not_found("topic"))?;
        topic.post_count += 1;
        if opening {
            topic.deleted = false;
            topic.deleted_at = None;
            topic.deleted_by = None;
        }
        Ok(topic)
    })?;
    let level = read_level(category.as_ref());
    if opening && old_topic.deleted {
        categories::count_topics(&topic.category, 1)?;
        search_index::index_topic(&topic, level)?;
    } else {
        search_index::index_post(&post, &topic, level)?;
    }
    Ok(Response::json(200, &PostView::new(&post, &viewer, None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_sdk::{CredentialKind, Principal, Role};

    fn viewer(id: Option<&str>, moderator: bool) -> Viewer {
        Viewer {
            principal: id.map(|id| Principal {
                id: id.into(),
                name: id.into(),
                role: Role::User,
                kind: CredentialKind::Session,
            }),
            member: None,
            admin: false,
            moderator,
        }
    }

    fn post() -> Post {
        let prepared = Prepared {
            raw: "hello *world*".into(),
            rendered: markdown::render("hello *world*"),
        };
        let author = Author {
            id: "ann".into(),
            name: "Ann".into(),
        };
        Post::new("t", 2, author, prepared, Some(1), None, 5)
    }

    #[test]
    fn new_posts_are_rendered() {
        let p = post();
        assert_eq!(p.id, "t.000002");
        assert_eq!(p.html, "<p>hello <em>world</em></p>\n");
        assert_eq!((p.revision, p.reply_to), (1, Some(1)));
        assert!(p.searchable());
    }

    #[test]
    fn quotes_come_before_the_reply() {
        let q = Quote {
            number: 1,
            name: "Bob".into(),
            text: "hi".into(),
        };
        let html = compose_html(Some(&q), "<p>yes</p>");
        assert!(html.starts_with(r#"<blockquote class="quote" data-post="1">"#));
        assert!(html.ends_with("</blockquote><p>yes</p>"));
    }

    #[test]
    fn deleted_and_hidden_posts_are_blanked() {
        let mut p = post();
        p.deleted = true;
        let v = PostView::new(&p, &viewer(Some("bob"), false), None);
        assert_eq!((v.raw, v.html, v.deleted), ("", "", true));
        let v = PostView::new(&p, &viewer(Some("ann"), false), None);
        assert_eq!(v.raw, "");
        let v = PostView::new(&p, &viewer(Some("mod"), true), None);
        assert_eq!(v.raw, "hello *world*");

        let mut p = post();
        p.hidden = true;
        assert!(!visible(&p, &viewer(None, false)));
        assert!(!visible(&p, &viewer(Some("bob"), false)));
        assert!(visible(&p, &viewer(Some("ann"), false)));
        assert!(visible(&p, &viewer(Some("mod"), true)));
        assert_eq!(PostView::new(&p, &viewer(None, false), None).html, "");
        assert_ne!(
            PostView::new(&p, &viewer(Some("ann"), false), None).html,
            ""
        );
    }

    #[test]
    fn bodies_are_bounded_and_tl0_cannot_link() {
        let s = Settings {
            max_post_length: 10,
            ..Settings::default()
        };
        let user = viewer(Some("u"), false);
        assert!(prepare_body("fine", &user, &s).is_ok());
        assert_eq!(
            prepare_body("  ", &user, &s)
                .map(|_| ())
                .expect_err("empty")
                .status,
            422
        );
        assert_eq!(
            prepare_body("eleven char", &user, &s)
                .map(|_| ())
                .expect_err("long")
                .status,
            422
        );
        let s = Settings::default();
        let err = prepare_body("[x](https://x.test)", &user, &s)
            .map(|_| ())
            .expect_err("tl0 link");
        let body: serde_json::Value = serde_json::from_slice(&err.body).unwrap_or_default();
        assert_eq!(body["error"]["code"], "trust_level_too_low");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("links")
        );
        assert!(prepare_body("[x](https://x.test)", &viewer(Some("m"), true), &s).is_ok());
    }

    #[test]
    fn current_revision_defaults_to_the_author() {
        let p = post();
        let r = Revision::current(&p);
        assert_eq!((r.number, r.editor.id.as_str(), r.at), (1, "ann", 5));
    }
}
