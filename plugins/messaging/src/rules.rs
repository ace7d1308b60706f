//! Event rules: the tenant admin turns other plugins' events into
//! messages. A rule names a topic, a watch key rendered from the payload
//! (`forum.topic:{{ topic_id }}`), who acted (`author.id`: never told of
//! their own doing, and made a watcher if `auto_watch`), a template and
//! channels. Everyone watching the key gets the template, rendered with
//! the payload (plus the rule's `data`), if the payload meets the rule's
//! `when` conditions.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::docs::{self, Op, Query};
use weft_sdk::{Event, HandlerError, Request, Response};

use crate::channels::{Channel, Recipient, parse_channels};
use crate::contacts::{self, check_key};
use crate::fanout::Job;
use crate::http::{self, Result, invalid, not_found, now_ms};
use crate::send::{self, Settings};
use crate::store::RULES;
use crate::tokens::digest;

/// A rule as stored (id = its name).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub topic: String,
    /// A minijinja template over the payload; what watchers watch.
    pub watch_key: String,
    /// A dotted path into the payload: the user who acted.
    pub actor: Option<String>,
    /// Make the actor a watcher of the key.
    #[serde(default)]
    pub auto_watch: bool,
    /// `None`: the rule only adds watches.
    pub template: Option<String>,
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Conditions on the payload: each dotted path must hold one of the
    /// listed values (`{"read": ["public", "users"]}` keeps the forum's
    /// moderator-only posts out of ordinary watchers' mail).
    #[serde(default)]
    pub when: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    pub updated_at: i64,
}

impl Rule {
    /// Whether `payload` meets every condition of `when`.
    pub fn applies(&self, payload: &Value) -> bool {
        self.when.iter().all(|(path, allowed)| {
            let mut v = payload;
            for part in path.split('.') {
                match v.get(part) {
                    Some(next) => v = next,
                    None => return false,
                }
            }
            allowed.contains(v)
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    topic: String,
    watch_key: String,
    actor: Option<String>,
    #[serde(default)]
    auto_watch: bool,
    template: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    data: Map<String, Value>,
    #[serde(default)]
    when: BTreeMap<String, Vec<Value>>,
}

/// Watchers told per event at most.
const MAX_WATCHERS: u32 = 1000;

fn key_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// The watch key of `rule` for `payload`.
pub fn watch_key(rule_key: &str, payload: &Value) -> std::result::Result<String, String> {
    let key = key_env()
        .render_str(rule_key, payload)
        .map_err(|e| format!("watch_key does not render: {e}"))?;
    check_key(&key)?;
    Ok(key)
}

/// The value at a dotted `path` of `payload`, as text.
pub fn lookup(payload: &Value, path: &str) -> Option<String> {
    let mut v = payload;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn put(req: &Request) -> Result {
    let id = req.param("id").unwrap_or_default();
    crate::templates::check_name(id).map_err(|e| invalid(&e.0.replace("template", "rule")))?;
    let b: RuleBody = http::body(req)?;
    let topic_ok = !b.topic.is_empty()
        && b.topic.len() <= 128
        && b.topic
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.".contains(&c));
    if !topic_ok {
        return Err(invalid(
            "topic is 1-128 characters of a-z, 0-9, '_', '-' and '.'",
        ));
    }
    if let Err(e) = key_env().template_from_str(&b.watch_key) {
        return Err(invalid(&format!("watch_key does not compile: {e}")));
    }
    let channels = match &b.template {
        Some(t) => {
            send::template(t)?;
            parse_channels(&b.channels).map_err(|e| invalid(&e))?
        }
        None => Vec::new(),
    };
    let rule = Rule {
        id: id.to_owned(),
        topic: b.topic,
        watch_key: b.watch_key,
        actor: b.actor,
        auto_watch: b.auto_watch,
        template: b.template,
        channels,
        data: b.data,
        when: b.when,
        updated_at: now_ms(),
    };
    http::put(RULES, id, &rule, None)?;
    Ok(Response::json(200, &rule))
}

pub fn list(_req: &Request) -> Result {
    let (items, _) = http::query::<Rule>(RULES, &Query::new().order_by("id", false).limit(1000))?;
    let rules: Vec<&Rule> = items.iter().map(|(_, r)| r).collect();
    Ok(Response::json(200, &json!({"rules": rules})))
}

pub fn delete(req: &Request) -> Result {
    if !docs::delete(RULES, req.param("id").unwrap_or_default())? {
        return Err(not_found("rule"));
    }
    Ok(Response::empty(204))
}

fn retry(r: Response) -> HandlerError {
    HandlerError::Retry(format!(
        "{}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    ))
}

/// Applies every rule on the event's topic. Outbox keys derive from the
/// event id, the rule and the recipient: a redelivery queues nothing new.
pub fn on_event(event: &Event) -> std::result::Result<(), HandlerError> {
    let q = Query::new()
        .filter("topic", Op::Eq, event.topic.as_str())
        .limit(100);
    let (rules, _) = http::query::<Rule>(RULES, &q).map_err(retry)?;
    if rules.is_empty() {
        return Ok(());
    }
    let payload: Value = serde_json::from_str(&event.payload)
        .map_err(|e| HandlerError::Reject(format!("payload is not JSON: {e}")))?;
    let mut settings: Option<Settings> = None;
    let now = now_ms();
    for (_, rule) in rules {
        if !rule.applies(&payload) {
            continue;
        }
        let key = match watch_key(&rule.watch_key, &payload) {
            Ok(k) => k,
            Err(e) => {
                weft_sdk::log::warn(&format!("rule {}: {e}; skipped", rule.id));
                continue;
            }
        };
        let actor = rule.actor.as_deref().and_then(|p| lookup(&payload, p));
        let Some(template_name) = &rule.template else {
            if rule.auto_watch
                && let Some(a) = &actor
            {
                contacts::add_watch(&key, a).map_err(retry)?;
            }
            continue;
        };
        let Some(template) = crate::store::template(template_name).map_err(retry)? else {
            weft_sdk::log::warn(&format!(
                "rule {}: template {template_name} is gone",
                rule.id
            ));
            continue;
        };
        let settings = match &settings {
            Some(s) => s,
            None => settings.insert(Settings::load().map_err(retry)?),
        };
        let mut data = rule.data.clone();
        if let Value::Object(p) = &payload {
            for (k, v) in p {
                data.insert(k.clone(), v.clone());
            }
        }
        // Every watcher's message renders from the same data.
        let shared = minijinja::Value::from_serialize(&data);
        for user in contacts::watchers(&key, MAX_WATCHERS).map_err(retry)? {
            if actor.as_deref() == Some(user.as_str()) {
                continue;
            }
            let job = Job {
                recipient: Recipient::User(user.clone()),
                channels: rule.channels.clone(),
                template: template_name.clone(),
                data: Map::new(),
                locale: None,
                key: format!("event:{}", &digest(&[&event.id, &rule.id, &user])[..32]),
                source: format!("rule:{}", rule.id),
                scope: None,
                ignore_quiet: false,
                shared: Some(shared.clone()),
            };
            let contact = send::contact_of(&job.recipient).map_err(retry)?;
            match send::execute(&job, &template, contact.as_ref(), settings, now) {
                Ok(r) if r.throttled() => {
                    return Err(HandlerError::Retry(
                        "the outbox is rate limiting this tenant".into(),
                    ));
                }
                Ok(_) => {}
                Err(r) if r.status == 422 => weft_sdk::log::warn(&format!(
                    "rule {}: {} for {user}; skipped",
                    rule.id,
                    String::from_utf8_lossy(&r.body)
                )),
                Err(r) => return Err(retry(r)),
            }
        }
        // After the notifications: the actor is not told of their own post.
        if rule.auto_watch
            && let Some(a) = &actor
        {
            contacts::add_watch(&key, a).map_err(retry)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_render_from_the_payload() {
        let p = json!({"topic_id": "t00000007", "author": {"id": "u1", "name": "Ada"}});
        assert_eq!(
            watch_key("forum.topic:{{ topic_id }}", &p).as_deref(),
            Ok("forum.topic:t00000007")
        );
        assert!(watch_key("forum.topic:{{ nope }}", &p).is_err());
        assert!(watch_key("Bad Key {{ topic_id }}", &p).is_err());
        assert_eq!(lookup(&p, "author.id").as_deref(), Some("u1"));
        assert_eq!(lookup(&p, "author.missing"), None);
    }

    #[test]
    fn conditions_on_the_payload() {
        let rule: Rule = serde_json::from_value(json!({
            "id": "r", "topic": "forum.post_created", "watch_key": "k",
            "when": {"read": ["public", "users"], "author.id": ["u1"]}
        }))
        .expect("rule");
        assert!(rule.applies(&json!({"read": "users", "author": {"id": "u1"}})));
        assert!(!rule.applies(&json!({"read": "moderators", "author": {"id": "u1"}})));
        assert!(
            !rule.applies(&json!({"author": {"id": "u1"}})),
            "a missing field fails"
        );
        let open: Rule = serde_json::from_value(json!({"id": "r", "topic": "t", "watch_key": "k"}))
            .expect("rule");
        assert!(open.applies(&json!({})));
    }
}
