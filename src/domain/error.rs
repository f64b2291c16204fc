//! The one error type of the domain: a refusal with the `detail` the reference answers, or a
//! failure of the database (or a row of it that does not have the shape the code reads).

use std::fmt;

use serde_json::{json, Value};

use crate::db::record::RowError;

/// A refusal or failure, with the `detail` the reference answers (a string, or an object
/// such as `{"message": ..., "blocked_by_task_ids": [...]}`).
#[derive(Debug)]
pub enum DomainError {
    /// 401: a credential in the request body (a registration or relay token) is wrong.
    Unauthorized(Value),
    /// 400: a well-formed value the reference refuses by hand (a skill pack URL that is not GitHub).
    BadRequest(Value),
    NotFound(Value),
    Forbidden(Value),
    Conflict(Value),
    /// 422 with a plain detail (the reference's hand-written validation errors).
    Unprocessable(Value),
    /// The database refused or failed.
    Database(tokio_postgres::Error),
    /// No database connection could be had in time.
    Unavailable(String),
    /// A row did not have the columns (names or types) the code reads: a 500, logged like a
    /// database error.
    Row(RowError),
}

impl DomainError {
    /// PostgreSQL ended the transaction to break a deadlock (40P01) or a serialization
    /// conflict (40001): the same transaction, run again, may well pass.
    pub fn is_transient_conflict(&self) -> bool {
        matches!(self, DomainError::Unavailable(why) if why.starts_with("40P01") || why.starts_with("40001"))
    }

    /// The database is away (no connection in time, the connection lost, the server
    /// shutting down): a batch that failed so would fail item by item too, each after the
    /// same wait.
    pub fn is_database_away(&self) -> bool {
        matches!(self, DomainError::Unavailable(_)) && !self.is_transient_conflict()
    }

    pub fn not_found() -> Self {
        DomainError::NotFound(json!("Not Found"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        DomainError::Forbidden(json!(detail.into()))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        DomainError::Conflict(json!(detail.into()))
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        DomainError::Unprocessable(json!(detail.into()))
    }
}

impl DomainError {
    /// The HTTP status and `detail` a refusal answers with, for protocols that carry them in
    /// a frame (the board socket); failures of the database are not detailed.
    pub fn status_and_detail(&self) -> (u16, Value) {
        match self {
            DomainError::Unauthorized(d) => (401, d.clone()),
            DomainError::BadRequest(d) => (400, d.clone()),
            DomainError::NotFound(d) => (404, d.clone()),
            DomainError::Forbidden(d) => (403, d.clone()),
            DomainError::Conflict(d) => (409, d.clone()),
            DomainError::Unprocessable(d) => (422, d.clone()),
            DomainError::Unavailable(_) => (503, json!("Database unavailable")),
            DomainError::Database(_) | DomainError::Row(_) => {
                tracing::error!(error = %self, "database error");
                (500, json!("Internal Server Error"))
            }
        }
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Unauthorized(d) => write!(f, "unauthorized: {d}"),
            DomainError::BadRequest(d) => write!(f, "bad request: {d}"),
            DomainError::NotFound(d) => write!(f, "not found: {d}"),
            DomainError::Forbidden(d) => write!(f, "forbidden: {d}"),
            DomainError::Conflict(d) => write!(f, "conflict: {d}"),
            DomainError::Unprocessable(d) => write!(f, "unprocessable: {d}"),
            DomainError::Database(e) => match e.as_db_error() {
                // The server's own message and code; "db error" alone says nothing.
                Some(db) => write!(f, "database: {} ({})", db.message(), db.code().code()),
                None => write!(f, "database: {e}"),
            },
            DomainError::Unavailable(e) => write!(f, "database unavailable: {e}"),
            DomainError::Row(e) => write!(f, "database: {e}"),
        }
    }
}

impl From<tokio_postgres::Error> for DomainError {
    /// What a failure means for the caller: the database went away or is restarting (503:
    /// try again), two requests raced on the same rows (409), or a fault (500, logged).
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let code = e.code();
        let lost = e.is_closed()
            || code.is_some_and(|c| {
                c.code().starts_with("08")
                    || [
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CRASH_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                        SqlState::TOO_MANY_CONNECTIONS,
                        SqlState::T_R_SERIALIZATION_FAILURE,
                        SqlState::T_R_DEADLOCK_DETECTED,
                    ]
                    .contains(c)
            })
            || (code.is_none()
                && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()));
        if lost {
            // The driver's own text of a server error is just "db error": keep its words.
            let why = e.as_db_error().map_or_else(
                || e.to_string(),
                |d| format!("{}: {}", d.code().code(), d.message()),
            );
            return DomainError::Unavailable(why);
        }
        // `query_one` finding no row: what a request named went away under it (deleted by a
        // request that committed first). The driver has no other sign for it.
        if code.is_none() && e.to_string() == "query returned an unexpected number of rows" {
            return DomainError::NotFound(json!("Not Found"));
        }
        if code.is_some_and(|c| {
            [SqlState::UNIQUE_VIOLATION, SqlState::FOREIGN_KEY_VIOLATION].contains(c)
        }) {
            // Checks before the write passed: another request changed the same rows meanwhile.
            tracing::info!(error = %e, "a request raced another");
            return DomainError::conflict(
                "The request conflicts with a concurrent change; try again.",
            );
        }
        DomainError::Database(e)
    }
}

impl From<RowError> for DomainError {
    fn from(e: RowError) -> Self {
        DomainError::Row(e)
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for DomainError {
    fn from(e: bb8::RunError<tokio_postgres::Error>) -> Self {
        match e {
            bb8::RunError::User(e) => DomainError::Database(e),
            bb8::RunError::TimedOut => {
                DomainError::Unavailable("timed out waiting for a connection".into())
            }
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
