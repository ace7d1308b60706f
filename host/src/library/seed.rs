//! The shipped items (`library/items/*.toml`, see `library/README.md`)
//! and the cache of embeddings computed from item texts.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::item::{ItemInput, Placeholder};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    title: String,
    description: String,
    language: String,
    kind: String,
    tags: Vec<String>,
    license: String,
    dependencies: Vec<String>,
    #[serde(default)]
    placeholders: Vec<Placeholder>,
    code: SeedCode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCode {
    text: String,
}

/// Every item file of `dir/items`, sorted by id. A file that does not
/// parse or check is skipped with a warning naming it: one bad seed must
/// not keep the platform from starting.
pub fn load(dir: &Path) -> Vec<(String, ItemInput)> {
    let items = dir.join("items");
    let Ok(entries) = std::fs::read_dir(&items) else {
        tracing::warn!(dir = %items.display(), "no library seed items found");
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        match parse(&path) {
            Ok(input) => out.push((id, input)),
            Err(err) => tracing::warn!(file = %path.display(), %err, "library seed item skipped"),
        }
    }
    out
}

fn parse(path: &Path) -> Result<ItemInput, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let seed: SeedFile = toml::from_str(&text).map_err(|e| e.to_string())?;
    let input = ItemInput {
        title: seed.title,
        description: seed.description.trim().to_owned(),
        language: seed.language,
        kind: seed.kind,
        tags: seed.tags,
        license: seed.license,
        dependencies: seed.dependencies,
        placeholders: seed.placeholders,
        code: seed.code.text,
    };
    input.validate().map_err(|e| e.to_string())?;
    Ok(input)
}

/// The default seed directory: the source tree's `library/`.
pub fn default_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../library"))
}

/// Embeddings by the sha256 of the text they were computed from, one file
/// each, under the cache directory: a fresh database (every test, every
/// new installation on one machine) does not run the model again for the
/// seed items.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, text: &str) -> PathBuf {
        self.dir
            .join(hex::encode(Sha256::digest(text.as_bytes())))
            .with_extension("f32")
    }

    pub fn get(&self, text: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(text)).ok()?;
        (bytes.len() == weft_codesearch::embed::DIMS * 4).then_some(bytes)
    }

    /// Best effort: a cache that cannot be written only costs time.
    pub fn put(&self, text: &str, bytes: &[u8]) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let path = self.path(text);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}
