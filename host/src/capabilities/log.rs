//! `weft:platform/log`: lines into the tenant's capped plugin log.
//!
//! One implementation for every WIT version that has the interface (the
//! versions' types are distinct but identical in shape).

macro_rules! for_version {
    ($v:ident) => {
        pub mod $v {
            use crate::capabilities::Capabilities;
            use crate::capabilities::bindings::$v::weft::platform::log::{self, Level};

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
        }
    };
}

for_version!(v0_1);
for_version!(v0_2);
for_version!(v0_3);
for_version!(v0_4);
for_version!(v0_5);
