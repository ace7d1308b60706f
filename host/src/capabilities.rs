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
mod log;
mod logbuf;
mod search;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use logbuf::{CapturedOutput, LogBuffer, LogLine};

use crate::db::Tx;
use crate::events::Events;
use crate::ids::TenantId;
use crate::search::Search;
use crate::storage::{self, Storage};

/// The services behind the imports, shared by every call.
#[derive(Debug)]
pub struct Services {
    pub storage: Arc<Storage>,
    pub events: Arc<Events>,
    pub search: Arc<Search>,
}

/// Host bindings generated from each `wit/platform@*` version this host
/// runs. Each version has its own traits; the implementations of the
/// interfaces both versions share are written once (see `kv.rs`).
pub mod bindings {
    /// `weft:platform@0.2.0`: adds events, search and the event and
    /// schedule handlers.
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
        });
    }

    /// `weft:platform@0.1.0`, the first release: `handle` only. Its request
    /// and response types are the same shape as 0.2.0's and are bound to them.
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
                "weft:platform/types": super::v0_2::weft::platform::types,
            },
        });
    }
}

pub use bindings::v0_2::weft::platform::types;

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
    unit_of_work: Option<Tx>,
    write_began: Option<std::time::Instant>,
    /// The call published events (the delivery workers are woken after commit).
    published: bool,
    /// Search writes journaled in the unit of work, applied after it commits.
    search_writes: Vec<crate::search::Journaled>,
}

/// What must commit with a call's writes, or the call's writes do not commit.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Marks delivery `id` done: a redelivery then finds it done.
    Delivery { id: String },
}

/// Why a call's unit of work did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The delivery was completed by another attempt meanwhile (its lease
    /// ran out): this attempt's writes were rolled back.
    #[error("the delivery was already completed")]
    AlreadyCompleted,
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// Runs `$body` (a future using `$tx: &mut Tx`, `$owner`, `$storage`) in the
/// call's unit of work; `write` begins it if needed, `read` uses it if it
/// exists and a short read transaction otherwise.
macro_rules! in_tx {
    ($caps:expr, read, |$storage:ident, $tx:ident, $owner:ident| $body:expr) => {{
        let caps = &mut *$caps;
        let $owner = crate::storage::Owner {
            tenant: &caps.binding.tenant,
            plugin: &caps.binding.plugin,
        };
        let $storage = &*caps.services.storage;
        match caps.unit_of_work.as_mut() {
            Some($tx) => $body.await,
            None => {
                let mut read = $storage.begin_read($owner).await?;
                let out = {
                    let $tx = &mut read;
                    $body.await
                };
                read.commit()
                    .await
                    .map_err(|e| crate::storage::Error::Db(e.into()))?;
                out
            }
        }
    }};
    ($caps:expr, write, |$storage:ident, $tx:ident, $owner:ident| $body:expr) => {{
        let caps = &mut *$caps;
        let $owner = crate::storage::Owner {
            tenant: &caps.binding.tenant,
            plugin: &caps.binding.plugin,
        };
        let $storage = &*caps.services.storage;
        if caps.unit_of_work.is_none() {
            caps.unit_of_work = Some($storage.begin_write($owner).await?);
            caps.write_began = Some(std::time::Instant::now());
        }
        match caps.unit_of_work.as_mut() {
            Some($tx) => $body.await,
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
            published: false,
            search_writes: Vec::new(),
        }
    }

    /// Since when this call holds a write transaction, if it does.
    pub fn write_held_since(&self) -> Option<std::time::Instant> {
        self.write_began
    }

    /// Commits the call's writes together with `completion`, then applies
    /// what waits for the commit (search writes, waking event delivery).
    /// Without writes or a completion there is nothing to commit.
    pub async fn commit(&mut self, completion: Option<&Completion>) -> Result<(), CommitError> {
        self.write_began = None;
        let owner = storage::Owner {
            tenant: &self.binding.tenant,
            plugin: &self.binding.plugin,
        };
        let mut tx = match (self.unit_of_work.take(), completion) {
            (Some(tx), _) => tx,
            (None, Some(_)) => self.services.storage.begin_write(owner).await?,
            (None, None) => return Ok(()),
        };
        if let Some(Completion::Delivery { id }) = completion
            && !crate::events::mark_done(&mut tx, id)
                .await
                .map_err(storage::Error::from)?
        {
            return Err(CommitError::AlreadyCompleted);
        }
        tx.commit().await.map_err(storage::Error::from)?;
        let writes = std::mem::take(&mut self.search_writes);
        if !writes.is_empty() {
            self.services.search.apply(owner, writes);
        }
        if self.published {
            self.services.events.wake();
        }
        Ok(())
    }

    /// Drops the call's writes (rolls its unit of work back).
    pub fn rollback(&mut self) {
        self.write_began = None;
        self.unit_of_work = None;
        self.search_writes.clear();
        self.published = false;
    }

    /// Adds every platform interface to `linker`; `get` projects the
    /// Store's data to its [`Capabilities`].
    pub fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Capabilities,
    ) -> wasmtime::Result<()> {
        use wasmtime::component::HasSelf;
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
