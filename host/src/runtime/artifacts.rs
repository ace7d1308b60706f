//! The on-disk cache of precompiled components, keyed by the component's
//! hash and the engine's compatibility hash (wasmtime version + settings),
//! so a restart deserializes in milliseconds instead of compiling.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

fn artifact_path(engine: &Engine, dir: &Path, hash: &str) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{hash}-{:016x}.cwasm", hasher.finish()))
}

/// The precompiled component, if cached and loadable.
pub fn load(engine: &Engine, dir: &Path, hash: &str) -> Option<Component> {
    let path = artifact_path(engine, dir, hash);
    if !path.exists() {
        return None;
    }
    // SAFETY: `deserialize_file` trusts its input to be a wasmtime artifact.
    // Files in the cache directory are written only by `store` below, from
    // `Component::serialize` of an engine with the same compatibility hash
    // (part of the file name), via a temporary file renamed into place so a
    // reader never sees a partial artifact. The directory belongs to the
    // operator, like the binary itself.
    #[allow(unsafe_code)]
    let loaded = unsafe { Component::deserialize_file(engine, &path) };
    match loaded {
        Ok(component) => Some(component),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "discarding unusable precompiled artifact");
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

/// Writes the precompiled form of `component`; failures only cost a
/// recompile next time, so they are logged, not returned.
pub fn store(engine: &Engine, dir: &Path, hash: &str, component: &Component) {
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let path = artifact_path(engine, dir, hash);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(err) = result {
        tracing::warn!(dir = %dir.display(), error = %err, "could not cache precompiled plugin");
    }
}
