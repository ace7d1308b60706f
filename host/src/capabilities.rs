//! The WIT imports a plugin sees, one file per interface. Each is a thin
//! adapter: it takes the (tenant, plugin) binding from the Store's data —
//! never from the guest — and calls a service.
//!
//! Guest mistakes (a bad key, a full quota) come back as WIT error variants;
//! host faults (the database is down) become traps, so a plugin never sees
//! internal error text.

mod config;
mod docs;
mod events;
mod kv;
mod library;
mod llm;
mod log;
mod logbuf;
mod outbox;
mod search;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use logbuf::{CapturedOutput, LogBuffer, LogLine};

use crate::events::Events;
use crate::ids::TenantId;
use crate::search::Search;
use crate::storage::{self, Storage, UnitOfWork};

/// The services behind the imports, shared by every call.
#[derive(Debug)]
pub struct Services {
    pub storage: Arc<Storage>,
    pub events: Arc<Events>,
    pub search: Arc<Search>,
    pub llm: Arc<crate::llm::Gateway>,
    pub messaging: Arc<crate::messaging::Messaging>,
    pub library: Arc<crate::library::Library>,
}

/// Host bindings generated from each `wit/platform@*` version this host
/// runs. Each version has its own traits; the implementations of the
/// interfaces both versions share are written once (see `kv.rs`).
pub mod bindings {
    /// `weft:platform@0.5.0`: adds the code library (`library`).
    pub mod v0_5 {
        wasmtime::component::bindgen!({
            path: "../wit/platform@0.5.0",
            world: "plugin",
            imports: { default: async | trappable },
            exports: { default: async },
            trappable_error_type: {
                "weft:platform/kv.error" => crate::storage::Error,
                "weft:platform/docs.error" => crate::storage::Error,
                "weft:platform/events.error" => crate::events::PublishError,
                "weft:platform/search.error" => crate::search::Error,
                "weft:platform/outbox.error" => crate::messaging::SendError,
            },
        });
    }

    /// `weft:platform@0.4.0`: adds the outbox (`outbox`). Its types are
    /// the same shape as 0.5.0's and are bound to them.
    pub mod v0_4 {
        wasmtime::component::bindgen!({
            path: "../wit/platform@0.4.0",
            world: "plugin",
            imports: { default: async | trappable },
            exports: { default: async },
            trappable_error_type: {
                "weft:platform/kv.error" => crate::storage::Error,
                "weft:platform/docs.error" => crate::storage::Error,
                "weft:platform/events.error" => crate::events::PublishError,
                "weft:platform/search.error" => crate::search::Error,
                "weft:platform/outbox.error" => crate::messaging::SendError,
            },
            with: {
                "weft:platform/types": super::v0_5::weft::platform::types,
            },
        });
    }

    /// `weft:platform@0.3.0`: adds the LLM gateway (`llm`). Its types are
    /// the same shape as 0.5.0's and are bound to them.
    pub mod v0_3 {
        wasmtime::component::bindgen!({
            path: "../wit/platform@0.3.0",
            world: "plugin",
            imports: { default: async | trappable },
            exports: { default: async },
            trappable_error_type: {
                "weft:platform/kv.error" => crate::storage::Error,
                "weft:platform/docs.error" => crate::storage::Error,
                "weft:platform/events.error" => crate::events::PublishError,
                "weft:platform/search.error" => crate::search::Error,
            },
            with: {
                "weft:platform/types": super::v0_5::weft::platform::types,
            },
        });
    }

    /// `weft:platform@0.2.0`: adds events, search and the event and
    /// schedule handlers. Its types are bound to 0.5.0's.
    pub mod v0_2 {
        wasmtime::component::bindgen!({
            path: "../wit/platform@0.2.0",
            world: "plugin",
            imports: { default: async | trappable },
            exports: { default: async },
            trappable_error_type: {
                "weft:platform/kv.error" => crate::storage::Error,
                "weft:platform/docs.error" => crate::storage::Error,
                "weft:platform/events.error" => crate::events::PublishError,
                "weft:platform/search.error" => crate::search::Error,
            },
            with: {
                "weft:platform/types": super::v0_5::weft::platform::types,
            },
        });
    }

    /// `weft:platform@0.1.0`, the first release: `handle` only.
    pub mod v0_1 {
        wasmtime::component::bindgen!({
            path: "../wit/platform@0.1.0",
            world: "plugin",
            imports: { default: async | trappable },
            exports: { default: async },
            trappable_error_type: {
                "weft:platform/kv.error" => crate::storage::Error,
                "weft:platform/docs.error" => crate::storage::Error,
            },
            with: {
                "weft:platform/types": super::v0_5::weft::platform::types,
            },
        });
    }
}

pub use bindings::v0_5::weft::platform::types;

/// The one (tenant, plugin) pair a Store is bound to.
#[derive(Debug, Clone)]
pub struct Binding {
    pub tenant: TenantId,
    pub plugin: String,
    pub version: String,
}

/// Per-call state behind every import.
///
/// Every write of a call goes into one transaction, begun at its first write
/// and committed by the runtime only if the call returns a response: a call
/// that traps or hits a limit leaves nothing behind. Reads see the call's
/// own writes.
#[derive(Debug)]
pub struct Capabilities {
    binding: Binding,
    services: Arc<Services>,
    settings: Arc<Map<String, Value>>,
    log: LogBuffer,
    unit_of_work: Option<UnitOfWork>,
    write_began: Option<std::time::Instant>,
    /// Events the call published, written when its unit of work commits.
    events: Vec<crate::events::Pending>,
    /// Search writes journaled in the unit of work, applied after it commits.
    search_writes: Vec<crate::search::Journaled>,
    /// The unit of work was lent by a batch of calls: this call is a
    /// savepoint in it, and the batch commits.
    lent: bool,
    /// The lent unit was lent with a savepoint (not begun by this call).
    savepoint: bool,
    /// The user the call acts for (an HTTP request's caller).
    acting_for: Option<String>,
    /// Time spent waiting for the LLM gateway, which is not the guest's.
    outside_guest: std::time::Duration,
    /// The call queued a message: the outbox workers are woken after the
    /// commit.
    queued_messages: bool,
}

/// What a call that borrowed a batch's unit of work gives back.
#[derive(Debug)]
pub struct GivenBack {
    /// `None` only for a batch's first call that began no unit (it wrote
    /// nothing, or failed).
    pub unit: Option<UnitOfWork>,
    /// Search writes to apply once the batch commits (none if rolled back).
    pub search_writes: Vec<crate::search::Journaled>,
    /// Events the call published (none if rolled back).
    pub events: Vec<crate::events::Pending>,
}

/// Runs `$body` (a future using `$storage` and `$r`) against the call's
/// data: `read` gives a [`storage::Reader`] — the unit of work if the call
/// has one, a short read transaction otherwise; `write` gives the unit of
/// work (`&mut UnitOfWork`), begun if needed.
macro_rules! in_tx {
    ($caps:expr, read, |$storage:ident, $r:ident| $body:expr) => {{
        let caps = &mut *$caps;
        let owner = crate::storage::Owner {
            tenant: &caps.binding.tenant,
            plugin: &caps.binding.plugin,
        };
        let $storage = &*caps.services.storage;
        match caps.unit_of_work.as_mut() {
            Some(unit) => {
                let $r = crate::storage::Reader::Unit(unit);
                $body.await
            }
            None => {
                let mut read = $storage.begin_read(owner).await?;
                let out = {
                    let $r = crate::storage::Reader::Tx(&mut read, owner);
                    $body.await
                };
                read.commit()
                    .await
                    .map_err(|e| crate::storage::Error::Db(e.into()))?;
                out
            }
        }
    }};
    ($caps:expr, write, |$storage:ident, $u:ident| $body:expr) => {{
        let caps = &mut *$caps;
        let $storage = &*caps.services.storage;
        if caps.unit_of_work.is_none() {
            let owner = crate::storage::Owner {
                tenant: &caps.binding.tenant,
                plugin: &caps.binding.plugin,
            };
            caps.unit_of_work = Some($storage.begin_unit(owner).await?);
            caps.write_began = Some(std::time::Instant::now());
        }
        match caps.unit_of_work.as_mut() {
            Some($u) => $body.await,
            None => unreachable!("the unit of work was begun above"),
        }
    }};
}
use in_tx;

impl Capabilities {
    /// State for one call bound to `binding`.
    pub fn new(
        binding: Binding,
        services: Arc<Services>,
        settings: Arc<Map<String, Value>>,
        log: LogBuffer,
    ) -> Self {
        Self {
            binding,
            services,
            settings,
            log,
            unit_of_work: None,
            write_began: None,
            events: Vec::new(),
            search_writes: Vec::new(),
            lent: false,
            savepoint: false,
            acting_for: None,
            outside_guest: std::time::Duration::ZERO,
            queued_messages: false,
        }
    }

    /// Binds the call to the user it acts for (the request's caller).
    pub fn act_for(&mut self, user: Option<String>) {
        self.acting_for = user;
    }

    /// How long the call waited for the LLM gateway: its wall-clock limit
    /// is extended by that much.
    pub fn time_outside_guest(&self) -> std::time::Duration {
        self.outside_guest
    }

    /// Runs this call in `unit`, a batch's unit of work, as a savepoint.
    pub fn borrow_unit(&mut self, mut unit: UnitOfWork) {
        unit.begin_savepoint();
        self.unit_of_work = Some(unit);
        self.lent = true;
        self.savepoint = true;
        // The batch holds the write lock from the call's first instruction.
        self.write_began = Some(std::time::Instant::now());
    }

    /// Runs this call as the first of a batch that has no unit of work
    /// yet: the call begins it at its first write (so it may use the LLM
    /// gateway before), and gives it to the batch if it succeeds.
    pub fn begin_batch(&mut self) {
        self.lent = true;
    }

    /// Ends a call that borrowed a unit: keeps its changes (`keep`) or
    /// rolls them back, and gives the unit back. An error means the unit's
    /// transaction is broken: the batch must not commit.
    pub async fn give_back(&mut self, keep: bool) -> Result<Option<GivenBack>, storage::Error> {
        self.write_began = None;
        if !self.lent {
            return Ok(None);
        }
        let unit = match self.unit_of_work.take() {
            Some(mut unit) if self.savepoint => {
                if keep {
                    unit.release_savepoint().await?;
                } else {
                    unit.rollback_savepoint().await?;
                }
                Some(unit)
            }
            // Begun by this call: kept whole, or rolled back by dropping it.
            Some(unit) => keep.then_some(unit),
            None if self.savepoint => return Ok(None),
            None => None,
        };
        if !keep {
            self.search_writes.clear();
            self.events.clear();
        }
        Ok(Some(GivenBack {
            unit,
            search_writes: std::mem::take(&mut self.search_writes),
            events: std::mem::take(&mut self.events),
        }))
    }

    /// Since when this call holds a write transaction, if it does.
    pub fn write_held_since(&self) -> Option<std::time::Instant> {
        self.write_began
    }

    /// Commits the call's writes, then applies what waits for the commit
    /// (search writes, waking event delivery).
    pub async fn commit(&mut self) -> Result<(), storage::Error> {
        self.write_began = None;
        let Some(mut unit) = self.unit_of_work.take() else {
            return Ok(());
        };
        self.services.storage.flush(&mut unit).await?;
        let owner = storage::Owner {
            tenant: &self.binding.tenant,
            plugin: &self.binding.plugin,
        };
        let mut tx = unit.into_tx();
        if !self.search_writes.is_empty() {
            crate::search::Search::journal(&mut tx, owner, &mut self.search_writes)
                .await
                .map_err(storage::Error::from)?;
        }
        let queued = self
            .services
            .events
            .write(&mut tx, owner, &self.events)
            .await
            .map_err(storage::Error::from)?;
        tx.commit().await?;
        let writes = std::mem::take(&mut self.search_writes);
        if !writes.is_empty() {
            self.services.search.apply(owner, writes);
        }
        if queued {
            self.services.events.wake();
        }
        if std::mem::take(&mut self.queued_messages) {
            self.services.messaging.wake();
        }
        Ok(())
    }

    /// Drops the call's writes (rolls its unit of work back).
    pub fn rollback(&mut self) {
        self.write_began = None;
        self.unit_of_work = None;
        self.search_writes.clear();
        self.events.clear();
        self.queued_messages = false;
    }

    /// Adds every platform interface to `linker`; `get` projects the
    /// Store's data to its [`Capabilities`].
    pub fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Capabilities,
    ) -> wasmtime::Result<()> {
        use wasmtime::component::HasSelf;
        bindings::v0_5::Plugin::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
        bindings::v0_4::Plugin::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
        bindings::v0_3::Plugin::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
        bindings::v0_2::Plugin::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)?;
        bindings::v0_1::Plugin::add_to_linker::<T, HasSelf<Capabilities>>(linker, get)
    }
}

impl types::Host for Capabilities {}

/// A storage error as the guest sees it, or a trap for host faults.
fn guest_error<E>(
    err: storage::Error,
    to_wit: impl FnOnce(storage::Error) -> Option<E>,
) -> wasmtime::Result<E> {
    match err {
        storage::Error::Db(db) => {
            // The detail stays in the host's log; the guest only traps.
            tracing::error!(error = %db, "storage fault during plugin call");
            Err(wasmtime::format_err!("host storage fault"))
        }
        other => {
            let text = other.to_string();
            to_wit(other).ok_or_else(|| wasmtime::format_err!("unexpected storage error: {text}"))
        }
    }
}
