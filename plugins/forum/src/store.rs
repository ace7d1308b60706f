//! Typed access to the docs collections and kv keys, and the one
//! read-modify-write loop every counter and flag update goes through.
//!
//! The host serializes a tenant's writes from a call's first write until it
//! commits, and reads after that see the latest data. So [`modify`] writes
//! with `if-version`: a document read before the write began that changed
//! meanwhile is a version conflict, and the retry reads it again, now
//! inside the serialized part, where it cannot change under us.

use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_sdk::docs::{self, Query};
use weft_sdk::kv;

use crate::http::{Result, bad_cursor, internal};

/// Collection names.
pub mod collections {
    /// Categories, by slug.
    pub const CATEGORIES: &str = "categories";
    /// Topics, by topic id.
    pub const TOPICS: &str = "topics";
    /// Posts, by `{topic}.{number:06}`.
    pub const POSTS: &str = "posts";
    /// Earlier revisions of edited posts, by `{post}.r{number:04}`.
    pub const REVISIONS: &str = "revisions";
    /// One record per user who did anything, by user key.
    pub const MEMBERS: &str = "members";
    /// Flags, by `{post}.f.{user}`.
    pub const FLAGS: &str = "flags";
    /// The moderation queue: one document per post with pending flags.
    pub const QUEUE: &str = "queue";
    /// Daily digests, by `YYYY-MM-DD`.
    pub const DIGESTS: &str = "digests";
    /// Long-running work split over calls (the search reindex), by name.
    pub const JOBS: &str = "jobs";
}

/// A document's body with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

fn decode<T: DeserializeOwned>(collection: &str, doc: &docs::Document) -> Result<T> {
    doc.json().map_err(|e| {
        internal(&format!(
            "{collection}/{}: unreadable document: {e}",
            doc.id
        ))
    })
}

/// Document `id` of `collection`, decoded.
pub fn get<T: DeserializeOwned>(collection: &str, id: &str) -> Result<Option<Versioned<T>>> {
    match docs::get(collection, id)? {
        None => Ok(None),
        Some(doc) => Ok(Some(Versioned {
            value: decode(collection, &doc)?,
            version: doc.version,
        })),
    }
}

/// Writes `value` as document `id`, whatever is there.
pub fn put<T: Serialize>(collection: &str, id: &str, value: &T) -> Result<u64> {
    Ok(docs::put_json(collection, id, value, None)?.version)
}

/// Writes `value` as document `id` only if there is none; `Ok(false)` if
/// there was one.
pub fn insert<T: Serialize>(collection: &str, id: &str, value: &T) -> Result<bool> {
    match docs::put_json(collection, id, value, Some(0)) {
        Ok(_) => Ok(true),
        Err(docs::Error::VersionConflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// How often [`modify`] retries after a version conflict. One retry is
/// enough once the call's writes are serialized; the rest is slack.
const MAX_ATTEMPTS: usize = 5;

/// Replaces document `id` with `change(current)`, where `current` is what
/// the caller read (`None`: absent), retrying on a concurrent change.
///
/// `change` sees the document as it will be replaced and may refuse (its
/// checks run again on every attempt). Returns the replaced value (if any)
/// and the new one.
pub fn modify<T, F>(
    collection: &str,
    id: &str,
    mut current: Option<Versioned<T>>,
    mut change: F,
) -> Result<(Option<T>, Versioned<T>)>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<&T>) -> Result<T>,
{
    for _ in 0..MAX_ATTEMPTS {
        let new = change(current.as_ref().map(|c| &c.value))?;
        let expected = current.as_ref().map_or(0, |c| c.version);
        match docs::put_json(collection, id, &new, Some(expected)) {
            Ok(doc) => {
                return Ok((
                    current.map(|c| c.value),
                    Versioned {
                        value: new,
                        version: doc.version,
                    },
                ));
            }
            Err(docs::Error::VersionConflict(_)) => current = get(collection, id)?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(internal(&format!(
        "{collection}/{id}: still changing after {MAX_ATTEMPTS} attempts"
    )))
}

/// Documents by id, and the cursor of the next page.
pub type Page<T> = (Vec<(String, T)>, Option<String>);

/// One page of `collection` matching `q`, decoded, with the store's cursor.
/// A cursor the store refuses is the caller's: `400 invalid_cursor`.
pub fn query<T: DeserializeOwned>(
    collection: &str,
    q: &Query,
    had_cursor: bool,
) -> Result<Page<T>> {
    let page = docs::query(collection, q).map_err(|e| match e {
        docs::Error::InvalidQuery(_) if had_cursor => bad_cursor(),
        e => e.into(),
    })?;
    let items = page
        .documents
        .iter()
        .map(|doc| Ok((doc.id.clone(), decode(collection, doc)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok((items, page.next_cursor))
}

/// The kv value under `key` as a decimal number, if any.
pub fn kv_u32(key: &str) -> Result<Option<u32>> {
    Ok(kv::get(key)?.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
}

/// One page of the kv entries under `prefix`. A refused cursor is the
/// caller's: `400 invalid_cursor`.
pub fn kv_page(prefix: &str, cursor: Option<&str>, limit: u32) -> Result<kv::EntryPage> {
    kv::list_prefix(prefix, cursor, limit).map_err(|e| match e {
        kv::Error::InvalidPage(_) if cursor.is_some() => bad_cursor(),
        e => e.into(),
    })
}
