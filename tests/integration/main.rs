//! Integration tests: the real server over HTTP with real plugins, on SQLite
//! and PostgreSQL.

mod common;

mod auth;
mod billing;
mod cli;
mod crash;
mod errors;
mod events;
mod forum;
mod hostile;
mod isolation;
mod library;
mod library_generate;
mod library_plugin;
mod llm;
mod llm_keys;
mod llm_plugin;
mod messaging;
mod metering;
mod ops;
mod outbox;
mod stripe;
mod upgrade;
