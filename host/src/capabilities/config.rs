//! `weft:platform/config`: the tenant's settings, defaults filled in.
//!
//! One implementation for every WIT version that has the interface (the
//! versions' types are distinct but identical in shape).

macro_rules! for_version {
    ($v:ident) => {
        pub mod $v {
            use crate::capabilities::Capabilities;
            use crate::capabilities::bindings::$v::weft::platform::config;

            impl config::Host for Capabilities {
                async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                    Ok(self.settings.get(&key).map(ToString::to_string))
                }

                async fn get_all(&mut self) -> wasmtime::Result<String> {
                    Ok(serde_json::Value::Object((*self.settings).clone()).to_string())
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
