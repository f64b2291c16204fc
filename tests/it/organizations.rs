//! Organizations, members, invites and per-board access (domain.md §A1), user deletion and
//! bootstrap (§A2). The admin token is always the one local user, so other members are
//! SQL fixtures, and "acting as an admin / a member" means setting the local user's role.

use awc::http::Method;
use mission_control::secrets::tokens::sha256_hex;
use serde_json::{json, Value};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::fixtures::{create_board, create_gateway, delete, send};
use crate::harness::{Reply, Server, ADMIN_TOKEN};

const LAST_OWNER: &str = "Organization must have at least one owner";

async fn get(server: &Server, path: &str) -> Value {
    let reply = server.admin_get(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.json
}

fn id_of(value: &Value) -> Uuid {
    value["id"].as_str().expect("id").parse().expect("uuid")
}

/// The local user and its active organization.
async fn me(server: &Server) -> (Uuid, Uuid) {
    let user = id_of(&get(server, "/api/v1/users/me").await);
    let org = id_of(&get(server, "/api/v1/organizations/me").await);
    (user, org)
}

/// A user with this email, a member of `org` with `role`: (user id, member id).
async fn add_member(db: &Client, org: Uuid, email: &str, role: &str) -> (Uuid, Uuid) {
    let (user, member) = (Uuid::new_v4(), Uuid::new_v4());
    db.execute(
        "INSERT INTO users (id, clerk_user_id, email, name) VALUES ($1, $2, $3, $3)",
        &[&user, &format!("clerk-{user}"), &email],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO organization_members (id, organization_id, user_id, role) VALUES ($1, $2, $3, $4)",
        &[&member, &org, &user, &role],
    )
    .await
    .unwrap();
    (user, member)
}

/// An organization the local user does not belong to, with an owner: (org, owner member).
async fn foreign_org(db: &Client, name: &str) -> (Uuid, Uuid) {
    let org = Uuid::new_v4();
    db.execute(
        "INSERT INTO organizations (id, name) VALUES ($1, $2)",
        &[&org, &name],
    )
    .await
    .unwrap();
    let (_, member) = add_member(db, org, &format!("boss@{org}.example"), "owner").await;
    (org, member)
}

async fn set_my_role(server: &Server, db: &Client, org: Uuid, role: &str) {
    db.execute(
        "UPDATE organization_members SET role = $2 \
         WHERE organization_id = $1 AND user_id = (SELECT id FROM users WHERE clerk_user_id = 'local-auth-user')",
        &[&org, &role],
    )
    .await
    .unwrap();
    server.caches_caught_up().await;
}

/// A pending invite written directly, with a known token: (invite id, token).
async fn insert_invite(
    db: &Client,
    org: Uuid,
    email: &str,
    role: &str,
    all_read: bool,
) -> (Uuid, String) {
    let (id, token) = (Uuid::new_v4(), format!("token-{}", Uuid::new_v4()));
    db.execute(
        "INSERT INTO organization_invites (id, organization_id, invited_email, token_hash, role, all_boards_read) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &org, &email, &sha256_hex(&token), &role, &all_read],
    )
    .await
    .unwrap();
    (id, token)
}

async fn count(db: &Client, sql: &str, id: Uuid) -> i64 {
    db.query_one(sql, &[&id]).await.unwrap().get(0)
}

fn detail(reply: &Reply, status: u16, text: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["detail"], text, "{}", reply.text);
}

fn loc(reply: &Reply, expected: Value) {
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.json["detail"][0]["loc"], expected, "{}", reply.text);
}

#[actix_web::test]
async fn every_route_needs_the_admin_token() {
    let server = Server::start().await;
    let id = Uuid::new_v4();
    for (method, path) in [
        (Method::POST, "/api/v1/organizations".to_string()),
        (Method::DELETE, "/api/v1/organizations/me".to_string()),
        (Method::PATCH, "/api/v1/organizations/me/active".to_string()),
        (Method::GET, "/api/v1/organizations/me/members".to_string()),
        (
            Method::GET,
            format!("/api/v1/organizations/me/members/{id}"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/organizations/me/members/{id}"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/organizations/me/members/{id}"),
        ),
        (
            Method::PUT,
            format!("/api/v1/organizations/me/members/{id}/access"),
        ),
        (Method::GET, "/api/v1/organizations/me/invites".to_string()),
        (Method::POST, "/api/v1/organizations/me/invites".to_string()),
        (
            Method::DELETE,
            format!("/api/v1/organizations/me/invites/{id}"),
        ),
        (
            Method::POST,
            "/api/v1/organizations/invites/accept".to_string(),
        ),
        (Method::DELETE, "/api/v1/users/me".to_string()),
        (Method::POST, "/api/v1/auth/bootstrap".to_string()),
    ] {
        let reply = server.call(method.clone(), &path, None, Some("{}")).await;
        assert_eq!(reply.status, 401, "{method} {path}");
        let reply = server
            .call(method.clone(), &path, Some("wrong-token"), Some("{}"))
            .await;
        assert_eq!(reply.status, 401, "{method} {path} with a wrong token");
    }
    // Nothing was provisioned by the refused calls.
    let db = server.db.client().await;
    assert_eq!(
        db.query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        0
    );
}

#[actix_web::test]
async fn bootstrap_answers_the_local_user() {
    let server = Server::start().await;
    let reply = server
        .call(
            Method::POST,
            "/api/v1/auth/bootstrap",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["clerk_user_id"], "local-auth-user");
    assert_eq!(reply.json["email"], "admin@home.local");
    assert_eq!(reply.json["is_super_admin"], false);
    assert_eq!(reply.json, get(&server, "/api/v1/users/me").await);
}

#[actix_web::test]
async fn create_switch_and_list_organizations() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (_, personal) = me(&server).await;

    let reply = send(
        &server,
        Method::POST,
        "/api/v1/organizations",
        json!({"name": "  Acme  "}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["name"], "Acme");
    let acme = id_of(&reply.json);
    // The new organization is active and the caller owns it with every board.
    assert_eq!(id_of(&get(&server, "/api/v1/organizations/me").await), acme);
    let membership = get(&server, "/api/v1/organizations/me/member").await;
    assert_eq!(membership["role"], "owner");
    assert_eq!(membership["all_boards_read"], true);
    assert_eq!(membership["all_boards_write"], true);
    let list = get(&server, "/api/v1/organizations/me/list").await;
    assert_eq!(
        list,
        json!([
            {"id": acme, "name": "Acme", "role": "owner", "is_active": true},
            {"id": personal, "name": "Personal", "role": "owner", "is_active": false},
        ])
    );

    // Names are unique among the caller's organizations, case-insensitively...
    for name in ["acme", " PERSONAL "] {
        let reply = send(
            &server,
            Method::POST,
            "/api/v1/organizations",
            json!({"name": name}),
        )
        .await;
        assert_eq!(reply.status, 409, "{name}: {}", reply.text);
    }
    // ...but another tenant's name is not the caller's business.
    foreign_org(&db, "Globex").await;
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/organizations",
        json!({"name": "Globex"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    loc(
        &send(
            &server,
            Method::POST,
            "/api/v1/organizations",
            json!({"name": "   "}),
        )
        .await,
        json!(["body", "name"]),
    );
    loc(
        &send(&server, Method::POST, "/api/v1/organizations", json!({})).await,
        json!(["body", "name"]),
    );
    loc(
        &send(
            &server,
            Method::POST,
            "/api/v1/organizations",
            json!({"name": 7}),
        )
        .await,
        json!(["body", "name"]),
    );

    // Switching needs a membership; a foreign or unknown organization is the same 403.
    let reply = send(
        &server,
        Method::PATCH,
        "/api/v1/organizations/me/active",
        json!({"organization_id": acme}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["name"], "Acme");
    assert_eq!(id_of(&get(&server, "/api/v1/organizations/me").await), acme);
    let (globex, _) = foreign_org(&db, "Initech").await;
    for org in [globex, Uuid::new_v4()] {
        let reply = send(
            &server,
            Method::PATCH,
            "/api/v1/organizations/me/active",
            json!({"organization_id": org}),
        )
        .await;
        detail(&reply, 403, "No org access");
    }
    assert_eq!(id_of(&get(&server, "/api/v1/organizations/me").await), acme);
    loc(
        &send(
            &server,
            Method::PATCH,
            "/api/v1/organizations/me/active",
            json!({"organization_id": "nope"}),
        )
        .await,
        json!(["body", "organization_id"]),
    );
}

#[actix_web::test]
async fn deleting_an_organization_takes_everything_in_it() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (_, personal) = me(&server).await;
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/organizations",
        json!({"name": "Doomed"}),
    )
    .await;
    let doomed = id_of(&reply.json);

    let gateway = create_gateway(&server, "GW").await;
    let board = create_board(&server, &gateway, "Board", json!({})).await;
    let board_id = id_of(&board);
    let (task, field) = (Uuid::new_v4(), Uuid::new_v4());
    db.batch_execute(&format!(
        "INSERT INTO tasks (id, organization_id, board_id, title) VALUES ('{task}', '{doomed}', '{board_id}', 't');
         INSERT INTO task_custom_field_definitions (id, organization_id, field_key, label) VALUES ('{field}', '{doomed}', 'k', 'K');
         INSERT INTO task_custom_field_values (id, task_id, task_custom_field_definition_id, value) VALUES (gen_random_uuid(), '{task}', '{field}', '1');
         INSERT INTO tags (id, organization_id, name, slug) VALUES (gen_random_uuid(), '{doomed}', 'T', 't');"
    ))
    .await
    .unwrap();
    let (other_user, member) = add_member(&db, doomed, "bob@example.com", "member").await;
    db.execute(
        "UPDATE users SET active_organization_id = $2 WHERE id = $1",
        &[&other_user, &doomed],
    )
    .await
    .unwrap();
    let invite = send(
        &server,
        Method::POST,
        "/api/v1/organizations/me/invites",
        json!({"invited_email": "carol@example.com", "board_access": [{"board_id": board_id}]}),
    )
    .await;
    assert_eq!(invite.status, 200, "{}", invite.text);
    let put = send(
        &server,
        Method::PUT,
        &format!("/api/v1/organizations/me/members/{member}/access"),
        json!({"board_access": [{"board_id": board_id}]}),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);

    // Admins and members may not; only owners.
    for role in ["admin", "member"] {
        set_my_role(&server, &db, doomed, role).await;
        let reply = delete(&server, "/api/v1/organizations/me").await;
        assert_eq!(reply.status, 403, "{role}: {}", reply.text);
    }
    set_my_role(&server, &db, doomed, "owner").await;
    let reply = delete(&server, "/api/v1/organizations/me").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json, json!({"ok": true}));

    for table in [
        "boards",
        "gateways",
        "agents",
        "tasks",
        "tags",
        "task_custom_field_definitions",
        "organization_members",
        "organization_invites",
    ] {
        let n = count(
            &db,
            &format!("SELECT count(*) FROM {table} WHERE organization_id = $1"),
            doomed,
        )
        .await;
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM organizations WHERE id = $1",
            doomed
        )
        .await,
        0
    );
    // The other member is kept as a user without an active organization.
    assert_eq!(
        db.query_one(
            "SELECT active_organization_id FROM users WHERE id = $1",
            &[&other_user]
        )
        .await
        .unwrap()
        .get::<_, Option<Uuid>>(0),
        None
    );
    // The caller falls back to their remaining organization.
    assert_eq!(
        id_of(&get(&server, "/api/v1/organizations/me").await),
        personal
    );
}

#[actix_web::test]
async fn members_are_listed_read_and_their_roles_changed_by_the_rules() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (my_user, org) = me(&server).await;
    let my_member = id_of(&get(&server, "/api/v1/organizations/me/member").await);
    let (_, bob) = add_member(&db, org, "bob@example.com", "member").await;
    let (_, carol) = add_member(&db, org, "carol@example.com", "admin").await;
    let (_, stranger) = foreign_org(&db, "Elsewhere").await;

    let page = get(&server, "/api/v1/organizations/me/members").await;
    let emails: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["admin@home.local", "bob@example.com", "carol@example.com"]
    );
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(3), json!(200), json!(0))
    );
    let second = get(&server, "/api/v1/organizations/me/members?limit=1&offset=1").await;
    assert_eq!(second["items"][0]["id"], json!(bob));
    assert_eq!(second["total"], 3);
    loc(
        &server
            .admin_get("/api/v1/organizations/me/members?limit=0")
            .await,
        json!(["query", "limit"]),
    );

    let read = get(&server, &format!("/api/v1/organizations/me/members/{bob}")).await;
    assert_eq!(read["role"], "member");
    assert_eq!(read["organization_id"], json!(org));
    assert_eq!(read["user"]["email"], "bob@example.com");
    assert_eq!(read["board_access"], json!([]));
    for id in [stranger, Uuid::new_v4()] {
        let path = format!("/api/v1/organizations/me/members/{id}");
        assert_eq!(server.admin_get(&path).await.status, 404);
        assert_eq!(
            send(&server, Method::PATCH, &path, json!({"role": "admin"}))
                .await
                .status,
            404
        );
        assert_eq!(delete(&server, &path).await.status, 404);
        assert_eq!(
            send(&server, Method::PUT, &format!("{path}/access"), json!({}))
                .await
                .status,
            404
        );
    }
    assert_eq!(
        server
            .admin_get("/api/v1/organizations/me/members/not-a-uuid")
            .await
            .status,
        422
    );

    // As owner: roles are normalized and limited to the three ranks.
    let path = format!("/api/v1/organizations/me/members/{bob}");
    let reply = send(&server, Method::PATCH, &path, json!({"role": " Admin "})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["role"], "admin");
    assert_eq!(reply.json["user"]["email"], "bob@example.com");
    let reply = send(&server, Method::PATCH, &path, json!({"role": null})).await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["role"].clone()),
        (200, json!("admin"))
    );
    loc(
        &send(&server, Method::PATCH, &path, json!({"role": "superuser"})).await,
        json!(["body", "role"]),
    );
    loc(
        &send(&server, Method::PATCH, &path, json!({"role": 3})).await,
        json!(["body", "role"]),
    );
    // The last owner keeps the role.
    let mine = format!("/api/v1/organizations/me/members/{my_member}");
    detail(
        &send(&server, Method::PATCH, &mine, json!({"role": "admin"})).await,
        422,
        LAST_OWNER,
    );
    let reply = send(&server, Method::PATCH, &path, json!({"role": "owner"})).await;
    assert_eq!(reply.json["role"], "owner");

    // As admin: owners are out of reach, and nothing above admin is granted.
    set_my_role(&server, &db, org, "admin").await;
    for (method, body) in [
        (Method::PATCH, json!({"role": "member"})),
        (Method::PUT, json!({"all_boards_read": true})),
    ] {
        let target = if method == Method::PUT {
            format!("{path}/access")
        } else {
            path.clone()
        };
        let reply = send(&server, method, &target, body).await;
        assert_eq!(reply.status, 403, "{}", reply.text);
    }
    assert_eq!(delete(&server, &path).await.status, 403);
    let carol_path = format!("/api/v1/organizations/me/members/{carol}");
    assert_eq!(
        send(
            &server,
            Method::PATCH,
            &carol_path,
            json!({"role": "owner"})
        )
        .await
        .status,
        403
    );
    let reply = send(
        &server,
        Method::PATCH,
        &carol_path,
        json!({"role": "member"}),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["role"].clone()),
        (200, json!("member"))
    );

    // As member: the list and one's own row, nothing else.
    set_my_role(&server, &db, org, "member").await;
    assert_eq!(
        get(&server, "/api/v1/organizations/me/members").await["total"],
        3
    );
    assert_eq!(get(&server, &mine).await["user_id"], json!(my_user));
    assert_eq!(server.admin_get(&carol_path).await.status, 403);
    assert_eq!(
        send(
            &server,
            Method::PATCH,
            &carol_path,
            json!({"role": "admin"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        send(
            &server,
            Method::PUT,
            &format!("{carol_path}/access"),
            json!({})
        )
        .await
        .status,
        403
    );
    assert_eq!(delete(&server, &carol_path).await.status, 403);
    assert_eq!(
        server
            .admin_get("/api/v1/organizations/me/invites")
            .await
            .status,
        403
    );
    let invite = send(
        &server,
        Method::POST,
        "/api/v1/organizations/me/invites",
        json!({"invited_email": "x@example.com"}),
    )
    .await;
    assert_eq!(invite.status, 403);
}

#[actix_web::test]
async fn removing_members() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (_, org) = me(&server).await;
    let my_member = id_of(&get(&server, "/api/v1/organizations/me/member").await);
    let (bob_user, bob) = add_member(&db, org, "bob@example.com", "member").await;
    let (_, dave) = add_member(&db, org, "dave@example.com", "owner").await;
    // Bob's active organization is this one; he has an older one too.
    let (elsewhere, _) = foreign_org(&db, "Bob's other").await;
    db.execute(
        "INSERT INTO organization_members (id, organization_id, user_id, created_at) VALUES ($1, $2, $3, now() - interval '1 day')",
        &[&Uuid::new_v4(), &elsewhere, &bob_user],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE users SET active_organization_id = $2 WHERE id = $1",
        &[&bob_user, &org],
    )
    .await
    .unwrap();

    let mine = format!("/api/v1/organizations/me/members/{my_member}");
    detail(
        &delete(&server, &mine).await,
        403,
        "You cannot remove yourself from the organization",
    );

    set_my_role(&server, &db, org, "admin").await;
    detail(
        &delete(&server, &format!("/api/v1/organizations/me/members/{dave}")).await,
        403,
        "Only owners can change owners",
    );
    let reply = delete(&server, &format!("/api/v1/organizations/me/members/{bob}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json, json!({"ok": true}));
    assert_eq!(
        delete(&server, &format!("/api/v1/organizations/me/members/{bob}"))
            .await
            .status,
        404
    );
    assert_eq!(
        db.query_one(
            "SELECT active_organization_id FROM users WHERE id = $1",
            &[&bob_user]
        )
        .await
        .unwrap()
        .get::<_, Option<Uuid>>(0),
        Some(elsewhere)
    );

    // An owner removes another owner while one remains.
    set_my_role(&server, &db, org, "owner").await;
    let reply = delete(&server, &format!("/api/v1/organizations/me/members/{dave}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        get(&server, "/api/v1/organizations/me/members").await["total"],
        1
    );
}

#[actix_web::test]
async fn member_access_is_replaced_with_the_organizations_boards_only() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (_, org) = me(&server).await;
    let gateway = create_gateway(&server, "GW").await;
    let (a, b) = (
        create_board(&server, &gateway, "Alpha", json!({})).await,
        create_board(&server, &gateway, "Beta", json!({})).await,
    );
    let (a, b) = (id_of(&a), id_of(&b));
    let (_, bob) = add_member(&db, org, "bob@example.com", "member").await;
    let (elsewhere, _) = foreign_org(&db, "Elsewhere").await;
    let foreign_board = Uuid::new_v4();
    db.execute(
        "INSERT INTO boards (id, organization_id, name) VALUES ($1, $2, 'theirs')",
        &[&foreign_board, &elsewhere],
    )
    .await
    .unwrap();

    let path = format!("/api/v1/organizations/me/members/{bob}/access");
    let reply = send(
        &server,
        Method::PUT,
        &path,
        json!({
            "board_access": [{"board_id": a, "can_read": false, "can_write": true}, {"board_id": b}]
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        (
            reply.json["all_boards_read"].clone(),
            reply.json["all_boards_write"].clone()
        ),
        (json!(false), json!(false))
    );
    // Rows written together come in board id order.
    let rows: Vec<(String, Value, Value)> = reply.json["board_access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["board_id"].as_str().unwrap().to_string(),
                r["can_read"].clone(),
                r["can_write"].clone(),
            )
        })
        .collect();
    let mut expected = [
        (a.to_string(), json!(true), json!(true)),
        (b.to_string(), json!(true), json!(false)),
    ];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(rows, expected);
    let read = get(&server, &format!("/api/v1/organizations/me/members/{bob}")).await;
    assert_eq!(read["board_access"], reply.json["board_access"]);
    let listed = get(&server, "/api/v1/organizations/me/members").await;
    let listed_bob = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == json!(bob))
        .unwrap()
        .clone();
    assert_eq!(listed_bob["board_access"], reply.json["board_access"]);

    // A foreign or unknown board is refused at its position and nothing changes.
    for board in [foreign_board, Uuid::new_v4()] {
        let reply = send(
            &server,
            Method::PUT,
            &path,
            json!({"board_access": [{"board_id": a}, {"board_id": board}]}),
        )
        .await;
        loc(&reply, json!(["body", "board_access", 1, "board_id"]));
    }
    assert_eq!(
        get(&server, &format!("/api/v1/organizations/me/members/{bob}")).await["board_access"],
        reply.json["board_access"]
    );
    loc(
        &send(&server, Method::PUT, &path, json!({"board_access": [{}]})).await,
        json!(["body", "board_access", 0, "board_id"]),
    );
    loc(
        &send(
            &server,
            Method::PUT,
            &path,
            // pydantic reads "yes" as true; "sometimes" is no boolean.
            json!({"all_boards_read": "sometimes"}),
        )
        .await,
        json!(["body", "all_boards_read"]),
    );

    // An all-boards flag keeps no per-board rows.
    let reply = send(
        &server,
        Method::PUT,
        &path,
        json!({"all_boards_read": true, "board_access": [{"board_id": a}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["all_boards_read"], true);
    assert_eq!(reply.json["board_access"], json!([]));

    // The rows are what board access is checked against: an owner narrowing their own
    // access to one board then sees only that board.
    let my_member = id_of(&get(&server, "/api/v1/organizations/me/member").await);
    let reply = send(
        &server,
        Method::PUT,
        &format!("/api/v1/organizations/me/members/{my_member}/access"),
        json!({"board_access": [{"board_id": b}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let boards = get(&server, "/api/v1/boards").await;
    assert_eq!(boards["total"], 1);
    assert_eq!(boards["items"][0]["id"], json!(b));
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/boards/{a}"))
            .await
            .status,
        403
    );
}

#[actix_web::test]
async fn invites_are_created_listed_and_revoked() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (my_user, org) = me(&server).await;
    let gateway = create_gateway(&server, "GW").await;
    let board = id_of(&create_board(&server, &gateway, "Alpha", json!({})).await);
    add_member(&db, org, "bob@example.com", "member").await;

    let reply = send(
        &server,
        Method::POST,
        "/api/v1/organizations/me/invites",
        json!({
            "invited_email": "  New@Example.com ", "role": "Admin",
            "board_access": [{"board_id": board, "can_write": true}]
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let invite = reply.json;
    assert_eq!(invite["invited_email"], "new@example.com");
    assert_eq!(invite["role"], "admin");
    assert_eq!(invite["organization_id"], json!(org));
    assert_eq!(invite["created_by_user_id"], json!(my_user));
    assert_eq!(invite["accepted_at"], Value::Null);
    let token = invite["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    // Only the hash is kept, and the board grant waits on the invite.
    let stored: String = db
        .query_one(
            "SELECT token_hash FROM organization_invites WHERE id = $1",
            &[&id_of(&invite)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, sha256_hex(&token));
    assert_eq!(count(&db, "SELECT count(*) FROM organization_invite_board_access WHERE organization_invite_id = $1", id_of(&invite)).await, 1);

    let second = send(
        &server,
        Method::POST,
        "/api/v1/organizations/me/invites",
        json!({"invited_email": "two@example.com"}),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.json["role"], "member");
    let page = get(&server, "/api/v1/organizations/me/invites").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["id"], second.json["id"]);
    assert_eq!(page["items"][1]["id"], invite["id"]);
    assert_eq!(page["items"][1]["token"], "", "tokens are shown once");

    // Bad input, members' emails and foreign boards.
    let post = |body: Value| {
        send(
            &server,
            Method::POST,
            "/api/v1/organizations/me/invites",
            body,
        )
    };
    assert_eq!(
        post(json!({"invited_email": "BOB@example.com"}))
            .await
            .status,
        409
    );
    assert_eq!(
        post(json!({"invited_email": "admin@home.local"}))
            .await
            .status,
        409
    );
    loc(
        &post(json!({"invited_email": "  "})).await,
        json!(["body", "invited_email"]),
    );
    loc(&post(json!({})).await, json!(["body", "invited_email"]));
    loc(
        &post(json!({"invited_email": "x@example.com", "all_boards_read": "sometimes"})).await,
        json!(["body", "all_boards_read"]),
    );
    loc(
        &post(json!({"invited_email": "x@example.com", "role": "boss"})).await,
        json!(["body", "role"]),
    );
    loc(
        &post(json!({"invited_email": "x@example.com", "board_access": [{"board_id": Uuid::new_v4()}]})).await,
        json!(["body", "board_access", 0, "board_id"]),
    );
    set_my_role(&server, &db, org, "admin").await;
    assert_eq!(
        post(json!({"invited_email": "x@example.com", "role": "owner"}))
            .await
            .status,
        403
    );
    set_my_role(&server, &db, org, "owner").await;
    assert_eq!(
        get(&server, "/api/v1/organizations/me/invites").await["total"],
        2
    );

    // Revoking answers the invite; another organization's invite is not found.
    let path = format!(
        "/api/v1/organizations/me/invites/{}",
        invite["id"].as_str().unwrap()
    );
    let reply = delete(&server, &path).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["id"], invite["id"]);
    assert_eq!(reply.json["invited_email"], "new@example.com");
    assert_eq!(delete(&server, &path).await.status, 404);
    let (elsewhere, _) = foreign_org(&db, "Elsewhere").await;
    let (theirs, _) = insert_invite(&db, elsewhere, "x@example.com", "member", false).await;
    assert_eq!(
        delete(
            &server,
            &format!("/api/v1/organizations/me/invites/{theirs}")
        )
        .await
        .status,
        404
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM organization_invites WHERE id = $1",
            theirs
        )
        .await,
        1
    );
    assert_eq!(
        get(&server, "/api/v1/organizations/me/invites").await["total"],
        1
    );
}

#[actix_web::test]
async fn accepting_an_invite_grants_its_role_and_board_access() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (my_user, home) = me(&server).await;
    // The caller creates an organization with a board and invites "newcomer@example.com";
    // then the local user leaves it (an SQL hand-over to another owner) and takes that
    // email, so the same user can accept the invite through the API.
    let team = id_of(
        &send(
            &server,
            Method::POST,
            "/api/v1/organizations",
            json!({"name": "Team"}),
        )
        .await
        .json,
    );
    let gateway = create_gateway(&server, "GW").await;
    let board = id_of(&create_board(&server, &gateway, "Alpha", json!({})).await);
    let invite = send(
        &server,
        Method::POST,
        "/api/v1/organizations/me/invites",
        json!({
            "invited_email": "newcomer@example.com", "role": "admin",
            "board_access": [{"board_id": board, "can_write": true}]
        }),
    )
    .await;
    assert_eq!(invite.status, 200, "{}", invite.text);
    let token = invite.json["token"].as_str().unwrap().to_string();
    add_member(&db, team, "boss@example.com", "owner").await;
    db.execute(
        "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2",
        &[&team, &my_user],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE users SET active_organization_id = $2 WHERE id = $1",
        &[&my_user, &home],
    )
    .await
    .unwrap();
    server.caches_caught_up().await;

    let accept = |token: String| {
        send(
            &server,
            Method::POST,
            "/api/v1/organizations/invites/accept",
            json!({"token": token}),
        )
    };
    // Another email's invite is refused; unknown tokens are not found.
    detail(
        &accept(token.clone()).await,
        403,
        "This invite was sent to another email address",
    );
    assert_eq!(accept("no-such-token".into()).await.status, 404);
    loc(
        &send(
            &server,
            Method::POST,
            "/api/v1/organizations/invites/accept",
            json!({}),
        )
        .await,
        json!(["body", "token"]),
    );

    db.execute(
        "UPDATE users SET email = 'Newcomer@Example.com' WHERE id = $1",
        &[&my_user],
    )
    .await
    .unwrap();
    server.caches_caught_up().await;
    let reply = accept(token.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["organization_id"], json!(team));
    assert_eq!(reply.json["user_id"], json!(my_user));
    assert_eq!(reply.json["role"], "admin");
    assert_eq!(reply.json["all_boards_read"], false);
    assert_eq!(reply.json["board_access"][0]["board_id"], json!(board));
    assert_eq!(reply.json["board_access"][0]["can_write"], true);
    assert_eq!(reply.json["board_access"][0]["can_read"], true);
    // Accepted invites are spent and no longer pending; the active org did not change.
    assert_eq!(accept(token).await.status, 404);
    assert_eq!(id_of(&get(&server, "/api/v1/organizations/me").await), home);
    let accepted = db
        .query_one("SELECT accepted_by_user_id, accepted_at IS NOT NULL FROM organization_invites WHERE id = $1", &[&id_of(&invite.json)])
        .await
        .unwrap();
    assert_eq!(
        (
            accepted.get::<_, Option<Uuid>>(0),
            accepted.get::<_, bool>(1)
        ),
        (Some(my_user), true)
    );

    // The granted access is the one boards are checked against.
    send(
        &server,
        Method::PATCH,
        "/api/v1/organizations/me/active",
        json!({"organization_id": team}),
    )
    .await;
    let boards = get(&server, "/api/v1/boards").await;
    assert_eq!(boards["total"], 1);
    assert_eq!(
        get(&server, "/api/v1/organizations/me/invites").await["total"],
        0
    );

    // A member accepting another invite keeps the higher role and gains its access.
    let (_, token) = insert_invite(&db, team, "newcomer@example.com", "member", true).await;
    let reply = accept(token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["role"], "admin");
    assert_eq!(reply.json["all_boards_read"], true);
    assert_eq!(reply.json["board_access"][0]["board_id"], json!(board));
}

#[actix_web::test]
async fn deleting_the_user_settles_their_organizations_first() {
    let server = Server::start().await;
    let db = server.db.client().await;
    let (my_user, personal) = me(&server).await;
    let (_, carol) = add_member(&db, personal, "carol@example.com", "member").await;
    // A shared organization where the user is a plain member.
    let (shared, _) = foreign_org(&db, "Shared").await;
    db.execute(
        "INSERT INTO organization_members (id, organization_id, user_id) VALUES ($1, $2, $3)",
        &[&Uuid::new_v4(), &shared, &my_user],
    )
    .await
    .unwrap();

    // The last owner of an organization with other members cannot leave it ownerless.
    detail(&delete(&server, "/api/v1/users/me").await, 422, LAST_OWNER);
    assert_eq!(
        count(&db, "SELECT count(*) FROM users WHERE id = $1", my_user).await,
        1
    );

    assert_eq!(
        delete(
            &server,
            &format!("/api/v1/organizations/me/members/{carol}")
        )
        .await
        .status,
        200
    );
    let reply = delete(&server, "/api/v1/users/me").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json, json!({"ok": true}));
    assert_eq!(
        count(&db, "SELECT count(*) FROM users WHERE id = $1", my_user).await,
        0
    );
    // The organization they were alone in is gone; the shared one stays without them.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM organizations WHERE id = $1",
            personal
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM organizations WHERE id = $1",
            shared
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM organization_members WHERE user_id = $1",
            my_user
        )
        .await,
        0
    );

    // The next call provisions a new local user, who joins the organization an invite
    // is pending for instead of a new "Personal" one.
    let (_, token) = insert_invite(&db, shared, "admin@home.local", "admin", true).await;
    let (new_user, active) = me(&server).await;
    assert_ne!(new_user, my_user);
    assert_eq!(active, shared);
    let membership = get(&server, "/api/v1/organizations/me/member").await;
    assert_eq!(membership["role"], "admin");
    assert_eq!(membership["all_boards_read"], true);
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/organizations/invites/accept",
        json!({"token": token}),
    )
    .await;
    assert_eq!(reply.status, 404, "the invite was spent at sign-in");
}
