//! `weft:platform/search` (0.2.0 and later): indexes private to the (tenant, plugin)
//! pair. Writes are checked at once, journaled with the call's unit of work
//! and reach the index only after the call commits.

use serde_json::Value;

use super::{Capabilities, in_tx};
use crate::search::{Error, Journaled};
use crate::storage::Owner;

impl Capabilities {
    fn owner(&self) -> Owner<'_> {
        Owner {
            tenant: &self.binding.tenant,
            plugin: &self.binding.plugin,
        }
    }

    async fn journal_write(
        &mut self,
        index: String,
        id: String,
        fields: Option<String>,
    ) -> Result<(), Error> {
        let values = match &fields {
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Some(map),
                Ok(_) => return Err(Error::InvalidDocument("not a JSON object".into())),
                Err(e) => return Err(Error::InvalidDocument(e.to_string())),
            },
            None => None,
        };
        self.services
            .search
            .check(self.owner(), &index, &id, values.as_ref())?;
        // The write belongs to the call's unit of work: journaled when it
        // commits, applied to the index after that.
        in_tx!(self, write, |_s, _u| async { Ok::<(), Error>(()) })?;
        self.search_writes.push(Journaled {
            seq: 0,
            index,
            id,
            values,
        });
        Ok(())
    }
}

/// One implementation for every WIT version that has the interface.
macro_rules! for_version {
    ($v:ident) => {
        mod $v {
        use serde_json::Value;

        use crate::capabilities::bindings::$v::weft::platform::search::{
            self as wit, Field, FieldKind, FilterOp, Hit, QuerySpec, Results, Snippet,
        };
        use crate::capabilities::{Capabilities, in_tx};
        use crate::search::{self, Error, Search};

        fn snippets(snippets: std::collections::BTreeMap<String, String>) -> Vec<Snippet> {
            snippets
                .into_iter()
                .map(|(field, html)| Snippet { field, html })
                .collect()
        }

        impl wit::Host for Capabilities {
            async fn define_index(&mut self, name: String, fields: Vec<Field>) -> Result<(), Error> {
                let spec = search::IndexSpec {
                    fields: fields
                        .into_iter()
                        .map(|f| search::FieldSpec {
                            name: f.name,
                            kind: match f.kind {
                                FieldKind::Text => search::FieldKind::Text,
                                FieldKind::Keyword => search::FieldKind::Keyword,
                                FieldKind::Integer => search::FieldKind::Integer,
                                FieldKind::Float => search::FieldKind::Float,
                            },
                        })
                        .collect(),
                };
                self.services.search.define(self.owner(), &name, &spec)
            }

            async fn upsert(&mut self, index: String, id: String, fields: String) -> Result<(), Error> {
                self.journal_write(index, id, Some(fields)).await
            }

            async fn delete(&mut self, index: String, id: String) -> Result<(), Error> {
                self.journal_write(index, id, None).await
            }

            async fn query(&mut self, index: String, q: QuerySpec) -> Result<Results, Error> {
                let request = search::SearchRequest {
                    query: q.query,
                    filters: q
                        .filters
                        .into_iter()
                        .map(|f| {
                            Ok(search::Filter {
                                field: f.field,
                                op: match f.op {
                                    FilterOp::Eq => search::FilterOp::Eq,
                                    FilterOp::Lt => search::FilterOp::Lt,
                                    FilterOp::Lte => search::FilterOp::Lte,
                                    FilterOp::Gt => search::FilterOp::Gt,
                                    FilterOp::Gte => search::FilterOp::Gte,
                                },
                                value: serde_json::from_str(&f.value).map_err(|e| {
                                    Error::InvalidQuery(format!("filter value is not JSON: {e}"))
                                })?,
                            })
                        })
                        .collect::<Result<_, Error>>()?,
                    limit: q.limit,
                    offset: q.offset,
                    highlight: q.highlight,
                };
                let page = self
                    .services
                    .search
                    .search(self.owner(), &index, &request)?;
                Ok(Results {
                    total: page.total,
                    hits: page
                        .hits
                        .into_iter()
                        .map(|h| Hit {
                            id: h.id,
                            score: h.score,
                            fields: Value::Object(h.fields).to_string(),
                            snippets: snippets(h.snippets),
                        })
                        .collect(),
                })
            }

            async fn drop_index(&mut self, name: String) -> Result<bool, Error> {
                let existed = self.services.search.drop_index(self.owner(), &name)?;
                // Its journal entries go in the unit of work: a transaction of its
                // own would wait for the write lock this call may hold. Writes of
                // this call to the dropped index are forgotten with them.
                self.search_writes.retain(|w| w.index != name);
                in_tx!(self, write, |_s, u| async {
                    let (tx, owner) = u.write_parts().await?;
                    Search::forget_index(tx, owner, &name).await
                })?;
                Ok(existed)
            }

            fn convert_error(&mut self, err: Error) -> wasmtime::Result<wit::Error> {
                let message = err.to_string();
                Ok(match err {
                    Error::InvalidName => wit::Error::InvalidName(message),
                    Error::InvalidSpec(_) => wit::Error::InvalidFields(message),
                    Error::SpecMismatch => wit::Error::FieldsMismatch(message),
                    Error::UnknownIndex => wit::Error::UnknownIndex(message),
                    Error::InvalidDocument(_) => wit::Error::InvalidDocument(message),
                    Error::InvalidQuery(_) => wit::Error::InvalidQuery(message),
                    Error::Internal(detail) => {
                        tracing::error!(error = %detail, "search fault during plugin call");
                        return Err(wasmtime::format_err!("host storage fault"));
                    }
                    Error::Storage(e) => return crate::capabilities::guest_error(e, |_| None),
                })
            }
        }
        }
    };
}

for_version!(v0_2);
for_version!(v0_3);
for_version!(v0_4);
for_version!(v0_5);
