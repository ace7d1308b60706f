//! The credits ledger: append-only entries with idempotency keys. A
//! tenant's balance is the sum of its entries; `billing_accounts.balance`
//! keeps that sum, changed only by the statement pair that appends an
//! entry, inside one transaction — [`CreditLedger::audit`] checks it.
//!
//! What LLM calls in flight have reserved is not in the ledger but beside
//! the balance, in `billing_accounts.held` ([`hold`], [`release`]): the
//! tenant can spend `balance - held`, and a call's only entry is its
//! charge.

use serde::Serialize;

use super::Result;
use super::credits::Micro;
use std::collections::HashSet;

use crate::db::{Db, Exec, Mode, Row, Scope, Stmt, chunks, tuples};
use crate::ids::{TenantId, now_ms};

/// Why an entry was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Credits bought (a Stripe checkout).
    Purchase,
    /// Credits given by the platform (superadmin, welcome credits).
    Grant,
    /// Credits used (an LLM call), negative.
    Charge,
    /// Credits given back for a charge.
    Refund,
    /// A superadmin's correction, either sign.
    Adjustment,
    /// An estimate reserved before an LLM call, negative: written before
    /// migration 0008, which moved holds to `billing_accounts.held`.
    Hold,
    /// A hold of before migration 0008 given back when its call settled
    /// (or a crash left it).
    Release,
}

impl EntryKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Purchase => "purchase",
            EntryKind::Grant => "grant",
            EntryKind::Charge => "charge",
            EntryKind::Refund => "refund",
            EntryKind::Adjustment => "adjustment",
            EntryKind::Hold => "hold",
            EntryKind::Release => "release",
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub kind: EntryKind,
    pub amount: Micro,
    /// Unique per tenant: the same key twice appends once.
    pub idempotency_key: &'a str,
    pub reason: Option<&'a str>,
    /// What the entry is for: an LLM call id, a Stripe event, a hold.
    pub reference: Option<&'a str>,
    /// Who wrote it: a user id, `stripe`, `system`.
    pub actor: Option<&'a str>,
}

/// An appended entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: String,
    #[schema(value_type = String)]
    pub kind: String,
    /// Signed credits, as an exact decimal string.
    #[schema(value_type = String)]
    pub amount: Micro,
    pub idempotency_key: String,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub actor: Option<String>,
    pub created_at: i64,
}

/// What appending did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Appended; the balance after it.
    New(Micro),
    /// An entry with this idempotency key already existed: nothing changed.
    Duplicate,
}

/// Makes sure the tenant has a billing account (on `plan` if it is new).
pub async fn ensure_account(tx: &mut impl Exec, tenant: &TenantId, plan: &str) -> Result<()> {
    tx.execute(
        Stmt::new(
            "INSERT INTO billing_accounts (tenant_id, balance, plan, suspended, updated_at) \
             VALUES ($1, 0, $2, 0, $3) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(plan)
        .bind(now_ms()),
    )
    .await?;
    Ok(())
}

/// Appends `entry` in `tx` (whose account must exist) and moves the balance.
pub async fn post(tx: &mut impl Exec, tenant: &TenantId, entry: &NewEntry<'_>) -> Result<Posted> {
    post_releasing(tx, tenant, entry, Micro(0)).await
}

/// Appends `entry` like [`post`] and, in the same update of the account,
/// gives back `release` of what [`hold`] held (also when the entry is a
/// duplicate): a settled call's charge and the end of its hold.
pub async fn post_releasing(
    tx: &mut impl Exec,
    tenant: &TenantId,
    entry: &NewEntry<'_>,
    release: Micro,
) -> Result<Posted> {
    let now = now_ms();
    let inserted = tx
        .execute(
            Stmt::new(
                "INSERT INTO credit_entries \
                 (id, tenant_id, kind, amount, idempotency_key, reason, reference, actor, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(tenant.as_str())
            .bind(entry.kind.as_str())
            .bind(entry.amount.0)
            .bind(entry.idempotency_key)
            .bind(entry.reason)
            .bind(entry.reference)
            .bind(entry.actor)
            .bind(now),
        )
        .await?;
    if inserted == 0 && release.0 == 0 {
        return Ok(Posted::Duplicate);
    }
    let amount = if inserted == 0 { 0 } else { entry.amount.0 };
    let row = tx
        .fetch_optional(
            Stmt::new(
                "UPDATE billing_accounts SET balance = balance + $2, held = held - $3, updated_at = $4 \
                 WHERE tenant_id = $1 RETURNING balance",
            )
            .bind(tenant.as_str())
            .bind(amount)
            .bind(release.0)
            .bind(now),
        )
        .await?;
    let row = row.ok_or(super::Error::NoAccount)?;
    Ok(if inserted == 0 {
        Posted::Duplicate
    } else {
        Posted::New(Micro(row.get(0)?))
    })
}

/// Appends `entries` in `tx` (whose accounts must exist) as multi-row
/// statements — the entries, then one balance update per tenant — and
/// answers each in order: `New` with the balance after it, or `Duplicate`
/// (also for the second of two entries with one key).
pub async fn post_many(
    tx: &mut impl Exec,
    entries: &[(&TenantId, NewEntry<'_>)],
) -> Result<Vec<Posted>> {
    let now = now_ms();
    let mut inserted: HashSet<(String, String)> = HashSet::new();
    for chunk in chunks(entries) {
        let mut stmt = Stmt::new(format!(
            "INSERT INTO credit_entries \
             (id, tenant_id, kind, amount, idempotency_key, reason, reference, actor, created_at) \
             VALUES {} ON CONFLICT (tenant_id, idempotency_key) DO NOTHING \
             RETURNING tenant_id, idempotency_key",
            tuples(chunk.len(), 9, &[])
        ));
        for (tenant, e) in chunk {
            stmt = stmt
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(tenant.as_str())
                .bind(e.kind.as_str())
                .bind(e.amount.0)
                .bind(e.idempotency_key)
                .bind(e.reason)
                .bind(e.reference)
                .bind(e.actor)
                .bind(now);
        }
        for row in tx.fetch_all(stmt).await? {
            inserted.insert((row.get(0)?, row.get(1)?));
        }
    }
    // The first entry of a new key appended it; any other is a duplicate.
    let new: Vec<bool> = entries
        .iter()
        .map(|(t, e)| inserted.remove(&(t.as_str().to_owned(), e.idempotency_key.to_owned())))
        .collect();
    let mut tenants: Vec<&TenantId> = Vec::new();
    for (tenant, _) in entries {
        if !tenants.contains(tenant) {
            tenants.push(tenant);
        }
    }
    let mut posted = vec![Posted::Duplicate; entries.len()];
    for tenant in tenants {
        let mine: Vec<(usize, i64)> = entries
            .iter()
            .zip(&new)
            .enumerate()
            .filter(|(_, ((t, _), new))| **new && *t == tenant)
            .map(|(i, ((_, e), _))| (i, e.amount.0))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let total: i64 = mine.iter().map(|(_, a)| a).sum();
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "UPDATE billing_accounts SET balance = balance + $2, updated_at = $3 \
                     WHERE tenant_id = $1 RETURNING balance",
                )
                .bind(tenant.as_str())
                .bind(total)
                .bind(now),
            )
            .await?;
        let row = row.ok_or(super::Error::NoAccount)?;
        // Each entry's balance after it: the final one less the entries
        // appended after it.
        let mut after: i64 = row.get(0)?;
        for (i, amount) in mine.into_iter().rev() {
            posted[i] = Posted::New(Micro(after));
            after -= amount;
        }
    }
    Ok(posted)
}

/// Holds `amount` for a call about to run, only if what the tenant can
/// spend (`balance - held`) covers it; `false` when it does not (nothing
/// is written). The check and the hold are one statement, so concurrent
/// holds cannot overdraw.
pub async fn hold(tx: &mut impl Exec, tenant: &TenantId, amount: Micro) -> Result<bool> {
    let changed = tx
        .execute(
            Stmt::new(
                "UPDATE billing_accounts SET held = held + $2 \
                 WHERE tenant_id = $1 AND balance - held >= $2",
            )
            .bind(tenant.as_str())
            .bind(amount.0),
        )
        .await?;
    Ok(changed == 1)
}

/// Gives back `amount` that [`hold`] held.
pub async fn release(tx: &mut impl Exec, tenant: &TenantId, amount: Micro) -> Result<()> {
    if amount.0 == 0 {
        return Ok(());
    }
    let changed = tx
        .execute(
            Stmt::new("UPDATE billing_accounts SET held = held - $2 WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .bind(amount.0),
        )
        .await?;
    if changed == 0 {
        return Err(super::Error::NoAccount);
    }
    Ok(())
}

/// The writer task: takes what is waiting (up to [`GROUP`]), commits it in
/// one transaction, answers each. If the group fails, its entries are
/// tried one by one, so one bad entry fails only itself.
async fn write_groups(db: Db, plan: String, mut jobs: tokio::sync::mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(GROUP);
    while jobs.recv_many(&mut group, GROUP).await > 0 {
        match CreditLedger::commit_group(&db, &plan, &group).await {
            Ok(posted) => {
                for (job, p) in group.drain(..).zip(posted) {
                    let _ = job.ack.send(Ok(p));
                }
            }
            Err(_) => {
                for job in group.drain(..) {
                    let one = CreditLedger::commit_group(&db, &plan, std::slice::from_ref(&job))
                        .await
                        .map(|p| p.first().copied().unwrap_or(Posted::Duplicate));
                    let _ = job.ack.send(one);
                }
            }
        }
    }
}

fn entry_from_row(row: &Row) -> Result<Entry> {
    Ok(Entry {
        id: row.get(0)?,
        kind: row.get(1)?,
        amount: Micro(row.get(2)?),
        idempotency_key: row.get(3)?,
        reason: row.get(4)?,
        reference: row.get(5)?,
        actor: row.get(6)?,
        created_at: row.get(7)?,
    })
}

/// A tenant's balance as both the kept sum and the recomputed one, and
/// what calls in flight hold of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Audit {
    pub balance: Micro,
    pub sum_of_entries: Micro,
    pub held: Micro,
}

/// An entry waiting for the group-commit writer.
struct Job {
    tenant: TenantId,
    kind: EntryKind,
    amount: Micro,
    key: String,
    reason: Option<String>,
    reference: Option<String>,
    actor: Option<String>,
    ack: tokio::sync::oneshot::Sender<Result<Posted>>,
}

/// Entries one group commit takes at most.
const GROUP: usize = 256;

/// Reads the ledger, and appends entries outside any other unit of work
/// through one writer task that commits whatever is waiting together
/// (group commit): each caller is answered once its entry is committed.
#[derive(Debug, Clone)]
pub struct CreditLedger {
    db: Db,
    writer: tokio::sync::mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CreditLedger {
    /// A ledger over `db`; new accounts start on `default_plan`. Starts
    /// the writer task (call inside a tokio runtime).
    pub fn new(db: Db, default_plan: impl Into<String>) -> Self {
        let default_plan = default_plan.into();
        let (writer, jobs) = tokio::sync::mpsc::channel(4 * GROUP);
        tokio::spawn(write_groups(db.clone(), default_plan, jobs));
        Self { db, writer }
    }

    /// Appends one entry; answers once it is committed.
    pub async fn append(&self, tenant: &TenantId, entry: &NewEntry<'_>) -> Result<Posted> {
        let (ack, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            tenant: tenant.clone(),
            kind: entry.kind,
            amount: entry.amount,
            key: entry.idempotency_key.to_owned(),
            reason: entry.reason.map(str::to_owned),
            reference: entry.reference.map(str::to_owned),
            actor: entry.actor.map(str::to_owned),
            ack,
        };
        self.writer
            .send(job)
            .await
            .map_err(|_| super::Error::Invalid("the ledger writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| super::Error::Invalid("the ledger writer has stopped".into()))?
    }

    /// Appends `jobs` in one transaction, as multi-row statements: the
    /// accounts, the entries (the ones whose key is new come back), one
    /// balance update per tenant. The outcome of each, in order.
    async fn commit_group(db: &Db, plan: &str, jobs: &[Job]) -> Result<Vec<Posted>> {
        let now = now_ms();
        let mut tx = db.begin_unit(Scope::Platform).await?;
        let mut tenants: Vec<&TenantId> = Vec::new();
        for job in jobs {
            if !tenants.contains(&&job.tenant) {
                tenants.push(&job.tenant);
            }
        }
        for chunk in chunks(&tenants) {
            let mut stmt = Stmt::new(format!(
                "INSERT INTO billing_accounts (tenant_id, balance, plan, suspended, updated_at) \
                 VALUES {} ON CONFLICT (tenant_id) DO NOTHING",
                tuples(chunk.len(), 5, &[])
            ));
            for tenant in chunk {
                stmt = stmt
                    .bind(tenant.as_str())
                    .bind(0_i64)
                    .bind(plan)
                    .bind(0_i64)
                    .bind(now);
            }
            tx.execute(stmt).await?;
        }
        let entries: Vec<(&TenantId, NewEntry<'_>)> = jobs
            .iter()
            .map(|job| {
                (
                    &job.tenant,
                    NewEntry {
                        kind: job.kind,
                        amount: job.amount,
                        idempotency_key: &job.key,
                        reason: job.reason.as_deref(),
                        reference: job.reference.as_deref(),
                        actor: job.actor.as_deref(),
                    },
                )
            })
            .collect();
        let posted = post_many(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(posted)
    }

    /// The tenant's balance (0 before its first entry).
    pub async fn balance(&self, tenant: &TenantId) -> Result<Micro> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let row = tx
            .fetch_optional(
                Stmt::new("SELECT balance FROM billing_accounts WHERE tenant_id = $1")
                    .bind(tenant.as_str()),
            )
            .await?;
        Ok(Micro(match row {
            Some(row) => row.get(0)?,
            None => 0,
        }))
    }

    /// The kept balance beside the sum of the entries, and what is held.
    pub async fn audit(&self, tenant: &TenantId) -> Result<Audit> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let sum = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_entries WHERE tenant_id = $1";
        let account = tx
            .fetch_optional(
                Stmt::new(format!(
                    "SELECT balance, held, ({sum}) FROM billing_accounts WHERE tenant_id = $1"
                ))
                .bind(tenant.as_str()),
            )
            .await?;
        let (balance, held, sum) = match account {
            Some(row) => (row.get(0)?, row.get(1)?, row.get(2)?),
            // No account: no entries either, unless the ledger is broken.
            None => {
                let row = tx
                    .fetch_optional(Stmt::new(sum).bind(tenant.as_str()))
                    .await?;
                (0, 0, row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0))
            }
        };
        Ok(Audit {
            balance: Micro(balance),
            sum_of_entries: Micro(sum),
            held: Micro(held),
        })
    }

    /// Entries newest first, `limit` of them, older than `before` (an
    /// entry id from the previous page) if given.
    pub async fn entries(
        &self,
        tenant: &TenantId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let columns = "id, kind, amount, idempotency_key, reason, reference, actor, created_at";
        let stmt = match before {
            Some(before) => Stmt::new(format!(
                "SELECT {columns} FROM credit_entries WHERE tenant_id = $1 AND id < $2 \
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(tenant.as_str())
            .bind(before)
            .bind(limit),
            None => Stmt::new(format!(
                "SELECT {columns} FROM credit_entries WHERE tenant_id = $1 \
                 ORDER BY id DESC LIMIT $2"
            ))
            .bind(tenant.as_str())
            .bind(limit),
        };
        tx.fetch_all(stmt)
            .await?
            .iter()
            .map(entry_from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        tenant: &str,
        key: &str,
        amount: i64,
    ) -> (Job, tokio::sync::oneshot::Receiver<Result<Posted>>) {
        let (ack, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            tenant: TenantId::from_raw(tenant),
            kind: EntryKind::Grant,
            amount: Micro(amount),
            key: key.to_owned(),
            reason: None,
            reference: None,
            actor: None,
            ack,
        };
        (job, answer)
    }

    #[tokio::test]
    async fn a_group_appends_new_keys_once_with_each_entrys_balance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        for t in ["a", "b"] {
            sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $1, $1, 0)")
                .bind(t)
                .execute(db.pool())
                .await
                .expect("tenant");
        }
        let first: Vec<Job> = [
            ("a", "k1", 5),
            ("b", "k1", 7),
            ("a", "k2", 3),
            ("a", "k1", 100),
        ]
        .into_iter()
        .map(|(t, k, n)| job(t, k, n).0)
        .collect();
        let posted = CreditLedger::commit_group(&db, "bootstrapper", &first)
            .await
            .expect("group");
        assert_eq!(
            posted,
            [
                Posted::New(Micro(5)),
                Posted::New(Micro(7)),
                Posted::New(Micro(8)),
                Posted::Duplicate,
            ]
        );
        // A later group: a key seen before is a duplicate, a new one appends.
        let second: Vec<Job> = [("a", "k2", 3), ("a", "k3", 10)]
            .into_iter()
            .map(|(t, k, n)| job(t, k, n).0)
            .collect();
        let posted = CreditLedger::commit_group(&db, "bootstrapper", &second)
            .await
            .expect("group");
        assert_eq!(posted, [Posted::Duplicate, Posted::New(Micro(18))]);
        let ledger = CreditLedger::new(db, "bootstrapper");
        let audit = ledger.audit(&TenantId::from_raw("a")).await.expect("audit");
        assert_eq!(
            (audit.balance, audit.sum_of_entries, audit.held),
            (Micro(18), Micro(18), Micro(0))
        );
    }
}
