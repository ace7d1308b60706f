//! `weft:platform/docs`.
//!
//! One implementation for every WIT version that has the interface (the
//! versions' types are distinct but identical in shape).

macro_rules! for_version {
    ($v:ident) => {
        pub mod $v {
            use crate::capabilities::bindings::$v::weft::platform::docs::{
                self, Document, Op, Page, QuerySpec as Query,
            };
            use crate::capabilities::{Capabilities, guest_error, in_tx};
            use crate::storage::{self, FilterOp};

            fn document(d: storage::Document) -> Document {
                Document {
                    id: d.id,
                    body: d.body,
                    version: d.version,
                    created_at: d.created_at,
                    updated_at: d.updated_at,
                }
            }

            impl docs::Host for Capabilities {
                async fn put(
                    &mut self,
                    collection: String,
                    id: String,
                    body: String,
                    if_version: Option<u64>,
                ) -> Result<Document, storage::Error> {
                    in_tx!(self, write, |s, u| s.docs_put(
                        u,
                        &collection,
                        &id,
                        &body,
                        if_version
                    ))
                    .map(document)
                }

                async fn get(
                    &mut self,
                    collection: String,
                    id: String,
                ) -> Result<Option<Document>, storage::Error> {
                    Ok(in_tx!(self, read, |s, r| s.docs_get(r, &collection, &id))?.map(document))
                }

                async fn delete(
                    &mut self,
                    collection: String,
                    id: String,
                ) -> Result<bool, storage::Error> {
                    in_tx!(self, write, |s, u| s.docs_delete(u, &collection, &id))
                }

                async fn query(
                    &mut self,
                    collection: String,
                    q: Query,
                ) -> Result<Page, storage::Error> {
                    let query = storage::Query {
                        filters: q
                            .filters
                            .into_iter()
                            .map(|f| storage::Filter {
                                field: f.field,
                                op: match f.op {
                                    Op::Eq => FilterOp::Eq,
                                    Op::Ne => FilterOp::Ne,
                                    Op::Lt => FilterOp::Lt,
                                    Op::Lte => FilterOp::Lte,
                                    Op::Gt => FilterOp::Gt,
                                    Op::Gte => FilterOp::Gte,
                                },
                                value: f.value,
                            })
                            .collect(),
                        order: q.order.map(|o| storage::Order {
                            field: o.field,
                            descending: o.descending,
                        }),
                        limit: q.limit,
                        cursor: q.cursor,
                    };
                    let page = in_tx!(self, read, |s, r| s.docs_query(r, &collection, &query))?;
                    Ok(Page {
                        documents: page.documents.into_iter().map(document).collect(),
                        next_cursor: page.next_cursor,
                    })
                }

                fn convert_error(&mut self, err: storage::Error) -> wasmtime::Result<docs::Error> {
                    guest_error(err, |err| match err {
                        storage::Error::InvalidCollection(m) => {
                            Some(docs::Error::InvalidCollection(m))
                        }
                        storage::Error::InvalidId(m) => Some(docs::Error::InvalidId(m)),
                        storage::Error::InvalidJson(m) => Some(docs::Error::InvalidJson(m)),
                        storage::Error::DocumentTooLarge(n) => Some(docs::Error::TooLarge(n)),
                        storage::Error::VersionConflict(v) => Some(docs::Error::VersionConflict(v)),
                        storage::Error::QuotaExceeded(q) => {
                            Some(docs::Error::QuotaExceeded(if q == "keys" {
                                "documents".into()
                            } else {
                                q.to_owned()
                            }))
                        }
                        storage::Error::InvalidQuery(m) => Some(docs::Error::InvalidQuery(m)),
                        _ => None,
                    })
                }
            }
        }
    };
}

for_version!(v0_1);
for_version!(v0_2);
for_version!(v0_3);
for_version!(v0_4);
for_version!(v0_5);
