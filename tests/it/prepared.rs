//! The statements a pooled connection keeps prepared (`db::client`): parsed once, usable
//! after a rollback, re-prepared for values of other types or a changed schema, bounded.

use mission_control::db::client::CAPACITY;
use mission_control::db::GenericClient;

use crate::harness::TestDb;

/// How many statements with this text the connection has prepared.
async fn prepared(client: &impl GenericClient, sql: &str) -> i64 {
    let row = client
        .query_one(
            "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = $1",
            &[&sql],
        )
        .await
        .unwrap();
    row.get("n")
}

#[actix_web::test]
async fn a_query_is_prepared_once_and_outlives_a_rolled_back_transaction() {
    let db = TestDb::create().await;
    let mut client = db.app_client().await;
    let sql = "SELECT $1::text || '!' AS shout";

    let tx = client.transaction().await.unwrap();
    let row = tx.query_one(sql, &[&"a"]).await.unwrap();
    assert_eq!(row.get::<_, String>("shout"), "a!");
    tx.rollback().await.unwrap();

    for word in ["b", "c", "d"] {
        let row = client.query_one(sql, &[&word]).await.unwrap();
        assert_eq!(row.get::<_, String>("shout"), format!("{word}!"));
    }
    assert_eq!(prepared(&client, sql).await, 1);
}

#[actix_web::test]
async fn the_same_text_with_values_of_another_type_is_prepared_again_without_aborting() {
    let db = TestDb::create().await;
    let mut client = db.app_client().await;
    // The parameter's type comes from the value: PostgreSQL could not infer it here.
    let sql = "SELECT pg_typeof($1)::text AS t";
    let tx = client.transaction().await.unwrap();
    let type_of = |row: tokio_postgres::Row| row.get::<_, String>("t");
    assert_eq!(
        type_of(tx.query_one(sql, &[&5i64]).await.unwrap()),
        "bigint"
    );
    assert_eq!(
        type_of(tx.query_one(sql, &[&"five"]).await.unwrap()),
        "text"
    );
    // The transaction was not aborted by the mismatch (found before anything was sent).
    tx.execute("CREATE TABLE still_open (a int)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(prepared(&client, sql).await, 1);
}

#[actix_web::test]
async fn a_statement_whose_result_changed_shape_is_prepared_again_at_the_next_call() {
    let db = TestDb::create().await;
    let client = db.app_client().await;
    client
        .batch_execute("CREATE TABLE shapes (a int); INSERT INTO shapes VALUES (1)")
        .await
        .unwrap();
    let sql = "SELECT * FROM shapes";
    assert_eq!(client.query(sql, &[]).await.unwrap()[0].len(), 1);
    client
        .batch_execute("ALTER TABLE shapes ADD COLUMN b int DEFAULT 2")
        .await
        .unwrap();
    // PostgreSQL refuses the old plan once ("cached plan must not change result type")...
    let stale = client.query(sql, &[]).await;
    if let Err(e) = &stale {
        assert!(format!("{e:?}").contains("cached plan"), "{e:?}");
    }
    // ...and the next call prepares the statement afresh.
    let again = client.query(sql, &[]).await;
    assert_eq!(again.map_err(|e| format!("{e:?}")).unwrap()[0].len(), 2);
}

#[actix_web::test]
async fn a_connection_keeps_a_bounded_number_of_statements() {
    let db = TestDb::create().await;
    let client = db.app_client().await;
    for n in 0..CAPACITY + 50 {
        let row = client
            .query_one(&format!("SELECT {n}::int8 AS n"), &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>("n"), n as i64);
    }
    let row = client
        .query_one("SELECT count(*) AS n FROM pg_prepared_statements", &[])
        .await
        .unwrap();
    let kept = row.get::<_, i64>("n") as usize;
    assert!(kept <= CAPACITY + 1, "{kept} statements kept");
}
