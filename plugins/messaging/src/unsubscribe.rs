//! Unsubscribing: the public page behind every message's link, the
//! RFC 8058 one-click `POST` mail clients send, and the suppressions they
//! leave, which every later send checks on every channel they cover.
//!
//! `GET /u/{token}` only shows a page with a button (link scanners follow
//! GETs; they must not unsubscribe anyone); `POST /u/{token}` — the button
//! or the mail client's one-click — suppresses.

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::{Request, Response, kv};

use crate::fanout::suppression_key;
use crate::http::{self, Result, escape, now_ms, page};
use crate::lists;
use crate::store;
use crate::tokens::{self, Claims, Purpose};

/// What a suppression records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Suppression {
    pub at: i64,
    /// `link` (the page or one-click) or `admin`.
    pub via: String,
}

/// `400 invalid_token`: forged, altered, or from another tenant.
fn refused() -> Response {
    Response::error(
        400,
        "invalid_token",
        "this link is not valid (it may have been altered)",
    )
}

/// The claims of the token in the path, if this tenant signed it.
pub fn verified(req: &Request, purpose: Purpose) -> Result<Claims> {
    let token = req.param("token").unwrap_or_default();
    let secret = store::existing_secret()?.ok_or_else(refused)?;
    tokens::verify(&secret, token, purpose).map_err(|_| refused())
}

fn describe(claims: &Claims) -> String {
    let who = claims
        .subject
        .split_once(':')
        .map_or(claims.subject.as_str(), |(kind, v)| {
            if kind == "u" { "your account" } else { v }
        });
    match claims.scope.strip_prefix("list:") {
        Some(list) => format!("{} from the list {}", escape(who), escape(list)),
        None => format!("{} from every message of this sender", escape(who)),
    }
}

pub fn page_get(req: &Request) -> Result {
    let claims = match verified(req, Purpose::Unsubscribe) {
        Ok(c) => c,
        Err(r) => {
            return Ok(page(
                r.status,
                "Invalid link",
                "<p>This unsubscribe link is not valid.</p>",
            ));
        }
    };
    Ok(page(
        200,
        "Unsubscribe",
        &format!(
            "<p>Unsubscribe {}?</p><form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
            describe(&claims)
        ),
    ))
}

pub fn post(req: &Request) -> Result {
    let claims = verified(req, Purpose::Unsubscribe)?;
    suppress(&claims.scope, &claims.subject, "link")?;
    let wants_json = req
        .header("accept")
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return Ok(Response::json(
            200,
            &json!({"unsubscribed": true, "scope": claims.scope, "subject": claims.subject}),
        ));
    }
    Ok(page(
        200,
        "Unsubscribed",
        &format!("<p>Done: {} is unsubscribed.</p>", describe(&claims)),
    ))
}

/// Records the suppression of `subject` in `scope`. A user's covers
/// their addresses too, so a later send to the raw address stops as well;
/// a list's marks the subscriber unsubscribed.
pub fn suppress(scope: &str, subject: &str, via: &str) -> Result<()> {
    let record = serde_json::to_vec(&Suppression {
        at: now_ms(),
        via: via.into(),
    })
    .unwrap_or_default();
    let mut subjects = vec![subject.to_owned()];
    if let Some(user) = subject.strip_prefix("u:")
        && let Some(c) = store::contact(user)?
    {
        subjects.extend(c.email.map(|e| format!("e:{e}")));
        subjects.extend(c.phone.map(|p| format!("p:{p}")));
    }
    for s in &subjects {
        kv::set(&suppression_key(scope, s), &record)?;
    }
    if let (Some(list), Some(email)) = (scope.strip_prefix("list:"), subject.strip_prefix("e:")) {
        lists::mark_unsubscribed(list, email)?;
    }
    Ok(())
}

/// Lifts a list suppression (the address confirmed a new subscription).
pub fn lift(scope: &str, subject: &str) -> Result<()> {
    kv::delete(&suppression_key(scope, subject))?;
    Ok(())
}

/// Whether `subject` is suppressed for everything.
pub fn suppressed_everywhere(subject: &str) -> Result<bool> {
    Ok(kv::get(&suppression_key("all", subject))?.is_some())
}

/// The scope and subject of a suppression's kv key: `sup:all:{subject}`
/// or `sup:list:{id}:{subject}` (list ids hold no `:`).
fn parse_key(key: &str) -> Option<(String, &str)> {
    let rest = key.strip_prefix("sup:")?;
    match rest.strip_prefix("list:") {
        Some(r) => {
            let (list, subject) = r.split_once(':')?;
            Some((format!("list:{list}"), subject))
        }
        None => Some(("all".to_owned(), rest.strip_prefix("all:")?)),
    }
}

pub fn list(req: &Request) -> Result {
    let limit = http::limit(req)?;
    let page = kv::list_prefix("sup:", http::cursor(req).as_deref(), limit)?;
    let items: Vec<_> = page
        .entries
        .iter()
        .filter_map(|e| {
            let (scope, subject) = parse_key(&e.key)?;
            let s: Option<Suppression> = serde_json::from_slice(&e.value).ok();
            Some(json!({"scope": scope, "subject": subject, "at": s.as_ref().map(|s| s.at), "via": s.map(|s| s.via)}))
        })
        .collect();
    Ok(Response::json(
        200,
        &json!({"suppressions": items, "next_cursor": page.next_cursor}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_keys_round_trip() {
        let k = suppression_key("list:news", "e:ada@example.org");
        assert_eq!(
            parse_key(&k),
            Some(("list:news".to_owned(), "e:ada@example.org"))
        );
        let k = suppression_key("all", "u:0190-ab");
        assert_eq!(parse_key(&k), Some(("all".to_owned(), "u:0190-ab")));
        assert_eq!(parse_key("secret:tokens"), None);
    }
}
