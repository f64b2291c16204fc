//! `POST /api/v1/board-groups/{id}/heartbeat`: sets the cadence of the group's agents and
//! sends it to their gateways.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Server, ADMIN_TOKEN};

/// A group with one board holding a worker and a lead; returns (group, worker, lead).
async fn group_with_agents(server: &Server) -> (Uuid, Uuid, Uuid) {
    let org = server.admin_get("/api/v1/organizations/me").await.json["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (gateway, group, board, worker, lead) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    server
        .db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO gateways (id, organization_id, name) VALUES ('{gateway}', '{org}', 'gw');
             INSERT INTO board_groups (id, organization_id, name, slug) VALUES ('{group}', '{org}', 'G', 'g');
             INSERT INTO boards (id, organization_id, name, description, gateway_id, board_group_id)
                 VALUES ('{board}', '{org}', 'B', 'd', '{gateway}', '{group}');
             INSERT INTO agents (id, organization_id, board_id, gateway_id, name, heartbeat_config)
                 VALUES ('{worker}', '{org}', '{board}', '{gateway}', 'Worker', '{{\"every\": \"10m\", \"target\": \"none\"}}');
             INSERT INTO agents (id, organization_id, board_id, gateway_id, name, is_board_lead)
                 VALUES ('{lead}', '{org}', '{board}', '{gateway}', 'Lead', true);"
        ))
        .await
        .unwrap();
    (group, worker, lead)
}

async fn apply(server: &Server, group: Uuid, body: Value) -> crate::harness::Reply {
    let path = format!("/api/v1/board-groups/{group}/heartbeat");
    server
        .call(
            Method::POST,
            &path,
            Some(ADMIN_TOKEN),
            Some(&body.to_string()),
        )
        .await
}

async fn config(server: &Server, agent: Uuid) -> Value {
    server
        .db
        .client()
        .await
        .query_one(
            "SELECT heartbeat_config FROM agents WHERE id = $1",
            &[&agent],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn workers_get_the_cadence_and_leads_only_when_asked() {
    let server = Server::start().await;
    let (group, worker, lead) = group_with_agents(&server).await;

    let reply = apply(&server, group, json!({"every": "5m"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["updated_agent_ids"], json!([worker]));
    assert_eq!(reply.json["failed_agent_ids"], json!([]));
    assert_eq!(
        reply.json["requested"],
        json!({"every": "5m", "include_board_leads": false})
    );
    // The cadence changes; an existing target is kept.
    assert_eq!(
        config(&server, worker).await,
        json!({"every": "5m", "target": "none"})
    );

    let reply = apply(
        &server,
        group,
        json!({"every": "2m", "include_board_leads": true}),
    )
    .await;
    let mut updated: Vec<String> =
        serde_json::from_value(reply.json["updated_agent_ids"].clone()).unwrap();
    updated.sort();
    let mut expected = vec![worker.to_string(), lead.to_string()];
    expected.sort();
    assert_eq!(updated, expected);
    let lead_config = config(&server, lead).await;
    assert_eq!(
        (
            lead_config["every"].as_str(),
            lead_config["target"].as_str()
        ),
        (Some("2m"), Some("last"))
    );

    // Each application is one request to the gateway with its agents' new configs.
    let sent: Vec<Value> = server
        .db
        .column(
            "SELECT params FROM gateway_commands WHERE method = 'agents.heartbeats.set' ORDER BY created_at",
            &[],
        )
        .await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0]["agents"],
        json!([{"agent_id": worker, "session_key": null, "heartbeat_config": {"every": "5m", "target": "none"}}])
    );
    assert_eq!(sent[1]["agents"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn bad_cadences_and_other_organizations_groups_are_refused() {
    let server = Server::start().await;
    let (group, _, _) = group_with_agents(&server).await;
    assert_eq!(
        apply(&server, group, json!({"every": "soon"})).await.status,
        422
    );
    assert_eq!(apply(&server, group, json!({})).await.status, 422);
    assert_eq!(
        apply(&server, Uuid::new_v4(), json!({"every": "5m"}))
            .await
            .status,
        404
    );
    let path = format!("/api/v1/board-groups/{group}/heartbeat");
    assert_eq!(
        server
            .call(Method::POST, &path, None, Some(r#"{"every": "5m"}"#))
            .await
            .status,
        401
    );
}
