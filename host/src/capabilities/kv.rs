//! `weft:platform/kv`.

use super::bindings::weft::platform::kv::{self, Entry, EntryPage};
use super::{Capabilities, guest_error};
use crate::storage;

impl kv::Host for Capabilities {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, storage::Error> {
        self.storage.kv_get(self.owner(), &key).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), storage::Error> {
        self.storage.kv_set(self.owner(), &key, &value).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, storage::Error> {
        self.storage.kv_delete(self.owner(), &key).await
    }

    async fn list_prefix(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<EntryPage, storage::Error> {
        let page = self
            .storage
            .kv_list_prefix(self.owner(), &prefix, cursor.as_deref(), limit)
            .await?;
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

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, storage::Error> {
        self.storage.kv_increment(self.owner(), &key, delta).await
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, storage::Error> {
        self.storage
            .kv_compare_and_swap(self.owner(), &key, expected.as_deref(), &new)
            .await
    }

    fn convert_error(&mut self, err: storage::Error) -> wasmtime::Result<kv::Error> {
        guest_error(err, |err| match err {
            storage::Error::InvalidKey(m) => Some(kv::Error::InvalidKey(m)),
            storage::Error::ValueTooLarge(n) => Some(kv::Error::ValueTooLarge(n)),
            storage::Error::QuotaExceeded(q) => Some(kv::Error::QuotaExceeded(q.to_owned())),
            storage::Error::NotAnInteger => Some(kv::Error::NotAnInteger),
            storage::Error::Overflow => Some(kv::Error::Overflow),
            storage::Error::InvalidPage(m) => Some(kv::Error::InvalidPage(m)),
            _ => None,
        })
    }
}
