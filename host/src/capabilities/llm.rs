//! `weft:platform/llm` (0.3.0 and later): the LLM gateway for plugins.
//!
//! The tenant is the call's binding and the user the request's caller (for
//! event and schedule handlers, `plugin:<name>`); the plugin only describes
//! the work. A gateway call runs in a task of its own, so a plugin call
//! that is dropped mid-way (its client hung up) still settles the charge,
//! and the time spent waiting for it does not count against the call's
//! wall-clock limit (it is not the guest's work; the gateway bounds every
//! provider attempt itself).

use std::sync::Arc;
use std::time::Instant;

use super::Capabilities;
use crate::llm::{self, Caller, Gateway};

impl Capabilities {
    /// The caller the gateway bills and limits.
    pub(super) fn llm_caller(&self) -> Caller {
        Caller {
            tenant: self.binding.tenant.clone(),
            user: self
                .acting_for
                .clone()
                .unwrap_or_else(|| format!("plugin:{}", self.binding.plugin)),
            plugin: Some(self.binding.plugin.clone()),
        }
    }

    /// Refuses a model call once the call writes: it would hold the
    /// write transaction (on SQLite, the database's write lock) for the
    /// seconds a model takes.
    fn llm_allowed(&self) -> Result<(), String> {
        self.before_first_write("the LLM gateway")
    }

    /// Refuses host work that runs in transactions of its own (a model
    /// call, the library's records) once the call has written: on SQLite
    /// the call's unit holds the write lock that work would wait for.
    pub(super) fn before_first_write(&self, what: &str) -> Result<(), String> {
        if self.unit_of_work.is_some() {
            return Err(format!(
                "the call has written already: call {what} before the first kv, docs, events, search or outbox write"
            ));
        }
        Ok(())
    }

    /// Runs `work` on the gateway in a task of its own and waits for it,
    /// keeping the wait out of the call's wall-clock budget.
    async fn on_gateway<T, F, Fut>(&mut self, work: F) -> wasmtime::Result<llm::Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Gateway>, Caller) -> Fut,
        Fut: Future<Output = llm::Result<T>> + Send + 'static,
    {
        let work = work(self.services.llm.clone(), self.llm_caller());
        self.wait_outside_guest(work).await
    }

    /// Runs `work` (host work the call waits for: a model, the library) in
    /// a task of its own, so a call dropped mid-way does not cut it short,
    /// and keeps the wait out of the call's wall-clock budget.
    pub(super) async fn wait_outside_guest<T: Send + 'static>(
        &mut self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> wasmtime::Result<T> {
        let started = Instant::now();
        let out = tokio::spawn(work).await;
        self.outside_guest += started.elapsed();
        out.map_err(|e| wasmtime::format_err!("the host task failed: {e}"))
    }
}

/// One implementation for every WIT version that has the interface.
macro_rules! for_version {
    ($v:ident) => {
        mod $v {
            use weft_llm_wire as wire;

            use crate::capabilities::Capabilities;
            use crate::capabilities::bindings::$v::weft::platform::llm as wit;
            use crate::llm::{self, CompletionRequest, Complexity, SelectError};

            type Answer<T> = wasmtime::Result<Result<T, wit::Error>>;

fn request_of(req: wit::CompletionRequest) -> Result<CompletionRequest, wit::Error> {
    let messages = req
        .messages
        .into_iter()
        .map(|m| {
            let parts = m
                .parts
                .into_iter()
                .map(|p| match p {
                    wit::Part::Text(text) => Ok(wire::Part::Text(text)),
                    wit::Part::Image(image) => {
                        if !image.media_type.starts_with("image/") || image.data.is_empty() {
                            return Err(wit::Error::InvalidRequest(
                                "an image part needs a media-type image/... and data".into(),
                            ));
                        }
                        Ok(wire::Part::Image {
                            media_type: image.media_type,
                            data: image.data,
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(wire::Message {
                role: match m.speaker {
                    wit::Speaker::User => wire::Role::User,
                    wit::Speaker::Assistant => wire::Role::Assistant,
                },
                parts,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompletionRequest {
        model: req.model,
        task: if req.task.is_empty() {
            "chat".into()
        } else {
            req.task
        },
        complexity: match req.complexity {
            wit::Complexity::Low => Complexity::Low,
            wit::Complexity::Medium => Complexity::Medium,
            wit::Complexity::High => Complexity::High,
        },
        role: req.role,
        session: req.session,
        system: req.system,
        messages,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
    })
}

fn attempts_of(attempts: Vec<llm::Attempt>) -> Vec<wit::Attempt> {
    attempts
        .into_iter()
        .map(|a| wit::Attempt {
            model: a.model,
            provider: a.provider,
            outcome: a.outcome,
            status: a.status,
            latency_ms: a.latency_ms,
        })
        .collect()
}

fn usage_of(u: wire::Usage) -> wit::Usage {
    wit::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
    }
}

/// A gateway error as the guest sees it, or a trap for host faults.
fn guest_error(err: llm::Error) -> wasmtime::Result<wit::Error> {
    use llm::Error as E;
    let message = err.to_string();
    Ok(match err {
        E::Db(e) | E::Billing(crate::billing::Error::Db(e)) => {
            tracing::error!(error = %e, "database fault in a plugin's LLM call");
            return Err(wasmtime::format_err!("host storage fault"));
        }
        E::Secrets(e) => {
            tracing::error!(error = %e, "the tenant's own keys could not be read in a plugin's LLM call");
            return Err(wasmtime::format_err!("host storage fault"));
        }
        E::Billing(_) | E::Invalid(_) => wit::Error::InvalidRequest(message),
        E::Select(SelectError::UnknownModel(_) | SelectError::Incapable { .. }) => {
            wit::Error::InvalidRequest(message)
        }
        E::Select(SelectError::NotAllowed(_)) => wit::Error::ModelNotAllowed(message),
        E::Select(SelectError::NotConfigured(_) | SelectError::NoModel(_)) => {
            wit::Error::NoModel(message)
        }
        E::Suspended => wit::Error::Suspended,
        E::DailyLimit { .. } => wit::Error::DailyLimitExceeded(message),
        E::InsufficientCredits { .. } => wit::Error::InsufficientCredits(message),
        E::Unavailable { attempts } | E::Rejected { attempts, .. } => {
            wit::Error::Unavailable(attempts_of(attempts))
        }
    })
}

/// The gateway's result as the import returns it.
fn answer<T, U>(out: llm::Result<T>, to_wit: impl FnOnce(T) -> U) -> Answer<U> {
    match out {
        Ok(value) => Ok(Ok(to_wit(value))),
        Err(err) => guest_error(err).map(Err),
    }
}

impl wit::Host for Capabilities {
    async fn complete(&mut self, request: wit::CompletionRequest) -> Answer<wit::Completion> {
        if let Err(e) = self.llm_allowed() {
            return Ok(Err(wit::Error::AfterWrite(e)));
        }
        let request = match request_of(request) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let out = self
            .on_gateway(|gw, caller| async move { gw.complete(&caller, &request).await })
            .await?;
        answer(out, |a| wit::Completion {
            id: a.id,
            model: a.model,
            provider: a.provider,
            text: a.text,
            finish_reason: a.finish_reason,
            usage: usage_of(a.usage),
            cost: a.cost.to_string(),
            balance: a.balance.to_string(),
            attempts: attempts_of(a.attempts),
        })
    }

    async fn estimate(&mut self, request: wit::CompletionRequest) -> Answer<wit::CostEstimate> {
        let request = match request_of(request) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // A read of the tenant's account: allowed after writes too.
        let out = self
            .on_gateway(|gw, caller| async move { gw.estimate(&caller, &request).await })
            .await?;
        answer(out, |e| wit::CostEstimate {
            models: e.models,
            input_tokens: e.input_tokens,
            max_output_tokens: e.max_output_tokens,
            estimate: e.estimate.to_string(),
            // What the call could spend: the balance less what calls in
            // flight hold (WIT 0.5.0's estimate has no field for held).
            balance: e.available.to_string(),
            plan: e.plan,
        })
    }

    async fn embed(
        &mut self,
        texts: Vec<String>,
        model: Option<String>,
    ) -> Answer<wit::Embeddings> {
        if let Err(e) = self.llm_allowed() {
            return Ok(Err(wit::Error::AfterWrite(e)));
        }
        let out = self
            .on_gateway(
                |gw, caller| async move { gw.embed(&caller, model.as_deref(), texts).await },
            )
            .await?;
        answer(out, |e| wit::Embeddings {
            id: e.id,
            model: e.model,
            vectors: e.vectors,
            usage: usage_of(e.usage),
            cost: e.cost.to_string(),
            balance: e.balance.to_string(),
        })
    }
}
        }
    };
}

for_version!(v0_3);
for_version!(v0_4);
for_version!(v0_5);
