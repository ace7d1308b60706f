//! The response a handler returns, its builders, and the platform's JSON
//! error shape.

use serde::Serialize;

use crate::bindings;

/// An HTTP response to hand back to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers; names are sent as given.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// The platform's error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    /// A response with the given status and body and no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A response with no body (for example `204 No Content`).
    pub fn empty(status: u16) -> Self {
        Self::new(status, Vec::new())
    }

    /// A `text/plain` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status, text.into()).with_header("content-type", TEXT)
    }

    /// A JSON response. If `value` cannot be serialized (a map with
    /// non-string keys, a failing `Serialize` impl) the answer is a 500
    /// `internal` error instead: that is a bug in the plugin, not the caller's
    /// fault, and its detail is not the caller's business.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, body).with_header("content-type", JSON),
            Err(_) => Self::error(500, "internal", "the plugin could not encode its response"),
        }
    }

    /// An error in the platform's shape,
    /// `{"error": {"code": "...", "message": "..."}}`.
    ///
    /// `code` is a stable, machine-readable `snake_case` word; `message` is
    /// for people. Never put another tenant's data or internal detail in
    /// either.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let body = ErrorBody {
            error: ErrorDetail { code, message },
        };
        // Two strings always serialize; the fallback only keeps this
        // function total.
        let bytes = serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"error":{"code":"internal","message":"error"}}"#.to_vec());
        Self::new(status, bytes).with_header("content-type", JSON)
    }

    /// Adds a header (replacing one of the same name, compared
    /// case-insensitively).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<Response> for bindings::Response {
    fn from(r: Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// Anything a handler may return.
///
/// Implemented for [`Response`] and for `Result<R, E>` where both arms turn
/// into responses, so handlers can use `?` on capability calls.
pub trait IntoResponse {
    /// Converts `self` into the response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<R: IntoResponse, E: Into<Response>> IntoResponse for Result<R, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    }

    #[test]
    fn error_has_platform_shape() {
        let r = Response::error(404, "not_found", "no note \"n1\"");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("Content-Type"), Some(JSON));
        assert_eq!(
            body_json(&r),
            serde_json::json!({"error": {"code": "not_found", "message": "no note \"n1\""}})
        );
    }

    #[test]
    fn json_and_text_set_content_type() {
        let r = Response::json(201, &serde_json::json!({"a": 1}));
        assert_eq!((r.status, r.header("content-type")), (201, Some(JSON)));
        assert_eq!(body_json(&r), serde_json::json!({"a": 1}));

        let r = Response::text(200, "hello");
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("content-type"), Some(TEXT));
    }

    #[test]
    fn unserializable_json_is_a_500() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 1);
        let r = Response::json(200, &map);
        assert_eq!(r.status, 500);
        assert_eq!(body_json(&r)["error"]["code"], "internal");
    }

    #[test]
    fn with_header_replaces() {
        let r = Response::empty(204)
            .with_header("X-A", "1")
            .with_header("x-a", "2");
        assert_eq!(r.headers, vec![("x-a".to_owned(), "2".to_owned())]);
        assert!(r.body.is_empty());
    }

    #[test]
    fn results_become_responses() {
        let ok: Result<Response, Response> = Ok(Response::empty(204));
        let err: Result<Response, Response> = Err(Response::empty(400));
        assert_eq!(ok.into_response().status, 204);
        assert_eq!(err.into_response().status, 400);
    }
}
