//! Full-text search: one tantivy index per (tenant, plugin, index name), each
//! in its own directory, so one tenant's index is never opened on behalf of
//! another. The plugin declares typed fields; documents are upserted by id;
//! queries use tantivy's query language over the text fields plus typed
//! filters, with highlighted snippets and paging.
//!
//! Writes are batched: an upsert is visible and durable after the next
//! commit, which the committer task makes every quarter of a second (the
//! `[search] commit_interval_ms` setting) for every
//! index with pending writes (or [`Search::commit`] at once). An index is
//! derived data: a plugin can drop and rebuild it from its documents.
//!
//! Plugin writes go through the journal: [`Search::journal`] records them in
//! the call's unit of work as it commits, [`Search::apply`] hands them to the index once
//! the call has committed, and the committer forgets journal entries the
//! index has committed. [`Search::recover`] replays what is left after a
//! crash, so an acknowledged write is never lost and a rolled-back call
//! never reaches the index.

mod index;
mod query;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use index::TenantIndex;

use crate::db::{self, Db, Exec, Mode, Scope, Stmt};
use crate::storage::Owner;

/// Indexes kept open (each holds a writer); the least recently used is
/// committed and closed past this.
const MAX_OPEN: usize = 64;

/// Why a search call was refused. Everything but `Internal` is the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("index names are 1-64 characters of a-z, 0-9, '_' and '-'")]
    InvalidName,
    #[error("invalid field spec: {0}")]
    InvalidSpec(String),
    #[error("the index exists with other fields; drop it to change them")]
    SpecMismatch,
    #[error("no such index (define it first)")]
    UnknownIndex,
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("search engine failure: {0}")]
    Internal(String),
    /// The journal's database failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Storage(err.into())
    }
}

impl From<db::Error> for Error {
    fn from(err: db::Error) -> Self {
        Self::Storage(err.into())
    }
}

impl From<tantivy::TantivyError> for Error {
    fn from(err: tantivy::TantivyError) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::Internal(err.to_string())
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Tokenized, stemmed (English) full text: searched and highlighted.
    Text,
    /// One exact token (tags, categories, ids): filtered with `eq`.
    Keyword,
    /// A signed 64-bit integer (counts, Unix milliseconds): filtered with ranges.
    Integer,
    /// A 64-bit float: filtered with ranges.
    Float,
}

/// One declared field. Every field is stored and returned with hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldKind,
}

/// The fields of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    pub fields: Vec<FieldSpec>,
}

/// Comparison of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// `field op value` on a keyword, integer or float field.
#[derive(Debug, Clone)]
pub struct Filter {
    pub field: String,
    pub op: FilterOp,
    pub value: Value,
}

/// A search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// tantivy query language over the text fields (`rust AND "error handling"`,
    /// `title:wasm`); empty matches every document.
    pub query: String,
    pub filters: Vec<Filter>,
    /// 1-100 hits per page.
    pub limit: u32,
    pub offset: u32,
    /// Text fields to return highlighted snippets for (`<b>` around matches).
    pub highlight: Vec<String>,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub fields: Map<String, Value>,
    /// HTML snippets by field, matches in `<b>`; text is escaped.
    pub snippets: BTreeMap<String, String>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// Matching documents in all.
    pub total: u64,
    pub hits: Vec<Hit>,
}

type Key = (String, String, String);

/// A plugin's search write, journaled when its call's unit of work commits.
#[derive(Debug, Clone)]
pub struct Journaled {
    /// The journal entry (0 until journaled).
    pub seq: i64,
    pub index: String,
    pub id: String,
    /// The fields to upsert; `None` deletes.
    pub values: Option<Map<String, Value>>,
}

/// All indexes under one directory.
#[derive(Debug)]
pub struct Search {
    root: PathBuf,
    open: Mutex<HashMap<Key, (Arc<TenantIndex>, u64)>>,
    clock: std::sync::atomic::AtomicU64,
    /// Where plugin writes are journaled (none for direct use).
    journal: Option<Db>,
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(Error::InvalidName) }
}

impl Search {
    /// Indexes live under `root/<tenant id>/<plugin>/<name>/`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            open: Mutex::new(HashMap::new()),
            clock: std::sync::atomic::AtomicU64::new(0),
            journal: None,
        }
    }

    /// Journals plugin writes in `db` (see the module docs).
    pub fn with_journal(mut self, db: Db) -> Self {
        self.journal = Some(db);
        self
    }

    fn key(owner: Owner<'_>, name: &str) -> Key {
        (
            owner.tenant.to_string(),
            owner.plugin.to_owned(),
            name.to_owned(),
        )
    }

    fn dir(&self, key: &Key) -> PathBuf {
        // Tenant ids are uuids, plugin and index names are checked: no path
        // component can climb out of the root.
        self.root.join(&key.0).join(&key.1).join(&key.2)
    }

    fn touch(&self) -> u64 {
        self.clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Creates the index, or opens it if it exists with the same fields.
    pub fn define(&self, owner: Owner<'_>, name: &str, spec: &IndexSpec) -> Result<()> {
        check_name(name)?;
        let key = Self::key(owner, name);
        let index = match self.get(&key)? {
            Some(index) => index,
            None => {
                let index = Arc::new(TenantIndex::create(&self.dir(&key), spec)?);
                self.insert(key, index.clone())?;
                index
            }
        };
        if index.spec() != spec {
            Err(Error::SpecMismatch)
        } else {
            Ok(())
        }
    }

    /// The open index, opening it from disk if it exists.
    fn get(&self, key: &Key) -> Result<Option<Arc<TenantIndex>>> {
        let stamp = self.touch();
        if let Some((index, used)) = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
        {
            *used = stamp;
            return Ok(Some(index.clone()));
        }
        let dir = self.dir(key);
        if !TenantIndex::exists(&dir) {
            return Ok(None);
        }
        let index = Arc::new(TenantIndex::open(&dir)?);
        self.insert(key.clone(), index.clone())?;
        Ok(Some(index))
    }

    fn insert(&self, key: Key, index: Arc<TenantIndex>) -> Result<()> {
        let evicted = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.insert(key, (index, self.touch()));
            if open.len() > MAX_OPEN {
                let oldest = open
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone());
                oldest.and_then(|k| open.remove(&k)).map(|(index, _)| index)
            } else {
                None
            }
        };
        if let Some(index) = evicted {
            let committed = index.commit()?;
            self.forget_later(committed);
        }
        Ok(())
    }

    fn existing(&self, owner: Owner<'_>, name: &str) -> Result<Arc<TenantIndex>> {
        check_name(name)?;
        self.get(&Self::key(owner, name))?
            .ok_or(Error::UnknownIndex)
    }

    /// Adds or replaces document `id`; visible after the next commit.
    pub fn upsert(
        &self,
        owner: Owner<'_>,
        name: &str,
        id: &str,
        fields: &Map<String, Value>,
    ) -> Result<()> {
        self.existing(owner, name)?.upsert(id, fields)
    }

    /// Removes document `id`; gone after the next commit.
    pub fn delete(&self, owner: Owner<'_>, name: &str, id: &str) -> Result<()> {
        self.existing(owner, name)?.delete(id)
    }

    /// Commits pending writes of the index now: durable and visible.
    pub fn commit(&self, owner: Owner<'_>, name: &str) -> Result<()> {
        let committed = self.existing(owner, name)?.commit()?;
        self.forget_later(committed);
        Ok(())
    }

    /// Checks a write (`values` to upsert, `None` to delete) against the
    /// index without making it.
    pub fn check(
        &self,
        owner: Owner<'_>,
        name: &str,
        id: &str,
        values: Option<&Map<String, Value>>,
    ) -> Result<()> {
        self.existing(owner, name)?.check(id, values)
    }

    /// Records `writes` (a call's, in the order it made them) in the
    /// journal inside `tx`, its unit of work about to commit: only the last
    /// write of each document, as multi-row inserts; each kept write gets
    /// its journal entry.
    pub async fn journal(
        tx: &mut impl Exec,
        owner: Owner<'_>,
        writes: &mut Vec<Journaled>,
    ) -> Result<(), sqlx::Error> {
        let mut seen = std::collections::HashSet::new();
        let mut last: Vec<Journaled> = Vec::with_capacity(writes.len());
        for w in writes.drain(..).rev() {
            if seen.insert((w.index.clone(), w.id.clone())) {
                last.push(w);
            }
        }
        last.reverse();
        let now = crate::ids::now_ms();
        for range in db::chunk_ranges(last.len()) {
            let rows = range.len();
            let sql = format!(
                "INSERT INTO search_journal (tenant_id, plugin, index_name, doc_id, fields, created_at) \
                 VALUES {} RETURNING seq, index_name, doc_id",
                db::tuples(rows, 6, &[])
            );
            let mut query = Stmt::new(sql);
            for w in &last[range.clone()] {
                let fields = w
                    .values
                    .as_ref()
                    .map(|v| Value::Object(v.clone()).to_string());
                query = query
                    .bind(owner.tenant.as_str())
                    .bind(owner.plugin)
                    .bind(w.index.as_str())
                    .bind(w.id.as_str())
                    .bind(fields)
                    .bind(now);
            }
            // RETURNING has no order: match entries by document, unique here.
            for row in tx.fetch_all(query).await? {
                let (seq, index, id): (i64, String, String) =
                    (row.get(0)?, row.get(1)?, row.get(2)?);
                if let Some(w) = last[range.clone()]
                    .iter_mut()
                    .find(|w| w.index == index && w.id == id)
                {
                    w.seq = seq;
                }
            }
        }
        *writes = last;
        Ok(())
    }

    /// Hands journaled writes whose call has committed to their indexes.
    pub fn apply(&self, owner: Owner<'_>, writes: Vec<Journaled>) {
        for w in writes {
            let applied = self
                .existing(owner, &w.index)
                .and_then(|index| index.apply(Some(w.seq), &w.id, w.values.as_ref()));
            if let Err(err) = applied {
                // Kept in the journal: replayed at the next start.
                tracing::warn!(error = %err, index = %w.index, "search write not applied");
            }
        }
    }

    /// Replays the journal (writes committed by calls but not yet by their
    /// index when the process stopped); returns how many were replayed.
    pub async fn recover(&self) -> Result<usize> {
        let Some(db) = &self.journal else {
            return Ok(0);
        };
        let mut tx = db.begin(Scope::Platform, Mode::Read).await?;
        let rows: Vec<(i64, String, String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT seq, tenant_id, plugin, index_name, doc_id, fields FROM search_journal ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut stale = Vec::new();
        for (seq, tenant, plugin, index, id, fields) in &rows {
            let tenant = crate::ids::TenantId::from_raw(tenant.clone());
            let owner = Owner {
                tenant: &tenant,
                plugin,
            };
            let values = fields
                .as_deref()
                .map(serde_json::from_str::<Map<String, Value>>)
                .transpose()
                .ok()
                .flatten();
            let applied = self
                .existing(owner, index)
                .and_then(|i| i.apply(Some(*seq), id, values.as_ref()));
            if applied.is_err() {
                // The index was dropped, or the write no longer fits it.
                stale.push(*seq);
            }
        }
        forget(db, &stale).await?;
        let committed = self.commit_pending();
        forget(db, &committed).await?;
        Ok(rows.len())
    }

    /// [`forget`] in the background (for synchronous callers).
    fn forget_later(&self, seqs: Vec<i64>) {
        let (Some(db), false) = (self.journal.clone(), seqs.is_empty()) else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(err) = forget(&db, &seqs).await {
                    tracing::warn!(error = %err, "search journal not pruned");
                }
            });
        }
    }

    /// Searches the index (committed documents only).
    pub fn search(
        &self,
        owner: Owner<'_>,
        name: &str,
        request: &SearchRequest,
    ) -> Result<SearchPage> {
        self.existing(owner, name)?.search(request)
    }

    /// Deletes the index, its files and its journal entries (to change its
    /// fields, or rebuild).
    pub async fn drop_index_journaled(&self, owner: Owner<'_>, name: &str) -> Result<bool> {
        let existed = self.drop_index(owner, name)?;
        if let Some(db) = &self.journal {
            let mut tx = db.begin(Scope::Tenant(owner.tenant), Mode::Write).await?;
            Self::forget_index(&mut tx, owner, name).await?;
            tx.commit().await?;
        }
        Ok(existed)
    }

    /// Deletes the journal entries of index `name` in `tx`: after a drop,
    /// nothing is replayed into the index that replaces it.
    pub async fn forget_index(tx: &mut impl Exec, owner: Owner<'_>, name: &str) -> Result<()> {
        tx.execute(
            Stmt::new(
                "DELETE FROM search_journal WHERE tenant_id = $1 AND plugin = $2 AND index_name = $3",
            )
            .bind(owner.tenant.as_str())
            .bind(owner.plugin)
            .bind(name),
        )
        .await?;
        Ok(())
    }

    /// Deletes the index and its files (to change its fields, or rebuild).
    pub fn drop_index(&self, owner: Owner<'_>, name: &str) -> Result<bool> {
        check_name(name)?;
        let key = Self::key(owner, name);
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let dir = self.dir(&key);
        if !TenantIndex::exists(&dir) {
            return Ok(false);
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(true)
    }

    /// Commits every index with pending writes (the committer's tick);
    /// returns the journal entries now durable in their indexes.
    pub fn commit_pending(&self) -> Vec<i64> {
        let open: Vec<_> = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|(i, _)| i.clone())
            .collect();
        let mut committed = Vec::new();
        for index in open {
            match index.commit_if_dirty() {
                Ok(seqs) => committed.extend(seqs),
                Err(err) => tracing::warn!(error = %err, "search commit failed"),
            }
        }
        committed
    }

    /// Starts the committer task.
    pub fn spawn_committer(self: &Arc<Self>, interval: Duration) {
        let search = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let Some(search) = search.upgrade() else {
                    break;
                };
                let committer = search.clone();
                let committed = tokio::task::spawn_blocking(move || committer.commit_pending())
                    .await
                    .unwrap_or_default();
                if let Some(db) = &search.journal
                    && let Err(err) = forget(db, &committed).await
                {
                    tracing::warn!(error = %err, "search journal not pruned");
                }
            }
        });
    }
}

/// Removes journal entries their indexes have committed.
async fn forget(db: &Db, seqs: &[i64]) -> Result<()> {
    for chunk in seqs.chunks(500) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut tx = db.begin(Scope::Platform, Mode::Write).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM search_journal WHERE seq IN ({list})"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
