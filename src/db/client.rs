//! Our handle on a pooled PostgreSQL connection: the connection and the statements already
//! prepared on it. A query's text is parsed (and, after a few runs, planned) by PostgreSQL
//! once per connection, not on every call: under chat and task writes the server's CPU went
//! mostly to parsing and planning the same few dozen statements, and a prepare-then-run
//! took two round trips where a cached statement takes one.
//!
//! Domain code takes `&impl GenericClient` (a connection or a transaction of one) and calls
//! `query`/`query_one`/`query_opt`/`execute` with SQL text, as with tokio-postgres's own
//! trait (sealed, so it cannot carry a cache).
//!
//! A statement is prepared with its parameters' types when every value is of a type in
//! [`TYPES`] (what the values encode as, so a parameter the query leaves unused still has
//! a type), else PostgreSQL infers them. Prepared statements are not undone by a
//! rollback, so one made inside a transaction stays usable after it. The cache is bounded;
//! when it is full it starts again (dropping a statement closes it on the server).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use bytes::BytesMut;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type, WrongType};
use tokio_postgres::{Error, IsolationLevel, Row, Statement};

pub type Param<'a> = &'a (dyn ToSql + Sync);

/// Statements kept per connection: every query text the server sends is far fewer (the
/// text of a query with optional filters varies with the filters, not with values).
pub const CAPACITY: usize = 512;

/// Tried in order: the first that a value takes is what it is sent as. `JSONB` before
/// `JSON`, and `TEXT` for every string, as the schema uses them.
const TYPES: [Type; 13] = [
    Type::UUID,
    Type::TEXT,
    Type::INT8,
    Type::BOOL,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::JSONB,
    Type::UUID_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
    Type::JSONB_ARRAY,
    Type::BYTEA,
];

/// The parameters' types, if every one is of a type in `TYPES`.
fn types_of(params: &[Param<'_>]) -> Option<Vec<Type>> {
    let mut scratch = BytesMut::new();
    params
        .iter()
        .map(|p| {
            TYPES
                .iter()
                .find(|ty| {
                    scratch.clear();
                    p.to_sql_checked(ty, &mut scratch).is_ok()
                })
                .cloned()
        })
        .collect()
}

/// The statements prepared on one connection, by query text.
#[derive(Default)]
pub struct Statements(Mutex<HashMap<Box<str>, Statement>>);

impl Statements {
    fn cached(&self, sql: &str) -> Option<Statement> {
        self.lock().get(sql).cloned()
    }

    async fn get(
        &self,
        pg: &tokio_postgres::Client,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Statement, Error> {
        match self.cached(sql) {
            Some(statement) => Ok(statement),
            None => self.prepare(pg, sql, params).await,
        }
    }

    /// Prepares `sql` for these values and keeps it (replacing one prepared for values of
    /// other types: the same text sent with other Rust types somewhere else).
    async fn prepare(
        &self,
        pg: &tokio_postgres::Client,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Statement, Error> {
        let statement = match types_of(params) {
            Some(types) => pg.prepare_typed(sql, &types).await?,
            None => pg.prepare(sql).await?,
        };
        let mut cache = self.lock();
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(sql.into(), statement.clone());
        Ok(statement)
    }

    fn forget(&self, sql: &str) {
        self.lock().remove(sql);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Statement>> {
        // The map is valid whatever a panicking holder did: a lookup or an insert.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The values' Rust types do not fit the cached statement's parameter types (found before
/// anything is sent, so a transaction is not aborted by it).
fn wrong_type(e: &Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<WrongType>())
}

/// The server no longer has the statement, or its plan's result changed shape (the schema
/// changed under it): prepare it afresh next time.
fn stale(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::INVALID_SQL_STATEMENT_NAME) | Some(&SqlState::FEATURE_NOT_SUPPORTED)
    )
}

/// Runs `$method` of tokio-postgres's client with the cached statement of `$sql`.
macro_rules! cached {
    ($self:ident, $method:ident, $sql:ident, $params:ident) => {{
        let (pg, statements) = $self.parts();
        let statement = statements.get(pg, $sql, $params).await?;
        match pg.$method(&statement, $params).await {
            Err(e) if wrong_type(&e) => {
                let statement = statements.prepare(pg, $sql, $params).await?;
                pg.$method(&statement, $params).await
            }
            Err(e) if stale(&e) => {
                statements.forget($sql);
                Err(e)
            }
            done => done,
        }
    }};
}

/// A connection or a transaction on one: what every query function takes.
pub trait GenericClient: Sync {
    /// The connection the queries go to, and its statements.
    fn parts(&self) -> (&tokio_postgres::Client, &Statements);

    fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
        async move { cached!(self, query, sql, params) }
    }

    /// Exactly one row, else an error.
    fn query_one(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Row, Error>> + Send {
        async move { cached!(self, query_one, sql, params) }
    }

    /// At most one row, else an error.
    fn query_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send {
        async move { cached!(self, query_opt, sql, params) }
    }

    /// The number of rows the statement changed.
    fn execute(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        async move { cached!(self, execute, sql, params) }
    }

    /// Statements without parameters, sent as one simple query (nothing is cached).
    fn batch_execute(&self, sql: &str) -> impl Future<Output = Result<(), Error>> + Send {
        async move { self.parts().0.batch_execute(sql).await }
    }
}

/// The pool's connection.
pub struct Client {
    pg: tokio_postgres::Client,
    statements: Statements,
}

impl Client {
    pub fn new(pg: tokio_postgres::Client) -> Self {
        Client {
            pg,
            statements: Statements::default(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.pg.is_closed()
    }

    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        Ok(Transaction {
            pg: self.pg.transaction().await?,
            statements: &self.statements,
        })
    }

    /// A read-only transaction that reads one consistent snapshot: the parts of a
    /// denormalized read then agree with each other. Begun by one statement.
    pub async fn snapshot(&mut self) -> Result<Transaction<'_>, Error> {
        let pg = self
            .pg
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        Ok(Transaction {
            pg,
            statements: &self.statements,
        })
    }
}

impl GenericClient for Client {
    fn parts(&self) -> (&tokio_postgres::Client, &Statements) {
        (&self.pg, &self.statements)
    }
}

/// A transaction on a pooled connection; dropped without `commit`, it rolls back.
pub struct Transaction<'a> {
    pg: tokio_postgres::Transaction<'a>,
    statements: &'a Statements,
}

impl Transaction<'_> {
    pub async fn commit(self) -> Result<(), Error> {
        self.pg.commit().await
    }

    pub async fn rollback(self) -> Result<(), Error> {
        self.pg.rollback().await
    }

    /// A savepoint: committing it releases it, dropping it rolls back to it.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        Ok(Transaction {
            pg: self.pg.transaction().await?,
            statements: self.statements,
        })
    }
}

impl GenericClient for Transaction<'_> {
    fn parts(&self) -> (&tokio_postgres::Client, &Statements) {
        (self.pg.client(), self.statements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    #[test]
    fn values_are_prepared_as_their_own_types() {
        let (id, text, n, flag) = (Uuid::new_v4(), "x".to_string(), 5i64, true);
        let (none, list, now): (Option<Uuid>, Vec<String>, _) = (None, vec![], Utc::now());
        let json = serde_json::json!({"a": 1});
        let types = types_of(&[&id, &text, &n, &flag, &none, &list, &now, &json]).unwrap();
        assert_eq!(
            types,
            [
                Type::UUID,
                Type::TEXT,
                Type::INT8,
                Type::BOOL,
                Type::UUID,
                Type::TEXT_ARRAY,
                Type::TIMESTAMPTZ,
                Type::JSONB
            ]
        );
        // A type outside the list: PostgreSQL infers the parameters' types.
        assert!(types_of(&[&1.5f32]).is_none());
    }
}
