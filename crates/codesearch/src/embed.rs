//! Dense vectors from all-MiniLM-L6-v2 (384 dimensions) through fastembed
//! and an ONNX Runtime loaded at run time, both from files the set-up
//! fetched from PyPI (`../shared/recipes/fetch-embedding-assets.sh`):
//! nothing here ever downloads. When the files are missing, [`Embedder::load`]
//! says which, and the library searches by keywords alone.

use std::path::Path;
use std::sync::Mutex;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use crate::Error;
use crate::vectors::normalize;

/// The files an embeddings directory must hold.
pub const FILES: [&str; 6] = [
    "libonnxruntime.so",
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// The model's output size.
pub const DIMS: usize = 384;

/// Tokens past this are cut: MiniLM was trained on 256-token windows, and
/// an item's title and description come first in what is embedded.
const MAX_TOKENS: usize = 256;

/// Texts per model run: larger batches pad short texts to the longest.
const BATCH: usize = 32;

pub struct Embedder {
    model: Mutex<TextEmbedding>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the runtime and model from `dir`; fails with the names of
    /// the missing files, or the runtime's own error.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let missing: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(Error::ModelMissing(format!(
                "{} lacks {}",
                dir.display(),
                missing.join(", ")
            )));
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| Error::ModelMissing(format!("{}: {e}", dir.join(name).display())))
        };
        // Loads the shared library once per process; fastembed then
        // creates the runtime's environment itself.
        ort::init_from(dir.join("libonnxruntime.so"))
            .map_err(|e| Error::Model(format!("ONNX Runtime: {e}")))?;
        let model = UserDefinedEmbeddingModel::new(
            read("model.onnx")?,
            TokenizerFiles {
                tokenizer_file: read("tokenizer.json")?,
                config_file: read("config.json")?,
                special_tokens_map_file: read("special_tokens_map.json")?,
                tokenizer_config_file: read("tokenizer_config.json")?,
            },
        )
        .with_pooling(Pooling::Mean);
        let model = TextEmbedding::try_new_from_user_defined(
            model,
            // One thread: embedding is background work beside serving
            // requests (a library's first load embeds every seed item).
            InitOptionsUserDefined::default()
                .with_max_length(MAX_TOKENS)
                .with_intra_threads(1),
        )
        .map_err(|e| Error::Model(e.to_string()))?;
        Ok(Self {
            model: Mutex::new(model),
        })
    }

    /// Unit-length vectors for `texts`, in order. CPU-bound (about a
    /// millisecond per short text): async callers run it on a blocking thread.
    pub fn embed<S: AsRef<str> + Send + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, Error> {
        let mut model = self.model.lock().unwrap_or_else(|p| p.into_inner());
        let mut vectors = model
            .embed(texts, Some(BATCH))
            .map_err(|e| Error::Model(e.to_string()))?;
        for v in &mut vectors {
            if v.len() != DIMS {
                return Err(Error::Model(format!(
                    "the model gave {} dimensions, not {DIMS}",
                    v.len()
                )));
            }
            normalize(v);
        }
        Ok(vectors)
    }
}

/// The text an item is embedded from: what it is before how it is written.
pub fn item_text(title: &str, description: &str, tags: &[String], code: &str) -> String {
    format!("{title}. {description} Tags: {}.\n{code}", tags.join(", "))
}

/// Vectors as little-endian bytes, the form the database stores.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}
