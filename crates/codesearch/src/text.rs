//! The keyword half of hybrid search: BM25 over tantivy with the fields
//! weighted (title, tags, description, code) and analysed by the
//! code-aware tokenizer, lower-cased and stemmed so a question in prose
//! meets the identifiers in code.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value as _,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};

use crate::tokenizer::{CODE_TOKENIZER, CodeTokenizer};
use crate::{Doc, Error, Filter};

/// The weight of a term found in each field: a word in the title says more
/// about what the item is than the same word somewhere in its code.
pub const FIELD_WEIGHTS: [(&str, f32); 4] = [
    ("title", 3.0),
    ("tags", 2.5),
    ("description", 1.5),
    ("code", 1.0),
];

/// Writer arena per indexing thread; tantivy's minimum is 15 MB.
const WRITER_MEMORY: usize = 64_000_000;

pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    text: [Field; 4],
    language: Field,
    kind: Field,
    tag: Field,
    quality: Field,
}

/// One BM25 hit: the item's key, its score and, when asked, which query
/// terms each field matched.
#[derive(Clone, Debug)]
pub struct TextHit {
    pub key: String,
    pub score: f32,
}

impl TextIndex {
    /// An index held in memory; the items' database is the source of
    /// truth, so it is rebuilt from there at start.
    pub fn in_ram(threads: usize) -> Result<Self, Error> {
        let mut builder = Schema::builder();
        let key = builder.add_text_field("key", STRING | STORED);
        let analysed = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(CODE_TOKENIZER)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
            .set_stored();
        let text = FIELD_WEIGHTS.map(|(name, _)| builder.add_text_field(name, analysed.clone()));
        let language = builder.add_text_field("language", STRING);
        let kind = builder.add_text_field("kind", STRING);
        let tag = builder.add_text_field("tag", STRING);
        let quality = builder.add_f64_field("quality", INDEXED | FAST);
        let index = Index::create_in_ram(builder.build());
        index.tokenizers().register(CODE_TOKENIZER, analyzer());
        let writer =
            index.writer_with_num_threads(threads.max(1), WRITER_MEMORY * threads.max(1))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields: Fields {
                key,
                text,
                language,
                kind,
                tag,
                quality,
            },
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the item `doc.key` (visible after [`TextIndex::commit`]).
    pub fn upsert(&self, doc: &Doc) -> Result<(), Error> {
        let f = self.fields;
        let mut d = TantivyDocument::default();
        d.add_text(f.key, &doc.key);
        d.add_text(f.text[0], &doc.title);
        d.add_text(f.text[1], doc.tags.join(" "));
        d.add_text(f.text[2], &doc.description);
        d.add_text(f.text[3], &doc.code);
        d.add_text(f.language, &doc.language);
        d.add_text(f.kind, &doc.kind);
        for tag in &doc.tags {
            d.add_text(f.tag, tag);
        }
        d.add_f64(f.quality, doc.quality);
        let writer = self.writer();
        writer.delete_term(Term::from_field_text(f.key, &doc.key));
        writer.add_document(d)?;
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        self.writer()
            .delete_term(Term::from_field_text(self.fields.key, key));
    }

    /// Makes every write so far searchable.
    pub fn commit(&self) -> Result<(), Error> {
        self.writer().commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// The query's distinct analysed terms, in order of first appearance.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            if seen.insert(token.text.clone()) {
                out.push(token.text.clone());
            }
        }
        out
    }

    /// A point-in-time view for [`TextIndex::search`] and [`Stats`].
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The best `limit` items of `searcher` (this index's) for `terms`
    /// (from [`TextIndex::terms`]) that pass `filter`, best first, scored
    /// with the term statistics of `stats`: those of every index searched
    /// together, so the scores of a small index and a large one compare.
    pub fn search(
        &self,
        searcher: &Searcher,
        stats: &Stats<'_>,
        terms: &[String],
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<TextHit>, Error> {
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in terms {
            for (field, (_, weight)) in f.text.iter().zip(FIELD_WEIGHTS) {
                let query = TermQuery::new(
                    Term::from_field_text(*field, term),
                    IndexRecordOption::WithFreqs,
                );
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(query), weight)),
                ));
            }
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(should)))];
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(language) = &filter.language {
            clauses.push((Occur::Must, exact(f.language, language)));
        }
        if let Some(kind) = &filter.kind {
            clauses.push((Occur::Must, exact(f.kind, kind)));
        }
        for tag in &filter.tags {
            clauses.push((Occur::Must, exact(f.tag, tag)));
        }
        if let Some(min) = filter.min_quality {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_f64(f.quality, min)),
                    Bound::Unbounded,
                )),
            ));
        }
        let top = searcher.search_with_statistics_provider(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(limit).order_by_score(),
            stats,
        )?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let key = doc
                .get_first(f.key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            hits.push(TextHit { key, score });
        }
        Ok(hits)
    }

    /// Where item `key` is in `searcher`, if it is there.
    fn address(&self, searcher: &Searcher, key: &str) -> Result<Option<DocAddress>, Error> {
        let top = searcher.search(
            &TermQuery::new(
                Term::from_field_text(self.fields.key, key),
                IndexRecordOption::Basic,
            ),
            &TopDocs::with_limit(1).order_by_score(),
        )?;
        Ok(top.first().map(|(_, address)| *address))
    }

    /// The share of `terms` item `key` holds in any field, read from the
    /// postings (no stored document is decoded, unlike
    /// [`TextIndex::matched_terms`], which also says where each term is).
    pub fn coverage(&self, key: &str, terms: &[String]) -> Result<f32, Error> {
        if terms.is_empty() {
            return Ok(0.0);
        }
        let f = self.fields;
        let searcher = self.reader.searcher();
        let Some(address) = self.address(&searcher, key)? else {
            return Ok(0.0);
        };
        let segment = searcher.segment_reader(address.segment_ord);
        let mut held = 0usize;
        let unique: BTreeSet<&String> = terms.iter().collect();
        'terms: for term in unique {
            for field in f.text {
                let postings = segment
                    .inverted_index(field)?
                    .read_postings(
                        &Term::from_field_text(field, term),
                        IndexRecordOption::Basic,
                    )
                    .map_err(tantivy::TantivyError::from)?;
                // A fresh postings list stands on its first document;
                // seeking backwards is not allowed.
                if let Some(mut p) = postings
                    && p.doc() <= address.doc_id
                    && p.seek(address.doc_id) == address.doc_id
                {
                    held += 1;
                    continue 'terms;
                }
            }
        }
        Ok(held as f32 / terms.len() as f32)
    }

    /// Which of `terms` each text field of item `key` holds: the "why" of
    /// a keyword match.
    pub fn matched_terms(
        &self,
        key: &str,
        terms: &[String],
    ) -> Result<BTreeMap<&'static str, Vec<String>>, Error> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut out = BTreeMap::new();
        let Some(address) = self.address(&searcher, key)? else {
            return Ok(out);
        };
        let doc: TantivyDocument = searcher.doc(address)?;
        for (field, (name, _)) in f.text.iter().zip(FIELD_WEIGHTS) {
            let text: String = doc
                .get_all(*field)
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
                .join(" ");
            let have: BTreeSet<String> = self.terms(&text).into_iter().collect();
            let found: Vec<String> = terms
                .iter()
                .filter(|t| have.contains(*t))
                .cloned()
                .collect();
            if !found.is_empty() {
                out.insert(name, found);
            }
        }
        Ok(out)
    }

    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The schema, for tests that look inside.
    pub fn index(&self) -> &Index {
        &self.index
    }
}

/// The BM25 statistics of several indexes of one schema taken as one:
/// a tenant's few items are scored against the same document frequencies
/// as the global library's, instead of every word looking rare in a
/// small index. (The global index's statistics are public; a tenant's
/// only ever join its own searches.)
pub struct Stats<'a>(pub &'a [Searcher]);

impl Bm25StatisticsProvider for Stats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        self.0.iter().map(|s| s.total_num_tokens(field)).sum()
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        self.0
            .iter()
            .map(Bm25StatisticsProvider::total_num_docs)
            .sum()
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        self.0.iter().map(|s| s.doc_freq(term)).sum()
    }
}

/// Words that say nothing about which item answers a question: Lucene's
/// English list and the words of a question itself ("how do I …").
/// Identifiers that contain them keep their whole form (`useThis`).
const STOP_WORDS: [&str; 52] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with", "how", "do", "does", "i", "my", "me", "we", "our",
    "you", "your", "what", "when", "where", "which", "who", "why", "can", "should", "want",
];

/// Code-aware words, lower-cased, stop words dropped and stemmed
/// (English), with very long tokens (minified blobs, base64) dropped.
fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(CodeTokenizer::default())
        .filter(RemoveLongFilter::limit(48))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(STOP_WORDS.map(str::to_owned)))
        .filter(Stemmer::new(Language::English))
        .build()
}
