//! Full-text search over posts: one search index (`posts`), one document
//! per post that may be shown (not deleted, not hidden, in a topic not
//! deleted), and `GET /search`.
//!
//! The opening post carries its topic's title as searchable text, so a
//! title match ranks the topic's first post; every post carries the title
//! as a stored keyword to show with its hit. Each document records its
//! category's read level as a number (`read`); a search filters on the
//! caller's, and filters the hits once more by the categories' current
//! levels, so a category made stricter is hidden from search at once, while
//! the reindex it starts brings the index itself up to date.
//!
//! Work over many posts (a whole topic, the whole forum) runs in batches of
//! the `reindex_batch` setting: the first inline, the rest as
//! `forum.reindex` events the forum sends itself, so no single call grows
//! with the forum.

use std::cell::Cell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::{Op, Query};
use weft_sdk::search::{self, FieldKind, FilterOp, QuerySpec, field};
use weft_sdk::{HandlerError, Request, Response};

use crate::categories::{self, Category, ReadLevel};
use crate::http::{self, Result, internal, invalid};
use crate::ids::{self, new_topic_id, now_ms, parse_post_id, post_id};
use crate::markdown;
use crate::members::Viewer;
use crate::posts::Post;
use crate::store::{
    self,
    collections::{JOBS, POSTS, TOPICS},
};
use crate::topics::Topic;
use crate::{events, settings};

/// The index name.
pub const INDEX: &str = "posts";
/// Posts handled per call when a change touches many.
fn batch() -> Result<u32> {
    Ok(settings::get()?.reindex_batch.clamp(1, 1000) as u32)
}
/// The document in `jobs` that tracks a full reindex.
const REINDEX_JOB: &str = "reindex";
/// Longest query text.
const MAX_QUERY_CHARS: usize = 500;

fn spec() -> Vec<search::Field> {
    vec![
        field("title", FieldKind::Text),
        field("body", FieldKind::Text),
        field("topic", FieldKind::Keyword),
        field("topic_title", FieldKind::Keyword),
        field("category", FieldKind::Keyword),
        field("tags", FieldKind::Keyword),
        field("author", FieldKind::Keyword),
        field("author_name", FieldKind::Keyword),
        field("number", FieldKind::Integer),
        field("created_at", FieldKind::Integer),
        field("read", FieldKind::Integer),
    ]
}

thread_local! {
    // Every call runs in a fresh instance, so this lives for one call.
    static DEFINED: Cell<bool> = const { Cell::new(false) };
}

/// Makes sure the index exists with this version's fields (once per call).
/// An index left by an earlier version with other fields is dropped and
/// rebuilt from the posts.
fn ensure() -> Result<()> {
    if DEFINED.with(Cell::get) {
        return Ok(());
    }
    match search::define_index(INDEX, &spec()) {
        Ok(()) => {}
        Err(search::Error::FieldsMismatch(_)) => {
            search::drop_index(INDEX)?;
            search::define_index(INDEX, &spec())?;
            DEFINED.with(|d| d.set(true));
            return start_reindex().map(drop);
        }
        Err(e) => return Err(e.into()),
    }
    DEFINED.with(|d| d.set(true));
    Ok(())
}

/// The fields of a post's search document, as written.
#[derive(Debug, Serialize)]
struct Indexed {
    title: String,
    body: String,
    topic: String,
    topic_title: String,
    category: String,
    tags: Vec<String>,
    author: String,
    author_name: String,
    number: i64,
    created_at: i64,
    read: i64,
}

/// The stored fields of a hit: keyword fields come back as lists, and
/// fields without a value are left out.
#[derive(Debug, Deserialize)]
struct Stored {
    #[serde(default)]
    body: String,
    #[serde(default)]
    topic: Vec<String>,
    #[serde(default)]
    topic_title: Vec<String>,
    #[serde(default)]
    category: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    author: Vec<String>,
    #[serde(default)]
    author_name: Vec<String>,
    #[serde(default)]
    number: i64,
    #[serde(default)]
    created_at: i64,
}

fn first(values: Vec<String>) -> String {
    values.into_iter().next().unwrap_or_default()
}

/// Indexes `post` of `topic` (in a category of level `read`), or takes it
/// out of the index if it may not be shown.
pub fn index_post(post: &Post, topic: &Topic, read: ReadLevel) -> Result<()> {
    ensure()?;
    if !post.searchable() || topic.deleted {
        return remove_post(&post.id);
    }
    let doc = Indexed {
        title: if post.number == 1 {
            topic.title.clone()
        } else {
            String::new()
        },
        body: markdown::plain_text(&post.raw),
        topic: topic.id.clone(),
        topic_title: topic.title.clone(),
        category: topic.category.clone(),
        tags: topic.tags.clone(),
        author: post.author.id.clone(),
        author_name: post.author.name.clone(),
        number: i64::from(post.number),
        created_at: post.created_at,
        read: read.rank(),
    };
    search::upsert_json(INDEX, &post.id, &doc)?;
    Ok(())
}

/// Takes post `id` out of the index.
pub fn remove_post(id: &str) -> Result<()> {
    ensure()?;
    search::delete(INDEX, id)?;
    Ok(())
}

/// Re-indexes `post` as it is now, with its topic and category read anew
/// (after a moderator showed it again).
pub fn reindex_post(post: &Post) -> Result<()> {
    let Some(topic) = store::get::<Topic>(TOPICS, &post.topic)? else {
        return remove_post(&post.id);
    };
    let read = categories::read_level_of(&categories::all()?, &topic.value.category);
    index_post(post, &topic.value, read)
}

/// Re-indexes the opening post of `topic` (its title changed).
pub fn index_opening_post(topic: &Topic, read: ReadLevel) -> Result<()> {
    match store::get::<Post>(POSTS, &post_id(&topic.id, 1))? {
        Some(post) => index_post(&post.value, topic, read),
        None => Ok(()),
    }
}

/// Re-indexes every post of `topic` (its category, tags or deletion
/// changed): the first batch now, the rest in `forum.reindex` events.
pub fn index_topic(topic: &Topic, read: ReadLevel) -> Result<()> {
    sync_topic(topic, read, 0)
}

/// Takes every post of `topic` (now deleted) out of the index.
pub fn remove_topic(topic: &Topic) -> Result<()> {
    sync_topic(topic, ReadLevel::Moderators, 0)
}

/// One batch of [`index_topic`] from after post number `after`.
fn sync_topic(topic: &Topic, read: ReadLevel, after: u32) -> Result<()> {
    let (start, end) = ids::post_range(&topic.id);
    let start = if after == 0 {
        start
    } else {
        post_id(&topic.id, after)
    };
    let q = Query::new()
        .filter("id", Op::Gt, start)
        .filter("id", Op::Lt, end)
        .limit(batch()?);
    let (posts, more) = store::query::<Post>(POSTS, &q, false)?;
    for (_, post) in &posts {
        index_post(post, topic, read)?;
    }
    if more.is_some()
        && let Some((_, last)) = posts.last()
    {
        events::reindex_topic(&topic.id, last.number)?;
    }
    Ok(())
}

/// What a `forum.reindex` event asks for.
#[derive(Debug, Deserialize)]
#[serde(tag = "scope", rename_all = "lowercase")]
pub enum Reindex {
    /// Every post after id `after`, for reindex run `generation`.
    All {
        after: Option<String>,
        generation: String,
    },
    /// The posts of one topic after number `after`.
    Topic { topic: String, after: u32 },
}

/// A full reindex, as `GET /admin/reindex` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReindexJob {
    pub generation: String,
    pub started_at: i64,
    /// Posts looked at so far.
    pub processed: u64,
    #[serde(default)]
    pub finished_at: Option<i64>,
}

/// Starts a full reindex (superseding one under way) and returns it.
fn start_reindex() -> Result<ReindexJob> {
    let job = ReindexJob {
        generation: new_topic_id(),
        started_at: now_ms(),
        processed: 0,
        finished_at: None,
    };
    store::put(JOBS, REINDEX_JOB, &job)?;
    events::reindex_all(None, &job.generation)?;
    Ok(job)
}

/// Handles one `forum.reindex` event.
pub fn on_reindex(request: Reindex) -> core::result::Result<(), HandlerError> {
    let outcome = match request {
        Reindex::All { after, generation } => reindex_batch(after.as_deref(), &generation),
        Reindex::Topic { topic, after } => match store::get::<Topic>(TOPICS, &topic) {
            Ok(Some(topic)) => {
                let read = categories::all()
                    .map(|all| categories::read_level_of(&all, &topic.value.category));
                read.and_then(|read| sync_topic(&topic.value, read, after))
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
    };
    // The response already went to the plugin log; the event is retried.
    outcome.map_err(|r| HandlerError::Retry(format!("reindex failed with status {}", r.status)))
}

/// One batch of a full reindex: the posts after id `after`, if run
/// `generation` is still the current one.
pub fn reindex_batch(after: Option<&str>, generation: &str) -> Result<()> {
    let Some(job) = store::get::<ReindexJob>(JOBS, REINDEX_JOB)? else {
        return Ok(());
    };
    if job.value.generation != generation || job.value.finished_at.is_some() {
        // Superseded by a newer run.
        return Ok(());
    }
    let mut q = Query::new().limit(batch()?);
    if let Some(after) = after {
        q = q.filter("id", Op::Gt, after);
    }
    let (posts, more) = store::query::<Post>(POSTS, &q, false)?;
    let all = categories::all()?;
    let mut topics: HashMap<String, Option<Topic>> = HashMap::new();
    for (_, post) in &posts {
        if !topics.contains_key(&post.topic) {
            let topic = store::get::<Topic>(TOPICS, &post.topic)?.map(|t| t.value);
            topics.insert(post.topic.clone(), topic);
        }
        match topics.get(&post.topic).and_then(Option::as_ref) {
            Some(topic) => index_post(
                post,
                topic,
                categories::read_level_of(&all, &topic.category),
            )?,
            None => remove_post(&post.id)?,
        }
    }
    let last = posts.last().map(|(id, _)| id.clone());
    let processed = posts.len() as u64;
    store::modify(JOBS, REINDEX_JOB, Some(job), |j| {
        let mut job: ReindexJob = j.cloned().ok_or_else(|| internal("reindex job vanished"))?;
        job.processed += processed;
        if more.is_none() {
            job.finished_at = Some(now_ms());
        }
        Ok(job)
    })?;
    if more.is_some() {
        events::reindex_all(last.as_deref(), generation)?;
    }
    Ok(())
}

/// `POST /admin/reindex` (admins): rebuilds the search index from the
/// posts, in the background; `202` with the run.
pub fn start(req: &Request) -> Result {
    Viewer::load(req)?.require_admin()?;
    ensure()?;
    let job = start_reindex()?;
    Ok(Response::json(202, &job))
}

/// `GET /admin/reindex` (admins): the latest full reindex, if any.
pub fn status(req: &Request) -> Result {
    Viewer::load(req)?.require_admin()?;
    let job = store::get::<ReindexJob>(JOBS, REINDEX_JOB)?.map(|j| j.value);
    Ok(Response::json(200, &json!({ "reindex": job })))
}

/// Called when category `category` became readable by `read`: the index
/// is brought up to date by a full reindex (search filters by the current
/// level meanwhile).
pub fn category_read_changed() -> Result<()> {
    ensure()?;
    start_reindex().map(drop)
}

/// One result of `GET /search`.
#[derive(Debug, Serialize)]
struct SearchHit {
    post_id: String,
    topic_id: String,
    number: i64,
    topic_title: String,
    category: String,
    tags: Vec<String>,
    author: serde_json::Value,
    created_at: i64,
    score: f32,
    /// The matching part of the title, matches in `<b>` (opening posts).
    #[serde(skip_serializing_if = "Option::is_none")]
    title_html: Option<String>,
    /// The matching part of the post, matches in `<b>`; the text is escaped.
    excerpt_html: String,
}

/// `GET /search?q=&category=&tag=&author=&limit=&cursor=`: posts the caller
/// may read matching `q` (tantivy's query language: `wasm AND "error
/// handling"`, `title:rust`, `-draft`), best first, with highlighted
/// excerpts.
pub fn query(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let q = req.query_param("q").unwrap_or_default();
    let q = q.trim();
    if q.is_empty() {
        return Err(invalid("q", "is required"));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid("q", "must be at most 500 characters"));
    }
    let limit = http::page_limit(req, settings::get()?.page_size)?;
    let offset = http::parse_number_cursor(http::cursor(req).as_deref())?;
    let all = categories::all()?;

    let mut spec = QuerySpec::new(q, limit)
        .offset(offset)
        .highlight("title")
        .highlight("body")
        .filter("read", FilterOp::Lte, viewer.read_level().rank());
    if let Some(category) = req.query_param("category").filter(|c| !c.is_empty()) {
        let readable = all
            .iter()
            .any(|c| c.id == category && viewer.can_read(c.read));
        if !readable {
            return Err(invalid(
                "category",
                &format!("{category:?} is not a category"),
            ));
        }
        spec = spec.filter("category", FilterOp::Eq, category);
    }
    if let Some(tag) = req.query_param("tag").filter(|t| !t.is_empty()) {
        spec = spec.filter("tags", FilterOp::Eq, tag.trim().to_lowercase());
    }
    if let Some(author) = req.query_param("author").filter(|a| !a.is_empty()) {
        spec = spec.filter("author", FilterOp::Eq, author);
    }
    ensure()?;
    let results = search::query(INDEX, &spec)?;

    let hits = results
        .hits
        .iter()
        .filter_map(|hit| to_hit(hit, &all, &viewer).transpose())
        .collect::<Result<Vec<_>>>()?;
    let seen = offset + results.hits.len() as u32;
    let next = (u64::from(seen) < results.total).then(|| http::number_cursor(seen));
    Ok(Response::json(
        200,
        &json!({
            "query": q,
            "total": results.total,
            "results": hits,
            "next_cursor": next,
        }),
    ))
}

/// A hit as the caller sees it; `None` if its category is no longer one
/// they may read.
fn to_hit(hit: &search::Hit, all: &[Category], viewer: &Viewer) -> Result<Option<SearchHit>> {
    let doc: Stored = hit
        .fields_as()
        .map_err(|e| internal(&format!("search document {}: {e}", hit.id)))?;
    let category = first(doc.category);
    if parse_post_id(&hit.id).is_none()
        || !viewer.can_read(categories::read_level_of(all, &category))
    {
        return Ok(None);
    }
    let excerpt_html = hit.snippet("body").filter(|s| !s.is_empty()).map_or_else(
        || markdown::escape(&markdown::truncate(&doc.body, 200)),
        str::to_owned,
    );
    Ok(Some(SearchHit {
        post_id: hit.id.clone(),
        topic_id: first(doc.topic),
        number: doc.number,
        topic_title: first(doc.topic_title),
        category,
        tags: doc.tags,
        author: json!({ "id": first(doc.author), "name": first(doc.author_name) }),
        created_at: doc.created_at,
        score: hit.score,
        title_html: hit
            .snippet("title")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        excerpt_html,
    }))
}
