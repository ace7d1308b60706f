//! The outbox's counters (a tenant's messages per channel per minute and
//! per day) as a unit of work sees them: read once under the unit's write
//! lock, counted in memory message by message, and written at the unit's
//! flush as one upsert, instead of an upsert per message.
//!
//! Exact, not an estimate: every message is queued in a unit of work, and
//! a unit holds its tenant's write lock (SQLite's, or the tenant's storage
//! row on PostgreSQL) from its start to its commit, so no other writer
//! changes the tenant's counters between the read and the flush. A call
//! rolled back inside a shared unit restores the counts it began with
//! (`UnitOfWork`'s savepoints keep a copy).

use std::collections::HashMap;

use super::Channel;
use crate::db::{Exec, Stmt, UnitTx, tuples};
use crate::ids::TenantId;

/// One counter: its count with the unit's messages, and how many of those
/// are not written yet.
#[derive(Debug, Clone, Copy)]
struct Count {
    count: i64,
    unwritten: i64,
}

/// A unit's counters, by channel and window (`d:YYYY-MM-DD`, `m:minute`).
#[derive(Debug, Clone, Default)]
pub struct Counts(HashMap<Channel, HashMap<String, Count>>);

impl Counts {
    /// True if every count is written.
    pub fn is_written(&self) -> bool {
        self.0
            .values()
            .flat_map(HashMap::values)
            .all(|c| c.unwritten == 0)
    }

    /// The counts of `channel` in `windows`, read from the database for
    /// the windows this unit has not counted in yet.
    pub async fn get(
        &mut self,
        tx: &mut UnitTx,
        tenant: &TenantId,
        channel: Channel,
        windows: &[String; 2],
    ) -> Result<[i64; 2], sqlx::Error> {
        let known = self.0.entry(channel).or_default();
        if !windows.iter().all(|w| known.contains_key(w)) {
            let rows = tx
                .fetch_all(
                    Stmt::new(
                        "SELECT win, CAST(count AS BIGINT) FROM outbox_counters \
                         WHERE tenant_id = $1 AND channel = $2 AND win IN ($3, $4)",
                    )
                    .bind(tenant.as_str())
                    .bind(channel.as_str())
                    .bind(windows[0].as_str())
                    .bind(windows[1].as_str()),
                )
                .await?;
            let mut stored: HashMap<String, i64> = HashMap::new();
            for row in rows {
                stored.insert(row.get(0)?, row.get(1)?);
            }
            for w in windows {
                if !known.contains_key(w) {
                    let count = stored.get(w).copied().unwrap_or(0);
                    known.insert(
                        w.clone(),
                        Count {
                            count,
                            unwritten: 0,
                        },
                    );
                }
            }
        }
        Ok(windows
            .each_ref()
            .map(|w| known.get(w).map_or(0, |c| c.count)))
    }

    /// Counts one message of `channel` in `windows` (read by [`Self::get`]).
    pub fn add_one(&mut self, channel: Channel, windows: &[String; 2]) {
        let known = self.0.entry(channel).or_default();
        for w in windows {
            if let Some(c) = known.get_mut(w) {
                c.count += 1;
                c.unwritten += 1;
            } else {
                known.insert(
                    w.clone(),
                    Count {
                        count: 1,
                        unwritten: 1,
                    },
                );
            }
        }
    }

    /// Writes what the unit counted, in one statement.
    pub async fn write(&mut self, tx: &mut UnitTx, tenant: &TenantId) -> Result<(), sqlx::Error> {
        let rows: Vec<(Channel, &String, i64)> = (self.0.iter())
            .flat_map(|(channel, wins)| {
                wins.iter()
                    .map(move |(win, c)| (*channel, win, c.unwritten))
            })
            .filter(|(_, _, n)| *n != 0)
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO outbox_counters (tenant_id, channel, win, count) VALUES {} \
             ON CONFLICT (tenant_id, channel, win) DO UPDATE SET count = outbox_counters.count + excluded.count",
            tuples(rows.len(), 4, &[])
        );
        let mut stmt = Stmt::new(sql);
        for (channel, win, n) in &rows {
            stmt = stmt
                .bind(tenant.as_str())
                .bind(channel.as_str())
                .bind(win.as_str())
                .bind(*n);
        }
        tx.execute(stmt).await?;
        for c in self.0.values_mut().flat_map(HashMap::values_mut) {
            c.unwritten = 0;
        }
        Ok(())
    }
}
