//! Key-value entries of one (tenant, plugin).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::unit::{Slot, UnitOfWork};
use super::{Error, Owner, Reader, Result, Storage, len_i64};
use crate::db::{Exec, Stmt};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Most entries in one page.
pub const MAX_PAGE: u32 = 1000;
const MAX_CURSOR_CHARS: usize = 1024;

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
}

/// A page of entries in key (byte) order.
#[derive(Debug, Clone)]
pub struct EntryPage {
    pub entries: Vec<Entry>,
    pub next_cursor: Option<String>,
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.contains('\0') {
        return Err(Error::InvalidKey(format!(
            "keys are 1-{MAX_KEY_BYTES} bytes without NUL"
        )));
    }
    Ok(())
}

/// The smallest byte string greater than every string that starts with
/// `prefix`, or `None` if there is none (the prefix is all 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The value under `key` as seen by `tx`.
async fn current_value(tx: &mut impl Exec, owner: Owner<'_>, key: &str) -> Result<Option<Vec<u8>>> {
    let row = tx
        .fetch_optional(
            Stmt::new(
                "SELECT value FROM kv_entries WHERE tenant_id = $1 AND plugin = $2 AND key = $3",
            )
            .bind(owner.tenant.as_str())
            .bind(owner.plugin)
            .bind(key.as_bytes()),
        )
        .await?;
    Ok(row.map(|r| r.get(0)).transpose()?)
}

impl Storage {
    /// The value under `key`.
    pub async fn kv_get(&self, reader: Reader<'_>, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match reader {
            Reader::Tx(tx, owner) => current_value(tx, owner, key).await,
            Reader::Unit(unit) => self.kv_current(unit, key).await,
        }
    }

    /// What the unit's call sees under `key`, read once from the database.
    async fn kv_current(&self, unit: &mut UnitOfWork, key: &str) -> Result<Option<Vec<u8>>> {
        if let Some(current) = unit.kv_slot(key).and_then(|s| s.current.clone()) {
            return Ok(current);
        }
        let (tx, owner) = unit.parts();
        let value = current_value(tx, owner, key).await?;
        let size = value.as_ref().map(|v| len_i64(key.len() + v.len()));
        unit.set_kv_slot(key, Slot::read(value.clone(), size));
        Ok(value)
    }

    /// Stores `value` under `key` (written at the unit's flush).
    pub async fn kv_set(&self, unit: &mut UnitOfWork, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        self.check_value(value)?;
        self.kv_write(unit, key, value).await
    }

    fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() as u64 > self.quotas.max_value_bytes {
            return Err(Error::ValueTooLarge(self.quotas.max_value_bytes));
        }
        Ok(())
    }

    async fn kv_write(&self, unit: &mut UnitOfWork, key: &str, value: &[u8]) -> Result<()> {
        // The stored size, if known; a key never read is written blind and
        // counted as new until the flush reads its size.
        let stored = unit.kv_slot(key).and_then(|s| s.stored);
        let slot = Slot {
            stored,
            current: Some(Some(value.to_vec())),
            dirty: true,
        };
        self.put_kv_slot(unit, key, slot).await
    }

    /// Removes `key`; true if it existed.
    pub async fn kv_delete(&self, unit: &mut UnitOfWork, key: &str) -> Result<bool> {
        check_key(key)?;
        let stored = match unit.kv_slot(key).and_then(|s| s.stored) {
            Some(stored) => stored,
            None => {
                let (tx, owner) = unit.parts();
                self.kv_stored_len(tx, owner, key).await?
            }
        };
        let existed = match unit.kv_slot(key).and_then(|s| s.current.as_ref()) {
            Some(current) => current.is_some(),
            None => stored.is_some(),
        };
        let slot = Slot {
            stored: Some(stored),
            current: Some(None),
            dirty: stored.is_some(),
        };
        self.put_kv_slot(unit, key, slot).await?;
        Ok(existed)
    }

    pub(super) async fn kv_stored_len(
        &self,
        tx: &mut impl Exec,
        owner: Owner<'_>,
        key: &str,
    ) -> Result<Option<i64>> {
        let row = tx
            .fetch_optional(
                Stmt::new(format!(
                    "SELECT {}(key) + {}(value) FROM kv_entries WHERE tenant_id = $1 AND plugin = $2 AND key = $3",
                    self.blob_len(),
                    self.blob_len()
                ))
                .bind(owner.tenant.as_str())
                .bind(owner.plugin)
                .bind(key.as_bytes()),
            )
            .await?;
        Ok(row.map(|r| r.get(0)).transpose()?)
    }

    /// Entries whose key starts with `prefix`, after `cursor`, at most
    /// `limit`; in a unit, its writes so far are flushed first.
    pub async fn kv_list_prefix(
        &self,
        reader: Reader<'_>,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<EntryPage> {
        match reader {
            Reader::Tx(tx, owner) => {
                self.kv_list_prefix_tx(tx, owner, prefix, cursor, limit)
                    .await
            }
            Reader::Unit(unit) => {
                self.flush(unit).await?;
                let (tx, owner) = unit.parts();
                self.kv_list_prefix_tx(tx, owner, prefix, cursor, limit)
                    .await
            }
        }
    }

    /// Entries whose key starts with `prefix`, after `cursor`, at most `limit`.
    async fn kv_list_prefix_tx(
        &self,
        tx: &mut impl Exec,
        owner: Owner<'_>,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<EntryPage> {
        if limit == 0 {
            return Err(Error::InvalidPage("limit must be at least 1".into()));
        }
        if prefix.len() > MAX_KEY_BYTES {
            return Err(Error::InvalidKey(format!(
                "prefixes are at most {MAX_KEY_BYTES} bytes"
            )));
        }
        let limit = limit.min(MAX_PAGE);
        let after =
            match cursor {
                None => None,
                Some(c) if c.len() <= MAX_CURSOR_CHARS => Some(B64.decode(c).map_err(|_| {
                    Error::InvalidPage("cursor was not issued by this store".into())
                })?),
                Some(_) => return Err(Error::InvalidPage("cursor too long".into())),
            };
        let end = prefix_end(prefix.as_bytes());
        let mut sql = String::from(
            "SELECT key, value FROM kv_entries WHERE tenant_id = $1 AND plugin = $2 AND key >= $3",
        );
        let mut next = 4;
        if end.is_some() {
            sql.push_str(&format!(" AND key < ${next}"));
            next += 1;
        }
        if after.is_some() {
            sql.push_str(&format!(" AND key > ${next}"));
            next += 1;
        }
        sql.push_str(&format!(" ORDER BY key LIMIT ${next}"));
        let mut query = Stmt::new(sql)
            .bind(owner.tenant.as_str())
            .bind(owner.plugin)
            .bind(prefix.as_bytes());
        if let Some(end) = end {
            query = query.bind(end);
        }
        if let Some(after) = after {
            query = query.bind(after);
        }
        let rows = tx.fetch_all(query.bind(i64::from(limit) + 1)).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: Vec<u8> = row.get(0)?;
            entries.push(Entry {
                // Keys are only ever written from a Rust `&str`.
                key: String::from_utf8_lossy(&key).into_owned(),
                value: row.get(1)?,
            });
        }
        let next_cursor = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| B64.encode(e.key.as_bytes()))
        } else {
            None
        };
        Ok(EntryPage {
            entries,
            next_cursor,
        })
    }

    /// Adds `delta` to the decimal integer under `key` (absent: 0).
    pub async fn kv_increment(&self, unit: &mut UnitOfWork, key: &str, delta: i64) -> Result<i64> {
        check_key(key)?;
        let current = match self.kv_current(unit, key).await? {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or(Error::NotAnInteger)?,
        };
        let value = current.checked_add(delta).ok_or(Error::Overflow)?;
        self.kv_write(unit, key, value.to_string().as_bytes())
            .await?;
        Ok(value)
    }

    /// Replaces the value under `key` with `new` if it equals `expected`
    /// (`None`: absent). True if swapped.
    pub async fn kv_compare_and_swap(
        &self,
        unit: &mut UnitOfWork,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool> {
        check_key(key)?;
        self.check_value(new)?;
        let current = self.kv_current(unit, key).await?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        self.kv_write(unit, key, new).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_byte_string() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("a").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\0b").is_err());
        assert!(check_key(&"x".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}
