//! Integration tests: the real server over HTTP with real plugins, on SQLite
//! and PostgreSQL.

mod common;

mod auth;
mod cli;
mod crash;
mod errors;
mod events;
mod forum;
mod hostile;
mod isolation;
mod metering;
mod ops;
mod upgrade;
