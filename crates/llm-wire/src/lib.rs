//! LLM provider wire formats for Weft.
//!
//! [`Client`] speaks the real HTTP protocols of OpenAI, Anthropic, Gemini,
//! xAI and OpenAI-compatible servers, taking and returning the
//! provider-neutral types in [`types`]. [`FakeLlm`] is an in-process server
//! speaking the same protocols, for tests and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_llm_wire::WireError> {
//! use std::time::Duration;
//! use weft_llm_wire::{ChatRequest, Client, Endpoint, Message, ProviderKind, Role};
//!
//! let client = Client::new()?;
//! let ep = Endpoint::new(ProviderKind::Anthropic, "sk-ant-...", Duration::from_secs(60));
//! let reply = client
//!     .complete(
//!         &ep,
//!         &ChatRequest {
//!             model: "claude-sonnet-4-5".into(),
//!             system: None,
//!             messages: vec![Message::text(Role::User, "Hello")],
//!             max_tokens: 256,
//!             temperature: None,
//!         },
//!     )
//!     .await?;
//! println!("{} ({} tokens out)", reply.text, reply.usage.output_tokens);
//! # Ok(())
//! # }
//! ```
//!
//! Layout: `client.rs` holds transport, timeouts, status mapping and the
//! stream driver; `openai.rs`, `anthropic.rs` and `gemini.rs` only build
//! bodies and parse answers; `sse.rs` parses event streams; `fake.rs` (with
//! `fake/`) is the fake server.

#![warn(missing_docs)]

mod anthropic;
mod client;
mod error;
pub mod fake;
mod gemini;
mod openai;
mod sse;
pub mod types;

pub use client::Client;
pub use error::{ErrorKind, Result, WireError};
pub use fake::{FakeLlm, Recorded, Script};
pub use types::{
    ChatRequest, Completion, EmbedRequest, Embeddings, Endpoint, Message, Part, ProviderKind, Role,
    StreamEvent, Usage,
};
