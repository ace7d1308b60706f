//! Group commit on SQLite's direct connection.
//!
//! A commit in WAL mode appends every page the transaction touched to the
//! log: a small unit of work (a forum reply, a gateway settlement) writes
//! tens of kilobytes, and on this project's machine those `pwrite`s were
//! a quarter of the gateway's CPU. Writers already run one after another
//! behind the write gate, so a unit that ends while others wait for the
//! gate does not commit: it releases its savepoint into the transaction
//! that stays open and waits. The next unit runs in that transaction (in a
//! savepoint of its own), and the last of the group — no one waiting, or
//! the group full or old — commits for all and tells each. A unit that
//! fails rolls back to its savepoint only; if the commit itself fails,
//! every unit of the group fails (none of them has answered yet).
//!
//! A unit that waits and is never followed (the waiter it counted gave up)
//! takes the gate again after [`FALLBACK`] and commits the group itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::direct::DirectConn;

/// Units one commit holds at most.
const MAX_GROUP: usize = 64;
/// How long a group stays open at most before a unit commits it.
const MAX_AGE: Duration = Duration::from_millis(4);
/// How long a waiting unit trusts the next one to come.
const FALLBACK: Duration = Duration::from_millis(20);

/// What a group's members are told: the commit's outcome.
type Member = oneshot::Sender<Result<(), String>>;

/// What the write gate protects.
#[derive(Debug)]
pub struct GateState {
    /// The direct connection (none for an in-memory database).
    pub conn: Option<DirectConn>,
    /// Units whose writes are in the open transaction, waiting for its
    /// commit; empty when no transaction is open on `conn`.
    group: Vec<Member>,
    /// Changes with every group, so a late fallback commits only its own.
    generation: u64,
    began: Option<Instant>,
}

/// The write gate's guard.
pub type Gate = OwnedMutexGuard<GateState>;

/// The gate and the count of those queued for it.
#[derive(Debug, Clone)]
pub struct WriteGate {
    mutex: Arc<Mutex<GateState>>,
    waiting: Arc<AtomicUsize>,
}

/// Decrements the waiting count however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn protocol(message: impl Into<String>) -> sqlx::Error {
    sqlx::Error::Protocol(message.into())
}

impl WriteGate {
    pub fn new(conn: Option<DirectConn>) -> Self {
        Self {
            mutex: Arc::new(Mutex::new(GateState {
                conn,
                group: Vec::new(),
                generation: 0,
                began: None,
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Something that lives as long as the gate (for the checkpointer).
    pub fn alive(&self) -> std::sync::Weak<Mutex<GateState>> {
        Arc::downgrade(&self.mutex)
    }

    /// Waits for the gate, counted as waiting meanwhile.
    pub async fn lock(&self) -> Gate {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.mutex.clone().lock_owned().await
    }

    /// The gate for a writer that is not a unit (a pool transaction): any
    /// open group is committed first, since it holds SQLite's write lock.
    pub async fn lock_alone(&self) -> Gate {
        let mut gate = self.lock().await;
        // Its members learn the outcome; this writer starts clean either way.
        let _ = gate.commit_group();
        gate
    }

    /// Begins a unit: in the open group's transaction, or a new one.
    pub async fn begin_unit(&self) -> Result<Option<DirectTx>, sqlx::Error> {
        let mut gate = self.lock().await;
        let fresh = gate.group.is_empty();
        let Some(conn) = gate.conn.as_mut() else {
            return Ok(None);
        };
        if fresh {
            conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        if let Err(err) = conn.execute_batch("SAVEPOINT weft_unit") {
            if fresh {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(err);
        }
        if fresh {
            gate.began = Some(Instant::now());
        }
        Ok(Some(DirectTx {
            gate: Some(gate),
            write_gate: self.clone(),
        }))
    }
}

impl GateState {
    /// Commits the open group, if any (its members learn the outcome), so
    /// that the holder of the gate starts with no transaction open.
    pub fn commit_open_group(&mut self) {
        let _ = self.commit_group();
    }

    /// Commits the open transaction, if any, and tells every member.
    fn commit_group(&mut self) -> Result<(), sqlx::Error> {
        if self.group.is_empty() {
            return Ok(());
        }
        self.commit()
    }

    /// Commits the open transaction and tells every member.
    fn commit(&mut self) -> Result<(), sqlx::Error> {
        let outcome = self.end("COMMIT");
        self.tell(&outcome);
        outcome
    }

    /// Rolls the open transaction back, telling every member why.
    fn fail_group(&mut self, why: &str) {
        let _ = self.end("ROLLBACK");
        self.tell(&Err(protocol(why)));
    }

    /// Ends the transaction with `sql` (a failed COMMIT is rolled back, so
    /// the next writer starts clean).
    fn end(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.generation += 1;
        self.began = None;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| protocol("the direct connection is gone"))?;
        let outcome = conn.execute_batch(sql);
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        outcome
    }

    fn tell(&mut self, outcome: &Result<(), sqlx::Error>) {
        let told = outcome.as_ref().map(|_| ()).map_err(|e| e.to_string());
        for member in self.group.drain(..) {
            let _ = member.send(told.clone());
        }
    }

    /// Whether a unit ending now should leave the transaction open for the
    /// next one instead of committing.
    fn keep_open(&self, waiting: usize) -> bool {
        waiting > 0
            && self.group.len() < MAX_GROUP
            && self.began.is_some_and(|t| t.elapsed() < MAX_AGE)
    }
}

/// A unit's transaction on the direct connection, holding the write gate;
/// rolled back to its savepoint if dropped before [`DirectTx::commit`].
#[derive(Debug)]
pub struct DirectTx {
    /// `None` once the unit ended.
    gate: Option<Gate>,
    write_gate: WriteGate,
}

impl DirectTx {
    /// Ends the unit's savepoint, keeping its writes in the open
    /// transaction, and hands over the gate (a failure fails the group).
    fn release(&mut self) -> Result<Gate, sqlx::Error> {
        let Some(mut gate) = self.gate.take() else {
            return Err(protocol("the unit has ended"));
        };
        let released = match gate.conn.as_mut() {
            Some(conn) => conn.execute_batch("RELEASE weft_unit"),
            None => Err(protocol("the direct connection is gone")),
        };
        if let Err(err) = released {
            gate.fail_group("a unit of the group could not be released");
            return Err(err);
        }
        Ok(gate)
    }

    pub fn conn(&mut self) -> Result<&mut DirectConn, sqlx::Error> {
        self.gate
            .as_mut()
            .and_then(|g| g.conn.as_mut())
            .ok_or_else(|| protocol("the direct connection is gone"))
    }

    /// Commits the unit: at once, or with the group it joins.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut gate = self.release()?;
        let waiting = self.write_gate.waiting.load(Ordering::SeqCst);
        if !gate.keep_open(waiting) {
            return gate.commit();
        }
        let (member, mut answer) = oneshot::channel();
        gate.group.push(member);
        let generation = gate.generation;
        drop(gate);
        let told = tokio::select! {
            told = &mut answer => told,
            () = tokio::time::sleep(FALLBACK) => {
                // Nobody came after all: commit the group if it is still ours.
                let mut gate = self.write_gate.mutex.clone().lock_owned().await;
                if gate.generation == generation {
                    let _ = gate.commit_group();
                }
                drop(gate);
                answer.await
            }
        };
        match told {
            Ok(outcome) => outcome.map_err(protocol),
            Err(_) => Err(protocol("the group commit was lost")),
        }
    }
}

impl DirectTx {
    /// Ends the unit without waiting for a commit: its writes stay in the
    /// open transaction, visible to the units that follow on this
    /// connection, and commit with the next unit that commits, or after
    /// [`MAX_AGE`] by a timer. For writes whose only reader until then is
    /// the same request (the gateway's credit hold, settled moments later):
    /// one commit instead of two. A crash before the commit loses them, as
    /// it would lose the request itself.
    pub fn commit_soon(mut self) -> Result<(), sqlx::Error> {
        let mut gate = self.release()?;
        if gate.group.len() + 1 >= MAX_GROUP || gate.began.is_some_and(|t| t.elapsed() >= MAX_AGE) {
            return gate.commit();
        }
        // A member nobody listens to: it keeps the group (and so the
        // transaction) open until someone commits it.
        let (member, _unheard) = oneshot::channel();
        gate.group.push(member);
        let generation = gate.generation;
        drop(gate);
        let write_gate = self.write_gate.clone();
        tokio::spawn(async move {
            tokio::time::sleep(MAX_AGE).await;
            let mut gate = write_gate.mutex.clone().lock_owned().await;
            if gate.generation == generation
                && let Err(err) = gate.commit_group()
            {
                tracing::warn!(%err, "a deferred commit failed");
            }
        });
        Ok(())
    }
}

impl Drop for DirectTx {
    fn drop(&mut self) {
        // Runs right here, in this thread, before the gate opens.
        let Some(mut gate) = self.gate.take() else {
            return;
        };
        let undone = match gate.conn.as_mut() {
            Some(conn) => conn.execute_batch("ROLLBACK TO weft_unit; RELEASE weft_unit"),
            None => return,
        };
        if undone.is_err() {
            gate.fail_group("a unit of the group could not be rolled back");
        } else if gate.group.is_empty() {
            let _ = gate.end("ROLLBACK");
        } else if !gate.keep_open(self.write_gate.waiting.load(Ordering::SeqCst)) {
            let _ = gate.commit_group();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::db::{Db, Exec, Mode, Scope, Stmt};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn units_that_commit_together_keep_theirs_and_lose_only_the_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
        let db = Db::connect(&url).await.expect("connect");
        let mut tx = db.begin(Scope::Platform, Mode::Write).await.expect("begin");
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .execute(&mut *tx)
            .await
            .expect("create");
        tx.commit().await.expect("commit");

        let mut tasks = Vec::new();
        for n in 0..200_i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut unit = db.begin_unit(Scope::Platform).await.expect("unit");
                unit.execute(Stmt::new("INSERT INTO t (n) VALUES ($1)").bind(n))
                    .await
                    .expect("insert");
                if n % 3 == 0 {
                    drop(unit); // rolled back: only this row goes
                    false
                } else {
                    unit.commit().await.expect("commit");
                    true
                }
            }));
        }
        let mut kept = 0;
        for task in tasks {
            kept += i64::from(task.await.expect("task"));
        }
        // Every commit that returned is visible to a reader on another
        // connection; no rolled-back row is.
        let mut read = db.begin_read(Scope::Platform).await.expect("read");
        let rows = read
            .fetch_all(Stmt::new(
                "SELECT COUNT(*), COALESCE(SUM(n % 3 = 0), 0) FROM t",
            ))
            .await
            .expect("count");
        assert_eq!(rows[0].get::<i64>(0).expect("count"), kept);
        assert_eq!(rows[0].get::<i64>(1).expect("failed"), 0);
        // A writer outside the units still gets the lock (the open group,
        // if any, is committed first).
        let mut tx = db.begin(Scope::Platform, Mode::Write).await.expect("begin");
        sqlx::query("INSERT INTO t (n) VALUES (1000)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
    }
}
