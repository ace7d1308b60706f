//! A plugin call's unit of work: one write transaction, and what the call
//! wrote but has not yet sent to the database.
//!
//! Every statement costs a round trip to the database (on SQLite through a
//! worker thread: tens of microseconds each, all inside the single write
//! lock), so the unit defers its writes. It knows each row it touched —
//! what the database holds and what the call sees — answers reads of those
//! rows itself, and at [`Storage::flush`] writes every change as a few
//! multi-row statements and the quota delta as one. A scan (a prefix list,
//! a query) flushes first, so it sees the call's own writes.
//!
//! Several calls can share one unit (the deliveries of a batch, committed
//! together): each runs in a savepoint. The unit remembers how every row
//! it changes looked before the call, and takes a database savepoint only
//! if a statement of the call writes to the database; rolling the call
//! back restores both.
//!
//! Quotas stay exact where it matters: a write that would grow usage past
//! a quota is refused when it is made, against the usage read under the
//! lock plus the unit's pending changes. A `set` of a key the unit has not
//! read counts as a new key of its full size (an upper bound); the flush
//! reads the real sizes of those keys in one statement before it charges.
//!
//! The unit also carries the outbox's counters of its tenant
//! ([`crate::messaging::Counts`]): messages are counted against the
//! tenant's limits in memory and the counts written with the rest.

use std::collections::HashMap;

use super::docs::Document;
use super::{Error, Owner, Result, Storage, StorageUsage, len_i64};
use crate::db::{Engine, Exec, Stmt, UnitTx, chunks, placeholders, tuples};
use crate::ids::{TenantId, now_ms};
use crate::messaging::Counts;

/// What a unit knows of one row.
#[derive(Debug, Clone)]
pub(super) struct Slot<T> {
    /// The row's size in the database: `None` not known, `Some(None)` absent.
    pub stored: Option<Option<i64>>,
    /// What the call sees: `None` not known, `Some(None)` absent.
    pub current: Option<Option<T>>,
    /// `current` is the call's change, not yet in the database.
    pub dirty: bool,
}

impl<T> Slot<T> {
    /// A row as read from the database.
    pub fn read(value: Option<T>, size: Option<i64>) -> Self {
        Self {
            stored: Some(size),
            current: Some(value),
            dirty: false,
        }
    }
}

/// Growth in keys and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Delta {
    keys: i64,
    bytes: i64,
}

impl Delta {
    fn plus(self, other: Delta) -> Delta {
        Delta {
            keys: self.keys + other.keys,
            bytes: self.bytes + other.bytes,
        }
    }

    fn minus(self, other: Delta) -> Delta {
        Delta {
            keys: self.keys - other.keys,
            bytes: self.bytes - other.bytes,
        }
    }
}

/// What a slot adds to the tenant's usage once written: exact when the
/// stored size is known, an upper bound (a new row) when it is not.
fn contribution(stored: Option<Option<i64>>, current: Option<i64>, dirty: bool) -> Delta {
    if !dirty {
        return Delta::default();
    }
    match (stored, current) {
        (Some(Some(old)), Some(new)) => Delta {
            keys: 0,
            bytes: new - old,
        },
        (Some(None) | None, Some(new)) => Delta {
            keys: 1,
            bytes: new,
        },
        (Some(Some(old)), None) => Delta {
            keys: -1,
            bytes: -old,
        },
        (Some(None) | None, None) => Delta::default(),
    }
}

fn kv_size(key: &str, value: &[u8]) -> i64 {
    len_i64(key.len() + value.len())
}

fn doc_size(collection: &str, doc: &Document) -> i64 {
    len_i64(collection.len() + doc.id.len() + doc.body.len())
}

type DocKey = (String, String);

/// How a unit looked when the call now running in it began.
#[derive(Debug, Default)]
struct Savepoint {
    /// The slots the call touched, as they were (`None`: absent).
    kv: HashMap<String, Option<Slot<Vec<u8>>>>,
    docs: HashMap<DocKey, Option<Slot<Document>>>,
    pending: Delta,
    usage: Option<StorageUsage>,
    outbox: Counts,
    /// A database savepoint was taken: a statement of the call wrote.
    in_db: bool,
}

/// One plugin call's writes: see the module docs.
#[derive(Debug)]
pub struct UnitOfWork {
    tx: UnitTx,
    tenant: TenantId,
    plugin: String,
    /// Usage and quotas as of the lock, once read.
    usage: Option<StorageUsage>,
    /// What the unit's changes add to `usage`, not yet charged.
    pending: Delta,
    kv: HashMap<String, Slot<Vec<u8>>>,
    docs: HashMap<DocKey, Slot<Document>>,
    /// The outbox's counters of the tenant, written at the flush.
    outbox: Counts,
    savepoint: Option<Savepoint>,
}

impl UnitOfWork {
    pub(super) fn new(tx: UnitTx, owner: Owner<'_>, usage: Option<StorageUsage>) -> Self {
        Self {
            tx,
            tenant: owner.tenant.clone(),
            plugin: owner.plugin.to_owned(),
            usage,
            pending: Delta::default(),
            kv: HashMap::new(),
            docs: HashMap::new(),
            outbox: Counts::default(),
            savepoint: None,
        }
    }

    /// What the unit knows of `key`.
    pub(super) fn kv_slot(&self, key: &str) -> Option<&Slot<Vec<u8>>> {
        self.kv.get(key)
    }

    /// Replaces what the unit knows of `key` (remembered for a rollback).
    pub(super) fn set_kv_slot(&mut self, key: &str, slot: Slot<Vec<u8>>) {
        self.remember_kv(key);
        self.kv.insert(key.to_owned(), slot);
    }

    /// What the unit knows of document `id` of `collection`.
    pub(super) fn doc_slot(&self, collection: &str, id: &str) -> Option<&Slot<Document>> {
        self.docs.get(&(collection.to_owned(), id.to_owned()))
    }

    /// Replaces what the unit knows of a document (remembered for a rollback).
    pub(super) fn set_doc_slot(&mut self, collection: &str, id: &str, slot: Slot<Document>) {
        let key = (collection.to_owned(), id.to_owned());
        self.remember_doc(&key);
        self.docs.insert(key, slot);
    }

    fn remember_kv(&mut self, key: &str) {
        if let Some(sp) = &mut self.savepoint
            && !sp.kv.contains_key(key)
        {
            sp.kv.insert(key.to_owned(), self.kv.get(key).cloned());
        }
    }

    fn remember_doc(&mut self, key: &DocKey) {
        if let Some(sp) = &mut self.savepoint
            && !sp.docs.contains_key(key)
        {
            sp.docs.insert(key.clone(), self.docs.get(key).cloned());
        }
    }

    /// Starts the savepoint of a call that shares this unit.
    pub fn begin_savepoint(&mut self) {
        self.savepoint = Some(Savepoint {
            pending: self.pending,
            usage: self.usage,
            outbox: self.outbox.clone(),
            ..Savepoint::default()
        });
    }

    /// Keeps the changes of the call since [`Self::begin_savepoint`].
    pub async fn release_savepoint(&mut self) -> Result<()> {
        if let Some(sp) = self.savepoint.take()
            && sp.in_db
        {
            self.tx
                .execute(Stmt::new("RELEASE SAVEPOINT weft_call"))
                .await?;
        }
        Ok(())
    }

    /// Undoes the changes of the call since [`Self::begin_savepoint`], in
    /// the unit and in the database.
    pub async fn rollback_savepoint(&mut self) -> Result<()> {
        let Some(sp) = self.savepoint.take() else {
            return Ok(());
        };
        if sp.in_db {
            self.tx
                .execute(Stmt::new("ROLLBACK TO SAVEPOINT weft_call"))
                .await?;
            self.tx
                .execute(Stmt::new("RELEASE SAVEPOINT weft_call"))
                .await?;
        }
        for (key, slot) in sp.kv {
            match slot {
                Some(slot) => self.kv.insert(key, slot),
                None => self.kv.remove(&key),
            };
        }
        for (key, slot) in sp.docs {
            match slot {
                Some(slot) => self.docs.insert(key, slot),
                None => self.docs.remove(&key),
            };
        }
        self.pending = sp.pending;
        self.usage = sp.usage;
        self.outbox = sp.outbox;
        Ok(())
    }

    /// The transaction, for a statement that writes: inside a call's
    /// savepoint the database savepoint is taken first.
    pub async fn write_parts(&mut self) -> Result<(&mut UnitTx, Owner<'_>)> {
        if let Some(sp) = &mut self.savepoint
            && !sp.in_db
        {
            self.tx.execute(Stmt::new("SAVEPOINT weft_call")).await?;
            sp.in_db = true;
        }
        Ok(self.parts())
    }

    /// Whose data this unit writes.
    pub fn owner(&self) -> Owner<'_> {
        Owner {
            tenant: &self.tenant,
            plugin: &self.plugin,
        }
    }

    /// The transaction and whose data it reads, borrowed together (for a
    /// statement that writes, [`Self::write_parts`]).
    pub fn parts(&mut self) -> (&mut UnitTx, Owner<'_>) {
        (
            &mut self.tx,
            Owner {
                tenant: &self.tenant,
                plugin: &self.plugin,
            },
        )
    }

    /// The transaction with the outbox's counters, for a message queued
    /// in this unit ([`crate::messaging`]).
    pub fn outbox_parts(&mut self) -> (&mut UnitTx, &mut Counts, Owner<'_>) {
        (
            &mut self.tx,
            &mut self.outbox,
            Owner {
                tenant: &self.tenant,
                plugin: &self.plugin,
            },
        )
    }

    /// The stored size of a document the unit knows of.
    pub(super) fn doc_stored(&self, collection: &str, id: &str) -> Option<Option<i64>> {
        self.docs
            .get(&(collection.to_owned(), id.to_owned()))
            .and_then(|s| s.stored)
    }

    /// The transaction, to commit. Flush first.
    pub fn into_tx(self) -> UnitTx {
        self.tx
    }

    /// True if nothing is waiting to be flushed.
    pub fn is_flushed(&self) -> bool {
        self.pending == Delta::default()
            && self.kv.values().all(|s| !s.dirty)
            && self.docs.values().all(|s| !s.dirty)
            && self.outbox.is_written()
    }
}

impl Storage {
    /// Begins a plugin call's unit of work for `owner`: the write lock
    /// (SQLite's, or the tenant's storage row on PostgreSQL), so every
    /// write of a tenant is serialized and read-modify-write never loses
    /// an update; on PostgreSQL the same statement reads the usage.
    pub async fn begin_unit(&self, owner: Owner<'_>) -> Result<UnitOfWork> {
        let mut tx = self
            .db
            .begin_unit(crate::db::Scope::Tenant(owner.tenant))
            .await?;
        let usage = if self.db.engine() == Engine::Postgres {
            Some(self.usage_locked(&mut tx, owner.tenant).await?)
        } else {
            None
        };
        Ok(UnitOfWork::new(tx, owner, usage))
    }

    async fn usage_locked(&self, tx: &mut UnitTx, tenant: &TenantId) -> Result<StorageUsage> {
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT s.keys, s.bytes, COALESCE(t.quota_keys, $2) AS quota_keys, \
                     COALESCE(t.quota_bytes, $3) AS quota_bytes \
                     FROM tenant_storage s JOIN tenants t ON t.id = s.tenant_id WHERE s.tenant_id = $1 \
                     FOR UPDATE OF s",
                )
                .bind(tenant.as_str())
                .bind(self.quotas.keys)
                .bind(self.quotas.bytes),
            )
            .await?;
        Ok(match row {
            Some(row) => StorageUsage {
                keys: row.get(0)?,
                bytes: row.get(1)?,
                quota_keys: row.get(2)?,
                quota_bytes: row.get(3)?,
            },
            None => StorageUsage {
                keys: 0,
                bytes: 0,
                quota_keys: self.quotas.keys,
                quota_bytes: self.quotas.bytes,
            },
        })
    }

    /// Makes `new` the unit's slot for `key`, unless that grows usage past
    /// a quota. A blind write refused on its upper bound is checked again
    /// with the key's real stored size.
    pub(super) async fn put_kv_slot(
        &self,
        unit: &mut UnitOfWork,
        key: &str,
        mut new: Slot<Vec<u8>>,
    ) -> Result<()> {
        match self.try_put_kv_slot(unit, key, &new).await {
            Err(Error::QuotaExceeded(_)) if new.stored.is_none() => {
                let (tx, owner) = unit.parts();
                new.stored = Some(self.kv_stored_len(tx, owner, key).await?);
                self.try_put_kv_slot(unit, key, &new).await
            }
            other => other,
        }
    }

    async fn try_put_kv_slot(
        &self,
        unit: &mut UnitOfWork,
        key: &str,
        new: &Slot<Vec<u8>>,
    ) -> Result<()> {
        let size = |s: &Slot<Vec<u8>>| -> Option<i64> {
            s.current
                .as_ref()
                .and_then(|c| c.as_ref().map(|v| kv_size(key, v)))
        };
        let old = unit.kv_slot(key);
        let before = old.map_or(Delta::default(), |s| {
            contribution(s.stored, size(s), s.dirty)
        });
        let after = contribution(new.stored, size(new), new.dirty);
        self.admit(unit, after.minus(before)).await?;
        unit.set_kv_slot(key, new.clone());
        Ok(())
    }

    /// Makes `new` the unit's slot for document `id` of `collection`,
    /// unless that grows usage past a quota.
    pub(super) async fn put_doc_slot(
        &self,
        unit: &mut UnitOfWork,
        collection: &str,
        id: &str,
        new: Slot<Document>,
    ) -> Result<()> {
        let size = |s: &Slot<Document>| -> Option<i64> {
            s.current
                .as_ref()
                .and_then(|c| c.as_ref().map(|d| doc_size(collection, d)))
        };
        let old = unit.doc_slot(collection, id);
        let before = old.map_or(Delta::default(), |s| {
            contribution(s.stored, size(s), s.dirty)
        });
        let after = contribution(new.stored, size(&new), new.dirty);
        self.admit(unit, after.minus(before)).await?;
        unit.set_doc_slot(collection, id, new);
        Ok(())
    }

    /// Adds `delta` to the unit's pending usage, refusing growth past a
    /// quota (shrinking is always allowed).
    async fn admit(&self, unit: &mut UnitOfWork, delta: Delta) -> Result<()> {
        if delta.keys > 0 || delta.bytes > 0 {
            if unit.usage.is_none() {
                let tenant = unit.tenant.clone();
                unit.usage = Some(self.usage_in(&mut unit.tx, &tenant).await?);
            }
            let usage = unit.usage.unwrap_or(StorageUsage {
                keys: 0,
                bytes: 0,
                quota_keys: self.quotas.keys,
                quota_bytes: self.quotas.bytes,
            });
            let total = unit.pending.plus(delta);
            if delta.keys > 0 && usage.keys + total.keys > usage.quota_keys {
                return Err(Error::QuotaExceeded("keys"));
            }
            if delta.bytes > 0 && usage.bytes + total.bytes > usage.quota_bytes {
                return Err(Error::QuotaExceeded("bytes"));
            }
        }
        unit.pending = unit.pending.plus(delta);
        Ok(())
    }

    /// Writes the unit's changes and charges their usage, in its
    /// transaction; the unit keeps what it knows of the rows.
    pub async fn flush(&self, unit: &mut UnitOfWork) -> Result<()> {
        if unit.is_flushed() {
            return Ok(());
        }
        unit.write_parts().await?;
        // Every slot the flush changes is remembered, so rolling a shared
        // call back also re-dirties what the flush wrote for earlier calls.
        let dirty_kv: Vec<String> = (unit.kv.iter())
            .filter(|(_, s)| s.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &dirty_kv {
            unit.remember_kv(key);
        }
        let dirty_docs: Vec<DocKey> = (unit.docs.iter())
            .filter(|(_, s)| s.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &dirty_docs {
            unit.remember_doc(key);
        }
        self.resolve_blind_sizes(unit).await?;
        self.flush_kv(unit).await?;
        self.flush_docs(unit).await?;
        unit.outbox.write(&mut unit.tx, &unit.tenant).await?;
        let delta = unit.pending;
        if delta != Delta::default() {
            let done = unit
                .tx
                .execute(
                    Stmt::new(
                        "UPDATE tenant_storage SET keys = keys + $2, bytes = bytes + $3 WHERE tenant_id = $1",
                    )
                    .bind(unit.tenant.as_str())
                    .bind(delta.keys)
                    .bind(delta.bytes),
                )
                .await?;
            if done != 1 {
                return Err(Error::QuotaExceeded("keys"));
            }
            if let Some(usage) = &mut unit.usage {
                usage.keys += delta.keys;
                usage.bytes += delta.bytes;
            }
            unit.pending = Delta::default();
        }
        Ok(())
    }

    /// Reads the stored sizes of keys the unit wrote without reading, and
    /// makes their pending usage exact.
    async fn resolve_blind_sizes(&self, unit: &mut UnitOfWork) -> Result<()> {
        let blind: Vec<String> = unit
            .kv
            .iter()
            .filter(|(_, s)| s.dirty && s.stored.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let len = self.blob_len();
        for chunk in chunks(&blind) {
            let rows = chunk.len();
            let sql = format!(
                "SELECT key, {len}(key) + {len}(value) AS size FROM kv_entries \
                 WHERE tenant_id = $1 AND plugin = $2 AND key IN ({})",
                placeholders(3, rows, 1)
            );
            let mut query = Stmt::new(sql)
                .bind(unit.tenant.as_str())
                .bind(unit.plugin.as_str());
            for key in chunk {
                query = query.bind(key.as_bytes());
            }
            let found = unit.tx.fetch_all(query).await?;
            let mut sizes: HashMap<String, i64> = HashMap::new();
            for row in &found {
                let key: Vec<u8> = row.get(0)?;
                sizes.insert(String::from_utf8_lossy(&key).into_owned(), row.get(1)?);
            }
            for key in chunk {
                let Some(slot) = unit.kv.get_mut(key) else {
                    continue;
                };
                let new = slot
                    .current
                    .as_ref()
                    .and_then(|c| c.as_ref().map(|v| kv_size(key, v)));
                let before = contribution(slot.stored, new, slot.dirty);
                slot.stored = Some(sizes.get(key).copied());
                let after = contribution(slot.stored, new, slot.dirty);
                unit.pending = unit.pending.plus(after.minus(before));
            }
        }
        Ok(())
    }

    async fn flush_kv(&self, unit: &mut UnitOfWork) -> Result<()> {
        let mut upserts: Vec<(String, Vec<u8>)> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        for (key, slot) in unit.kv.iter_mut().filter(|(_, s)| s.dirty) {
            match &slot.current {
                Some(Some(value)) => {
                    upserts.push((key.clone(), value.clone()));
                    slot.stored = Some(Some(kv_size(key, value)));
                }
                Some(None) => {
                    if matches!(slot.stored, Some(Some(_))) {
                        deletes.push(key.clone());
                    }
                    slot.stored = Some(None);
                }
                None => {}
            }
            slot.dirty = false;
        }
        let now = now_ms();
        for chunk in chunks(&upserts) {
            let rows = chunk.len();
            let sql = format!(
                "INSERT INTO kv_entries (tenant_id, plugin, key, value, updated_at) VALUES {} \
                 ON CONFLICT (tenant_id, plugin, key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
                tuples(rows, 5, &[])
            );
            let mut query = Stmt::new(sql);
            for (key, value) in chunk {
                query = query
                    .bind(unit.tenant.as_str())
                    .bind(unit.plugin.as_str())
                    .bind(key.as_bytes())
                    .bind(value.as_slice())
                    .bind(now);
            }
            unit.tx.execute(query).await?;
        }
        for chunk in chunks(&deletes) {
            let rows = chunk.len();
            let sql = format!(
                "DELETE FROM kv_entries WHERE tenant_id = $1 AND plugin = $2 AND key IN ({})",
                placeholders(3, rows, 1)
            );
            let mut query = Stmt::new(sql)
                .bind(unit.tenant.as_str())
                .bind(unit.plugin.as_str());
            for key in chunk {
                query = query.bind(key.as_bytes());
            }
            unit.tx.execute(query).await?;
        }
        Ok(())
    }

    async fn flush_docs(&self, unit: &mut UnitOfWork) -> Result<()> {
        let mut upserts: Vec<(String, Document)> = Vec::new();
        let mut deletes: Vec<DocKey> = Vec::new();
        for ((collection, id), slot) in unit.docs.iter_mut().filter(|(_, s)| s.dirty) {
            match &slot.current {
                Some(Some(doc)) => {
                    slot.stored = Some(Some(doc_size(collection, doc)));
                    upserts.push((collection.clone(), doc.clone()));
                }
                Some(None) => {
                    if matches!(slot.stored, Some(Some(_))) {
                        deletes.push((collection.clone(), id.clone()));
                    }
                    slot.stored = Some(None);
                }
                None => {}
            }
            slot.dirty = false;
        }
        let cast: &[(usize, &str)] = if self.db.engine() == Engine::Postgres {
            &[(4, "::jsonb")]
        } else {
            &[]
        };
        for chunk in chunks(&upserts) {
            let rows = chunk.len();
            let sql = format!(
                "INSERT INTO documents (tenant_id, plugin, collection, id, body, size, version, \
                 created_at, updated_at) VALUES {} \
                 ON CONFLICT (tenant_id, plugin, collection, id) DO UPDATE SET body = excluded.body, \
                 size = excluded.size, version = excluded.version, updated_at = excluded.updated_at",
                tuples(rows, 9, cast)
            );
            let mut query = Stmt::new(sql);
            for (collection, doc) in chunk {
                query = query
                    .bind(unit.tenant.as_str())
                    .bind(unit.plugin.as_str())
                    .bind(collection.as_str())
                    .bind(doc.id.as_str())
                    .bind(doc.body.as_str())
                    .bind(doc_size(collection, doc))
                    .bind(i64::try_from(doc.version).unwrap_or(i64::MAX))
                    .bind(doc.created_at)
                    .bind(doc.updated_at);
            }
            unit.tx.execute(query).await?;
        }
        for chunk in chunks(&deletes) {
            let rows = chunk.len();
            let pairs = (0..rows)
                .map(|i| format!("(collection = ${} AND id = ${})", 3 + 2 * i, 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" OR ");
            let sql =
                format!("DELETE FROM documents WHERE tenant_id = $1 AND plugin = $2 AND ({pairs})");
            let mut query = Stmt::new(sql)
                .bind(unit.tenant.as_str())
                .bind(unit.plugin.as_str());
            for (collection, id) in chunk {
                query = query.bind(collection.as_str()).bind(id.as_str());
            }
            unit.tx.execute(query).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_are_exact_when_known_and_bounded_when_not() {
        let c = contribution;
        assert_eq!(
            c(Some(Some(10)), Some(15), true),
            Delta { keys: 0, bytes: 5 }
        );
        assert_eq!(c(Some(None), Some(15), true), Delta { keys: 1, bytes: 15 });
        assert_eq!(c(None, Some(15), true), Delta { keys: 1, bytes: 15 });
        assert_eq!(
            c(Some(Some(10)), None, true),
            Delta {
                keys: -1,
                bytes: -10
            }
        );
        assert_eq!(c(Some(None), None, true), Delta::default());
        assert_eq!(c(Some(Some(10)), Some(99), false), Delta::default());
    }
}
