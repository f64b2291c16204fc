//! Gateways: registration tokens, register / heartbeat / relay link / deregister, the
//! refusals, re-registration, link replacement, offline detection, and the admin views
//! across two instances.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{heartbeat, issue_token, link, org_id, register, registered};
use crate::harness::{eventually, Server, WsClient, ADMIN_TOKEN};

async fn metrics(server: &Server, gateway: &str) -> Value {
    let reply = server
        .admin_get(&format!("/api/v1/gateways/{gateway}/metrics"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

#[actix_web::test]
async fn register_heartbeat_link_and_deregister() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let token = issue_token(&server).await;
    let reply = register(&server, &org, &token, "Office").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let gateway = reply.json["gateway_id"].as_str().unwrap().to_string();
    let relay_token = reply.json["relay_token"].as_str().unwrap().to_string();
    assert_eq!(reply.json["heartbeat_interval_seconds"], 30);
    assert_eq!(relay_token.len(), 64);
    assert_eq!(
        reply.json["relay_ws_url"],
        format!(
            "{}/ws/gateway/{gateway}/relay",
            server.base.replacen("http", "ws", 1)
        )
    );

    let beat = json!({"gateway_id": gateway, "relay_token": relay_token, "status": "online",
                      "metrics": {"active_sessions": 3, "memory_mb": 512.5, "cpu_pct": 12.0, "agent_count": 4}});
    let ok = heartbeat(&server, &beat).await;
    assert_eq!(ok.json, json!({"ok": true, "config_update": null}));
    let m = metrics(&server, &gateway).await;
    assert_eq!(
        (
            m["status"].as_str(),
            m["active_sessions"].as_i64(),
            m["agent_count"].as_i64()
        ),
        (Some("online"), Some(3), Some(4))
    );
    assert_eq!(m["gateway_version"], "2026.11.1");
    assert_eq!(m["status_history"][0]["reason"], "registered");

    let mut ws = link(&server, &gateway, &relay_token).await;
    ws.send(json!({"type": "heartbeat", "id": "hb-1"})).await;
    assert_eq!(
        ws.expect_answer().await,
        json!({"type": "heartbeat_ack", "id": "hb-1"})
    );
    let connections = server
        .admin_get(&format!("/api/v1/gateways/{gateway}/connections"))
        .await;
    assert_eq!(
        connections.json["is_connected"], true,
        "{}",
        connections.text
    );
    assert_eq!(connections.json["active_connections"], 1);

    let bye = json!({"gateway_id": gateway, "relay_token": relay_token});
    let reply = server
        .call(
            Method::DELETE,
            "/api/v1/gateway-registry/deregister",
            None,
            Some(&bye.to_string()),
        )
        .await;
    assert_eq!(reply.json, json!({"ok": true}));
    let m = metrics(&server, &gateway).await;
    assert_eq!(m["status"], "offline");
    assert_eq!(m["status_history"][0]["reason"], "deregistered");
}

#[actix_web::test]
async fn bad_registration_tokens_are_refused() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let token = issue_token(&server).await;
    assert_eq!(
        register(&server, &org, "not-the-token", "Office")
            .await
            .status,
        401
    );
    // Another organization's id with this org's token.
    assert_eq!(
        register(&server, &Uuid::new_v4().to_string(), &token, "Office")
            .await
            .status,
        401
    );

    let listed = server.admin_get("/api/v1/gateway-registry/tokens").await;
    let id = listed.json[0]["id"].as_str().unwrap().to_string();
    let revoked = server
        .call(
            Method::DELETE,
            &format!("/api/v1/gateway-registry/tokens/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert!(revoked.json["revoked_at"].is_string());
    assert_eq!(register(&server, &org, &token, "Office").await.status, 401);
    let gateways: i64 = server
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM gateways", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(gateways, 0);

    let closed = Server::builder()
        .env("GATEWAY_REGISTRATION_ENABLED", "false")
        .start()
        .await;
    let org = org_id(&closed).await;
    let token = issue_token(&closed).await;
    assert_eq!(register(&closed, &org, &token, "Office").await.status, 403);
}

#[actix_web::test]
async fn re_registration_keeps_the_id_and_rotates_the_relay_token() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let token = issue_token(&server).await;
    let first = register(&server, &org, &token, "Office").await.json;
    let second = register(&server, &org, &token, "Office").await.json;
    assert_eq!(first["gateway_id"], second["gateway_id"]);
    assert_ne!(first["relay_token"], second["relay_token"]);
    let old = json!({"gateway_id": first["gateway_id"], "relay_token": first["relay_token"]});
    assert_eq!(heartbeat(&server, &old).await.status, 401);
    let gateways: i64 = server
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM gateways", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(gateways, 1);
}

#[actix_web::test]
async fn relay_auth_failures_close_with_4001() {
    let server = Server::builder()
        .env("WS_AUTH_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    let (gateway, relay_token) = registered(&server, "Office").await;
    let (other, other_token) = registered(&server, "Branch").await;
    let path = format!("/ws/gateway/{gateway}/relay");

    for first_frame in [
        json!({"type": "auth", "payload": {"relay_token": "wrong"}}),
        json!({"type": "auth", "payload": {"relay_token": other_token}}),
        json!({"type": "auth", "payload": {}}),
        json!({"type": "heartbeat", "id": 1}),
    ] {
        let mut ws = WsClient::connect(&server, &path).await;
        ws.send(first_frame.clone()).await;
        let refusal = ws.expect_json().await;
        assert_eq!(refusal["type"], "auth_error", "{first_frame}: {refusal}");
        assert_eq!(
            ws.expect_close(Duration::from_secs(5)).await.0,
            Some(4001),
            "{first_frame}"
        );
    }
    // Silence past the deadline.
    let mut ws = WsClient::connect(&server, &path).await;
    let (code, reason) = ws.expect_close(Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (Some(4001), "auth timeout"));
    // Each token works on its own gateway's link.
    link(&server, &gateway, &relay_token).await;
    link(&server, &other, &other_token).await;
}

#[actix_web::test]
async fn bad_frames_after_auth_get_errors_and_the_link_stays_up() {
    let server = Server::start().await;
    let (gateway, relay_token) = registered(&server, "Office").await;
    let mut ws = link(&server, &gateway, &relay_token).await;
    ws.send_text("not json").await;
    assert_eq!(ws.expect_answer().await["payload"]["code"], "INVALID_JSON");
    ws.send(json!({"type": "teleport"})).await;
    assert_eq!(ws.expect_answer().await["payload"]["code"], "UNKNOWN_TYPE");
    ws.send(json!({"type": "heartbeat", "id": 7})).await;
    assert_eq!(
        ws.expect_answer().await,
        json!({"type": "heartbeat_ack", "id": 7})
    );
}

#[actix_web::test]
async fn a_second_link_replaces_the_first() {
    let server = Server::start().await;
    let (gateway, relay_token) = registered(&server, "Office").await;
    let mut first = link(&server, &gateway, &relay_token).await;
    let mut second = link(&server, &gateway, &relay_token).await;
    let (code, reason) = first.expect_close(Duration::from_secs(5)).await;
    assert_eq!(
        (code, reason.as_str()),
        (Some(4000), "replaced by a newer connection")
    );
    second.send(json!({"type": "heartbeat", "id": 2})).await;
    assert_eq!(second.expect_answer().await["type"], "heartbeat_ack");
}

#[actix_web::test]
async fn silent_gateways_go_offline_once_with_two_instances_sweeping() {
    let a = Server::builder()
        .env("GATEWAY_OFFLINE_THRESHOLD_SECONDS", "1")
        .start()
        .await;
    let b = Server::builder()
        .env("GATEWAY_OFFLINE_THRESHOLD_SECONDS", "1")
        .start_on(&a)
        .await;
    let (gateway, _) = registered(&a, "Office").await;
    let offline = eventually(Duration::from_secs(10), || async {
        metrics(&b, &gateway).await["status"] == "offline"
    })
    .await;
    assert!(offline, "{}", a.log());
    // Both instances kept sweeping for a while; the transition is recorded once.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let history = metrics(&a, &gateway).await["status_history"].clone();
    let timeouts = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "heartbeat timeout")
        .count();
    assert_eq!(timeouts, 1, "{history}");

    // A degraded gateway (a connector whose local gateway is down) that goes silent too.
    let (degraded, relay_token) = registered(&a, "Branch").await;
    let beat = json!({"gateway_id": degraded, "relay_token": relay_token, "status": "degraded"});
    let answer = heartbeat(&a, &beat).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let offline = eventually(Duration::from_secs(10), || async {
        metrics(&b, &degraded).await["status"] == "offline"
    })
    .await;
    assert!(offline, "{}", a.log());
    let last = metrics(&a, &degraded).await["status_history"][0].clone();
    assert_eq!(
        (&last["from_status"], &last["reason"]),
        (&json!("degraded"), &json!("heartbeat timeout"))
    );
}

#[actix_web::test]
async fn a_link_on_instance_b_is_reported_by_instance_a() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let (gateway, relay_token) = registered(&a, "Office").await;
    let path = format!("/api/v1/gateways/{gateway}/connections");
    assert_eq!(a.admin_get(&path).await.json["is_connected"], false);

    let ws = link(&b, &gateway, &relay_token).await;
    let seen = eventually(Duration::from_secs(5), || async {
        a.admin_get(&path).await.json["is_connected"] == true
    })
    .await;
    assert!(seen);
    drop(ws);
    let gone = eventually(Duration::from_secs(5), || async {
        a.admin_get(&path).await.json["is_connected"] == false
    })
    .await;
    assert!(gone, "presence not cleared when the link closed");
}

#[actix_web::test]
async fn another_organizations_gateway_is_not_found() {
    let server = Server::start().await;
    let (gateway, _) = registered(&server, "Office").await;
    let other = Uuid::new_v4();
    server
        .db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO organizations (id, name) VALUES ('{other}', 'Other');
             UPDATE gateways SET organization_id = '{other}';"
        ))
        .await
        .unwrap();
    for suffix in ["connections", "metrics"] {
        assert_eq!(
            server
                .admin_get(&format!("/api/v1/gateways/{gateway}/{suffix}"))
                .await
                .status,
            404,
            "{suffix}"
        );
    }
}

#[actix_web::test]
async fn sigterm_closes_relay_links_with_going_away() {
    let mut server = Server::start().await;
    let (gateway, relay_token) = registered(&server, "Office").await;
    let mut ws = link(&server, &gateway, &relay_token).await;
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) }, 0);
    let (code, _) = ws.expect_close(Duration::from_secs(5)).await;
    assert_eq!(code, Some(1001));
    assert_eq!(
        server
            .wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[actix_web::test]
async fn the_simulator_links_up_and_reconnects_after_a_server_restart() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let token = issue_token(&server).await;
    let sim = std::process::Command::new(crate::harness::GATEWAY_SIM)
        .args([
            "run",
            "--server",
            &server.base,
            "--org",
            &org,
            "--registration-token",
            &token,
            "--name",
            "sim",
            "--duration-secs",
            "12",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start gateway-sim");
    assert!(
        eventually(Duration::from_secs(10), || sim_connected(&server)).await,
        "simulator never linked"
    );

    // Restart the server where the simulator expects it; it must come back by itself.
    let (port, db) = (server.port, server.db.clone());
    drop(server);
    let restarted = Server::builder().port(port).start_on_db(db).await;
    assert!(
        eventually(Duration::from_secs(10), || sim_connected(&restarted)).await,
        "simulator did not reconnect"
    );

    let out = sim.wait_with_output().expect("gateway-sim summary");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(summary["links_up"].as_u64().unwrap_or(0) >= 2, "{summary}");
    assert!(
        summary["reconnects"].as_u64().unwrap_or(0) >= 1,
        "{summary}"
    );
    assert_eq!(
        summary["registrations"], 1,
        "a reconnect must not re-register: {summary}"
    );
}

async fn sim_connected(server: &Server) -> bool {
    let row = server
        .db
        .client()
        .await
        .query_opt("SELECT id FROM gateways WHERE name = 'sim'", &[])
        .await
        .unwrap();
    let Some(id) = row.map(|r| r.get::<_, uuid::Uuid>(0)) else {
        return false;
    };
    server
        .admin_get(&format!("/api/v1/gateways/{id}/connections"))
        .await
        .json["is_connected"]
        == true
}

/// Clients that keep connecting while the server shuts down: a relay link that
/// authenticates (and reconnects when closed), an H5 socket that never authenticates, and a
/// TCP connection that never sends a byte. None may keep the process alive past
/// SHUTDOWN_TIMEOUT_SECONDS. `MC_SHUTDOWN_ROUNDS` repeats it (the note's 20 shutdowns).
#[actix_web::test]
async fn reconnecting_clients_do_not_hold_a_shutdown_past_its_timeout() {
    let rounds: usize = std::env::var("MC_SHUTDOWN_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    for round in 0..rounds {
        let mut server = Server::builder()
            .env("SHUTDOWN_TIMEOUT_SECONDS", "3")
            .start()
            .await;
        let (gateway, relay_token) = registered(&server, "Office").await;
        let base = server.base.replacen("http", "ws", 1);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for kind in 0..3 {
            let (base, gateway, relay_token, stop) = (
                base.clone(),
                gateway.clone(),
                relay_token.clone(),
                stop.clone(),
            );
            let addr = server.base.trim_start_matches("http://").to_string();
            clients.push(actix_web::rt::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match kind {
                        0 => relink(&base, &gateway, &relay_token).await,
                        1 => {
                            let url = format!("{base}/ws/h5/chat");
                            let held = awc::Client::new().ws(url).connect().await;
                            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                            drop(held);
                        }
                        _ => {
                            let held = actix_web::rt::net::TcpStream::connect(&addr).await;
                            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                            drop(held);
                        }
                    }
                }
            }));
        }
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) }, 0);
        let status = server.wait_exit(Duration::from_secs(10));
        let took = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for client in clients {
            client.abort();
        }
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "round {round}: not stopped within 10 s\n{}",
            server.log()
        );
        eprintln!("shutdown {round}: exited after {took:?}");
        // The timeout is 3 s; the watchdog's margin is 2 s.
        assert!(took < Duration::from_secs(6), "round {round}: {took:?}");
    }
}

/// Links as a relay gateway and holds the link until the server closes it.
async fn relink(base: &str, gateway: &str, relay_token: &str) {
    use futures_util::{SinkExt, StreamExt};
    let url = format!("{base}/ws/gateway/{gateway}/relay");
    let Ok((_, mut ws)) = awc::Client::new().ws(url).connect().await else {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        return;
    };
    let auth = json!({"type": "auth", "payload": {"relay_token": relay_token}}).to_string();
    if ws.send(awc::ws::Message::Text(auth.into())).await.is_err() {
        return;
    }
    while let Some(Ok(_)) = ws.next().await {}
}

/// The console's gateway form refuses URLs without `ws(s)://` and an explicit port; what a
/// gateway registers is stored in that form, so an admin can edit and save it.
#[actix_web::test]
async fn registered_urls_are_stored_as_the_console_accepts_them() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let token = issue_token(&server).await;
    let register = |name: &'static str, url: &'static str| {
        let body = json!({"organization_id": org, "registration_token": token, "name": name,
                          "url": url, "workspace_root": "/srv/agents"});
        let server = &server;
        async move {
            server
                .call(
                    Method::POST,
                    "/api/v1/gateway-registry/register",
                    None,
                    Some(&body.to_string()),
                )
                .await
        }
    };
    for (name, url, stored) in [
        ("plain", "http://office.local", "ws://office.local:18789"),
        (
            "tls",
            "https://gw.example.com/",
            "wss://gw.example.com:18789",
        ),
        ("kept", "ws://10.0.0.2:9000", "ws://10.0.0.2:9000"),
    ] {
        let reply = register(name, url).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let id = reply.json["gateway_id"].as_str().unwrap();
        let gateway = server.admin_get(&format!("/api/v1/gateways/{id}")).await;
        assert_eq!(gateway.json["url"], stored, "{url}");
    }
    let refused = register("bad", "ftp://office.local").await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("url"), "{}", refused.text);
}
