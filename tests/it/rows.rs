//! Records read from real rows: a row whose columns do not match answers a `RowError`
//! (a 500), never a panic; the macro's hook and JSON fields work on what PostgreSQL sends.

use mission_control::db::record::{self, Record, RowError};
use mission_control::domain::model::{Board, TaskStatus};
use mission_control::domain::DomainError;
use tokio_postgres::types::Json;

use crate::harness::TestDb;

async fn one_row(sql: &str) -> tokio_postgres::Row {
    let db = TestDb::create().await;
    let client = db.client().await;
    client.query_one(sql, &[]).await.expect(sql)
}

#[actix_web::test]
async fn a_row_of_other_columns_is_a_row_error_not_a_panic() {
    // The right name, the wrong type.
    let error = Board::from_row(&one_row("SELECT 1 AS id").await).unwrap_err();
    assert_eq!((error.record, error.column), ("Board", "id"));

    // Too few columns.
    let error = Board::from_row(&one_row("SELECT gen_random_uuid() AS id").await).unwrap_err();
    assert_eq!(error.column, "organization_id");
    assert!(error.problem.contains("only 1 columns"), "{error}");

    // Another name where the record expects `id`.
    let error =
        Board::from_row(&one_row("SELECT gen_random_uuid() AS board_id").await).unwrap_err();
    assert_eq!(error.column, "id");
    assert!(error.problem.contains("named board_id"), "{error}");

    // A query's own read by a name the row lacks.
    let row = one_row("SELECT count(*) AS total FROM pg_database").await;
    assert!(record::get::<i64>(&row, "total").is_ok());
    let error: RowError = record::get::<i64>(&row, "count").unwrap_err();
    assert_eq!((error.record, error.column), ("query", "count"));

    // In the domain it is a 500 with no detail.
    let (status, detail) = DomainError::from(error).status_and_detail();
    assert_eq!(
        (status, detail),
        (500, serde_json::json!("Internal Server Error"))
    );
}

#[actix_web::test]
async fn a_text_enum_reads_known_values_and_refuses_others() {
    let row = one_row("SELECT 'in_progress'::text AS status, 'paused'::text AS other").await;
    let status: TaskStatus = record::get(&row, "status").unwrap();
    assert_eq!(status, TaskStatus::InProgress);
    let error = record::get::<TaskStatus>(&row, "other").unwrap_err();
    assert!(error.problem.contains("paused"), "{error}");
}

mission_control::record! {
    struct Settled in "t" after Settled::settle {
        stored: String,
        tags: Vec<String> as Json<Vec<String>>,
        note: Option<String> = "NULL::text",
    }
}

impl Settled {
    fn settle(&mut self) {
        self.note = Some(format!("settled {}", self.stored));
    }
}

#[actix_web::test]
async fn the_after_hook_runs_and_json_fields_decode_on_a_real_row() {
    let sql = format!(
        "SELECT {}, 42 AS extra FROM (SELECT 'online'::text AS stored, '[\"a\", \"b\"]'::jsonb AS tags) t",
        Settled::COLUMNS
    );
    let row = one_row(&sql).await;
    let settled = Settled::from_row(&row).unwrap();
    assert_eq!(settled.note.as_deref(), Some("settled online"));
    assert_eq!(settled.tags, ["a", "b"]);
    // What follows the record is read by name.
    assert_eq!(record::get::<i32>(&row, "extra").unwrap(), 42);
    // A record read further along the row does not find its columns there.
    assert!(Settled::from_row_at(&row, 1).is_err());
    assert_eq!(Settled::WIDTH, 3);
}
