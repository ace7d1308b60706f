//! The platform's LLM gateway (`weft:platform/llm`, from 0.3.0).
//!
//! Describe the work — task type, complexity, optionally a catalog model —
//! and the host picks the model under the tenant's plan, holds the
//! estimate against the tenant's credits, falls back on failures and
//! charges what the provider reports. There are no keys here.
//!
//! Call the gateway before the call's first write: a model call inside a
//! write is refused with [`Error::AfterWrite`].
//!
//! ```ignore
//! let answer = weft_sdk::llm::Ask::new("code")
//!     .system("You write Rust.")
//!     .user("A function that reverses a string.")
//!     .max_tokens(400)
//!     .complete()?;
//! ```

use crate::Response;
use crate::bindings::weft::platform::llm as wit;

pub use wit::{
    Attempt, Completion, CompletionRequest, Complexity, CostEstimate, Embeddings, Error, Image,
    Message, Part, Speaker, Usage,
};

/// A completion request being built.
#[derive(Debug, Clone)]
pub struct Ask(CompletionRequest);

impl Ask {
    /// A request for `task` (`chat`, `code`, `analysis`, `vision`,
    /// `summarize`, `extract`) of low complexity.
    pub fn new(task: &str) -> Self {
        Self(CompletionRequest {
            task: task.to_owned(),
            complexity: Complexity::Low,
            model: None,
            role: None,
            session: None,
            system: None,
            messages: Vec::new(),
            max_tokens: None,
            temperature: None,
        })
    }

    /// How demanding the work is.
    pub fn complexity(mut self, complexity: Complexity) -> Self {
        self.0.complexity = complexity;
        self
    }

    /// Asks for one catalog model (the plan must allow it).
    pub fn model(mut self, model: &str) -> Self {
        self.0.model = Some(model.to_owned());
        self
    }

    /// The role the work is for (the plan's per-role default applies).
    pub fn role(mut self, role: &str) -> Self {
        self.0.role = Some(role.to_owned());
        self
    }

    /// The conversation this belongs to (plans limit sessions per day).
    pub fn session(mut self, session: &str) -> Self {
        self.0.session = Some(session.to_owned());
        self
    }

    /// The system prompt.
    pub fn system(mut self, text: &str) -> Self {
        self.0.system = Some(text.to_owned());
        self
    }

    /// Adds a user message of text.
    pub fn user(self, text: &str) -> Self {
        self.message(Speaker::User, vec![Part::Text(text.to_owned())])
    }

    /// Adds an assistant message of text (an earlier answer).
    pub fn assistant(self, text: &str) -> Self {
        self.message(Speaker::Assistant, vec![Part::Text(text.to_owned())])
    }

    /// Adds a user message with an image and text about it.
    pub fn user_image(self, media_type: &str, data: Vec<u8>, text: &str) -> Self {
        let image = Part::Image(Image {
            media_type: media_type.to_owned(),
            data,
        });
        self.message(Speaker::User, vec![image, Part::Text(text.to_owned())])
    }

    /// Adds a message of any parts.
    pub fn message(mut self, speaker: Speaker, parts: Vec<Part>) -> Self {
        self.0.messages.push(Message { speaker, parts });
        self
    }

    /// The most output tokens the answer may have.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.0.max_tokens = Some(n);
        self
    }

    /// Sampling temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.0.temperature = Some(t);
        self
    }

    /// The request as built.
    pub fn request(&self) -> &CompletionRequest {
        &self.0
    }

    /// Runs the completion.
    pub fn complete(&self) -> Result<Completion, Error> {
        wit::complete(&self.0)
    }

    /// What the completion would hold, without running it.
    pub fn estimate(&self) -> Result<CostEstimate, Error> {
        wit::estimate(&self.0)
    }
}

/// Embeddings of `texts` with the catalog's embedding model (or `model`).
pub fn embed(texts: &[String], model: Option<&str>) -> Result<Embeddings, Error> {
    wit::embed(texts, model)
}

impl Error {
    /// The status and stable `snake_case` code this error answers with
    /// (the REST gateway's codes).
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::InvalidRequest(_) => (400, "invalid_request"),
            Error::InsufficientCredits(_) => (402, "insufficient_credits"),
            Error::DailyLimitExceeded(_) => (403, "daily_limit_exceeded"),
            Error::ModelNotAllowed(_) => (403, "model_not_allowed"),
            Error::Suspended => (403, "account_suspended"),
            Error::NoModel(_) => (503, "no_model_available"),
            Error::AfterWrite(_) => (500, "llm_after_write"),
            Error::Unavailable(_) => (502, "llm_unavailable"),
        }
    }
}

/// A JSON error with the gateway's status and code.
impl From<Error> for Response {
    fn from(e: Error) -> Self {
        let (status, code) = e.status_and_code();
        let message = match &e {
            Error::InvalidRequest(m)
            | Error::InsufficientCredits(m)
            | Error::DailyLimitExceeded(m)
            | Error::ModelNotAllowed(m)
            | Error::NoModel(m)
            | Error::AfterWrite(m) => m.clone(),
            Error::Suspended => "the tenant's AI use is suspended".to_owned(),
            Error::Unavailable(attempts) => format!(
                "no model answered ({} tried; nothing was charged)",
                attempts.len()
            ),
        };
        Response::error(status, code, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_gateway_codes() {
        for (err, status, code) in [
            (
                Error::InsufficientCredits("x".into()),
                402,
                "insufficient_credits",
            ),
            (
                Error::DailyLimitExceeded("x".into()),
                403,
                "daily_limit_exceeded",
            ),
            (Error::Unavailable(Vec::new()), 502, "llm_unavailable"),
        ] {
            let r = Response::from(err);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            assert_eq!(
                (r.status, body["error"]["code"].as_str()),
                (status, Some(code))
            );
        }
    }

    #[test]
    fn the_builder_keeps_the_conversation_in_order() {
        let ask = Ask::new("code")
            .system("s")
            .user("a")
            .assistant("b")
            .user("c");
        let speakers: Vec<_> = ask.request().messages.iter().map(|m| m.speaker).collect();
        assert_eq!(
            speakers,
            vec![Speaker::User, Speaker::Assistant, Speaker::User]
        );
        assert_eq!(ask.request().system.as_deref(), Some("s"));
    }
}
