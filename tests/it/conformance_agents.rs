//! The conformance walk (see `conformance.rs`) over the agent-facing groups: `/agents*`,
//! `/agent/*` (called with agent tokens), board and group memory, webhooks, onboarding,
//! `/gateways*` (against a connected gateway that answers requests on its relay link),
//! skills and the souls directory (against a fake directory on loopback).

use std::collections::HashMap;
use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::conformance::{bearer, operations, walk, Ids, SPEC};
use crate::fixtures::{sign, GitMirror};
use crate::harness::{Server, WsClient, WsEvent, ADMIN_TOKEN};
use crate::souls::fake_directory;

/// Operations of these groups not built yet, as "METHOD path".
const NOT_YET: &[&str] = &[];

fn in_scope(path: &str) -> bool {
    const GROUPS: &[&str] = &[
        "/api/v1/agents",
        "/api/v1/agent/",
        "/api/v1/boards/{board_id}/memory",
        "/api/v1/boards/{board_id}/group-memory",
        "/api/v1/board-groups/{group_id}/memory",
        "/api/v1/boards/{board_id}/webhooks",
        "/api/v1/boards/{board_id}/onboarding",
        "/api/v1/gateways",
        "/api/v1/skills",
        "/api/v1/souls-directory",
    ];
    GROUPS.iter().any(|g| path.starts_with(g))
}

const WEBHOOK_BODY: &str = r#"{"event": "push", "ref": "main"}"#;
const CAPABILITY: &str = "code-review";

struct Fixtures {
    ids: Ids,
    lead_token: String,
    main_token: String,
    webhook_secret: String,
}

impl Fixtures {
    fn id(&self, name: &str) -> &str {
        self.ids.id(name)
    }

    /// Operations that must not touch the shared fixtures get their own targets.
    fn url(&self, method: &str, path: &str) -> String {
        let own = |key: &str, id: &str| path.replace(key, self.id(id));
        let path = match (method, path) {
            ("DELETE", "/api/v1/gateways/{gateway_id}") => own("{gateway_id}", "spare_gateway_id"),
            ("DELETE", "/api/v1/agent/boards/{board_id}/agents/{agent_id}") => {
                own("{agent_id}", "doomed_agent_id")
            }
            ("DELETE", "/api/v1/agents/{agent_id}") => own("{agent_id}", "spare_agent_id"),
            // A lead comments on tasks in review (the shared task stays in the inbox).
            ("DELETE", "/api/v1/agent/boards/{board_id}/tasks/{task_id}")
            | (_, "/api/v1/agent/boards/{board_id}/tasks/{task_id}/comments") => {
                own("{task_id}", "spare_task_id")
            }
            _ => path.to_string(),
        };
        // The gateway views are about a board's gateway, skill installs about a gateway.
        let query = if path.starts_with("/api/v1/gateways/s") {
            format!("?board_id={}", self.id("board_id"))
        } else if path.starts_with("/api/v1/skills/marketplace") && method != "DELETE" {
            format!("?gateway_id={}", self.id("gateway_id"))
        } else {
            String::new()
        };
        self.ids.fill(&path) + &query
    }

    /// Who calls: the board lead on `/agent/*`, the gateway-main agent where only it may,
    /// the admin elsewhere; the inbound webhook is signed instead.
    fn headers(&self, method: &str, path: &str) -> Vec<(String, String)> {
        let agent = |token: &str| vec![("X-Agent-Token".to_string(), token.to_string())];
        if path.starts_with("/api/v1/agent/gateway/")
            || path == "/api/v1/agent/boards/{board_id}/onboarding"
            || path == "/api/v1/boards/{board_id}/onboarding/agent"
        {
            agent(&self.main_token)
        } else if path.starts_with("/api/v1/agent/") {
            agent(&self.lead_token)
        } else if (method, path) == ("POST", "/api/v1/boards/{board_id}/webhooks/{webhook_id}") {
            vec![(
                "X-Webhook-Signature".to_string(),
                sign(&self.webhook_secret, WEBHOOK_BODY),
            )]
        } else {
            bearer(ADMIN_TOKEN)
        }
    }
}

async fn ok(server: &Server, method: Method, path: &str, body: Value) -> Value {
    let reply = server
        .call(method, path, Some(ADMIN_TOKEN), Some(&body.to_string()))
        .await;
    assert!(reply.status.is_success(), "{path}: {}", reply.text);
    reply.json
}

/// A gateway on the relay link that answers every request: two sessions (its main agent's
/// and one more), a short history.
async fn connected_gateway(server: &Server, organization_id: &str) -> (String, String) {
    let token = ok(
        server,
        Method::POST,
        "/api/v1/gateway-registry/tokens",
        json!({"label": "conformance"}),
    )
    .await["registration_token"]
        .as_str()
        .unwrap()
        .to_string();
    let registered = ok(
        server,
        Method::POST,
        "/api/v1/gateway-registry/register",
        json!({"organization_id": organization_id, "registration_token": token, "name": "Linked",
               "url": "http://office.local:18789", "workspace_root": "/srv/agents"}),
    )
    .await;
    let gateway = registered["gateway_id"].as_str().unwrap().to_string();
    let main_session = format!("agent:mc-gateway-{gateway}:main");
    let mut ws = WsClient::connect(server, &format!("/ws/gateway/{gateway}/relay")).await;
    ws.send(json!({"type": "auth", "payload": {"relay_token": registered["relay_token"]}}))
        .await;
    assert_eq!(ws.expect_json().await["type"], "auth_ok");
    let sessions = json!({"sessions": [{"key": main_session, "label": "Gateway Agent"},
                                       {"key": "agent:conformance:main"}]});
    actix_web::rt::spawn(async move {
        loop {
            match ws.next(Duration::from_secs(120)).await {
                WsEvent::Json(frame) if frame["type"] == "rpc.request" => {
                    let result = match frame["payload"]["method"].as_str() {
                        Some("sessions.list") => sessions.clone(),
                        Some("chat.history") => {
                            json!({"messages": [{"role": "user", "content": "hello"}]})
                        }
                        _ => json!({}),
                    };
                    ws.send(json!({"type": "rpc.result", "id": frame["id"],
                                   "payload": {"ok": true, "result": result}}))
                        .await;
                }
                WsEvent::Json(_) => {}
                WsEvent::Closed(..) | WsEvent::TimedOut => break,
            }
        }
    });
    (gateway, main_session)
}

async fn fixtures(server: &Server) -> Fixtures {
    let me = server.admin_get("/api/v1/organizations/me/member").await;
    let org = me.json["organization_id"].as_str().unwrap().to_string();
    let (gateway, main_session) = connected_gateway(server, &org).await;
    let id = || uuid::Uuid::new_v4().to_string();
    let (main, lead, worker, doomed, spare_agent) = (id(), id(), id(), id(), id());
    let (group, board, task, spare_task, spare_gateway) = (id(), id(), id(), id(), id());
    server
        .db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO gateways (id, organization_id, name, url, workspace_root) VALUES ('{spare_gateway}', '{org}', 'Spare', 'ws://spare', '/srv');
             INSERT INTO agents (id, organization_id, board_id, gateway_id, name, openclaw_session_id)
                 VALUES ('{main}', '{org}', NULL, '{gateway}', 'Linked Gateway Agent', '{main_session}');
             INSERT INTO board_groups (id, organization_id, name, slug) VALUES ('{group}', '{org}', 'Group', 'group');
             INSERT INTO boards (id, organization_id, name, slug, description, gateway_id, board_group_id, max_agents)
                 VALUES ('{board}', '{org}', 'Board', 'board', 'A board', '{gateway}', '{group}', 10);
             INSERT INTO agents (id, organization_id, board_id, gateway_id, name, is_board_lead, openclaw_session_id)
                 VALUES ('{lead}', '{org}', '{board}', '{gateway}', 'Lead', true, 'agent:lead-{board}:main');
             INSERT INTO agents (id, organization_id, board_id, gateway_id, name, openclaw_session_id) VALUES
                 ('{worker}', '{org}', '{board}', '{gateway}', 'Worker', 'agent:mc-{worker}:main'),
                 ('{doomed}', '{org}', '{board}', '{gateway}', 'Doomed', 'agent:mc-{doomed}:main'),
                 ('{spare_agent}', '{org}', '{board}', '{gateway}', 'Spare', 'agent:mc-{spare_agent}:main');
             INSERT INTO tasks (id, organization_id, board_id, title) VALUES
                 ('{task}', '{org}', '{board}', 'Task one');
             INSERT INTO tasks (id, organization_id, board_id, title, status)
                 VALUES ('{spare_task}', '{org}', '{board}', 'Task two', 'review');"
        ))
        .await
        .expect("fixtures");
    server.caches_caught_up().await;
    // Tokens as an admin gets them: an update rotates and shows one.
    let token_of = |agent: String| async move {
        ok(
            server,
            Method::PATCH,
            &format!("/api/v1/agents/{agent}"),
            json!({"identity_template": "conformance"}),
        )
        .await["agent_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let lead_token = token_of(lead.clone()).await;
    let main_token = token_of(main.clone()).await;

    let hook = ok(
        server,
        Method::POST,
        &format!("/api/v1/boards/{board}/webhooks"),
        json!({"description": "CI events"}),
    )
    .await;
    let (webhook, webhook_secret) = (
        hook["id"].as_str().unwrap().to_string(),
        hook["secret"].as_str().unwrap().to_string(),
    );
    let hook_path = format!("/api/v1/boards/{board}/webhooks/{webhook}");
    let signature = sign(&webhook_secret, WEBHOOK_BODY);
    let ingested = server
        .raw(
            Method::POST,
            &hook_path,
            None,
            Some(WEBHOOK_BODY),
            &[("X-Webhook-Signature", &signature)],
        )
        .await
        .unwrap();
    assert!(ingested.status.is_success(), "{}", ingested.text);
    let payload = server
        .admin_get(&format!("{hook_path}/payloads"))
        .await
        .json["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let skill = ok(
        server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": "https://github.com/acme/skills/tree/main/review"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pack = ok(
        server,
        Method::POST,
        "/api/v1/skills/packs",
        json!({"source_url": "https://github.com/acme/pack-one"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let ids = HashMap::from([
        ("organization_id", org),
        ("gateway_id", gateway),
        ("spare_gateway_id", spare_gateway),
        ("agent_id", worker),
        ("doomed_agent_id", doomed),
        ("spare_agent_id", spare_agent),
        ("group_id", group),
        ("board_id", board),
        ("task_id", task),
        ("spare_task_id", spare_task),
        ("webhook_id", webhook),
        ("payload_id", payload),
        ("skill_id", skill),
        ("pack_id", pack),
        ("capability", CAPABILITY.to_string()),
        ("session_id", main_session),
        ("handle", "ann".to_string()),
        ("slug", "helper".to_string()),
    ]);
    Fixtures {
        ids: Ids(ids),
        lead_token,
        main_token,
        webhook_secret,
    }
}

/// A valid body for each operation that takes one, and its phase: 0 reads, 1 writes,
/// 2 onboarding answers, 3 onboarding confirmation and deletes of sub-resources, 4 deletes
/// of agents and gateways.
fn plan(method: &str, path: &str, f: &Fixtures) -> (u8, Option<String>) {
    let board = f.id("board_id");
    let body = match (method, path) {
        ("POST", "/api/v1/agents") => json!({"name": "Helper", "board_id": board}),
        ("PATCH", "/api/v1/agents/{agent_id}") => json!({"name": "Worker renamed"}),
        ("POST", "/api/v1/agents/heartbeat") => json!({"name": "Worker", "board_id": board}),
        ("POST", "/api/v1/agents/{agent_id}/heartbeat") => json!({"status": "online"}),
        ("POST", "/api/v1/agents/{agent_id}/capabilities") => json!({"capability": CAPABILITY}),
        ("POST", "/api/v1/agent/agents") => json!({"name": "Helper by lead"}),
        ("POST", "/api/v1/agent/boards/{board_id}/agents/{agent_id}/nudge") => {
            json!({"message": "Status?"})
        }
        ("PUT", "/api/v1/agent/boards/{board_id}/agents/{agent_id}/soul") => {
            json!({"content": "# Soul\nCareful.", "reason": "conformance"})
        }
        ("POST", "/api/v1/agent/boards/{board_id}/approvals") => json!({
            "action_type": "deploy", "confidence": 80, "task_ids": [f.id("task_id")], "payload": {"reason": "ready"}
        }),
        ("POST", "/api/v1/agent/boards/{board_id}/gateway/main/ask-user") => {
            json!({"content": "May I deploy?"})
        }
        ("POST", "/api/v1/agent/boards/{board_id}/memory") => json!({"content": "Noted."}),
        ("POST", "/api/v1/agent/boards/{board_id}/onboarding") => {
            json!({"question": "Which goal?", "options": [{"id": "1", "label": "Ship"}]})
        }
        ("POST", "/api/v1/agent/boards/{board_id}/tasks") => json!({"title": "From the lead"}),
        ("PATCH", "/api/v1/agent/boards/{board_id}/tasks/{task_id}") => {
            json!({"assigned_agent_id": f.id("agent_id")})
        }
        ("POST", "/api/v1/agent/boards/{board_id}/tasks/{task_id}/comments") => {
            json!({"message": "On it."})
        }
        ("POST", "/api/v1/agent/events") => json!({"event_type": "task.stalled"}),
        ("POST", "/api/v1/agent/gateway/boards/{board_id}/lead/message") => {
            json!({"kind": "question", "content": "Status?"})
        }
        ("POST", "/api/v1/agent/gateway/leads/broadcast") => {
            json!({"kind": "handoff", "content": "Freeze deploys."})
        }
        ("POST", "/api/v1/agent/knowledge") => {
            json!({"title": "Runbook", "content": "Restart it."})
        }
        ("POST", "/api/v1/agent/suggestions") => {
            json!({"suggestion_type": "task_create", "title": "Add tests"})
        }
        ("POST", "/api/v1/board-groups/{group_id}/memory")
        | ("POST", "/api/v1/boards/{board_id}/group-memory")
        | ("POST", "/api/v1/boards/{board_id}/memory") => json!({"content": "Remember this."}),
        ("POST", "/api/v1/boards/{board_id}/onboarding/agent") => {
            json!({"question": "Which metric?", "options": [{"id": "1", "label": "Users"}]})
        }
        ("POST", "/api/v1/boards/{board_id}/onboarding/answer") => json!({"answer": "Ship"}),
        ("POST", "/api/v1/boards/{board_id}/onboarding/confirm") => json!({
            "board_type": "goal", "objective": "Ship", "success_metrics": {"users": 10}
        }),
        ("POST", "/api/v1/boards/{board_id}/onboarding/start") => json!({}),
        ("POST", "/api/v1/boards/{board_id}/webhooks") => json!({"description": "Deploys"}),
        ("PATCH", "/api/v1/boards/{board_id}/webhooks/{webhook_id}") => {
            json!({"description": "CI and deploys"})
        }
        ("POST", "/api/v1/gateways") => {
            json!({"name": "GW2", "url": "ws://127.0.0.1:9/gw2", "workspace_root": "/srv2"})
        }
        ("PATCH", "/api/v1/gateways/{gateway_id}") => json!({"name": "Linked renamed"}),
        ("POST", "/api/v1/gateways/sessions/{session_id}/message") => json!({"content": "Hi"}),
        ("POST", "/api/v1/skills/marketplace") => {
            json!({"source_url": "https://github.com/acme/skills/tree/main/deploy"})
        }
        ("POST", "/api/v1/skills/packs") => {
            json!({"source_url": "https://github.com/acme/pack-two"})
        }
        ("PATCH", "/api/v1/skills/packs/{pack_id}") => {
            json!({"source_url": "https://github.com/acme/pack-one", "name": "Pack one"})
        }
        ("POST", "/api/v1/boards/{board_id}/webhooks/{webhook_id}") => {
            return (1, Some(WEBHOOK_BODY.to_string()))
        }
        _ => Value::Null,
    };
    let phase = match (method, path) {
        ("POST", "/api/v1/agent/boards/{board_id}/onboarding")
        | ("POST", "/api/v1/boards/{board_id}/onboarding/agent")
        | ("POST", "/api/v1/boards/{board_id}/onboarding/answer") => 2,
        ("POST", "/api/v1/boards/{board_id}/onboarding/confirm") => 3,
        ("POST", "/api/v1/boards/{board_id}/onboarding/start") => 1,
        ("GET", "/api/v1/boards/{board_id}/onboarding") => 2,
        ("GET", _) => 0,
        ("DELETE", "/api/v1/agents/{agent_id}") | ("DELETE", "/api/v1/gateways/{gateway_id}") => 4,
        ("DELETE", _) => 3,
        _ => 1,
    };
    (phase, (!body.is_null()).then(|| body.to_string()))
}

/// A server with the walk's pack in a local stand-in of its GitHub repository (the mirror
/// lives as long as the server is used), and the agent-facing operations planned on it.
async fn planned_walk() -> (GitMirror, Server, Vec<crate::conformance::Planned>) {
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let mirror = GitMirror::new();
    mirror.commit("acme/pack-one", "main", &[("review/SKILL.md", "# Review")]);
    let server = mirror
        .serve(Server::builder().env("SOULS_DIRECTORY_URL", fake_directory()))
        .start()
        .await;
    let f = fixtures(&server).await;
    let operations = operations(&spec, in_scope, |method, path| {
        let (phase, body) = plan(method, path, &f);
        (phase, f.url(method, path), f.headers(method, path), body)
    });
    (mirror, server, operations)
}

#[actix_web::test]
async fn agent_facing_operations_conform() {
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let (_mirror, server, operations) = planned_walk().await;
    walk(&server, &spec, &operations, NOT_YET).await;
}

#[actix_web::test]
async fn hostile_agent_facing_bodies_never_answer_5xx() {
    let (_mirror, server, operations) = planned_walk().await;
    crate::conformance::hostile_walk(&server, &operations).await;
}
