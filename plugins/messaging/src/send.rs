//! Carrying out a send: the reads a plan needs (template, contact,
//! suppressions, settings, the token secret), then the writes it calls for
//! — outbox messages, a deferred remainder, the delivery log entry — all in
//! the call's unit of work.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Value, json};
use weft_sdk::outbox::{self, Email};
use weft_sdk::{Response, config, kv};

use crate::channels::{Channel, Contact, Recipient};
use crate::fanout::{self, Env, Job, Outgoing, Plan, Refusal, Step};
use crate::http::Result;
use crate::store;
use crate::templates::Template;

/// The settings and secret every plan needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub secret: Vec<u8>,
    pub public_url: String,
    pub default_locale: String,
}

impl Settings {
    /// Reads the settings; creates the token secret on first use.
    pub fn load() -> Result<Self> {
        let public_url: String = config::get("public_url")?.unwrap_or_default();
        let default_locale: String = config::get("default_locale")?.unwrap_or_else(|| "en".into());
        Ok(Self {
            secret: store::secret()?,
            public_url: public_url.trim_end_matches('/').to_owned(),
            default_locale,
        })
    }

    pub fn env(&self, now_ms: i64) -> Env<'_> {
        Env {
            secret: &self.secret,
            public_url: &self.public_url,
            default_locale: &self.default_locale,
            now_ms,
        }
    }
}

/// What happened to one channel of a send.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Outcome {
    pub channel: Channel,
    /// `queued`, `skipped`, `deferred` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<i64>,
}

/// The answer to a send, and its delivery log entry.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub id: String,
    pub at: i64,
    pub source: String,
    pub template: String,
    /// The request's recipient (user id, address or number).
    pub recipient: String,
    /// The address an email went (or would go) to, for searches.
    pub email: Option<String>,
    pub locale: String,
    pub channels: Vec<Outcome>,
}

impl Report {
    /// Whether the outbox refused for a reason that passes (a rate limit,
    /// the day's quota): a batch retries its chunk.
    pub fn throttled(&self) -> bool {
        self.channels.iter().any(|o| {
            o.status == "failed"
                && matches!(o.reason.as_deref(), Some("rate_limited" | "quota_exceeded"))
        })
    }

    /// Whether anything was queued.
    pub fn queued(&self) -> bool {
        self.channels.iter().any(|o| o.status == "queued")
    }
}

/// `422 unknown_template`, or the template.
pub fn template(name: &str) -> Result<Template> {
    store::template(name)?.ok_or_else(|| {
        Response::error(
            422,
            "unknown_template",
            &format!("there is no template {name:?}"),
        )
    })
}

/// The contact of a user recipient.
pub fn contact_of(recipient: &Recipient) -> Result<Option<Contact>> {
    match recipient {
        Recipient::User(id) => store::contact(id),
        _ => Ok(None),
    }
}

/// The suppressions among the keys this job could be stopped by.
/// Suppressions read ahead for a run of sends (a batch chunk): every
/// key under `prefixes` is in `found` or absent, so those keys need no
/// lookup of their own.
#[derive(Debug, Default)]
struct Prefetched {
    prefixes: Vec<String>,
    found: HashSet<String>,
}

thread_local! {
    // A call runs in an instance of its own, one thread; a chunk sets this
    // before its sends and clears it after.
    static PREFETCHED: std::cell::RefCell<Option<Prefetched>> = const { std::cell::RefCell::new(None) };
}

/// Keys read per prefix at most; a prefix with more (a tenant with many
/// unsubscribes) keeps one lookup per key.
const PREFETCH_MAX: usize = 2_000;

/// Reads every suppression under each of `prefixes` that has at most
/// [`PREFETCH_MAX`], so the sends that follow (until [`forget_prefetched`])
/// look those keys up in memory.
pub fn prefetch_suppressions(prefixes: &[String]) -> Result<()> {
    let mut pre = Prefetched::default();
    'prefixes: for prefix in prefixes {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = kv::list_prefix(prefix, cursor.as_deref(), 1_000)?;
            keys.extend(page.entries.into_iter().map(|e| e.key));
            if keys.len() > PREFETCH_MAX {
                continue 'prefixes;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        pre.prefixes.push(prefix.clone());
        pre.found.extend(keys);
    }
    PREFETCHED.with(|p| *p.borrow_mut() = Some(pre));
    Ok(())
}

/// Ends what [`prefetch_suppressions`] read.
pub fn forget_prefetched() {
    PREFETCHED.with(|p| *p.borrow_mut() = None);
}

/// Whether `key` is suppressed: from the prefetched keys when its prefix
/// was read ahead, else looked up.
fn is_suppressed(key: &str) -> Result<bool> {
    let known = PREFETCHED.with(|p| {
        p.borrow().as_ref().and_then(|pre| {
            pre.prefixes
                .iter()
                .any(|prefix| key.starts_with(prefix.as_str()))
                .then(|| pre.found.contains(key))
        })
    });
    match known {
        Some(found) => Ok(found),
        None => Ok(kv::get(key)?.is_some()),
    }
}

fn suppressions(job: &Job, contact: Option<&Contact>) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    let scopes: Vec<&str> = std::iter::once("all").chain(job.scope.as_deref()).collect();
    let mut asked = HashSet::new();
    for channel in &job.channels {
        for subject in fanout::subjects(&job.recipient, contact, *channel) {
            for scope in &scopes {
                let key = fanout::suppression_key(scope, &subject);
                if asked.insert(key.clone()) && is_suppressed(&key)? {
                    found.insert(key);
                }
            }
        }
    }
    Ok(found)
}

/// `422` for a job that cannot render.
pub fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::Render(e) => Response::error(422, e.code(), &e.message()),
    }
}

/// Plans `job` without writing anything.
pub fn plan(
    job: &Job,
    template: &Template,
    contact: Option<&Contact>,
    settings: &Settings,
    now: i64,
) -> Result<Plan> {
    let found = suppressions(job, contact)?;
    fanout::plan(job, template, contact, &settings.env(now), &|k| {
        found.contains(k)
    })
    .map_err(refusal)
}

/// Plans and carries out `job`; the outbox's refusals are reported per
/// channel (the other channels are queued all the same, and a retry with
/// the same key queues only what is missing).
pub fn execute(
    job: &Job,
    template: &Template,
    contact: Option<&Contact>,
    settings: &Settings,
    now: i64,
) -> Result<Report> {
    let plan = plan(job, template, contact, settings, now)?;
    carry_out(job, plan, contact, now)
}

/// Carries out a plan made by [`plan`]: the writes it calls for.
pub fn carry_out(job: &Job, plan: Plan, contact: Option<&Contact>, now: i64) -> Result<Report> {
    let mut outcomes = Vec::new();
    let mut deferred: Vec<Channel> = Vec::new();
    let mut release_at = 0;
    for (channel, step) in plan.steps {
        let outcome = match step {
            Step::Skip(reason) => Outcome {
                channel,
                status: "skipped".into(),
                reason: Some(reason.into()),
                outbox_ids: Vec::new(),
                send_at: None,
            },
            Step::Defer(at) => {
                deferred.push(channel);
                release_at = release_at.max(at);
                Outcome {
                    channel,
                    status: "deferred".into(),
                    reason: Some("quiet_hours".into()),
                    outbox_ids: Vec::new(),
                    send_at: Some(at),
                }
            }
            Step::Send(messages) => queue(channel, messages),
        };
        outcomes.push(outcome);
    }
    if !deferred.is_empty() {
        let later = Job {
            channels: deferred,
            ignore_quiet: true,
            ..job.clone()
        };
        store::schedule(
            &format!("{}.later", job.key),
            release_at,
            "quiet_hours",
            &later,
        )?;
    }
    let email = match (&job.recipient, contact) {
        (Recipient::Email(a), _) => Some(a.clone()),
        (_, Some(c)) => c.email.clone(),
        _ => None,
    };
    let report = Report {
        id: log_id(job),
        at: now,
        source: job.source.clone(),
        template: job.template.clone(),
        recipient: job.recipient.raw().to_owned(),
        email,
        locale: plan.locale,
        channels: outcomes,
    };
    store::log(&report)?;
    Ok(report)
}

/// The delivery log id of a job: its key, and another for the part
/// released after quiet hours.
fn log_id(job: &Job) -> String {
    if job.ignore_quiet {
        format!("{}.later", job.key)
    } else {
        job.key.clone()
    }
}

fn queue(channel: Channel, messages: Vec<(String, Outgoing)>) -> Outcome {
    let mut ids = Vec::new();
    for (key, msg) in messages {
        match outbox::send(message(msg), &key) {
            Ok(id) => ids.push(id),
            Err(e) => {
                let (_, code) = e.status_and_code();
                weft_sdk::log::warn(&format!("outbox refused {key}: {}", e.message()));
                return Outcome {
                    channel,
                    status: "failed".into(),
                    reason: Some(code.into()),
                    outbox_ids: ids,
                    send_at: None,
                };
            }
        }
    }
    Outcome {
        channel,
        status: "queued".into(),
        reason: None,
        outbox_ids: ids,
        send_at: None,
    }
}

fn message(msg: Outgoing) -> outbox::Message {
    match msg {
        Outgoing::Email {
            to,
            subject,
            html,
            text,
            headers,
        } => {
            let mut email = Email::to(&to, &subject).text(&text);
            if let Some(html) = html {
                email = email.html(&html);
            }
            for (name, value) in headers {
                email = email.header(&name, &value);
            }
            email.into()
        }
        Outgoing::Sms { to, body } => outbox::sms(&to, &body),
        Outgoing::Push {
            token,
            title,
            body,
            link,
        } => {
            let data: Vec<(&str, &str)> =
                link.as_deref().map(|l| ("link", l)).into_iter().collect();
            outbox::push(&token, &title, &body, &data)
        }
        Outgoing::InApp {
            user,
            title,
            body,
            link,
        } => outbox::in_app(&user, &title, &body, link.as_deref(), &json!({})),
    }
}

/// Carries out a stored job (a scheduled send, a deferred remainder):
/// the template or contact may have changed since; a job that no longer
/// renders is logged and dropped rather than retried for ever.
pub fn run_stored(job: &Job, settings: &Settings, now: i64) -> Result<Option<Report>> {
    let Some(template) = store::template(&job.template)? else {
        weft_sdk::log::warn(&format!(
            "{}: template {} is gone; dropped",
            job.key, job.template
        ));
        return Ok(None);
    };
    let contact = contact_of(&job.recipient)?;
    match execute(job, &template, contact.as_ref(), settings, now) {
        Ok(report) => Ok(Some(report)),
        Err(r) if r.status == 422 => {
            weft_sdk::log::warn(&format!(
                "{}: no longer renders ({}); dropped",
                job.key,
                String::from_utf8_lossy(&r.body)
            ));
            Ok(None)
        }
        Err(r) => Err(r),
    }
}

/// The status of each outbox message of a report, as the host sees it now.
pub fn with_live_status(report: &Report) -> Value {
    let mut v = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Some(channels) = v.get_mut("channels").and_then(Value::as_array_mut) {
        for (c, o) in channels.iter_mut().zip(&report.channels) {
            let statuses: Vec<&str> = o
                .outbox_ids
                .iter()
                .map(|id| outbox::status(id).map_or("unknown", |s| s.as_str()))
                .collect();
            if !statuses.is_empty() {
                c["delivery"] = json!(statuses);
            }
        }
    }
    v
}
