//! Shared set-up of the admin API tests: calls with the admin token and the resources
//! most tests stand on.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Reply, Server, ADMIN_TOKEN};

pub async fn send(server: &Server, method: Method, path: &str, body: Value) -> Reply {
    server
        .call(method, path, Some(ADMIN_TOKEN), Some(&body.to_string()))
        .await
}

pub async fn delete(server: &Server, path: &str) -> Reply {
    server
        .call(Method::DELETE, path, Some(ADMIN_TOKEN), None)
        .await
}

pub async fn create_gateway(server: &Server, name: &str) -> Value {
    let reply = send(
        server,
        Method::POST,
        "/api/v1/gateways",
        json!({"name": name, "url": "wss://gw.example", "workspace_root": "/srv/agents", "token": "s3cret"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

pub async fn create_board(server: &Server, gateway: &Value, name: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "slug": name.to_lowercase(), "description": "A board", "gateway_id": gateway["id"]});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let reply = send(server, Method::POST, "/api/v1/boards", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

pub async fn create_agent(server: &Server, board: &Value, name: &str) -> Reply {
    send(
        server,
        Method::POST,
        "/api/v1/agents",
        json!({"board_id": board["id"], "name": name}),
    )
    .await
}

/// Makes the local user's active organization a fresh one where it is the owner, so what
/// was created before belongs to another organization; returns the new organization's id.
pub async fn switch_to_new_org(server: &Server) -> uuid::Uuid {
    let db = server.db.client().await;
    let org = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO organizations (id, name) VALUES ($1, 'Other')",
        &[&org],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO organization_members (id, organization_id, user_id, role, all_boards_read, all_boards_write) \
         SELECT $1, $2, id, 'owner', true, true FROM users WHERE clerk_user_id = 'local-auth-user'",
        &[&uuid::Uuid::new_v4(), &org],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE users SET active_organization_id = $1 WHERE clerk_user_id = 'local-auth-user'",
        &[&org],
    )
    .await
    .unwrap();
    org
}

/// Sets the local user's role in its active organization (e.g. "member" to lose admin rights).
pub async fn set_admin_role(server: &Server, role: &str) {
    server
        .db
        .client()
        .await
        .execute(
            "UPDATE organization_members m SET role = $1 FROM users u \
             WHERE u.clerk_user_id = 'local-auth-user' AND m.user_id = u.id \
               AND m.organization_id = u.active_organization_id",
            &[&role],
        )
        .await
        .unwrap();
}

/// A board of its own gateway, both with fresh names; `extra` sets board fields.
pub async fn new_board(server: &Server, extra: Value) -> Value {
    let name = format!("B{}", &Uuid::new_v4().simple().to_string()[..8]);
    let gateway = create_gateway(server, &name).await;
    create_board(server, &gateway, &name, extra).await
}

/// A task created through the API on `board`.
pub async fn create_task(server: &Server, board: &Value, body: Value) -> Value {
    let path = format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap());
    let reply = send(server, Method::POST, &path, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// A successful `PATCH` of a task through the API.
pub async fn update_task(server: &Server, task: &Value, body: Value) -> Value {
    let path = format!(
        "/api/v1/boards/{}/tasks/{}",
        task["board_id"].as_str().unwrap(),
        task["id"].as_str().unwrap()
    );
    let reply = send(server, Method::PATCH, &path, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// Makes the local user a plain member who may read only `boards`.
pub async fn grant_only(server: &Server, boards: &[&Value]) {
    let db = server.db.client().await;
    db.execute(
        "UPDATE organization_members SET role = 'member', all_boards_read = false, all_boards_write = false",
        &[],
    )
    .await
    .unwrap();
    for board in boards {
        let id: Uuid = board["id"].as_str().unwrap().parse().unwrap();
        db.execute(
            "INSERT INTO organization_board_access (id, organization_member_id, board_id, can_read, can_write) \
             SELECT $1, id, $2, true, false FROM organization_members WHERE organization_id = \
               (SELECT organization_id FROM boards WHERE id = $2)",
            &[&Uuid::new_v4(), &id],
        )
        .await
        .unwrap();
    }
}
