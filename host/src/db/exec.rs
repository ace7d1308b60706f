//! Statements that run the same way over sqlx (PostgreSQL, and SQLite reads)
//! and over the direct SQLite connection units of work write through: the
//! SQL text with its arguments ([`Stmt`]), the rows that come back
//! ([`Row`]), and [`Exec`], what runs them.

use std::future::Future;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Tx;

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
    /// A NULL where a text is expected.
    NullText,
    /// A NULL where an integer is expected.
    NullInt,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}

impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Blob(v.to_vec())
    }
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(v)
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        v.map_or(Arg::NullText, Arg::Text)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Arg::NullText, |s| Arg::Text(s.to_owned()))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

/// SQL text and the arguments of its `$1`, `$2`, … placeholders.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Stmt {
    /// `sql` with no arguments yet. The text must be fixed or built from
    /// checked parts; values always go in as arguments.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    #[must_use]
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The statement as a sqlx query.
    fn sqlx(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for arg in &self.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Real(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.as_str()),
                Arg::Blob(v) => query.bind(v.as_slice()),
                Arg::NullText => query.bind(None::<String>),
                Arg::NullInt => query.bind(None::<i64>),
            };
        }
        query
    }
}

/// A value read from a direct SQLite row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A row, from either connection kind.
pub enum Row {
    Any(AnyRow),
    Direct(Vec<Value>),
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Row::Any(row) => write!(f, "Row::Any({} columns)", sqlx::Row::len(row)),
            Row::Direct(values) => f.debug_tuple("Row::Direct").field(values).finish(),
        }
    }
}

impl Row {
    /// Column `i` (0-based) as a `T`.
    pub fn get<T: Cell>(&self, i: usize) -> Result<T, sqlx::Error> {
        match self {
            Row::Any(row) => T::from_any(row, i),
            Row::Direct(values) => {
                let value = values.get(i).ok_or(sqlx::Error::ColumnIndexOutOfBounds {
                    index: i,
                    len: values.len(),
                })?;
                T::from_value(value).ok_or_else(|| sqlx::Error::ColumnDecode {
                    index: i.to_string(),
                    source: format!("unexpected SQLite value {value:?}").into(),
                })
            }
        }
    }
}

/// A type a column can be read as.
pub trait Cell: Sized {
    fn from_any(row: &AnyRow, i: usize) -> Result<Self, sqlx::Error>;
    fn from_value(value: &Value) -> Option<Self>;
}

impl Cell for i64 {
    fn from_any(row: &AnyRow, i: usize) -> Result<Self, sqlx::Error> {
        row.try_get(i)
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl Cell for String {
    fn from_any(row: &AnyRow, i: usize) -> Result<Self, sqlx::Error> {
        row.try_get(i)
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl Cell for Vec<u8> {
    fn from_any(row: &AnyRow, i: usize) -> Result<Self, sqlx::Error> {
        row.try_get(i)
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(v) => Some(v.clone()),
            // SQLite keeps what was bound: a text read as bytes is its UTF-8.
            Value::Text(v) => Some(v.clone().into_bytes()),
            _ => None,
        }
    }
}

impl<T: Cell> Cell for Option<T> {
    fn from_any(row: &AnyRow, i: usize) -> Result<Self, sqlx::Error> {
        use sqlx::ValueRef as _;
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(None);
        }
        T::from_any(row, i).map(Some)
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// What runs [`Stmt`]s: a sqlx transaction or connection, or a unit of
/// work's own transaction (see `storage::UnitOfWork`).
pub trait Exec: Send {
    /// Runs `stmt`; the number of rows it changed.
    fn execute(&mut self, stmt: Stmt) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs `stmt`; every row it returned.
    fn fetch_all(
        &mut self,
        stmt: Stmt,
    ) -> impl Future<Output = Result<Vec<Row>, sqlx::Error>> + Send;

    /// Runs `stmt`; its first row, if any.
    fn fetch_optional(
        &mut self,
        stmt: Stmt,
    ) -> impl Future<Output = Result<Option<Row>, sqlx::Error>> + Send {
        async move { Ok(self.fetch_all(stmt).await?.into_iter().next()) }
    }
}

impl Exec for Tx {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        Ok(stmt.sqlx().execute(&mut **self).await?.rows_affected())
    }

    async fn fetch_all(&mut self, stmt: Stmt) -> Result<Vec<Row>, sqlx::Error> {
        let rows = stmt.sqlx().fetch_all(&mut **self).await?;
        Ok(rows.into_iter().map(Row::Any).collect())
    }
}
