//! The souls directory proxy (domain.md §A18) against a fake directory on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::harness::{free_port, SelfSigned, Server};

const SITEMAP: &str = "<?xml version=\"1.0\"?><urlset>\
    <url><loc>{base}/souls/ann/helper</loc></url>\
    <url><loc>{base}/about</loc></url>\
    <url><loc>{base}/souls/bob/Code-Reviewer</loc></url>\
    <url><loc>{base}/souls/carol/writer</loc></url></urlset>";

/// A directory serving a sitemap and one soul; returns its base URL.
pub fn fake_directory() -> String {
    directory("http", "127.0.0.1", None).0
}

/// The same directory over HTTPS at `https://localhost:…`, with `tls`'s certificate.
fn https_directory(tls: &SelfSigned) -> String {
    directory("https", "localhost", Some(tls.server_config())).0
}

/// The directory's base URL, and how many times its sitemap was fetched.
fn directory(
    scheme: &str,
    host: &str,
    tls: Option<rustls::ServerConfig>,
) -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!(
        "{scheme}://{host}:{}",
        listener.local_addr().unwrap().port()
    );
    let sitemap = SITEMAP.replace("{base}", &base);
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let server = HttpServer::new(move || {
        let (sitemap, counted) = (sitemap.clone(), counted.clone());
        App::new()
            .route(
                "/sitemap.xml",
                web::get().to(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let sitemap = sitemap.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/xml")
                            .body(sitemap)
                    }
                }),
            )
            .route(
                "/api/souls/ann/helper.md",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/markdown")
                        .body("# Helper\nKind.")
                }),
            )
    })
    .workers(1);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config),
        None => server.listen(listener),
    };
    actix_web::rt::spawn(server.unwrap().run());
    (base, fetches)
}

#[actix_web::test]
async fn souls_are_searched_and_read_through_the_directory() {
    let base = fake_directory();
    let server = Server::builder()
        .env("SOULS_DIRECTORY_URL", format!("{base}/"))
        .start()
        .await;

    let all = server.admin_get("/api/v1/souls-directory/search").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.json["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        all.json["items"][0],
        json!({
            "handle": "ann", "slug": "helper",
            "page_url": format!("{base}/souls/ann/helper"),
            "raw_md_url": format!("{base}/api/souls/ann/helper.md"),
        })
    );
    let found = server
        .admin_get("/api/v1/souls-directory/search?q=BOB/code&limit=5")
        .await;
    assert_eq!(found.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(found.json["items"][0]["slug"], "Code-Reviewer");
    let first = server
        .admin_get("/api/v1/souls-directory/search?limit=1")
        .await;
    assert_eq!(first.json["items"].as_array().unwrap().len(), 1);

    for path in [
        "/api/v1/souls-directory/ann/helper",
        "/api/v1/souls-directory/ann/helper.md",
    ] {
        let soul = server.admin_get(path).await;
        assert_eq!(soul.status, 200, "{path}: {}", soul.text);
        assert_eq!(
            soul.json,
            json!({"handle": "ann", "slug": "helper", "content": "# Helper\nKind."})
        );
    }
    // The directory's 404 is an upstream failure.
    let missing = server.admin_get("/api/v1/souls-directory/bob/nobody").await;
    assert_eq!(missing.status, 502, "{}", missing.text);
    assert!(missing.json["detail"].as_str().unwrap().contains("404"));

    for path in [
        "/api/v1/souls-directory/-ann/helper",
        "/api/v1/souls-directory/ann/he.lper",
        "/api/v1/souls-directory/search?limit=0",
        "/api/v1/souls-directory/search?limit=101",
        "/api/v1/souls-directory/search?limit=x",
    ] {
        assert_eq!(server.admin_get(path).await.status, 422, "{path}");
    }
    assert_eq!(
        server.get("/api/v1/souls-directory/search").await.status,
        401
    );
    assert_eq!(
        server
            .get("/api/v1/souls-directory/ann/helper")
            .await
            .status,
        401
    );
}

#[actix_web::test]
async fn an_unreachable_directory_answers_502() {
    // A port nothing listens on.
    let server = Server::builder()
        .env(
            "SOULS_DIRECTORY_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .start()
        .await;
    for path in [
        "/api/v1/souls-directory/search?q=a",
        "/api/v1/souls-directory/ann/helper.md",
    ] {
        let reply = server.admin_get(path).await;
        assert_eq!(reply.status, 502, "{path}: {}", reply.text);
        assert!(
            reply.json["detail"]
                .as_str()
                .unwrap()
                .contains("unreachable"),
            "{}",
            reply.text
        );
    }
}

#[actix_web::test]
async fn the_directory_is_read_over_https_when_its_certificate_is_trusted() {
    let tls = SelfSigned::new();
    let base = https_directory(&tls);
    let trusting = Server::builder()
        .env("SOULS_DIRECTORY_URL", &base)
        .env("SSL_CERT_FILE", tls.cert_file())
        .start()
        .await;
    let soul = trusting
        .admin_get("/api/v1/souls-directory/ann/helper")
        .await;
    assert_eq!(soul.status, 200, "{}", soul.text);
    assert_eq!(soul.json["content"], "# Helper\nKind.");
    let found = trusting
        .admin_get("/api/v1/souls-directory/search?q=carol")
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(
        found.json["items"][0]["page_url"],
        format!("{base}/souls/carol/writer")
    );

    // The system's roots do not vouch for a self-signed certificate.
    let doubting = Server::builder()
        .env("SOULS_DIRECTORY_URL", &base)
        .start()
        .await;
    let refused = doubting
        .admin_get("/api/v1/souls-directory/ann/helper")
        .await;
    assert_eq!(refused.status, 502, "{}", refused.text);
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{}",
        refused.text
    );
}

#[actix_web::test]
async fn the_sitemap_is_fetched_once_for_many_searches() {
    let (base, fetches) = directory("http", "127.0.0.1", None);
    let server = Server::builder()
        .env("SOULS_DIRECTORY_URL", &base)
        .start()
        .await;
    for q in ["ann", "bob", "carol"] {
        let found = server
            .admin_get(&format!("/api/v1/souls-directory/search?q={q}"))
            .await;
        assert_eq!(found.json["items"].as_array().unwrap().len(), 1, "{q}");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}
