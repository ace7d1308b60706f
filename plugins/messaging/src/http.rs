//! The HTTP edge: error responses, JSON bodies, paging, and typed docs
//! access shared by every handler.

use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_sdk::docs::{self, Query};
use weft_sdk::{Request, Response, Role, log};

/// What a fallible handler returns; both arms are responses.
pub type Result<T = Response> = core::result::Result<T, Response>;

/// `422 invalid_input`.
pub fn invalid(message: &str) -> Response {
    Response::error(422, "invalid_input", message)
}

/// `404 not_found`.
pub fn not_found(what: &str) -> Response {
    Response::error(404, "not_found", &format!("no such {what}"))
}

/// `500 internal_error`: the detail goes to the tenant's plugin log only.
pub fn internal(detail: &str) -> Response {
    log::error(detail);
    Response::error(
        500,
        "internal_error",
        "messaging could not complete this request",
    )
}

/// The body as a `T`; a body that does not fit is `400 invalid_json` with
/// serde's explanation (which names the field).
pub fn body<T: DeserializeOwned>(req: &Request) -> Result<T> {
    let bytes: &[u8] = if req.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &req.body
    };
    serde_json::from_slice(bytes).map_err(|e| {
        Response::error(
            400,
            "invalid_json",
            &format!("the request body does not fit this route: {e}"),
        )
    })
}

/// The caller's user id (private routes always have a caller).
pub fn caller_id(req: &Request) -> Result<String> {
    req.caller
        .as_ref()
        .map(|c| c.id.clone())
        .ok_or_else(|| Response::error(401, "unauthorized", "sign in first"))
}

/// Whether the caller is an admin of the tenant.
pub fn is_admin(req: &Request) -> bool {
    req.caller
        .as_ref()
        .is_some_and(|c| matches!(c.role, Role::Admin))
}

/// `?limit=` (1-100, default 50).
pub fn limit(req: &Request) -> Result<u32> {
    match req.query_param("limit").as_deref() {
        None | Some("") => Ok(50),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(invalid("limit must be an integer from 1 to 100")),
        },
    }
}

/// `?cursor=`, if any.
pub fn cursor(req: &Request) -> Option<String> {
    req.query_param("cursor").filter(|c| !c.is_empty())
}

/// An HTML page (the public unsubscribe and confirmation pages).
pub fn page(status: u16, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:sans-serif;max-width:36em;margin:3em auto\"><h1>{title}</h1>{body_html}</body></html>"
    );
    Response::new(status, html).with_header("content-type", "text/html; charset=utf-8")
}

/// Minimal escaping for text put into [`page`].
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Now, Unix ms (the wall clock WASI gives the guest).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Document `id` of `collection`, decoded, with its version.
pub fn get<T: DeserializeOwned>(collection: &str, id: &str) -> Result<Option<(T, u64)>> {
    match docs::get(collection, id)? {
        None => Ok(None),
        Some(doc) => {
            let value = doc
                .json()
                .map_err(|e| internal(&format!("{collection}/{id}: unreadable document: {e}")))?;
            Ok(Some((value, doc.version)))
        }
    }
}

/// Writes `value` as document `id` (`if_version` as in `docs::put`).
pub fn put<T: Serialize>(
    collection: &str,
    id: &str,
    value: &T,
    if_version: Option<u64>,
) -> Result<u64> {
    Ok(docs::put_json(collection, id, value, if_version)?.version)
}

/// Documents by id, and the cursor of the next page.
pub type Page<T> = (Vec<(String, T)>, Option<String>);

/// One page of `collection`, decoded; a cursor the store refuses is
/// `400 invalid_cursor`.
pub fn query<T: DeserializeOwned>(collection: &str, q: &Query) -> Result<Page<T>> {
    let page = docs::query(collection, q).map_err(|e| match e {
        docs::Error::InvalidQuery(_) => {
            Response::error(400, "invalid_cursor", "cursor was not issued for this list")
        }
        e => e.into(),
    })?;
    let items = page
        .documents
        .iter()
        .map(|doc| {
            doc.json().map(|v| (doc.id.clone(), v)).map_err(|e| {
                internal(&format!(
                    "{collection}/{}: unreadable document: {e}",
                    doc.id
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((items, page.next_cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_sdk::Method;

    #[test]
    fn bodies_and_limits() {
        #[derive(Debug, serde::Deserialize)]
        struct B {
            #[allow(dead_code)]
            template: String,
        }
        let req = Request::new(Method::Post, "/send").with_body(r#"{"templat":"x"}"#);
        let err = body::<B>(&req).expect_err("missing field");
        assert_eq!(err.status, 400);
        assert!(String::from_utf8_lossy(&err.body).contains("template"));
        let req = Request::new(Method::Get, "/log").with_query("limit=500");
        assert!(limit(&req).is_err());
        assert_eq!(limit(&Request::new(Method::Get, "/log")).ok(), Some(50));
    }

    #[test]
    fn pages_escape() {
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
