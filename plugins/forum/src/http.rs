//! The HTTP edge shared by every handler: error responses, JSON request
//! bodies read field by field (so a refusal names the field), and paging.

use serde_json::{Map, Value};
use weft_sdk::{Request, Response, log};

/// What a fallible handler returns; both arms are responses.
pub type Result<T = Response> = core::result::Result<T, Response>;

/// `422 invalid_input`; `message` begins with the field's name.
pub fn invalid(field: &str, message: &str) -> Response {
    Response::error(422, "invalid_input", &format!("{field} {message}"))
}

/// `404 not_found`. Also the answer for what the caller may not read, so
/// that its existence is not revealed.
pub fn not_found(what: &str) -> Response {
    Response::error(404, "not_found", &format!("no such {what}"))
}

/// `403 forbidden`.
pub fn forbidden(message: &str) -> Response {
    Response::error(403, "forbidden", message)
}

/// `409` with a specific code.
pub fn conflict(code: &str, message: &str) -> Response {
    Response::error(409, code, message)
}

/// `500 internal_error`: the detail goes to the tenant's plugin log, never
/// to the caller.
pub fn internal(detail: &str) -> Response {
    log::error(detail);
    Response::error(
        500,
        "internal_error",
        "the forum could not complete this request",
    )
}

/// `400 invalid_cursor`.
pub fn bad_cursor() -> Response {
    Response::error(400, "invalid_cursor", "cursor was not issued for this list")
}

/// A JSON object request body, read one field at a time.
#[derive(Debug, Default)]
pub struct Body(Map<String, Value>);

impl Body {
    /// The body as an object. An empty body is an empty object (so a
    /// missing required field is a 422 naming it); anything else that is not
    /// a JSON object is `400 invalid_json`.
    pub fn parse(req: &Request) -> Result<Self> {
        Self::from_bytes(&req.body)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(Response::error(
                400,
                "invalid_json",
                "the request body must be a JSON object",
            )),
            Err(e) => Err(Response::error(
                400,
                "invalid_json",
                &format!("the request body is not valid JSON: {e}"),
            )),
        }
    }

    /// An optional string field.
    pub fn opt_str(&self, field: &str) -> Result<Option<&str>> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(field, "must be a string")),
        }
    }

    /// A required string field.
    pub fn str(&self, field: &str) -> Result<&str> {
        self.opt_str(field)?
            .ok_or_else(|| invalid(field, "is required"))
    }

    /// An optional integer field.
    pub fn opt_i64(&self, field: &str) -> Result<Option<i64>> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid(field, "must be an integer")),
            Some(_) => Err(invalid(field, "must be an integer")),
        }
    }

    /// An optional list of strings.
    pub fn opt_str_list(&self, field: &str) -> Result<Option<Vec<String>>> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| invalid(field, "must be a list of strings")),
            Some(_) => Err(invalid(field, "must be a list of strings")),
        }
    }
}

/// The most items a page may hold.
pub const MAX_LIMIT: u32 = 100;

/// The page size of a list: `?limit=` (1-100) or the `page_size` setting.
pub fn page_limit(req: &Request, page_size: i64) -> Result<u32> {
    parse_limit(req.query_param("limit").as_deref(), page_size)
}

fn parse_limit(raw: Option<&str>, page_size: i64) -> Result<u32> {
    match raw {
        None | Some("") => Ok(page_size.clamp(1, i64::from(MAX_LIMIT)) as u32),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(invalid("limit", "must be an integer from 1 to 100")),
        },
    }
}

/// The `?cursor=` of a list, if any (an empty one is none).
pub fn cursor(req: &Request) -> Option<String> {
    req.query_param("cursor").filter(|c| !c.is_empty())
}

/// A cursor that is a position (an offset or a number), as issued by
/// [`number_cursor`].
pub fn parse_number_cursor(raw: Option<&str>) -> Result<u32> {
    match raw {
        None => Ok(0),
        Some(raw) => raw.parse::<u32>().map_err(|_| bad_cursor()),
    }
}

/// The cursor for "continue after position `n`".
pub fn number_cursor(n: u32) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: &Response) -> (u16, String) {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        (
            r.status,
            v["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    }

    #[test]
    fn bodies_are_objects() {
        assert!(Body::from_bytes(b"").is_ok());
        assert!(Body::from_bytes(b"  \n").is_ok());
        for bad in [&b"{"[..], b"[]", b"1", b"\"x\""] {
            let err = Body::from_bytes(bad).expect_err("not an object");
            assert_eq!(code(&err), (400, "invalid_json".into()));
        }
    }

    #[test]
    fn fields_are_typed_and_named() {
        let body = Body::from_bytes(br#"{"title":"t","n":3,"tags":["a"],"bad":1,"nul":null}"#)
            .expect("object");
        assert_eq!(body.str("title").ok(), Some("t"));
        assert_eq!(body.opt_i64("n").ok(), Some(Some(3)));
        assert_eq!(body.opt_str("nul").ok(), Some(None));
        assert_eq!(
            body.opt_str_list("tags").ok(),
            Some(Some(vec!["a".to_owned()]))
        );
        let err = body.str("bad").expect_err("not a string");
        assert_eq!(code(&err), (422, "invalid_input".into()));
        let msg: Value = serde_json::from_slice(&err.body).unwrap_or_default();
        assert!(
            msg["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("bad ")
        );
        assert!(body.str("missing").is_err());
        assert!(body.opt_str_list("title").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None, 20).ok(), Some(20));
        assert_eq!(parse_limit(None, 5000).ok(), Some(100));
        assert_eq!(parse_limit(None, 0).ok(), Some(1));
        assert_eq!(parse_limit(Some("7"), 20).ok(), Some(7));
        for bad in ["0", "101", "-1", "x"] {
            assert!(parse_limit(Some(bad), 20).is_err(), "{bad}");
        }
    }

    #[test]
    fn number_cursors() {
        assert_eq!(parse_number_cursor(None).ok(), Some(0));
        assert_eq!(parse_number_cursor(Some(&number_cursor(40))).ok(), Some(40));
        assert!(parse_number_cursor(Some("abc")).is_err());
    }
}
