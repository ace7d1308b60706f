//! Lines into the tenant's plugin log (`weft:platform/log`).
//!
//! The host caps the size per call and per tenant; lines over the cap are
//! counted, not kept, so logging never fails.

use crate::bindings::weft::platform::log as wit;

pub use wit::Level;

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    wit::write(level, message);
}

/// Writes one line at `trace` level.
pub fn trace(message: &str) {
    write(Level::Trace, message);
}

/// Writes one line at `debug` level.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Writes one line at `info` level.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Writes one line at `warn` level.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Writes one line at `error` level.
pub fn error(message: &str) {
    write(Level::Error, message);
}
