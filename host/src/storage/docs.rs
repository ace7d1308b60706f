//! JSON document collections of one (tenant, plugin), queried with
//! equality/range filters on top-level fields, ordering and keyset paging.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::unit::{Slot, UnitOfWork};
use super::{Error, Owner, Reader, Result, Storage};
use crate::db::{self, Engine, Exec, Row, Stmt};
use crate::ids::now_ms;

/// Most documents in one page.
pub const MAX_PAGE: u32 = 1000;
const MAX_FILTERS: usize = 16;
const MAX_CURSOR_CHARS: usize = 2048;

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    /// The JSON object, as text.
    pub body: String,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Comparison of a field with a JSON scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// `field op value`, `field` a top-level key of the body, or `id`.
#[derive(Debug, Clone)]
pub struct Filter {
    pub field: String,
    pub op: FilterOp,
    /// JSON text of a scalar.
    pub value: String,
}

/// Order by a top-level field (or `id`); ties broken by id.
#[derive(Debug, Clone)]
pub struct Order {
    pub field: String,
    pub descending: bool,
}

/// A query over one collection.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filters: Vec<Filter>,
    pub order: Option<Order>,
    pub limit: u32,
    pub cursor: Option<String>,
}

/// A page of documents.
#[derive(Debug, Clone)]
pub struct DocumentPage {
    pub documents: Vec<Document>,
    pub next_cursor: Option<String>,
}

/// Where a page ended: enough to continue the same query after it.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// Order field.
    f: String,
    /// Descending?
    d: bool,
    /// Value of the order field in the last document.
    v: Value,
    /// Id of the last document.
    id: String,
}

fn check_collection(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidCollection(
            "collections are 1-64 characters of a-z, 0-9, '_' and '-'".into(),
        ))
    }
}

fn check_id(id: &str) -> Result<()> {
    let ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(
            "ids are 1-128 characters of A-Z, a-z, 0-9, '_', '-', '.' and ':'".into(),
        ))
    }
}

fn check_field(field: &str) -> Result<()> {
    let mut bytes = field.bytes();
    let ok = field.len() <= 64
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidQuery(format!(
            "field {field:?}: fields are 1-64 characters of A-Z, a-z, 0-9 and '_'"
        )))
    }
}

/// A value bound into a query.
enum Arg {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Builds SQL text and its arguments together so placeholders always match.
struct Sql {
    text: String,
    args: Vec<Arg>,
    engine: Engine,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// A placeholder for a JSON scalar, typed the way the engine compares
    /// field values: SQLite's json_extract yields SQL scalars, PostgreSQL
    /// compares jsonb with jsonb.
    fn json_arg(&mut self, value: &Value) -> Result<String> {
        match self.engine {
            Engine::Postgres => Ok(format!("{}::jsonb", self.arg(Arg::Text(value.to_string())))),
            Engine::Sqlite => Ok(match value {
                Value::String(s) => self.arg(Arg::Text(s.clone())),
                Value::Bool(b) => self.arg(Arg::Bool(*b)),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => self.arg(Arg::Int(i)),
                    None => self.arg(Arg::Float(n.as_f64().unwrap_or(f64::NAN))),
                },
                Value::Null | Value::Array(_) | Value::Object(_) => {
                    return Err(Error::InvalidQuery(
                        "only strings, numbers and booleans compare".into(),
                    ));
                }
            }),
        }
    }

    /// The SQL expression of a field.
    fn field(&self, field: &str) -> String {
        if field == "id" {
            return "id".into();
        }
        // `field` passed check_field, so it is safe inside the literal.
        match self.engine {
            Engine::Sqlite => format!("json_extract(body, '$.{field}')"),
            // JSON null and a missing key both become SQL NULL, as on SQLite.
            Engine::Postgres => format!("NULLIF(body -> '{field}', 'null'::jsonb)"),
        }
    }
}

fn parse_scalar(text: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::InvalidQuery(format!("filter value is not JSON: {e}")))?;
    if value.is_array() || value.is_object() {
        return Err(Error::InvalidQuery("filter values are JSON scalars".into()));
    }
    Ok(value)
}

fn op_sql(op: FilterOp) -> &'static str {
    match op {
        FilterOp::Eq => "=",
        FilterOp::Ne => "<>",
        FilterOp::Lt => "<",
        FilterOp::Lte => "<=",
        FilterOp::Gt => ">",
        FilterOp::Gte => ">=",
    }
}

/// A document from a row of `id, body, version, created_at, updated_at`.
fn document_from_row(row: &Row) -> Result<Document> {
    Ok(Document {
        id: row.get(0)?,
        body: row.get(1)?,
        version: u64::try_from(row.get::<i64>(2)?).unwrap_or(0),
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

impl Storage {
    fn body_select(&self) -> &'static str {
        match self.db.engine() {
            Engine::Sqlite => "id, body, version, created_at, updated_at",
            Engine::Postgres => "id, body::text AS body, version, created_at, updated_at",
        }
    }

    /// Creates or replaces document `id`; with `if_version`, only if the
    /// stored version equals it (0: only if absent). Written at the unit's
    /// flush; the returned document is what will be stored.
    pub async fn docs_put(
        &self,
        unit: &mut UnitOfWork,
        collection: &str,
        id: &str,
        body: &str,
        if_version: Option<u64>,
    ) -> Result<Document> {
        check_collection(collection)?;
        check_id(id)?;
        if body.len() as u64 > self.quotas.max_document_bytes {
            return Err(Error::DocumentTooLarge(self.quotas.max_document_bytes));
        }
        let value: Value =
            serde_json::from_str(body).map_err(|e| Error::InvalidJson(e.to_string()))?;
        if !value.is_object() {
            return Err(Error::InvalidJson("a document is a JSON object".into()));
        }
        let body = value.to_string();
        let current = self.docs_current(unit, collection, id).await?;
        let old_version = current.as_ref().map_or(0, |d| d.version);
        if let Some(expected) = if_version
            && old_version != expected
        {
            return Err(Error::VersionConflict(old_version));
        }
        let now = now_ms();
        let doc = Document {
            id: id.to_owned(),
            body,
            version: old_version + 1,
            created_at: current.as_ref().map_or(now, |d| d.created_at),
            updated_at: now,
        };
        let stored = unit.doc_stored(collection, id);
        let slot = Slot {
            stored,
            current: Some(Some(doc.clone())),
            dirty: true,
        };
        self.put_doc_slot(unit, collection, id, slot).await?;
        Ok(doc)
    }

    /// Document `id` of `collection`.
    pub async fn docs_get(
        &self,
        reader: Reader<'_>,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>> {
        check_collection(collection)?;
        check_id(id)?;
        match reader {
            Reader::Tx(tx, owner) => Ok(self
                .docs_stored(tx, owner, collection, id)
                .await?
                .map(|(doc, _)| doc)),
            Reader::Unit(unit) => self.docs_current(unit, collection, id).await,
        }
    }

    /// What the unit's call sees of document `id`, read once from the database.
    async fn docs_current(
        &self,
        unit: &mut UnitOfWork,
        collection: &str,
        id: &str,
    ) -> Result<Option<Document>> {
        if let Some(current) = unit
            .doc_slot(collection, id)
            .and_then(|s| s.current.clone())
        {
            return Ok(current);
        }
        let (tx, owner) = unit.parts();
        let found = self.docs_stored(tx, owner, collection, id).await?;
        let (doc, size) = match found {
            Some((doc, size)) => (Some(doc), Some(size)),
            None => (None, None),
        };
        unit.set_doc_slot(collection, id, Slot::read(doc.clone(), size));
        Ok(doc)
    }

    /// The stored document and its size.
    async fn docs_stored(
        &self,
        tx: &mut impl Exec,
        owner: Owner<'_>,
        collection: &str,
        id: &str,
    ) -> Result<Option<(Document, i64)>> {
        let row = tx
            .fetch_optional(
                Stmt::new(format!(
                    "SELECT {}, size FROM documents WHERE tenant_id = $1 AND plugin = $2 AND collection = $3 AND id = $4",
                    self.body_select()
                ))
                .bind(owner.tenant.as_str())
                .bind(owner.plugin)
                .bind(collection)
                .bind(id),
            )
            .await?;
        match row {
            Some(row) => Ok(Some((document_from_row(&row)?, row.get(5)?))),
            None => Ok(None),
        }
    }

    /// Removes document `id`; true if it existed.
    pub async fn docs_delete(
        &self,
        unit: &mut UnitOfWork,
        collection: &str,
        id: &str,
    ) -> Result<bool> {
        check_collection(collection)?;
        check_id(id)?;
        if self.docs_current(unit, collection, id).await?.is_none() {
            return Ok(false);
        }
        let stored = unit.doc_stored(collection, id);
        let slot = Slot {
            stored,
            current: Some(None),
            dirty: matches!(stored, Some(Some(_))),
        };
        self.put_doc_slot(unit, collection, id, slot).await?;
        Ok(true)
    }

    /// Documents of `collection` matching `query`; in a unit, its writes so
    /// far are flushed first.
    pub async fn docs_query(
        &self,
        reader: Reader<'_>,
        collection: &str,
        query: &Query,
    ) -> Result<DocumentPage> {
        match reader {
            Reader::Tx(tx, owner) => self.docs_query_tx(tx, owner, collection, query).await,
            Reader::Unit(unit) => {
                self.flush(unit).await?;
                let (tx, owner) = unit.parts();
                self.docs_query_tx(tx, owner, collection, query).await
            }
        }
    }

    async fn docs_query_tx(
        &self,
        tx: &mut impl Exec,
        owner: Owner<'_>,
        collection: &str,
        query: &Query,
    ) -> Result<DocumentPage> {
        check_collection(collection)?;
        if query.limit == 0 {
            return Err(Error::InvalidQuery("limit must be at least 1".into()));
        }
        if query.filters.len() > MAX_FILTERS {
            return Err(Error::InvalidQuery(format!(
                "at most {MAX_FILTERS} filters"
            )));
        }
        let limit = query.limit.min(MAX_PAGE);
        let (order_field, descending) = match &query.order {
            Some(order) => (order.field.as_str(), order.descending),
            None => ("id", false),
        };
        check_field(order_field)?;
        let mut sql = Sql {
            text: String::new(),
            args: Vec::new(),
            engine: self.db.engine(),
        };
        let select = format!(
            "SELECT {} FROM documents WHERE tenant_id = ",
            self.body_select()
        );
        sql.push(&select);
        let p = sql.arg(Arg::Text(owner.tenant.to_string()));
        sql.push(&p);
        let p = sql.arg(Arg::Text(owner.plugin.to_owned()));
        sql.push(&format!(" AND plugin = {p}"));
        let p = sql.arg(Arg::Text(collection.to_owned()));
        sql.push(&format!(" AND collection = {p}"));

        for filter in &query.filters {
            check_field(&filter.field)?;
            let value = parse_scalar(&filter.value)?;
            let expr = sql.field(&filter.field);
            if filter.field == "id" && !value.is_string() {
                return Err(Error::InvalidQuery("id compares with a string".into()));
            }
            let clause = match (filter.op, value.is_null()) {
                (FilterOp::Eq, true) => format!("{expr} IS NULL"),
                (FilterOp::Ne, true) => format!("{expr} IS NOT NULL"),
                (_, true) => {
                    return Err(Error::InvalidQuery(
                        "null compares only with eq and ne".into(),
                    ));
                }
                (FilterOp::Ne, false) => {
                    let v = if filter.field == "id" {
                        sql.arg(Arg::Text(value.as_str().unwrap_or_default().into()))
                    } else {
                        sql.json_arg(&value)?
                    };
                    format!("({expr} IS NULL OR {expr} <> {v})")
                }
                (op, false) => {
                    let v = if filter.field == "id" {
                        sql.arg(Arg::Text(value.as_str().unwrap_or_default().into()))
                    } else {
                        sql.json_arg(&value)?
                    };
                    format!("{expr} {} {v}", op_sql(op))
                }
            };
            sql.push(&format!(" AND {clause}"));
        }

        let order_expr = sql.field(order_field);
        if let Some(cursor) = &query.cursor {
            let cursor = decode_cursor(cursor)?;
            if cursor.f != order_field || cursor.d != descending {
                return Err(Error::InvalidQuery(
                    "cursor belongs to a query with another order".into(),
                ));
            }
            check_id(&cursor.id)
                .map_err(|_| Error::InvalidQuery("cursor was not issued by this store".into()))?;
            let cid = sql.arg(Arg::Text(cursor.id.clone()));
            let (cmp, id_cmp) = if descending { ("<", "<") } else { (">", ">") };
            let clause = if order_field == "id" {
                format!("id {id_cmp} {cid}")
            } else if cursor.v.is_null() {
                if descending {
                    format!("({order_expr} IS NULL AND id < {cid})")
                } else {
                    format!("(({order_expr} IS NULL AND id > {cid}) OR {order_expr} IS NOT NULL)")
                }
            } else {
                let v1 = sql.json_arg(&cursor.v)?;
                let v2 = sql.json_arg(&cursor.v)?;
                let nulls = if descending {
                    format!(" OR {order_expr} IS NULL")
                } else {
                    String::new()
                };
                format!(
                    "({order_expr} {cmp} {v1} OR ({order_expr} = {v2} AND id {id_cmp} {cid}){nulls})"
                )
            };
            sql.push(&format!(" AND {clause}"));
        }
        let (dir, nulls) = if descending {
            ("DESC", "NULLS LAST")
        } else {
            ("ASC", "NULLS FIRST")
        };
        if order_field == "id" {
            sql.push(&format!(" ORDER BY id {dir}"));
        } else {
            sql.push(&format!(" ORDER BY {order_expr} {dir} {nulls}, id {dir}"));
        }
        let p = sql.arg(Arg::Int(i64::from(limit) + 1));
        sql.push(&format!(" LIMIT {p}"));

        let mut q = Stmt::new(sql.text);
        for arg in sql.args {
            q = q.bind(match arg {
                Arg::Text(s) => db::Arg::Text(s),
                Arg::Int(i) => db::Arg::Int(i),
                Arg::Float(f) => db::Arg::Real(f),
                Arg::Bool(b) => db::Arg::Bool(b),
            });
        }
        let rows = tx.fetch_all(q).await?;
        let mut documents = rows
            .iter()
            .map(document_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if documents.len() > limit as usize {
            documents.truncate(limit as usize);
            documents.last().map(|last| {
                let v = if order_field == "id" {
                    Value::Null
                } else {
                    serde_json::from_str::<Value>(&last.body)
                        .ok()
                        .and_then(|b| b.get(order_field).cloned())
                        .unwrap_or(Value::Null)
                };
                encode_cursor(&Cursor {
                    f: order_field.to_owned(),
                    d: descending,
                    v,
                    id: last.id.clone(),
                })
            })
        } else {
            None
        };
        Ok(DocumentPage {
            documents,
            next_cursor,
        })
    }
}

fn encode_cursor(cursor: &Cursor) -> String {
    B64.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor(text: &str) -> Result<Cursor> {
    let bad = || Error::InvalidQuery("cursor was not issued by this store".into());
    if text.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let bytes = B64.decode(text).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.v.is_array() || cursor.v.is_object() {
        return Err(bad());
    }
    check_field(&cursor.f).map_err(|_| bad())?;
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_collection("notes").is_ok());
        assert!(check_collection("../notes").is_err());
        assert!(check_collection("Notes").is_err());
        assert!(check_id("n-1:a.b").is_ok());
        assert!(check_id("a/b").is_err());
        assert!(check_field("title").is_ok());
        assert!(check_field("a.b").is_err());
        assert!(check_field("x') OR 1=1 --").is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            f: "n".into(),
            d: true,
            v: Value::from(3),
            id: "x".into(),
        };
        let back = decode_cursor(&encode_cursor(&c)).expect("valid");
        assert_eq!(back.v, Value::from(3));
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor(&"A".repeat(10_000)).is_err());
        assert!(decode_cursor(&B64.encode(br#"{"f":"x y","d":false,"v":1,"id":"a"}"#)).is_err());
    }
}
