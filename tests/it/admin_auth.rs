use awc::http::Method;
use futures_util::future::join_all;
use serde_json::Value;

use crate::harness::{Server, ADMIN_TOKEN};

#[actix_web::test]
async fn missing_wrong_or_non_bearer_tokens_answer_401() {
    let server = Server::start().await;
    let wrong = format!("{ADMIN_TOKEN}x");
    let cases: [(&str, Option<String>); 4] = [
        ("none", None),
        ("wrong", Some(format!("Bearer {wrong}"))),
        ("basic", Some(format!("Basic {ADMIN_TOKEN}"))),
        ("empty", Some("Bearer ".to_string())),
    ];
    for (case, header) in cases {
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| ("Authorization", h))
            .into_iter()
            .collect();
        let reply = server
            .raw(Method::GET, "/api/v1/users/me", None, None, &headers)
            .await
            .unwrap();
        assert_eq!(reply.status, 401, "{case}");
        assert_eq!(reply.json["detail"], "Unauthorized", "{case}");
        assert!(reply.header("www-authenticate").is_none(), "{case}");
    }
    // Nothing was provisioned by failed calls.
    let users: i64 = server
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);
}

#[actix_web::test]
async fn the_right_token_provisions_the_local_user_and_personal_org() {
    let server = Server::start().await;
    let me = server.admin_get("/api/v1/users/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["clerk_user_id"], "local-auth-user");
    assert_eq!(me.json["email"], "admin@home.local");
    assert_eq!(me.json["name"], "Local User");
    assert_eq!(me.json["is_super_admin"], false);

    let org = server.admin_get("/api/v1/organizations/me").await;
    assert_eq!(org.status, 200);
    assert_eq!(org.json["name"], "Personal");
    for field in ["id", "created_at", "updated_at"] {
        assert!(org.json[field].is_string(), "{field}");
    }

    let list = server.admin_get("/api/v1/organizations/me/list").await;
    assert_eq!(
        list.json,
        serde_json::json!([{ "id": org.json["id"], "name": "Personal", "role": "owner", "is_active": true }])
    );

    let member = server.admin_get("/api/v1/organizations/me/member").await;
    assert_eq!(member.status, 200);
    assert_eq!(member.json["organization_id"], org.json["id"]);
    assert_eq!(member.json["user_id"], me.json["id"]);
    assert_eq!(member.json["role"], "owner");
    assert_eq!(member.json["all_boards_read"], true);
    assert_eq!(member.json["all_boards_write"], true);
    assert_eq!(member.json["user"]["email"], "admin@home.local");
    assert_eq!(member.json["board_access"], serde_json::json!([]));
}

#[actix_web::test]
async fn twenty_concurrent_first_calls_provision_exactly_once() {
    let server = Server::start().await;
    let replies =
        join_all((0..20).map(|_| server.admin_get("/api/v1/organizations/me/member"))).await;
    let mut orgs = Vec::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}\n{}", reply.text, server.log());
        orgs.push(reply.json["organization_id"].clone());
    }
    orgs.dedup();
    assert_eq!(orgs.len(), 1, "different organizations: {orgs:?}");

    let db = server.db.client().await;
    for (table, expected) in [
        ("users", 1i64),
        ("organizations", 1),
        ("organization_members", 1),
    ] {
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, expected, "{table}");
    }
}

#[actix_web::test]
async fn patch_me_updates_given_fields_and_null_clears() {
    let server = Server::start().await;
    let patch = |body: &'static str| {
        server.call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            Some(body),
        )
    };
    let reply = patch(r#"{"preferred_name": "Ada", "timezone": "Europe/Paris"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["preferred_name"], "Ada");
    assert_eq!(reply.json["timezone"], "Europe/Paris");
    assert_eq!(reply.json["name"], "Local User");

    let reply = patch(r#"{"timezone": null}"#).await;
    assert_eq!(reply.json["timezone"], Value::Null);
    assert_eq!(reply.json["preferred_name"], "Ada");
    assert_eq!(
        server.admin_get("/api/v1/users/me").await.json["preferred_name"],
        "Ada"
    );
}

#[actix_web::test]
async fn two_instances_racing_on_first_calls_provision_once() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let calls = (0..10).flat_map(|_| {
        [
            a.admin_get("/api/v1/organizations/me"),
            b.admin_get("/api/v1/organizations/me"),
        ]
    });
    let replies = join_all(calls).await;
    let mut ids: Vec<_> = replies.iter().map(|r| r.json["id"].clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let orgs: i64 =
        a.db.client()
            .await
            .query_one("SELECT count(*) FROM organizations", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(orgs, 1);
}
