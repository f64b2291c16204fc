//! The organization's task custom field definitions (domain.md §A12).

use awc::http::Method;
use mission_control::db::GenericClient;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{delete, send, set_admin_role, switch_to_new_org};
use crate::harness::{Reply, Server};
use crate::tags::fixture;

const FIELDS: &str = "/api/v1/organizations/me/custom-fields";

fn field_path(field: &Value) -> String {
    format!("{FIELDS}/{}", field["id"].as_str().unwrap())
}

async fn create_field(server: &Server, body: Value) -> Value {
    let reply = send(server, Method::POST, FIELDS, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// A second board of the organization.
async fn another_board(server: &Server, org: Uuid) -> Uuid {
    let board = Uuid::new_v4();
    server
        .db
        .client()
        .await
        .execute(
            "INSERT INTO boards (id, organization_id, name) VALUES ($1, $2, 'second')",
            &[&board, &org],
        )
        .await
        .unwrap();
    server.caches_caught_up().await;
    board
}

/// A 422 whose first pydantic-style item is at `loc` with `msg`.
fn invalid(reply: &Reply, loc: Value, msg: &str) {
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.json["detail"][0]["loc"], loc, "{}", reply.text);
    assert_eq!(reply.json["detail"][0]["msg"], msg, "{}", reply.text);
}

#[actix_web::test]
async fn definitions_are_created_bound_listed_rebound_and_deleted() {
    let server = Server::start().await;
    let client = server.db.app_client().await;
    let (org, board, _) = fixture(&server, &client).await;
    let second = another_board(&server, org).await;

    let points = create_field(
        &server,
        json!({"field_key": " points ", "field_type": "Integer", "required": true,
               "default_value": 3, "board_ids": [second, board, second]}),
    )
    .await;
    assert_eq!(points["field_key"], "points");
    assert_eq!(points["label"], "points", "the label defaults to the key");
    assert_eq!(points["field_type"], "integer");
    assert_eq!(points["ui_visibility"], "always");
    assert_eq!(points["required"], true);
    assert_eq!(points["default_value"], 3);
    assert_eq!(points["organization_id"], org.to_string());
    assert_eq!(
        points["board_ids"],
        json!([second, board]),
        "given order, no repeats"
    );
    let link = create_field(
        &server,
        json!({"field_key": "link", "label": "A link", "field_type": "url", "ui_visibility": "if set",
               "validation_regex": "https://.*", "board_ids": [board]}),
    )
    .await;
    assert_eq!(link["ui_visibility"], "if_set");
    assert_eq!(link["default_value"], Value::Null);

    let list = server.admin_get(FIELDS).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let keys: Vec<&str> = list
        .json
        .as_array()
        .expect("a plain array")
        .iter()
        .map(|f| f["field_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["link", "points"], "by label");
    let mut both = vec![board, second];
    both.sort();
    assert_eq!(list.json[1]["board_ids"], json!(both));

    let patched = send(
        &server,
        Method::PATCH,
        &field_path(&points),
        json!({"label": " Story points ", "board_ids": [second], "default_value": null, "description": "effort"}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["label"], "Story points");
    assert_eq!(patched.json["board_ids"], json!([second]));
    assert_eq!(patched.json["default_value"], Value::Null);
    assert_eq!(patched.json["description"], "effort");
    assert_eq!(patched.json["field_key"], "points");
    let bound: i64 = client
        .query_one(
            "SELECT count(*) FROM board_task_custom_fields WHERE board_id = $1",
            &[&board],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bound, 1, "only the link stays on the first board");
    let kept = send(
        &server,
        Method::PATCH,
        &field_path(&link),
        json!({"validation_regex": null}),
    )
    .await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(kept.json["validation_regex"], Value::Null);
    assert_eq!(
        kept.json["board_ids"],
        json!([board]),
        "bindings stay unless given"
    );

    let deleted = delete(&server, &field_path(&points)).await;
    assert_eq!(
        (deleted.status.as_u16(), deleted.json.clone()),
        (200, json!({"ok": true}))
    );
    assert_eq!(
        server
            .admin_get(FIELDS)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[actix_web::test]
async fn bad_definitions_answer_422() {
    let server = Server::start().await;
    let client = server.db.app_client().await;
    let (_, board, _) = fixture(&server, &client).await;
    let post = |body: Value| send(&server, Method::POST, FIELDS, body);

    invalid(
        &post(json!({"field_key": "k", "board_ids": []})).await,
        json!(["body", "board_ids"]),
        "List should have at least 1 item after validation, not 0",
    );
    let missing = post(json!({"field_key": "k"})).await;
    assert_eq!(
        missing.json["detail"][0]["loc"],
        json!(["body", "board_ids"]),
        "{}",
        missing.text
    );
    invalid(
        &post(json!({"field_key": "  ", "board_ids": [board]})).await,
        json!(["body", "field_key"]),
        "Value error, field_key is required",
    );
    invalid(
        &post(json!({"field_key": "k", "field_type": "number", "board_ids": [board]})).await,
        json!(["body", "field_type"]),
        "Value error, field_type must be one of: text, text_long, integer, decimal, boolean, date, date_time, url, json",
    );
    invalid(
        &post(json!({"field_key": "k", "ui_visibility": "never", "board_ids": [board]})).await,
        json!(["body", "ui_visibility"]),
        "Value error, ui_visibility must be one of: always, if_set, hidden",
    );
    let bad_regex =
        post(json!({"field_key": "k", "validation_regex": "(", "board_ids": [board]})).await;
    assert_eq!(
        bad_regex.json["detail"][0]["loc"],
        json!(["body", "validation_regex"]),
        "{}",
        bad_regex.text
    );
    invalid(
        &post(json!({"field_key": "k", "field_type": "json", "validation_regex": "x", "board_ids": [board]})).await,
        json!(["body"]),
        "Value error, validation_regex is only supported for string field types.",
    );
    let wrong_type =
        post(json!({"field_key": "k", "required": "maybe", "board_ids": [board]})).await;
    assert_eq!(
        wrong_type.json["detail"][0]["loc"],
        json!(["body", "required"]),
        "{}",
        wrong_type.text
    );

    let stranger = Uuid::new_v4();
    let foreign = post(json!({"field_key": "k", "board_ids": [board, stranger]})).await;
    assert_eq!(foreign.status, 422, "{}", foreign.text);
    assert_eq!(
        foreign.json["detail"]["message"],
        "Some selected boards are invalid for this organization."
    );
    assert_eq!(
        foreign.json["detail"]["invalid_board_ids"],
        json!([stranger])
    );
    let bad_default = post(json!({"field_key": "k", "field_type": "integer", "default_value": "3", "board_ids": [board]})).await;
    assert_eq!(
        (
            bad_default.status.as_u16(),
            bad_default.json["detail"].clone()
        ),
        (422, json!("must be an integer"))
    );
    let unmatched = post(json!({"field_key": "k", "validation_regex": "[a-z]+", "default_value": "ABC", "board_ids": [board]})).await;
    assert_eq!(
        unmatched.json["detail"], "does not match validation_regex",
        "{}",
        unmatched.text
    );
    assert_eq!(
        server.admin_get(FIELDS).await.json,
        json!([]),
        "nothing was written"
    );

    let field = create_field(
        &server,
        json!({"field_key": "k", "default_value": "abc", "board_ids": [board]}),
    )
    .await;
    let path = field_path(&field);
    let patch = |body: Value| send(&server, Method::PATCH, &path, body);
    invalid(
        &patch(json!({"field_key": "other"})).await,
        json!(["body"]),
        "Value error, field_key cannot be changed after creation.",
    );
    invalid(
        &patch(json!({})).await,
        json!(["body"]),
        "Value error, At least one field is required",
    );
    invalid(
        &patch(json!({"label": null, "required": null})).await,
        json!(["body"]),
        "Value error, label, required cannot be null; omit the field to leave it unchanged",
    );
    invalid(
        &patch(json!({"label": " "})).await,
        json!(["body", "label"]),
        "String should have at least 1 character",
    );
    invalid(
        &patch(json!({"board_ids": []})).await,
        json!(["body", "board_ids"]),
        "Value error, board_ids must include at least one board",
    );
    let retyped = patch(json!({"field_type": "integer"})).await;
    assert_eq!(
        (retyped.status.as_u16(), retyped.json["detail"].clone()),
        (422, json!("must be an integer")),
        "the stored default is checked against the new type"
    );
    let unknown = send(
        &server,
        Method::PATCH,
        &format!("{FIELDS}/{}", Uuid::new_v4()),
        json!({"label": "x"}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let bad_id = send(
        &server,
        Method::PATCH,
        &format!("{FIELDS}/nope"),
        json!({"label": "x"}),
    )
    .await;
    assert_eq!(bad_id.status, 422, "{}", bad_id.text);
}

#[actix_web::test]
async fn duplicate_keys_and_deleting_a_field_in_use_answer_409() {
    let server = Server::start().await;
    let client = server.db.app_client().await;
    let (_, board, task) = fixture(&server, &client).await;
    let field = create_field(&server, json!({"field_key": "size", "board_ids": [board]})).await;
    let again = send(
        &server,
        Method::POST,
        FIELDS,
        json!({"field_key": " size", "board_ids": [board]}),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(
        again.json["detail"],
        "Field key already exists in this organization."
    );

    mission_control::domain::tasks::field_values::apply_on_update(
        &client,
        board,
        task,
        json!({"size": "XL"}).as_object().unwrap(),
    )
    .await
    .unwrap();
    // Task values are held to the definition's regex too.
    create_field(
        &server,
        json!({"field_key": "code", "validation_regex": "[A-Z]{3}", "board_ids": [board]}),
    )
    .await;
    match mission_control::domain::tasks::field_values::apply_on_update(
        &client,
        board,
        task,
        json!({"code": "ABCD"}).as_object().unwrap(),
    )
    .await
    {
        Err(mission_control::domain::DomainError::Unprocessable(d)) => {
            assert_eq!(d["reason"], "does not match validation_regex")
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let refused = delete(&server, &field_path(&field)).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(
        refused.json["detail"],
        "Cannot delete a custom field definition while task values exist."
    );
    assert_eq!(
        server
            .admin_get(FIELDS)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[actix_web::test]
async fn definitions_need_auth_admin_rights_to_change_and_stay_in_their_organization() {
    let server = Server::start().await;
    let client = server.db.app_client().await;
    let (_, board, _) = fixture(&server, &client).await;
    let field = create_field(&server, json!({"field_key": "mine", "board_ids": [board]})).await;
    let path = field_path(&field);
    for (method, path) in [
        (Method::GET, FIELDS),
        (Method::POST, FIELDS),
        (Method::PATCH, path.as_str()),
        (Method::DELETE, path.as_str()),
    ] {
        let reply = server.call(method.clone(), path, None, Some("{}")).await;
        assert_eq!(reply.status, 401, "{method} {path}");
    }

    set_admin_role(&server, "member").await;
    assert_eq!(
        server.admin_get(FIELDS).await.status,
        200,
        "members read definitions"
    );
    for (method, path) in [
        (Method::POST, FIELDS),
        (Method::PATCH, path.as_str()),
        (Method::DELETE, path.as_str()),
    ] {
        let reply = send(
            &server,
            method.clone(),
            path,
            json!({"field_key": "k", "label": "x", "board_ids": [board]}),
        )
        .await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text);
    }
    set_admin_role(&server, "owner").await;

    let org = switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(FIELDS).await.json, json!([]));
    let patch = send(&server, Method::PATCH, &path, json!({"label": "Stolen"})).await;
    assert_eq!(patch.status, 404, "{}", patch.text);
    assert_eq!(delete(&server, &path).await.status, 404);
    // The old organization's board cannot be bound here; the key is free in this organization.
    let foreign = send(
        &server,
        Method::POST,
        FIELDS,
        json!({"field_key": "mine", "board_ids": [board]}),
    )
    .await;
    assert_eq!(
        foreign.json["detail"]["invalid_board_ids"],
        json!([board]),
        "{}",
        foreign.text
    );
    let own_board = another_board(&server, org).await;
    create_field(
        &server,
        json!({"field_key": "mine", "board_ids": [own_board]}),
    )
    .await;
}
