//! PostgreSQL: the connection pool and the migration runner.

pub mod cache;
pub mod client;
pub mod listen;
pub mod memo;
pub mod migrate;
pub mod record;

/// `crate::db::record!`: see [`record`].
pub use crate::record;
pub use client::{Client, GenericClient, Transaction};

use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

pub type PgPool = bb8::Pool<Manager>;
pub type PgConn<'a> = bb8::PooledConnection<'a, Manager>;

/// `bb8_postgres`'s manager, with a check at checkout that costs no round trip: its own
/// sends an empty query each time, which was a third of all statements under H5 chat. A
/// connection whose socket closed (the server restarted, the backend was terminated) is
/// still found and replaced at checkout.
pub struct Manager(PostgresConnectionManager<NoTls>);

impl bb8::ManageConnection for Manager {
    type Connection = Client;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.0.connect().await.map(Client::new)
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        if conn.is_closed() {
            // Fails at once, without the network: the error says the connection closed.
            return conn.batch_execute("").await;
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        conn.is_closed()
    }
}

/// How long a request waits for a pooled connection before answering 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The pool connects lazily, so the server starts (and reports not-ready) while the
/// database is still coming up.
pub fn pool(settings: &DatabaseSettings) -> PgPool {
    let manager = Manager(PostgresConnectionManager::new(settings.url.clone(), NoTls));
    bb8::Pool::builder()
        .max_size(settings.pool_size)
        .connection_timeout(CHECKOUT_TIMEOUT)
        .build_unchecked(manager)
}

/// `SELECT 1` within `timeout`: the readiness check.
pub async fn ping(pool: &PgPool, timeout: Duration) -> Result<(), String> {
    let check = async {
        let conn = pool.get().await.map_err(|e| e.to_string())?;
        conn.batch_execute("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// Runs `$body` (an expression using `tx`) in one transaction and commits on success:
/// the "one transaction per request" of every write handler. `snapshot |tx|` makes it a
/// read-only one that reads one snapshot (`Client::snapshot`).
macro_rules! in_transaction {
    ($state:expr, |$tx:ident| $body:expr) => {
        $crate::db::in_transaction!(@begin transaction, $state, $tx, $body)
    };
    ($state:expr, snapshot |$tx:ident| $body:expr) => {
        $crate::db::in_transaction!(@begin snapshot, $state, $tx, $body)
    };
    (@begin $begin:ident, $state:expr, $tx:ident, $body:expr) => {{
        let mut conn = $state
            .db
            .get()
            .await
            .map_err($crate::domain::DomainError::from)?;
        let $tx = conn
            .$begin()
            .await
            .map_err($crate::domain::DomainError::from)?;
        let value = $body.await?;
        $tx.commit()
            .await
            .map_err($crate::domain::DomainError::from)?;
        value
    }};
}
pub(crate) use in_transaction;
