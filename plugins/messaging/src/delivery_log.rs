//! `GET /log`: what this plugin sent, newest first, searchable by
//! recipient (a user id, an address or a number), with each outbox
//! message's status as the host sees it now.

use serde_json::{Value, json};
use weft_sdk::docs::{Op, Query};
use weft_sdk::{Request, Response};

use crate::http::{self, Result};
use crate::send::{Report, with_live_status};
use crate::store::LOG;

pub fn search(req: &Request) -> Result {
    let mut q = Query::new()
        .order_by("at", true)
        .limit(http::limit(req)?)
        .cursor(http::cursor(req).as_deref());
    if let Some(r) = req.query_param("recipient").filter(|r| !r.is_empty()) {
        // An address finds sends to it and to the users it belongs to.
        q = if r.contains('@') {
            q.filter("email", Op::Eq, r.to_ascii_lowercase())
        } else {
            q.filter("recipient", Op::Eq, r)
        };
    }
    if let Some(t) = req.query_param("template").filter(|t| !t.is_empty()) {
        q = q.filter("template", Op::Eq, t);
    }
    let (items, next) = http::query::<Report>(LOG, &q)?;
    let entries: Vec<Value> = items.iter().map(|(_, r)| with_live_status(r)).collect();
    Ok(Response::json(
        200,
        &json!({"entries": entries, "next_cursor": next}),
    ))
}
