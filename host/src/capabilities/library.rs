//! `weft:platform/library` (0.5.0 and later): the code library for plugins.
//!
//! Scoped like every import: the tenant is the call's binding, so a search
//! opens the global shard and that tenant's only. The library keeps its
//! own records (uses, generation requests, saved items) in transactions of
//! its own, so like the LLM gateway it is refused once the call has written
//! (on SQLite the call's unit holds the write lock those records need).
//! Its work runs in a task of its own, outside the call's wall-clock budget:
//! a first use loads the library, and a miss waits for a model.

use std::sync::Arc;

use super::Capabilities;
use crate::library::{self, Library};
use crate::llm::{Caller, Gateway};

impl Capabilities {
    /// Refuses a library call once the call writes.
    fn library_allowed(&self) -> Result<(), String> {
        self.before_first_write("the library")
    }

    /// Runs `work` on the library in a task of its own and waits for it,
    /// keeping the wait out of the call's wall-clock budget.
    async fn on_library<T, F, Fut>(&mut self, work: F) -> wasmtime::Result<library::Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Library>, Arc<Gateway>, Caller) -> Fut,
        Fut: Future<Output = library::Result<T>> + Send + 'static,
    {
        let work = work(
            self.services.library.clone(),
            self.services.llm.clone(),
            self.llm_caller(),
        );
        self.wait_outside_guest(work).await
    }
}

/// One implementation for every WIT version that has the interface.
macro_rules! for_version {
    ($v:ident) => {
        mod $v {
            use serde_json::{Map, Value};

            use crate::capabilities::Capabilities;
            use crate::capabilities::bindings::$v::weft::platform::library as wit;
            use crate::library::{self, GenerateRequest, SearchParams};
            use crate::llm::{self, SelectError};

            type Answer<T> = wasmtime::Result<Result<T, wit::Error>>;

            fn item_of(i: library::Item) -> wit::Item {
                wit::Item {
                    id: i.id,
                    version: u64::try_from(i.version).unwrap_or(0),
                    current_version: u64::try_from(i.current_version).unwrap_or(0),
                    global: i.global,
                    title: i.input.title,
                    description: i.input.description,
                    language: i.input.language,
                    kind: i.input.kind,
                    tags: i.input.tags,
                    license: i.input.license,
                    dependencies: i.input.dependencies,
                    code: i.input.code,
                    quality: i.quality,
                    uses: u64::try_from(i.uses).unwrap_or(0),
                }
            }

            /// A model call's failure as the guest sees it, or a trap for host faults.
            fn llm_error(err: llm::Error) -> wasmtime::Result<wit::Error> {
                use llm::Error as E;
                let message = err.to_string();
                Ok(match err {
                    E::Db(e) | E::Billing(crate::billing::Error::Db(e)) => {
                        tracing::error!(error = %e, "database fault in a plugin's library generation");
                        return Err(wasmtime::format_err!("host storage fault"));
                    }
                    E::Secrets(e) => {
                        tracing::error!(error = %e, "the tenant's own keys could not be read in a plugin's library generation");
                        return Err(wasmtime::format_err!("host storage fault"));
                    }
                    E::Billing(_)
                    | E::Invalid(_)
                    | E::Select(SelectError::UnknownModel(_) | SelectError::Incapable { .. }) => {
                        wit::Error::InvalidRequest(message)
                    }
                    E::InsufficientCredits { .. } => wit::Error::InsufficientCredits(message),
                    E::DailyLimit { .. } => wit::Error::DailyLimitExceeded(message),
                    E::Select(_) | E::Suspended | E::Unavailable { .. } | E::Rejected { .. } => {
                        wit::Error::GenerationFailed(message)
                    }
                })
            }

            /// A library error as the guest sees it, or a trap for host faults.
            fn guest_error(err: library::Error) -> wasmtime::Result<wit::Error> {
                use library::Error as E;
                Ok(match err {
                    E::Db(e) => {
                        tracing::error!(error = %e, "database fault in a plugin's library call");
                        return Err(wasmtime::format_err!("host storage fault"));
                    }
                    E::Index(e) => {
                        tracing::error!(error = %e, "index fault in a plugin's library call");
                        return Err(wasmtime::format_err!("host index fault"));
                    }
                    E::Llm(e) => return llm_error(e),
                    other @ (E::Invalid(_)
                    | E::NotFound
                    | E::Duplicate(_)
                    | E::Forbidden(_)
                    | E::Upstream(_)) => wit::Error::InvalidRequest(other.to_string()),
                })
            }

            fn answer<T, U>(out: library::Result<T>, to_wit: impl FnOnce(T) -> U) -> Answer<U> {
                match out {
                    Ok(value) => Ok(Ok(to_wit(value))),
                    Err(err) => guest_error(err).map(Err),
                }
            }

            fn version_of(v: Option<u64>) -> Result<Option<i64>, wit::Error> {
                v.map(|v| {
                    i64::try_from(v)
                        .map_err(|_| wit::Error::InvalidRequest("version: too large".into()))
                })
                .transpose()
            }

            impl wit::Host for Capabilities {
                async fn search(&mut self, q: wit::Query) -> Answer<wit::Results> {
                    if let Err(e) = self.library_allowed() {
                        return Ok(Err(wit::Error::AfterWrite(e)));
                    }
                    let params = SearchParams {
                        q: q.text,
                        language: q.language,
                        kind: q.kind,
                        tags: q.tags,
                        min_quality: q.min_quality,
                        semantic_ratio: q.semantic_ratio,
                        limit: Some(usize::try_from(q.limit).unwrap_or(usize::MAX)),
                        explain: q.explain,
                    };
                    let out = self
                        .on_library(|lib, _, caller| async move {
                            lib.search(Some(&caller.tenant), &params).await
                        })
                        .await?;
                    answer(out, |o| wit::Results {
                        mode: if o.mode == "hybrid" {
                            wit::Mode::Hybrid
                        } else {
                            wit::Mode::Keyword
                        },
                        hits: o
                            .hits
                            .into_iter()
                            .map(|h| wit::Hit {
                                why: serde_json::to_string(&h.why)
                                    .unwrap_or_else(|_| "{}".into()),
                                score: h.score,
                                confidence: h.confidence,
                                item: item_of(h.item),
                            })
                            .collect(),
                    })
                }

                async fn get(
                    &mut self,
                    id: String,
                    version: Option<u64>,
                ) -> Answer<Option<wit::Item>> {
                    if let Err(e) = self.library_allowed() {
                        return Ok(Err(wit::Error::AfterWrite(e)));
                    }
                    let version = match version_of(version) {
                        Ok(v) => v,
                        Err(e) => return Ok(Err(e)),
                    };
                    let out = self
                        .on_library(|lib, _, caller| async move {
                            match lib.get(Some(&caller.tenant), &id, version).await {
                                Ok(item) => Ok(Some(item)),
                                Err(library::Error::NotFound) => Ok(None),
                                Err(e) => Err(e),
                            }
                        })
                        .await?;
                    answer(out, |i| i.map(item_of))
                }

                async fn record_use(&mut self, id: String) -> Answer<bool> {
                    if let Err(e) = self.library_allowed() {
                        return Ok(Err(wit::Error::AfterWrite(e)));
                    }
                    let out = self
                        .on_library(|lib, _, caller| async move {
                            match lib.record_use(&caller.tenant, &id).await {
                                Ok(_) => Ok(true),
                                Err(library::Error::NotFound) => Ok(false),
                                Err(e) => Err(e),
                            }
                        })
                        .await?;
                    answer(out, |used| used)
                }

                async fn generate(&mut self, req: wit::GenerateRequest) -> Answer<wit::Generated> {
                    if let Err(e) = self.library_allowed() {
                        return Ok(Err(wit::Error::AfterWrite(e)));
                    }
                    let values = match serde_json::from_str::<Value>(&req.values) {
                        Ok(Value::Object(map)) => map,
                        _ if req.values.trim().is_empty() => Map::new(),
                        _ => {
                            return Ok(Err(wit::Error::InvalidRequest(
                                "values: a JSON object".into(),
                            )));
                        }
                    };
                    let request = GenerateRequest {
                        request: req.request,
                        language: req.language,
                        kind: req.kind,
                        tags: req.tags,
                        values,
                        save: req.save,
                        model: req.model,
                        max_tokens: req.max_tokens,
                    };
                    let out = self
                        .on_library(|lib, gateway, caller| async move {
                            lib.generate(&gateway, &caller, request).await
                        })
                        .await?;
                    answer(out, |g| {
                        let llm = g.llm.as_ref();
                        wit::Generated {
                            served_by: if g.served_by == "library" {
                                wit::Source::Library
                            } else {
                                wit::Source::Llm
                            },
                            code: g.code,
                            confidence: g.confidence,
                            threshold: g.threshold,
                            items: g
                                .items
                                .into_iter()
                                .map(|i| wit::ItemRef {
                                    id: i.id,
                                    version: u64::try_from(i.version).unwrap_or(0),
                                    title: i.title,
                                    confidence: i.confidence,
                                })
                                .collect(),
                            unfilled: g.unfilled,
                            model: llm
                                .and_then(|l| l["model"].as_str())
                                .map(str::to_owned),
                            cost: llm
                                .and_then(|l| l["cost_micro_credits"].as_i64())
                                .map(|c| c.to_string()),
                            saved_item: g.saved_item,
                        }
                    })
                }
            }
        }
    };
}

for_version!(v0_5);
