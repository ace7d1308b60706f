//! The code library's search core, free of storage and HTTP: the host
//! keeps items in its database and feeds them here.
//!
//! A [`Shard`] is the index of one owner's items — the global library, or
//! one tenant's own — holding a BM25 index ([`text`]) and a vector index
//! ([`vectors`]). A search runs over the shards the caller may see (the
//! global one and the caller's tenant's), so another tenant's items are
//! never even in the candidate set, and their term statistics never sway
//! the scores. The two ranked lists are fused by reciprocal rank fusion,
//! weighted by a `semantic_ratio` as in Meilisearch: 0 is keywords only,
//! 1 is meaning only.

pub mod embed;
pub mod eval;
pub mod extract;
pub mod quality;
pub mod text;
pub mod tokenizer;
pub mod vectors;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use text::TextIndex;
use vectors::{Graph, VectorIndex};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("embedding model files missing: {0}")]
    ModelMissing(String),
    #[error("embedding model: {0}")]
    Model(String),
}

/// What the indexes need of an item version.
#[derive(Clone, Debug, Default)]
pub struct Doc {
    pub key: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub language: String,
    pub kind: String,
    pub code: String,
    pub quality: f64,
}

/// Conditions every result meets. Tags: all of them.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub language: Option<String>,
    pub kind: Option<String>,
    pub tags: Vec<String>,
    pub min_quality: Option<f64>,
}

/// The filter fields of an item, kept in memory so vector candidates are
/// filtered without touching the text index.
#[derive(Clone, Debug)]
struct Meta {
    language: String,
    kind: String,
    tags: Vec<String>,
    quality: f64,
}

impl Filter {
    fn accepts(&self, m: &Meta) -> bool {
        self.language.as_ref().is_none_or(|l| *l == m.language)
            && self.kind.as_ref().is_none_or(|k| *k == m.kind)
            && self.tags.iter().all(|t| m.tags.contains(t))
            && self.min_quality.is_none_or(|q| m.quality >= q)
    }
}

/// One owner's items.
#[derive(Default)]
pub struct Shard {
    text: Option<TextIndex>,
    vectors: RwLock<VectorIndex>,
    meta: RwLock<HashMap<String, Meta>>,
}

impl Shard {
    /// An empty shard; `threads` index in parallel on bulk loads.
    pub fn new(threads: usize) -> Result<Self, Error> {
        Ok(Self {
            text: Some(TextIndex::in_ram(threads)?),
            ..Self::default()
        })
    }

    fn text(&self) -> &TextIndex {
        // Only `new` makes shards; `Default` exists for the field defaults.
        self.text
            .as_ref()
            .unwrap_or_else(|| unreachable!("a shard is made by Shard::new"))
    }

    /// Adds or replaces `doc`; without a vector it is found by keywords only.
    pub fn upsert(&self, doc: &Doc, vector: Option<Arc<[f32]>>) -> Result<(), Error> {
        self.text().upsert(doc)?;
        let mut vectors = self.vectors.write().unwrap_or_else(|p| p.into_inner());
        match vector {
            Some(v) => vectors.upsert(&doc.key, v),
            None => vectors.delete(&doc.key),
        }
        drop(vectors);
        self.meta.write().unwrap_or_else(|p| p.into_inner()).insert(
            doc.key.clone(),
            Meta {
                language: doc.language.clone(),
                kind: doc.kind.clone(),
                tags: doc.tags.clone(),
                quality: doc.quality,
            },
        );
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        self.text().delete(key);
        self.vectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .delete(key);
        self.meta
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Makes the writes so far visible to keyword search (vectors are at once).
    pub fn commit(&self) -> Result<(), Error> {
        self.text().commit()
    }

    pub fn len(&self) -> usize {
        self.meta.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds the HNSW graph when the shard holds `threshold` vectors or
    /// more and has none, or a stale one. Blocking and slow: callers run it
    /// on a thread of its own; searches go on meanwhile. Returns whether
    /// it built one.
    pub fn maintain(&self, threshold: usize, ef_search: usize) -> bool {
        let (points, covers) = {
            let vectors = self.vectors.read().unwrap_or_else(|p| p.into_inner());
            if !vectors.needs_graph(threshold) {
                return false;
            }
            vectors.snapshot()
        };
        let graph = Graph::build(points, covers, ef_search);
        self.vectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .install(graph);
        true
    }

    pub fn has_graph(&self) -> bool {
        self.vectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .has_graph()
    }

    pub fn vector(&self, key: &str) -> Option<Vec<f32>> {
        self.vectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(<[f32]>::to_vec)
    }
}

/// A search over some shards.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub text: &'a str,
    /// The query's unit vector; `None` when no model is loaded.
    pub embedding: Option<&'a [f32]>,
    pub filter: &'a Filter,
    /// 0.0 keywords only … 1.0 meaning only.
    pub semantic_ratio: f32,
    pub limit: usize,
    /// Whether every result says which terms it matched (the best always does).
    pub explain: bool,
    /// Compare every vector even where a graph exists (evaluation).
    pub exact: bool,
}

/// The `k` of reciprocal rank fusion: how much the top ranks count over
/// the rest; 60 is the value of the original paper and of most engines.
pub const RRF_K: f32 = 60.0;

/// The default weight of meaning against keywords. On the held-out
/// evaluation set (BENCHMARKS.md) the dense model alone ranks better than
/// BM25 alone (nDCG@10 0.82 against 0.73), and fusion beats both from a
/// ratio of about 0.6; 0.7 was best of 0.3-0.7 on each half of the set.
pub const DEFAULT_SEMANTIC_RATIO: f32 = 0.7;

/// The similarity a vector candidate must exceed to be ranked at all.
pub const MIN_SIMILARITY: f32 = 0.0;

#[derive(Clone, Debug, Serialize)]
pub struct Match {
    pub key: String,
    /// The index into the shards the request searched.
    #[serde(skip)]
    pub shard: usize,
    /// The fused score (ranking only; not comparable across queries).
    pub score: f32,
    /// How well the item answers the query, 0..1, comparable across
    /// queries (see [`confidence`]). Search-first generation compares it
    /// with its threshold.
    pub confidence: f32,
    pub why: Why,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Why {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<KeywordWhy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticWhy>,
}

#[derive(Clone, Debug, Serialize)]
pub struct KeywordWhy {
    pub rank: usize,
    pub bm25: f32,
    /// The query terms (analysed: lower-cased, stemmed) each field holds.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub matched: BTreeMap<&'static str, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term_coverage: Option<f32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SemanticWhy {
    pub rank: usize,
    pub similarity: f32,
    /// How much closer to the query than the closest other item (negative
    /// when another item is closer).
    pub margin: f32,
}

/// Runs `request` over `shards` (none may be empty of a text index).
pub fn search(shards: &[&Shard], request: &Request<'_>) -> Result<Vec<Match>, Error> {
    let Some(first) = shards.first() else {
        return Ok(Vec::new());
    };
    let ratio = if request.embedding.is_some() {
        request.semantic_ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let depth = (request.limit * 4).max(40);
    let terms = first.text().terms(request.text);

    // Keyword candidates from every shard, merged by BM25 score.
    let mut keyword: Vec<(String, usize, f32)> = Vec::new();
    if ratio < 1.0 {
        let searchers: Vec<tantivy::Searcher> =
            shards.iter().map(|s| s.text().searcher()).collect();
        let stats = text::Stats(&searchers);
        for (i, shard) in shards.iter().enumerate() {
            for hit in shard
                .text()
                .search(&searchers[i], &stats, &terms, request.filter, depth)?
            {
                keyword.push((hit.key, i, hit.score));
            }
        }
        keyword.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        keyword.truncate(depth);
    }
    // Semantic candidates, merged by similarity.
    let mut semantic: Vec<(String, usize, f32)> = Vec::new();
    if let (Some(query), true) = (request.embedding, ratio > 0.0) {
        for (i, shard) in shards.iter().enumerate() {
            let meta = shard.meta.read().unwrap_or_else(|p| p.into_inner());
            let accept = |key: &str| meta.get(key).is_some_and(|m| request.filter.accepts(m));
            let vectors = shard.vectors.read().unwrap_or_else(|p| p.into_inner());
            for (key, sim) in vectors.nearest(query, depth, &accept, request.exact) {
                // Unrelated texts sit near zero (MiniLM); an item no closer
                // than that is not a semantic candidate at all.
                if sim > MIN_SIMILARITY {
                    semantic.push((key, i, sim));
                }
            }
        }
        semantic.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        semantic.truncate(depth);
    }
    // The two best similarities: an item's margin is how far it stands
    // from the closest other one.
    let best = semantic.first().map_or(0.0, |c| c.2);
    let second = semantic.get(1).map_or(0.0, |c| c.2);
    let margin = |rank: usize, similarity: f32| {
        if rank == 0 {
            similarity - second
        } else {
            similarity - best
        }
    };

    let mut fused: HashMap<(String, usize), Match> = HashMap::new();
    for (rank, (key, shard, bm25)) in keyword.into_iter().enumerate() {
        let m = fused
            .entry((key.clone(), shard))
            .or_insert_with(|| blank(key, shard));
        m.score += (1.0 - ratio) / (RRF_K + rank as f32 + 1.0);
        m.why.keyword = Some(KeywordWhy {
            rank: rank + 1,
            bm25,
            matched: BTreeMap::new(),
            term_coverage: None,
        });
    }
    for (rank, (key, shard, similarity)) in semantic.into_iter().enumerate() {
        let m = fused
            .entry((key.clone(), shard))
            .or_insert_with(|| blank(key, shard));
        m.score += ratio / (RRF_K + rank as f32 + 1.0);
        m.why.semantic = Some(SemanticWhy {
            rank: rank + 1,
            similarity,
            margin: margin(rank, similarity),
        });
    }
    let mut out: Vec<Match> = fused.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
    out.truncate(request.limit);

    for m in &mut out {
        let text = shards[m.shard].text();
        let coverage = if request.explain {
            let matched = text.matched_terms(&m.key, &terms)?;
            let held = matched
                .values()
                .flatten()
                .collect::<std::collections::BTreeSet<&String>>()
                .len();
            if let Some(k) = &mut m.why.keyword {
                k.matched = matched;
            }
            if terms.is_empty() {
                0.0
            } else {
                held as f32 / terms.len() as f32
            }
        } else {
            text.coverage(&m.key, &terms)?
        };
        if let Some(k) = &mut m.why.keyword {
            k.term_coverage = Some(coverage);
        }
        let similarity = match (&m.why.semantic, request.embedding) {
            (Some(s), _) => Some((s.similarity, s.margin)),
            // Found by keywords only: its similarity is still known.
            (None, Some(q)) if ratio > 0.0 => shards[m.shard]
                .vector(&m.key)
                .map(|v| vectors::dot(q, &v))
                .map(|s| (s, s - best)),
            _ => None,
        };
        let first_in_both = m.why.keyword.as_ref().is_some_and(|k| k.rank == 1)
            && m.why.semantic.as_ref().is_some_and(|s| s.rank == 1);
        m.confidence = match similarity {
            Some((similarity, margin)) => confidence(&Evidence {
                similarity,
                coverage,
                first_in_both,
                margin,
            }),
            None => coverage,
        };
    }
    Ok(out)
}

/// What the confidence of a match is computed from.
#[derive(Clone, Copy, Debug)]
pub struct Evidence {
    /// The item's cosine similarity to the query.
    pub similarity: f32,
    /// The share of the query's (analysed) terms the item holds.
    pub coverage: f32,
    /// The item ranks first by keywords and first by meaning.
    pub first_in_both: bool,
    /// Its similarity less the closest other item's.
    pub margin: f32,
}

/// The weights of [`confidence`], fitted by logistic regression
/// (`scripts/fit-confidence.py`) on the best match of each held-out query
/// (right or wrong) and of 60 requests the seed library has no answer for
/// (`tests/data/library-calibration/misses.json`), with MiniLM vectors.
/// Fitted on either half and tested on the other, a threshold of 0.6
/// serves 69-75 % of the queries, 90-93 % of them with a relevant item, and
/// 1-3 of 30 unanswerable requests (BENCHMARKS.md).
const CONFIDENCE_BIAS: f32 = -4.62;
const CONFIDENCE_SIMILARITY: f32 = 3.16;
const CONFIDENCE_COVERAGE: f32 = 6.44;
const CONFIDENCE_FIRST_IN_BOTH: f32 = 0.48;
const CONFIDENCE_MARGIN: f32 = 3.11;

/// How likely an item with `e` is a right answer to the query, 0..1: a
/// logistic model of the similarity, the terms held, whether keywords and
/// meaning agree on it and how far it stands from the next item. Without a
/// query vector the confidence is the share of the terms held alone.
pub fn confidence(e: &Evidence) -> f32 {
    let z = CONFIDENCE_BIAS
        + CONFIDENCE_SIMILARITY * e.similarity
        + CONFIDENCE_COVERAGE * e.coverage
        + CONFIDENCE_FIRST_IN_BOTH * f32::from(u8::from(e.first_in_both))
        + CONFIDENCE_MARGIN * e.margin;
    1.0 / (1.0 + (-z).exp())
}

fn blank(key: String, shard: usize) -> Match {
    Match {
        key,
        shard,
        score: 0.0,
        confidence: 0.0,
        why: Why::default(),
    }
}

#[cfg(test)]
mod tests;
