//! Agent teams, capability search and the command center (domain.md §F): every figure of
//! one organization only, and a live-activity cursor that neither skips nor repeats.

use std::collections::HashSet;

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{
    agent, as_agent, create_board, create_gateway, org_id, send, switch_to_new_org,
};
use crate::harness::{Server, SseClient};

fn ok(reply: crate::harness::Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

#[actix_web::test]
async fn teams_are_made_as_the_wizard_does_and_keep_to_the_organization() {
    let server = Server::start().await;
    let gateway = create_gateway(&server, "GW").await;
    let board = create_board(&server, &gateway, "Ops", json!({})).await;
    let (planner, _) = agent(&server, &board, "Planner").await;
    let (reviewer, _) = agent(&server, &board, "Reviewer").await;

    // The wizard: POST {name, description: null, team_type}, then the team and its members.
    let team = ok(send(
        &server,
        Method::POST,
        "/api/v1/agent-teams",
        json!({"name": " Launch crew ", "description": null, "team_type": "task_force"}),
    )
    .await);
    assert_eq!(team["name"], "Launch crew");
    assert_eq!(team["member_count"], 0);
    let path = format!("/api/v1/agent-teams/{}", team["id"].as_str().unwrap());
    assert_eq!(ok(server.admin_get(&path).await), team);
    assert_eq!(
        ok(server.admin_get(&format!("{path}/members")).await),
        json!([])
    );

    let members = format!("{path}/members");
    let added = ok(send(
        &server,
        Method::POST,
        &members,
        json!({"agent_id": planner["id"], "role_in_team": "leader", "capabilities": ["planning"]}),
    )
    .await);
    assert_eq!(added["agent_name"], "Planner");
    assert_eq!(added["capabilities"], json!(["planning"]));
    ok(send(
        &server,
        Method::POST,
        &members,
        json!({"agent_id": reviewer["id"]}),
    )
    .await);
    let again = send(
        &server,
        Method::POST,
        &members,
        json!({"agent_id": planner["id"]}),
    )
    .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json["detail"],
        "Agent is already a member of this team."
    );
    let bad_role = send(
        &server,
        Method::POST,
        &members,
        json!({"agent_id": planner["id"], "role_in_team": "boss"}),
    )
    .await;
    assert_eq!(bad_role.status, 422, "{}", bad_role.text);
    let stranger = send(
        &server,
        Method::POST,
        &members,
        json!({"agent_id": Uuid::new_v4()}),
    )
    .await;
    assert_eq!(stranger.status, 404);
    assert_eq!(stranger.json["detail"], "Agent not found.");
    assert_eq!(ok(server.admin_get(&path).await)["member_count"], 2);

    let patched = ok(send(
        &server,
        Method::PATCH,
        &path,
        json!({"board_id": board["id"], "config": {"cadence": "daily"}, "name": null}),
    )
    .await);
    assert_eq!(patched["board_id"], board["id"]);
    assert_eq!(patched["name"], "Launch crew");
    let bad = send(
        &server,
        Method::PATCH,
        &path,
        json!({"board_id": Uuid::new_v4(), "team_type": "mob"}),
    )
    .await;
    assert_eq!(bad.status, 422, "the type first: {}", bad.text);
    let bad = send(
        &server,
        Method::PATCH,
        &path,
        json!({"board_id": Uuid::new_v4()}),
    )
    .await;
    assert_eq!(bad.status, 404, "{}", bad.text);

    let removed = send(
        &server,
        Method::DELETE,
        &format!("{members}/{}", reviewer["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(removed.status, 200);
    let not_member = send(
        &server,
        Method::DELETE,
        &format!("{members}/{}", reviewer["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(not_member.status, 404);
    let listed = ok(server.admin_get("/api/v1/agent-teams").await);
    assert_eq!(listed[0]["member_count"], 1);

    // Another organization sees none of it, and cannot add our agents to its teams.
    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&path).await.status, 404);
    assert_eq!(
        server.admin_get(&path).await.json["detail"],
        "Team not found."
    );
    assert_eq!(ok(server.admin_get("/api/v1/agent-teams").await), json!([]));
    let theirs = ok(send(
        &server,
        Method::POST,
        "/api/v1/agent-teams",
        json!({"name": "Theirs"}),
    )
    .await);
    let poach = send(
        &server,
        Method::POST,
        &format!(
            "/api/v1/agent-teams/{}/members",
            theirs["id"].as_str().unwrap()
        ),
        json!({"agent_id": planner["id"]}),
    )
    .await;
    assert_eq!(poach.status, 404);
    let foreign_board = send(
        &server,
        Method::POST,
        "/api/v1/agent-teams",
        json!({"name": "X", "board_id": board["id"]}),
    )
    .await;
    assert_eq!(foreign_board.status, 404);
}

#[actix_web::test]
async fn capability_search_ranks_matches_then_proficiency_then_availability() {
    let server = Server::start().await;
    let gateway = create_gateway(&server, "GW").await;
    let board = create_board(&server, &gateway, "Ops", json!({})).await;
    let mut ids = Vec::new();
    for (name, caps) in [
        ("Ada", vec![("rust", "standard"), ("sql", "standard")]),
        ("Bob", vec![("rust", "expert"), ("sql", "novice")]),
        ("Cy", vec![("rust", "expert"), ("sql", "expert")]),
        ("Di", vec![("rust", "expert")]),
        ("Ed", vec![("go", "expert")]),
    ] {
        let (a, _) = agent(&server, &board, name).await;
        for (capability, proficiency) in caps {
            ok(send(
                &server,
                Method::POST,
                &format!("/api/v1/agents/{}/capabilities", a["id"].as_str().unwrap()),
                json!({"capability": capability, "proficiency": proficiency}),
            )
            .await);
        }
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    // Ada and Bob tie on matches (2) and proficiency (2 + 2 = 3 + 1): Bob was seen just now.
    let db = server.db.client().await;
    db.execute(
        "UPDATE agents SET last_seen_at = now() WHERE name = 'Bob'",
        &[],
    )
    .await
    .unwrap();
    let found = ok(server
        .admin_get("/api/v1/agent-capabilities/search?capabilities=rust&capabilities[]=sql")
        .await);
    let names: Vec<&str> = found["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Cy", "Bob", "Ada", "Di"], "{found}");
    assert_eq!(
        found["agents"][1]["proficiency_scores"],
        json!({"rust": "expert", "sql": "novice"})
    );
    assert_eq!(
        found["agents"][1]["matched_capabilities"],
        json!(["rust", "sql"])
    );
    assert_eq!(found["agents"][1]["available"], true);
    let none = ok(server.admin_get("/api/v1/agent-capabilities/search").await);
    assert_eq!(none, json!({"agents": []}));
}

/// Inserts, for organization `org`, one gateway (online when asked), two agents (one seen
/// now), and tasks: created today, done this week, in progress for the seen agent.
async fn populate(server: &Server, org: Uuid, online: bool) -> (Uuid, Uuid) {
    let db = server.db.client().await;
    let (gateway, seen, idle, board) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    db.batch_execute(&format!(
        "INSERT INTO gateways (id, organization_id, name, url, workspace_root, status) VALUES ('{gateway}', '{org}', 'GW', 'ws://gw', '/srv', '{status}');
         INSERT INTO boards (id, organization_id, name, slug, description, gateway_id) VALUES ('{board}', '{org}', 'B', 'b-{board}', 'd', '{gateway}');
         INSERT INTO agents (id, organization_id, board_id, gateway_id, name, status, last_seen_at) VALUES ('{seen}', '{org}', '{board}', '{gateway}', 'Seen', 'online', now());
         INSERT INTO agents (id, organization_id, board_id, gateway_id, name, status, last_seen_at) VALUES ('{idle}', '{org}', '{board}', '{gateway}', 'Idle', 'online', now() - interval '2 hours');
         INSERT INTO tasks (id, organization_id, board_id, title, status, assigned_agent_id, created_at, updated_at, in_progress_at)
           VALUES (gen_random_uuid(), '{org}', '{board}', 'Doing', 'in_progress', '{seen}', now(), now(), now());
         INSERT INTO tasks (id, organization_id, board_id, title, status, assigned_agent_id, created_at, updated_at)
           VALUES (gen_random_uuid(), '{org}', '{board}', 'Done', 'done', '{seen}', now() - interval '3 days', now());
         INSERT INTO tasks (id, organization_id, board_id, title, status, created_at, updated_at)
           VALUES (gen_random_uuid(), '{org}', '{board}', 'Old', 'review', now() - interval '20 days', now() - interval '10 days');",
        status = if online { "online" } else { "offline" },
    ))
    .await
    .unwrap();
    (seen, idle)
}

#[actix_web::test]
async fn every_command_center_figure_counts_the_callers_organization_only() {
    let server = Server::start().await;
    let ours: Uuid = org_id(&server).await.parse().unwrap();
    let (seen, idle) = populate(&server, ours, true).await;
    let theirs = Uuid::new_v4();
    let db = server.db.client().await;
    db.execute(
        "INSERT INTO organizations (id, name) VALUES ($1, 'Elsewhere')",
        &[&theirs],
    )
    .await
    .unwrap();
    let (their_agent, _) = populate(&server, theirs, true).await;
    // Who addressed whom: twice Seen → Idle, once to the other organization's agent (dropped).
    for target in [idle, idle, their_agent] {
        db.execute(
            "INSERT INTO agent_events (id, organization_id, agent_id, event_type, payload, seq)
             SELECT gen_random_uuid(), $1, $2, 'agent.message', jsonb_build_object('target_agent_id', ($3::uuid)::text),
                    o.agent_event_seq + 1 FROM organizations o WHERE o.id = $1",
            &[&ours, &seen, &target],
        ).await.unwrap();
        db.execute(
            "UPDATE organizations SET agent_event_seq = agent_event_seq + 1 WHERE id = $1",
            &[&ours],
        )
        .await
        .unwrap();
    }

    let overview = ok(server.admin_get("/api/v1/command-center/overview").await);
    // By hand: one agent seen in 30 min, one task created today (the other two older),
    // two tasks in review/done changed this week (the review one changed 10 days ago: not),
    // one gateway online.
    assert_eq!(
        (
            &overview["active_agents"],
            &overview["tasks_today"],
            &overview["throughput_7d"],
            &overview["gateways_online"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{overview}"
    );
    let status = ok(server
        .admin_get("/api/v1/command-center/agent-status")
        .await);
    let agents = status["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{status}");
    assert_eq!(agents[0]["name"], "Seen");
    assert_eq!(agents[0]["current_task_title"], "Doing");
    assert_eq!(agents[0]["gateway_name"], "GW");
    assert_eq!(agents[1]["status"], "offline", "silent for two hours");
    let graph = ok(server
        .admin_get("/api/v1/command-center/communication-graph")
        .await);
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(
        graph["edges"],
        json!([{"from_agent_id": seen, "to_agent_id": idle, "weight": 2.0, "interaction_count": 2}])
    );
    let allocation = ok(server
        .admin_get("/api/v1/command-center/resource-allocation")
        .await);
    assert_eq!(
        allocation["per_agent"][1],
        json!({"agent_id": seen, "agent_name": "Seen", "tasks_assigned": 2, "tasks_in_progress": 1,
               "tasks_done_today": 1, "estimated_hours": 4.0})
    );
    let activity = ok(server
        .admin_get("/api/v1/command-center/live-activity?limit=2")
        .await);
    assert_eq!(activity["events"].as_array().unwrap().len(), 2);
    assert_eq!(activity["events"][0]["seq"], 3, "newest first");
    let older = ok(server
        .admin_get(&format!(
            "/api/v1/command-center/live-activity?since_id={}",
            activity["next_since_id"].as_str().unwrap()
        ))
        .await);
    assert_eq!(older["events"].as_array().unwrap().len(), 1);
    assert_eq!(older["events"][0]["seq"], 1);
    let bad = server
        .admin_get("/api/v1/command-center/live-activity?limit=0")
        .await;
    assert_eq!(bad.status, 422);
}

/// Many agents post events at once while a reader follows `after`: every event is read
/// exactly once, in commit order.
#[actix_web::test]
async fn the_live_activity_cursor_neither_skips_nor_repeats_under_concurrent_inserts() {
    let server = Server::start().await;
    let gateway = create_gateway(&server, "GW").await;
    let board = create_board(&server, &gateway, "Ops", json!({})).await;
    let mut tokens = Vec::new();
    for i in 0..4 {
        tokens.push(agent(&server, &board, &format!("Poster {i}")).await.1);
    }
    let mut stream = SseClient::open(&server, "/api/v1/command-center/stream", None).await;
    let (event, _, first) = stream.event().await;
    assert_eq!(event, "overview", "the figures come first");
    assert!(first["active_agents"].is_number());

    const PER_AGENT: usize = 15;
    let writers = tokens.iter().map(|token| {
        let server = &server;
        async move {
            for n in 0..PER_AGENT {
                let reply = as_agent(
                    server,
                    token,
                    Method::POST,
                    "/api/v1/agent/events",
                    Some(json!({"event_type": "progress", "payload": {"n": n}})),
                )
                .await;
                assert_eq!(reply.status, 201, "{}", reply.text);
            }
        }
    });
    let reader = async {
        let mut seen: Vec<i64> = Vec::new();
        let mut cursor = 0i64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while seen.len() < tokens.len() * PER_AGENT && std::time::Instant::now() < deadline {
            let page = server
                .admin_get(&format!(
                    "/api/v1/command-center/live-activity?after={cursor}&limit=7"
                ))
                .await;
            assert_eq!(page.status, 200, "{}", page.text);
            seen.extend(
                page.json["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_i64().unwrap()),
            );
            cursor = page.json["cursor"].as_i64().unwrap();
        }
        seen
    };
    let (_, seen) =
        futures_util::future::join(futures_util::future::join_all(writers), reader).await;
    let expected: Vec<i64> = (1..=(tokens.len() * PER_AGENT) as i64).collect();
    assert_eq!(seen, expected, "every event once, in order");

    // The stream carried each of them once too.
    let mut streamed = HashSet::new();
    while streamed.len() < expected.len() {
        let (event, id, data) = stream.event().await;
        if event == "activity" {
            assert_eq!(id.as_deref(), Some(data["seq"].to_string().as_str()));
            assert!(
                streamed.insert(data["seq"].as_i64().unwrap()),
                "repeated {data}"
            );
        }
    }
}
