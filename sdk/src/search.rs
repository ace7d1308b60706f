//! Full-text indexes private to the (tenant, plugin) pair of the call
//! (`weft:platform/search`).
//!
//! [`upsert`] and [`delete`] are part of the call's unit of work and become
//! visible to [`query`] within a quarter of a second after the call commits.

use serde::Serialize;

use crate::Response;
use crate::bindings::weft::platform::search as wit;

pub use wit::{Error, Field, FieldKind, Filter, FilterOp, Hit, QuerySpec, Results, Snippet};

/// Creates index `name` with `fields` (nothing happens if it exists with
/// the same fields).
pub fn define_index(name: &str, fields: &[Field]) -> Result<(), Error> {
    wit::define_index(name, fields)
}

/// A field declaration, for [`define_index`].
pub fn field(name: &str, kind: FieldKind) -> Field {
    Field {
        name: name.to_owned(),
        kind,
    }
}

/// Adds or replaces document `id` of `index` with `fields` (a JSON object).
pub fn upsert(index: &str, id: &str, fields: &str) -> Result<(), Error> {
    wit::upsert(index, id, fields)
}

/// [`upsert`] with `fields` serialized to JSON (it must be an object).
///
/// # Errors
///
/// [`Error::InvalidDocument`] if `fields` does not serialize, besides the host's.
pub fn upsert_json<T: Serialize + ?Sized>(index: &str, id: &str, fields: &T) -> Result<(), Error> {
    let json = serde_json::to_string(fields).map_err(|e| Error::InvalidDocument(e.to_string()))?;
    upsert(index, id, &json)
}

/// Removes document `id` from `index`.
pub fn delete(index: &str, id: &str) -> Result<(), Error> {
    wit::delete(index, id)
}

/// Documents of `index` matching `q`, best first.
pub fn query(index: &str, q: &QuerySpec) -> Result<Results, Error> {
    wit::query(index, q)
}

/// Removes `index` and its data at once; true if it existed.
pub fn drop_index(name: &str) -> Result<bool, Error> {
    wit::drop_index(name)
}

impl QuerySpec {
    /// `query` with no filters, the first `limit` hits, no snippets.
    pub fn new(query: &str, limit: u32) -> Self {
        Self {
            query: query.to_owned(),
            filters: Vec::new(),
            limit,
            offset: 0,
            highlight: Vec::new(),
        }
    }

    /// Adds `field op value` (`value` serialized to JSON).
    #[must_use]
    pub fn filter(mut self, field: &str, op: FilterOp, value: impl Serialize) -> Self {
        self.filters.push(Filter {
            field: field.to_owned(),
            op,
            value: serde_json::to_string(&value).unwrap_or_else(|_| "null".to_owned()),
        });
        self
    }

    /// Skips the first `offset` hits.
    #[must_use]
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// Returns highlighted snippets of the text field `field`.
    #[must_use]
    pub fn highlight(mut self, field: &str) -> Self {
        self.highlight.push(field.to_owned());
        self
    }
}

impl Hit {
    /// The stored fields decoded as a `T`.
    ///
    /// # Errors
    ///
    /// The decoding error, if the fields are not a `T`.
    pub fn fields_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.fields)
    }

    /// The snippet of `field`, if one was asked for and matched.
    pub fn snippet(&self, field: &str) -> Option<&str> {
        self.snippets
            .iter()
            .find(|s| s.field == field)
            .map(|s| s.html.as_str())
    }
}

impl Error {
    /// The status and stable `snake_case` code this error answers with.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::InvalidName(_) => (400, "invalid_index_name"),
            Error::InvalidFields(_) => (400, "invalid_index_fields"),
            Error::FieldsMismatch(_) => (409, "index_fields_mismatch"),
            Error::UnknownIndex(_) => (404, "unknown_index"),
            Error::InvalidDocument(_) => (400, "invalid_search_document"),
            Error::InvalidQuery(_) => (400, "invalid_search_query"),
        }
    }
}

/// A 4xx JSON error naming what was refused.
impl From<Error> for Response {
    fn from(e: Error) -> Self {
        let (status, code) = e.status_and_code();
        let message = match &e {
            Error::InvalidName(why)
            | Error::InvalidFields(why)
            | Error::FieldsMismatch(why)
            | Error::UnknownIndex(why)
            | Error::InvalidDocument(why)
            | Error::InvalidQuery(why) => why.clone(),
        };
        Response::error(status, code, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_queries() {
        let q = QuerySpec::new("wasm", 10)
            .filter("tag", FilterOp::Eq, "rust")
            .offset(20)
            .highlight("body");
        assert_eq!(q.filters[0].value, "\"rust\"");
        assert_eq!((q.offset, q.highlight.len()), (20, 1));
    }

    #[test]
    fn errors_map_to_4xx() {
        let r = Response::from(Error::InvalidQuery("unbalanced quote".into()));
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(r.status, 400);
        assert_eq!(body["error"]["message"], "unbalanced quote");
    }
}
