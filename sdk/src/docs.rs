//! JSON document collections private to the (tenant, plugin) pair of the
//! call (`weft:platform/docs`).
//!
//! Every error is an [`Error`] the plugin can handle; it converts into a 4xx
//! [`Response`] so handlers can use `?`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Response;
use crate::bindings::weft::platform::docs as wit;

pub use wit::{Document, Error, Filter, Op, OrderBy, Page};

/// Creates or replaces document `id` with `body`, a JSON object as text.
/// With `if_version`, replaces only if the stored version equals it
/// (`Some(0)`: only if absent).
pub fn put(
    collection: &str,
    id: &str,
    body: &str,
    if_version: Option<u64>,
) -> Result<Document, Error> {
    wit::put(collection, id, body, if_version)
}

/// [`put`] with `body` serialized to JSON (it must serialize to an object).
///
/// # Errors
///
/// [`Error::InvalidJson`] if `body` does not serialize, besides the host's.
pub fn put_json<T: Serialize + ?Sized>(
    collection: &str,
    id: &str,
    body: &T,
    if_version: Option<u64>,
) -> Result<Document, Error> {
    let json = serde_json::to_string(body).map_err(|e| Error::InvalidJson(e.to_string()))?;
    put(collection, id, &json, if_version)
}

/// The document, if it exists.
pub fn get(collection: &str, id: &str) -> Result<Option<Document>, Error> {
    wit::get(collection, id)
}

/// Removes the document; true if it existed.
pub fn delete(collection: &str, id: &str) -> Result<bool, Error> {
    wit::delete(collection, id)
}

/// One page of the documents of `collection` matching `q`.
pub fn query(collection: &str, q: &Query) -> Result<Page, Error> {
    wit::query(collection, &q.to_wit())
}

impl Document {
    /// The body decoded as a `T`.
    ///
    /// # Errors
    ///
    /// If the stored object is not a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// A query over one collection, built step by step:
///
/// ```no_run
/// use weft_sdk::docs::{Op, Query};
/// let q = Query::new().filter("done", Op::Eq, false).order_by("id", true).limit(20);
/// let page = weft_sdk::docs::query("todos", &q);
/// ```
#[derive(Debug, Clone)]
pub struct Query {
    filters: Vec<Filter>,
    order: Option<OrderBy>,
    limit: u32,
    cursor: Option<String>,
}

/// The page size of a [`Query`] that does not set one.
pub const DEFAULT_LIMIT: u32 = 100;

impl Default for Query {
    fn default() -> Self {
        Self {
            filters: Vec::new(),
            order: None,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl Query {
    /// Every document, in id order, [`DEFAULT_LIMIT`] per page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps documents whose top-level `field` (or `id`) compares to
    /// `value`, a JSON scalar (string, number, boolean or null). All
    /// filters must hold.
    pub fn filter(self, field: &str, op: Op, value: impl Into<serde_json::Value>) -> Self {
        self.filter_json(field, op, &value.into().to_string())
    }

    /// [`filter`](Self::filter) with the value given as JSON text, passed
    /// on unchecked.
    pub fn filter_json(mut self, field: &str, op: Op, value: &str) -> Self {
        self.filters.push(Filter {
            field: field.to_owned(),
            op,
            value: value.to_owned(),
        });
        self
    }

    /// Orders by a top-level `field` (or `id`); ties are broken by id.
    pub fn order_by(mut self, field: &str, descending: bool) -> Self {
        self.order = Some(OrderBy {
            field: field.to_owned(),
            descending,
        });
        self
    }

    /// At most `limit` documents per page (the host accepts 1-1000).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Continues from a previous page's `next_cursor` (`None`: first page).
    pub fn cursor(mut self, cursor: Option<&str>) -> Self {
        self.cursor = cursor.map(str::to_owned);
        self
    }

    // The one place that knows the WIT record, so a rename there touches
    // only this function.
    fn to_wit(&self) -> wit::QuerySpec {
        wit::QuerySpec {
            filters: self.filters.clone(),
            order: self.order.clone(),
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

impl Error {
    /// The status and stable `snake_case` code this error answers with.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::InvalidCollection(_) => (400, "invalid_collection"),
            Error::InvalidId(_) => (400, "invalid_id"),
            Error::InvalidJson(_) => (400, "invalid_json"),
            Error::TooLarge(_) => (413, "too_large"),
            Error::VersionConflict(_) => (409, "version_conflict"),
            Error::QuotaExceeded(_) => (413, "quota_exceeded"),
            Error::InvalidQuery(_) => (400, "invalid_query"),
        }
    }
}

/// A 4xx JSON error. The host's payloads describe only this tenant's own
/// store, so they may go to the caller.
impl From<Error> for Response {
    fn from(e: Error) -> Self {
        let (status, code) = e.status_and_code();
        let message = match &e {
            Error::InvalidCollection(why) => format!("invalid collection: {why}"),
            Error::InvalidId(why) => format!("invalid id: {why}"),
            Error::InvalidJson(why) => format!("invalid document: {why}"),
            Error::TooLarge(limit) => format!("the document is larger than {limit} bytes"),
            Error::VersionConflict(current) => {
                format!("the document changed meanwhile (now version {current})")
            }
            Error::QuotaExceeded(quota) => format!("the storage quota is exhausted: {quota}"),
            Error::InvalidQuery(why) => format!("invalid query: {why}"),
        };
        Response::error(status, code, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_builder_fills_the_record() {
        let q = Query::new()
            .filter("done", Op::Eq, false)
            .filter("title", Op::Gte, "b")
            .filter_json("n", Op::Lt, "3")
            .order_by("id", true)
            .limit(5)
            .cursor(Some("c1"))
            .to_wit();
        let values: Vec<&str> = q.filters.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["false", "\"b\"", "3"]);
        assert_eq!(
            q.order.as_ref().map(|o| (o.field.as_str(), o.descending)),
            Some(("id", true))
        );
        assert_eq!((q.limit, q.cursor.as_deref()), (5, Some("c1")));
        assert_eq!(Query::new().to_wit().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn document_decodes() {
        let doc = Document {
            id: "a".into(),
            body: r#"{"x":1}"#.into(),
            version: 1,
            created_at: 0,
            updated_at: 0,
        };
        let v: serde_json::Value = doc.json().expect("object");
        assert_eq!(v["x"], 1);
    }

    #[test]
    fn errors_map_to_4xx() {
        let cases = [
            (
                Error::InvalidCollection("x".into()),
                400,
                "invalid_collection",
            ),
            (Error::InvalidId("x".into()), 400, "invalid_id"),
            (Error::InvalidJson("x".into()), 400, "invalid_json"),
            (Error::TooLarge(10), 413, "too_large"),
            (Error::VersionConflict(3), 409, "version_conflict"),
            (
                Error::QuotaExceeded("documents".into()),
                413,
                "quota_exceeded",
            ),
            (Error::InvalidQuery("x".into()), 400, "invalid_query"),
        ];
        for (err, status, code) in cases {
            let r = Response::from(err);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            assert_eq!(
                (r.status, body["error"]["code"].as_str()),
                (status, Some(code))
            );
        }
    }
}
