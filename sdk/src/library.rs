//! The code library (`weft:platform/library`, from 0.5.0): search the
//! platform's global items and the tenant's own, and generate code
//! search-first (an item that matches well enough is served with its
//! placeholders filled; otherwise a model writes it, billed to the tenant).
//!
//! Like the LLM gateway, the library keeps records of its own (uses, the
//! hit rate, saved items), so call it before the call's first write: after
//! one it is refused with [`Error::AfterWrite`].
//!
//! ```ignore
//! use weft_sdk::library::{Generate, Query};
//!
//! let found = Query::new("debounce a React input").language("tsx").limit(3).search()?;
//! let code = Generate::new("an axum handler returning JSON")
//!     .language("rust")
//!     .value("name", "health")
//!     .run()?;
//! ```

use crate::Response;
use crate::bindings::weft::platform::library as wit;

pub use wit::{
    Error, GenerateRequest, Generated, Hit, Item, ItemRef, Mode, Query as QueryRequest, Results,
    Source,
};

/// A search being built.
#[derive(Debug, Clone)]
pub struct Query(QueryRequest);

impl Query {
    /// A search for `text` (words, identifiers or a question), ten results.
    pub fn new(text: &str) -> Self {
        Self(QueryRequest {
            text: text.to_owned(),
            language: None,
            kind: None,
            tags: Vec::new(),
            min_quality: None,
            semantic_ratio: None,
            limit: 10,
            explain: false,
        })
    }

    /// Only items in `language` (`rust`, `tsx`, `sql`, ...).
    pub fn language(mut self, language: &str) -> Self {
        self.0.language = Some(language.to_owned());
        self
    }

    /// Only items of `kind` (`snippet`, `component`, ...).
    pub fn kind(mut self, kind: &str) -> Self {
        self.0.kind = Some(kind.to_owned());
        self
    }

    /// Only items with `tag` (every tag given must be there).
    pub fn tag(mut self, tag: &str) -> Self {
        self.0.tags.push(tag.to_owned());
        self
    }

    /// Only items of at least this quality (0 to 1).
    pub fn min_quality(mut self, q: f64) -> Self {
        self.0.min_quality = Some(q);
        self
    }

    /// The weight of meaning against keywords, 0 to 1.
    pub fn semantic_ratio(mut self, ratio: f32) -> Self {
        self.0.semantic_ratio = Some(ratio);
        self
    }

    /// At most `n` results (1-100).
    pub fn limit(mut self, n: u32) -> Self {
        self.0.limit = n;
        self
    }

    /// Also list the query terms each field of each result holds (slower).
    pub fn explain(mut self) -> Self {
        self.0.explain = true;
        self
    }

    /// Runs the search.
    pub fn search(&self) -> Result<Results, Error> {
        wit::search(&self.0)
    }
}

/// Item `id` at its newest version, if the tenant sees it.
pub fn get(id: &str) -> Result<Option<Item>, Error> {
    wit::get(id, None)
}

/// Item `id` at `version`, if the tenant sees it.
pub fn get_version(id: &str, version: u64) -> Result<Option<Item>, Error> {
    wit::get(id, Some(version))
}

/// Counts a use of item `id`; false if the tenant sees no such item.
pub fn record_use(id: &str) -> Result<bool, Error> {
    wit::record_use(id)
}

/// A generation request being built.
#[derive(Debug, Clone)]
pub struct Generate {
    request: GenerateRequest,
    values: serde_json::Map<String, serde_json::Value>,
}

impl Generate {
    /// Code for `request`, described in words.
    pub fn new(request: &str) -> Self {
        Self {
            request: GenerateRequest {
                request: request.to_owned(),
                language: None,
                kind: None,
                tags: Vec::new(),
                values: String::new(),
                save: false,
                model: None,
                max_tokens: None,
            },
            values: serde_json::Map::new(),
        }
    }

    /// In `language`.
    pub fn language(mut self, language: &str) -> Self {
        self.request.language = Some(language.to_owned());
        self
    }

    /// Of `kind`.
    pub fn kind(mut self, kind: &str) -> Self {
        self.request.kind = Some(kind.to_owned());
        self
    }

    /// Items served must have `tag`; the model's constraints follow it.
    pub fn tag(mut self, tag: &str) -> Self {
        self.request.tags.push(tag.to_owned());
        self
    }

    /// A value for a served item's placeholder `name`.
    pub fn value(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }

    /// Save a generated answer as a new item of the tenant.
    pub fn save(mut self) -> Self {
        self.request.save = true;
        self
    }

    /// A catalog model for a miss.
    pub fn model(mut self, model: &str) -> Self {
        self.request.model = Some(model.to_owned());
        self
    }

    /// The most output tokens a miss's answer may have.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.request.max_tokens = Some(n);
        self
    }

    /// Runs it: from the library, or from a model.
    pub fn run(mut self) -> Result<Generated, Error> {
        self.request.values = serde_json::Value::Object(self.values).to_string();
        wit::generate(&self.request)
    }
}

impl Error {
    /// The status and stable `snake_case` code this error answers with
    /// (the REST library's and gateway's codes).
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::InvalidRequest(_) => (400, "invalid_request"),
            Error::AfterWrite(_) => (500, "library_after_write"),
            Error::InsufficientCredits(_) => (402, "insufficient_credits"),
            Error::DailyLimitExceeded(_) => (403, "daily_limit_exceeded"),
            Error::GenerationFailed(_) => (502, "generation_failed"),
        }
    }
}

/// A JSON error with the library's status and code.
impl From<Error> for Response {
    fn from(e: Error) -> Self {
        let (status, code) = e.status_and_code();
        let message = match e {
            Error::InvalidRequest(m)
            | Error::AfterWrite(m)
            | Error::InsufficientCredits(m)
            | Error::DailyLimitExceeded(m)
            | Error::GenerationFailed(m) => m,
        };
        Response::error(status, code, &message)
    }
}
