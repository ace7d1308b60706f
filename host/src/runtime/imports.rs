//! Install-time check: a component may import WASI (granted with no files,
//! environment or sockets), `weft:platform/types`, and the platform
//! interfaces its manifest declares — nothing else.

use wasmtime::Engine;
use wasmtime::component::Component;

use super::{Error, Result};
use crate::catalog::Manifest;

/// The component's import names, or the first one it may not have.
pub fn check(engine: &Engine, component: &Component, manifest: &Manifest) -> Result<Vec<String>> {
    let wit = &manifest.plugin.wit;
    let mut names = Vec::new();
    for (name, _) in component.component_type().imports(engine) {
        names.push(name.to_owned());
        if name.starts_with("wasi:") {
            continue;
        }
        let Some(rest) = name.strip_prefix("weft:platform/") else {
            return Err(Error::UndeclaredImport(format!(
                "component imports `{name}`, which this host does not provide"
            )));
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if version != wit {
            return Err(Error::UndeclaredImport(format!(
                "component imports `{name}` but its manifest targets weft:platform@{wit}"
            )));
        }
        let declared = interface == "types"
            || manifest
                .plugin
                .capabilities
                .iter()
                .any(|c| c.interface() == interface);
        if !declared {
            return Err(Error::UndeclaredImport(format!(
                "component imports `{name}`, which its manifest does not declare (add \"{interface}\" to plugin.capabilities)"
            )));
        }
    }
    Ok(names)
}
