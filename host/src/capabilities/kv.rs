//! `weft:platform/kv`.
//!
//! One implementation for every WIT version that has the interface (the
//! versions' types are distinct but identical in shape).

macro_rules! for_version {
    ($v:ident) => {
        pub mod $v {
            use crate::capabilities::bindings::$v::weft::platform::kv::{self, Entry, EntryPage};
            use crate::capabilities::{Capabilities, guest_error, in_tx};
            use crate::storage;

            impl kv::Host for Capabilities {
                async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, storage::Error> {
                    in_tx!(self, read, |s, r| s.kv_get(r, &key))
                }

                async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), storage::Error> {
                    in_tx!(self, write, |s, u| s.kv_set(u, &key, &value))
                }

                async fn delete(&mut self, key: String) -> Result<bool, storage::Error> {
                    in_tx!(self, write, |s, u| s.kv_delete(u, &key))
                }

                async fn list_prefix(
                    &mut self,
                    prefix: String,
                    cursor: Option<String>,
                    limit: u32,
                ) -> Result<EntryPage, storage::Error> {
                    let page = in_tx!(self, read, |s, r| s.kv_list_prefix(
                        r,
                        &prefix,
                        cursor.as_deref(),
                        limit
                    ))?;
                    Ok(EntryPage {
                        entries: page
                            .entries
                            .into_iter()
                            .map(|e| Entry {
                                key: e.key,
                                value: e.value,
                            })
                            .collect(),
                        next_cursor: page.next_cursor,
                    })
                }

                async fn increment(
                    &mut self,
                    key: String,
                    delta: i64,
                ) -> Result<i64, storage::Error> {
                    in_tx!(self, write, |s, u| s.kv_increment(u, &key, delta))
                }

                async fn compare_and_swap(
                    &mut self,
                    key: String,
                    expected: Option<Vec<u8>>,
                    new: Vec<u8>,
                ) -> Result<bool, storage::Error> {
                    in_tx!(self, write, |s, u| s.kv_compare_and_swap(
                        u,
                        &key,
                        expected.as_deref(),
                        &new
                    ))
                }

                fn convert_error(&mut self, err: storage::Error) -> wasmtime::Result<kv::Error> {
                    guest_error(err, |err| match err {
                        storage::Error::InvalidKey(m) => Some(kv::Error::InvalidKey(m)),
                        storage::Error::ValueTooLarge(n) => Some(kv::Error::ValueTooLarge(n)),
                        storage::Error::QuotaExceeded(q) => {
                            Some(kv::Error::QuotaExceeded(q.to_owned()))
                        }
                        storage::Error::NotAnInteger => Some(kv::Error::NotAnInteger),
                        storage::Error::Overflow => Some(kv::Error::Overflow),
                        storage::Error::InvalidPage(m) => Some(kv::Error::InvalidPage(m)),
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
