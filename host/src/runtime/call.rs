//! One plugin call: a fresh Store bound to one (tenant, plugin), run under
//! fuel, a wall-clock deadline and a memory cap, its outcome classified so a
//! misbehaving plugin fails only its own call with an error naming the limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::limits::MemoryLimiter;
use super::{LoadedPlugin, Runtime};
use crate::capabilities::bindings::{v0_1, v0_2, v0_3, v0_4, v0_5};
use crate::capabilities::{Binding, Capabilities, LogBuffer, types};
use crate::ids::now_ms;
use crate::metering::{Meter, UsageEvent};
use crate::search::Journaled;
use crate::storage::UnitOfWork;

/// Everything a Store holds during one call.
pub struct StoreData {
    pub(super) caps: Capabilities,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    timed_out: bool,
    write_hold_exceeded: bool,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What a call used.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CallStats {
    pub fuel: u64,
    pub wall_us: u64,
    pub peak_memory: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Why a call produced no response. Each names the limit or fault; none
/// carries guest or host internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No instance slot freed up within the queue timeout.
    Overloaded,
    /// The wall-clock limit passed.
    Timeout { limit_ms: u64 },
    /// The fuel limit ran out.
    FuelExhausted { limit: u64 },
    /// Linear memory would have grown past the limit.
    MemoryLimitExceeded { limit_bytes: u64 },
    /// The guest's stack overflowed.
    StackOverflow,
    /// The guest trapped (a panic, `unreachable`, a bad memory access...).
    Trapped,
    /// The response body is larger than allowed.
    ResponseTooLarge { limit_bytes: u64 },
    /// On SQLite: the call kept the database's single write lock too long.
    WriteHoldExceeded { limit_ms: u64 },
    /// The plugin's WIT version has no such export (an event or schedule
    /// for a `weft:platform@0.1.0` plugin).
    NotExported,
    /// The host failed (logged with the request id).
    Internal,
}

impl CallError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Overloaded => "overloaded",
            CallError::Timeout { .. } => "plugin_timeout",
            CallError::FuelExhausted { .. } => "plugin_fuel_exhausted",
            CallError::MemoryLimitExceeded { .. } => "plugin_memory_limit_exceeded",
            CallError::StackOverflow => "plugin_stack_overflow",
            CallError::Trapped => "plugin_trapped",
            CallError::ResponseTooLarge { .. } => "plugin_response_too_large",
            CallError::WriteHoldExceeded { .. } => "plugin_write_hold_exceeded",
            CallError::NotExported => "plugin_export_missing",
            CallError::Internal => "internal_error",
        }
    }

    /// HTTP status: the plugin is the upstream of the request.
    pub fn status(&self) -> u16 {
        match self {
            CallError::Overloaded => 503,
            CallError::Timeout { .. } | CallError::WriteHoldExceeded { .. } => 504,
            CallError::Internal => 500,
            _ => 502,
        }
    }

    /// A message for the client.
    pub fn message(&self) -> String {
        match self {
            CallError::Overloaded => "too many plugin calls in flight; retry shortly".into(),
            CallError::Timeout { limit_ms } => {
                format!("the plugin did not answer within its {limit_ms} ms limit")
            }
            CallError::FuelExhausted { limit } => {
                format!("the plugin used up its fuel limit of {limit}")
            }
            CallError::MemoryLimitExceeded { limit_bytes } => {
                format!(
                    "the plugin exceeded its memory limit of {} MiB",
                    limit_bytes >> 20
                )
            }
            CallError::StackOverflow => "the plugin overflowed its stack".into(),
            CallError::Trapped => "the plugin failed (trap or panic); see the plugin log".into(),
            CallError::ResponseTooLarge { limit_bytes } => {
                format!("the plugin's response exceeds {limit_bytes} bytes")
            }
            CallError::WriteHoldExceeded { limit_ms } => format!(
                "the plugin kept the database write lock over {limit_ms} ms; do its writes at the end of the call"
            ),
            CallError::NotExported => {
                "the plugin's WIT version has no event or schedule handlers".into()
            }
            CallError::Internal => "internal error".into(),
        }
    }
}

/// Where a call's usage event goes.
enum Metering<'a> {
    /// To the meter (group-committed on its own).
    Meter(&'a Meter),
    /// To a batch, committed with its unit of work.
    Collect(&'a mut Vec<UsageEvent>),
}

/// Calls of one (tenant, plugin) run one after another in one unit of work
/// and committed together (event deliveries): each call is a savepoint in
/// it, so a failing call undoes only its own writes, and the batch pays
/// for one transaction instead of one per call.
#[derive(Debug)]
pub struct Batch {
    /// `None` once a call broke the transaction: the batch must not commit
    /// (unless `lazy`).
    pub unit: Option<UnitOfWork>,
    /// The unit is begun by the first call's first write, not before it
    /// runs: `None` means not begun yet.
    pub lazy: bool,
    /// Search writes of the kept calls, applied after the commit.
    pub search_writes: Vec<Journaled>,
    /// Events the kept calls published, written with the batch.
    pub events: Vec<crate::events::Pending>,
    /// Usage events of every call, written with the batch.
    pub usage: Vec<UsageEvent>,
}

impl Batch {
    /// A batch over `unit`.
    pub fn new(unit: UnitOfWork) -> Self {
        Self {
            unit: Some(unit),
            lazy: false,
            search_writes: Vec::new(),
            events: Vec::new(),
            usage: Vec::new(),
        }
    }

    /// A batch of one call whose unit of work the call begins at its first
    /// write, so that it may use the LLM gateway before (a model call must
    /// not hold a write transaction).
    pub fn lazy() -> Self {
        Self {
            unit: None,
            lazy: true,
            search_writes: Vec::new(),
            events: Vec::new(),
            usage: Vec::new(),
        }
    }
}

/// What a call asks of the plugin: one of its exports.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// `handle`: an HTTP request to one of its routes.
    Http(types::Request),
    /// `on-event`: a delivery of an event it subscribes to.
    Event(types::Event),
    /// `on-schedule`: a due run of one of its schedules.
    Schedule(types::ScheduleRun),
}

impl Invocation {
    fn bytes_in(&self) -> u64 {
        match self {
            Invocation::Http(r) => r.body.len() as u64,
            Invocation::Event(e) => e.payload.len() as u64,
            Invocation::Schedule(_) => 0,
        }
    }
}

/// What the plugin returned.
#[derive(Debug)]
pub enum Reply {
    Http(types::Response),
    /// An event or schedule handler's verdict.
    Handled(Result<(), types::HandlerError>),
}

impl Reply {
    /// Whether the call's writes stand: any response, or a handler's `ok`.
    fn commits(&self) -> bool {
        matches!(self, Reply::Http(_) | Reply::Handled(Ok(())))
    }

    fn bytes_out(&self) -> u64 {
        match self {
            Reply::Http(r) => r.body.len() as u64,
            Reply::Handled(_) => 0,
        }
    }
}

/// A call's result and what it used.
#[derive(Debug)]
pub struct CallOutcome {
    pub result: Result<Reply, CallError>,
    pub stats: CallStats,
}

/// Who a call is for and how it is metered.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub binding: Binding,
    /// The tenant's effective settings for the plugin.
    pub settings: Arc<Map<String, Value>>,
    /// Unique per tenant; a repeat is never metered twice.
    pub idempotency_key: String,
    /// The host's id for this call (in its logs and the plugin's).
    pub request_id: String,
    pub invocation: Invocation,
}

/// A plugin version's pre-linked component, by the WIT version it targets.
pub(super) enum Pre {
    V0_1(v0_1::PluginPre<StoreData>),
    V0_2(v0_2::PluginPre<StoreData>),
    V0_3(v0_3::PluginPre<StoreData>),
    V0_4(v0_4::PluginPre<StoreData>),
    V0_5(v0_5::PluginPre<StoreData>),
}

/// Calls the export `invocation` names on an instance of a WIT version
/// with every handler (0.2.0 and later; their bindings are distinct types).
macro_rules! handlers {
    ($instance:expr, $store:expr, $invocation:expr) => {
        Ok(match $invocation {
            None => None,
            Some(Invocation::Http(r)) => Some(Reply::Http($instance.call_handle($store, r).await?)),
            Some(Invocation::Event(e)) => {
                Some(Reply::Handled($instance.call_on_event($store, e).await?))
            }
            Some(Invocation::Schedule(s)) => {
                Some(Reply::Handled($instance.call_on_schedule($store, s).await?))
            }
        })
    };
}

impl Pre {
    /// Instantiates the component in `store` and, given an invocation, calls it.
    async fn run(
        &self,
        store: &mut Store<StoreData>,
        invocation: Option<&Invocation>,
    ) -> wasmtime::Result<Option<Reply>> {
        match self {
            Pre::V0_5(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                handlers!(instance, store, invocation)
            }
            Pre::V0_4(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                handlers!(instance, store, invocation)
            }
            Pre::V0_3(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                handlers!(instance, store, invocation)
            }
            Pre::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                handlers!(instance, store, invocation)
            }
            Pre::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                Ok(match invocation {
                    None => None,
                    Some(Invocation::Http(r)) => {
                        Some(Reply::Http(instance.call_handle(store, r).await?))
                    }
                    Some(_) => return Err(wasmtime::format_err!(NOT_EXPORTED)),
                })
            }
        }
    }
}

const NOT_EXPORTED: &str = "the plugin's WIT version has no such export";

impl Runtime {
    /// Runs `call` on `plugin`, meters it, and stores its log lines.
    pub async fn call(
        &self,
        plugin: &Arc<LoadedPlugin>,
        meter: &Meter,
        call: CallRequest,
    ) -> CallOutcome {
        self.call_metered(plugin, Metering::Meter(meter), call, None)
            .await
    }

    /// Runs `call` on `plugin` in `batch`'s unit of work, as a savepoint:
    /// its writes are kept in the batch if it succeeds and undone if not,
    /// and its usage event joins the batch's; the batch commits.
    pub async fn call_in_batch(
        &self,
        plugin: &Arc<LoadedPlugin>,
        batch: &mut Batch,
        call: CallRequest,
    ) -> CallOutcome {
        let mut usage = Vec::new();
        let outcome = self
            .call_metered(
                plugin,
                Metering::Collect(&mut usage),
                call,
                Some(&mut *batch),
            )
            .await;
        batch.usage.extend(usage);
        outcome
    }

    async fn call_metered(
        &self,
        plugin: &Arc<LoadedPlugin>,
        metering: Metering<'_>,
        call: CallRequest,
        batch: Option<&mut Batch>,
    ) -> CallOutcome {
        let started = Instant::now();
        let request_id = call.request_id.clone();
        let binding = call.binding.clone();
        let bytes_in = call.invocation.bytes_in();
        let idempotency_key = call.idempotency_key.clone();
        let log = LogBuffer::new(self.config.max_log_bytes_per_call);
        let (result, mut stats) = match tokio::time::timeout(
            Duration::from_millis(self.config.queue_timeout_ms),
            self.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(_permit)) => self.run(plugin, call, log.clone(), batch).await,
            _ => (Err(CallError::Overloaded), CallStats::default()),
        };
        stats.wall_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.bytes_in = bytes_in;
        stats.bytes_out = result.as_ref().map_or(0, Reply::bytes_out);
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().to_owned(),
        };
        crate::metrics::record_call(
            &binding.tenant,
            &binding.plugin,
            &outcome,
            stats.wall_us,
            stats.fuel,
        );

        let (lines, dropped) = log.take();
        if !lines.is_empty() || dropped > 0 {
            let mut lines = lines;
            if dropped > 0 {
                lines.push(crate::capabilities::LogLine {
                    stream: "warn",
                    message: format!(
                        "[weft] {dropped} bytes of output over the per-call log cap were dropped"
                    ),
                });
            }
            let db = self.db.clone();
            let keep = self.config.max_log_lines_per_plugin;
            let (tenant, plugin_name, rid) = (
                binding.tenant.clone(),
                binding.plugin.clone(),
                request_id.clone(),
            );
            tokio::spawn(async move {
                if let Err(err) =
                    crate::plugin_logs::append(&db, &tenant, &plugin_name, &rid, &lines, keep).await
                {
                    tracing::warn!(error = %err, "could not store plugin log lines");
                }
            });
        }

        let event = UsageEvent {
            tenant: binding.tenant,
            idempotency_key,
            plugin: binding.plugin,
            version: binding.version,
            fuel: stats.fuel,
            wall_us: stats.wall_us,
            peak_memory: stats.peak_memory,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            outcome,
            request_id,
            occurred_at: now_ms(),
        };
        match metering {
            Metering::Meter(meter) => {
                if let Err(err) = meter.record(event).await {
                    tracing::error!(error = %err, "usage event not recorded");
                    return CallOutcome {
                        result: Err(CallError::Internal),
                        stats,
                    };
                }
            }
            Metering::Collect(events) => events.push(event),
        }
        CallOutcome { result, stats }
    }
}

impl Runtime {
    /// A Store for one call, bound to `binding`, with its limits armed.
    fn new_store(
        &self,
        plugin: &LoadedPlugin,
        binding: Binding,
        settings: Arc<Map<String, Value>>,
        log: LogBuffer,
    ) -> Option<Store<StoreData>> {
        let limits = plugin.limits;
        // No preopened directories, no environment, no arguments; network
        // refused explicitly (not only by today's defaults).
        let wasi = WasiCtxBuilder::new()
            .stdout(log.output("stdout"))
            .stderr(log.output("stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let data = StoreData {
            caps: Capabilities::new(binding, self.services.clone(), settings, log),
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                peak: 0,
                refused: false,
            },
            timed_out: false,
            write_hold_exceeded: false,
        };
        let mut store = Store::new(&self.engine, data);
        store.limiter(|d| &mut d.limiter);
        store.set_fuel(limits.fuel).ok()?;
        // No yield by fuel: the epoch's tick (below) hands the thread back
        // every 5 ms. Each yield re-queues the call behind a wake of the
        // other worker (an eventfd write, an IPI in a VM, often the call
        // moving threads): at 1M fuel (~1 ms) that was a tenth of a batch
        // send's CPU (BENCHMARKS.md, eleventh session).
        let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
        // SQLite has one write lock for the whole database: a call that
        // holds it (after its first write) must finish soon, or every
        // tenant's writes wait behind it.
        let write_hold = (self.db.engine() == crate::db::Engine::Sqlite)
            .then(|| Duration::from_millis(self.config.max_write_hold_ms));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            if Instant::now() >= deadline + ctx.data().caps.time_outside_guest() {
                ctx.data_mut().timed_out = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            if let (Some(cap), Some(since)) = (write_hold, ctx.data().caps.write_held_since())
                && since.elapsed() >= cap
            {
                ctx.data_mut().write_hold_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            // Hand the thread back to the scheduler every tick, so a busy
            // guest never starves other calls on the same worker.
            Ok(UpdateDeadline::Yield(1))
        });
        Some(store)
    }

    /// Instantiates `plugin` in a fresh Store and, given a request, calls
    /// it — without queueing, metering or log storage. For `weft bench`.
    pub async fn probe(
        &self,
        plugin: &Arc<LoadedPlugin>,
        binding: Binding,
        request: Option<&types::Request>,
    ) -> bool {
        let log = LogBuffer::new(self.config.max_log_bytes_per_call);
        let Some(mut store) = self.new_store(plugin, binding, Arc::new(Map::new()), log) else {
            return false;
        };
        let invocation = request.cloned().map(Invocation::Http);
        plugin
            .pre
            .run(&mut store, invocation.as_ref())
            .await
            .is_ok()
    }

    async fn run(
        &self,
        plugin: &Arc<LoadedPlugin>,
        call: CallRequest,
        log: LogBuffer,
        mut batch: Option<&mut Batch>,
    ) -> (Result<Reply, CallError>, CallStats) {
        let limits = plugin.limits;
        let mut stats = CallStats::default();
        let Some(mut store) = self.new_store(plugin, call.binding, call.settings, log) else {
            return (Err(CallError::Internal), stats);
        };
        if let Invocation::Http(req) = &call.invocation {
            let user = req.caller.as_ref().map(|c| c.id.clone());
            store.data_mut().caps.act_for(user);
        }
        if let Some(batch) = batch.as_deref_mut() {
            match batch.unit.take() {
                Some(unit) => store.data_mut().caps.borrow_unit(unit),
                None if batch.lazy => store.data_mut().caps.begin_batch(),
                // An earlier call broke the batch's transaction.
                None => return (Err(CallError::Internal), stats),
            }
        }

        let result = plugin
            .pre
            .run(&mut store, Some(&call.invocation))
            .await
            .and_then(|reply| reply.ok_or_else(|| wasmtime::format_err!("no reply")));
        stats.fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        stats.peak_memory = store.data().limiter.peak as u64;
        let result = match result {
            Ok(reply) if reply.bytes_out() > limits.max_response_bytes => {
                Err(CallError::ResponseTooLarge {
                    limit_bytes: limits.max_response_bytes,
                })
            }
            Ok(reply) => Ok(reply),
            Err(err) => Err(classify(
                &err,
                store.data(),
                &limits,
                plugin,
                self.config.max_write_hold_ms,
            )),
        };
        // The call's writes stand only if it produced a response (or its
        // handler said ok).
        let caps = &mut store.data_mut().caps;
        if let Some(batch) = batch {
            let keep = matches!(&result, Ok(reply) if reply.commits());
            return match caps.give_back(keep).await {
                Ok(Some(back)) => {
                    batch.unit = back.unit;
                    batch.search_writes.extend(back.search_writes);
                    batch.events.extend(back.events);
                    (result, stats)
                }
                Ok(None) => (Err(CallError::Internal), stats),
                Err(err) => {
                    tracing::error!(error = %err, "ending a batched call's savepoint failed");
                    (Err(CallError::Internal), stats)
                }
            };
        }
        let result = match result {
            Ok(reply) if reply.commits() => match caps.commit().await {
                Ok(()) => Ok(reply),
                Err(err) => {
                    tracing::error!(error = %err, "committing a plugin call's writes failed");
                    Err(CallError::Internal)
                }
            },
            other => {
                caps.rollback();
                other
            }
        };
        (result, stats)
    }
}

/// Innermost frames that must all be one function for an out-of-bounds trap
/// to count as a stack overflow (wasmtime keeps 20 frames of a backtrace).
const RECURSION_FRAMES: usize = 16;

fn backtrace_depth(err: &wasmtime::Error) -> usize {
    err.downcast_ref::<wasmtime::WasmBacktrace>()
        .map_or(0, |bt| bt.frames().len())
}

fn in_deep_recursion(err: &wasmtime::Error) -> bool {
    let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = bt.frames();
    frames.len() >= RECURSION_FRAMES
        && frames[..RECURSION_FRAMES]
            .windows(2)
            .all(|w| w[0].func_index() == w[1].func_index())
}

fn classify(
    err: &wasmtime::Error,
    data: &StoreData,
    limits: &super::EffectiveLimits,
    plugin: &LoadedPlugin,
    write_hold_ms: u64,
) -> CallError {
    let error = if data.timed_out {
        CallError::Timeout {
            limit_ms: limits.timeout_ms,
        }
    } else if data.write_hold_exceeded {
        CallError::WriteHoldExceeded {
            limit_ms: write_hold_ms,
        }
    } else if data.limiter.refused {
        CallError::MemoryLimitExceeded {
            limit_bytes: limits.memory_bytes,
        }
    } else {
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => CallError::FuelExhausted { limit: limits.fuel },
            Some(Trap::StackOverflow) => CallError::StackOverflow,
            // Rust and C guests keep their stack in linear memory below the
            // data; running off its end is an out-of-bounds access from
            // inside a recursion, not a wild pointer.
            Some(Trap::MemoryOutOfBounds) if in_deep_recursion(err) => CallError::StackOverflow,
            Some(Trap::Interrupt) => CallError::Timeout {
                limit_ms: limits.timeout_ms,
            },
            Some(_) => CallError::Trapped,
            // Not a guest trap: a host import failed (already logged) or
            // instantiation failed.
            None if format!("{err:#}").contains("host storage fault") => CallError::Internal,
            None if format!("{err:#}").contains(NOT_EXPORTED) => CallError::NotExported,
            None => CallError::Trapped,
        }
    };
    tracing::info!(
        plugin = %plugin.manifest.plugin.name,
        code = error.code(),
        trap = ?err.downcast_ref::<Trap>(),
        frames = backtrace_depth(err),
        cause = %err.root_cause(),
        "plugin call failed"
    );
    error
}
