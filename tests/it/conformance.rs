//! Walks the reference server's OpenAPI for the core admin groups: every operation must
//! exist here (not 404/405), and a successful answer must carry the reference schema's
//! required fields with the right JSON types. Prints `N of M operations conform`.
//!
//! Operations that are known not to conform yet are listed in `NOT_YET`; the test fails
//! when anything else does not conform, and when a listed one starts to (so the list
//! stays true).

use std::collections::HashMap;
use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::harness::{Server, ADMIN_TOKEN};

pub const SPEC: &str = include_str!("../../contract/reference-openapi.json");

/// Operations of the groups not built yet, as "METHOD path".
const NOT_YET: &[&str] = &[];

fn in_scope(path: &str) -> bool {
    const GROUPS: &[&str] = &[
        "/api/v1/organizations",
        "/api/v1/users",
        "/api/v1/auth",
        "/api/v1/boards",
        "/api/v1/board-groups",
        "/api/v1/tags",
        "/api/v1/task-custom-fields",
        "/api/v1/activity",
        "/api/v1/metrics",
    ];
    const LATER: &[&str] = &["memory", "webhooks", "onboarding"];
    let crud = [
        "/api/v1/gateways",
        "/api/v1/gateways/{gateway_id}",
        "/api/v1/agents",
        "/api/v1/agents/{agent_id}",
    ];
    crud.contains(&path)
        || (GROUPS.iter().any(|g| path.starts_with(g)) && !LATER.iter().any(|l| path.contains(l)))
}

/// Fixture ids by path parameter name.
pub struct Ids(pub HashMap<&'static str, String>);

impl Ids {
    pub fn id(&self, name: &str) -> &str {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no fixture for {name}"))
    }

    pub fn fill(&self, path: &str) -> String {
        let mut out = path.to_string();
        for (name, value) in &self.0 {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        assert!(!out.contains('{'), "unfilled path parameter in {out}");
        out
    }
}

struct Fixtures {
    ids: Ids,
}

impl Fixtures {
    fn id(&self, name: &str) -> &str {
        self.ids.id(name)
    }

    /// The concrete URL of an operation. Deleting the gateway that the fixture board (and
    /// the board the walker creates) use is refused, so that delete targets a spare one.
    fn url(&self, method: &str, path: &str) -> String {
        if (method, path) == ("DELETE", "/api/v1/gateways/{gateway_id}") {
            return format!("/api/v1/gateways/{}", self.id("spare_gateway_id"));
        }
        self.ids.fill(path)
    }
}

async fn fixtures(server: &Server) -> Fixtures {
    let me = server.admin_get("/api/v1/organizations/me/member").await;
    assert_eq!(me.status, 200, "{}", me.text);
    let org: uuid::Uuid = me.json["organization_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let user: uuid::Uuid = me.json["user_id"].as_str().unwrap().parse().unwrap();
    let db = server.db.client().await;
    let id = uuid::Uuid::new_v4;
    let (gateway, main_agent, worker, group, board) = (id(), id(), id(), id(), id());
    let spare_gateway = id();
    let (task, task2, tag, field, approval) = (id(), id(), id(), id(), id());
    let (other_user, other_member, invite, other_org, accept_invite) =
        (id(), id(), id(), id(), id());
    let accept_token = format!("accept-{}", id().simple());
    db.batch_execute(&format!(
        "INSERT INTO gateways (id, organization_id, name, url, workspace_root) VALUES ('{gateway}', '{org}', 'GW', 'ws://gw', '/srv');
         INSERT INTO gateways (id, organization_id, name, url, workspace_root) VALUES ('{spare_gateway}', '{org}', 'Spare', 'ws://spare', '/srv');
         INSERT INTO agents (id, organization_id, board_id, gateway_id, name) VALUES ('{main_agent}', '{org}', NULL, '{gateway}', 'GW main');
         INSERT INTO board_groups (id, organization_id, name, slug) VALUES ('{group}', '{org}', 'Group', 'group');
         INSERT INTO boards (id, organization_id, name, slug, description, gateway_id, board_group_id)
             VALUES ('{board}', '{org}', 'Board', 'board', 'A board', '{gateway}', '{group}');
         INSERT INTO agents (id, organization_id, board_id, gateway_id, name) VALUES ('{worker}', '{org}', '{board}', '{gateway}', 'Worker');
         INSERT INTO tasks (id, organization_id, board_id, title) VALUES ('{task}', '{org}', '{board}', 'Task one');
         INSERT INTO tasks (id, organization_id, board_id, title) VALUES ('{task2}', '{org}', '{board}', 'Task two');
         INSERT INTO tags (id, organization_id, name, slug) VALUES ('{tag}', '{org}', 'Tag', 'tag');
         INSERT INTO task_custom_field_definitions (id, organization_id, field_key, label) VALUES ('{field}', '{org}', 'k', 'K');
         INSERT INTO board_task_custom_fields (id, board_id, task_custom_field_definition_id) VALUES ('{}', '{board}', '{field}');
         INSERT INTO approvals (id, organization_id, board_id, task_id, action_type, payload, confidence)
             VALUES ('{approval}', '{org}', '{board}', '{task2}', 'deploy', '{{\"reason\": \"r\"}}', 70);
         INSERT INTO approval_task_links (id, approval_id, task_id) VALUES ('{}', '{approval}', '{task2}');
         INSERT INTO users (id, clerk_user_id, email, name) VALUES ('{other_user}', 'other', 'other@example.com', 'Other');
         INSERT INTO organization_members (id, organization_id, user_id, role) VALUES ('{other_member}', '{org}', '{other_user}', 'member');
         INSERT INTO organization_invites (id, organization_id, invited_email, token_hash) VALUES ('{invite}', '{org}', 'invitee@example.com', 'tok-{invite}');
         INSERT INTO organizations (id, name) VALUES ('{other_org}', 'Inviting org');
         INSERT INTO organization_invites (id, organization_id, invited_email, token_hash)
             VALUES ('{accept_invite}', '{other_org}', 'admin@home.local', encode(sha256('{accept_token}'::bytea), 'hex'));",
        id(),
        id()
    ))
    .await
    .expect("fixtures");
    server.caches_caught_up().await;
    let ids = HashMap::from([
        ("organization_id", org.to_string()),
        ("user_id", user.to_string()),
        ("gateway_id", gateway.to_string()),
        ("spare_gateway_id", spare_gateway.to_string()),
        ("agent_id", worker.to_string()),
        ("group_id", group.to_string()),
        ("board_id", board.to_string()),
        ("task_id", task.to_string()),
        ("tag_id", tag.to_string()),
        ("task_custom_field_definition_id", field.to_string()),
        ("approval_id", approval.to_string()),
        ("member_id", other_member.to_string()),
        ("invite_id", invite.to_string()),
        ("accept_token", accept_token),
    ]);
    Fixtures { ids: Ids(ids) }
}

/// A valid body for each operation that takes one, and the phase it runs in:
/// 0 reads, 1 writes, 2 deletes of sub-resources, 3 organization-level changes.
fn plan(method: &str, path: &str, f: &Fixtures) -> (u8, Option<Value>) {
    let board = f.id("board_id");
    let body = match (method, path) {
        ("PATCH", "/api/v1/users/me") => json!({"preferred_name": "Conf"}),
        ("POST", "/api/v1/organizations") => json!({"name": "Conformance Org"}),
        ("PATCH", "/api/v1/organizations/me/active") => {
            json!({"organization_id": f.id("organization_id")})
        }
        ("PATCH", "/api/v1/organizations/me/members/{member_id}") => json!({"role": "admin"}),
        ("PUT", "/api/v1/organizations/me/members/{member_id}/access") => json!({
            "all_boards_read": false, "all_boards_write": false,
            "board_access": [{"board_id": board, "can_read": true, "can_write": false}]
        }),
        ("POST", "/api/v1/organizations/me/invites") => json!({"invited_email": "new@example.com"}),
        ("POST", "/api/v1/organizations/invites/accept") => json!({"token": f.id("accept_token")}),
        ("POST", "/api/v1/organizations/me/custom-fields") => {
            json!({"field_key": "k2", "board_ids": [board]})
        }
        ("PATCH", "/api/v1/organizations/me/custom-fields/{task_custom_field_definition_id}") => {
            json!({"label": "K2"})
        }
        ("POST", "/api/v1/gateways") => {
            json!({"name": "GW2", "url": "ws://127.0.0.1:9/gw2", "workspace_root": "/srv2"})
        }
        ("PATCH", "/api/v1/gateways/{gateway_id}") => json!({"name": "GW renamed"}),
        ("POST", "/api/v1/agents") => json!({"name": "Helper", "board_id": board}),
        ("PATCH", "/api/v1/agents/{agent_id}") => json!({"name": "Worker renamed"}),
        ("POST", "/api/v1/board-groups") => json!({"name": "Group two", "slug": "group-two"}),
        ("PATCH", "/api/v1/board-groups/{group_id}") => json!({"description": "described"}),
        ("POST", "/api/v1/board-groups/{group_id}/heartbeat") => json!({"every": "10m"}),
        ("POST", "/api/v1/boards") => {
            json!({"name": "Board two", "slug": "board-two", "description": "Second", "gateway_id": f.id("gateway_id")})
        }
        ("PATCH", "/api/v1/boards/{board_id}") => json!({"description": "Updated"}),
        ("POST", "/api/v1/boards/{board_id}/approvals") => json!({
            "action_type": "review", "confidence": 80, "task_ids": [f.id("task_id")], "payload": {"reason": "checked"}
        }),
        ("PATCH", "/api/v1/boards/{board_id}/approvals/{approval_id}") => {
            json!({"status": "approved"})
        }
        ("POST", "/api/v1/boards/{board_id}/tasks") => json!({"title": "Created by conformance"}),
        ("PATCH", "/api/v1/boards/{board_id}/tasks/{task_id}") => json!({"title": "Renamed"}),
        ("POST", "/api/v1/boards/{board_id}/tasks/{task_id}/comments") => {
            json!({"message": "hello"})
        }
        ("POST", "/api/v1/tags") => json!({"name": "Urgent"}),
        ("PATCH", "/api/v1/tags/{tag_id}") => json!({"name": "Renamed tag"}),
        _ => Value::Null,
    };
    let body = (!body.is_null()).then_some(body);
    let phase = match (method, path) {
        (_, "/api/v1/organizations")
        | (_, "/api/v1/organizations/me")
        | ("PATCH", "/api/v1/organizations/me/active") => 3,
        ("DELETE", "/api/v1/users/me") => 4,
        ("GET", _) => 0,
        ("DELETE", p) if p.starts_with("/api/v1/boards/{board_id}/") => 2,
        ("DELETE", "/api/v1/boards/{board_id}") => 3,
        ("DELETE", "/api/v1/gateways/{gateway_id}") => 3,
        ("DELETE", _) => 2,
        _ => 1,
    };
    (phase, body)
}

/// Does `value` fit `schema` (required fields and JSON types, recursively)?
pub fn check(value: &Value, schema: &Value, components: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        return check(value, &components[name], components, at);
    }
    if let Some(options) = schema
        .get("anyOf")
        .or(schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        return if options
            .iter()
            .any(|o| check(value, o, components, at).is_ok())
        {
            Ok(())
        } else {
            Err(format!("{at}: {value} fits none of anyOf"))
        };
    }
    let Some(kind) = schema.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    let fits = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    if !fits {
        return Err(format!("{at}: expected {kind}, got {value}"));
    }
    if let (Some(obj), Some(props)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for field in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = field.as_str().unwrap();
            if !obj.contains_key(field) {
                return Err(format!("{at}: missing required field {field:?}"));
            }
        }
        for (name, prop) in props {
            if let Some(v) = obj.get(name) {
                check(v, prop, components, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Some(item_schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate().take(5) {
            check(item, item_schema, components, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

async fn stream_opens(
    server: &Server,
    path: &str,
    auth: &[(String, String)],
) -> Result<(), String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(5))
        .finish();
    let mut req = client.get(format!("{}{}", server.base, path));
    for (name, value) in auth {
        req = req.insert_header((name.as_str(), value.as_str()));
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if res.status() == 200 && content_type.starts_with("text/event-stream") {
        Ok(())
    } else {
        Err(format!("{} {content_type}", res.status()))
    }
}

/// One reference operation, ready to call.
pub struct Planned {
    pub phase: u8,
    pub method: String,
    pub path: String,
    pub url: String,
    /// Authentication (and any other) headers.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub op: Value,
}

pub fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}"))]
}

/// How to call one operation: its phase, URL, headers and body.
pub type Plan = (u8, String, Vec<(String, String)>, Option<String>);

/// The reference operations whose paths `in_scope` accepts, planned by `plan`.
pub fn operations(
    spec: &Value,
    in_scope: impl Fn(&str) -> bool,
    plan: impl Fn(&str, &str) -> Plan,
) -> Vec<Planned> {
    let mut operations = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        if !in_scope(path) {
            continue;
        }
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            let (phase, url, headers, body) = plan(&method, path);
            operations.push(Planned {
                phase,
                method,
                path: path.clone(),
                url,
                headers,
                body,
                op: op.clone(),
            });
        }
    }
    operations.sort_by(|a, b| (a.phase, &a.path, &a.method).cmp(&(b.phase, &b.path, &b.method)));
    operations
}

/// Calls every operation in phase order and checks each success against the reference
/// schema; prints `N of M operations conform` and fails on any non-conforming operation
/// not in `not_yet` (and on any in `not_yet` that conforms now).
pub async fn walk(server: &Server, spec: &Value, operations: &[Planned], not_yet: &[&str]) {
    let components = &spec["components"]["schemas"];
    let mut failures = Vec::new();
    for planned in operations {
        let key = format!("{} {}", planned.method, planned.path);
        let result = if planned.path.ends_with("/stream") {
            stream_opens(server, &planned.url, &planned.headers).await
        } else {
            let headers: Vec<(&str, &str)> = planned
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let reply = server
                .raw(
                    Method::from_bytes(planned.method.as_bytes()).unwrap(),
                    &planned.url,
                    None,
                    planned.body.as_deref(),
                    &headers,
                )
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            let status = reply.status.as_u16();
            match planned.op["responses"].get(status.to_string()) {
                _ if !(200..300).contains(&status) => Err(format!(
                    "{status} {}",
                    reply.text.chars().take(200).collect::<String>()
                )),
                Some(response) => match response.pointer("/content/application~1json/schema") {
                    Some(schema) => check(&reply.json, schema, components, "body"),
                    None => Ok(()),
                },
                None => Err(format!("{status} is not a documented success status")),
            }
        };
        if let Err(why) = result {
            failures.push((key, why));
        }
    }

    let total = operations.len();
    println!("{} of {} operations conform", total - failures.len(), total);
    let unexpected: Vec<_> = failures
        .iter()
        .filter(|(k, _)| !not_yet.contains(&k.as_str()))
        .collect();
    for (key, why) in &failures {
        println!("  not conforming: {key}: {why}");
    }
    let fixed: Vec<_> = not_yet
        .iter()
        .filter(|k| !failures.iter().any(|(f, _)| f == *k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "operations that do not conform: {unexpected:#?}"
    );
    assert!(
        fixed.is_empty(),
        "these conform now; remove them from NOT_YET: {fixed:?}"
    );
}

/// Every string of a body replaced by `f` (keys stay).
fn each_string(value: &Value, f: &dyn Fn(&str) -> Value) -> Value {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => Value::Array(items.iter().map(|i| each_string(i, f)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), each_string(v, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every scalar of a body given the other JSON type (strings become numbers, numbers and
/// booleans strings).
fn wrong_types(value: &Value) -> Value {
    match value {
        Value::String(_) => json!(12345),
        Value::Number(_) | Value::Bool(_) => json!("not a number"),
        Value::Array(items) => Value::Array(items.iter().map(wrong_types).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), wrong_types(v)))
                .collect(),
        ),
        Value::Null => json!({}),
    }
}

/// Calls every operation that takes a body with hostile versions of it: NUL characters in
/// every string (422 naming a field of the body), odd and huge text, other JSON types, and
/// nulls; and every operation with a NUL in its query. Nothing may answer 5xx.
pub async fn hostile_walk(server: &Server, operations: &[Planned]) {
    let odd = "\u{1d4d7}éllo \u{202e}' \" \\ <script>alert(1)</script> %s %n {{}} ; DROP TABLE users; -- \u{fffd}";
    let mut failures = Vec::new();
    let mut calls = 0;
    for planned in operations.iter().filter(|p| !p.path.ends_with("/stream")) {
        let key = format!("{} {}", planned.method, planned.path);
        let headers: Vec<(&str, &str)> = planned
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let method = Method::from_bytes(planned.method.as_bytes()).unwrap();
        let mut variants: Vec<(&str, String, Option<String>)> = vec![(
            "nul in the query",
            format!(
                "{}{}x=a%00b",
                planned.url,
                if planned.url.contains('?') { "&" } else { "?" }
            ),
            planned.body.clone(),
        )];
        if let Some(body) = planned
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
        {
            let with = |v: Value| Some(v.to_string());
            variants.push((
                "nul",
                planned.url.clone(),
                with(each_string(&body, &|s| json!(format!("{s}\u{0}x")))),
            ));
            variants.push((
                "odd text",
                planned.url.clone(),
                with(each_string(&body, &|_| json!(odd))),
            ));
            variants.push((
                "huge text",
                planned.url.clone(),
                with(each_string(&body, &|_| json!("a".repeat(200_000)))),
            ));
            variants.push(("other types", planned.url.clone(), with(wrong_types(&body))));
            variants.push((
                "nulls",
                planned.url.clone(),
                with(each_string(&body, &|_| Value::Null)),
            ));
        }
        for (variant, url, body) in variants {
            calls += 1;
            let reply = server
                .raw(method.clone(), &url, None, body.as_deref(), &headers)
                .await
                .unwrap_or_else(|e| panic!("{key} ({variant}): {e}"));
            let status = reply.status.as_u16();
            // 502 and 503 say what they mean (a gateway that is not connected, a database
            // that is not there); a NUL is never accepted, whatever refuses it first.
            let failed = status >= 500 && status != 502 && status != 503;
            let has_nul = variant == "nul in the query"
                || (variant == "nul" && body.as_deref().is_some_and(|b| b.contains("\\u0000")));
            let stored_nul = has_nul && (200..300).contains(&status);
            if failed || stored_nul {
                failures.push(format!(
                    "{key} ({variant}): {status} {}",
                    reply.text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    println!("{calls} hostile calls, {} answered badly", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A server with the walk's fixtures, and the admin operations planned on it.
async fn planned_walk(spec: &Value) -> (Server, Vec<Planned>) {
    let server = Server::start().await;
    let f = fixtures(&server).await;
    let operations = operations(spec, in_scope, |method, path| {
        let (phase, body) = plan(method, path, &f);
        let body = body.map(|b| b.to_string());
        (phase, f.url(method, path), bearer(ADMIN_TOKEN), body)
    });
    (server, operations)
}

#[actix_web::test]
async fn hostile_bodies_and_queries_never_answer_5xx() {
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let (server, operations) = planned_walk(&spec).await;
    hostile_walk(&server, &operations).await;
}

#[actix_web::test]
async fn reference_operations_conform() {
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let (server, operations) = planned_walk(&spec).await;
    walk(&server, &spec, &operations, NOT_YET).await;
}

#[test]
fn the_checker_catches_missing_fields_and_wrong_types() {
    let components = json!({"Thing": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    }}});
    let schema = json!({"$ref": "#/components/schemas/Thing"});
    assert!(check(&json!({"id": "x", "n": null}), &schema, &components, "b").is_ok());
    assert!(check(&json!({"n": 1}), &schema, &components, "b").is_err());
    assert!(check(&json!({"id": 5}), &schema, &components, "b").is_err());
    assert!(check(&json!({"id": "x", "n": "1"}), &schema, &components, "b").is_err());
}
