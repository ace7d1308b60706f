//! Email lists: the lists, their subscribers (double opt-in: pending until
//! the emailed link is followed), CSV import and export, unsubscribing.
//!
//! Each list keeps its confirmed count in kv (`count:{list}`), moved by
//! every status change in the same unit of work as the change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::docs::{self, Op, Query};
use weft_sdk::outbox::{self, Email};
use weft_sdk::{Request, Response, kv};

use crate::channels::{Recipient, check_email};
use crate::csvio::{self, ExportRow, ImportError};
use crate::fanout::message_id;
use crate::http::{self, Result, escape, invalid, is_admin, not_found, now_ms, page};
use crate::send::{self, Settings};
use crate::store::{LISTS, SUBSCRIBERS};
use crate::tokens::{self, Claims, Purpose, digest};
use crate::unsubscribe;

/// A list as stored (id = its slug).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// New public subscribers wait for their confirmation link.
    pub double_opt_in: bool,
    /// The template of the confirmation email (its data: `list`,
    /// `confirm_url`); default: a plain built-in text.
    pub confirm_template: Option<String>,
    pub created_at: i64,
}

/// A subscriber as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscriber {
    pub list: String,
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub data: Map<String, Value>,
    /// `pending`, `confirmed` or `unsubscribed`.
    pub status: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
}

/// Subscriber ids: the list and a digest of the address (addresses hold
/// characters docs ids do not).
pub fn subscriber_id(list: &str, email: &str) -> String {
    format!("{list}.{}", &digest(&[email])[..24])
}

fn count_key(list: &str) -> String {
    format!("count:{list}")
}

/// Confirmed subscribers of `list`.
pub fn confirmed_count(list: &str) -> Result<i64> {
    Ok(kv::get_i64(&count_key(list))?.unwrap_or(0))
}

fn check_list_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "list ids are 1-32 characters of a-z, 0-9, '_' and '-'",
        ))
    }
}

pub fn load(id: &str) -> Result<List> {
    Ok(http::get::<List>(LISTS, id)?
        .ok_or_else(|| not_found("list"))?
        .0)
}

fn shown(list: &List) -> Result<Value> {
    let mut v = serde_json::to_value(list).unwrap_or(Value::Null);
    v["confirmed"] = json!(confirmed_count(&list.id)?);
    Ok(v)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewList {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    double_opt_in: bool,
    confirm_template: Option<String>,
}

fn yes() -> bool {
    true
}

pub fn create(req: &Request) -> Result {
    let b: NewList = http::body(req)?;
    check_list_id(&b.id)?;
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(invalid("name is 1-200 characters"));
    }
    if let Some(t) = &b.confirm_template {
        send::template(t)?;
    }
    let list = List {
        id: b.id,
        name: b.name.trim().to_owned(),
        description: b.description,
        double_opt_in: b.double_opt_in,
        confirm_template: b.confirm_template,
        created_at: now_ms(),
    };
    match docs::put_json(LISTS, &list.id, &list, Some(0)) {
        Ok(_) => Ok(Response::json(201, &shown(&list)?)),
        Err(docs::Error::VersionConflict(_)) => Err(Response::error(
            409,
            "list_exists",
            "a list with this id exists",
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn list_all(req: &Request) -> Result {
    let q = Query::new()
        .order_by("id", false)
        .limit(http::limit(req)?)
        .cursor(http::cursor(req).as_deref());
    let (items, next) = http::query::<List>(LISTS, &q)?;
    let lists = items
        .iter()
        .map(|(_, l)| shown(l))
        .collect::<Result<Vec<_>>>()?;
    Ok(Response::json(
        200,
        &json!({"lists": lists, "next_cursor": next}),
    ))
}

pub fn get(req: &Request) -> Result {
    let list = load(req.param("id").unwrap_or_default())?;
    Ok(Response::json(200, &shown(&list)?))
}

/// Deletes the list; its subscribers are left for an export (and
/// unreachable: no list, no sends).
pub fn delete(req: &Request) -> Result {
    let id = req.param("id").unwrap_or_default();
    if !docs::delete(LISTS, id)? {
        return Err(not_found("list"));
    }
    Ok(Response::empty(204))
}

pub fn subscribers(req: &Request) -> Result {
    let list = load(req.param("id").unwrap_or_default())?;
    let mut q = Query::new()
        .filter("list", Op::Eq, list.id.as_str())
        .order_by("id", false)
        .limit(http::limit(req)?)
        .cursor(http::cursor(req).as_deref());
    if let Some(status) = req.query_param("status") {
        q = q.filter("status", Op::Eq, status);
    }
    let (items, next) = http::query::<Subscriber>(SUBSCRIBERS, &q)?;
    let subs: Vec<&Subscriber> = items.iter().map(|(_, s)| s).collect();
    Ok(Response::json(
        200,
        &json!({"subscribers": subs, "next_cursor": next}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeBody {
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    data: Map<String, Value>,
    /// Admins only: skip the opt-in email (the consent was given
    /// elsewhere).
    #[serde(default)]
    confirmed: bool,
}

/// Subscribes an address: confirmed at once for single opt-in lists (or an
/// admin saying so), else pending with a confirmation email. An address
/// that unsubscribed from everything gets no email from here either.
pub fn subscribe(req: &Request) -> Result {
    let list = load(req.param("id").unwrap_or_default())?;
    let b: SubscribeBody = http::body(req)?;
    let email = b.email.trim().to_ascii_lowercase();
    check_email(&email).map_err(|e| Response::error(422, "invalid_recipient", &e))?;
    if b.name.len() > 200 {
        return Err(invalid("name is at most 200 characters"));
    }
    let id = subscriber_id(&list.id, &email);
    let existing = http::get::<Subscriber>(SUBSCRIBERS, &id)?;
    if let Some((s, _)) = &existing
        && s.status == "confirmed"
    {
        // An admin may know; anyone else gets the answer a new address
        // gets, so the route does not tell who is on the list.
        return Ok(if is_admin(req) {
            Response::json(200, &json!({"status": "confirmed"}))
        } else {
            Response::json(202, &json!({"status": "pending"}))
        });
    }
    let now = now_ms();
    let direct = !list.double_opt_in || (b.confirmed && is_admin(req));
    let sub = Subscriber {
        list: list.id.clone(),
        email: email.clone(),
        name: b.name,
        data: b.data,
        status: if direct { "confirmed" } else { "pending" }.into(),
        created_at: existing.as_ref().map_or(now, |(s, _)| s.created_at),
        confirmed_at: direct.then_some(now),
    };
    if direct {
        unsubscribe::lift(&format!("list:{}", list.id), &format!("e:{email}"))?;
        http::put(
            SUBSCRIBERS,
            &id,
            &sub,
            existing.as_ref().map(|(_, v)| *v).or(Some(0)),
        )?;
        kv::increment(&count_key(&list.id), 1)?;
        return Ok(Response::json(201, &json!({"status": "confirmed"})));
    }
    http::put(
        SUBSCRIBERS,
        &id,
        &sub,
        existing.as_ref().map(|(_, v)| *v).or(Some(0)),
    )?;
    if !unsubscribe::suppressed_everywhere(&format!("e:{email}"))? {
        send_confirmation(&list, &email, now)?;
    }
    // The same answer whatever happened, so the route does not tell who is
    // on the list.
    Ok(Response::json(202, &json!({"status": "pending"})))
}

fn send_confirmation(list: &List, email: &str, now: i64) -> Result<()> {
    let settings = Settings::load()?;
    let token = tokens::sign(
        &settings.secret,
        &Claims {
            purpose: Purpose::Confirm,
            scope: format!("list:{}", list.id),
            subject: format!("e:{email}"),
        },
    );
    let url = format!("{}/confirm/{token}", settings.public_url);
    let key = format!(
        "confirm:{}",
        &digest(&[&list.id, email, &now.to_string()])[..32]
    );
    if let Some(name) = &list.confirm_template {
        let template = send::template(name)?;
        let mut data = Map::new();
        data.insert("list".into(), json!({"id": list.id, "name": list.name}));
        data.insert("confirm_url".into(), Value::String(url));
        let job = crate::fanout::Job {
            recipient: Recipient::Email(email.to_owned()),
            channels: vec![crate::channels::Channel::Email],
            template: name.clone(),
            data,
            locale: None,
            key,
            source: format!("confirm:{}", list.id),
            scope: Some(format!("list:{}", list.id)),
            ignore_quiet: true,
            shared: None,
        };
        send::execute(&job, &template, None, &settings, now)?;
        return Ok(());
    }
    let text = format!(
        "Please confirm that you want to receive \"{}\" at {email}:\n\n{url}\n\nIf you did not ask for this, ignore this email: nothing will be sent.",
        list.name
    );
    let outbox_key = format!("{key}:email");
    let msg = Email::to(
        email,
        &format!("Confirm your subscription to {}", list.name),
    )
    .text(&text)
    .header("Message-ID", &message_id(&outbox_key));
    outbox::send(msg, &outbox_key)?;
    Ok(())
}

/// `GET /confirm/{token}`: the opt-in link.
pub fn confirm(req: &Request) -> Result {
    let claims = match unsubscribe::verified(req, Purpose::Confirm) {
        Ok(c) => c,
        Err(r) => {
            return Ok(page(
                r.status,
                "Invalid link",
                "<p>This confirmation link is not valid.</p>",
            ));
        }
    };
    let (Some(list_id), Some(email)) = (
        claims.scope.strip_prefix("list:"),
        claims.subject.strip_prefix("e:"),
    ) else {
        return Ok(page(
            400,
            "Invalid link",
            "<p>This confirmation link is not valid.</p>",
        ));
    };
    let list = load(list_id)?;
    let id = subscriber_id(list_id, email);
    let Some((mut sub, version)) = http::get::<Subscriber>(SUBSCRIBERS, &id)? else {
        return Ok(page(
            404,
            "Not found",
            "<p>This subscription no longer exists.</p>",
        ));
    };
    if sub.status != "confirmed" {
        sub.status = "confirmed".into();
        sub.confirmed_at = Some(now_ms());
        http::put(SUBSCRIBERS, &id, &sub, Some(version))?;
        kv::increment(&count_key(list_id), 1)?;
        unsubscribe::lift(&claims.scope, &claims.subject)?;
    }
    Ok(page(
        200,
        "Subscribed",
        &format!(
            "<p>{} will receive {}.</p>",
            escape(email),
            escape(&list.name)
        ),
    ))
}

/// Marks the subscriber unsubscribed (from a link or an admin).
pub fn mark_unsubscribed(list: &str, email: &str) -> Result<()> {
    let id = subscriber_id(list, email);
    if let Some((mut sub, version)) = http::get::<Subscriber>(SUBSCRIBERS, &id)?
        && sub.status != "unsubscribed"
    {
        if sub.status == "confirmed" {
            kv::increment(&count_key(list), -1)?;
        }
        sub.status = "unsubscribed".into();
        http::put(SUBSCRIBERS, &id, &sub, Some(version))?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeBody {
    email: String,
}

/// `POST /lists/{id}/unsubscribe` (admin): as if the subscriber had used
/// the link.
pub fn admin_unsubscribe(req: &Request) -> Result {
    let list = load(req.param("id").unwrap_or_default())?;
    let b: UnsubscribeBody = http::body(req)?;
    let email = b.email.trim().to_ascii_lowercase();
    check_email(&email).map_err(|e| Response::error(422, "invalid_recipient", &e))?;
    unsubscribe::suppress(&format!("list:{}", list.id), &format!("e:{email}"), "admin")?;
    Ok(Response::json(
        200,
        &json!({"email": email, "status": "unsubscribed"}),
    ))
}

/// Rows per import call: every row is read and written in one call.
const MAX_IMPORT_ROWS: usize = 2_000;

/// `POST /lists/{id}/import`, a CSV body: every row checked first; one bad
/// row refuses the file. Imported rows are confirmed (the admin vouches
/// for the consent); an address that unsubscribed stays unsubscribed.
pub fn import(req: &Request) -> Result {
    let list = load(req.param("id").unwrap_or_default())?;
    let rows = csvio::parse(&req.body, MAX_IMPORT_ROWS).map_err(|e| match e {
        ImportError::File(m) => invalid(&m),
        ImportError::Rows(bad) => Response::json(
            422,
            &json!({"error": {"code": "invalid_rows", "message": format!("{} rows are not valid; nothing was imported", bad.len())}, "rows": bad}),
        ),
    })?;
    // Every read before the first write: the call holds the write lock
    // only while it writes.
    let mut existing = Vec::with_capacity(rows.len());
    for row in &rows {
        existing.push(http::get::<Subscriber>(
            SUBSCRIBERS,
            &subscriber_id(&list.id, &row.email),
        )?);
    }
    let now = now_ms();
    let (mut added, mut updated, mut kept) = (0i64, 0i64, 0i64);
    let mut newly_confirmed = 0i64;
    for (row, old) in rows.into_iter().zip(existing) {
        let id = subscriber_id(&list.id, &row.email);
        match old {
            Some((s, _)) if s.status == "unsubscribed" => kept += 1,
            Some((mut s, version)) => {
                if s.status != "confirmed" {
                    newly_confirmed += 1;
                    s.confirmed_at = Some(now);
                }
                s.status = "confirmed".into();
                s.name = row.name;
                s.data = row.data;
                http::put(SUBSCRIBERS, &id, &s, Some(version))?;
                updated += 1;
            }
            None => {
                let s = Subscriber {
                    list: list.id.clone(),
                    email: row.email,
                    name: row.name,
                    data: row.data,
                    status: "confirmed".into(),
                    created_at: now,
                    confirmed_at: Some(now),
                };
                http::put(SUBSCRIBERS, &id, &s, Some(0))?;
                added += 1;
                newly_confirmed += 1;
            }
        }
    }
    if newly_confirmed > 0 {
        kv::increment(&count_key(&list.id), newly_confirmed)?;
    }
    Ok(Response::json(
        200,
        &json!({"added": added, "updated": updated, "kept_unsubscribed": kept}),
    ))
}

/// Rows an export holds at most (the response size limit).
const MAX_EXPORT_ROWS: usize = 50_000;

/// `GET /lists/{id}/export`: every subscriber as CSV.
pub fn export(req: &Request) -> Result {
    let list = load(req.param("id").unwrap_or_default())?;
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = Query::new()
            .filter("list", Op::Eq, list.id.as_str())
            .order_by("id", false)
            .limit(1000)
            .cursor(cursor.as_deref());
        let (items, next) = http::query::<Subscriber>(SUBSCRIBERS, &q)?;
        rows.extend(items.into_iter().map(|(_, s)| ExportRow {
            email: s.email,
            name: s.name,
            status: s.status,
            created_at: s.created_at,
            data: s.data,
        }));
        match next {
            Some(n) if rows.len() < MAX_EXPORT_ROWS => cursor = Some(n),
            _ => break,
        }
    }
    let csv = csvio::export(&rows).map_err(|e| http::internal(&format!("export: {e}")))?;
    Ok(Response::new(200, csv)
        .with_header("content-type", "text/csv; charset=utf-8")
        .with_header(
            "content-disposition",
            &format!("attachment; filename=\"{}.csv\"", list.id),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_ids_fit_docs_ids() {
        let id = subscriber_id("news", "ada+tag@example.org");
        assert!(id.starts_with("news.") && id.len() == 29);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        assert_ne!(id, subscriber_id("news", "bob@example.org"));
    }
}
