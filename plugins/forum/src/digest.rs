//! The daily "top topics" digest (docs `digests`, by `YYYY-MM-DD`).
//!
//! Every post and reaction adds one to a per-day, per-topic counter in kv
//! (`act:{day}:{topic}:p` and `:r`). The `daily_digest` schedule ranks the
//! topics of the day before its due date by `2 × posts + reactions`, stores
//! the top `digest_size`, drops the day's counters and publishes
//! `forum.digest_ready`. The run is one unit of work: retried, it never
//! counts a day twice.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::Query;
use weft_sdk::{HandlerError, Request, Response, kv};

use crate::categories::{self, ReadLevel};
use crate::http::{self, Result, invalid, not_found};
use crate::ids::{now_ms, utc_date};
use crate::members::Viewer;
use crate::posts::Post;
use crate::settings;
use crate::store::{
    self,
    collections::{DIGESTS, TOPICS},
};
use crate::topics::Topic;

/// The schedule's name in the manifest.
pub const SCHEDULE: &str = "daily_digest";
const DAY_MS: i64 = 86_400_000;
/// Counter entries read per kv page, and pages at most per run.
const PAGE: u32 = 1000;
const MAX_PAGES: usize = 100;

fn day_prefix(day: &str) -> String {
    format!("act:{day}:")
}

fn counter(day: &str, topic: &str, kind: char) -> String {
    format!("{}{topic}:{kind}", day_prefix(day))
}

/// Counts `post` for its topic's day.
pub fn record_post(post: &Post) -> Result<()> {
    let day = utc_date(post.created_at);
    kv::increment(&counter(&day, &post.topic, 'p'), 1)?;
    Ok(())
}

/// Counts a new reaction to `post` for its topic, today.
pub fn record_reaction(post: &Post) -> Result<()> {
    let day = utc_date(now_ms());
    kv::increment(&counter(&day, &post.topic, 'r'), 1)?;
    Ok(())
}

/// One topic of a digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DigestTopic {
    pub topic_id: String,
    pub title: String,
    pub category: String,
    /// The category's read level when the digest was made.
    pub read: ReadLevel,
    /// Posts written that day.
    pub posts: i64,
    /// Reactions given that day.
    pub reactions: i64,
    pub score: i64,
}

/// A day's digest as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Digest {
    pub date: String,
    pub generated_at: i64,
    /// Best first.
    pub topics: Vec<DigestTopic>,
}

/// `(topic, posts, reactions)` ranked best first: by score, then posts,
/// then topic id.
pub fn rank(counts: HashMap<String, (i64, i64)>) -> Vec<(String, i64, i64)> {
    let mut ranked: Vec<_> = counts.into_iter().map(|(t, (p, r))| (t, p, r)).collect();
    ranked.sort_by(|a, b| {
        let score = |x: &(String, i64, i64)| 2 * x.1 + x.2;
        score(b)
            .cmp(&score(a))
            .then(b.1.cmp(&a.1))
            .then(a.0.cmp(&b.0))
    });
    ranked
}

/// Parses one counter key of `prefix`: the topic and the kind.
fn parse_counter<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, char)> {
    let rest = key.strip_prefix(prefix)?;
    let (topic, kind) = rest.rsplit_once(':')?;
    let kind = kind.chars().next().filter(|_| kind.len() == 1)?;
    Some((topic, kind))
}

/// Handles a run of the `daily_digest` schedule due at `due_at`: the
/// digest of the UTC day before.
pub fn on_schedule(due_at: i64) -> core::result::Result<(), HandlerError> {
    let day = utc_date(due_at - DAY_MS);
    make(&day)
        .map(drop)
        .map_err(|r| HandlerError::Retry(format!("digest failed with status {}", r.status)))
}

/// Makes and stores the digest of `day`.
pub fn make(day: &str) -> Result<Digest> {
    let prefix = day_prefix(day);
    let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = kv::list_prefix(&prefix, cursor.as_deref(), PAGE)?;
        for entry in page.entries {
            let n = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            if let Some((topic, kind)) = parse_counter(&prefix, &entry.key) {
                let slot = counts.entry(topic.to_owned()).or_default();
                match kind {
                    'p' => slot.0 += n,
                    'r' => slot.1 += n,
                    _ => {}
                }
            }
            keys.push(entry.key);
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }

    let size = usize::try_from(settings::get()?.digest_size.clamp(1, 100)).unwrap_or(10);
    let all = categories::all()?;
    let mut topics = Vec::new();
    for (topic_id, posts, reactions) in rank(counts) {
        if topics.len() >= size {
            break;
        }
        let Some(topic) = store::get::<Topic>(TOPICS, &topic_id)? else {
            continue;
        };
        let topic = topic.value;
        if topic.deleted {
            continue;
        }
        topics.push(DigestTopic {
            read: categories::read_level_of(&all, &topic.category),
            topic_id,
            title: topic.title,
            category: topic.category,
            posts,
            reactions,
            score: 2 * posts + reactions,
        });
    }
    let digest = Digest {
        date: day.to_owned(),
        generated_at: now_ms(),
        topics,
    };
    store::put(DIGESTS, day, &digest)?;
    for key in &keys {
        kv::delete(key)?;
    }
    crate::events::digest_ready(day, digest.topics.len())?;
    Ok(digest)
}

/// The digest without the topics `viewer` may not read.
fn for_viewer(mut digest: Digest, viewer: &Viewer) -> Digest {
    digest.topics.retain(|t| viewer.can_read(t.read));
    digest
}

/// `GET /digests?cursor=`: the digests, newest first.
pub fn list(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let limit = http::page_limit(req, settings::get()?.page_size)?;
    let cursor = http::cursor(req);
    let q = Query::new()
        .order_by("date", true)
        .limit(limit)
        .cursor(cursor.as_deref());
    let (items, next) = store::query::<Digest>(DIGESTS, &q, cursor.is_some())?;
    let digests: Vec<Digest> = items
        .into_iter()
        .map(|(_, d)| for_viewer(d, &viewer))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "digests": digests, "next_cursor": next }),
    ))
}

/// `GET /digests/{date}`.
pub fn get(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let date = req.param("date").unwrap_or_default();
    if !is_date(date) {
        return Err(invalid("date", "must be YYYY-MM-DD"));
    }
    let digest = store::get::<Digest>(DIGESTS, date)?.ok_or_else(|| not_found("digest"))?;
    Ok(Response::json(200, &for_viewer(digest.value, &viewer)))
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_rank_by_score_then_posts_then_id() {
        let counts = HashMap::from([
            ("b".to_owned(), (1, 4)), // 6
            ("a".to_owned(), (3, 0)), // 6, more posts
            ("c".to_owned(), (0, 1)), // 1
            ("d".to_owned(), (1, 4)), // 6, same as b
        ]);
        let ranked: Vec<String> = rank(counts).into_iter().map(|(t, _, _)| t).collect();
        assert_eq!(ranked, ["a", "b", "d", "c"]);
    }

    #[test]
    fn counter_keys_parse_back() {
        let prefix = day_prefix("2026-12-01");
        let key = counter("2026-12-01", "01jd8xabc", 'p');
        assert_eq!(parse_counter(&prefix, &key), Some(("01jd8xabc", 'p')));
        assert_eq!(parse_counter(&prefix, "act:2026-12-02:x:p"), None);
        assert_eq!(parse_counter(&prefix, &format!("{prefix}x:pp")), None);
    }

    #[test]
    fn dates() {
        assert!(is_date("2026-12-01"));
        for bad in ["2026-12-1", "2026/12/01", "", "../../x", "2026-12-01x"] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
