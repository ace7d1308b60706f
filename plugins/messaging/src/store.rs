//! Where everything lives: collection names, kv keys, and the typed reads
//! and writes the handlers share.

use serde::{Deserialize, Serialize};
use weft_sdk::docs::{self, Op, Query};
use weft_sdk::kv;

use crate::channels::Contact;
use crate::fanout::Job;
use crate::http::{self, Result, internal};
use crate::send::Report;
use crate::templates::Template;

pub const TEMPLATES: &str = "templates";
pub const CONTACTS: &str = "contacts";
pub const LISTS: &str = "lists";
/// Subscribers by `{list}.{digest of the address}`.
pub const SUBSCRIBERS: &str = "subscribers";
pub const BATCHES: &str = "batches";
/// A batch's lanes after the first, by `{batch}.{lane}`.
pub const BATCH_LANES: &str = "batch_lanes";
/// Sends waiting for their time (scheduled, or after quiet hours).
pub const SCHEDULED: &str = "scheduled";
pub const RULES: &str = "rules";
/// Watches by `{key}:{user}`.
pub const WATCHES: &str = "watches";
/// The delivery log, by job key.
pub const LOG: &str = "log";

/// The kv key of the HMAC secret of this tenant's tokens.
const SECRET: &str = "secret:tokens";

/// The tenant's token secret, created on first use from the guest's
/// `wasi:random` and stored with compare-and-swap, so two first calls at
/// once agree on one.
pub fn secret() -> Result<Vec<u8>> {
    if let Some(s) = kv::get(SECRET)? {
        return Ok(s);
    }
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| internal(&format!("no randomness: {e}")))?;
    if kv::compare_and_swap(SECRET, None, &fresh)? {
        return Ok(fresh.to_vec());
    }
    kv::get(SECRET)?.ok_or_else(|| internal("the token secret vanished"))
}

/// The secret if it exists (public routes only verify).
pub fn existing_secret() -> Result<Option<Vec<u8>>> {
    Ok(kv::get(SECRET)?)
}

pub fn template(name: &str) -> Result<Option<Template>> {
    Ok(http::get::<Template>(TEMPLATES, name)?.map(|(t, _)| t))
}

pub fn contact(user: &str) -> Result<Option<Contact>> {
    Ok(http::get::<Contact>(CONTACTS, user)?.map(|(c, _)| c))
}

/// A send waiting for `release_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scheduled {
    pub release_at: i64,
    /// `scheduled` or `quiet_hours`.
    pub reason: String,
    pub job: Job,
}

/// Stores a waiting send (replacing one with the same id: the same
/// request scheduled again is still one send).
pub fn schedule(id: &str, release_at: i64, reason: &str, job: &Job) -> Result<()> {
    http::put(
        SCHEDULED,
        &doc_id(id),
        &Scheduled {
            release_at,
            reason: reason.into(),
            job: job.folded(),
        },
        None,
    )?;
    Ok(())
}

/// The sends due at `now`, oldest first.
pub fn due(now: i64, limit: u32) -> Result<Vec<(String, Scheduled)>> {
    let q = Query::new()
        .filter("release_at", Op::Lte, now)
        .order_by("release_at", false)
        .limit(limit);
    Ok(http::query(SCHEDULED, &q)?.0)
}

pub fn unschedule(id: &str) -> Result<()> {
    docs::delete(SCHEDULED, id)?;
    Ok(())
}

/// Writes a delivery log entry.
pub fn log(report: &Report) -> Result<()> {
    http::put(LOG, &doc_id(&report.id), report, None)?;
    Ok(())
}

/// A docs id (`A-Z a-z 0-9 _ - . :`, at most 128) for a key that may hold
/// other characters or be longer: kept when it fits, else digested.
pub fn doc_id(key: &str) -> String {
    let fits = key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if fits {
        key.to_owned()
    } else {
        format!("h:{}", &crate::tokens::digest(&[key])[..40])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_fit_the_store() {
        assert_eq!(doc_id("batch:b1:news.ab12"), "batch:b1:news.ab12");
        let long = doc_id(&"x".repeat(200));
        assert!(long.starts_with("h:") && long.len() == 42);
        assert!(doc_id("a b").starts_with("h:"));
    }
}
