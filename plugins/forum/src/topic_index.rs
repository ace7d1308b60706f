//! Topic lists as kv key ranges, so a page of a list is one `list-prefix`
//! call however large the forum grows.
//!
//! Every topic not deleted has one entry per list it is in: all topics
//! (`tl:a:`), its category (`tl:c:{category}:`) and each of its tags
//! (`tl:g:{tag}:`). The key continues with a rank, pinned first and then
//! the latest activity first, and ends with the topic id:
//!
//! ```text
//! tl:c:general:1 8245163999999 :01jd8x…   (a "1" topic: not pinned)
//! ```
//!
//! so key order is list order. The value is the topic itself, so a page
//! needs no further reads. The `topics` docs collection stays the source of
//! truth; [`save`] rewrites a topic's entries whenever it changes.

use std::collections::BTreeSet;

use weft_sdk::kv;

use crate::http::{Result, internal};
use crate::store;
use crate::topics::Topic;

/// Above every `bump` until the year 2286; `INVERT - bump` sorts the
/// latest first.
const INVERT: i64 = 9_999_999_999_999;

/// All topics.
pub const ALL: &str = "tl:a:";
/// Pinned topics among all topics.
pub const ALL_PINNED: &str = "tl:a:0";
/// Not pinned topics among all topics, latest activity first.
pub const ALL_UNPINNED: &str = "tl:a:1";

/// The list of one category.
pub fn category_prefix(category: &str) -> String {
    format!("tl:c:{category}:")
}

/// The list of one tag.
pub fn tag_prefix(tag: &str) -> String {
    format!("tl:g:{tag}:")
}

/// Where a topic sorts within a list.
fn rank(topic: &Topic) -> String {
    let pinned = if topic.pinned { '0' } else { '1' };
    format!("{pinned}{:013}", INVERT - topic.bump.clamp(0, INVERT))
}

/// Every key `topic` is listed under (none while deleted).
pub fn keys(topic: &Topic) -> BTreeSet<String> {
    if topic.deleted {
        return BTreeSet::new();
    }
    let rank = rank(topic);
    let id = &topic.id;
    let mut keys = BTreeSet::new();
    keys.insert(format!("{ALL}{rank}:{id}"));
    keys.insert(format!("{}{rank}:{id}", category_prefix(&topic.category)));
    for tag in &topic.tags {
        keys.insert(format!("{}{rank}:{id}", tag_prefix(tag)));
    }
    keys
}

/// Rewrites the entries of a topic that was `old` (`None`: new) and is now
/// `new`.
pub fn save(old: Option<&Topic>, new: &Topic) -> Result<()> {
    let old_keys = old.map(keys).unwrap_or_default();
    let new_keys = keys(new);
    for gone in old_keys.difference(&new_keys) {
        kv::delete(gone)?;
    }
    if !new_keys.is_empty() {
        let value =
            serde_json::to_vec(new).map_err(|e| internal(&format!("topic {}: {e}", new.id)))?;
        for key in &new_keys {
            kv::set(key, &value)?;
        }
    }
    Ok(())
}

/// How many kv pages one list request may read when entries are filtered
/// out (topics in categories the caller may not read).
const MAX_PAGES: usize = 8;

/// Up to `limit` topics under `prefix` that `keep` accepts, from `cursor`,
/// and the cursor of the rest (`None` at the end).
///
/// Each kv page asks for exactly as many entries as are still missing, so
/// every page is used up and the store's own cursor stays exact.
pub fn list(
    prefix: &str,
    cursor: Option<String>,
    limit: u32,
    keep: impl Fn(&Topic) -> bool,
) -> Result<(Vec<Topic>, Option<String>)> {
    let mut topics = Vec::new();
    let mut cursor = cursor;
    for _ in 0..MAX_PAGES {
        let missing = limit.saturating_sub(topics.len() as u32).max(1);
        let page = store::kv_page(prefix, cursor.as_deref(), missing)?;
        for entry in page.entries {
            let topic: Topic = serde_json::from_slice(&entry.value)
                .map_err(|e| internal(&format!("topic index {}: {e}", entry.key)))?;
            if keep(&topic) {
                topics.push(topic);
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() || topics.len() as u32 >= limit {
            break;
        }
    }
    Ok((topics, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::Author;

    fn topic(id: &str, bump: i64, pinned: bool, tags: &[&str]) -> Topic {
        let author = Author {
            id: "u".into(),
            name: "U".into(),
        };
        Topic {
            id: id.into(),
            category: "general".into(),
            title: "t".into(),
            author: author.clone(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            pinned,
            locked: false,
            closed: false,
            deleted: false,
            created_at: 0,
            bump,
            last_post_at: bump,
            last_poster: author,
            post_count: 1,
            last_number: 1,
            deleted_at: None,
            deleted_by: None,
        }
    }

    fn first_key(t: &Topic, prefix: &str) -> String {
        keys(t)
            .into_iter()
            .find(|k| k.starts_with(prefix))
            .unwrap_or_default()
    }

    #[test]
    fn latest_first_and_pinned_before_all() {
        let old = topic("a", 1_000, false, &[]);
        let new = topic("b", 2_000, false, &[]);
        let pinned_old = topic("c", 10, true, &[]);
        let p = category_prefix("general");
        assert!(first_key(&new, &p) < first_key(&old, &p));
        assert!(first_key(&pinned_old, &p) < first_key(&new, &p));
        assert!(first_key(&pinned_old, ALL).starts_with(ALL_PINNED));
        assert!(first_key(&new, ALL).starts_with(ALL_UNPINNED));
    }

    #[test]
    fn one_entry_per_list() {
        let t = topic("a", 5, false, &["rust", "wasm"]);
        let k = keys(&t);
        assert_eq!(k.len(), 4);
        assert!(k.iter().any(|k| k.starts_with("tl:g:rust:")));
        assert!(k.iter().any(|k| k.starts_with("tl:g:wasm:")));
        assert!(k.iter().any(|k| k.starts_with("tl:c:general:")));
        assert!(k.iter().all(|k| k.ends_with(":a")));
        let mut deleted = t;
        deleted.deleted = true;
        assert!(keys(&deleted).is_empty());
    }

    #[test]
    fn prefixes_do_not_overlap() {
        // A category named like a tag, or a prefix of another, never shares keys.
        assert!(!category_prefix("rust-lang").starts_with(&category_prefix("rust")));
        assert_ne!(category_prefix("rust"), tag_prefix("rust"));
    }
}
