use std::time::Duration;

use crate::harness::{eventually, free_port, RedisProcess, SelfSigned, Server};

#[actix_web::test]
async fn liveness_probes_answer_ok() {
    let server = Server::start().await;
    for path in ["/health", "/healthz"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.json, serde_json::json!({"ok": true}), "{path}");
    }
}

#[actix_web::test]
async fn ready_when_postgres_and_redis_answer() {
    let server = Server::start().await;
    let ready = eventually(Duration::from_secs(10), || async {
        server.get("/readyz").await.status == 200
    })
    .await;
    assert!(ready, "never ready:\n{}", server.log());
    assert_eq!(
        server.get("/readyz").await.json,
        serde_json::json!({"ok": true})
    );
}

#[actix_web::test]
async fn without_redis_url_the_server_runs_single_instance_and_is_ready() {
    let server = Server::builder().without_redis().start().await;
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(server.get("/readyz").await.status, 200);
    assert!(server.log().contains("in-process bus"), "{}", server.log());
}

#[actix_web::test]
async fn not_ready_naming_redis_when_its_port_is_dead() {
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let server = Server::builder().env("REDIS_URL", dead).start().await;
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json["detail"], "not ready: redis");
    assert_eq!(reply.json["checks"]["postgres"], "ok");
    // Liveness does not depend on Redis.
    assert_eq!(server.get("/healthz").await.status, 200);
}

#[actix_web::test]
async fn not_ready_naming_postgres_when_the_database_is_unreachable() {
    let dead = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    let server = Server::builder()
        .env("DB_AUTO_MIGRATE", "false")
        .env("READINESS_TIMEOUT_MS", "500")
        .database_url(&dead)
        .start()
        .await;
    // The bridge connects to Redis in the background after start; wait for it so that
    // PostgreSQL is the only failing dependency.
    let redis_up = eventually(Duration::from_secs(10), || async {
        server.get("/readyz").await.json["checks"]["redis"] == "ok"
    })
    .await;
    assert!(redis_up, "{}", server.log());
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(
        reply.json["detail"], "not ready: postgres",
        "{}",
        reply.text
    );
}

#[actix_web::test]
async fn readiness_recovers_by_itself_when_redis_comes_back() {
    let mut redis = RedisProcess::start();
    let server = Server::builder()
        .env("REDIS_URL", redis.url())
        .env("READINESS_TIMEOUT_MS", "500")
        .start()
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            server.get("/readyz").await.status == 200
        })
        .await
    );

    redis.stop();
    let down = eventually(Duration::from_secs(15), || async {
        server.get("/readyz").await.status == 503
    })
    .await;
    assert!(down, "still ready with Redis stopped:\n{}", server.log());
    assert_eq!(server.get("/healthz").await.status, 200);

    redis.restart();
    let up = eventually(Duration::from_secs(20), || async {
        server.get("/readyz").await.status == 200
    })
    .await;
    assert!(
        up,
        "did not recover after Redis came back:\n{}",
        server.log()
    );
}

#[actix_web::test]
async fn redis_over_tls_is_used_when_its_certificate_is_trusted() {
    let cert = SelfSigned::new();
    let redis = RedisProcess::start_tls(&cert);
    assert!(redis.url().starts_with("rediss://"));
    let trusting = Server::builder()
        .env("REDIS_URL", redis.url())
        .env("SSL_CERT_FILE", cert.cert_file())
        .env("READINESS_TIMEOUT_MS", "500")
        .start()
        .await;
    let ready = eventually(Duration::from_secs(10), || async {
        trusting.get("/readyz").await.status == 200
    })
    .await;
    assert!(ready, "not ready over TLS:\n{}", trusting.log());

    // The system's roots do not vouch for the self-signed certificate.
    let doubting = Server::builder()
        .env("REDIS_URL", redis.url())
        .env("READINESS_TIMEOUT_MS", "500")
        .start_on(&trusting)
        .await;
    let reply = doubting.get("/readyz").await;
    assert_eq!(reply.status, 503, "{}", reply.text);
}

#[actix_web::test]
async fn metrics_count_requests_and_read_the_pool_in_prometheus_text() {
    let server = Server::start().await;
    for _ in 0..3 {
        assert_eq!(server.get("/healthz").await.status, 200);
    }
    assert_eq!(server.get("/api/v1/boards").await.status, 401);
    let reply = server
        .raw(awc::http::Method::GET, "/metrics", None, None, &[])
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        reply.header("content-type")
    );
    let value = |name: &str| -> f64 {
        reply
            .text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{}", reply.text))
    };
    assert!(value("mc_http_requests_total{class=\"2xx\"}") >= 3.0);
    assert!(value("mc_http_requests_total{class=\"4xx\"}") >= 1.0);
    let count = value("mc_http_request_duration_seconds_count");
    assert_eq!(
        value("mc_http_request_duration_seconds_bucket{le=\"+Inf\"}"),
        count
    );
    assert!(count >= 4.0);
    assert_eq!(value("mc_db_pool_max_connections"), 16.0);
    assert!(value("mc_db_pool_connections") >= value("mc_db_pool_idle_connections"));
    assert_eq!(value("mc_websockets_open"), 0.0);
    // Every family declares its type, as scrapers expect.
    for family in [
        "mc_build_info",
        "mc_http_requests_total",
        "mc_websockets_open",
    ] {
        assert!(
            reply.text.contains(&format!("# TYPE {family} ")),
            "{family}"
        );
    }
}
