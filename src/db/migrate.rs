//! Applies `schema/V*__*.sql` in order, one transaction each, recorded in refinery's
//! history table, so a second run is a no-op.

use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

refinery::embed_migrations!("schema");

/// Serializes concurrent runs (two instances starting with DB_AUTO_MIGRATE at once).
const MIGRATION_LOCK_KEY: i64 = 0x4d43_5f4d_4947; // "MC_MIG"

const PGVECTOR_HELP: &str = "the PostgreSQL server has no `vector` extension (pgvector). Install it: \
on Debian/Ubuntu `apt-get install postgresql-<version>-pgvector` where packaged, or build Debian's source package \
(`apt-get source pgvector` against `postgresql-server-dev-<version>`, then `make && make install`); \
scripts/provision does this for you. In Docker use the pgvector/pgvector image.";

/// Returns the versions applied by this run (empty when the schema was up to date).
pub async fn run(settings: &DatabaseSettings) -> Result<Vec<String>, String> {
    let (mut client, connection) = settings
        .url
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect to DATABASE_URL: {e}"))?;
    let driver = tokio::spawn(connection);

    let row = client
        .query_one(
            "SELECT count(*) AS available FROM pg_available_extensions WHERE name = 'vector'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let available: i64 = crate::db::record::get(&row, "available").map_err(|e| e.to_string())?;
    if available == 0 {
        return Err(PGVECTOR_HELP.into());
    }

    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(|e| e.to_string())?;
    let report = migrations::runner().run_async(&mut client).await;
    // The lock also ends with the session; unlocking is only a courtesy.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    drop(client);
    let _ = driver.await;

    let report = report.map_err(|e| format!("migration failed: {e}"))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect())
}
