//! Batch sends to a list, in chunks of bounded size.
//!
//! `POST /lists/{id}/sends` records the batch and publishes
//! `messaging.batch` to this plugin; each delivery of it renders and
//! queues the next `batch_chunk` confirmed subscribers (fewer if they
//! take longer than [`CHUNK_BUDGET`]), moves the batch's cursor and counts, and publishes the next chunk — all in the event
//! handler's unit of work, committed with the delivery's done mark. A
//! crash, a retry or a duplicate delivery therefore re-runs a chunk from
//! the same cursor, and the outbox keys (`batch:{id}:{subscriber}`) make a
//! message queued by a run that did commit answer its first id.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::docs::{Op, Query};
use weft_sdk::{HandlerError, Request, Response, config, events, kv};

use crate::channels::{Channel, Recipient};
use crate::fanout::Job;
use crate::http::{self, Result, invalid, not_found, now_ms};
use crate::lists::{self, Subscriber};
use crate::send::{self, Settings};
use crate::store::{BATCHES, SUBSCRIBERS};

/// The topic chunks travel on.
pub const TOPIC: &str = "messaging.batch";

/// A batch as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub list: String,
    pub template: String,
    #[serde(default)]
    pub data: Map<String, Value>,
    pub locale: Option<String>,
    /// `running` or `done`.
    pub state: String,
    /// Confirmed subscribers when the batch began.
    pub total: i64,
    pub queued: i64,
    pub skipped: i64,
    pub failed: i64,
    /// Chunks done; a chunk event for another number is stale.
    pub chunk: u64,
    /// The last subscriber id done: the next chunk starts after it.
    pub after: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChunkEvent {
    batch: String,
    chunk: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBatch {
    template: String,
    #[serde(default)]
    data: Map<String, Value>,
    locale: Option<String>,
}

/// The job of one subscriber; `shared` is the batch's data converted for
/// the templates ([`shared_data`]).
fn job_for(batch: &Batch, shared: &minijinja::Value, sub_id: &str, sub: &Subscriber) -> Job {
    let mut data = Map::new();
    data.insert(
        "subscriber".into(),
        json!({"email": sub.email, "name": sub.name, "data": sub.data}),
    );
    data.insert("list".into(), json!({"id": batch.list}));
    Job {
        recipient: Recipient::Email(sub.email.clone()),
        channels: vec![Channel::Email],
        template: batch.template.clone(),
        data,
        locale: batch.locale.clone(),
        key: format!("batch:{}:{sub_id}", batch.id),
        source: format!("batch:{}", batch.id),
        scope: Some(format!("list:{}", batch.list)),
        // Newsletters wait for nobody's quiet hours: email is not in them
        // by default, and a user's are about their own channels.
        ignore_quiet: false,
        shared: Some(shared.clone()),
    }
}

/// A batch's own data, converted once for all its subscribers' messages.
fn shared_data(batch: &Batch) -> minijinja::Value {
    minijinja::Value::from_serialize(&batch.data)
}

/// The confirmed subscribers after id `after`, in id order (a keyset of
/// our own rather than the store's cursor, so a chunk may stop after any
/// subscriber).
fn subscribers_query(list: &str, limit: u32, after: Option<&str>) -> Query {
    let q = Query::new()
        .filter("list", Op::Eq, list)
        .filter("status", Op::Eq, "confirmed")
        .order_by("id", false)
        .limit(limit);
    match after {
        Some(id) => q.filter("id", Op::Gt, id),
        None => q,
    }
}

/// Wall time a chunk may take. On SQLite a handler holds the database's
/// write lock from its start (deliveries share one transaction) and the
/// host stops it past `max_write_hold_ms` (250 ms by default): a chunk
/// that is slower than planned stops early and the next one goes on.
const CHUNK_BUDGET: std::time::Duration = std::time::Duration::from_millis(120);

pub fn create(req: &Request) -> Result {
    let list = lists::load(req.param("id").unwrap_or_default())?;
    let b: NewBatch = http::body(req)?;
    if let Some(l) = &b.locale
        && !crate::templates::check_locale(l)
    {
        return Err(invalid(&format!("{l:?} is not a locale tag")));
    }
    let template = send::template(&b.template)?;
    let now = now_ms();
    let id = format!("b{:06}", kv::increment("seq:batch", 1)?);
    let mut batch = Batch {
        id: id.clone(),
        list: list.id.clone(),
        template: b.template,
        data: b.data,
        locale: b.locale,
        state: "running".into(),
        total: lists::confirmed_count(&list.id)?,
        queued: 0,
        skipped: 0,
        failed: 0,
        chunk: 0,
        after: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    // Bad input is refused now, not 10,000 times later: the first
    // subscriber's message must render.
    let (first, _) = http::query::<Subscriber>(SUBSCRIBERS, &subscribers_query(&list.id, 1, None))?;
    if let Some((sub_id, sub)) = first.first() {
        let settings = Settings::load()?;
        send::plan(
            &job_for(&batch, &shared_data(&batch), sub_id, sub),
            &template,
            None,
            &settings,
            now,
        )?;
    } else {
        batch.state = "done".into();
        batch.finished_at = Some(now);
    }
    http::put(BATCHES, &id, &batch, Some(0))?;
    if batch.state == "running" {
        events::publish_json(
            TOPIC,
            &ChunkEvent {
                batch: id,
                chunk: 0,
            },
        )?;
    }
    Ok(Response::json(202, &batch))
}

pub fn get(req: &Request) -> Result {
    let id = req.param("id").unwrap_or_default();
    let (b, _) = http::get::<Batch>(BATCHES, id)?.ok_or_else(|| not_found("batch"))?;
    Ok(Response::json(200, &b))
}

pub fn list(req: &Request) -> Result {
    let q = Query::new()
        .order_by("id", true)
        .limit(http::limit(req)?)
        .cursor(http::cursor(req).as_deref());
    let (items, next) = http::query::<Batch>(BATCHES, &q)?;
    let batches: Vec<&Batch> = items.iter().map(|(_, b)| b).collect();
    Ok(Response::json(
        200,
        &json!({"batches": batches, "next_cursor": next}),
    ))
}

fn retry(r: Response) -> HandlerError {
    HandlerError::Retry(format!(
        "{}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    ))
}

/// One chunk of a batch (a delivery of [`TOPIC`]).
pub fn on_chunk(payload: &str) -> std::result::Result<(), HandlerError> {
    let started = std::time::Instant::now();
    let event: ChunkEvent = serde_json::from_str(payload)
        .map_err(|e| HandlerError::Reject(format!("bad chunk payload: {e}")))?;
    let Some((mut batch, version)) = http::get::<Batch>(BATCHES, &event.batch).map_err(retry)?
    else {
        return Err(HandlerError::Reject(format!("no batch {}", event.batch)));
    };
    if batch.state != "running" || batch.chunk != event.chunk {
        // Done already, or a stale duplicate of a chunk that committed.
        return Ok(());
    }
    let size: i64 = config::get("batch_chunk")
        .map_err(|e| HandlerError::Retry(e.to_string()))?
        .unwrap_or(100);
    let size = size.clamp(1, 2_000) as u32;
    let template = match crate::store::template(&batch.template).map_err(retry)? {
        Some(t) => t,
        None => {
            batch.state = "done".into();
            batch.finished_at = Some(now_ms());
            http::put(BATCHES, &batch.id, &batch, Some(version)).map_err(retry)?;
            return Err(HandlerError::Reject(format!(
                "template {} was deleted",
                batch.template
            )));
        }
    };
    let settings = Settings::load().map_err(retry)?;
    let (subs, next) = http::query::<Subscriber>(
        SUBSCRIBERS,
        &subscribers_query(&batch.list, size, batch.after.as_deref()),
    )
    .map_err(retry)?;
    let now = now_ms();
    let mut more = next.is_some();
    // A chunk's recipients are list addresses: their suppressions, for
    // everything and for this list, read in a scan or two instead of two
    // lookups per subscriber.
    send::prefetch_suppressions(&[
        crate::fanout::suppression_key("all", "e:"),
        crate::fanout::suppression_key(&format!("list:{}", batch.list), "e:"),
    ])
    .map_err(retry)?;
    let sent = send_chunk(
        &mut batch, &subs, &template, &settings, now, started, &mut more,
    );
    send::forget_prefetched();
    sent?;
    batch.chunk += 1;
    batch.updated_at = now;
    if more {
        events::publish_json(
            TOPIC,
            &ChunkEvent {
                batch: batch.id.clone(),
                chunk: batch.chunk,
            },
        )
        .map_err(|e| HandlerError::Retry(format!("{e:?}")))?;
    } else {
        batch.state = "done".into();
        batch.finished_at = Some(now);
    }
    // Conditional: a concurrent run of the same chunk commits once.
    http::put(BATCHES, &batch.id, &batch, Some(version)).map_err(retry)?;
    Ok(())
}

/// Renders and queues `subs` in order for `batch`, until the chunk's time
/// budget is spent (`more` is set when it stops early); a throttled
/// outbox or a storage fault ends the chunk with an error (rolled back).
fn send_chunk(
    batch: &mut Batch,
    subs: &[(String, Subscriber)],
    template: &crate::templates::Template,
    settings: &Settings,
    now: i64,
    started: std::time::Instant,
    more: &mut bool,
) -> std::result::Result<(), HandlerError> {
    let shared = shared_data(batch);
    for (i, (sub_id, sub)) in subs.iter().enumerate() {
        if i > 0 && started.elapsed() > CHUNK_BUDGET {
            *more = true;
            break;
        }
        let job = job_for(batch, &shared, sub_id, sub);
        match send::execute(&job, template, None, settings, now) {
            Ok(report) if report.throttled() => {
                // The outbox's rate or quota: roll the whole chunk back
                // and let the event's backoff wait it out.
                return Err(HandlerError::Retry(
                    "the outbox is rate limiting this tenant".into(),
                ));
            }
            Ok(report) if report.queued() => batch.queued += 1,
            Ok(report) if report.channels.iter().any(|o| o.status == "failed") => batch.failed += 1,
            Ok(_) => batch.skipped += 1,
            // This subscriber's data does not render (a missing variable):
            // counted, the rest go on.
            Err(r) if r.status == 422 => batch.failed += 1,
            Err(r) => return Err(retry(r)),
        }
        batch.after = Some(sub_id.clone());
    }
    Ok(())
}

/// Batches with no progress for this long are nudged by the schedule (a
/// chunk dead-lettered after its retries, say).
const STALL_MS: i64 = 10 * 60_000;

/// Republishes the current chunk of running batches that stalled.
pub fn resume_stalled(now: i64) -> Result<usize> {
    let q = Query::new()
        .filter("state", Op::Eq, "running")
        .filter("updated_at", Op::Lt, now - STALL_MS)
        .limit(20);
    let (items, _) = http::query::<Batch>(BATCHES, &q)?;
    for (id, b) in &items {
        // Nudged once per stall period, not every minute.
        let mut nudged = b.clone();
        nudged.updated_at = now;
        http::put(BATCHES, id, &nudged, None)?;
        events::publish_json(
            TOPIC,
            &ChunkEvent {
                batch: b.id.clone(),
                chunk: b.chunk,
            },
        )?;
    }
    Ok(items.len())
}
