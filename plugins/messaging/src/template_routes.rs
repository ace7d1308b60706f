//! `/templates` (the tenant admin's CRUD), `/preview` (render without
//! sending) and `/send` (the fan-out).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use weft_sdk::docs::Query;
use weft_sdk::{Request, Response, docs};

use crate::channels::{Channel, Recipient, parse_channels};
use crate::fanout::{Job, Step};
use crate::http::{self, Result, invalid, not_found, now_ms};
use crate::send::{self, Settings};
use crate::store::{self, TEMPLATES};
use crate::templates::{Parts, Template, check_name};
use crate::tokens::digest;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    #[serde(default)]
    description: String,
    #[serde(default)]
    defaults: Map<String, Value>,
    #[serde(default)]
    urgent: bool,
    variants: BTreeMap<String, Parts>,
}

pub fn list(req: &Request) -> Result {
    let q = Query::new()
        .order_by("id", false)
        .limit(http::limit(req)?)
        .cursor(http::cursor(req).as_deref());
    let (items, next) = http::query::<Template>(TEMPLATES, &q)?;
    let templates: Vec<Value> = items
        .into_iter()
        .map(|(_, t)| {
            json!({"name": t.name, "description": t.description, "urgent": t.urgent,
                   "locales": t.variants.keys().collect::<Vec<_>>(), "updated_at": t.updated_at})
        })
        .collect();
    Ok(Response::json(
        200,
        &json!({"templates": templates, "next_cursor": next}),
    ))
}

pub fn get(req: &Request) -> Result {
    let name = req.param("name").unwrap_or_default();
    let t = store::template(name)?.ok_or_else(|| not_found("template"))?;
    Ok(Response::json(200, &t))
}

pub fn put(req: &Request) -> Result {
    let name = req.param("name").unwrap_or_default();
    check_name(name).map_err(|e| invalid(&e.0))?;
    let body: TemplateBody = http::body(req)?;
    let template = Template {
        name: name.to_owned(),
        description: body.description,
        defaults: body.defaults,
        urgent: body.urgent,
        variants: body.variants,
        updated_at: now_ms(),
        compiled: Default::default(),
    };
    template
        .check()
        .map_err(|e| Response::error(422, "invalid_template", &e.0))?;
    let existed = docs::get(TEMPLATES, name)?.is_some();
    http::put(TEMPLATES, name, &template, None)?;
    Ok(Response::json(if existed { 200 } else { 201 }, &template))
}

pub fn delete(req: &Request) -> Result {
    let name = req.param("name").unwrap_or_default();
    if !docs::delete(TEMPLATES, name)? {
        return Err(not_found("template"));
    }
    Ok(Response::empty(204))
}

/// A send as requested.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub recipient: String,
    pub channels: Vec<String>,
    pub template: String,
    #[serde(default)]
    pub data: Map<String, Value>,
    pub locale: Option<String>,
    /// Unix ms; in the future: stored and released by the schedule.
    pub send_at: Option<i64>,
    /// Names this send for retries; default: derived from the request.
    pub key: Option<String>,
}

impl SendBody {
    /// The job, checked: template name, recipient, channels, locale.
    fn job(&self, idempotency: Option<&str>) -> Result<Job> {
        let recipient = Recipient::parse(&self.recipient)
            .map_err(|e| Response::error(422, "invalid_recipient", &e))?;
        let channels = parse_channels(&self.channels).map_err(|e| invalid(&e))?;
        if let Some(l) = &self.locale
            && !crate::templates::check_locale(l)
        {
            return Err(invalid(&format!("{l:?} is not a locale tag")));
        }
        // A retry of the same request (same body, or the same key or
        // Idempotency-Key) derives the same key: the outbox queues once.
        let key = match self.key.as_deref().or(idempotency) {
            Some(k) => digest(&["key", k]),
            None => digest(&[
                "request",
                &self.recipient,
                &self.channels.join(","),
                &self.template,
                &Value::Object(self.data.clone()).to_string(),
                self.locale.as_deref().unwrap_or(""),
                &self.send_at.unwrap_or(0).to_string(),
            ]),
        };
        Ok(Job {
            recipient,
            channels,
            template: self.template.clone(),
            data: self.data.clone(),
            locale: self.locale.clone(),
            key: format!("send:{}", &key[..32]),
            source: "send".into(),
            scope: None,
            ignore_quiet: false,
            shared: None,
        })
    }
}

pub fn send(req: &Request) -> Result {
    let body: SendBody = http::body(req)?;
    let job = body.job(req.header("idempotency-key"))?;
    let template = send::template(&job.template)?;
    let contact = send::contact_of(&job.recipient)?;
    let settings = Settings::load()?;
    let now = now_ms();
    if let Some(at) = body.send_at.filter(|at| *at > now) {
        // Checked now (it renders for this recipient), sent later.
        send::plan(&job, &template, contact.as_ref(), &settings, now)?;
        store::schedule(&job.key, at, "scheduled", &job)?;
        return Ok(Response::json(
            202,
            &json!({"id": job.key, "status": "scheduled", "send_at": at}),
        ));
    }
    let report = send::execute(&job, &template, contact.as_ref(), &settings, now)?;
    Ok(Response::json(200, &report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    template: String,
    #[serde(default)]
    data: Map<String, Value>,
    locale: Option<String>,
    recipient: Option<String>,
    channels: Option<Vec<String>>,
}

/// Renders as `/send` would, writing nothing.
pub fn preview(req: &Request) -> Result {
    let body: PreviewBody = http::body(req)?;
    let send = SendBody {
        recipient: body
            .recipient
            .unwrap_or_else(|| "preview@example.org".into()),
        channels: body
            .channels
            .unwrap_or_else(|| Channel::ALL.iter().map(|c| c.as_str().to_owned()).collect()),
        template: body.template,
        data: body.data,
        locale: body.locale,
        send_at: None,
        key: Some("preview".into()),
    };
    let mut job = send.job(None)?;
    // A preview shows every part, whoever the recipient.
    job.ignore_quiet = true;
    let template = send::template(&job.template)?;
    let contact = send::contact_of(&job.recipient)?;
    let settings = Settings::load()?;
    let plan = send::plan(&job, &template, contact.as_ref(), &settings, now_ms())?;
    let channels: Vec<Value> = plan
        .steps
        .iter()
        .map(|(channel, step)| match step {
            Step::Send(msgs) => json!({"channel": channel, "messages": msgs.iter().map(|(_, m)| preview_of(m)).collect::<Vec<_>>()}),
            Step::Skip(reason) => json!({"channel": channel, "skipped": reason}),
            Step::Defer(at) => json!({"channel": channel, "deferred_until": at}),
        })
        .collect();
    Ok(Response::json(
        200,
        &json!({"locale": plan.locale, "channels": channels}),
    ))
}

fn preview_of(m: &crate::fanout::Outgoing) -> Value {
    use crate::fanout::Outgoing;
    match m {
        Outgoing::Email {
            to,
            subject,
            html,
            text,
            ..
        } => {
            json!({"to": to, "subject": subject, "html": html, "text": text})
        }
        Outgoing::Sms { to, body } => json!({"to": to, "body": body}),
        Outgoing::Push {
            title, body, link, ..
        } => json!({"title": title, "body": body, "link": link}),
        Outgoing::InApp {
            user,
            title,
            body,
            link,
        } => {
            json!({"user": user, "title": title, "body": body, "link": link})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> SendBody {
        serde_json::from_value(v).expect("body")
    }

    #[test]
    fn jobs_are_checked_and_keyed_by_the_request() {
        let b = || {
            body(
                json!({"recipient": "ada@example.org", "channels": ["email"], "template": "t", "data": {"a": 1}}),
            )
        };
        let (j1, j2) = (b().job(None).expect("job"), b().job(None).expect("job"));
        assert_eq!(j1.key, j2.key, "a retry derives the same key");
        let other = body(
            json!({"recipient": "ada@example.org", "channels": ["email"], "template": "t", "data": {"a": 2}}),
        );
        assert_ne!(other.job(None).expect("job").key, j1.key);
        assert_ne!(b().job(Some("client-1")).expect("job").key, j1.key);
        let bad =
            body(json!({"recipient": "not-an-address@", "channels": ["email"], "template": "t"}));
        assert_eq!(bad.job(None).expect_err("bad").status, 422);
        let phone = body(json!({"recipient": "+1555", "channels": ["sms"], "template": "t"}));
        assert_eq!(phone.job(None).expect_err("bad").status, 422);
        let chan =
            body(json!({"recipient": "ada@example.org", "channels": ["fax"], "template": "t"}));
        assert_eq!(chan.job(None).expect_err("bad").status, 422);
    }
}
