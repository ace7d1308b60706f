//! Weft: a multi-tenant host whose business features are WebAssembly
//! component plugins. See `ARCHITECTURE.md` for the map; modules follow it:
//! entry points (`api`, `jobs`), the plugin `runtime`, the WIT
//! `capabilities`, the services (`tenancy`, `catalog`, `storage`, `events`,
//! `schedules`, `search`, `metering`, `billing`, `llm`, `plugin_logs`,
//! `idempotency`) and `db`.

pub mod api;
pub mod app;
pub mod bench;
pub mod billing;
pub mod bundled;
pub mod capabilities;
pub mod catalog;
pub mod cli;
mod cli_scaffold;
pub mod config;
pub mod db;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod library;
pub mod llm;
pub mod messaging;
pub mod metering;
pub mod metrics;
pub mod plugin_logs;
pub mod runtime;
pub mod schedules;
pub mod search;
pub mod secrets;
pub mod seed;
pub mod storage;
pub mod tenancy;
