//! Database access: one pool over SQLite (embedded default) or PostgreSQL
//! (scale-out), migrations, and transactions scoped to a tenant.
//!
//! Every statement is written once with `$n` placeholders, which both engines
//! accept through `sqlx::Any`; the few places where SQL differs ask
//! [`Engine`].

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor};

use crate::ids::TenantId;

mod direct;
mod exec;
mod group;
mod reads;

use direct::DirectConn;
pub use exec::{Arg, Cell, Exec, Row, Stmt, Value};

pub use group::DirectTx;
use group::{Gate, WriteGate};

/// A database failure (connecting, migrating or querying).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names an engine Weft does not run on.
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// The driver failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type Transaction = sqlx::Transaction<'static, Any>;
type Connection = <Transaction as Deref>::Target;

/// A transaction on the pool. It derefs to the connection, so statements
/// run on `&mut *tx`. On SQLite a writing transaction also holds the
/// process's write gate until it commits or is dropped (rolled back).
#[derive(Debug)]
pub struct Tx {
    inner: Inner,
    _gate: Option<Gate>,
}

#[derive(Debug)]
enum Inner {
    Transaction(Transaction),
    /// A read on SQLite: each statement is its own read transaction.
    /// `BEGIN` and `COMMIT` would be two more round trips to the
    /// connection's worker thread for every read, and reads get no more
    /// from them than PostgreSQL's READ COMMITTED gives: a snapshot per
    /// statement.
    Autocommit(sqlx::pool::PoolConnection<Any>),
}

impl Tx {
    /// Commits, then lets the next writer in.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Inner::Transaction(tx) => tx.commit().await,
            Inner::Autocommit(_) => Ok(()),
        }
    }

    /// Rolls back, then lets the next writer in.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Inner::Transaction(tx) => tx.rollback().await,
            Inner::Autocommit(_) => Ok(()),
        }
    }
}

impl Deref for Tx {
    type Target = Connection;

    fn deref(&self) -> &Self::Target {
        match &self.inner {
            Inner::Transaction(tx) => tx,
            Inner::Autocommit(conn) => conn,
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match &mut self.inner {
            Inner::Transaction(tx) => tx,
            Inner::Autocommit(conn) => conn,
        }
    }
}

/// Rows per multi-row statement, largest first: a few fixed statement
/// shapes, so every one stays in the driver's statement cache (and SQLite
/// never resolves hundreds of parameters by name in one statement).
pub const CHUNKS: [usize; 5] = [16, 8, 4, 2, 1];

/// The largest statement size of [`CHUNKS`] that `remaining` rows fill.
fn chunk_len(remaining: usize) -> usize {
    CHUNKS
        .iter()
        .copied()
        .find(|n| *n <= remaining)
        .unwrap_or(1)
}

/// The ranges of `len` rows, split into statement sizes of [`CHUNKS`].
pub fn chunk_ranges(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        (start < len).then(|| {
            let end = start + chunk_len(len - start);
            let range = start..end;
            start = end;
            range
        })
    })
}

/// `items` split into statement sizes of [`CHUNKS`].
pub fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    chunk_ranges(items.len()).map(move |r| &items[r])
}

/// `$first, $first+step, …` for `count` placeholders.
pub fn placeholders(first: usize, count: usize, step: usize) -> String {
    (0..count)
        .map(|i| format!("${}", first + i * step))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, …, $cols), ($cols+1, …)` for `rows` rows; `casts` appends a cast
/// to the column at that index.
pub fn tuples(rows: usize, cols: usize, casts: &[(usize, &str)]) -> String {
    (0..rows)
        .map(|r| {
            let cells = (0..cols)
                .map(|c| {
                    let cast = casts
                        .iter()
                        .find(|(i, _)| *i == c)
                        .map_or("", |(_, cast)| cast);
                    format!("${}{cast}", r * cols + c + 1)
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("({cells})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A unit of work's transaction: see [`Db::begin_unit`].
#[derive(Debug)]
pub enum UnitTx {
    Sqlx(Tx),
    Direct(DirectTx),
}

impl UnitTx {
    /// Commits, then lets the next writer in.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            UnitTx::Sqlx(tx) => tx.commit().await,
            UnitTx::Direct(tx) => tx.commit().await,
        }
    }

    /// Commits without waiting where the engine allows: on SQLite's direct
    /// connection the writes commit with the next unit, within a few
    /// milliseconds ([`DirectTx::commit_soon`]); elsewhere at once.
    pub async fn commit_soon(self) -> Result<(), sqlx::Error> {
        match self {
            UnitTx::Sqlx(tx) => tx.commit().await,
            UnitTx::Direct(tx) => tx.commit_soon(),
        }
    }
}

impl Exec for UnitTx {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        match self {
            UnitTx::Sqlx(tx) => tx.execute(stmt).await,
            UnitTx::Direct(tx) => Ok(tx.conn()?.run(&stmt.sql, &stmt.args)?.1),
        }
    }

    async fn fetch_all(&mut self, stmt: Stmt) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            UnitTx::Sqlx(tx) => tx.fetch_all(stmt).await,
            UnitTx::Direct(tx) => {
                let (rows, _) = tx.conn()?.run(&stmt.sql, &stmt.args)?;
                Ok(rows.into_iter().map(Row::Direct).collect())
            }
        }
    }
}

/// Which engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite (WAL).
    Sqlite,
    /// PostgreSQL with row-level security on tenant tables.
    Postgres,
}

/// What a transaction may see.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Rows of one tenant only (on PostgreSQL enforced by RLS too).
    Tenant(&'a TenantId),
    /// Platform work across tenants: metering, superadmin views, migrations.
    Platform,
}

/// Whether a transaction writes. On SQLite a writing transaction takes the
/// write lock up front (`BEGIN IMMEDIATE`) so two writers never deadlock on
/// a lock upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads only.
    Read,
    /// Reads and writes.
    Write,
}

/// The pool and its engine.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
    /// SQLite has one write lock per database, and a writer that finds it
    /// taken sleeps in SQLite's busy handler (1, 2, 5, 10 … ms) before it
    /// looks again, which under load wastes most of the time the lock is
    /// free. Writers of this process queue here instead, first come first
    /// served, and each takes the lock the moment the previous one commits.
    ///
    /// The gate also holds the connection units of work write through on
    /// SQLite (see `db/direct.rs`): whoever holds the gate owns it, and
    /// the group of units waiting for one commit (`db/group.rs`).
    write_gate: WriteGate,
    /// On a SQLite file, the connections [`Db::begin_read`] lends.
    readers: Option<Arc<reads::ReadPool>>,
}

/// A read of a unit-of-work-less caller: see [`Db::begin_read`].
#[derive(Debug)]
pub enum ReadTx {
    Sqlx(Tx),
    Direct(reads::DirectRead),
}

impl ReadTx {
    /// Ends the read.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            ReadTx::Sqlx(tx) => tx.commit().await,
            ReadTx::Direct(_) => Ok(()),
        }
    }
}

impl Exec for ReadTx {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        match self {
            ReadTx::Sqlx(tx) => tx.execute(stmt).await,
            ReadTx::Direct(r) => r.execute(stmt).await,
        }
    }

    async fn fetch_all(&mut self, stmt: Stmt) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            ReadTx::Sqlx(tx) => tx.fetch_all(stmt).await,
            ReadTx::Direct(r) => r.fetch_all(stmt).await,
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects to `url`, creating the SQLite file (and its directory) if needed.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(Error::UnsupportedUrl(url.to_owned()));
        };
        if engine == Engine::Sqlite
            && let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(ToOwned::to_owned))
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Sqlx(sqlx::Error::Io(e)))?;
        }
        let options = AnyConnectOptions::from_str(url)?;
        // A file database checkpoints its WAL in a thread of its own (see
        // `direct::spawn_checkpointer`), never in a committing writer.
        let background_checkpoints = engine == Engine::Sqlite && sqlite_path(url).is_some();
        let pool = AnyPoolOptions::new()
            .max_connections(if engine == Engine::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL: readers never block the writer; NORMAL sync is
                        // durable across a process crash (only power loss can
                        // drop the last commits).
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA temp_store = MEMORY;",
                        )
                        .await?;
                        if background_checkpoints {
                            conn.execute("PRAGMA wal_autocheckpoint = 0;").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // Units of work write through a connection of their own, driven in
        // the caller's thread (an in-memory database has no file to share).
        let path = sqlite_path(url).filter(|_| engine == Engine::Sqlite);
        let direct = path.as_deref().map(DirectConn::open).transpose()?;
        let write_gate = WriteGate::new(direct);
        if let Some(path) = &path {
            direct::spawn_checkpointer(path, write_gate.alive())?;
        }
        Ok(Self {
            pool,
            engine,
            write_gate,
            readers: path.map(reads::ReadPool::new),
        })
    }

    /// Applies pending migrations of this engine.
    pub async fn migrate(&self) -> Result<()> {
        match self.engine {
            Engine::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Engine::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The engine behind the pool.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The raw pool, for statements on tables without tenant rows.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction that sees only what `scope` allows.
    pub async fn begin(&self, scope: Scope<'_>, mode: Mode) -> Result<Tx> {
        let (inner, gate) = match (self.engine, mode) {
            (Engine::Sqlite, Mode::Write) => {
                // The gate first: a writer waiting for it holds no connection.
                let gate = self.write_gate.lock_alone().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                (Inner::Transaction(tx), Some(gate))
            }
            (Engine::Sqlite, Mode::Read) => (Inner::Autocommit(self.pool.acquire().await?), None),
            (Engine::Postgres, _) => (Inner::Transaction(self.pool.begin().await?), None),
        };
        let mut tx = Tx { inner, _gate: gate };
        if self.engine == Engine::Postgres {
            let tenant = match scope {
                Scope::Tenant(id) => id.as_str(),
                Scope::Platform => "*",
            };
            sqlx::query("SELECT set_config('weft.tenant_id', $1, true)")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Begins a unit of work's transaction: on SQLite on the direct
    /// connection, behind the write gate, as a savepoint of the open
    /// group's transaction or of a new one (`db/group.rs`: units that end
    /// while others wait commit together); on PostgreSQL a writing
    /// transaction scoped to `scope`.
    pub async fn begin_unit(&self, scope: Scope<'_>) -> Result<UnitTx> {
        if self.engine == Engine::Sqlite
            && let Some(tx) = self.write_gate.begin_unit().await?
        {
            return Ok(UnitTx::Direct(tx));
        }
        Ok(UnitTx::Sqlx(self.begin(scope, Mode::Write).await?))
    }

    /// A read in `scope` for a caller without a unit of work (a plugin
    /// call before its first write). On a SQLite file it runs on a
    /// connection driven in the caller's thread (`db/reads.rs`), each
    /// statement in autocommit; elsewhere it is [`Db::begin`] for reading.
    pub async fn begin_read(&self, scope: Scope<'_>) -> Result<ReadTx> {
        if let Some(readers) = &self.readers {
            return Ok(ReadTx::Direct(readers.lend()?));
        }
        Ok(ReadTx::Sqlx(self.begin(scope, Mode::Read).await?))
    }

    /// Whether a poller has anything to claim, asked without the write
    /// lock: on a SQLite file, `probe` (a `SELECT 1 … LIMIT 1`) runs on an
    /// in-thread read connection, so an idle poll never makes a writer wait
    /// for the gate. Elsewhere (PostgreSQL: claims skip locked rows and
    /// block no one) it answers true without a query.
    pub async fn may_claim(&self, probe: Stmt) -> Result<bool> {
        let Some(readers) = &self.readers else {
            return Ok(true);
        };
        let mut read = readers.lend()?;
        Ok(!read.fetch_all(probe).await?.is_empty())
    }

    /// True when the PostgreSQL role bypasses row-level security (superuser
    /// or BYPASSRLS), so the second wall would not hold.
    pub async fn rls_bypassed(&self) -> Result<bool> {
        if self.engine != Engine::Postgres {
            return Ok(false);
        }
        let bypass: bool = sqlx::query_scalar::<_, bool>(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(bypass)
    }
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// True if `err` is a unique-constraint violation (on either engine).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_have_fixed_shapes() {
        assert_eq!(chunk_len(40), 16);
        assert_eq!(chunk_len(7), 4);
        assert_eq!(chunk_len(3), 2);
        assert_eq!(chunk_len(1), 1);
        let sizes: Vec<usize> = chunks(&[0; 23]).map(<[i32]>::len).collect();
        assert_eq!(sizes, [16, 4, 2, 1]);
        assert_eq!(placeholders(3, 3, 1), "$3, $4, $5");
        assert_eq!(
            tuples(2, 2, &[(1, "::jsonb")]),
            "($1, $2::jsonb), ($3, $4::jsonb)"
        );
    }

    #[test]
    fn sqlite_path_is_read_from_url() {
        assert_eq!(
            sqlite_path("sqlite://data/weft.db?mode=rwc"),
            Some("data/weft.db".into())
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[tokio::test]
    async fn sqlite_migrates_and_scopes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        db.migrate().await.expect("migrating twice is a no-op");
        let tenant = TenantId::from_raw("t1");
        let mut tx = db
            .begin(Scope::Tenant(&tenant), Mode::Write)
            .await
            .expect("begin");
        sqlx::query("SELECT 1")
            .execute(&mut *tx)
            .await
            .expect("select");
        tx.commit().await.expect("commit");
    }
}
