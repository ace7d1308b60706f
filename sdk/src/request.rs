//! The request a plugin handles, with helpers for its query, headers, body
//! and route parameters.

use serde::de::DeserializeOwned;

use crate::{Method, Principal, Response, bindings, query};

/// An HTTP request routed to the plugin by the host.
#[derive(Debug, Clone)]
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// Path below the plugin's mount point, still percent-encoded; always
    /// begins with `/`.
    pub path: String,
    /// Raw query string without the leading `?` (may be empty).
    pub query: String,
    /// Request headers, names lower-cased. The host removes credentials.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Who is calling; `None` for anonymous calls to public routes.
    pub caller: Option<Principal>,
    /// The host's id for this request (also in the host's logs).
    pub request_id: String,
    /// Route parameters, filled in by [`Router`](crate::Router).
    pub(crate) params: Params,
}

impl Request {
    /// A request with the given method and path and nothing else, for tests
    /// of handlers and routers.
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            caller: None,
            request_id: String::new(),
            params: Params::default(),
        }
    }

    /// Sets the raw query string (without `?`).
    pub fn with_query(mut self, query: &str) -> Self {
        self.query = query.to_owned();
        self
    }

    /// Adds a header (its name is lower-cased, as the host does).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the caller.
    pub fn with_caller(mut self, caller: Principal) -> Self {
        self.caller = Some(caller);
        self
    }

    /// The decoded value of the first query parameter called `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query::parse_query(&self.query)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// All query parameters, decoded, in order.
    pub fn query_params(&self) -> Vec<(String, String)> {
        query::parse_query(&self.query)
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The route parameter `name` (for `{name}` or `{*name}` in the
    /// matched pattern), percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// All route parameters of the matched pattern.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The body parsed as JSON.
    ///
    /// # Errors
    ///
    /// A ready-made `400 invalid_input` response when the body is empty or
    /// does not parse as a `T`, so a handler can write `req.json::<T>()?`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Response> {
        if self.body.is_empty() {
            return Err(Response::error(
                400,
                "invalid_input",
                "the request body is empty; expected JSON",
            ));
        }
        // serde's message names the offending field or position in the
        // caller's own body: useful to them, and nobody else's data.
        serde_json::from_slice(&self.body).map_err(|e| {
            Response::error(
                400,
                "invalid_input",
                &format!("the request body is not valid JSON for this route: {e}"),
            )
        })
    }
}

impl From<bindings::Request> for Request {
    fn from(r: bindings::Request) -> Self {
        Self {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
            caller: r.caller,
            request_id: r.request_id,
            params: Params::default(),
        }
    }
}

/// Route parameters captured by a [`Router`](crate::Router) pattern, in
/// pattern order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// The value captured for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Iterates over `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        title: String,
    }

    fn error_code(r: &Response) -> String {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("error body is JSON");
        v["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn json_parses_body() {
        let req = Request::new(Method::Post, "/").with_body(r#"{"title":"t"}"#);
        assert_eq!(req.json::<Body>().ok(), Some(Body { title: "t".into() }));
    }

    #[test]
    fn bad_or_empty_json_is_400() {
        for body in ["", "{", r#"{"other":1}"#, "[]"] {
            let req = Request::new(Method::Post, "/").with_body(body);
            let err = req.json::<Body>().expect_err(body);
            assert_eq!(
                (err.status, error_code(&err)),
                (400, "invalid_input".into())
            );
        }
    }

    #[test]
    fn query_and_headers() {
        let req = Request::new(Method::Get, "/")
            .with_query("limit=5&cursor=a%3Db&limit=6")
            .with_header("X-Thing", "v");
        assert_eq!(req.query_param("limit").as_deref(), Some("5"));
        assert_eq!(req.query_param("cursor").as_deref(), Some("a=b"));
        assert_eq!(req.query_param("nope"), None);
        assert_eq!(req.header("x-thing"), Some("v"));
        assert_eq!(req.header("X-THING"), Some("v"));
    }
}
