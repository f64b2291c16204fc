//! Skills marketplace and packs (domain.md §A17): CRUD, recorded install intents, the
//! seeded default packs, and the refusals.

use awc::http::Method;
use serde_json::json;

use crate::fixtures::{create_gateway, delete, send, set_admin_role, switch_to_new_org};
use crate::harness::Server;

#[actix_web::test]
async fn skills_are_registered_installed_listed_and_deleted() {
    let server = Server::start().await;
    let gateway = create_gateway(&server, "gw").await;
    let gw = gateway["id"].as_str().unwrap();

    let url = "https://github.com/o/r/tree/main/skills/web-search_pro";
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": url}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let skill = reply.json;
    assert_eq!(skill["name"], "web search pro");
    assert_eq!(skill["metadata"], json!({}));
    let id = skill["id"].as_str().unwrap();

    // The same URL again updates the registered skill.
    let again = send(
        &server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": url, "name": "Search", "description": "Finds things"}),
    )
    .await;
    assert_eq!(again.json["id"], skill["id"]);
    assert_eq!(again.json["name"], "Search");
    let other = send(
        &server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": "https://example.com/x/deploy"}),
    )
    .await;
    assert_eq!(other.status, 200);

    let list = server
        .admin_get(&format!("/api/v1/skills/marketplace?gateway_id={gw}"))
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let names: Vec<_> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("deploy"), json!("Search")], "newest first");
    assert!(list
        .json
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["installed"] == false && s["installed_at"].is_null()));

    let install = send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/marketplace/{id}/install?gateway_id={gw}"),
        json!(null),
    )
    .await;
    assert_eq!(install.status, 200, "{}", install.text);
    assert_eq!(
        install.json,
        json!({"ok": true, "skill_id": id, "gateway_id": gw, "installed": true})
    );
    let found = server
        .admin_get(&format!(
            "/api/v1/skills/marketplace?gateway_id={gw}&search=FINDS"
        ))
        .await;
    assert_eq!(found.json.as_array().unwrap().len(), 1);
    assert_eq!(found.json[0]["installed"], true);
    assert!(found.json[0]["installed_at"].is_string());
    let limited = server
        .admin_get(&format!(
            "/api/v1/skills/marketplace?gateway_id={gw}&limit=1&offset=1"
        ))
        .await;
    assert_eq!(limited.json[0]["name"], "Search");
    let uncategorized = server
        .admin_get(&format!(
            "/api/v1/skills/marketplace?gateway_id={gw}&category=Uncategorized"
        ))
        .await;
    assert_eq!(uncategorized.json.as_array().unwrap().len(), 2);
    let none = server
        .admin_get(&format!(
            "/api/v1/skills/marketplace?gateway_id={gw}&risk=high"
        ))
        .await;
    assert_eq!(none.json, json!([]));

    let uninstall = send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/marketplace/{id}/uninstall?gateway_id={gw}"),
        json!(null),
    )
    .await;
    assert_eq!(uninstall.json["installed"], false);
    let list = server
        .admin_get(&format!(
            "/api/v1/skills/marketplace?gateway_id={gw}&search=search"
        ))
        .await;
    assert_eq!(list.json[0]["installed"], false);

    // Deleting a skill takes its install records with it.
    send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/marketplace/{id}/install?gateway_id={gw}"),
        json!(null),
    )
    .await;
    assert_eq!(
        delete(&server, &format!("/api/v1/skills/marketplace/{id}"))
            .await
            .json,
        json!({"ok": true})
    );
    assert_eq!(
        delete(&server, &format!("/api/v1/skills/marketplace/{id}"))
            .await
            .status,
        404
    );
    let rows: i64 = server
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM gateway_installed_skills", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[actix_web::test]
async fn packs_are_seeded_normalized_updated_and_counted() {
    let server = Server::start().await;
    // The local admin's first call makes its personal organization with the default packs.
    let packs = server.admin_get("/api/v1/skills/packs").await;
    assert_eq!(packs.status, 200, "{}", packs.text);
    let mut urls: Vec<_> = packs
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["source_url"].as_str().unwrap().to_string())
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        [
            "https://github.com/BrianRWagner/ai-marketing-skills",
            "https://github.com/sickn33/antigravity-awesome-skills",
        ]
    );

    let reply = send(&server, Method::POST, "/api/v1/skills/packs",
        json!({"source_url": "https://github.com/acme/skills.git/", "branch": "bad branch;", "metadata": {"k": 1}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let pack = reply.json;
    assert_eq!(pack["source_url"], "https://github.com/acme/skills");
    assert_eq!(pack["name"], "skills");
    assert_eq!(pack["branch"], "main");
    assert_eq!(pack["metadata"], json!({"k": 1}));
    assert_eq!(pack["skill_count"], 0);
    let id = pack["id"].as_str().unwrap();

    send(
        &server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": "https://github.com/acme/skills/tree/main/a"}),
    )
    .await;
    send(
        &server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": "https://github.com/acme/skills-other/tree/main/b"}),
    )
    .await;
    let got = server
        .admin_get(&format!("/api/v1/skills/packs/{id}"))
        .await;
    assert_eq!(got.json["skill_count"], 1);
    let gateway = create_gateway(&server, "gw").await;
    let in_pack = server
        .admin_get(&format!(
            "/api/v1/skills/marketplace?gateway_id={}&pack_id={id}",
            gateway["id"].as_str().unwrap()
        ))
        .await;
    // The reference filters by URL prefix, so a sibling repository's skill matches too.
    assert_eq!(in_pack.json.as_array().unwrap().len(), 2);

    let patched = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/skills/packs/{id}"),
        json!({"source_url": "https://github.com/acme/skills", "name": "Acme", "branch": "dev"}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(
        (
            patched.json["name"].as_str(),
            patched.json["branch"].as_str()
        ),
        (Some("Acme"), Some("dev"))
    );
    let taken = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/skills/packs/{id}"),
        json!({"source_url": "https://github.com/BrianRWagner/ai-marketing-skills"}),
    )
    .await;
    assert_eq!(taken.status, 409, "{}", taken.text);

    let sync = send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/packs/{id}/sync"),
        json!(null),
    )
    .await;
    assert_eq!(sync.status, 200, "{}", sync.text);
    assert_eq!(
        (sync.json["pack_id"].as_str(), sync.json["synced"].as_i64()),
        (Some(id), Some(0))
    );
    assert_eq!(sync.json["warnings"].as_array().unwrap().len(), 1);

    assert_eq!(
        delete(&server, &format!("/api/v1/skills/packs/{id}"))
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/skills/packs/{id}"))
            .await
            .status,
        404
    );
    let skills: i64 = server
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM marketplace_skills", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(skills, 2, "a pack's skills stay when it goes");
}

#[actix_web::test]
async fn bad_input_other_organizations_and_missing_auth_are_refused() {
    let server = Server::start().await;
    let gateway = create_gateway(&server, "gw").await;
    let gw = gateway["id"].as_str().unwrap().to_string();
    let skill = send(
        &server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": "https://example.com/s"}),
    )
    .await
    .json;
    let pack = send(
        &server,
        Method::POST,
        "/api/v1/skills/packs",
        json!({"source_url": "https://github.com/o/r"}),
    )
    .await
    .json;
    let sid = skill["id"].as_str().unwrap().to_string();
    let pid = pack["id"].as_str().unwrap().to_string();

    // 422: wrong types, a missing or invalid URL, a missing or malformed gateway_id, bounds.
    for body in [
        json!({"source_url": 3}),
        json!({}),
        json!({"source_url": "not a url"}),
        json!({"source_url": "https://x.io/a", "name": " "}),
    ] {
        let r = send(
            &server,
            Method::POST,
            "/api/v1/skills/marketplace",
            body.clone(),
        )
        .await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
    }
    for query in [
        "",
        "?gateway_id=nope",
        &format!("?gateway_id={gw}&limit=0"),
        &format!("?gateway_id={gw}&limit=201"),
        &format!("?gateway_id={gw}&offset=-1"),
    ] {
        let r = server
            .admin_get(&format!("/api/v1/skills/marketplace{query}"))
            .await;
        assert_eq!(r.status, 422, "{query}: {}", r.text);
    }
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/marketplace/{sid}/install"),
        json!(null),
    )
    .await;
    assert_eq!(r.status, 422);
    let r = send(
        &server,
        Method::POST,
        "/api/v1/skills/packs",
        json!({"source_url": "https://gitlab.com/o/r"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = send(
        &server,
        Method::POST,
        "/api/v1/skills/packs",
        json!({"source_url": "https://github.com/o/r", "metadata": []}),
    )
    .await;
    assert_eq!(r.status, 422);

    // Non-admin members are refused.
    set_admin_role(&server, "member").await;
    assert_eq!(server.admin_get("/api/v1/skills/packs").await.status, 403);
    set_admin_role(&server, "owner").await;

    // 404 for another organization's gateway, skill and pack.
    switch_to_new_org(&server).await;
    let own_gateway = create_gateway(&server, "mine").await;
    let own = own_gateway["id"].as_str().unwrap();
    let r = server
        .admin_get(&format!("/api/v1/skills/marketplace?gateway_id={gw}"))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json["detail"].as_str()),
        (404, Some("Gateway not found"))
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/skills/marketplace?gateway_id={own}"))
            .await
            .json,
        json!([])
    );
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/marketplace/{sid}/install?gateway_id={own}"),
        json!(null),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        delete(&server, &format!("/api/v1/skills/marketplace/{sid}"))
            .await
            .status,
        404
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/skills/packs/{pid}"))
            .await
            .status,
        404
    );
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/skills/packs/{pid}"),
        json!({"source_url": "https://github.com/o/z"}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("/api/v1/skills/packs/{pid}/sync"),
            json!(null)
        )
        .await
        .status,
        404
    );
    assert_eq!(
        delete(&server, &format!("/api/v1/skills/packs/{pid}"))
            .await
            .status,
        404
    );
    assert_eq!(
        server.admin_get("/api/v1/skills/packs").await.json,
        json!([]),
        "a hand-made organization gets no seeded packs"
    );

    // 401 without a token.
    for (method, path) in [
        (Method::GET, "/api/v1/skills/packs".to_string()),
        (Method::POST, "/api/v1/skills/marketplace".to_string()),
        (
            Method::GET,
            format!("/api/v1/skills/marketplace?gateway_id={own}"),
        ),
    ] {
        let r = server.call(method, &path, None, Some("{}")).await;
        assert_eq!(r.status, 401, "{path}");
    }
}
