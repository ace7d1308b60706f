//! Topics (docs `topics`, by topic id): their lists, their pages of posts,
//! creation, edits and the moderator switches (pin, lock, close).
//!
//! A topic counts its posts and remembers the highest number given out
//! (`last_number`), which is how a reply gets its number: the topic is
//! rewritten with `if-version`, so two replies never get the same one.
//! `bump` is the time of the latest post; lists sort by it (see
//! [`topic_index`](crate::topic_index)).

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::{Request, Response};

use crate::categories::{self, Category, ReadLevel};
use crate::http::{self, Body, Result, conflict, forbidden, invalid, not_found};
use crate::ids::{self, is_topic_id, normalize_tags, now_ms};
use crate::members::{self, Author, Viewer};
use crate::posts::{self, PostView};
use crate::settings::{self, Settings};
use crate::store::{self, Versioned, collections::TOPICS};
use crate::{events, search_index, topic_index, unread};

/// A topic as stored (and as kept in the list index).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Topic {
    pub id: String,
    pub category: String,
    pub title: String,
    pub author: Author,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub closed: bool,
    #[serde(default)]
    pub deleted: bool,
    pub created_at: i64,
    /// The time of the latest activity: what lists sort by.
    pub bump: i64,
    pub last_post_at: i64,
    pub last_poster: Author,
    /// Posts not deleted, the opening post included.
    pub post_count: u32,
    /// The number of the latest post (deleted ones included).
    pub last_number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<Author>,
}

/// A topic as the API shows it.
#[derive(Debug, Serialize)]
pub struct TopicView<'a> {
    #[serde(flatten)]
    pub topic: &'a Topic,
    pub reply_count: u32,
    /// Signed-in callers only: posts after the last one they read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
    /// Signed-in callers only: the last post number they read (null: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read: Option<Option<u32>>,
}

impl<'a> TopicView<'a> {
    /// `topic` for a caller who is anonymous (`mark` is `None`) or has
    /// read up to `mark` (`Some(None)`: never read it).
    pub fn new(topic: &'a Topic, mark: Option<Option<u32>>) -> Self {
        Self {
            topic,
            reply_count: topic.post_count.saturating_sub(1),
            unread: mark.map(|m| unread::unread_count(topic.last_number, m)),
            last_read: mark,
        }
    }
}

/// A title trimmed and checked against the settings.
pub fn check_title(title: &str, s: &Settings) -> Result<String> {
    let title = title.trim();
    let chars = title.chars().count() as i64;
    if chars == 0 {
        return Err(invalid("title", "must not be empty"));
    }
    if chars < s.min_title_length {
        return Err(invalid(
            "title",
            &format!("must be at least {} characters", s.min_title_length),
        ));
    }
    if chars > s.max_title_length {
        return Err(invalid(
            "title",
            &format!("must be at most {} characters", s.max_title_length),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(invalid("title", "must not contain control characters"));
    }
    Ok(title.to_owned())
}

/// A topic the viewer may see, with its category (`None` if the category
/// was deleted). Deleted topics are for moderators only; everything the
/// viewer may not see is `404`.
pub fn load(viewer: &Viewer, id: &str) -> Result<(Versioned<Topic>, Option<Category>)> {
    if !is_topic_id(id) {
        return Err(not_found("topic"));
    }
    let topic = store::get::<Topic>(TOPICS, id)?.ok_or_else(|| not_found("topic"))?;
    let category =
        store::get::<Category>(crate::store::collections::CATEGORIES, &topic.value.category)?
            .map(|c| c.value);
    let level = category.as_ref().map_or(ReadLevel::Moderators, |c| c.read);
    if !viewer.can_read(level) || (topic.value.deleted && !viewer.moderator) {
        return Err(not_found("topic"));
    }
    Ok((topic, category))
}

/// Decorates `topics` with the caller's read marks.
fn views<'a>(viewer: &Viewer, topics: &'a [Topic]) -> Result<Vec<TopicView<'a>>> {
    let marks = unread::marks(viewer, topics)?;
    Ok(topics
        .iter()
        .zip(marks)
        .map(|(t, m)| TopicView::new(t, m))
        .collect())
}

fn list_response(viewer: &Viewer, topics: &[Topic], next: Option<String>) -> Result {
    Ok(Response::json(
        200,
        &json!({ "topics": views(viewer, topics)?, "next_cursor": next }),
    ))
}

/// `GET /categories/{id}/topics`: pinned first, then latest activity.
pub fn list_in_category(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let id = req.param("id").unwrap_or_default();
    categories::readable(&viewer, id)?.ok_or_else(|| not_found("category"))?;
    let limit = http::page_limit(req, settings::get()?.page_size)?;
    let (topics, next) = topic_index::list(
        &topic_index::category_prefix(id),
        http::cursor(req),
        limit,
        |_| true,
    )?;
    list_response(&viewer, &topics, next)
}

/// `GET /topics?tag=`: every topic the caller may read (or those with the
/// tag), pinned first, then latest activity.
pub fn list(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let prefix = match req.query_param("tag").filter(|t| !t.is_empty()) {
        Some(tag) => {
            let tag = tag.trim().to_lowercase();
            ids::check_tag(&tag).map_err(|why| invalid("tag", &why))?;
            topic_index::tag_prefix(&tag)
        }
        None => topic_index::ALL.to_owned(),
    };
    let limit = http::page_limit(req, settings::get()?.page_size)?;
    let all = categories::all()?;
    let (topics, next) = topic_index::list(&prefix, http::cursor(req), limit, |t| {
        viewer.can_read(categories::read_level_of(&all, &t.category))
    })?;
    list_response(&viewer, &topics, next)
}

/// `POST /topics {category, title, body, tags?}`: a topic and its opening
/// post; `201 {"topic", "post"}`.
pub fn create(req: &Request) -> Result {
    let mut viewer = Viewer::load(req)?;
    let author = Author::from(viewer.writer()?);
    let s = settings::get()?;
    let body = Body::parse(req)?;

    let category_id = body.str("category")?;
    let category = categories::readable(&viewer, category_id)?
        .ok_or_else(|| invalid("category", &format!("{category_id:?} is not a category")))?
        .value;
    let title = check_title(body.str("title")?, &s)?;
    let tags = match body.opt_str_list("tags")? {
        Some(tags) => normalize_tags(&tags).map_err(|why| invalid("tags", &why))?,
        None => Vec::new(),
    };
    let prepared = posts::prepare_body(body.str("body")?, &viewer, &s)?;
    if !viewer.can_post(category.post, &s) {
        return Err(forbidden(category.post.refusal()));
    }

    // Writes from here on.
    let now = now_ms();
    let mut topic = Topic {
        id: ids::new_topic_id(),
        category: category.id.clone(),
        title,
        author: author.clone(),
        tags,
        pinned: false,
        locked: false,
        closed: false,
        deleted: false,
        created_at: now,
        bump: now,
        last_post_at: now,
        last_poster: author.clone(),
        post_count: 1,
        last_number: 1,
        deleted_at: None,
        deleted_by: None,
    };
    while !store::insert(TOPICS, &topic.id, &topic)? {
        topic.id = ids::new_topic_id();
    }
    let post = posts::Post::new(&topic.id, 1, author.clone(), prepared, None, None, now);
    posts::insert(&post)?;
    topic_index::save(None, &topic)?;
    categories::count_topics(&category.id, 1)?;
    let known = viewer.member.take();
    members::update(&author, known, |m| {
        m.topics += 1;
        m.posts += 1;
        m.last_posted_at = Some(now);
    })?;
    unread::mark(&author.id, &topic.id, 1)?;
    crate::digest::record_post(&post)?;
    search_index::index_post(&post, &topic, category.read)?;
    events::topic_created(&topic, category.read)?;
    events::post_created(&post, &topic, category.read)?;

    Ok(Response::json(
        201,
        &json!({
            "topic": TopicView::new(&topic, Some(Some(1))),
            "post": PostView::new(&post, &viewer, None),
        }),
    ))
}

/// `GET /topics/{id}?cursor=`: the topic and a page of its posts in number
/// order; marks them read for a signed-in caller.
pub fn get(req: &Request) -> Result {
    let mut viewer = Viewer::load(req)?;
    let (topic, _) = load(&viewer, req.param("id").unwrap_or_default())?;
    let topic = topic.value;
    let limit = http::page_limit(req, settings::get()?.page_size)?;
    let after = http::parse_number_cursor(http::cursor(req).as_deref())?;
    let (page, next) = posts::page(&topic.id, after, limit)?;
    let reactions = crate::reactions::mine_in_topic(&viewer, &topic.id)?;
    let views: Vec<PostView> = page
        .iter()
        .map(|p| PostView::new(p, &viewer, reactions.get(&p.number).map(String::as_str)))
        .collect();

    let mark = match viewer.principal.clone() {
        None => None,
        Some(user) => {
            viewer.ensure_member()?;
            let seen = page.last().map_or(0, |p| p.number);
            Some(unread::advance(&user.id, &topic.id, seen)?)
        }
    };
    Ok(Response::json(
        200,
        &json!({
            "topic": TopicView::new(&topic, mark),
            "posts": views,
            "next_cursor": next,
        }),
    ))
}

/// `PATCH /topics/{id} {title?, tags?, category?}`: by its author (unless
/// locked) or a moderator.
pub fn patch(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let editor = viewer.writer()?.clone();
    let s = settings::get()?;
    let (current, _) = load(&viewer, req.param("id").unwrap_or_default())?;
    check_can_edit(&viewer, &current.value, &editor.id)?;

    let body = Body::parse(req)?;
    let title = body
        .opt_str("title")?
        .map(|t| check_title(t, &s))
        .transpose()?;
    let tags = body
        .opt_str_list("tags")?
        .map(|t| normalize_tags(&t).map_err(|why| invalid("tags", &why)))
        .transpose()?;
    let category = match body.opt_str("category")? {
        Some(id) if id != current.value.category => {
            let category = categories::readable(&viewer, id)?
                .ok_or_else(|| invalid("category", &format!("{id:?} is not a category")))?
                .value;
            if !viewer.can_post(category.post, &s) {
                return Err(forbidden(category.post.refusal()));
            }
            Some(category)
        }
        _ => None,
    };

    let id = current.value.id.clone();
    let (old, new) = store::modify(TOPICS, &id, Some(current), |t| {
        let mut topic = t.cloned().ok_or_else(|| not_found("topic"))?;
        check_can_edit(&viewer, &topic, &editor.id)?;
        if let Some(title) = &title {
            topic.title.clone_from(title);
        }
        if let Some(tags) = &tags {
            topic.tags.clone_from(tags);
        }
        if let Some(category) = &category {
            topic.category.clone_from(&category.id);
        }
        Ok(topic)
    })?;
    let old = old.ok_or_else(|| not_found("topic"))?;
    let topic = new.value;
    topic_index::save(Some(&old), &topic)?;
    if old.category != topic.category && !topic.deleted {
        categories::count_topics(&old.category, -1)?;
        categories::count_topics(&topic.category, 1)?;
    }
    if !topic.deleted {
        let read = match &category {
            Some(c) => c.read,
            None => categories::readable(&viewer, &topic.category)?
                .map_or(ReadLevel::Moderators, |c| c.value.read),
        };
        if old.category != topic.category || old.tags != topic.tags {
            search_index::index_topic(&topic, read)?;
        } else if old.title != topic.title {
            search_index::index_opening_post(&topic, read)?;
        }
    }
    let mark = unread::mark_of(&viewer, &topic)?;
    Ok(Response::json(200, &TopicView::new(&topic, mark)))
}

/// Authors edit their topics unless locked; moderators edit any.
fn check_can_edit(viewer: &Viewer, topic: &Topic, editor: &str) -> Result<()> {
    if viewer.moderator {
        return Ok(());
    }
    if topic.author.id != editor {
        return Err(forbidden(
            "only the author or a moderator may edit this topic",
        ));
    }
    if topic.locked {
        return Err(conflict("topic_locked", "the topic is locked"));
    }
    Ok(())
}

/// A moderator's switch on a topic.
#[derive(Debug, Clone, Copy)]
pub enum Switch {
    Pin,
    Unpin,
    Lock,
    Unlock,
    Close,
    Open,
}

impl Switch {
    fn apply(self, topic: &mut Topic) {
        match self {
            Switch::Pin => topic.pinned = true,
            Switch::Unpin => topic.pinned = false,
            Switch::Lock => topic.locked = true,
            Switch::Unlock => topic.locked = false,
            Switch::Close => topic.closed = true,
            Switch::Open => topic.closed = false,
        }
    }
}

/// `POST /topics/{id}/pin|unpin|lock|unlock|close|open` (moderators).
pub fn switch(req: &Request, switch: Switch) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_moderator()?;
    let (current, _) = load(&viewer, req.param("id").unwrap_or_default())?;
    let id = current.value.id.clone();
    let (old, new) = store::modify(TOPICS, &id, Some(current), |t| {
        let mut topic = t.cloned().ok_or_else(|| not_found("topic"))?;
        switch.apply(&mut topic);
        Ok(topic)
    })?;
    topic_index::save(old.as_ref(), &new.value)?;
    let mark = unread::mark_of(&viewer, &new.value)?;
    Ok(Response::json(200, &TopicView::new(&new.value, mark)))
}

/// Replaces topic `id` with `change(topic)` and rewrites its list entries;
/// returns the old and new topic.
pub fn update(
    current: Versioned<Topic>,
    change: impl FnMut(Option<&Topic>) -> Result<Topic>,
) -> Result<(Topic, Topic)> {
    let id = current.value.id.clone();
    let (old, new) = store::modify(TOPICS, &id, Some(current), change)?;
    let old = old.ok_or_else(|| not_found("topic"))?;
    topic_index::save(Some(&old), &new.value)?;
    Ok((old, new.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_follow_the_settings() {
        let s = Settings::default();
        assert_eq!(check_title("  Hello  ", &s).ok().as_deref(), Some("Hello"));
        for bad in ["", "   ", "ab", &"x".repeat(201), "tab\there"] {
            let err = check_title(bad, &s).expect_err(bad);
            assert_eq!(err.status, 422);
        }
        assert!(check_title(&"é".repeat(200), &s).is_ok());
        let lax = Settings {
            min_title_length: 1,
            ..Settings::default()
        };
        assert!(check_title("a", &lax).is_ok());
    }

    #[test]
    fn views_count_replies_and_unread() {
        let author = Author {
            id: "u".into(),
            name: "U".into(),
        };
        let topic = Topic {
            id: "t".into(),
            category: "c".into(),
            title: "t".into(),
            author: author.clone(),
            tags: vec![],
            pinned: false,
            locked: false,
            closed: false,
            deleted: false,
            created_at: 0,
            bump: 0,
            last_post_at: 0,
            last_poster: author,
            post_count: 5,
            last_number: 6,
            deleted_at: None,
            deleted_by: None,
        };
        let anon = serde_json::to_value(TopicView::new(&topic, None)).unwrap_or_default();
        assert_eq!(anon["reply_count"], 4);
        assert!(anon.get("unread").is_none());
        let read = serde_json::to_value(TopicView::new(&topic, Some(Some(4)))).unwrap_or_default();
        assert_eq!(
            (read["unread"].as_u64(), read["last_read"].as_u64()),
            (Some(2), Some(4))
        );
        let never = serde_json::to_value(TopicView::new(&topic, Some(None))).unwrap_or_default();
        assert_eq!(never["unread"], 6);
        assert!(never["last_read"].is_null());
        assert_eq!(anon["title"], "t");
    }
}
