//! Queries and rules, one module per resource. Nothing here knows HTTP or actors.

pub mod accounts;

use std::fmt;

#[derive(Debug)]
pub enum DomainError {
    /// The database refused or failed.
    Database(tokio_postgres::Error),
    /// No database connection could be had in time.
    Unavailable(String),
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Database(e) => write!(f, "database: {e}"),
            DomainError::Unavailable(e) => write!(f, "database unavailable: {e}"),
        }
    }
}

impl From<tokio_postgres::Error> for DomainError {
    fn from(e: tokio_postgres::Error) -> Self {
        DomainError::Database(e)
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
