//! The SQLite connection units of work write through (and the ones reads
//! run on, `reads.rs`), driven in the calling thread.
//!
//! sqlx runs every SQLite connection on a worker thread of its own, so each
//! statement is a round trip between threads: on this project's machine
//! 17-45 µs, against 2-40 µs for SQLite to run it. Writers are serialized
//! anyway (one write lock per database), so every microsecond inside the
//! lock is a microsecond of every writer's time. This connection is reached
//! only through the write gate, one user at a time, and its statements run
//! where the caller is: a unit of work's fifteen statements take tens of
//! microseconds instead of a millisecond.
//!
//! This is the one place the host calls C: a connection handle and a cache
//! of prepared statements, with every pointer owned here and freed on drop.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

use super::exec::{Arg, Value};

/// Prepared statements kept per connection (fixed shapes, and a few built
/// from queries); past this the cache starts over.
const MAX_CACHED: usize = 512;

/// A SQLite error, kept as sqlx's database error so callers see one kind.
#[derive(Debug)]
pub struct SqliteError {
    code: c_int,
    message: String,
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sqlite error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteError {}

impl sqlx::error::DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => sqlx::error::ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => sqlx::error::ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

fn error(code: c_int, message: impl Into<String>) -> sqlx::Error {
    sqlx::Error::Database(Box::new(SqliteError {
        code,
        message: message.into(),
    }))
}

/// A prepared statement and, per parameter, which argument it takes (`$n`
/// placeholders may repeat or come out of order).
struct Prepared {
    stmt: NonNull<ffi::sqlite3_stmt>,
    params: Vec<usize>,
}

/// One SQLite connection: see the module docs.
pub struct DirectConn {
    db: NonNull<ffi::sqlite3>,
    cache: HashMap<String, Prepared>,
}

// SAFETY: SQLite (bundled, SQLITE_THREADSAFE=1) lets a connection and its
// statements move between threads as long as one thread uses them at a
// time. A `DirectConn` is only reachable through `&mut`: the writer's behind
// the write gate's mutex, a reader's lent to one `DirectRead` at a time
// (`reads.rs`), so no two threads ever use one at once.
unsafe impl Send for DirectConn {}

impl std::fmt::Debug for DirectConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectConn")
            .field("cached_statements", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl DirectConn {
    /// Opens (creating if needed) the database file at `path` with the
    /// same settings as the pool's connections.
    pub fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| error(ffi::SQLITE_MISUSE, "database path holds a NUL byte"))?;
        let mut raw = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_NOMUTEX;
        // SAFETY: `c_path` is a NUL-terminated string that outlives the
        // call; `raw` is a valid out-pointer; no VFS name is passed.
        let rc = unsafe { ffi::sqlite3_open_v2(c_path.as_ptr(), &mut raw, flags, ptr::null()) };
        let Some(db) = NonNull::new(raw) else {
            return Err(error(rc, "sqlite3_open_v2 returned no handle"));
        };
        let mut conn = Self {
            db,
            cache: HashMap::new(),
        };
        if rc != ffi::SQLITE_OK {
            return Err(conn.last_error(rc));
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY;",
        )?;
        Ok(conn)
    }

    fn last_error(&self, rc: c_int) -> sqlx::Error {
        // SAFETY: `self.db` is an open handle; the message is copied
        // before any other call on the handle.
        let (code, message) = unsafe {
            let code = ffi::sqlite3_extended_errcode(self.db.as_ptr());
            let msg = ffi::sqlite3_errmsg(self.db.as_ptr());
            let message = if msg.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            };
            (code, message)
        };
        error(if code == 0 { rc } else { code }, message)
    }

    /// Runs statements without arguments or results (`BEGIN`, `COMMIT`,
    /// `SAVEPOINT`, pragmas).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let c_sql =
            CString::new(sql).map_err(|_| error(ffi::SQLITE_MISUSE, "SQL holds a NUL byte"))?;
        // SAFETY: the handle is open, `c_sql` is NUL-terminated and lives
        // through the call; no callback and no error out-pointer.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                c_sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.last_error(rc))
        }
    }

    /// The cached statement for `sql`, prepared on first use.
    fn prepared(&mut self, sql: &str) -> Result<&Prepared, sqlx::Error> {
        if !self.cache.contains_key(sql) {
            if self.cache.len() >= MAX_CACHED {
                self.clear_cache();
            }
            let prepared = self.prepare(sql)?;
            self.cache.insert(sql.to_owned(), prepared);
        }
        self.cache
            .get(sql)
            .ok_or_else(|| error(ffi::SQLITE_INTERNAL, "statement cache lost an entry"))
    }

    fn prepare(&mut self, sql: &str) -> Result<Prepared, sqlx::Error> {
        let len = c_int::try_from(sql.len())
            .map_err(|_| error(ffi::SQLITE_TOOBIG, "statement too long"))?;
        let mut raw = ptr::null_mut();
        // SAFETY: the handle is open; `sql` is valid for `len` bytes (no
        // NUL terminator needed when the length is given); `raw` is a
        // valid out-pointer; the tail pointer is not wanted.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.last_error(rc));
        }
        let Some(stmt) = NonNull::new(raw) else {
            return Err(error(ffi::SQLITE_MISUSE, "empty statement"));
        };
        // SAFETY: `stmt` was just prepared and is not yet shared.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(stmt.as_ptr()) };
        let mut params = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for i in 1..=count {
            // SAFETY: `i` is within 1..=count; the name (if any) is owned
            // by the statement and read before anything else touches it.
            let name = unsafe {
                let name = ffi::sqlite3_bind_parameter_name(stmt.as_ptr(), i);
                (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
            };
            let n = name
                .as_deref()
                .and_then(|n| n.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1);
            match n {
                Some(n) => params.push(n - 1),
                None => {
                    // SAFETY: finalizing the statement we own, once.
                    unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
                    return Err(error(
                        ffi::SQLITE_MISUSE,
                        format!("placeholder {name:?} is not $1, $2, …"),
                    ));
                }
            }
        }
        Ok(Prepared { stmt, params })
    }

    fn clear_cache(&mut self) {
        for (_, prepared) in self.cache.drain() {
            // SAFETY: each cached statement is finalized once, here, and
            // dropped from the cache with it.
            unsafe { ffi::sqlite3_finalize(prepared.stmt.as_ptr()) };
        }
    }

    /// Runs `sql` with `args`; the rows it returned and the number of rows
    /// it changed.
    pub fn run(&mut self, sql: &str, args: &[Arg]) -> Result<(Vec<Vec<Value>>, u64), sqlx::Error> {
        let db = self.db;
        let prepared = self.prepared(sql)?;
        let stmt = prepared.stmt.as_ptr();
        let result = bind_and_step(stmt, &prepared.params, args);
        // SAFETY: `stmt` is a live cached statement; resetting and clearing
        // its bindings readies it for the next use whatever happened.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        match result {
            Ok(rows) => {
                // SAFETY: the handle is open.
                let changed = unsafe { ffi::sqlite3_changes64(db.as_ptr()) };
                Ok((rows, u64::try_from(changed).unwrap_or(0)))
            }
            Err(rc) => Err(self.last_error(rc)),
        }
    }
}

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(1_000);

/// How long the checkpointer, holding the write gate, waits for readers
/// to leave the WAL before it gives up its restart until the next round.
const RESTART_WAIT_MS: u32 = 5;

/// Starts the thread that checkpoints the database at `path` while the
/// write gate `gate` exists.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the
/// WAL's size threshold, with two `fsync`s, while that writer — and so,
/// behind the gate, every writer — waits: tens of milliseconds every few
/// hundred commits. Here every connection has it off and this thread, on
/// a connection of its own, first runs a PASSIVE checkpoint, which never
/// blocks writers and copies almost all of the log. Under steady writes
/// that never empties the log, so SQLite never starts it over: the WAL
/// file grows without end and every commit extends it, which on ext4
/// makes writers queue behind the checkpoint's `fsync` (seen as 2-4 ms
/// `pwrite`s, the gateway's p99). So the thread then takes the gate for a
/// RESTART of the few frames left, waiting at most [`RESTART_WAIT_MS`]
/// for readers; the next writer starts the log over from its beginning,
/// rewriting blocks the file already has.
pub fn spawn_checkpointer(
    path: &Path,
    gate: std::sync::Weak<tokio::sync::Mutex<super::group::GateState>>,
) -> Result<(), sqlx::Error> {
    let mut conn = DirectConn::open(path)?;
    conn.execute_batch(&format!("PRAGMA busy_timeout = {RESTART_WAIT_MS};"))?;
    std::thread::Builder::new()
        .name("weft-sqlite-checkpoint".into())
        .spawn(move || {
            while gate.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(err) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::warn!(%err, "WAL checkpoint failed");
                    continue;
                }
                let Some(gate) = gate.upgrade() else {
                    break;
                };
                let mut state = gate.blocking_lock();
                state.commit_open_group();
                // Busy (a long reader): the log is restarted next round.
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(RESTART);");
            }
            // The last checkpoint of a clean shutdown leaves a short WAL.
            let _ = conn.execute_batch("PRAGMA busy_timeout = 10000;");
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        })
        .map_err(sqlx::Error::Io)?;
    Ok(())
}

/// Binds `args` to `stmt` and steps it to the end, collecting the rows.
fn bind_and_step(
    stmt: *mut ffi::sqlite3_stmt,
    params: &[usize],
    args: &[Arg],
) -> Result<Vec<Vec<Value>>, c_int> {
    for (i, arg_index) in params.iter().enumerate() {
        let Some(arg) = args.get(*arg_index) else {
            return Err(ffi::SQLITE_RANGE);
        };
        let index = c_int::try_from(i + 1).map_err(|_| ffi::SQLITE_RANGE)?;
        // SAFETY: `stmt` is a live statement with a parameter at `index`;
        // text and blobs are copied by SQLite (SQLITE_TRANSIENT) before the
        // call returns, so the borrowed bytes need not outlive it.
        let rc = unsafe {
            match arg {
                Arg::Int(v) => ffi::sqlite3_bind_int64(stmt, index, *v),
                Arg::Bool(v) => ffi::sqlite3_bind_int64(stmt, index, i64::from(*v)),
                Arg::Real(v) => ffi::sqlite3_bind_double(stmt, index, *v),
                Arg::Text(v) => ffi::sqlite3_bind_text64(
                    stmt,
                    index,
                    v.as_ptr().cast(),
                    v.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Arg::Blob(v) => ffi::sqlite3_bind_blob64(
                    stmt,
                    index,
                    v.as_ptr().cast(),
                    v.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                ),
                Arg::NullText | Arg::NullInt => ffi::sqlite3_bind_null(stmt, index),
            }
        };
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
    }
    let mut rows = Vec::new();
    loop {
        // SAFETY: `stmt` is live and fully bound.
        let rc = unsafe { ffi::sqlite3_step(stmt) };
        match rc {
            ffi::SQLITE_DONE => return Ok(rows),
            ffi::SQLITE_ROW => rows.push(read_row(stmt)),
            other => return Err(other),
        }
    }
}

/// The current row of `stmt`.
fn read_row(stmt: *mut ffi::sqlite3_stmt) -> Vec<Value> {
    // SAFETY: `stmt` has just returned SQLITE_ROW, so its columns are
    // readable; every pointer SQLite returns is copied out before the next
    // call on the statement.
    unsafe {
        let count = ffi::sqlite3_column_count(stmt);
        (0..count)
            .map(|i| match ffi::sqlite3_column_type(stmt, i) {
                ffi::SQLITE_INTEGER => Value::Int(ffi::sqlite3_column_int64(stmt, i)),
                ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(stmt, i)),
                ffi::SQLITE_TEXT => {
                    let ptr = ffi::sqlite3_column_text(stmt, i);
                    let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).unwrap_or(0);
                    if ptr.is_null() {
                        Value::Text(String::new())
                    } else {
                        let bytes = std::slice::from_raw_parts(ptr, len);
                        Value::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                }
                ffi::SQLITE_BLOB => {
                    let ptr = ffi::sqlite3_column_blob(stmt, i);
                    let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).unwrap_or(0);
                    if ptr.is_null() || len == 0 {
                        Value::Blob(Vec::new())
                    } else {
                        Value::Blob(std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec())
                    }
                }
                _ => Value::Null,
            })
            .collect()
    }
}

impl Drop for DirectConn {
    fn drop(&mut self) {
        self.clear_cache();
        // SAFETY: every statement was finalized above; the handle is
        // closed once, here.
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_statements_with_placeholders_in_any_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = DirectConn::open(&dir.path().join("d.db")).expect("open");
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, b BLOB, n TEXT)")
            .expect("create");
        let (_, changed) = conn
            .run(
                "INSERT INTO t (v, k, b, n) VALUES ($2, $1, $3, $4), ($2, $5, $3, $4)",
                &[
                    Arg::Text("a".into()),
                    Arg::Int(7),
                    Arg::Blob(vec![0, 1, 255]),
                    Arg::NullText,
                    Arg::Text("b".into()),
                ],
            )
            .expect("insert");
        assert_eq!(changed, 2);
        let (rows, _) = conn
            .run(
                "SELECT k, v, b, n FROM t WHERE k = $1",
                &[Arg::Text("a".into())],
            )
            .expect("select");
        assert_eq!(
            rows,
            [vec![
                Value::Text("a".into()),
                Value::Int(7),
                Value::Blob(vec![0, 1, 255]),
                Value::Null
            ]]
        );
        let err = conn
            .run("INSERT INTO t (k) VALUES ($1)", &[Arg::Text("a".into())])
            .expect_err("duplicate");
        match err {
            sqlx::Error::Database(db) => assert!(db.is_unique_violation(), "{db}"),
            other => panic!("{other:?}"),
        }
        // The failed statement left the cached one usable.
        let (rows, _) = conn
            .run(
                "SELECT COUNT(*) FROM t WHERE k = $1",
                &[Arg::Text("b".into())],
            )
            .expect("count");
        assert_eq!(rows, [vec![Value::Int(1)]]);
        assert!(
            conn.run("SELECT ?1", &[Arg::Int(1)]).is_err(),
            "only $n placeholders"
        );
    }
}
