//! `weft:platform/config`: the tenant's settings, defaults filled in.

use super::Capabilities;
use super::bindings::weft::platform::config;

impl config::Host for Capabilities {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).map(ToString::to_string))
    }

    async fn get_all(&mut self) -> wasmtime::Result<String> {
        Ok(serde_json::Value::Object((*self.settings).clone()).to_string())
    }
}
