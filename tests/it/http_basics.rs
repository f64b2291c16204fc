use awc::http::Method;
use serde_json::json;

use crate::harness::{Server, ADMIN_TOKEN};

#[actix_web::test]
async fn unknown_routes_answer_404_with_detail() {
    let server = Server::start().await;
    let reply = server.get("/api/v1/nothing-here").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json["detail"], "Not Found");
}

#[actix_web::test]
async fn malformed_json_answers_422_naming_the_problem() {
    let server = Server::start().await;
    let reply = server
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            Some(r#"{"name": "#),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.json["detail"][0]["type"], "json_invalid");
    assert_eq!(reply.json["detail"][0]["loc"][0], "body");

    let reply = server
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            Some(r#"{"name": 42}"#),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.json["detail"][0]["loc"], json!(["body", "name"]));

    let reply = server
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            Some(r#"{"nickname": "x"}"#),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(
        reply.json["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("nickname"),
        "{}",
        reply.text
    );
}

#[actix_web::test]
async fn a_body_that_is_not_json_answers_415() {
    let server = Server::start().await;
    let reply = server
        .raw(
            Method::PATCH,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            None,
            &[("Content-Type", "text/plain")],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 415, "{}", reply.text);
}

#[actix_web::test]
async fn bodies_over_the_limit_answer_413() {
    let server = Server::builder()
        .env("HTTP_BODY_LIMIT_BYTES", "2048")
        .start()
        .await;
    let big = format!(r#"{{"notes": "{}"}}"#, "x".repeat(4096));
    let reply = server
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            Some(&big),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.json["detail"].is_string());
}

#[actix_web::test]
async fn request_id_is_echoed_or_generated_and_in_error_bodies() {
    let server = Server::start().await;
    let given = server
        .raw(
            Method::GET,
            "/api/v1/users/me",
            None,
            None,
            &[("X-Request-Id", "trace-abc-123")],
        )
        .await
        .unwrap();
    assert_eq!(given.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(given.json["request_id"], "trace-abc-123");

    let made = server.get("/healthz").await;
    let id = made.header("x-request-id").expect("generated id");
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let unsafe_id = server
        .raw(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("X-Request-Id", "has spaces in it")],
        )
        .await
        .unwrap();
    assert_ne!(unsafe_id.header("x-request-id"), Some("has spaces in it"));
}

#[actix_web::test]
async fn cors_allows_listed_origins_only() {
    let server = Server::builder()
        .env("CORS_ORIGINS", "http://h5.example, http://admin.example/")
        .start()
        .await;
    let server = &server;
    let preflight = |origin: &'static str| async move {
        let headers = [
            ("Origin", origin),
            ("Access-Control-Request-Method", "PATCH"),
        ];
        server
            .raw(Method::OPTIONS, "/api/v1/users/me", None, None, &headers)
            .await
    };
    let allowed = preflight("http://admin.example").await.unwrap();
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://admin.example")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let refused = preflight("http://evil.example").await.unwrap();
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let simple = server
        .raw(
            Method::GET,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            None,
            &[("Origin", "http://h5.example")],
        )
        .await
        .unwrap();
    assert_eq!(simple.status, 200);
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("http://h5.example")
    );
}

#[actix_web::test]
async fn openapi_describes_the_served_routes_and_docs_render_it() {
    let server = Server::start().await;
    let spec = server.get("/openapi.json").await;
    assert_eq!(spec.status, 200);
    let paths = spec.json["paths"].as_object().expect("paths");
    let expected = [
        ("/health", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/v1/users/me", "get"),
        ("/api/v1/users/me", "patch"),
        ("/api/v1/organizations/me", "get"),
        ("/api/v1/organizations/me/list", "get"),
        ("/api/v1/organizations/me/member", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} not documented"
        );
    }
    // Every documented operation is served (not 404/405). Event streams never end, so
    // they are left to their own tests (streams.rs, suggestions.rs).
    for (path, ops) in paths.iter().filter(|(path, _)| !path.ends_with("/stream")) {
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == Method::PATCH).then_some("{}");
            let reply = server
                .call(method.clone(), path, Some(ADMIN_TOKEN), body)
                .await;
            assert!(
                ![404, 405].contains(&reply.status.as_u16()),
                "{method} {path} -> {}",
                reply.status
            );
        }
    }
    let docs = server.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.text.to_lowercase().contains("swagger"),
        "{}",
        docs.text
    );
}

#[actix_web::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let server = Server::builder().env("LOG_FORMAT", "json").start().await;
    let reply = server
        .raw(
            Method::GET,
            "/api/v1/users/me",
            None,
            None,
            &[("X-Request-Id", "json-log-check")],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "json-log-check")
        .unwrap_or_else(|| panic!("no request line in:\n{log}"));
    assert_eq!(request["status"], 401);
    assert_eq!(
        request["path"]
            .as_str()
            .or(request["span"]["path"].as_str()),
        Some("/api/v1/users/me")
    );
}
