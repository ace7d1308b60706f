//! The WIT imports a plugin sees, one file per interface. Each is a thin
//! adapter: it takes the (tenant, plugin) binding from the Store's data —
//! never from the guest — and calls a service.
//!
//! Guest mistakes (a bad key, a full quota) come back as WIT error variants;
//! host faults (the database is down) become traps, so a plugin never sees
//! internal error text.

mod config;
mod docs;
mod kv;
mod log;
mod logbuf;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use logbuf::{CapturedOutput, LogBuffer, LogLine};

use crate::db::Tx;
use crate::ids::TenantId;
use crate::storage::{self, Storage};

/// Host bindings generated from `wit/platform@0.1.0`: the only `bindgen!`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/platform@0.1.0",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "weft:platform/kv.error" => crate::storage::Error,
            "weft:platform/docs.error" => crate::storage::Error,
        },
    });
}

pub use bindings::weft::platform::types;

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
    storage: Arc<Storage>,
    settings: Arc<Map<String, Value>>,
    log: LogBuffer,
    unit_of_work: Option<Tx>,
    write_began: Option<std::time::Instant>,
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
        let $storage = &*caps.storage;
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
        let $storage = &*caps.storage;
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
        storage: Arc<Storage>,
        settings: Arc<Map<String, Value>>,
        log: LogBuffer,
    ) -> Self {
        Self {
            binding,
            storage,
            settings,
            log,
            unit_of_work: None,
            write_began: None,
        }
    }

    /// Since when this call holds a write transaction, if it does.
    pub fn write_held_since(&self) -> Option<std::time::Instant> {
        self.write_began
    }

    /// Takes the call's unit of work to commit it (dropping it rolls back).
    pub fn take_unit_of_work(&mut self) -> Option<Tx> {
        self.write_began = None;
        self.unit_of_work.take()
    }

    /// Adds every platform interface to `linker`; `get` projects the
    /// Store's data to its [`Capabilities`].
    pub fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Capabilities,
    ) -> wasmtime::Result<()> {
        bindings::Plugin::add_to_linker::<T, wasmtime::component::HasSelf<Capabilities>>(
            linker, get,
        )
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
