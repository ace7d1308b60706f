//! The Weft plugin SDK: write a plugin against `weft:platform@0.5.0` in
//! plain Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`plugin!`]:
//!
//! ```no_run
//! use weft_sdk::{Plugin, Request, Response, Router};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn handle(req: Request) -> Response {
//!         Router::new()
//!             .get("/hello", |_req: &Request| Response::text(200, "hello"))
//!             .handle(req)
//!     }
//! }
//!
//! weft_sdk::plugin!(Hello);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2` as a `cdylib`: the
//! result is a component whose imports are only the interfaces the code
//! actually calls (unused ones are dropped when the component is made), so
//! the manifest's `capabilities` must list exactly what the code touches.
//!
//! Capabilities are in [`kv`], [`docs`], [`config`], [`log`], [`events`],
//! [`search`], [`llm`], [`outbox`] and [`library`]; the raw generated bindings are in [`bindings`] for anything
//! the wrappers leave out. A plugin that subscribes to events or declares
//! schedules overrides [`Plugin::on_event`] / [`Plugin::on_schedule`].

#![warn(missing_docs)]

// Lets the generated code name this crate as `weft_sdk` both here and in the
// plugin crates that expand its export macro.
extern crate self as weft_sdk;

/// The raw bindings generated from the WIT world `plugin`.
///
/// Generated once, here, so every plugin shares one set of types and one
/// export macro; prefer the wrappers in this crate.
// Generated ABI glue is unsafe by nature, and its lowering functions take
// one argument per flattened field of a record.
#[allow(unsafe_code, missing_docs, clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit/platform@0.5.0",
        pub_export_macro: true,
        default_bindings_module: "weft_sdk::bindings",
        // Plugins depend on this crate only, so the generated code must reach
        // the wit-bindgen runtime through it.
        runtime_path: "weft_sdk::__private::wit_bindgen::rt",
        additional_type_attributes: {
            "weft:platform/types@0.5.0/principal": [#[derive(serde::Serialize)]],
            "weft:platform/types@0.5.0/role": [#[derive(serde::Serialize)] #[serde(rename_all = "snake_case")]],
            "weft:platform/types@0.5.0/credential-kind": [#[derive(serde::Serialize)] #[serde(rename_all = "snake_case")]],
        },
    });
}

pub mod config;
pub mod docs;
pub mod events;
pub mod kv;
pub mod library;
pub mod llm;
pub mod log;
pub mod outbox;
mod plugin;
mod query;
mod request;
mod response;
mod router;
pub mod search;

pub use bindings::weft::platform::types::{
    CredentialKind, Event, HandlerError, Method, Principal, Role, ScheduleRun,
};
pub use plugin::Plugin;
pub use request::{Params, Request};
pub use response::{IntoResponse, Response};
pub use router::Router;

/// What a handler that can fail returns: both arms are responses, so `?`
/// turns a capability error (which converts into a [`Response`]) into the
/// answer.
pub type Result<T = Response, E = Response> = core::result::Result<T, E>;

/// Exports a [`Plugin`] implementation as the component's `handle`,
/// `on-event` and `on-schedule` functions.
///
/// Use it once per plugin crate, at the crate root:
///
/// ```ignore
/// weft_sdk::plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! plugin {
    ($plugin:ty) => {
        const _: () = {
            struct WeftExport;

            impl $crate::bindings::Guest for WeftExport {
                fn handle(req: $crate::bindings::Request) -> $crate::bindings::Response {
                    $crate::__private::handle::<$plugin>(req)
                }

                fn on_event(
                    event: $crate::Event,
                ) -> ::core::result::Result<(), $crate::HandlerError> {
                    <$plugin as $crate::Plugin>::on_event(event)
                }

                fn on_schedule(
                    run: $crate::ScheduleRun,
                ) -> ::core::result::Result<(), $crate::HandlerError> {
                    <$plugin as $crate::Plugin>::on_schedule(run)
                }
            }

    $crate::bindings::export!(WeftExport with_types_in $crate::bindings);
        };
    };
}

/// Support for [`plugin!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::plugin::handle;
}
