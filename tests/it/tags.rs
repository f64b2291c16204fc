//! Task-facing tag, custom-field and approval queries, against SQL-fixture tasks.

use mission_control::domain::{approvals, custom_fields, tags, DomainError};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::harness::Server;

/// A board and one task in the admin's organization: (organization, board, task).
async fn fixture(server: &Server, client: &tokio_postgres::Client) -> (Uuid, Uuid, Uuid) {
    // The admin user and its organization appear on first authentication.
    assert_eq!(server.admin_get("/api/v1/users/me").await.status, 200);
    let org: Uuid = client
        .query_one("SELECT active_organization_id FROM users LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    let (board, task) = (Uuid::new_v4(), Uuid::new_v4());
    client
        .execute(
            "INSERT INTO boards (id, organization_id, name) VALUES ($1, $2, 'b')",
            &[&board, &org],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO tasks (id, organization_id, board_id, title) VALUES ($1, $2, $3, 't')",
            &[&task, &org, &board],
        )
        .await
        .unwrap();
    (org, board, task)
}

#[actix_web::test]
async fn task_tags_are_replaced_in_order_and_foreign_ids_are_missing() {
    let server = Server::start().await;
    let client = server.db.client().await;
    let (org, _, task) = fixture(&server, &client).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, slug) in [(a, "a"), (b, "b")] {
        client
            .execute(
                "INSERT INTO tags (id, organization_id, name, slug) VALUES ($1, $2, $3, $3)",
                &[&id, &org, &slug],
            )
            .await
            .unwrap();
    }
    tags::replace_task_tags(&client, org, task, &[b, a, b])
        .await
        .unwrap();
    let got = tags::tags_for_tasks(&client, &[task]).await.unwrap();
    let slugs: Vec<&str> = got[&task].iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(slugs, ["b", "a"]);

    let stranger = Uuid::new_v4();
    match tags::replace_task_tags(&client, org, task, &[a, stranger]).await {
        Err(DomainError::NotFound(d)) => assert_eq!(d["missing_tag_ids"], json!([stranger])),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[actix_web::test]
async fn approval_state_and_counts_follow_links_and_legacy_task_id() {
    let server = Server::start().await;
    let client = server.db.client().await;
    let (org, board, task) = fixture(&server, &client).await;
    assert_eq!(
        approvals::task_approval_state(&client, board, task)
            .await
            .unwrap(),
        approvals::TaskApprovalState::default()
    );
    let (pending, approved) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, status) in [(pending, "pending"), (approved, "approved")] {
        client
            .execute(
                "INSERT INTO approvals (id, organization_id, board_id, action_type, confidence, status) \
                 VALUES ($1, $2, $3, 'x', 50, $4)",
                &[&id, &org, &board, &status],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "UPDATE approvals SET task_id = $1 WHERE id = $2",
            &[&task, &approved],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO approval_task_links (id, approval_id, task_id) VALUES ($1, $2, $3)",
            &[&Uuid::new_v4(), &pending, &task],
        )
        .await
        .unwrap();
    let state = approvals::task_approval_state(&client, board, task)
        .await
        .unwrap();
    assert!(state.has_pending && state.has_approved);
    assert_eq!(
        approvals::approval_counts(&client, &[task]).await.unwrap()[&task],
        (2, 1)
    );
}

#[actix_web::test]
async fn custom_field_values_validate_default_and_delete() {
    let server = Server::start().await;
    let client = server.db.client().await;
    let (org, board, task) = fixture(&server, &client).await;
    let (n, d) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, key, ty, default) in [
        (n, "n", "integer", None),
        (d, "d", "date", Some(json!("2024-01-02"))),
    ] {
        client
            .execute(
                "INSERT INTO task_custom_field_definitions (id, organization_id, field_key, label, field_type, default_value) \
                 VALUES ($1, $2, $3, $3, $4, $5)",
                &[&id, &org, &key, &ty, &default],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO board_task_custom_fields (id, board_id, task_custom_field_definition_id) VALUES ($1, $2, $3)",
                &[&Uuid::new_v4(), &board, &id],
            )
            .await
            .unwrap();
    }
    let map = |v: Value| -> Map<String, Value> { v.as_object().cloned().unwrap() };
    match custom_fields::apply_on_create(&client, board, task, &map(json!({"zz": 1}))).await {
        Err(DomainError::Unprocessable(e)) => assert_eq!(e["unknown_field_keys"], json!(["zz"])),
        other => panic!("expected 422, got {other:?}"),
    }
    match custom_fields::apply_on_create(&client, board, task, &map(json!({"n": true}))).await {
        Err(DomainError::Unprocessable(e)) => assert_eq!(e["field_key"], "n"),
        other => panic!("expected 422, got {other:?}"),
    }
    custom_fields::apply_on_create(&client, board, task, &map(json!({"n": 3})))
        .await
        .unwrap();
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM task_custom_field_values WHERE task_id = $1",
            &[&task],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2, "the default is persisted on create");
    custom_fields::apply_on_update(&client, board, task, &map(json!({"n": null})))
        .await
        .unwrap();
    let values = custom_fields::values_for_tasks(&client, board, &[task])
        .await
        .unwrap();
    assert_eq!(
        Value::Object(values[&task].clone()),
        json!({"n": null, "d": "2024-01-02"})
    );
}
