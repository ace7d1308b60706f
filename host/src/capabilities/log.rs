//! `weft:platform/log`: lines into the tenant's capped plugin log.

use super::Capabilities;
use super::bindings::weft::platform::log::{self, Level};

impl log::Host for Capabilities {
    async fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let stream = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.push(stream, message.as_bytes());
        Ok(())
    }
}
