//! Against the real OpenClaw gateway that `scripts/test` starts (`scripts/openclaw`: in a
//! network namespace of its own, with a stub model on its loopback, shared by the tests of a
//! run): check a URL, create the gateway, provision an agent, chat from H5 through it,
//! across two instances, after the owner is killed, after the gateway restarts, with a
//! wrong token, and pairing from an address that is not loopback.
//!
//! Every test makes its own gateway row and agents (ids are fresh UUIDs), so they share
//! the one gateway without seeing each other. The restart test restarts it: it takes the
//! gateway's lock, and the other tests take it shared.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::connector::Connector;
use crate::dialled::{
    agent_on, answered, builder, chat_reply, create_gateway, gateway_call, status, wait_state,
};
use crate::fixtures::{h5_socket, h5_user, issue_token, org_id};
use crate::harness::eventually;
use mission_control::secrets::device::DeviceKey;

/// The shared gateway's coordinates (exported by `scripts/openclaw start`).
pub struct Gateway {
    pub url: String,
    pub lan_url: String,
    pub token: String,
    pub dir: String,
    pub cli: String,
    pub ctl: String,
}

pub fn gateway() -> Gateway {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                panic!("{name} is not set: run the tests with scripts/test (it starts the OpenClaw gateway)")
            })
    };
    Gateway {
        url: var("MC_OPENCLAW_URL"),
        lan_url: var("MC_OPENCLAW_LAN_URL"),
        token: var("MC_OPENCLAW_TOKEN"),
        dir: var("MC_OPENCLAW_DIR"),
        cli: var("MC_OPENCLAW_CLI"),
        ctl: var("MC_OPENCLAW_CTL"),
    }
}

/// A workspace root of the test's own on the gateway's disk.
fn root(g: &Gateway) -> String {
    format!("{}/workspaces/{}", g.dir, uuid::Uuid::new_v4().simple())
}

/// The lock that keeps the restart test from restarting the gateway under the others: a
/// file lock, since nextest runs each test in a process of its own. Held while the file is
/// open.
pub(crate) struct GatewayLock {
    _file: std::fs::File,
}

impl GatewayLock {
    pub(crate) fn take(exclusive: bool) -> GatewayLock {
        let g = gateway();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{}/restart.lock", g.dir))
            .expect("open the gateway's lock file");
        let how = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        use std::os::fd::AsRawFd;
        // SAFETY: flock(2) on a file descriptor we own; the lock goes with the file.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), how) }, 0);
        GatewayLock { _file: file }
    }
}

#[actix_web::test]
async fn a_real_gateway_is_checked_created_provisioned_and_chats_with_h5() {
    let _shared = GatewayLock::take(false);
    let g = gateway();
    let server = builder().start().await;

    // The console's form: a good URL and token connect, a wrong token is told as such, an
    // unknown URL is `connected: false` (never 404), a malformed one 422.
    let ok = status(&server, &g.url, &g.token).await;
    assert_eq!(ok["connected"], true, "{ok}");
    assert!(ok["sessions"].is_array(), "{ok}");
    let wrong = status(&server, &g.url, "not-the-token-000000000000").await;
    assert_eq!(wrong["connected"], false, "{wrong}");
    assert!(
        wrong["error"].as_str().unwrap().starts_with("auth_failed"),
        "{wrong}"
    );
    let nobody = status(&server, "ws://127.0.0.1:9", "x").await;
    assert_eq!(nobody["connected"], false);
    assert!(
        nobody["error"].as_str().unwrap().starts_with("unreachable"),
        "{nobody}"
    );
    let malformed = server
        .admin_get("/api/v1/gateways/status?gateway_url=not%20a%20url")
        .await;
    assert_eq!(malformed.status, 422, "{}", malformed.text);

    let gateway = create_gateway(&server, &g.url, &g.token, &root(&g)).await;
    let id = gateway["id"].as_str().unwrap();
    let connected = wait_state(&server, id, "connected", Duration::from_secs(60)).await;
    assert!(connected["gateway_version"].is_string(), "{connected}");
    assert_eq!(connected["status"], "online");

    let (board, agent) = agent_on(&server, &gateway).await;
    let request = answered(&server, id, agent["id"].as_str().unwrap(), "agents.create").await;
    assert_eq!(request["status"], "done", "{request}");
    let gateway_agent = format!("mc-{}", agent["id"].as_str().unwrap());
    let device = DeviceKey::from_seed(&[7u8; 32]).unwrap();
    let files = gateway_call(
        &g.url,
        &g.token,
        &device,
        "agents.files.list",
        json!({"agentId": gateway_agent}),
    )
    .await
    .unwrap();
    let soul = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "SOUL.md")
        .cloned();
    assert!(soul.is_some_and(|f| f["missing"] != true), "{files}");

    let user = h5_user(&server, &board, &agent, "alice").await;
    let mut ws = h5_socket(&server, &user).await;
    let cold = chat_reply(&mut ws, &agent, "local-1", "hello real gateway").await;
    let warm = chat_reply(&mut ws, &agent, "local-2", "second message").await;
    eprintln!("H5 round trip through the real gateway: first {cold:?}, then {warm:?}");
}

#[actix_web::test]
async fn one_instance_owns_the_gateway_and_another_takes_over_after_kill_9() {
    let _shared = GatewayLock::take(false);
    let g = gateway();
    let a = builder().env("INSTANCE_ID", "inst-a").start().await;
    let b = builder().env("INSTANCE_ID", "inst-b").start_on(&a).await;
    let gateway = create_gateway(&a, &g.url, &g.token, &root(&g)).await;
    let id = gateway["id"].as_str().unwrap().to_string();
    wait_state(&a, &id, "connected", Duration::from_secs(60)).await;
    let (board, agent) = agent_on(&a, &gateway).await;
    answered(&a, &id, agent["id"].as_str().unwrap(), "agents.create").await;

    let gid: uuid::Uuid = id.parse().unwrap();
    let db = a.db.client().await;
    let owner: String = db
        .query_one(
            "SELECT instance_id FROM gateway_leases WHERE gateway_id = $1",
            &[&gid],
        )
        .await
        .unwrap()
        .get(0);
    let (mut owner_server, other) = if owner == "inst-a" { (a, b) } else { (b, a) };

    // The user's socket is on the instance that does not hold the gateway.
    let user = h5_user(&other, &board, &agent, "bob").await;
    let mut ws = h5_socket(&other, &user).await;
    chat_reply(&mut ws, &agent, "local-1", "across instances").await;
    let replies: i64 = db
        .query_one(
            "SELECT count(*) FROM h5_chat_messages WHERE role = 'assistant'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(replies, 1, "one reply stored, not one per instance");

    // kill -9 of the owner: the other instance takes the lease and the next message goes
    // through.
    let killed = Instant::now();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe { libc::kill(owner_server.pid() as i32, libc::SIGKILL) };
    owner_server.wait_exit(Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(30), || async {
            db.query_opt(
                "SELECT 1 FROM gateway_leases WHERE gateway_id = $1 AND instance_id <> $2",
                &[&gid, &owner],
            )
            .await
            .unwrap()
            .is_some()
        })
        .await,
        "no instance took the gateway over"
    );
    let connected_again = || async {
        db.query_one(
            "SELECT connection_state = 'connected' AND connection_changed_at > now() - interval '30 seconds' \
               FROM gateways WHERE id = $1",
            &[&gid],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    };
    assert!(eventually(Duration::from_secs(30), connected_again).await);
    eprintln!(
        "take-over after kill -9 of the owner: {:?}",
        killed.elapsed()
    );
    chat_reply(&mut ws, &agent, "local-2", "after the kill").await;
}

#[actix_web::test]
async fn a_wrong_token_is_a_visible_state_not_offline() {
    let _shared = GatewayLock::take(false);
    let g = gateway();
    let server = builder().start().await;
    let gateway = create_gateway(&server, &g.url, "wrong-token-0000000000000000", &root(&g)).await;
    let id = gateway["id"].as_str().unwrap();
    let refused = wait_state(&server, id, "auth_failed", Duration::from_secs(60)).await;
    assert!(
        refused["connection_message"]
            .as_str()
            .unwrap()
            .contains("AUTH"),
        "{refused}"
    );
    let activity = server.admin_get("/api/v1/activity").await.json;
    assert!(
        activity
            .to_string()
            .contains("gateway.connection.auth_failed"),
        "{activity}"
    );
}

#[actix_web::test]
async fn a_remote_device_is_paired_once_approved_without_a_restart() {
    let _shared = GatewayLock::take(false);
    let g = gateway();
    let server = builder().start().await;
    let gateway = create_gateway(&server, &g.lan_url, &g.token, &root(&g)).await;
    let id = gateway["id"].as_str().unwrap();
    let pending = wait_state(&server, id, "pairing_required", Duration::from_secs(60)).await;
    let request = pending["pairing_request_id"]
        .as_str()
        .expect("a request id")
        .to_string();
    assert_eq!(
        pending["pairing_command"],
        format!("openclaw devices approve {request}")
    );
    let approved = std::process::Command::new(&g.cli)
        .args(["devices", "approve", &request])
        .output()
        .expect("run the openclaw CLI");
    assert!(
        approved.status.success(),
        "{}{}",
        String::from_utf8_lossy(&approved.stdout),
        String::from_utf8_lossy(&approved.stderr)
    );
    wait_state(&server, id, "connected", Duration::from_secs(60)).await;
}

#[actix_web::test]
async fn a_restarted_gateway_is_reconnected_and_gets_what_was_queued() {
    let _exclusive = GatewayLock::take(true);
    let g = gateway();
    let server = builder()
        .env("GATEWAY_HEARTBEAT_INTERVAL_SECONDS", "2")
        .start()
        .await;
    let gateway = create_gateway(&server, &g.url, &g.token, &root(&g)).await;
    let id = gateway["id"].as_str().unwrap();
    wait_state(&server, id, "connected", Duration::from_secs(60)).await;
    // The same gateway also behind an mc-connector: degraded while it is down, not offline.
    let (org, token) = (org_id(&server).await, issue_token(&server).await);
    let dir = crate::harness::TempDir::new();
    let connector = Connector::start(&server, &org, &token, &dir.path.join("state.json"));
    let attached = connector.gateway_id().await;
    let connector_status = |want: &'static str| {
        let server = &server;
        let path = format!("/api/v1/gateways/{attached}/metrics");
        async move {
            eventually(Duration::from_secs(60), || async {
                server.admin_get(&path).await.json["status"] == want
            })
            .await
        }
    };
    assert!(connector_status("online").await, "{}", connector.log());

    // The gateway goes down; an agent is created meanwhile (its provisioning is queued).
    let stopping = std::process::Command::new(&g.ctl)
        .arg("stop-gateway")
        .output()
        .expect("stop the gateway");
    assert!(
        stopping.status.success(),
        "{}",
        String::from_utf8_lossy(&stopping.stderr)
    );
    wait_state(&server, id, "unreachable", Duration::from_secs(60)).await;
    assert!(connector_status("degraded").await, "{}", connector.log());
    let (board, agent) = agent_on(&server, &gateway).await;
    let started = Instant::now();
    let back = std::process::Command::new(&g.ctl)
        .arg("start-gateway")
        .output()
        .expect("start the gateway");
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    wait_state(&server, id, "connected", Duration::from_secs(120)).await;
    assert!(connector_status("online").await, "{}", connector.log());
    eprintln!(
        "reconnected {:?} after the gateway started again",
        started.elapsed()
    );
    let created = answered(&server, id, agent["id"].as_str().unwrap(), "agents.create").await;
    assert_eq!(created["status"], "done", "{created}");
    let user = h5_user(&server, &board, &agent, "erin").await;
    let mut ws = h5_socket(&server, &user).await;
    chat_reply(&mut ws, &agent, "local-1", "after the restart").await;
}
