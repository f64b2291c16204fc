//! H5 accounts: register, login, refresh rotation with reuse detection, profile, and the
//! admin endpoints (list, detail, assign, unassign, suspend, reactivate).

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Server, ADMIN_TOKEN};

/// The harness runs in dev, where the H5 key is the documented development key.
const DEV_H5_SECRET: &str = "h5-dev-secret-not-for-production";

async fn org_id(server: &Server) -> String {
    server.admin_get("/api/v1/organizations/me").await.json["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn post(
    server: &Server,
    path: impl AsRef<str>,
    token: Option<&str>,
    body: Value,
) -> crate::harness::Reply {
    server
        .call(Method::POST, path.as_ref(), token, Some(&body.to_string()))
        .await
}

async fn register(server: &Server, org: &str, username: &str) -> Value {
    let reply = post(
        server,
        "/api/v1/h5/auth/register",
        None,
        json!({"organization_id": org, "username": username, "password": "secret-pass"}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json
}

async fn login(
    server: &Server,
    org: &str,
    username: &str,
    password: &str,
) -> crate::harness::Reply {
    post(
        server,
        "/api/v1/h5/auth/login",
        None,
        json!({"organization_id": org, "username": username, "password": password}),
    )
    .await
}

fn without_request_id(mut v: Value) -> Value {
    v.as_object_mut().map(|o| o.remove("request_id"));
    v
}

/// A board with an agent on it, by SQL; returns (board, agent).
async fn board_with_agent(server: &Server, org: &str) -> (Uuid, Uuid) {
    let (gateway, board, agent) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    server
        .db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO gateways (id, organization_id, name) VALUES ('{gateway}', '{org}', 'gw');
             INSERT INTO boards (id, organization_id, name, description, gateway_id) VALUES ('{board}', '{org}', 'b', 'd', '{gateway}');
             INSERT INTO agents (id, organization_id, board_id, gateway_id, name) VALUES ('{agent}', '{org}', '{board}', '{gateway}', 'Ada');"
        ))
        .await
        .unwrap();
    (board, agent)
}

#[actix_web::test]
async fn register_returns_201_with_tokens_and_rejects_duplicates_and_bad_input() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let body = register(&server, &org, "  alice ").await;
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["status"], "active");
    assert_eq!(body["user"]["last_login_at"], Value::Null);
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 64);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);

    let dup = post(
        &server,
        "/api/v1/h5/auth/register",
        None,
        json!({"organization_id": org, "username": "alice", "password": "another-pass"}),
    )
    .await;
    assert_eq!(dup.status, 409);
    assert_eq!(
        dup.json["detail"],
        "Username already taken in this organization."
    );

    for (username, password, field) in [
        ("a", "secret-pass", "username"),
        ("bob", "short", "password"),
    ] {
        let r = post(
            &server,
            "/api/v1/h5/auth/register",
            None,
            json!({"organization_id": org, "username": username, "password": password}),
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.json["detail"][0]["loc"], json!(["body", field]));
    }
    let unknown_org = post(
        &server,
        "/api/v1/h5/auth/register",
        None,
        json!({"organization_id": Uuid::new_v4(), "username": "carol", "password": "secret-pass"}),
    )
    .await;
    assert_eq!(unknown_org.status, 404);
    let bad_uuid = post(
        &server,
        "/api/v1/h5/auth/register",
        None,
        json!({"organization_id": "nope", "username": "carol", "password": "secret-pass"}),
    )
    .await;
    assert_eq!(bad_uuid.status, 422);
}

#[actix_web::test]
async fn passwords_are_stored_as_argon2id() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    register(&server, &org, "alice").await;
    let hash: String = server
        .db
        .client()
        .await
        .query_one("SELECT password_hash FROM h5_users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[actix_web::test]
async fn login_succeeds_and_failures_look_identical() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    register(&server, &org, "alice").await;

    let ok = login(&server, &org, " alice", "secret-pass").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.json["user"]["last_login_at"].is_string());

    let wrong_password = login(&server, &org, "alice", "wrong-pass").await;
    let unknown_user = login(&server, &org, "nobody", "secret-pass").await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_user.status, 401);
    assert_eq!(unknown_user.json["detail"], "Invalid username or password.");
    assert_eq!(
        without_request_id(wrong_password.json),
        without_request_id(unknown_user.json)
    );
}

#[actix_web::test]
async fn repeated_failures_are_throttled_across_instances() {
    let a = Server::builder()
        .env("H5_LOGIN_MAX_FAILURES", "3")
        .start()
        .await;
    let org = org_id(&a).await;
    register(&a, &org, "alice").await;
    let b = Server::builder()
        .env("H5_LOGIN_MAX_FAILURES", "3")
        .start_on(&a)
        .await;

    for server in [&a, &b, &a] {
        assert_eq!(login(server, &org, "alice", "wrong").await.status, 401);
    }
    // Limit reached: even the right password waits, on either instance.
    for server in [&b, &a] {
        let r = login(server, &org, "alice", "secret-pass").await;
        assert_eq!(r.status, 429, "{}", r.text);
        assert!(r.header("retry-after").is_some());
    }
    // Other usernames are not affected.
    register(&a, &org, "bob").await;
    assert_eq!(login(&b, &org, "bob", "secret-pass").await.status, 200);
}

#[actix_web::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let first = register(&server, &org, "alice").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();

    let second = post(
        &server,
        "/api/v1/h5/auth/refresh",
        None,
        json!({"refresh_token": first}),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text);
    // A superset of the reference: the shipped app reads `user` after a refresh.
    assert_eq!(second.json["user"]["username"], "alice");
    let second_token = second.json["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second_token, first);

    // The first token was spent: presenting it again is theft, so the live one dies too.
    let reuse = post(
        &server,
        "/api/v1/h5/auth/refresh",
        None,
        json!({"refresh_token": first}),
    )
    .await;
    assert_eq!(reuse.status, 401);
    assert_eq!(reuse.json["detail"], "Invalid or expired refresh token.");
    let after = post(
        &server,
        "/api/v1/h5/auth/refresh",
        None,
        json!({"refresh_token": second_token}),
    )
    .await;
    assert_eq!(after.status, 401);

    // Another login is another family and still works.
    let relogin = login(&server, &org, "alice", "secret-pass").await.json["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post(
            &server,
            "/api/v1/h5/auth/refresh",
            None,
            json!({"refresh_token": relogin})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            &server,
            "/api/v1/h5/auth/refresh",
            None,
            json!({"refresh_token": "garbage"})
        )
        .await
        .status,
        401
    );
}

#[actix_web::test]
async fn me_needs_a_valid_h5_token_and_admin_and_h5_tokens_do_not_mix() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let body = register(&server, &org, "alice").await;
    let access = body["access_token"].as_str().unwrap();

    let me = server
        .call(Method::GET, "/api/v1/h5/auth/me", Some(access), None)
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["user"]["username"], "alice");
    assert_eq!(me.json["assignments"], json!([]));

    assert_eq!(
        server
            .call(Method::GET, "/api/v1/h5/auth/me", Some(ADMIN_TOKEN), None)
            .await
            .status,
        401
    );
    assert_eq!(
        server
            .call(Method::GET, "/api/v1/h5/auth/me", None, None)
            .await
            .status,
        401
    );
    assert_eq!(
        server
            .call(Method::GET, "/api/v1/users/me", Some(access), None)
            .await
            .status,
        401
    );
    assert_eq!(
        server
            .call(Method::GET, "/api/v1/h5/users", Some(access), None)
            .await
            .status,
        401
    );

    // Expired, and signed with another key.
    let user: Uuid = body["user"]["id"].as_str().unwrap().parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = |iat, exp| mission_control::secrets::jwt::Claims {
        sub: user,
        org: org.parse().unwrap(),
        kind: "h5".into(),
        iat,
        exp,
    };
    let expired =
        mission_control::secrets::jwt::sign(DEV_H5_SECRET, &claims(now - 1000, now - 100));
    assert_eq!(
        server
            .call(Method::GET, "/api/v1/h5/auth/me", Some(&expired), None)
            .await
            .status,
        401
    );
    let foreign = mission_control::secrets::jwt::sign(
        "some-other-key-some-other-key-xx",
        &claims(now, now + 100),
    );
    assert_eq!(
        server
            .call(Method::GET, "/api/v1/h5/auth/me", Some(&foreign), None)
            .await
            .status,
        401
    );
    let valid = mission_control::secrets::jwt::sign(DEV_H5_SECRET, &claims(now, now + 100));
    assert_eq!(
        server
            .call(Method::GET, "/api/v1/h5/auth/me", Some(&valid), None)
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn profile_patch_updates_clears_and_ignores_unknown_keys() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let access = register(&server, &org, "alice").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = |body: Value| {
        let access = access.clone();
        let server = &server;
        async move {
            server
                .call(
                    Method::PATCH,
                    "/api/v1/h5/auth/me",
                    Some(&access),
                    Some(&body.to_string()),
                )
                .await
        }
    };
    let r = patch(
        json!({"display_name": "Alice", "avatar_url": "https://x/a.png", "email": "ignored@x"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["display_name"], "Alice");
    assert_eq!(r.json["email"], Value::Null);
    let r = patch(json!({"avatar_url": null})).await;
    assert_eq!(r.json["avatar_url"], Value::Null);
    assert_eq!(r.json["display_name"], "Alice");
    assert_eq!(
        patch(json!({"display_name": "x".repeat(129)})).await.status,
        422
    );
}

#[actix_web::test]
async fn admins_list_assign_and_unassign() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let alice = register(&server, &org, "alice").await;
    register(&server, &org, "bob").await;
    let alice_id = alice["user"]["id"].as_str().unwrap();
    let access = alice["access_token"].as_str().unwrap();
    let (board, agent) = board_with_agent(&server, &org).await;

    let page = server.admin_get("/api/v1/h5/users?limit=1").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        (
            page.json["total"].as_i64(),
            page.json["items"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    assert_eq!(page.json["items"][0]["username"], "bob", "newest first");
    let filtered = server.admin_get("/api/v1/h5/users?q=ALI").await;
    assert_eq!(filtered.json["total"], 1);
    assert_eq!(
        server
            .admin_get("/api/v1/h5/users?status=gone")
            .await
            .status,
        422
    );

    let assign = |body: Value| {
        post(
            &server,
            format!("/api/v1/h5/users/{alice_id}/assign"),
            Some(ADMIN_TOKEN),
            body,
        )
    };
    let created = assign(json!({"agent_id": agent, "board_id": board})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["role"], "user");
    assert!(created.json["assigned_by"].is_string());
    assert_eq!(
        assign(json!({"agent_id": agent, "board_id": board}))
            .await
            .status,
        409
    );

    let me = server
        .call(Method::GET, "/api/v1/h5/auth/me", Some(access), None)
        .await;
    assert_eq!(me.json["assignments"][0]["agent_id"], agent.to_string());
    let detail = server
        .admin_get(&format!("/api/v1/h5/users/{alice_id}"))
        .await;
    assert_eq!(detail.json["assignments"].as_array().unwrap().len(), 1);

    let path = format!("/api/v1/h5/users/{alice_id}/assign/{agent}");
    assert_eq!(
        server
            .call(Method::DELETE, &path, Some(ADMIN_TOKEN), None)
            .await
            .json,
        json!({"ok": true})
    );
    assert_eq!(
        server
            .call(Method::DELETE, &path, Some(ADMIN_TOKEN), None)
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn another_organizations_agents_and_users_are_not_found() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let alice_id = register(&server, &org, "alice").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (board, _) = board_with_agent(&server, &org).await;

    // A second organization with its own agent and H5 user.
    let other = Uuid::new_v4();
    server
        .db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO organizations (id, name) VALUES ('{other}', 'Other')"
        ))
        .await
        .unwrap();
    let (other_board, other_agent) = board_with_agent(&server, &other.to_string()).await;
    let carol = register(&server, &other.to_string(), "carol").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let assign = |agent: Uuid, board: Uuid| {
        post(
            &server,
            format!("/api/v1/h5/users/{alice_id}/assign"),
            Some(ADMIN_TOKEN),
            json!({"agent_id": agent, "board_id": board}),
        )
    };
    assert_eq!(assign(other_agent, other_board).await.status, 404);
    assert_eq!(assign(other_agent, board).await.status, 404);
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/h5/users/{carol}"))
            .await
            .status,
        404
    );
    assert_eq!(
        post(
            &server,
            &format!("/api/v1/h5/users/{carol}/suspend"),
            Some(ADMIN_TOKEN),
            json!({})
        )
        .await
        .status,
        404
    );
    let listed = server.admin_get("/api/v1/h5/users").await;
    assert_eq!(listed.json["total"], 1);
}

#[actix_web::test]
async fn a_suspended_user_cannot_log_in_refresh_or_call_and_can_be_reactivated() {
    let server = Server::start().await;
    let org = org_id(&server).await;
    let body = register(&server, &org, "alice").await;
    let (id, access, refresh) = (
        body["user"]["id"].as_str().unwrap(),
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );
    let suspended = post(
        &server,
        &format!("/api/v1/h5/users/{id}/suspend"),
        Some(ADMIN_TOKEN),
        json!({}),
    )
    .await;
    assert_eq!(suspended.status, 200, "{}", suspended.text);
    assert_eq!(suspended.json["status"], "suspended");

    assert_eq!(
        login(&server, &org, "alice", "secret-pass").await.json["detail"],
        "Invalid username or password."
    );
    assert_eq!(
        post(
            &server,
            "/api/v1/h5/auth/refresh",
            None,
            json!({"refresh_token": refresh})
        )
        .await
        .status,
        401
    );
    assert_eq!(
        server
            .call(Method::GET, "/api/v1/h5/auth/me", Some(access), None)
            .await
            .status,
        401
    );

    let back = post(
        &server,
        &format!("/api/v1/h5/users/{id}/reactivate"),
        Some(ADMIN_TOKEN),
        json!({}),
    )
    .await;
    assert_eq!(back.json["status"], "active");
    assert_eq!(
        login(&server, &org, "alice", "secret-pass").await.status,
        200
    );
    // Tokens revoked at suspension stay revoked.
    assert_eq!(
        post(
            &server,
            "/api/v1/h5/auth/refresh",
            None,
            json!({"refresh_token": refresh})
        )
        .await
        .status,
        401
    );
}

#[actix_web::test]
async fn failures_from_one_address_are_throttled_whatever_the_username() {
    let server = Server::builder()
        .env("H5_LOGIN_MAX_FAILURES_PER_IP", "2")
        .env("TRUST_FORWARDED_FOR", "true")
        .start()
        .await;
    let org = org_id(&server).await;
    register(&server, &org, "alice").await;
    // A per-test address, so no other test shares the counter.
    let address = format!("198.51.100.{}", rand_octet());
    let attempt = |username: &'static str, password: &'static str, from: String| {
        let body =
            json!({"organization_id": org, "username": username, "password": password}).to_string();
        let server = &server;
        async move {
            server
                .raw(
                    Method::POST,
                    "/api/v1/h5/auth/login",
                    None,
                    Some(&body),
                    &[("X-Forwarded-For", &from)],
                )
                .await
                .unwrap()
                .status
                .as_u16()
        }
    };
    assert_eq!(attempt("nobody", "x-x-x-x", address.clone()).await, 401);
    assert_eq!(attempt("someone", "x-x-x-x", address.clone()).await, 401);
    assert_eq!(attempt("alice", "secret-pass", address.clone()).await, 429);
    assert_eq!(
        attempt("alice", "secret-pass", "203.0.113.7".to_string()).await,
        200
    );
}

fn rand_octet() -> u8 {
    Uuid::new_v4().as_bytes()[0]
}
