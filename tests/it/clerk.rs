//! AUTH_MODE=clerk against a Clerk of our own on loopback (its JWKS and users API), with
//! RS256 session tokens we sign.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use awc::http::Method;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{json, Value};

use crate::harness::{Server, WsClient};

const SECRET: &str = "sk_test_mission_control_clerk_stand_in";
const ISSUER: &str = "https://clerk.example.test";
const CONSOLE: &str = "https://console.example.test";

/// An RSA key of ours (made by `openssl`, as a Clerk instance has one) and its id.
struct Key {
    kid: String,
    pair: RsaKeyPair,
}

impl Key {
    fn new(kid: &str) -> Key {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
            ])
            .output()
            .expect("openssl makes an RSA key");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Key {
            kid: kid.to_string(),
            pair: RsaKeyPair::from_der(&out.stdout).expect("a PKCS#1 RSA key (DER)"),
        }
    }

    fn jwk(&self) -> Value {
        let public: RsaPublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig",
               "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)})
    }

    /// A token with these claims, signed by this key under `kid`.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        let signed = format!("{}.{}", b64(&header), b64(claims));
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims(sub: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "iss": ISSUER, "azp": CONSOLE, "iat": now, "nbf": now - 5, "exp": now + 60, "sid": "sess_1"})
}

/// The stand-in Clerk: the keys it publishes (swappable) and how often it was asked.
#[derive(Default)]
struct Clerk {
    keys: Mutex<Vec<Value>>,
    jwks_calls: AtomicUsize,
    user_calls: AtomicUsize,
}

async fn jwks(req: HttpRequest, clerk: web::Data<Clerk>) -> HttpResponse {
    if req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {SECRET}"))
    {
        return HttpResponse::Unauthorized().finish();
    }
    clerk.jwks_calls.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({"keys": *clerk.keys.lock().unwrap()}))
}

async fn user(path: web::Path<String>, clerk: web::Data<Clerk>) -> HttpResponse {
    clerk.user_calls.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({
        "id": path.into_inner(), "first_name": "Ada", "last_name": "Lovelace",
        "primary_email_address_id": "idn_2",
        "email_addresses": [{"id": "idn_1", "email_address": "old@example.test"},
                            {"id": "idn_2", "email_address": "Ada@Example.test"}],
    }))
}

/// The stand-in on a loopback port, and a server in clerk mode pointed at it.
async fn clerk_and_server(keys: Vec<Value>) -> (Arc<Clerk>, Server) {
    let clerk = Arc::new(Clerk::default());
    *clerk.keys.lock().unwrap() = keys;
    let data = web::Data::from(clerk.clone());
    let stand_in = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/jwks", web::get().to(jwks))
            .route("/v1/users/{id}", web::get().to(user))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let address = stand_in.addrs()[0];
    actix_web::rt::spawn(stand_in.run());
    let server = Server::builder()
        .env("AUTH_MODE", "clerk")
        .env("CLERK_SECRET_KEY", SECRET)
        .env("CLERK_API_URL", format!("http://{address}/"))
        .env("CLERK_ISSUER", ISSUER)
        .env("CLERK_AUTHORIZED_PARTIES", CONSOLE)
        .start()
        .await;
    (clerk, server)
}

async fn me(server: &Server, token: &str) -> crate::harness::Reply {
    server
        .call(Method::GET, "/api/v1/users/me", Some(token), None)
        .await
}

#[actix_web::test]
async fn clerk_tokens_are_verified_against_the_instances_keys() {
    let (first, other) = (Key::new("ins_key_1"), Key::new("ins_key_x"));
    let (clerk, server) = clerk_and_server(vec![first.jwk()]).await;

    // A valid token: the user is provisioned once, its email and name read from Clerk's
    // API because the token carries neither.
    let token = first.sign(&claims("user_ada"));
    let reply = me(&server, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["clerk_user_id"], "user_ada");
    assert_eq!(reply.json["email"], "ada@example.test");
    // The reference's order: full_name, name, first_name, username, then first + last.
    assert_eq!(reply.json["name"], "Ada");
    for _ in 0..5 {
        assert_eq!(me(&server, &token).await.status, 200);
    }
    assert_eq!(
        clerk.jwks_calls.load(Ordering::SeqCst),
        1,
        "keys fetched once, then cached"
    );
    assert_eq!(
        clerk.user_calls.load(Ordering::SeqCst),
        1,
        "the profile only at first sight"
    );

    // Refused, each with 401 and a detail.
    let now = chrono::Utc::now().timestamp();
    let mut expired = claims("user_ada");
    expired["exp"] = json!(now - 60);
    let mut other_issuer = claims("user_ada");
    other_issuer["iss"] = json!("https://clerk.evil.test");
    let mut other_party = claims("user_ada");
    other_party["azp"] = json!("https://evil.test");
    let mut future = claims("user_ada");
    future["iat"] = json!(now + 600);
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "ins_key_1"})),
        b64(&claims("user_ada"))
    );
    let hs256 = {
        use hmac::{KeyInit, Mac};
        let header = json!({"alg": "HS256", "kid": "ins_key_1"});
        let signed = format!("{}.{}", b64(&header), b64(&claims("user_ada")));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
            first.jwk()["n"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        mac.update(signed.as_bytes());
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    for (what, bad) in [
        ("expired", first.sign(&expired)),
        (
            "another key, our key id",
            other.sign_as("ins_key_1", &claims("user_ada")),
        ),
        ("another issuer", first.sign(&other_issuer)),
        ("another authorized party", first.sign(&other_party)),
        ("issued in the future", first.sign(&future)),
        ("alg none", unsigned),
        ("alg HS256 keyed with the public key", hs256),
        ("malformed", "not.a.jwt".to_string()),
        ("not even three parts", "garbage".to_string()),
    ] {
        let reply = me(&server, &bad).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert!(reply.json["detail"].is_string(), "{what}: {}", reply.text);
    }

    // Key rotation: an unknown key id makes the server read the keys again (at most once a
    // second), so the new key works and the unknown one stays refused.
    let second = Key::new("ins_key_2");
    *clerk.keys.lock().unwrap() = vec![first.jwk(), second.jwk()];
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    let rotated = me(&server, &second.sign(&claims("user_ada"))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let calls = clerk.jwks_calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(
            me(&server, &other.sign_as("ins_key_9", &claims("user_ada")))
                .await
                .status,
            401
        );
    }
    assert!(
        clerk.jwks_calls.load(Ordering::SeqCst) <= calls + 1,
        "made-up key ids do not each cost a call to Clerk"
    );
    // The local admin token means nothing in clerk mode.
    assert_eq!(me(&server, crate::harness::ADMIN_TOKEN).await.status, 401);
}

#[actix_web::test]
async fn a_first_sign_in_provisions_the_user_once_under_concurrency() {
    let key = Key::new("ins_key_1");
    let (_clerk, server) = clerk_and_server(vec![key.jwk()]).await;
    let mut with_email = claims("user_grace");
    with_email["email"] = json!("Grace@Example.test");
    with_email["name"] = json!("Grace Hopper");
    let token = key.sign(&with_email);
    let (a, b) = futures_util::future::join(me(&server, &token), me(&server, &token)).await;
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (200, 200),
        "{} {}",
        a.text,
        b.text
    );
    assert_eq!(a.json["id"], b.json["id"]);
    assert_eq!(a.json["email"], "grace@example.test");
    let db = server.db.client().await;
    let users: i64 = db
        .query_one(
            "SELECT count(*) FROM users WHERE clerk_user_id = 'user_grace'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let orgs: i64 = db
        .query_one(
            "SELECT count(*) FROM organization_members m JOIN users u ON u.id = m.user_id WHERE u.clerk_user_id = 'user_grace'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!((users, orgs), (1, 1));
}

#[actix_web::test]
async fn the_board_socket_and_streams_take_a_clerk_token() {
    let key = Key::new("ins_key_1");
    let (_clerk, server) = clerk_and_server(vec![key.jwk()]).await;
    let token = key.sign(&claims("user_linus"));
    let call = |method: Method, path: &str, body: Value| {
        let (server, token) = (&server, token.clone());
        let path = path.to_string();
        async move {
            server
                .call(method, &path, Some(&token), Some(&body.to_string()))
                .await
        }
    };
    let gateway = call(
        Method::POST,
        "/api/v1/gateways",
        json!({"name": "GW", "url": "ws://127.0.0.1:9", "workspace_root": "/srv"}),
    )
    .await;
    assert_eq!(gateway.status, 200, "{}", gateway.text);
    let board = call(
        Method::POST,
        "/api/v1/boards",
        json!({"name": "Ops", "slug": "ops", "description": "d", "gateway_id": gateway.json["id"]}),
    )
    .await;
    assert_eq!(board.status, 200, "{}", board.text);
    let board_id = board.json["id"].as_str().unwrap();
    let mut ws =
        WsClient::connect(&server, &format!("/ws/board/{board_id}/sync?token={token}")).await;
    let state = ws.next_of("board.state").await;
    assert_eq!(state["tasks"], json!([]), "{state}");
    let mut refused = WsClient::connect(
        &server,
        &format!("/ws/board/{board_id}/sync?token=not.a.token"),
    )
    .await;
    let closing = refused.expect_json().await;
    assert!(closing.to_string().contains("unauthorized"), "{closing}");
}
