//! A small path router: `{name}` captures one non-empty segment, a trailing `{*rest}`
//! captures the remainder, anything else must match literally.
//!
//! Routes are tried in the order they were added; the first whose pattern
//! and method both match handles the request. This is the same syntax as the
//! `path` of a route in `plugin.toml`.

use crate::request::Params;
use crate::{IntoResponse, Method, Request, Response, query};

type Handler = Box<dyn Fn(&Request) -> Response>;

/// Dispatches a [`Request`] to the handler registered for its method and
/// path.
///
/// An unknown path answers `404 not_found`; a known path with another method
/// answers `405 method_not_allowed` with an `allow` header. A `GET` route
/// also answers `HEAD`, without a body.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

struct Route {
    /// `None` matches any method.
    method: Option<Method>,
    pattern: Pattern,
    handler: Handler,
}

impl Router {
    /// An empty router (every request answers 404).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route for `method` (`None`: any method).
    ///
    /// # Panics
    ///
    /// If `pattern` is malformed (see [`Router`]): patterns are written by
    /// the plugin's author, so this is a bug to surface at once.
    pub fn route<F, R>(mut self, method: Option<Method>, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        let pattern = match Pattern::parse(pattern) {
            Ok(p) => p,
            Err(why) => panic!("bad route pattern {pattern:?}: {why}"),
        };
        self.routes.push(Route {
            method,
            pattern,
            handler: Box::new(move |req| handler(req).into_response()),
        });
        self
    }

    /// Adds a `GET` (and `HEAD`) route.
    pub fn get<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Some(Method::Get), pattern, handler)
    }

    /// Adds a `POST` route.
    pub fn post<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Some(Method::Post), pattern, handler)
    }

    /// Adds a `PUT` route.
    pub fn put<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Some(Method::Put), pattern, handler)
    }

    /// Adds a `PATCH` route.
    pub fn patch<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Some(Method::Patch), pattern, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Some(Method::Delete), pattern, handler)
    }

    /// Adds a route for every method.
    pub fn any<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route(None, pattern, handler)
    }

    /// Routes `req` to its handler and returns the handler's response.
    pub fn handle(&self, mut req: Request) -> Response {
        let Some(segments) = decode_segments(&req.path) else {
            return Response::error(
                400,
                "invalid_input",
                "the path is not valid percent-encoded UTF-8",
            );
        };
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            let Some(params) = route.pattern.matches(&segments) else {
                continue;
            };
            match route.method {
                None => {}
                Some(m) if m == req.method => {}
                Some(Method::Get) if req.method == Method::Head => {
                    req.params = params;
                    let mut response = (route.handler)(&req);
                    response.body.clear();
                    return response;
                }
                Some(m) => {
                    if !allowed.contains(&m) {
                        allowed.push(m);
                    }
                    continue;
                }
            }
            req.params = params;
            return (route.handler)(&req);
        }
        if allowed.is_empty() {
            return Response::error(404, "not_found", "no route matches this path");
        }
        let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
        Response::error(
            405,
            "method_not_allowed",
            &format!("this path accepts {}", allow.join(", ")),
        )
        .with_header("allow", &allow.join(", "))
    }
}

impl Method {
    /// The method's name as sent on the wire (`"GET"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// Splits `/a/b%20c` into decoded segments `["a", "b c"]`; `None` if a
/// segment does not decode to UTF-8.
fn decode_segments(path: &str) -> Option<Vec<String>> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| String::from_utf8(query::percent_decode(s, false)).ok())
        .collect()
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

#[derive(Debug)]
struct Pattern(Vec<Segment>);

impl Pattern {
    fn parse(pattern: &str) -> Result<Self, &'static str> {
        let Some(body) = pattern.strip_prefix('/') else {
            return Err("must begin with `/`");
        };
        let raw: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            let segment = match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(inner) => match inner.strip_prefix('*') {
                    Some(_) if i + 1 != raw.len() => {
                        return Err("`{*name}` must be the last segment");
                    }
                    Some(name) => Segment::Rest(valid_name(name)?.to_owned()),
                    None => Segment::Param(valid_name(inner)?.to_owned()),
                },
                None if s.contains(['{', '}']) => {
                    return Err("`{` and `}` must enclose a whole segment");
                }
                None => Segment::Literal((*s).to_owned()),
            };
            segments.push(segment);
        }
        Ok(Self(segments))
    }

    /// The captured parameters if `segments` (decoded) match this pattern.
    fn matches(&self, segments: &[String]) -> Option<Params> {
        let mut params = Vec::new();
        for (i, pat) in self.0.iter().enumerate() {
            match pat {
                Segment::Rest(name) => {
                    params.push((name.clone(), segments.get(i..)?.join("/")));
                    return Some(Params(params));
                }
                Segment::Literal(lit) => {
                    if segments.get(i)? != lit {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    // `/notes/` is not note "": a parameter is never empty.
                    let value = segments.get(i).filter(|s| !s.is_empty())?;
                    params.push((name.clone(), value.clone()));
                }
            }
        }
        (segments.len() == self.0.len()).then_some(Params(params))
    }
}

fn valid_name(name: &str) -> Result<&str, &'static str> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err("parameter names are non-empty `A-Z a-z 0-9 _`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new()
            .get("/", |_: &Request| Response::text(200, "root"))
            .get("/notes", |_: &Request| Response::text(200, "list"))
            .post("/notes", |_: &Request| Response::text(201, "create"))
            .get("/notes/{id}", |r: &Request| {
                Response::text(200, format!("get {}", r.param("id").unwrap_or("?")))
            })
            .delete("/notes/{id}", |_: &Request| Response::empty(204))
            .get("/notes/{id}/tags/{tag}", |r: &Request| {
                let p: Vec<String> = r.params().iter().map(|(k, v)| format!("{k}={v}")).collect();
                Response::text(200, p.join(","))
            })
            .get("/files/{*path}", |r: &Request| {
                Response::text(200, format!("file [{}]", r.param("path").unwrap_or("?")))
            })
            .any("/echo", |r: &Request| {
                Response::text(200, r.method.as_str())
            })
    }

    fn call(method: Method, path: &str) -> (u16, String) {
        let r = router().handle(Request::new(method, path));
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }

    fn error_code(body: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(body).expect("error body is JSON");
        v["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn matches_literals_and_params() {
        assert_eq!(call(Method::Get, "/"), (200, "root".into()));
        assert_eq!(call(Method::Get, "/notes"), (200, "list".into()));
        assert_eq!(call(Method::Post, "/notes"), (201, "create".into()));
        assert_eq!(call(Method::Get, "/notes/n01"), (200, "get n01".into()));
        assert_eq!(call(Method::Get, "/notes/a%20b"), (200, "get a b".into()));
        assert_eq!(
            call(Method::Get, "/notes/7/tags/x"),
            (200, "id=7,tag=x".into())
        );
        assert_eq!(call(Method::Delete, "/notes/7").0, 204);
    }

    #[test]
    fn rest_captures_remainder() {
        assert_eq!(
            call(Method::Get, "/files/a/b/c"),
            (200, "file [a/b/c]".into())
        );
        assert_eq!(call(Method::Get, "/files/"), (200, "file []".into()));
        assert_eq!(call(Method::Get, "/files"), (200, "file []".into()));
    }

    #[test]
    fn unknown_path_is_404() {
        for path in ["/nope", "/notes/1/2", "/notes/", "/notes/1/tags"] {
            let (status, body) = call(Method::Get, path);
            assert_eq!(
                (status, error_code(&body)),
                (404, "not_found".into()),
                "{path}"
            );
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        let r = router().handle(Request::new(Method::Put, "/notes/1"));
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, DELETE"));
        assert_eq!(
            error_code(&String::from_utf8_lossy(&r.body)),
            "method_not_allowed"
        );
    }

    #[test]
    fn head_uses_get_without_body() {
        let r = router().handle(Request::new(Method::Head, "/notes"));
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
    }

    #[test]
    fn any_matches_every_method() {
        assert_eq!(call(Method::Patch, "/echo"), (200, "PATCH".into()));
        assert_eq!(call(Method::Options, "/echo"), (200, "OPTIONS".into()));
    }

    #[test]
    fn first_match_wins() {
        let r = Router::new()
            .get("/a/{x}", |_: &Request| Response::text(200, "param"))
            .get("/a/b", |_: &Request| Response::text(200, "literal"))
            .handle(Request::new(Method::Get, "/a/b"));
        assert_eq!(r.body, b"param");
    }

    #[test]
    fn invalid_utf8_path_is_400() {
        let (status, body) = call(Method::Get, "/notes/%ff");
        assert_eq!((status, error_code(&body)), (400, "invalid_input".into()));
    }

    #[test]
    fn handlers_may_return_results() {
        let r = Router::new()
            .get("/fail", |_: &Request| -> crate::Result {
                Err(Response::error(409, "conflict", "no"))
            })
            .handle(Request::new(Method::Get, "/fail"));
        assert_eq!(r.status, 409);
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["notes", "/{*rest}/x", "/a{b}", "/{}", "/{a-b}", "/{*}"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Pattern::parse("/a/{b}/{*c}").map(|p| p.0).ok(),
            Some(vec![
                Segment::Literal("a".into()),
                Segment::Param("b".into()),
                Segment::Rest("c".into())
            ])
        );
    }
}
