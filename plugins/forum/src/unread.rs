//! Unread tracking: the last post number each member read in each topic
//! (kv `rd:{user}:{topic}`, a decimal number), and the list of topics with
//! something new for them.

use serde::Serialize;
use serde_json::json;
use weft_sdk::{Request, Response, kv};

use crate::categories;
use crate::http::{self, Body, Result, bad_cursor, internal, invalid};
use crate::ids::user_key;
use crate::members::Viewer;
use crate::settings;
use crate::store;
use crate::topic_index::{ALL_PINNED, ALL_UNPINNED};
use crate::topics::{self, Topic, TopicView};

fn key(user_id: &str, topic: &str) -> String {
    format!("rd:{}:{topic}", user_key(user_id))
}

/// Posts of a topic whose latest number is `last_number` after the one a
/// member read last (`None`: never read, so all of them).
pub fn unread_count(last_number: u32, mark: Option<u32>) -> u32 {
    last_number.saturating_sub(mark.unwrap_or(0))
}

/// The last post number `user_id` read in `topic`, if any.
pub fn get(user_id: &str, topic: &str) -> Result<Option<u32>> {
    store::kv_u32(&key(user_id, topic))
}

/// Sets the mark of `user_id` in `topic` to `number`.
pub fn mark(user_id: &str, topic: &str, number: u32) -> Result<()> {
    kv::set(&key(user_id, topic), number.to_string())?;
    Ok(())
}

/// Moves the mark forward to `seen` (never back), writing only if it
/// moves; returns the mark after.
pub fn advance(user_id: &str, topic: &str, seen: u32) -> Result<Option<u32>> {
    let current = get(user_id, topic)?;
    if seen > current.unwrap_or(0) {
        mark(user_id, topic, seen)?;
        return Ok(Some(seen));
    }
    Ok(current)
}

/// The caller's mark in `topic`: `None` for anonymous callers,
/// `Some(None)` if they never read it.
pub fn mark_of(viewer: &Viewer, topic: &Topic) -> Result<Option<Option<u32>>> {
    match &viewer.principal {
        None => Ok(None),
        Some(user) => Ok(Some(get(&user.id, &topic.id)?)),
    }
}

/// [`mark_of`] for each of `topics` (one kv read each).
pub fn marks(viewer: &Viewer, topics: &[Topic]) -> Result<Vec<Option<Option<u32>>>> {
    topics.iter().map(|t| mark_of(viewer, t)).collect()
}

/// `POST /topics/{id}/read {post_number}`: sets the caller's mark (lower
/// it to mark posts unread again); numbers past the last post count as the
/// last post.
pub fn read(req: &Request) -> Result {
    let mut viewer = Viewer::load(req)?;
    let user = viewer.user()?.clone();
    let body = Body::parse(req)?;
    let number = body
        .opt_i64("post_number")?
        .ok_or_else(|| invalid("post_number", "is required"))?;
    if number < 0 {
        return Err(invalid("post_number", "must not be negative"));
    }
    let (topic, _) = topics::load(&viewer, req.param("id").unwrap_or_default())?;
    let topic = topic.value;
    let number = u32::try_from(number)
        .unwrap_or(u32::MAX)
        .min(topic.last_number);
    viewer.ensure_member()?;
    mark(&user.id, &topic.id, number)?;
    Ok(Response::json(
        200,
        &json!({
            "topic_id": topic.id,
            "last_read": number,
            "unread": unread_count(topic.last_number, Some(number)),
        }),
    ))
}

/// A topic in `GET /unread`.
#[derive(Debug, Serialize)]
struct UnreadView<'a> {
    #[serde(flatten)]
    view: TopicView<'a>,
    /// True for a topic started since the member's first visit that they
    /// have not opened; false for one with posts after their mark.
    new: bool,
}

/// Why a topic is in the caller's unread list, if it is: `Some(true)` new
/// since their first visit and never opened, `Some(false)` read before
/// with newer posts.
pub fn status(topic: &Topic, mark: Option<u32>, first_seen_at: i64) -> Option<bool> {
    match mark {
        Some(m) if topic.last_number > m => Some(false),
        None if topic.created_at >= first_seen_at => Some(true),
        _ => None,
    }
}

/// Index entries `GET /unread` looks at per call, at most.
const SCAN_BUDGET: u32 = 200;

/// Where `GET /unread` continues: the section (pinned `0`, others `1`)
/// and the kv cursor within it.
fn parse_cursor(raw: Option<&str>) -> Result<(char, Option<String>)> {
    let Some(raw) = raw else {
        return Ok(('0', None));
    };
    let mut chars = raw.chars();
    match chars.next() {
        Some(section @ ('0' | '1')) => {
            let rest = chars.as_str();
            Ok((section, (!rest.is_empty()).then(|| rest.to_owned())))
        }
        _ => Err(bad_cursor()),
    }
}

/// `GET /unread`: topics read before that have newer posts, and topics
/// started since the caller's first visit that they have not opened;
/// pinned first, then by latest activity.
///
/// Activity is only ever newer than a member's first visit when it can be
/// unread for them, so the walk down the activity-ordered list stops at
/// the first older topic.
pub fn list(req: &Request) -> Result {
    let mut viewer = Viewer::load(req)?;
    let user = viewer.user()?.clone();
    let member = viewer
        .ensure_member()?
        .ok_or_else(|| internal("a signed-in caller without a member record"))?;
    let limit = http::page_limit(req, settings::get()?.page_size)?;
    let (mut section, mut cursor) = parse_cursor(http::cursor(req).as_deref())?;
    let all = categories::all()?;

    let mut found: Vec<(Topic, Option<u32>, bool)> = Vec::new();
    let mut scanned = 0;
    let next = loop {
        let prefix = if section == '0' {
            ALL_PINNED
        } else {
            ALL_UNPINNED
        };
        let want = (limit - found.len() as u32)
            .min(SCAN_BUDGET - scanned)
            .max(1);
        let page = store::kv_page(prefix, cursor.as_deref(), want)?;
        scanned += page.entries.len() as u32;
        let mut older = false;
        for entry in page.entries {
            let topic: Topic = serde_json::from_slice(&entry.value)
                .map_err(|e| internal(&format!("topic index {}: {e}", entry.key)))?;
            if section == '1' && topic.bump < member.first_seen_at {
                older = true;
                break;
            }
            if !viewer.can_read(categories::read_level_of(&all, &topic.category)) {
                continue;
            }
            let mark = get(&user.id, &topic.id)?;
            if let Some(new) = status(&topic, mark, member.first_seen_at) {
                found.push((topic, mark, new));
            }
        }
        if older {
            break None;
        }
        cursor = page.next_cursor;
        let section_done = cursor.is_none();
        if section_done && section == '1' {
            break None;
        }
        if section_done {
            section = '1';
        }
        if found.len() as u32 >= limit || scanned >= SCAN_BUDGET {
            break Some(format!("{section}{}", cursor.as_deref().unwrap_or("")));
        }
    };
    let topics: Vec<UnreadView> = found
        .iter()
        .map(|(t, mark, new)| UnreadView {
            view: TopicView::new(t, Some(*mark)),
            new: *new,
        })
        .collect();
    Ok(Response::json(
        200,
        &json!({ "topics": topics, "next_cursor": next }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::Author;

    fn topic(created_at: i64, last_number: u32) -> Topic {
        let a = Author {
            id: "a".into(),
            name: "A".into(),
        };
        Topic {
            id: "t".into(),
            category: "c".into(),
            title: "t".into(),
            author: a.clone(),
            tags: vec![],
            pinned: false,
            locked: false,
            closed: false,
            deleted: false,
            created_at,
            bump: created_at,
            last_post_at: created_at,
            last_poster: a,
            post_count: last_number,
            last_number,
            deleted_at: None,
            deleted_by: None,
        }
    }

    #[test]
    fn counts() {
        assert_eq!(unread_count(5, None), 5);
        assert_eq!(unread_count(5, Some(3)), 2);
        assert_eq!(unread_count(5, Some(9)), 0);
    }

    #[test]
    fn what_counts_as_unread() {
        // Read before, newer posts since.
        assert_eq!(status(&topic(10, 5), Some(3), 100), Some(false));
        // Read to the end.
        assert_eq!(status(&topic(10, 5), Some(5), 100), None);
        // Never opened, started after the first visit.
        assert_eq!(status(&topic(200, 1), None, 100), Some(true));
        // Never opened, older than the first visit.
        assert_eq!(status(&topic(50, 1), None, 100), None);
    }

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor(None).ok(), Some(('0', None)));
        assert_eq!(parse_cursor(Some("1")).ok(), Some(('1', None)));
        assert_eq!(
            parse_cursor(Some("0abc")).ok(),
            Some(('0', Some("abc".into())))
        );
        assert!(parse_cursor(Some("x")).is_err());
    }
}
