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

use crate::ids::TenantId;
use crate::storage::{self, Owner, Storage};

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
#[derive(Debug)]
pub struct Capabilities {
    binding: Binding,
    storage: Arc<Storage>,
    settings: Arc<Map<String, Value>>,
    log: LogBuffer,
}

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
        }
    }

    /// The binding of this call.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    fn owner(&self) -> Owner<'_> {
        Owner {
            tenant: &self.binding.tenant,
            plugin: &self.binding.plugin,
        }
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
