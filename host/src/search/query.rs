//! Typed filters as tantivy queries.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};

use super::{Error, FieldKind, FieldSpec, Filter, FilterOp, Result};

/// The query for one filter on a declared field.
pub fn filter_query(spec: &FieldSpec, field: Field, filter: &Filter) -> Result<Box<dyn Query>> {
    let bad = |what: &str| Error::InvalidQuery(format!("filter on {:?}: {what}", spec.name));
    let term = match (spec.kind, &filter.value) {
        (FieldKind::Keyword, serde_json::Value::String(s)) => Term::from_field_text(field, s),
        (FieldKind::Integer, v) => {
            Term::from_field_i64(field, v.as_i64().ok_or_else(|| bad("an integer value"))?)
        }
        (FieldKind::Float, v) => {
            Term::from_field_f64(field, v.as_f64().ok_or_else(|| bad("a number value"))?)
        }
        (FieldKind::Keyword, _) => return Err(bad("a string value")),
        (FieldKind::Text, _) => {
            return Err(bad("text fields are searched with the query, not filtered"));
        }
    };
    if spec.kind == FieldKind::Keyword && filter.op != FilterOp::Eq {
        return Err(bad("keyword fields filter with eq"));
    }
    Ok(match filter.op {
        FilterOp::Eq => Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        FilterOp::Lt => Box::new(RangeQuery::new(Bound::Unbounded, Bound::Excluded(term))),
        FilterOp::Lte => Box::new(RangeQuery::new(Bound::Unbounded, Bound::Included(term))),
        FilterOp::Gt => Box::new(RangeQuery::new(Bound::Excluded(term), Bound::Unbounded)),
        FilterOp::Gte => Box::new(RangeQuery::new(Bound::Included(term), Bound::Unbounded)),
    })
}
