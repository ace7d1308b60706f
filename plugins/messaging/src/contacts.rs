//! `/me/contact` and `/contacts/{user}`: addresses, locale, channel
//! preferences and quiet hours; `/watches`: what a user follows (a forum
//! topic), for event rules to notify.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::{self, Op, Query};
use weft_sdk::{Request, Response};

use crate::channels::{Contact, QuietHours, is_user_id};
use crate::http::{self, Result, caller_id, invalid, not_found, now_ms};
use crate::store::{self, CONTACTS, WATCHES};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[serde(default)]
    push_tokens: Vec<String>,
    locale: Option<String>,
    #[serde(default)]
    channels: BTreeMap<String, bool>,
    quiet_hours: Option<QuietHours>,
}

fn show(user: &str) -> Result {
    let c = store::contact(user)?.ok_or_else(|| not_found("contact"))?;
    Ok(Response::json(200, &c))
}

fn save(req: &Request, user: &str, default_name: &str) -> Result {
    let body: ContactBody = http::body(req)?;
    let mut contact = Contact {
        user: user.to_owned(),
        name: body.name.unwrap_or_else(|| default_name.to_owned()),
        email: body.email.filter(|e| !e.trim().is_empty()),
        phone: body.phone.filter(|p| !p.trim().is_empty()),
        push_tokens: body.push_tokens,
        locale: body.locale,
        channels: body.channels,
        quiet_hours: body.quiet_hours,
    };
    contact
        .check()
        .map_err(|e| Response::error(422, "invalid_recipient", &e))?;
    http::put(CONTACTS, user, &contact, None)?;
    Ok(Response::json(200, &contact))
}

pub fn get_mine(req: &Request) -> Result {
    show(&caller_id(req)?)
}

pub fn put_mine(req: &Request) -> Result {
    let name = req
        .caller
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    save(req, &caller_id(req)?, &name)
}

fn user_param(req: &Request) -> Result<String> {
    let user = req.param("user_id").unwrap_or_default();
    if !is_user_id(user) {
        return Err(invalid("user_id is not a user id"));
    }
    Ok(user.to_owned())
}

pub fn get_any(req: &Request) -> Result {
    show(&user_param(req)?)
}

pub fn put_any(req: &Request) -> Result {
    let user = user_param(req)?;
    let name = store::contact(&user)?.map(|c| c.name).unwrap_or_default();
    save(req, &user, &name)
}

/// A user following a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watch {
    pub key: String,
    pub user: String,
    pub at: i64,
}

/// Watch keys: 1-80 of `a-z 0-9 _ - . :` (`forum.topic:t0001`).
pub fn check_key(key: &str) -> std::result::Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 80
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key:?}: watch keys are 1-80 characters of a-z, 0-9, '_', '-', '.' and ':'"
        ))
    }
}

fn watch_id(key: &str, user: &str) -> String {
    format!("{key}:{user}")
}

/// Makes `user` watch `key` (nothing if they do already).
pub fn add_watch(key: &str, user: &str) -> Result<()> {
    let w = Watch {
        key: key.into(),
        user: user.into(),
        at: now_ms(),
    };
    match docs::put_json(WATCHES, &store::doc_id(&watch_id(key, user)), &w, Some(0)) {
        Ok(_) | Err(docs::Error::VersionConflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The users watching `key`, at most `limit`.
pub fn watchers(key: &str, limit: u32) -> Result<Vec<String>> {
    let q = Query::new().filter("key", Op::Eq, key).limit(limit);
    Ok(http::query::<Watch>(WATCHES, &q)?
        .0
        .into_iter()
        .map(|(_, w)| w.user)
        .collect())
}

fn key_param(req: &Request) -> Result<String> {
    let key = req.param("key").unwrap_or_default();
    check_key(key).map_err(|e| invalid(&e))?;
    Ok(key.to_owned())
}

pub fn watch(req: &Request) -> Result {
    let key = key_param(req)?;
    add_watch(&key, &caller_id(req)?)?;
    Ok(Response::json(200, &json!({"key": key, "watching": true})))
}

pub fn unwatch(req: &Request) -> Result {
    let key = key_param(req)?;
    docs::delete(WATCHES, &store::doc_id(&watch_id(&key, &caller_id(req)?)))?;
    Ok(Response::json(200, &json!({"key": key, "watching": false})))
}

pub fn my_watches(req: &Request) -> Result {
    let q = Query::new()
        .filter("user", Op::Eq, caller_id(req)?)
        .limit(http::limit(req)?)
        .cursor(http::cursor(req).as_deref());
    let (items, next) = http::query::<Watch>(WATCHES, &q)?;
    let keys: Vec<&str> = items.iter().map(|(_, w)| w.key.as_str()).collect();
    Ok(Response::json(
        200,
        &json!({"watches": keys, "next_cursor": next}),
    ))
}

pub fn list_watchers(req: &Request) -> Result {
    let key = key_param(req)?;
    Ok(Response::json(
        200,
        &json!({"key": key, "users": watchers(&key, 1000)?}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_keys() {
        assert!(check_key("forum.topic:t00000001").is_ok());
        assert!(check_key("Forum topic").is_err());
        assert!(check_key(&"a".repeat(81)).is_err());
        assert_eq!(watch_id("k:1", "u"), "k:1:u");
    }
}
