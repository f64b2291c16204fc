//! Gateways, boards, board groups and agents: the admin CRUD of domain.md §A3–A6.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{
    activity, create_agent, create_board, create_gateway, delete, send, switch_to_new_org,
};
use crate::harness::{Reply, Server};

fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect()
}

fn model_error(reply: &Reply, msg: &str) {
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json["detail"][0]["loc"],
        json!(["body"]),
        "{}",
        reply.text
    );
    assert_eq!(
        reply.json["detail"][0]["msg"],
        format!("Value error, {msg}")
    );
}

#[actix_web::test]
async fn every_route_needs_the_admin_token() {
    let server = Server::start().await;
    let id = Uuid::new_v4();
    for (method, path) in [
        (Method::GET, "/api/v1/gateways".to_string()),
        (Method::POST, "/api/v1/gateways".to_string()),
        (Method::GET, format!("/api/v1/gateways/{id}")),
        (Method::GET, "/api/v1/boards".to_string()),
        (Method::POST, "/api/v1/boards".to_string()),
        (Method::PATCH, format!("/api/v1/boards/{id}")),
        (Method::DELETE, format!("/api/v1/boards/{id}")),
        (Method::GET, "/api/v1/board-groups".to_string()),
        (Method::DELETE, format!("/api/v1/board-groups/{id}")),
        (Method::GET, "/api/v1/agents".to_string()),
        (Method::POST, "/api/v1/agents".to_string()),
        (Method::DELETE, format!("/api/v1/agents/{id}")),
    ] {
        let reply = server.call(method.clone(), &path, None, Some("{}")).await;
        assert_eq!(reply.status, 401, "{method} {path}");
    }
}

#[actix_web::test]
async fn gateways_crud_masks_the_token_and_ensures_the_main_agent() {
    let server = Server::start().await;
    let gw = create_gateway(&server, "Office").await;
    assert_eq!(
        gw["token"], "********",
        "a token is set, and it is not answered"
    );
    assert_eq!(gw["has_token"], true);
    assert_eq!(gw["workspace_root"], "/srv/agents");
    let gw_id = gw["id"].as_str().unwrap();

    let agents = server
        .admin_get(&format!("/api/v1/agents?gateway_id={gw_id}"))
        .await;
    assert_eq!(agents.status, 200, "{}", agents.text);
    assert_eq!(agents.json["total"], 1);
    let main = &agents.json["items"][0];
    assert_eq!(main["name"], "Office Gateway Agent");
    assert_eq!(main["is_gateway_main"], true);
    assert_eq!(main["board_id"], Value::Null);
    assert_eq!(main["status"], "provisioning");
    assert_eq!(main["provision_action"], "provision");
    assert_eq!(
        main["openclaw_session_id"],
        format!("agent:mc-gateway-{gw_id}:main")
    );
    assert_eq!(main["heartbeat_config"]["every"], "10m");

    create_gateway(&server, "Second").await;
    let page = server.admin_get("/api/v1/gateways?limit=1&offset=1").await;
    assert_eq!(page.json["total"], 2);
    assert_eq!(page.json["limit"], 1);
    assert_eq!(names(&page.json), ["Office"], "newest first");

    // The console's edit form, saved without retyping the token: the mask, or null for an
    // emptied field. Both keep the stored token; only "" clears it.
    let gw_path = format!("/api/v1/gateways/{gw_id}");
    let form = json!({"name": "HQ", "url": "ws://127.0.0.1:9", "token": "********", "workspace_root": "/srv/agents"});
    let patched = send(&server, Method::PATCH, &gw_path, form).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["name"], "HQ");
    assert_eq!(patched.json["url"], "ws://127.0.0.1:9");
    assert_eq!(patched.json["has_token"], true);
    let stored = || async {
        let db = server.db.client().await;
        let row = db
            .query_one(
                "SELECT token FROM gateways WHERE id = $1::text::uuid",
                &[&gw_id],
            )
            .await
            .unwrap();
        row.get::<_, Option<String>>(0)
    };
    assert_eq!(stored().await.as_deref(), Some("s3cret"));
    let emptied = send(&server, Method::PATCH, &gw_path, json!({"token": null})).await;
    assert_eq!(emptied.json["token"], "********");
    assert_eq!(stored().await.as_deref(), Some("s3cret"));
    let cleared = send(&server, Method::PATCH, &gw_path, json!({"token": ""})).await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.json["token"], Value::Null);
    assert_eq!(cleared.json["has_token"], false);
    assert_eq!(stored().await, None);
    let main = server
        .admin_get(&format!("/api/v1/agents/{}", main["id"].as_str().unwrap()))
        .await;
    assert_eq!(main.json["name"], "HQ Gateway Agent");
    assert_eq!(main.json["status"], "updating");
    assert_eq!(main.json["provision_action"], "update");

    let bad = send(
        &server,
        Method::POST,
        "/api/v1/gateways",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(bad.status, 422);

    assert_eq!(
        delete(&server, &format!("/api/v1/gateways/{gw_id}"))
            .await
            .json,
        json!({"ok": true})
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/gateways/{gw_id}"))
            .await
            .status,
        404
    );
    let left: i64 = server
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM agents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1, "only the second gateway's main agent is left");
}

#[actix_web::test]
async fn board_create_and_patch_follow_the_reference_validations() {
    let server = Server::start().await;
    let gw = create_gateway(&server, "Office").await;
    let base =
        json!({"name": "Ops", "slug": "ops", "description": "Ops board", "gateway_id": gw["id"]});
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().cloned().unwrap() {
            body[k] = v;
        }
        body
    };

    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"description": "  "})),
    )
    .await;
    model_error(&reply, "description is required");
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"gateway_id": null})),
    )
    .await;
    model_error(&reply, "gateway_id is required");
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"goal_confirmed": true, "objective": "Grow"})),
    )
    .await;
    model_error(
        &reply,
        "Confirmed goal boards require objective and success_metrics",
    );
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"max_agents": -1})),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json["detail"][0]["loc"],
        json!(["body", "max_agents"])
    );

    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"gateway_id": Uuid::new_v4()})),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["detail"].clone()),
        (422, json!("gateway_id is invalid"))
    );
    // A gateway without its main agent cannot carry boards.
    let bare = Uuid::new_v4();
    server
        .db
        .client()
        .await
        .execute(
            "INSERT INTO gateways (id, organization_id, name) SELECT $1, organization_id, 'Bare' FROM gateways LIMIT 1",
            &[&bare],
        )
        .await
        .unwrap();
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"gateway_id": bare})),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json["detail"],
        "gateway must have a gateway main agent before boards can be created or updated"
    );
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"board_group_id": Uuid::new_v4()})),
    )
    .await;
    assert_eq!(reply.json["detail"], "board_group_id is invalid");

    let board = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        with(json!({"description": "  Ops board  ", "success_metrics": {"nps": 50}, "target_date": "2026-03-01"})),
    )
    .await;
    assert_eq!(board.status, 200, "{}", board.text);
    assert_eq!(board.json["description"], "Ops board");
    assert_eq!(board.json["board_type"], "goal");
    assert_eq!(board.json["require_approval_for_done"], true);
    assert_eq!(board.json["max_agents"], 1);
    assert_eq!(board.json["success_metrics"], json!({"nps": 50}));
    assert_eq!(board.json["target_date"], "2026-03-01T00:00:00Z");
    let path = format!("/api/v1/boards/{}", board.json["id"].as_str().unwrap());

    let reply = send(&server, Method::PATCH, &path, json!({"gateway_id": null})).await;
    model_error(&reply, "gateway_id is required");
    let reply = send(&server, Method::PATCH, &path, json!({"description": null})).await;
    model_error(&reply, "description is required");
    let reply = send(&server, Method::PATCH, &path, json!({"board_type": "goal"})).await;
    assert_eq!(
        reply.json["detail"],
        "Goal boards require objective and success_metrics"
    );
    let reply = send(&server, Method::PATCH, &path, json!({"gateway_id": bare})).await;
    assert_eq!(reply.status, 422);

    let reply = send(
        &server,
        Method::PATCH,
        &path,
        json!({"name": "Operations", "board_type": "goal", "objective": "Ship", "max_agents": 3, "success_metrics": {"x": 1}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["name"], "Operations");
    assert_eq!(reply.json["slug"], "ops");
    assert_eq!(reply.json["max_agents"], 3);
    assert_eq!(server.admin_get(&path).await.json["name"], "Operations");

    // The board's gateway cannot be deleted from under it.
    let reply = delete(
        &server,
        &format!("/api/v1/gateways/{}", gw["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text);

    // Deleting the board takes its tasks and agents along.
    let agent = create_agent(&server, &board.json, "Worker").await;
    assert_eq!(agent.status, 200, "{}", agent.text);
    let db = server.db.client().await;
    db.execute(
        "INSERT INTO tasks (id, organization_id, board_id, title) SELECT $1, organization_id, id, 't' FROM boards",
        &[&Uuid::new_v4()],
    )
    .await
    .unwrap();
    assert_eq!(delete(&server, &path).await.json, json!({"ok": true}));
    assert_eq!(server.admin_get(&path).await.status, 404);
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM agents WHERE board_id IS NOT NULL)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 0));
}

#[actix_web::test]
async fn board_list_filters_orders_and_paginates() {
    let server = Server::start().await;
    let gw1 = create_gateway(&server, "One").await;
    let gw2 = create_gateway(&server, "Two").await;
    let group = send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "G", "slug": ""}),
    )
    .await;
    create_board(
        &server,
        &gw1,
        "beta",
        json!({"board_group_id": group.json["id"]}),
    )
    .await;
    create_board(&server, &gw2, "Alpha", json!({})).await;
    create_board(&server, &gw1, "gamma", json!({})).await;

    let all = server.admin_get("/api/v1/boards").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(names(&all.json), ["Alpha", "beta", "gamma"]);
    assert_eq!(all.json["total"], 3);
    let by_gw = server
        .admin_get(&format!(
            "/api/v1/boards?gateway_id={}",
            gw1["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(names(&by_gw.json), ["beta", "gamma"]);
    let by_group = server
        .admin_get(&format!(
            "/api/v1/boards?board_group_id={}",
            group.json["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(names(&by_group.json), ["beta"]);
    let page = server.admin_get("/api/v1/boards?limit=1&offset=1").await;
    assert_eq!(
        (names(&page.json), page.json["total"].clone()),
        (vec!["beta"], json!(3))
    );
    assert_eq!(server.admin_get("/api/v1/boards?limit=0").await.status, 422);
    assert_eq!(
        server
            .admin_get("/api/v1/boards?gateway_id=nope")
            .await
            .status,
        422
    );
}

#[actix_web::test]
async fn board_groups_slugify_and_detach_boards_on_delete() {
    let server = Server::start().await;
    let gw = create_gateway(&server, "One").await;
    let group = send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "Sales & Ops -- EU", "slug": " ", "description": "d"}),
    )
    .await;
    assert_eq!(group.status, 200, "{}", group.text);
    assert_eq!(group.json["slug"], "sales-ops-eu");
    let path = format!(
        "/api/v1/board-groups/{}",
        group.json["id"].as_str().unwrap()
    );
    let kept = send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "Zed", "slug": "custom"}),
    )
    .await;
    assert_eq!(kept.json["slug"], "custom");
    assert_eq!(kept.json["description"], Value::Null);

    let list = server.admin_get("/api/v1/board-groups").await;
    assert_eq!(names(&list.json), ["Sales & Ops -- EU", "Zed"]);
    assert_eq!(list.json["total"], 2);

    let patched = send(
        &server,
        Method::PATCH,
        &path,
        json!({"name": "North", "slug": "", "description": null}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["slug"], "north");
    assert_eq!(patched.json["description"], Value::Null);
    assert_eq!(server.admin_get(&path).await.json["name"], "North");

    let board = create_board(
        &server,
        &gw,
        "b",
        json!({"board_group_id": group.json["id"]}),
    )
    .await;
    assert_eq!(delete(&server, &path).await.json, json!({"ok": true}));
    assert_eq!(server.admin_get(&path).await.status, 404);
    let board = server
        .admin_get(&format!("/api/v1/boards/{}", board["id"].as_str().unwrap()))
        .await;
    assert_eq!(board.json["board_group_id"], Value::Null);
}

#[actix_web::test]
async fn a_member_sees_only_the_boards_and_groups_granted_to_them() {
    let server = Server::start().await;
    let gw = create_gateway(&server, "One").await;
    let g1 = send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "G1", "slug": ""}),
    )
    .await
    .json;
    let g2 = send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "G2", "slug": ""}),
    )
    .await
    .json;
    let open = create_board(&server, &gw, "Open", json!({"board_group_id": g1["id"]})).await;
    let closed = create_board(&server, &gw, "Closed", json!({"board_group_id": g2["id"]})).await;
    let agent = create_agent(&server, &open, "A").await.json;

    let db = server.db.client().await;
    db.execute(
        "UPDATE organization_members SET role = 'member', all_boards_read = false, all_boards_write = false",
        &[],
    )
    .await
    .unwrap();
    let open_id: Uuid = open["id"].as_str().unwrap().parse().unwrap();
    db.execute(
        "INSERT INTO organization_board_access (id, organization_member_id, board_id, can_read, can_write) \
         SELECT $1, id, $2, true, false FROM organization_members",
        &[&Uuid::new_v4(), &open_id],
    )
    .await
    .unwrap();
    server.caches_caught_up().await;

    assert_eq!(
        names(&server.admin_get("/api/v1/boards").await.json),
        ["Open"]
    );
    let groups = server.admin_get("/api/v1/board-groups").await;
    assert_eq!(
        (names(&groups.json), groups.json["total"].clone()),
        (vec!["G1"], json!(1))
    );
    let closed_path = format!("/api/v1/boards/{}", closed["id"].as_str().unwrap());
    let reply = server.admin_get(&closed_path).await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["detail"].clone()),
        (403, json!("Board access denied"))
    );
    let open_path = format!("/api/v1/boards/{open_id}");
    assert_eq!(server.admin_get(&open_path).await.status, 200);
    assert_eq!(
        send(&server, Method::PATCH, &open_path, json!({"name": "x"}))
            .await
            .status,
        403
    );
    assert_eq!(delete(&server, &open_path).await.status, 403);
    // Access is decided before the body's model rules.
    let reply = send(
        &server,
        Method::PATCH,
        &open_path,
        json!({"description": ""}),
    )
    .await;
    assert_eq!(reply.status, 403);
    let g2_path = format!("/api/v1/board-groups/{}", g2["id"].as_str().unwrap());
    assert_eq!(server.admin_get(&g2_path).await.status, 403);
    assert_eq!(
        server
            .admin_get(&format!(
                "/api/v1/board-groups/{}",
                g1["id"].as_str().unwrap()
            ))
            .await
            .status,
        200
    );
    // Admin-only operations.
    let body = json!({"name": "n", "slug": "n", "description": "d", "gateway_id": gw["id"]});
    assert_eq!(
        send(&server, Method::POST, "/api/v1/boards", body)
            .await
            .status,
        403
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            "/api/v1/board-groups",
            json!({"name": "n", "slug": ""})
        )
        .await
        .status,
        403
    );
    assert_eq!(server.admin_get("/api/v1/gateways").await.status, 403);
    assert_eq!(server.admin_get("/api/v1/agents").await.status, 403);
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/agents/{}", agent["id"].as_str().unwrap()))
            .await
            .status,
        403
    );
}

#[actix_web::test]
async fn agents_create_validate_names_and_update_with_intent() {
    let server = Server::start().await;
    let gw = create_gateway(&server, "One").await;
    let b1 = create_board(&server, &gw, "B1", json!({})).await;
    let b2 = create_board(&server, &gw, "B2", json!({})).await;

    let reply = send(
        &server,
        Method::POST,
        "/api/v1/agents",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["detail"].clone()),
        (422, json!("board_id is required"))
    );
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/agents",
        json!({"name": "x", "board_id": Uuid::new_v4()}),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["detail"].clone()),
        (404, json!("Board not found"))
    );
    let reply = create_agent(&server, &b1, "   ").await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json["detail"][0]["loc"], json!(["body", "name"]));

    let created = send(
        &server,
        Method::POST,
        "/api/v1/agents",
        json!({"board_id": b1["id"], "name": " Scout ", "status": "online",
               "identity_profile": {"role": " Scout ", "skills": ["maps", "radio"]}, "soul_template": "  "}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let agent = created.json;
    assert_eq!(agent["name"], "Scout");
    assert_eq!(agent["status"], "provisioning");
    assert_eq!(agent["provision_action"], "provision");
    assert_eq!(agent["gateway_id"], gw["id"]);
    assert_eq!(agent["is_gateway_main"], false);
    assert_eq!(
        agent["identity_profile"],
        json!({"role": "Scout", "skills": "maps, radio"})
    );
    assert_eq!(agent["soul_template"], Value::Null);
    assert_eq!(
        agent["heartbeat_config"],
        json!({"every": "10m", "target": "last", "includeReasoning": false})
    );
    assert!(agent.get("token").is_none());

    let reply = create_agent(&server, &b1, "SCOUT").await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["detail"].clone()),
        (
            409,
            json!("An agent with this name already exists on this board.")
        )
    );
    let reply = create_agent(&server, &b2, "scout").await;
    assert_eq!(
        reply.json["detail"],
        "An agent with this name already exists in this gateway workspace."
    );
    assert_eq!(create_agent(&server, &b2, "Other").await.status, 200);

    // Listing: newest first; filters by board and gateway; main agents included.
    let all = server.admin_get("/api/v1/agents").await;
    assert_eq!(names(&all.json), ["Other", "Scout", "One Gateway Agent"]);
    let b1_list = server
        .admin_get(&format!(
            "/api/v1/agents?board_id={}",
            b1["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(names(&b1_list.json), ["Scout"]);
    let page = server.admin_get("/api/v1/agents?limit=2&offset=2").await;
    assert_eq!(
        (names(&page.json), page.json["total"].clone()),
        (vec!["One Gateway Agent"], json!(3))
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/agents?gateway_id={}", Uuid::new_v4()))
            .await
            .status,
        404
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/agents?board_id={}", Uuid::new_v4()))
            .await
            .status,
        404
    );

    let path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());
    let reply = send(&server, Method::PATCH, &path, json!({"status": "online"})).await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["detail"].clone()),
        (403, json!("status is controlled by agent heartbeat"))
    );
    let reply = send(
        &server,
        Method::PATCH,
        &path,
        json!({"is_gateway_main": false}),
    )
    .await;
    assert_eq!(
        reply.json["detail"],
        "board_id is required when converting a gateway-main agent to board scope"
    );

    // Computed status: seen recently → stored status; long ago → offline.
    let db = server.db.client().await;
    db.execute(
        "UPDATE agents SET status = 'online', last_seen_at = now() WHERE name = 'Scout'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(server.admin_get(&path).await.json["status"], "online");
    db.execute(
        "UPDATE agents SET last_seen_at = now() - interval '11 minutes' WHERE name = 'Scout'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(server.admin_get(&path).await.json["status"], "offline");

    let reply = send(
        &server,
        Method::PATCH,
        &path,
        json!({"name": "Ranger", "board_id": b2["id"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["name"], "Ranger");
    assert_eq!(reply.json["board_id"], b2["id"]);
    assert_eq!(reply.json["status"], "updating");
    assert_eq!(reply.json["provision_action"], "update");

    let reply = send(
        &server,
        Method::PATCH,
        &path,
        json!({"is_gateway_main": true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["is_gateway_main"], true);
    assert_eq!(reply.json["board_id"], Value::Null);
    assert_eq!(
        reply.json["openclaw_session_id"],
        format!("agent:mc-gateway-{}:main", gw["id"].as_str().unwrap())
    );
}

#[actix_web::test]
async fn deleting_an_agent_returns_its_work_to_the_inbox() {
    let server = Server::start().await;
    let gw = create_gateway(&server, "One").await;
    let board = create_board(&server, &gw, "B", json!({})).await;
    let agent = create_agent(&server, &board, "Doer").await.json;
    let agent_id: Uuid = agent["id"].as_str().unwrap().parse().unwrap();
    let db = server.db.client().await;
    for status in ["in_progress", "review", "inbox"] {
        db.execute(
            "INSERT INTO tasks (id, organization_id, board_id, title, status, assigned_agent_id, in_progress_at) \
             SELECT $1, organization_id, id, $2, $2, $3, now() FROM boards",
            &[&Uuid::new_v4(), &status, &agent_id],
        )
        .await
        .unwrap();
    }

    let reply = delete(&server, &format!("/api/v1/agents/{agent_id}")).await;
    assert_eq!(reply.json, json!({"ok": true}), "{}", reply.text);
    let rows = db
        .query(
            "SELECT title, status, assigned_agent_id IS NULL, in_progress_at IS NULL FROM tasks ORDER BY title",
            &[],
        )
        .await
        .unwrap();
    let tasks: Vec<(String, String, bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        tasks,
        [
            ("in_progress".into(), "inbox".into(), true, true),
            ("inbox".into(), "inbox".into(), true, false),
            ("review".into(), "review".into(), true, false),
        ]
    );
    assert_eq!(
        activity(&server, "agent.delete.requested").await,
        ["Delete requested for Doer; its gateway removes it when it takes the request."]
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/agents/{agent_id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        delete(&server, &format!("/api/v1/agents/{agent_id}"))
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn another_organizations_resources_answer_404() {
    let server = Server::start().await;
    let gw = create_gateway(&server, "One").await;
    let group = send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "G", "slug": ""}),
    )
    .await
    .json;
    let board = create_board(&server, &gw, "B", json!({})).await;
    let agent = create_agent(&server, &board, "A").await.json;
    switch_to_new_org(&server).await;

    let paths = [
        format!("/api/v1/gateways/{}", gw["id"].as_str().unwrap()),
        format!("/api/v1/board-groups/{}", group["id"].as_str().unwrap()),
        format!("/api/v1/boards/{}", board["id"].as_str().unwrap()),
        format!("/api/v1/agents/{}", agent["id"].as_str().unwrap()),
    ];
    for path in &paths {
        assert_eq!(server.admin_get(path).await.status, 404, "GET {path}");
        assert_eq!(
            send(&server, Method::PATCH, path, json!({"name": "x"}))
                .await
                .status,
            404,
            "PATCH {path}"
        );
        assert_eq!(delete(&server, path).await.status, 404, "DELETE {path}");
    }
    for list in [
        "/api/v1/gateways",
        "/api/v1/boards",
        "/api/v1/board-groups",
        "/api/v1/agents",
    ] {
        assert_eq!(server.admin_get(list).await.json["total"], 0, "{list}");
    }
    // Foreign ids used as references are invalid here.
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/boards",
        json!({"name": "n", "slug": "n", "description": "d", "gateway_id": gw["id"]}),
    )
    .await;
    assert_eq!(reply.json["detail"], "gateway_id is invalid");
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/agents",
        json!({"name": "n", "board_id": board["id"]}),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        server
            .admin_get(&format!(
                "/api/v1/boards?gateway_id={}",
                gw["id"].as_str().unwrap()
            ))
            .await
            .json["total"],
        0
    );
}
