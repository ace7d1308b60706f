//! One tantivy index: its schema built from the plugin's field spec (kept
//! beside it as `weft-spec.json`), a writer, and a manually reloaded reader.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::query::filter_query;
use super::{Error, FieldKind, FieldSpec, Hit, IndexSpec, Result, SearchPage, SearchRequest};

const SPEC_FILE: &str = "weft-spec.json";
/// The reserved field holding each document's id.
const ID: &str = "id";
const MAX_FIELDS: usize = 32;
/// tantivy's minimum writer arena; plugin indexes are small.
const WRITER_MEMORY: usize = 15_000_000;
const MAX_TEXT_BYTES: usize = 1 << 20;

/// An open index.
pub struct TenantIndex {
    index: Index,
    spec: IndexSpec,
    id: Field,
    fields: Vec<(FieldSpec, Field)>,
    writer: Mutex<Writer>,
    reader: IndexReader,
    dirty: AtomicBool,
}

/// The writer and the journal entries (their `seq`) its pending writes came
/// from: a commit makes exactly those durable.
struct Writer {
    writer: IndexWriter,
    journaled: Vec<i64>,
}

impl std::fmt::Debug for TenantIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantIndex")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

fn check_spec(spec: &IndexSpec) -> Result<()> {
    if spec.fields.is_empty() || spec.fields.len() > MAX_FIELDS {
        return Err(Error::InvalidSpec(format!("1-{MAX_FIELDS} fields")));
    }
    let mut seen = std::collections::HashSet::new();
    for f in &spec.fields {
        let mut bytes = f.name.bytes();
        let ok = f.name.len() <= 64
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(Error::InvalidSpec(format!(
                "field {:?}: names are [a-z][a-z0-9_]{{0,63}}",
                f.name
            )));
        }
        if f.name == ID {
            return Err(Error::InvalidSpec(
                "`id` is reserved for the document id".into(),
            ));
        }
        if !seen.insert(&f.name) {
            return Err(Error::InvalidSpec(format!("field {:?} twice", f.name)));
        }
    }
    if !spec.fields.iter().any(|f| f.kind == FieldKind::Text) {
        return Err(Error::InvalidSpec("at least one text field".into()));
    }
    Ok(())
}

fn build_schema(spec: &IndexSpec) -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field(ID, STRING | STORED);
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    for f in &spec.fields {
        match f.kind {
            FieldKind::Text => builder.add_text_field(&f.name, text.clone()),
            FieldKind::Keyword => builder.add_text_field(&f.name, STRING | STORED | FAST),
            FieldKind::Integer => builder.add_i64_field(&f.name, INDEXED | STORED | FAST),
            FieldKind::Float => builder.add_f64_field(&f.name, INDEXED | STORED | FAST),
        };
    }
    builder.build()
}

impl TenantIndex {
    /// True if an index was created in `dir`.
    pub fn exists(dir: &Path) -> bool {
        dir.join(SPEC_FILE).exists()
    }

    /// Creates an index for `spec` in `dir` (or opens the one there).
    pub fn create(dir: &Path, spec: &IndexSpec) -> Result<Self> {
        check_spec(spec)?;
        if Self::exists(dir) {
            return Self::open(dir);
        }
        std::fs::create_dir_all(dir)?;
        Index::create_in_dir(dir, build_schema(spec))?;
        // Written last: an index without its spec file does not exist yet.
        let tmp = dir.join(format!("{SPEC_FILE}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(spec).map_err(|e| Error::Internal(e.to_string()))?,
        )?;
        std::fs::rename(tmp, dir.join(SPEC_FILE))?;
        Self::open(dir)
    }

    /// Opens the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let spec: IndexSpec = serde_json::from_slice(&std::fs::read(dir.join(SPEC_FILE))?)
            .map_err(|e| Error::Internal(format!("spec file: {e}")))?;
        let index = Index::open_in_dir(dir)?;
        let schema = index.schema();
        let id = schema.get_field(ID)?;
        let fields = spec
            .fields
            .iter()
            .map(|f| Ok((f.clone(), schema.get_field(&f.name)?)))
            .collect::<Result<Vec<_>>>()?;
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            spec,
            id,
            fields,
            writer: Mutex::new(Writer {
                writer,
                journaled: Vec::new(),
            }),
            reader,
            dirty: AtomicBool::new(false),
        })
    }

    /// The declared fields.
    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_id(id: &str) -> Result<()> {
        if id.is_empty() || id.len() > 256 {
            return Err(Error::InvalidDocument("ids are 1-256 bytes".into()));
        }
        Ok(())
    }

    /// Replaces document `id` with `values` (only declared fields).
    pub fn upsert(&self, id: &str, values: &Map<String, Value>) -> Result<()> {
        self.apply(None, id, Some(values))
    }

    /// Removes document `id`.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.apply(None, id, None)
    }

    /// Checks that `values` make a document of this index, writing nothing.
    pub fn check(&self, id: &str, values: Option<&Map<String, Value>>) -> Result<()> {
        match values {
            Some(values) => self.document(id, values).map(drop),
            None => Self::check_id(id),
        }
    }

    /// Upserts (`values`) or deletes (`None`) document `id`; `seq` is the
    /// journal entry the write came from, forgotten once committed.
    pub fn apply(
        &self,
        seq: Option<i64>,
        id: &str,
        values: Option<&Map<String, Value>>,
    ) -> Result<()> {
        let doc = match values {
            Some(values) => Some(self.document(id, values)?),
            None => {
                Self::check_id(id)?;
                None
            }
        };
        let mut writer = self.writer();
        writer
            .writer
            .delete_term(Term::from_field_text(self.id, id));
        if let Some(doc) = doc {
            writer.writer.add_document(doc)?;
        }
        writer.journaled.extend(seq);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn document(&self, id: &str, values: &Map<String, Value>) -> Result<TantivyDocument> {
        Self::check_id(id)?;
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, id);
        for (name, value) in values {
            let Some((spec, field)) = self.fields.iter().find(|(s, _)| &s.name == name) else {
                return Err(Error::InvalidDocument(format!(
                    "field {name:?} is not declared"
                )));
            };
            let wrong = || {
                Error::InvalidDocument(
                    format!("field {name:?} must be {:?}", spec.kind).to_lowercase(),
                )
            };
            match (spec.kind, value) {
                (_, Value::Null) => {}
                (FieldKind::Text | FieldKind::Keyword, Value::String(s)) => {
                    if s.len() > MAX_TEXT_BYTES {
                        return Err(Error::InvalidDocument(format!(
                            "field {name:?} is over {MAX_TEXT_BYTES} bytes"
                        )));
                    }
                    doc.add_text(*field, s);
                }
                (FieldKind::Keyword, Value::Array(items)) => {
                    for item in items {
                        doc.add_text(*field, item.as_str().ok_or_else(wrong)?);
                    }
                }
                (FieldKind::Integer, Value::Number(n)) => {
                    doc.add_i64(*field, n.as_i64().ok_or_else(wrong)?)
                }
                (FieldKind::Float, Value::Number(n)) => {
                    doc.add_f64(*field, n.as_f64().ok_or_else(wrong)?)
                }
                _ => return Err(wrong()),
            }
        }
        Ok(doc)
    }

    /// Commits pending writes and makes them visible; returns the journal
    /// entries now durable in the index.
    pub fn commit(&self) -> Result<Vec<i64>> {
        let mut writer = self.writer();
        self.dirty.store(false, Ordering::Release);
        writer.writer.commit()?;
        let journaled = std::mem::take(&mut writer.journaled);
        drop(writer);
        self.reader.reload()?;
        Ok(journaled)
    }

    /// Commits if anything was written since the last commit.
    pub fn commit_if_dirty(&self) -> Result<Vec<i64>> {
        if self.dirty.load(Ordering::Acquire) {
            self.commit()
        } else {
            Ok(Vec::new())
        }
    }

    /// Runs `request` over the committed documents.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage> {
        if request.limit == 0 || request.limit > 100 {
            return Err(Error::InvalidQuery("limit is 1-100".into()));
        }
        if request.query.len() > 4096 {
            return Err(Error::InvalidQuery("query is at most 4096 bytes".into()));
        }
        let searcher = self.reader.searcher();
        let text_fields: Vec<Field> = self
            .fields
            .iter()
            .filter(|(s, _)| s.kind == FieldKind::Text)
            .map(|(_, f)| *f)
            .collect();
        let text_query: Box<dyn Query> = if request.query.trim().is_empty() {
            Box::new(AllQuery)
        } else {
            let mut parser = QueryParser::for_index(&self.index, text_fields);
            parser.set_conjunction_by_default();
            parser
                .parse_query(&request.query)
                .map_err(|e| Error::InvalidQuery(e.to_string()))?
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text_query.box_clone())];
        for filter in &request.filters {
            let (spec, field) = self
                .fields
                .iter()
                .find(|(s, _)| s.name == filter.field)
                .ok_or_else(|| {
                    Error::InvalidQuery(format!("field {:?} is not declared", filter.field))
                })?;
            clauses.push((Occur::Must, filter_query(spec, *field, filter)?));
        }
        let query = BooleanQuery::new(clauses);
        let top = TopDocs::with_limit(request.limit as usize)
            .and_offset(request.offset as usize)
            .order_by_score();
        let (top, total) = searcher.search(&query, &(top, Count))?;

        let mut generators = Vec::new();
        for name in &request.highlight {
            let Some((spec, field)) = self.fields.iter().find(|(s, _)| &s.name == name) else {
                return Err(Error::InvalidQuery(format!(
                    "cannot highlight undeclared field {name:?}"
                )));
            };
            if spec.kind != FieldKind::Text {
                return Err(Error::InvalidQuery(format!(
                    "only text fields are highlighted, not {name:?}"
                )));
            }
            let mut generator = SnippetGenerator::create(&searcher, &*text_query, *field)?;
            generator.set_max_num_chars(200);
            generators.push((name.clone(), generator));
        }
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let id = doc
                .get_first(self.id)
                .and_then(|v| tantivy::schema::Value::as_str(&v))
                .unwrap_or_default()
                .to_owned();
            let mut fields = Map::new();
            for (spec, field) in &self.fields {
                let values: Vec<Value> = doc
                    .get_all(*field)
                    .filter_map(|v| {
                        use tantivy::schema::Value as _;
                        match spec.kind {
                            FieldKind::Text | FieldKind::Keyword => v.as_str().map(Value::from),
                            FieldKind::Integer => v.as_i64().map(Value::from),
                            FieldKind::Float => v.as_f64().map(Value::from),
                        }
                    })
                    .collect();
                match values.len() {
                    0 => {}
                    1 if spec.kind != FieldKind::Keyword => {
                        fields.insert(
                            spec.name.clone(),
                            values.into_iter().next().unwrap_or(Value::Null),
                        );
                    }
                    _ => {
                        fields.insert(spec.name.clone(), Value::Array(values));
                    }
                }
            }
            let snippets = generators
                .iter()
                .map(|(name, generator)| (name.clone(), generator.snippet_from_doc(&doc).to_html()))
                .filter(|(_, html)| !html.is_empty())
                .collect();
            hits.push(Hit {
                id,
                score,
                fields,
                snippets,
            });
        }
        Ok(SearchPage {
            total: total as u64,
            hits,
        })
    }
}
