//! Batch sends to a list, in chunks of bounded size, in lanes side by side.
//!
//! `POST /lists/{id}/sends` records the batch and publishes
//! `messaging.batch` to this plugin once per lane: a list of more than one
//! chunk is cut in two lanes by subscriber id (ids end in a hex digest, so
//! the halves are even). Each delivery of a lane's event renders the next
//! `batch_chunk` confirmed subscribers of its lane (fewer if rendering takes
//! longer than [`RENDER_BUDGET`]) before it writes anything, then queues
//! them, moves the lane's cursor and counts, and publishes the lane's next
//! chunk — all in the event handler's unit of work, committed with the
//! delivery's done mark. The subscription runs `apart` (plugin.toml): the
//! unit begins at the first write, so one lane renders while the other
//! holds the write lock. A crash, a retry or a duplicate delivery
//! therefore re-runs a chunk from the same cursor, and the outbox keys
//! (`batch:{id}:{subscriber}`) make a message queued by a run that did
//! commit answer its first id.
//!
//! The first lane's cursor and counts are the batch's own fields; the
//! others' are documents of [`BATCH_LANES`], `{batch}.{lane}`. The batch
//! answers its counts summed over the lanes, and is done when every lane is.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::docs::{Op, Query};
use weft_sdk::{HandlerError, Request, Response, config, events, kv};

use crate::channels::{Channel, Recipient};
use crate::fanout::{Job, Plan};
use crate::http::{self, Result, invalid, not_found, now_ms};
use crate::lists::{self, Subscriber};
use crate::send::{self, Settings};
use crate::store::{BATCH_LANES, BATCHES, SUBSCRIBERS};

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
    /// Counts: stored, the first lane's; answered, every lane's.
    pub queued: i64,
    pub skipped: i64,
    pub failed: i64,
    /// The first lane's chunks done; a chunk event for another number is stale.
    pub chunk: u64,
    /// The last subscriber id the first lane did: its next chunk starts after it.
    pub after: Option<String>,
    /// Lanes (a batch from before lanes has none: it is one lane).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lanes: u32,
    /// The first lane is done (the batch is once every lane is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lane_done: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Batch {
    /// The first lane's progress: the batch's own fields.
    fn progress(&self) -> Progress {
        Progress {
            after: self.after.clone(),
            chunk: self.chunk,
            queued: self.queued,
            skipped: self.skipped,
            failed: self.failed,
        }
    }

    fn set_progress(&mut self, at: Progress) {
        self.after = at.after;
        self.chunk = at.chunk;
        self.queued = at.queued;
        self.skipped = at.skipped;
        self.failed = at.failed;
    }
}

/// A lane after the first: its progress, stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lane {
    batch: String,
    lane: u32,
    #[serde(flatten)]
    at: Progress,
    done: bool,
    updated_at: i64,
}

/// Where one lane is: the batch's own fields for the first, a [`Lane`]
/// for the others.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// The last subscriber id done.
    after: Option<String>,
    chunk: u64,
    queued: i64,
    skipped: i64,
    failed: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChunkEvent {
    batch: String,
    chunk: u64,
    /// `None` (or 0): the first lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lane: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBatch {
    template: String,
    #[serde(default)]
    data: Map<String, Value>,
    locale: Option<String>,
}

fn lane_id(batch: &str, lane: u32) -> String {
    format!("{batch}.{lane}")
}

/// The ids of lane `lane` of `lanes` over `list`: from (inclusive) and
/// until (exclusive), `None` for the list's start or end. Subscriber ids
/// are `{list}.{hex digest}` ([`lists::subscriber_id`]), so about half sort
/// before `{list}.8`; any id falls in exactly one lane all the same.
fn bounds(list: &str, lanes: u32, lane: u32) -> (Option<String>, Option<String>) {
    let boundary = || Some(format!("{list}.8"));
    match (lanes, lane) {
        (0 | 1, _) => (None, None),
        (_, 0) => (None, boundary()),
        _ => (boundary(), None),
    }
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

/// The confirmed subscribers of a lane ([`bounds`]) after its cursor, in
/// id order (a keyset of our own rather than the store's cursor, so a
/// chunk may stop after any subscriber).
fn subscribers_query(
    list: &str,
    limit: u32,
    after: Option<&str>,
    (from, until): (Option<String>, Option<String>),
) -> Query {
    let mut q = Query::new()
        .filter("list", Op::Eq, list)
        .filter("status", Op::Eq, "confirmed")
        .order_by("id", false)
        .limit(limit);
    match (after, from) {
        (Some(id), _) => q = q.filter("id", Op::Gt, id),
        (None, Some(from)) => q = q.filter("id", Op::Gte, from.as_str()),
        (None, None) => {}
    }
    if let Some(until) = until {
        q = q.filter("id", Op::Lt, until.as_str());
    }
    q
}

/// Wall time a chunk may spend rendering before it writes. A chunk holds
/// the write lock from its first write to its commit, and on SQLite the
/// host stops a call that holds it past `max_write_hold_ms` (250 ms by
/// default); writing what was rendered takes about as long again.
const RENDER_BUDGET: std::time::Duration = std::time::Duration::from_millis(60);
/// Wall time a chunk may spend writing: past it, the rest of what was
/// rendered is left to the next chunk.
const WRITE_BUDGET: std::time::Duration = std::time::Duration::from_millis(120);

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
    let total = lists::confirmed_count(&list.id)?;
    // Two lanes once the list is more than a chunk.
    let lanes: u32 = if total > chunk_size()? as i64 { 2 } else { 1 };
    let mut batch = Batch {
        id: id.clone(),
        list: list.id.clone(),
        template: b.template,
        data: b.data,
        locale: b.locale,
        state: "running".into(),
        total,
        queued: 0,
        skipped: 0,
        failed: 0,
        chunk: 0,
        after: None,
        lanes,
        lane_done: false,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    // Bad input is refused now, not 10,000 times later: the first
    // subscriber's message must render.
    let everyone = bounds(&list.id, 1, 0);
    let (first, _) =
        http::query::<Subscriber>(SUBSCRIBERS, &subscribers_query(&list.id, 1, None, everyone))?;
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
        for lane in 1..lanes {
            let second = Lane {
                batch: id.clone(),
                lane,
                at: Progress::default(),
                done: false,
                updated_at: now,
            };
            http::put(BATCH_LANES, &lane_id(&id, lane), &second, Some(0))?;
        }
        for lane in 0..lanes {
            events::publish_json(
                TOPIC,
                &ChunkEvent {
                    batch: id.clone(),
                    chunk: 0,
                    lane: (lane > 0).then_some(lane),
                },
            )?;
        }
    }
    Ok(Response::json(202, &batch))
}

/// Messages per chunk at most (the `batch_chunk` setting).
fn chunk_size() -> Result<u32> {
    let size: i64 = config::get("batch_chunk")?.unwrap_or(100);
    Ok(size.clamp(1, 2_000) as u32)
}

/// The lanes after the first, as stored.
fn other_lanes(batch: &Batch) -> Result<Vec<(Lane, u64)>> {
    let mut out = Vec::new();
    for lane in 1..batch.lanes {
        if let Some(found) = http::get::<Lane>(BATCH_LANES, &lane_id(&batch.id, lane))? {
            out.push(found);
        }
    }
    Ok(out)
}

/// The batch as answered: its counts summed over its lanes.
fn answer(mut batch: Batch) -> Result<Batch> {
    for (lane, _) in other_lanes(&batch)? {
        batch.queued += lane.at.queued;
        batch.skipped += lane.at.skipped;
        batch.failed += lane.at.failed;
    }
    Ok(batch)
}

pub fn get(req: &Request) -> Result {
    let id = req.param("id").unwrap_or_default();
    let (b, _) = http::get::<Batch>(BATCHES, id)?.ok_or_else(|| not_found("batch"))?;
    Ok(Response::json(200, &answer(b)?))
}

pub fn list(req: &Request) -> Result {
    let q = Query::new()
        .order_by("id", true)
        .limit(http::limit(req)?)
        .cursor(http::cursor(req).as_deref());
    let (items, next) = http::query::<Batch>(BATCHES, &q)?;
    let batches = (items.into_iter())
        .map(|(_, b)| answer(b))
        .collect::<Result<Vec<_>>>()?;
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

/// One chunk of a lane of a batch (a delivery of [`TOPIC`]).
pub fn on_chunk(payload: &str) -> std::result::Result<(), HandlerError> {
    let started = std::time::Instant::now();
    let event: ChunkEvent = serde_json::from_str(payload)
        .map_err(|e| HandlerError::Reject(format!("bad chunk payload: {e}")))?;
    let Some((mut batch, version)) = http::get::<Batch>(BATCHES, &event.batch).map_err(retry)?
    else {
        return Err(HandlerError::Reject(format!("no batch {}", event.batch)));
    };
    if batch.state != "running" {
        return Ok(());
    }
    let lane_no = event.lane.unwrap_or(0);
    // The lane's progress, and its document for a lane after the first.
    let mut lane = None;
    let mut at = if lane_no == 0 {
        if batch.lane_done {
            return Ok(());
        }
        batch.progress()
    } else {
        let Some((l, v)) =
            http::get::<Lane>(BATCH_LANES, &lane_id(&batch.id, lane_no)).map_err(retry)?
        else {
            return Err(HandlerError::Reject(format!(
                "batch {} has no lane {lane_no}",
                batch.id
            )));
        };
        if l.done {
            return Ok(());
        }
        let at = l.at.clone();
        lane = Some((l, v));
        at
    };
    if at.chunk != event.chunk {
        // A stale duplicate of a chunk that committed.
        return Ok(());
    }
    let size = chunk_size().map_err(retry)?;
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
    let range = bounds(&batch.list, batch.lanes, lane_no);
    let query = subscribers_query(&batch.list, size, at.after.as_deref(), range);
    let (subs, next) = http::query::<Subscriber>(SUBSCRIBERS, &query).map_err(retry)?;
    let now = now_ms();
    // A chunk's recipients are list addresses: their suppressions, for
    // everything and for this list, read in a scan or two instead of two
    // lookups per subscriber.
    send::prefetch_suppressions(&[
        crate::fanout::suppression_key("all", "e:"),
        crate::fanout::suppression_key(&format!("list:{}", batch.list), "e:"),
    ])
    .map_err(retry)?;
    let rendered = render(&batch, &subs, &template, &settings, now, started);
    send::forget_prefetched();
    let rendered = rendered?;
    let all_rendered = rendered.len() == subs.len();
    let all_written = write(&mut at, rendered, now)?;
    let more = !(all_rendered && all_written) || next.is_some();
    at.chunk += 1;
    if more {
        events::publish_json(
            TOPIC,
            &ChunkEvent {
                batch: batch.id.clone(),
                chunk: at.chunk,
                lane: event.lane,
            },
        )
        .map_err(|e| HandlerError::Retry(format!("{e:?}")))?;
    }
    // Each write is conditional: a concurrent run of the same chunk
    // commits once.
    match lane {
        None => {
            batch.set_progress(at);
            batch.updated_at = now;
            batch.lane_done = !more && batch.lanes > 1;
            if !more && batch.lanes <= 1 {
                batch.state = "done".into();
                batch.finished_at = Some(now);
            }
            let version = http::put(BATCHES, &batch.id, &batch, Some(version)).map_err(retry)?;
            if batch.lane_done {
                // After a write: under the write lock, so the other lanes
                // are as they committed (two lanes finishing at once
                // cannot both miss it).
                let id = batch.id.clone();
                finish_if_last(&id, now, Some((batch, version)))?;
            }
        }
        Some((mut l, v)) => {
            l.at = at;
            l.updated_at = now;
            l.done = !more;
            http::put(BATCH_LANES, &lane_id(&batch.id, l.lane), &l, Some(v)).map_err(retry)?;
            if !more {
                finish_if_last(&batch.id, now, None)?;
            }
        }
    }
    Ok(())
}

/// After a lane finished (and wrote its mark, so this runs under the
/// write lock): marks the batch done if every lane is. `known`: the batch
/// as the first lane just wrote it.
fn finish_if_last(
    id: &str,
    now: i64,
    known: Option<(Batch, u64)>,
) -> std::result::Result<(), HandlerError> {
    let found = match known {
        Some(known) => Some(known),
        None => http::get::<Batch>(BATCHES, id).map_err(retry)?,
    };
    let Some((mut batch, version)) = found else {
        return Ok(());
    };
    let others = other_lanes(&batch).map_err(retry)?;
    if batch.state == "running" && batch.lane_done && others.iter().all(|(l, _)| l.done) {
        batch.state = "done".into();
        batch.finished_at = Some(now);
        batch.updated_at = now;
        http::put(BATCHES, id, &batch, Some(version)).map_err(retry)?;
    }
    Ok(())
}

/// A subscriber's message, rendered before anything is written.
enum Rendered {
    Plan(Box<(String, Job, Plan)>),
    /// Their data does not render (a missing variable).
    Failed(String),
}

/// Renders `subs` in order, until the render budget is spent (at least
/// one, so a batch always moves). Nothing is written.
fn render(
    batch: &Batch,
    subs: &[(String, Subscriber)],
    template: &crate::templates::Template,
    settings: &Settings,
    now: i64,
    started: std::time::Instant,
) -> std::result::Result<Vec<Rendered>, HandlerError> {
    let shared = shared_data(batch);
    let mut out = Vec::with_capacity(subs.len());
    for (sub_id, sub) in subs {
        if !out.is_empty() && started.elapsed() > RENDER_BUDGET {
            break;
        }
        let job = job_for(batch, &shared, sub_id, sub);
        out.push(match send::plan(&job, template, None, settings, now) {
            Ok(plan) => Rendered::Plan(Box::new((sub_id.clone(), job, plan))),
            // Counted, the rest go on.
            Err(r) if r.status == 422 => Rendered::Failed(sub_id.clone()),
            Err(r) => return Err(retry(r)),
        });
    }
    Ok(out)
}

/// Queues what [`render`] made, in order, moving the lane's cursor and
/// counts, until the write budget is spent; true if all was written. A
/// throttled outbox or a storage fault ends the chunk with an error
/// (rolled back).
fn write(
    at: &mut Progress,
    rendered: Vec<Rendered>,
    now: i64,
) -> std::result::Result<bool, HandlerError> {
    let began = std::time::Instant::now();
    for (i, r) in rendered.into_iter().enumerate() {
        if i > 0 && began.elapsed() > WRITE_BUDGET {
            return Ok(false);
        }
        let sub_id = match r {
            Rendered::Failed(sub_id) => {
                at.failed += 1;
                sub_id
            }
            Rendered::Plan(planned) => {
                let (sub_id, job, plan) = *planned;
                match send::carry_out(&job, plan, None, now) {
                    Ok(report) if report.throttled() => {
                        // The outbox's rate or quota: roll the whole chunk
                        // back and let the event's backoff wait it out.
                        return Err(HandlerError::Retry(
                            "the outbox is rate limiting this tenant".into(),
                        ));
                    }
                    Ok(report) if report.queued() => at.queued += 1,
                    Ok(report) if report.channels.iter().any(|o| o.status == "failed") => {
                        at.failed += 1
                    }
                    Ok(_) => at.skipped += 1,
                    Err(r) => return Err(retry(r)),
                }
                sub_id
            }
        };
        at.after = Some(sub_id);
    }
    Ok(true)
}

/// Batches with no progress for this long are nudged by the schedule (a
/// chunk dead-lettered after its retries, say).
const STALL_MS: i64 = 10 * 60_000;

/// Republishes the current chunk of each lane of running batches that
/// stalled.
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
        if !b.lane_done {
            events::publish_json(
                TOPIC,
                &ChunkEvent {
                    batch: b.id.clone(),
                    chunk: b.chunk,
                    lane: None,
                },
            )?;
        }
        for (mut lane, _) in other_lanes(b)? {
            if lane.done || lane.updated_at >= now - STALL_MS {
                continue;
            }
            lane.updated_at = now;
            http::put(BATCH_LANES, &lane_id(&b.id, lane.lane), &lane, None)?;
            events::publish_json(
                TOPIC,
                &ChunkEvent {
                    batch: b.id.clone(),
                    chunk: lane.at.chunk,
                    lane: Some(lane.lane),
                },
            )?;
        }
    }
    Ok(items.len())
}
