//! Reads on SQLite through connections driven in the calling thread, like
//! the writer's (`direct.rs`): a plugin call's kv and docs reads made before
//! its first write would otherwise each cross to one of sqlx's connection
//! threads and back, most of a read's time on a busy machine.
//!
//! Connections are kept in a small stack and lent one call at a time; each
//! statement runs in autocommit, as the pool's reads do (in WAL mode a read
//! never waits for the writer).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::direct::DirectConn;
use super::exec::{Exec, Row, Stmt};

/// Connections kept for reuse; more may be open while many calls read.
const KEPT: usize = 8;

/// The idle read connections of one database file.
#[derive(Debug)]
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<DirectConn>>,
}

impl ReadPool {
    /// A pool for the database at `path` (connections open on first use).
    pub fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            path,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A connection for one reader: an idle one, or a new one.
    pub fn lend(self: &Arc<Self>) -> Result<DirectRead, sqlx::Error> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => DirectConn::open(&self.path)?,
        };
        Ok(DirectRead {
            conn: Some(conn),
            pool: self.clone(),
        })
    }
}

/// A lent read connection; goes back to its pool when dropped.
#[derive(Debug)]
pub struct DirectRead {
    conn: Option<DirectConn>,
    pool: Arc<ReadPool>,
}

impl DirectRead {
    fn conn(&mut self) -> Result<&mut DirectConn, sqlx::Error> {
        self.conn
            .as_mut()
            .ok_or_else(|| sqlx::Error::Protocol("the read connection is gone".into()))
    }
}

impl Exec for DirectRead {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        Ok(self.conn()?.run(&stmt.sql, &stmt.args)?.1)
    }

    async fn fetch_all(&mut self, stmt: Stmt) -> Result<Vec<Row>, sqlx::Error> {
        let (rows, _) = self.conn()?.run(&stmt.sql, &stmt.args)?;
        Ok(rows.into_iter().map(Row::Direct).collect())
    }
}

impl Drop for DirectRead {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEPT {
                idle.push(conn);
            }
        }
    }
}
