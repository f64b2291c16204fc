//! Task-facing tag, custom-field and approval queries, against SQL-fixture tasks; and the
//! tag CRUD of domain.md §A11.

use awc::http::Method;
use mission_control::db::GenericClient;
use mission_control::domain::{tasks::approvals, tasks::field_values, tasks::tags, DomainError};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::fixtures::{delete, send, set_admin_role, switch_to_new_org};
use crate::harness::{Reply, Server};

/// A board and one task in the admin's organization: (organization, board, task).
pub async fn fixture(server: &Server, client: &mission_control::db::Client) -> (Uuid, Uuid, Uuid) {
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
    server.caches_caught_up().await;
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
    let client = server.db.app_client().await;
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
    let client = server.db.app_client().await;
    let (org, board, task) = fixture(&server, &client).await;
    assert_eq!(
        approvals::task_approval_state(&client, board, task)
            .await
            .unwrap(),
        mission_control::domain::model::TaskApprovalState::default()
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
    let client = server.db.app_client().await;
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
    match field_values::apply_on_create(&client, board, task, &map(json!({"zz": 1}))).await {
        Err(DomainError::Unprocessable(e)) => assert_eq!(e["unknown_field_keys"], json!(["zz"])),
        other => panic!("expected 422, got {other:?}"),
    }
    match field_values::apply_on_create(&client, board, task, &map(json!({"n": true}))).await {
        Err(DomainError::Unprocessable(e)) => assert_eq!(e["field_key"], "n"),
        other => panic!("expected 422, got {other:?}"),
    }
    let created = field_values::apply_on_create(&client, board, task, &map(json!({"n": 3})))
        .await
        .unwrap();
    // What it returns is what a read finds (the new task's read uses it instead).
    let read = field_values::values_for_tasks(&client, board, &[task])
        .await
        .unwrap();
    assert_eq!(read[&task], created);
    assert_eq!(Value::Object(created), json!({"n": 3, "d": "2024-01-02"}));
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM task_custom_field_values WHERE task_id = $1",
            &[&task],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2, "the default is persisted on create");
    field_values::apply_on_update(&client, board, task, &map(json!({"n": null})))
        .await
        .unwrap();
    let values = field_values::values_for_tasks(&client, board, &[task])
        .await
        .unwrap();
    assert_eq!(
        Value::Object(values[&task].clone()),
        json!({"n": null, "d": "2024-01-02"})
    );
}

async fn create_tag(server: &Server, body: Value) -> Value {
    let reply = send(server, Method::POST, "/api/v1/tags", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn tag_path(tag: &Value) -> String {
    format!("/api/v1/tags/{}", tag["id"].as_str().unwrap())
}

/// A 422 whose first pydantic-style item is at `loc` with `msg`.
fn invalid(reply: &Reply, loc: Value, msg: &str) {
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.json["detail"][0]["loc"], loc, "{}", reply.text);
    assert_eq!(reply.json["detail"][0]["msg"], msg, "{}", reply.text);
}

#[actix_web::test]
async fn tags_are_created_listed_counted_updated_and_deleted() {
    let server = Server::start().await;
    let client = server.db.app_client().await;
    let (org, _, task) = fixture(&server, &client).await;

    let review = create_tag(
        &server,
        json!({"name": "  Needs Review ", "color": " #FFAA00", "description": "look"}),
    )
    .await;
    assert_eq!(review["name"], "Needs Review");
    assert_eq!(review["slug"], "needs-review");
    assert_eq!(review["color"], "ffaa00");
    assert_eq!(review["description"], "look");
    assert_eq!(review["organization_id"], org.to_string());
    assert_eq!(review["task_count"], 0);
    let alpha = create_tag(&server, json!({"name": "alpha", "slug": " Front End "})).await;
    assert_eq!(alpha["slug"], "front-end");
    assert_eq!(alpha["color"], "9e9e9e");
    assert_eq!(alpha["description"], Value::Null);
    assert_eq!(
        create_tag(&server, json!({"name": "???"})).await["slug"],
        "tag"
    );

    let review_id: Uuid = review["id"].as_str().unwrap().parse().unwrap();
    tags::replace_task_tags(&client, org, task, &[review_id])
        .await
        .unwrap();
    let page = server.admin_get("/api/v1/tags?limit=2").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        (page.json["total"].clone(), page.json["limit"].clone()),
        (json!(3), json!(2))
    );
    let items = page.json["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["???", "alpha"], "by name");
    let rest = server.admin_get("/api/v1/tags?offset=2").await;
    assert_eq!(rest.json["items"][0]["name"], "Needs Review");
    assert_eq!(rest.json["items"][0]["task_count"], 1);
    assert_eq!(
        server.admin_get(&tag_path(&review)).await.json["task_count"],
        1
    );

    // A new name keeps the slug; an explicit null slug derives it again from the name.
    let renamed = send(
        &server,
        Method::PATCH,
        &tag_path(&review),
        json!({"name": "Blocked"}),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.json["slug"], "needs-review");
    assert_eq!(renamed.json["task_count"], 1);
    let reslugged = send(
        &server,
        Method::PATCH,
        &tag_path(&review),
        json!({"slug": null, "description": null, "color": "00FF00"}),
    )
    .await;
    assert_eq!(reslugged.status, 200, "{}", reslugged.text);
    assert_eq!(reslugged.json["slug"], "blocked");
    assert_eq!(reslugged.json["description"], Value::Null);
    assert_eq!(reslugged.json["color"], "00ff00");

    let deleted = delete(&server, &tag_path(&review)).await;
    assert_eq!(
        (deleted.status.as_u16(), deleted.json.clone()),
        (200, json!({"ok": true}))
    );
    assert_eq!(server.admin_get(&tag_path(&review)).await.status, 404);
    assert!(tags::tags_for_tasks(&client, &[task])
        .await
        .unwrap()
        .is_empty());
}

#[actix_web::test]
async fn bad_tag_input_answers_422_and_slug_clashes_409() {
    let server = Server::start().await;
    invalid(
        &send(
            &server,
            Method::POST,
            "/api/v1/tags",
            json!({"name": "   "}),
        )
        .await,
        json!(["body", "name"]),
        "String should have at least 1 character",
    );
    invalid(
        &send(
            &server,
            Method::POST,
            "/api/v1/tags",
            json!({"name": "x", "color": "#12345"}),
        )
        .await,
        json!(["body", "color"]),
        "Value error, color must be a 6-digit hex value",
    );
    invalid(
        &send(
            &server,
            Method::POST,
            "/api/v1/tags",
            json!({"name": "x", "color": "#"}),
        )
        .await,
        json!(["body", "color"]),
        "Value error, color is required",
    );
    let wrong_type = send(&server, Method::POST, "/api/v1/tags", json!({"name": 5})).await;
    assert_eq!(wrong_type.status, 422, "{}", wrong_type.text);
    assert_eq!(wrong_type.json["detail"][0]["loc"], json!(["body", "name"]));
    let missing = send(&server, Method::POST, "/api/v1/tags", json!({})).await;
    assert_eq!(
        missing.json["detail"][0]["type"], "missing",
        "{}",
        missing.text
    );

    let bug = create_tag(&server, json!({"name": "Bug"})).await;
    let clash = send(
        &server,
        Method::POST,
        "/api/v1/tags",
        json!({"name": "BUG!"}),
    )
    .await;
    assert_eq!(clash.status, 409, "{}", clash.text);
    assert_eq!(
        clash.json["detail"],
        "Tag slug already exists in this organization."
    );
    let other = create_tag(&server, json!({"name": "Feature"})).await;
    let clash = send(
        &server,
        Method::PATCH,
        &tag_path(&other),
        json!({"slug": "bug"}),
    )
    .await;
    assert_eq!(clash.status, 409, "{}", clash.text);
    let own = send(
        &server,
        Method::PATCH,
        &tag_path(&bug),
        json!({"slug": "Bug"}),
    )
    .await;
    assert_eq!(own.status, 200, "a tag keeps its own slug: {}", own.text);

    invalid(
        &send(&server, Method::PATCH, &tag_path(&bug), json!({})).await,
        json!(["body"]),
        "Value error, At least one field is required",
    );
    invalid(
        &send(
            &server,
            Method::PATCH,
            &tag_path(&bug),
            json!({"color": "blue"}),
        )
        .await,
        json!(["body", "color"]),
        "Value error, color must be a 6-digit hex value",
    );
    let bad_id = send(
        &server,
        Method::PATCH,
        "/api/v1/tags/not-a-uuid",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(bad_id.status, 422, "{}", bad_id.text);
    let unknown = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/tags/{}", Uuid::new_v4()),
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[actix_web::test]
async fn tags_need_auth_admin_rights_to_change_and_stay_in_their_organization() {
    let server = Server::start().await;
    let tag = create_tag(&server, json!({"name": "Mine"})).await;
    let path = tag_path(&tag);
    for (method, path) in [
        (Method::GET, "/api/v1/tags"),
        (Method::POST, "/api/v1/tags"),
        (Method::GET, path.as_str()),
        (Method::PATCH, path.as_str()),
        (Method::DELETE, path.as_str()),
    ] {
        let reply = server.call(method.clone(), path, None, Some("{}")).await;
        assert_eq!(reply.status, 401, "{method} {path}");
    }

    set_admin_role(&server, "member").await;
    assert_eq!(
        server.admin_get(&path).await.status,
        200,
        "members read tags"
    );
    for (method, path) in [
        (Method::POST, "/api/v1/tags"),
        (Method::PATCH, path.as_str()),
        (Method::DELETE, path.as_str()),
    ] {
        let reply = send(&server, method.clone(), path, json!({"name": "Theirs"})).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text);
    }
    set_admin_role(&server, "owner").await;

    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get("/api/v1/tags").await.json["total"], 0);
    assert_eq!(server.admin_get(&path).await.status, 404);
    let patch = send(&server, Method::PATCH, &path, json!({"name": "Stolen"})).await;
    assert_eq!(patch.status, 404, "{}", patch.text);
    assert_eq!(delete(&server, &path).await.status, 404);
    // Slugs are unique per organization only.
    assert_eq!(
        create_tag(&server, json!({"name": "Mine"})).await["slug"],
        "mine"
    );
}
