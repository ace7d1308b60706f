//! The tenant's settings for the forum (`config`), read once per call.

use std::cell::OnceCell;

use serde::Deserialize;
use weft_sdk::config;

use crate::http::{Result, internal};

/// The settings the manifest declares, with its defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub min_title_length: i64,
    pub max_title_length: i64,
    pub max_post_length: i64,
    /// Pending flags that hide a post.
    pub flags_to_hide: i64,
    /// Posts that make a member trust level 1.
    pub tl1_posts: i64,
    /// Posts that (with enough reactions) make a member trust level 2.
    pub tl2_posts: i64,
    pub tl2_reactions_received: i64,
    /// The default page size of every list.
    pub page_size: i64,
    /// Topics in a daily digest.
    pub digest_size: i64,
    /// Posts indexed per call when a change touches many (a reindex).
    pub reindex_batch: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_title_length: 3,
            max_title_length: 200,
            max_post_length: 32_000,
            flags_to_hide: 3,
            tl1_posts: 3,
            tl2_posts: 20,
            tl2_reactions_received: 10,
            page_size: 20,
            digest_size: 10,
            reindex_batch: 200,
        }
    }
}

thread_local! {
    // Every call runs in a fresh instance, so this lives for one call.
    static CACHED: OnceCell<Settings> = const { OnceCell::new() };
}

/// This tenant's settings (one `config` call per request at most).
pub fn get() -> Result<Settings> {
    if let Some(settings) = CACHED.with(|c| c.get().cloned()) {
        return Ok(settings);
    }
    let settings: Settings = config::get_all().map_err(|e| internal(&format!("settings: {e}")))?;
    CACHED.with(|c| {
        let _ = c.set(settings.clone());
    });
    Ok(settings)
}
