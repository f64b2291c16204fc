//! Shared set-up of the admin API tests: calls with the admin token and the resources
//! most tests stand on.

use awc::http::Method;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Reply, Server, ServerBuilder, TempDir, WsClient, ADMIN_TOKEN};

pub async fn send(server: &Server, method: Method, path: &str, body: Value) -> Reply {
    server
        .call(method, path, Some(ADMIN_TOKEN), Some(&body.to_string()))
        .await
}

/// A `POST` that must create (201): what it answered.
pub async fn created(server: &Server, path: &str, body: Value) -> Value {
    let reply = send(server, Method::POST, path, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json
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
        json!({"name": name, "url": "ws://127.0.0.1:9", "workspace_root": "/srv/agents", "token": "s3cret"}),
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

/// A new board group named `name` (slug: lowercased).
pub async fn create_group(server: &Server, name: &str) -> Value {
    let reply = send(
        server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": name, "slug": name.to_lowercase()}),
    )
    .await;
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
    server.caches_caught_up().await;
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
    server.caches_caught_up().await;
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
    server.caches_caught_up().await;
}

// Gateways that register themselves and open their relay link.

pub async fn org_id(server: &Server) -> String {
    server.admin_get("/api/v1/organizations/me").await.json["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn issue_token(server: &Server) -> String {
    let reply = server
        .call(
            Method::POST,
            "/api/v1/gateway-registry/tokens",
            Some(ADMIN_TOKEN),
            Some(r#"{"label": "office"}"#),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert!(reply.json.get("token_hash").is_none());
    reply.json["registration_token"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn register(
    server: &Server,
    org: &str,
    token: &str,
    name: &str,
) -> crate::harness::Reply {
    let body = json!({
        "organization_id": org, "registration_token": token, "name": name,
        "url": "http://office.local:18789", "workspace_root": "/srv/agents", "version": "2026.11.1", "capabilities": ["chat"]
    });
    server
        .call(
            Method::POST,
            "/api/v1/gateway-registry/register",
            None,
            Some(&body.to_string()),
        )
        .await
}

/// A gateway's HTTP heartbeat.
pub async fn heartbeat(server: &Server, body: &Value) -> Reply {
    let body = body.to_string();
    server
        .call(
            Method::POST,
            "/api/v1/gateway-registry/heartbeat",
            None,
            Some(&body),
        )
        .await
}

/// Registers a gateway; returns (gateway id, relay token).
pub async fn registered(server: &Server, name: &str) -> (String, String) {
    let org = org_id(server).await;
    let token = issue_token(server).await;
    let reply = register(server, &org, &token, name).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (
        reply.json["gateway_id"].as_str().unwrap().to_string(),
        reply.json["relay_token"].as_str().unwrap().to_string(),
    )
}

pub async fn link(server: &Server, gateway: &str, relay_token: &str) -> WsClient {
    let mut ws = WsClient::connect(server, &format!("/ws/gateway/{gateway}/relay")).await;
    ws.send(json!({"type": "auth", "payload": {"relay_token": relay_token}}))
        .await;
    let ok = ws.expect_json().await;
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    ws
}

// Agents calling with their own token.

pub async fn as_agent(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let body = body.map(|b| b.to_string());
    server
        .raw(
            method,
            path,
            None,
            body.as_deref(),
            &[("X-Agent-Token", token)],
        )
        .await
        .expect("request")
}

/// A new agent on `board`, with its token.
pub async fn agent(server: &Server, board: &Value, name: &str) -> (Value, String) {
    let created = create_agent(server, board, name).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let created = created.json;
    let token = created["agent_token"]
        .as_str()
        .expect("token shown once")
        .to_string();
    (created, token)
}

pub async fn make_lead(server: &Server, agent: &Value) {
    let id: Uuid = agent["id"].as_str().unwrap().parse().unwrap();
    server
        .db
        .client()
        .await
        .execute(
            "UPDATE agents SET is_board_lead = true WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
}

/// `X-Webhook-Signature` of `body` under a webhook's secret.
pub fn sign(secret: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Local repositories standing in for github.com: a server built with `serve` clones
/// `https://github.com/{owner}/{repo}` from them, by git's `url.<base>.insteadOf`.
pub struct GitMirror {
    dir: TempDir,
}

impl GitMirror {
    pub fn new() -> GitMirror {
        GitMirror {
            dir: TempDir::new(),
        }
    }

    /// Commits `files` (path, content) to `branch` of `owner/repo`, creating either.
    pub fn commit(&self, repo: &str, branch: &str, files: &[(&str, &str)]) {
        let root = self.dir.path.join(repo);
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .output()
                .expect("git");
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        if !root.join(".git").exists() {
            std::fs::create_dir_all(&root).unwrap();
            git(&["init", "-q", "-b", branch]);
        } else {
            git(&["checkout", "-q", "-B", branch]);
        }
        for (path, content) in files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        git(&["add", "-A"]);
        git(&["commit", "-q", "--allow-empty", "-m", "skills"]);
    }

    /// Points the server's git at this mirror.
    pub fn serve(&self, builder: ServerBuilder) -> ServerBuilder {
        builder
            .env("GIT_CONFIG_COUNT", "1")
            .env(
                "GIT_CONFIG_KEY_0",
                format!("url.file://{}/.insteadOf", self.dir.path.display()),
            )
            .env("GIT_CONFIG_VALUE_0", "https://github.com/")
    }

    pub fn path(&self, repo: &str) -> std::path::PathBuf {
        self.dir.path.join(repo)
    }
}

/// An H5 user of the organization, assigned to `agent` on `board`.
pub async fn h5_user(server: &Server, board: &Value, agent: &Value, name: &str) -> Value {
    let org = server.admin_get("/api/v1/organizations/me").await.json["id"].clone();
    let user = server
        .call(
            Method::POST,
            "/api/v1/h5/auth/register",
            None,
            Some(
                &json!({"organization_id": org, "username": name, "password": "secret-pass"})
                    .to_string(),
            ),
        )
        .await
        .json;
    let user_id = user["user"]["id"].as_str().unwrap().to_string();
    let assigned = server
        .call(
            Method::POST,
            &format!("/api/v1/h5/users/{user_id}/assign"),
            Some(ADMIN_TOKEN),
            Some(&json!({"agent_id": agent["id"], "board_id": board["id"]}).to_string()),
        )
        .await;
    assert_eq!(assigned.status, 201, "{}", assigned.text);
    user
}

pub async fn h5_socket(server: &Server, user: &Value) -> WsClient {
    let mut ws = WsClient::connect(server, "/ws/h5/chat").await;
    ws.send(json!({"type": "auth", "payload": {"token": user["access_token"]}}))
        .await;
    assert_eq!(ws.expect_json().await["type"], "auth_ok");
    ws
}

/// The messages of the recorded activity of `event_type`, oldest first.
pub async fn activity(server: &Server, event_type: &str) -> Vec<String> {
    let db = server.db.client().await;
    db.query(
        "SELECT message FROM activity_events WHERE event_type = $1 ORDER BY created_at",
        &[&event_type],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}
