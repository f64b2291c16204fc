//! Skills marketplace and packs (domain.md §A17): CRUD, installs as requests to the
//! gateway's main agent, pack syncs from (local stand-ins of) GitHub repositories, the
//! seeded default packs, and the refusals.

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{
    create_gateway, delete, link, registered, send, set_admin_role, switch_to_new_org, GitMirror,
};
use crate::harness::{Server, WsClient};

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
    let rows = count_rows(&server, "gateway_installed_skills").await;
    assert_eq!(rows, 0);
}

#[actix_web::test]
async fn packs_are_seeded_normalized_updated_and_counted() {
    let server = Server::start().await;
    // The local admin's first call makes its personal organization with the default packs.
    let packs = server.admin_get("/api/v1/skills/packs").await;
    assert_eq!(packs.status, 200, "{}", packs.text);
    // The reference's seeds: names, descriptions and order.
    let seeded: Vec<(&str, &str, &str)> = packs
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap_or_default();
            (text("source_url"), text("name"), text("description"))
        })
        .collect();
    assert_eq!(
        seeded,
        [
            (
                "https://github.com/sickn33/antigravity-awesome-skills",
                "antigravity-awesome-skills",
                "The Ultimate Collection of 800+ Agentic Skills for Claude Code/Antigravity/Cursor. \
                 Battle-tested, high-performance skills for AI agents including official skills \
                 from Anthropic and Vercel."
            ),
            (
                "https://github.com/BrianRWagner/ai-marketing-skills",
                "ai-marketing-skills",
                "Marketing frameworks that AI actually executes. Use for Claude Code, OpenClaw, etc."
            ),
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
    let skills = count_rows(&server, "marketplace_skills").await;
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

async fn sync(server: &Server, pack: &str) -> crate::harness::Reply {
    send(
        server,
        Method::POST,
        &format!("/api/v1/skills/packs/{pack}/sync"),
        json!(null),
    )
    .await
}

async fn count_rows(server: &Server, table: &str) -> i64 {
    let db = server.db.client().await;
    let row = db
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap();
    row.get(0)
}

/// Registers a pack; returns its id.
async fn add_pack(server: &Server, url: &str) -> String {
    let reply = send(
        server,
        Method::POST,
        "/api/v1/skills/packs",
        json!({"source_url": url}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["id"].as_str().unwrap().to_string()
}

async fn pack_skills(server: &Server, gateway: &str, pack: &str) -> Vec<Value> {
    let list = server
        .admin_get(&format!(
            "/api/v1/skills/marketplace?gateway_id={gateway}&pack_id={pack}"
        ))
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let mut skills = list.json.as_array().unwrap().clone();
    skills.sort_by_key(|s| s["source_url"].as_str().unwrap().to_string());
    skills
}

#[actix_web::test]
async fn a_pack_sync_clones_its_branch_and_upserts_what_it_finds() {
    let mirror = GitMirror::new();
    mirror.commit(
        "acme/skills",
        "main",
        &[
            ("README.md", "# not a skill"),
            (
                "skills/web-search/SKILL.md",
                "---\nname: Web Search\ndescription: Finds pages\n---\n# Ignored",
            ),
            (
                "skills/pdf_tools/SKILL.md",
                "# PDF tools\n\nReads and writes PDFs.",
            ),
            (".github/skills/hidden/SKILL.md", "# Hidden"),
        ],
    );
    let server = mirror.serve(Server::builder()).start().await;
    let gateway = create_gateway(&server, "gw").await;
    let gw = gateway["id"].as_str().unwrap();
    let pack = add_pack(&server, "https://github.com/acme/skills").await;
    let id = pack.as_str();

    let first = sync(&server, id).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(
        first.json,
        json!({"ok": true, "pack_id": id, "synced": 2, "created": 2, "updated": 0, "warnings": []})
    );
    let skills = pack_skills(&server, gw, id).await;
    let seen: Vec<_> = skills
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["description"].as_str().unwrap(),
                s["source_url"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "PDF tools",
                "Reads and writes PDFs.",
                "https://github.com/acme/skills/tree/main/skills/pdf_tools"
            ),
            (
                "Web Search",
                "Finds pages",
                "https://github.com/acme/skills/tree/main/skills/web-search"
            ),
        ]
    );
    assert_eq!(
        skills[1]["metadata"],
        json!({"discovery_mode": "skills_md", "pack_branch": "main", "skill_dir": "skills/web-search"})
    );
    let got = server
        .admin_get(&format!("/api/v1/skills/packs/{id}"))
        .await;
    assert_eq!(got.json["skill_count"], 2);

    // Nothing changed: nothing is written again.
    let again = sync(&server, id).await;
    assert_eq!(
        (
            again.json["created"].as_i64(),
            again.json["updated"].as_i64()
        ),
        (Some(0), Some(0))
    );

    // An index takes over from the SKILL.md files; one skill changes and one is new.
    mirror.commit(
        "acme/skills",
        "main",
        &[(
            "skills_index.json",
            r#"{"skills": [
                {"path": "skills/web-search/SKILL.md", "name": "Web Search", "description": "Searches the web", "category": "research", "risk": "low"},
                {"source_url": "skills/deploy", "name": "Deploy"},
                {"name": "nowhere"},
                "not an object"
            ]}"#,
        )],
    );
    let indexed = sync(&server, id).await;
    assert_eq!(indexed.status, 200, "{}", indexed.text);
    assert_eq!(
        (
            indexed.json["synced"].as_i64(),
            indexed.json["created"].as_i64(),
            indexed.json["updated"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let skills = pack_skills(&server, gw, id).await;
    assert_eq!(skills.len(), 3, "skills no longer listed stay");
    let search = skills.iter().find(|s| s["name"] == "Web Search").unwrap();
    assert_eq!(
        (
            search["description"].as_str(),
            search["category"].as_str(),
            search["risk"].as_str(),
            search["source"].as_str()
        ),
        (
            Some("Searches the web"),
            Some("research"),
            Some("low"),
            Some("skills/web-search")
        )
    );

    // The pack's own branch is cloned; a missing branch falls back to the default one.
    mirror.commit(
        "acme/skills",
        "dev",
        &[("skills/dev-only/SKILL.md", "# Dev only")],
    );
    mirror.commit("acme/skills", "main", &[]);
    let patched = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/skills/packs/{id}"),
        json!({"source_url": "https://github.com/acme/skills", "branch": "dev"}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let on_dev = sync(&server, id).await;
    assert_eq!(on_dev.json["warnings"], json!([]));
    assert!(pack_skills(&server, gw, id)
        .await
        .iter()
        .any(|s| s["source_url"] == "https://github.com/acme/skills/tree/dev/skills/deploy"));
    send(
        &server,
        Method::PATCH,
        &format!("/api/v1/skills/packs/{id}"),
        json!({"source_url": "https://github.com/acme/skills", "branch": "gone"}),
    )
    .await;
    let fallback = sync(&server, id).await;
    assert_eq!(fallback.status, 200, "{}", fallback.text);
    let warnings = fallback.json["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].as_str().unwrap().contains("gone"));
}

#[actix_web::test]
async fn a_pack_sync_reads_nothing_outside_its_clone_and_reports_clone_failures() {
    let mirror = GitMirror::new();
    mirror.commit(
        "acme/tricky",
        "main",
        &[("skills/leak/.keep", ""), ("skills_index.json", "{broken")],
    );
    std::os::unix::fs::symlink(
        "/etc/passwd",
        mirror.path("acme/tricky").join("skills/leak/SKILL.md"),
    )
    .unwrap();
    mirror.commit("acme/tricky", "main", &[]);
    let server = mirror.serve(Server::builder()).start().await;
    let gateway = create_gateway(&server, "gw").await;
    let pack = add_pack(&server, "https://github.com/acme/tricky").await;
    let id = pack.as_str();

    let reply = sync(&server, id).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let warnings = reply.json["warnings"].as_array().unwrap();
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("Failed to parse skills_index.json"),
        "{warnings:?}"
    );
    let skills = pack_skills(&server, gateway["id"].as_str().unwrap(), id).await;
    assert_eq!(skills.len(), 1);
    // The symlink was checked out as a file holding its target's name, never followed.
    assert_eq!(skills[0]["description"], "/etc/passwd");

    let missing = add_pack(&server, "https://github.com/acme/missing").await;
    let reply = sync(&server, &missing).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("unable to clone pack repository"),
        "{}",
        reply.text
    );
    let count = count_rows(&server, "marketplace_skills").await;
    assert_eq!(count, 1);
}

#[actix_web::test]
async fn installs_are_sent_to_the_gateways_main_agent() {
    let server = Server::start().await;
    let (gateway_id, relay_token) = registered(&server, "office").await;
    let skill = send(
        &server,
        Method::POST,
        "/api/v1/skills/marketplace",
        json!({"source_url": "https://github.com/o/r/tree/main/skills/grep", "name": "Grep"}),
    )
    .await
    .json;
    let sid = skill["id"].as_str().unwrap();
    // Asked while the gateway is away: recorded, and sent once it links.
    let install = send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/marketplace/{sid}/install?gateway_id={gateway_id}"),
        json!(null),
    )
    .await;
    assert_eq!(install.status, 200, "{}", install.text);
    assert_eq!(install.json["installed"], true);

    let mut ws: WsClient = link(&server, &gateway_id, &relay_token).await;
    let frame = crate::gateway_requests::until_method(&mut ws, "sessions.send").await;
    let params = &frame["payload"]["params"];
    assert_eq!(
        params["session_key"],
        format!("agent:mc-gateway-{gateway_id}:main")
    );
    assert_eq!(params["kind"], "skill_install");
    assert_eq!(params["deliver"], true);
    let message = params["message"].as_str().unwrap();
    assert!(
        message.starts_with("MISSION CONTROL SKILL INSTALL REQUEST\nSkill name: Grep\n"),
        "{message}"
    );
    assert!(
        message.contains("Skill source URL: https://github.com/o/r/tree/main/skills/grep"),
        "{message}"
    );
    assert!(message.contains("Install destination: "), "{message}");
    crate::gateway_requests::answer(&mut ws, &frame, json!({"ok": true, "result": {}})).await;

    // Linked: the uninstall goes out at once.
    let uninstall = send(
        &server,
        Method::POST,
        &format!("/api/v1/skills/marketplace/{sid}/uninstall?gateway_id={gateway_id}"),
        json!(null),
    )
    .await;
    assert_eq!(uninstall.json["installed"], false);
    let frame = crate::gateway_requests::until_method(&mut ws, "sessions.send").await;
    assert_eq!(frame["payload"]["params"]["kind"], "skill_uninstall");
    assert!(frame["payload"]["params"]["message"]
        .as_str()
        .unwrap()
        .starts_with("MISSION CONTROL SKILL UNINSTALL REQUEST"));
}
