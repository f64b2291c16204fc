//! mc-load: drives a running deployment (one or two instances) over loopback with real
//! sockets, bounded in count and time, and prints one JSON object per run (and a table).
//!
//! Scenarios:
//! - `h5`: sets up gateways (relay gateways simulated in this process, answering every chat
//!   at once; or, with `--openclaw`, OpenClaw gateways the servers dial, such as `gateway-sim
//!   openclaw`), an agent each and N H5 users through the API, opens the users' chat sockets
//!   spread over the given servers, sends chats at a target rate and measures the round trip
//!   H5 → server → gateway → server → H5 (p50/p90/p99/max), messages lost and replies
//!   duplicated. Its clients reconnect and resume like a real app (`h5_client`): kill an
//!   instance during a run and what is lost is lost by the servers.
//! - `idle`: opens N authenticated, idle H5 sockets, holds them, and reports the servers'
//!   memory per socket (give `--pid` of each server to read its RSS).
//!
//! Every scenario stops by itself after `--duration-secs` (plus set-up).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::ws;
use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

mod h5_client;

#[derive(Parser)]
#[command(
    name = "mc-load",
    about = "Load tool for Mission Control's realtime paths"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Chat round trips H5 → gateway → H5 at a target rate.
    H5(H5Args),
    /// Many idle H5 sockets: memory per socket.
    Idle(IdleArgs),
    /// Board sync fan-out: subscribers on board sockets, a writer changing tasks over REST.
    Board(BoardArgs),
    /// Gateway heartbeats over HTTP at a target rate: accepted per second and latency.
    Heartbeat(HeartbeatArgs),
    /// OpenClaw gateways the servers dial (`gateway-sim openclaw`): time until all are
    /// connected with their main agents provisioned, and the servers' memory per gateway.
    Dial(DialArgs),
}

#[derive(Args)]
struct DialArgs {
    #[command(flatten)]
    deployment: Deployment,
    /// Gateways to create (by URL and token, as the console does).
    #[arg(long, default_value_t = 1000)]
    gateways: usize,
    /// Where they are: `<this URL>/<gateway name>`.
    #[arg(long)]
    openclaw: String,
    /// Their token.
    #[arg(long)]
    openclaw_token: String,
    /// How long to wait for all of them.
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
}

#[derive(Args, Clone)]
struct Deployment {
    /// Server base URLs, comma separated; sockets are spread over them round-robin and the
    /// simulated gateway links to the last one.
    #[arg(long, default_value = "http://127.0.0.1:8000", value_delimiter = ',')]
    servers: Vec<String>,
    /// The admin bearer token (LOCAL_AUTH_TOKEN).
    #[arg(long)]
    token: String,
    /// PIDs of the servers on this machine, to report their memory.
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
}

#[derive(Args)]
struct H5Args {
    #[command(flatten)]
    deployment: Deployment,
    /// H5 users (one socket each).
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Chat messages per second, all users together.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Simulated gateways (one agent each); users are spread over their agents.
    #[arg(long, default_value_t = 4)]
    gateways: usize,
    /// How long to send.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Instead of relay gateways in this process: OpenClaw gateways the servers dial, at
    /// `<this URL>/<gateway name>` (`gateway-sim openclaw` serves one per path).
    #[arg(long)]
    openclaw: Option<String>,
    /// The OpenClaw gateways' token.
    #[arg(long, default_value = "")]
    openclaw_token: String,
    /// `--openclaw` is one gateway (a real one): its URL is used as it is, and `--gateways`
    /// must be 1.
    #[arg(long)]
    openclaw_one: bool,
    /// Where the OpenClaw gateways put the agents' workspaces.
    #[arg(long, default_value = "/tmp/mc-load-workspaces")]
    workspace_root: String,
    /// Instead of gateways made here: this gateway of the organization, already connected
    /// (one an `mc-connector` attached); `--gateways` must be 1.
    #[arg(long)]
    gateway_id: Option<String>,
    /// Chaos by hand: kill -9 this process (an instance) `--kill-after-secs` into the
    /// sending; its users reconnect to the other servers.
    #[arg(long)]
    kill_pid: Option<u32>,
    #[arg(long, default_value_t = 5)]
    kill_after_secs: u64,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    deployment: Deployment,
    /// Sockets to open (raise the open-file limit: `ulimit -n 65536`).
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// How many H5 users the sockets belong to (sockets are spread over them).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// How long to hold them open.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
}

#[derive(Args)]
struct BoardArgs {
    #[command(flatten)]
    deployment: Deployment,
    /// Board sockets, spread over the servers and boards round-robin.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Boards watched (one task each is changed).
    #[arg(long, default_value_t = 1)]
    boards: usize,
    /// Task changes per second, all boards together (REST PATCH on the first server).
    #[arg(long, default_value_t = 5)]
    rate: u64,
    /// How long to write.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
}

#[derive(Args)]
struct HeartbeatArgs {
    #[command(flatten)]
    deployment: Deployment,
    /// Gateways registered (heartbeats go round-robin over them and over the servers).
    #[arg(long, default_value_t = 1000)]
    gateways: usize,
    /// Heartbeats per second, all gateways together (0: as fast as `concurrency` allows).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Heartbeats in flight at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to send.
    #[arg(long, default_value_t = 15)]
    duration_secs: u64,
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut req = client().request(
        awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
        url,
    );
    if let Some(token) = token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut res = match body {
        Some(body) => req.send_json(&body).await,
        None => req.send().await,
    }
    .map_err(|e| format!("{method} {url}: {e}"))?;
    let value: Value = res.json().limit(16 << 20).await.unwrap_or(Value::Null);
    if res.status().is_success() {
        Ok(value)
    } else {
        Err(format!("{method} {url}: {} {value}", res.status()))
    }
}

/// How much the servers' memory grew, all together.
fn grown_kb(before: &[u64], after: &[u64]) -> u64 {
    after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum()
}

fn rss_kb(pids: &[u32]) -> Vec<u64> {
    pids.iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                })
                .unwrap_or(0)
        })
        .collect()
}

struct Gateway {
    id: String,
    relay_token: String,
    agent_id: String,
    board_id: String,
}

struct Setup {
    org: String,
    gateways: Vec<Gateway>,
    /// (user id, access token, agent id)
    users: Vec<(String, String, String)>,
}

/// `gateways` gateways, each with a board and an agent, and `users` H5 users assigned to
/// those agents round-robin, through the API.
async fn set_up(
    d: &Deployment,
    gateways: usize,
    users: usize,
    dialled: Option<Dialled<'_>>,
    existing: Option<&str>,
) -> Result<Setup, String> {
    let api = &d.servers[0];
    let admin = Some(d.token.as_str());
    let (org, registered) = match (dialled, existing) {
        (_, Some(id)) => (
            organization(d).await?,
            vec![(
                id.to_string(),
                String::new(),
                format!("attached-{}", &id[..8.min(id.len())]),
            )],
        ),
        (Some(dialled), None) => create_dialled_gateways(d, gateways.max(1), &dialled).await?,
        (None, None) => register_gateways(d, gateways.max(1)).await?,
    };
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut made = Vec::with_capacity(gateways);
    let mut boards = Vec::with_capacity(gateways);
    for (gateway_id, relay_token, name) in registered {
        let board = call(
            "POST",
            &format!("{api}/api/v1/boards"),
            admin,
            Some(json!({"name": name, "slug": name, "description": "mc-load", "gateway_id": gateway_id})),
        )
        .await?;
        let board_id = board["id"].as_str().unwrap_or_default().to_string();
        let agent = call(
            "POST",
            &format!("{api}/api/v1/agents"),
            admin,
            Some(json!({"name": format!("agent-{name}"), "board_id": board_id})),
        )
        .await?;
        made.push(Gateway {
            id: gateway_id,
            relay_token,
            agent_id: agent["id"].as_str().unwrap_or_default().to_string(),
            board_id: board_id.clone(),
        });
        boards.push(board_id);
    }
    let mut out = Vec::with_capacity(users);
    for i in 0..users {
        let g = i % made.len();
        let user = call(
            "POST",
            &format!("{api}/api/v1/h5/auth/register"),
            None,
            Some(json!({"organization_id": org, "username": format!("load-{run}-{i}"), "password": "load-password"})),
        )
        .await?;
        let id = user["user"]["id"].as_str().unwrap_or_default().to_string();
        call(
            "POST",
            &format!("{api}/api/v1/h5/users/{id}/assign"),
            admin,
            Some(json!({"agent_id": made[g].agent_id, "board_id": boards[g]})),
        )
        .await?;
        out.push((
            id,
            user["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            made[g].agent_id.clone(),
        ));
    }
    Ok(Setup {
        org,
        gateways: made,
        users: out,
    })
}

fn ws_url(server: &str, path: &str) -> String {
    format!("{}{path}", server.replacen("http", "ws", 1))
}

type Framed = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// A socket authenticated with `auth` (its first frame), past its `auth_ok`.
async fn open(url: &str, auth: Value) -> Result<Framed, String> {
    open_until(url, Some(auth), "auth_ok").await
}

/// A socket whose first text frame from the server is of type `first` (after sending
/// `hello`, if any).
async fn open_until(url: &str, hello: Option<Value>, first: &str) -> Result<Framed, String> {
    let (_, mut framed) = awc::Client::new()
        .ws(url)
        .max_frame_size(16 << 20)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(hello) = hello {
        framed
            .send(ws::Message::Text(hello.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    loop {
        match framed.next().await {
            Some(Ok(ws::Frame::Text(bytes))) => {
                let frame: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                return match frame["type"].as_str() == Some(first) {
                    true => Ok(framed),
                    false => Err(format!("{url}: {frame} instead of {first}")),
                };
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("{url}: closed before {first}: {other:?}")),
        }
    }
}

/// A simulated gateway: answers every `chat.send` at once with the same content.
async fn gateway(server: &str, gateway: &Gateway) -> Result<(), String> {
    let url = ws_url(server, &format!("/ws/gateway/{}/relay", gateway.id));
    let framed = open(
        &url,
        json!({"type": "auth", "payload": {"relay_token": gateway.relay_token, "capabilities": ["chat.ack"]}}),
    )
    .await?;
    let (mut sink, mut stream) = framed.split();
    actix_web::rt::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let ws::Frame::Text(bytes) = frame else {
                continue;
            };
            let frame: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if frame["type"] == "chat.send" {
                let ack = json!({"type": "chat.ack", "payload": {"message_ids": [frame["payload"]["message_id"]]}});
                let reply = json!({"type": "chat.reply", "id": frame["payload"]["message_id"],
                                   "payload": {"session_key": frame["payload"]["session_key"], "content": frame["payload"]["content"]}});
                // One write for both: the tool's sockets keep Nagle on, so a second small
                // write would wait for the server's delayed ACK (~40 ms); a real gateway's
                // socket has it off (Node's ws).
                let ack = sink.feed(ws::Message::Text(ack.to_string().into())).await;
                if ack.is_err()
                    || sink
                        .send(ws::Message::Text(reply.to_string().into()))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

async fn h5(args: H5Args) -> Result<Value, String> {
    let d = &args.deployment;
    if (args.openclaw_one || args.gateway_id.is_some()) && args.gateways != 1 {
        return Err("--openclaw-one and --gateway-id need --gateways 1".into());
    }
    let dialled = args.openclaw.as_deref().map(|base| Dialled {
        base,
        token: &args.openclaw_token,
        one: args.openclaw_one,
        workspace_root: &args.workspace_root,
    });
    let existing = args.gateway_id.as_deref();
    let setup = set_up(d, args.gateways, args.users, dialled, existing).await?;
    match dialled.is_some() || existing.is_some() {
        true => {
            for g in &setup.gateways {
                wait_provisioned(d, g).await?;
            }
        }
        false => {
            for g in &setup.gateways {
                gateway(d.servers.last().unwrap(), g).await?;
            }
        }
    }
    // Let the link's presence reach every instance.
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kb(&d.pid);

    let seen: Rc<RefCell<h5_client::Seen>> = Rc::default();
    let servers = Rc::new(d.servers.clone());
    let connect_started = Instant::now();
    let mut senders = Vec::new();
    let mut agents = Vec::with_capacity(setup.users.len());
    for (i, (_, token, agent)) in setup.users.iter().enumerate() {
        agents.push(agent.clone());
        let at = i % servers.len();
        let framed = open(
            &ws_url(&servers[at], "/ws/h5/chat"),
            json!({"type": "auth", "payload": {"token": token}}),
        )
        .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let client = h5_client::Client {
            servers: servers.clone(),
            at,
            token: token.clone(),
            seen: seen.clone(),
        };
        actix_web::rt::spawn(client.run(framed, rx));
        senders.push(tx);
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();

    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut ticker = actix_web::rt::time::interval(interval.max(Duration::from_micros(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let mut kill = args.kill_pid.map(|pid| {
        (
            pid,
            Instant::now() + Duration::from_secs(args.kill_after_secs),
        )
    });
    let mut sent = 0u64;
    while Instant::now() < deadline {
        ticker.tick().await;
        if let Some((pid, _)) = kill.take_if(|(_, at)| Instant::now() >= *at) {
            let killed = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            eprintln!(
                "mc-load: kill -9 {pid} after {}s: {killed:?}",
                args.kill_after_secs
            );
        }
        let id = format!("m-{sent}");
        seen.borrow_mut().waiting.insert(id.clone(), Instant::now());
        let user = (sent as usize) % senders.len();
        let frame =
            json!({"type": "chat", "id": id, "payload": {"agent_id": agents[user], "content": id}});
        let _ = senders[user].send((id, frame.to_string()));
        sent += 1;
    }
    // Drain: an overloaded server answers late, not never. Wait until every reply is in,
    // or none arrived for 5 s (at most 60 s), so "lost" means lost, not late (nor waiting
    // for a gateway taken over after an instance died).
    let sending_ended = Instant::now();
    let (mut last_count, mut last_progress) = (seen.borrow().rtts.len(), Instant::now());
    while !seen.borrow().waiting.is_empty()
        && last_progress.elapsed() < Duration::from_secs(5)
        && sending_ended.elapsed() < Duration::from_secs(60)
    {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        let count = seen.borrow().rtts.len();
        if count != last_count {
            (last_count, last_progress) = (count, Instant::now());
        }
    }
    let drain_secs = sending_ended.elapsed().as_secs_f64();
    let seen = seen.borrow();
    let mut l = seen.rtts.clone();
    l.sort_unstable();
    Ok(json!({
        "scenario": "h5", "servers": d.servers.len(), "gateways": setup.gateways.len(), "users": args.users, "target_rate": args.rate,
        "duration_seconds": args.duration_secs, "connect_seconds": connect_secs,
        "connects_per_second": args.users as f64 / connect_secs.max(1e-9),
        "sent": sent, "acknowledged": seen.acked, "refused": seen.refused, "received": l.len(),
        "lost": sent - l.len() as u64, "duplicate_frames": seen.duplicates, "answered_twice": seen.answered_twice,
        "reconnects": seen.reconnects,
        "drain_seconds": drain_secs,
        "achieved_rate": l.len() as f64 / (args.duration_secs as f64 + drain_secs),
        "rtt_p50_ms": percentile(&l, 0.5), "rtt_p90_ms": percentile(&l, 0.9), "rtt_p99_ms": percentile(&l, 0.99),
        "rtt_max_ms": l.last().map_or(0.0, |m| *m as f64 / 1000.0),
        "rss_kb_before": rss_before, "rss_kb_after": rss_kb(&d.pid), "organization_id": setup.org,
    }))
}

async fn idle(args: IdleArgs) -> Result<Value, String> {
    let d = &args.deployment;
    let setup = set_up(d, 1, args.users.max(1), None, None).await?;
    let before = rss_kb(&d.pid);
    let started = Instant::now();
    let mut held = Vec::with_capacity(args.sockets);
    let mut failed = 0usize;
    for i in 0..args.sockets {
        let server = &d.servers[i % d.servers.len()];
        let (_, token, _) = &setup.users[i % setup.users.len()];
        match open(
            &ws_url(server, "/ws/h5/chat"),
            json!({"type": "auth", "payload": {"token": token}}),
        )
        .await
        {
            Ok(framed) => held.push(framed),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("mc-load: socket {i}: {e}");
                }
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    actix_web::rt::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let after = rss_kb(&d.pid);
    let grown = grown_kb(&before, &after);
    Ok(json!({
        "scenario": "idle", "servers": d.servers.len(), "sockets_open": held.len(), "failed": failed,
        "connect_seconds": connect_secs, "connects_per_second": held.len() as f64 / connect_secs.max(1e-9),
        "rss_kb_before": before, "rss_kb_after": after,
        "bytes_per_socket": if held.is_empty() { 0.0 } else { grown as f64 * 1024.0 / held.len() as f64 },
    }))
}

/// A board socket past its `board.state`.
async fn open_board(server: &str, board_id: &str, token: &str) -> Result<Framed, String> {
    let url = ws_url(server, &format!("/ws/board/{board_id}/sync?token={token}"));
    open_until(&url, None, "board.state").await
}

/// What the board subscribers saw: per change number, when each delivery came; and the
/// sequence gaps.
#[derive(Default)]
struct Deliveries {
    at: HashMap<u64, Vec<Instant>>,
    gaps: u64,
}

/// What a subscriber reads of a sync frame.
#[derive(Default, serde::Deserialize)]
struct SyncPeek<'a> {
    seq: Option<i64>,
    #[serde(borrow)]
    changes: Option<ChangesPeek<'a>>,
}

#[derive(serde::Deserialize)]
struct ChangesPeek<'a> {
    #[serde(borrow)]
    title: Option<std::borrow::Cow<'a, str>>,
}

async fn board(args: BoardArgs) -> Result<Value, String> {
    let d = &args.deployment;
    let api = &d.servers[0];
    let admin = Some(d.token.as_str());
    let setup = set_up(d, args.boards.max(1), 0, None, None).await?;
    let mut targets = Vec::new();
    for g in &setup.gateways {
        let task = call(
            "POST",
            &format!("{api}/api/v1/boards/{}/tasks", g.board_id),
            admin,
            Some(json!({"title": "bench"})),
        )
        .await?;
        let task_id = task["id"].as_str().unwrap_or_default().to_string();
        targets.push((g.board_id.clone(), task_id));
    }
    let rss_before = rss_kb(&d.pid);
    let seen: Rc<RefCell<Deliveries>> = Rc::default();
    let started = Instant::now();
    let mut per_board = vec![0usize; targets.len()];
    for i in 0..args.subscribers {
        let server = &d.servers[i % d.servers.len()];
        let b = i % targets.len();
        per_board[b] += 1;
        let framed = open_board(server, &targets[b].0, &d.token).await?;
        let (_sink, mut stream) = framed.split();
        let seen = seen.clone();
        actix_web::rt::spawn(async move {
            let _keep_open = _sink;
            let mut last_seq: Option<i64> = None;
            while let Some(Ok(frame)) = stream.next().await {
                let ws::Frame::Text(bytes) = frame else {
                    continue;
                };
                // Only the two fields are read, borrowed: a thousand subscribers share this
                // thread, and its time is in every delivery measured after it.
                let frame: SyncPeek<'_> = serde_json::from_slice(&bytes).unwrap_or_default();
                if let Some(seq) = frame.seq {
                    if last_seq.is_some_and(|l| seq != l + 1) {
                        seen.borrow_mut().gaps += 1;
                    }
                    last_seq = Some(seq);
                }
                let n = frame
                    .changes
                    .and_then(|c| c.title)
                    .and_then(|t| t.strip_prefix("bench-")?.parse::<u64>().ok());
                if let Some(n) = n {
                    seen.borrow_mut()
                        .at
                        .entry(n)
                        .or_default()
                        .push(Instant::now());
                }
            }
        });
    }
    let connect_secs = started.elapsed().as_secs_f64();

    let sent_at: Rc<RefCell<HashMap<u64, (Instant, usize)>>> = Rc::default();
    let errors: Rc<RefCell<u64>> = Rc::default();
    let answered: Rc<RefCell<Vec<u64>>> = Rc::default();
    let mut ticker =
        actix_web::rt::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(1) as f64));
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        ticker.tick().await;
        let b = (sent as usize) % targets.len();
        let url = format!(
            "{api}/api/v1/boards/{}/tasks/{}",
            targets[b].0, targets[b].1
        );
        sent_at.borrow_mut().insert(sent, (Instant::now(), b));
        let (token, errors, title) = (d.token.clone(), errors.clone(), format!("bench-{sent}"));
        let answered = answered.clone();
        actix_web::rt::spawn(async move {
            let at = Instant::now();
            match call("PATCH", &url, Some(&token), Some(json!({"title": title}))).await {
                Ok(_) => answered.borrow_mut().push(at.elapsed().as_micros() as u64),
                Err(e) => {
                    if *errors.borrow() < 3 {
                        eprintln!("mc-load: {e}");
                    }
                    *errors.borrow_mut() += 1;
                }
            }
        });
        sent += 1;
    }
    // Drain: until every delivery is in, or none came for 3 s.
    let expected: usize = sent_at.borrow().values().map(|(_, b)| per_board[*b]).sum();
    let count =
        |seen: &Rc<RefCell<Deliveries>>| seen.borrow().at.values().map(Vec::len).sum::<usize>();
    let (mut last_count, mut last_progress) = (count(&seen), Instant::now());
    while last_count < expected && last_progress.elapsed() < Duration::from_secs(3) {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        let now = count(&seen);
        if now != last_count {
            (last_count, last_progress) = (now, Instant::now());
        }
    }
    let seen = seen.borrow();
    let mut each = Vec::new();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for (n, (at, _)) in sent_at.borrow().iter() {
        if let Some(deliveries) = seen.at.get(n) {
            each.extend(
                deliveries
                    .iter()
                    .map(|d| d.duration_since(*at).as_micros() as u64),
            );
            if let Some(max) = deliveries.iter().max() {
                last.push(max.duration_since(*at).as_micros() as u64);
            }
            if let Some(min) = deliveries.iter().min() {
                first.push(min.duration_since(*at).as_micros() as u64);
            }
        }
    }
    each.sort_unstable();
    first.sort_unstable();
    last.sort_unstable();
    let mut answered = answered.borrow().clone();
    answered.sort_unstable();
    Ok(json!({
        "scenario": "board", "servers": d.servers.len(), "subscribers": args.subscribers, "boards": targets.len(),
        "target_rate": args.rate, "duration_seconds": args.duration_secs, "connect_seconds": connect_secs,
        "changes": sent, "write_errors": *errors.borrow(), "deliveries_expected": expected, "deliveries": last_count,
        "missing": expected.saturating_sub(last_count), "gaps": seen.gaps,
        "delivery_p50_ms": percentile(&each, 0.5), "delivery_p99_ms": percentile(&each, 0.99),
        "write_p50_ms": percentile(&answered, 0.5), "write_p99_ms": percentile(&answered, 0.99),
        "first_delivery_p50_ms": percentile(&first, 0.5), "first_delivery_p99_ms": percentile(&first, 0.99),
        "last_delivery_p50_ms": percentile(&last, 0.5), "last_delivery_p99_ms": percentile(&last, 0.99),
        "last_delivery_max_ms": last.last().map_or(0.0, |m| *m as f64 / 1000.0),
        "rss_kb_before": rss_before, "rss_kb_after": rss_kb(&d.pid),
    }))
}

/// The admin's organization.
async fn organization(d: &Deployment) -> Result<String, String> {
    let api = &d.servers[0];
    let me = call(
        "GET",
        &format!("{api}/api/v1/organizations/me"),
        Some(d.token.as_str()),
        None,
    )
    .await?;
    Ok(me["id"].as_str().unwrap_or_default().to_string())
}

/// The caller's organization and `count` gateways registered in it through the registry:
/// `(gateway id, relay token, name)`.
async fn register_gateways(
    d: &Deployment,
    count: usize,
) -> Result<(String, Vec<(String, String, String)>), String> {
    let api = &d.servers[0];
    let admin = Some(d.token.as_str());
    let org = organization(d).await?;
    let reg_token = call(
        "POST",
        &format!("{api}/api/v1/gateway-registry/tokens"),
        admin,
        Some(json!({"label": "mc-load"})),
    )
    .await?["registration_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut out = Vec::with_capacity(count);
    for g in 0..count {
        let name = format!("load-{run}-{g}");
        let reg = call(
            "POST",
            &format!("{api}/api/v1/gateway-registry/register"),
            None,
            Some(
                json!({"organization_id": org, "registration_token": reg_token, "name": name,
                        "url": "http://load", "workspace_root": "/load"}),
            ),
        )
        .await?;
        let text = |k: &str| reg[k].as_str().unwrap_or_default().to_string();
        out.push((text("gateway_id"), text("relay_token"), name));
    }
    Ok((org, out))
}

/// OpenClaw gateways for the servers to dial.
#[derive(Clone, Copy)]
struct Dialled<'a> {
    /// `<base>/<gateway name>` each (`gateway-sim openclaw`), or `base` itself with `one`.
    base: &'a str,
    token: &'a str,
    one: bool,
    workspace_root: &'a str,
}

/// The caller's organization and `count` gateways created by URL and token, as the console
/// does, for the servers to dial: `(gateway id, "", name)`.
async fn create_dialled_gateways(
    d: &Deployment,
    count: usize,
    dialled: &Dialled<'_>,
) -> Result<(String, Vec<(String, String, String)>), String> {
    let api = &d.servers[0];
    let admin = Some(d.token.as_str());
    let org = organization(d).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut out = Vec::with_capacity(count);
    for g in 0..count {
        let name = format!("load-{run}-{g}");
        let url = match dialled.one {
            true => dialled.base.to_string(),
            false => format!("{}/{name}", dialled.base.trim_end_matches('/')),
        };
        let created = call(
            "POST",
            &format!("{api}/api/v1/gateways"),
            admin,
            Some(json!({"name": name, "url": url, "token": dialled.token,
                        "workspace_root": dialled.workspace_root})),
        )
        .await?;
        let id = created["id"].as_str().unwrap_or_default().to_string();
        out.push((id, String::new(), name));
    }
    Ok((org, out))
}

async fn dial(args: DialArgs) -> Result<Value, String> {
    let d = &args.deployment;
    let before = rss_kb(&d.pid);
    let started = Instant::now();
    let dialled = Dialled {
        base: &args.openclaw,
        token: &args.openclaw_token,
        one: false,
        workspace_root: "/tmp/mc-load-workspaces",
    };
    let (_, created) = create_dialled_gateways(d, args.gateways, &dialled).await?;
    let create_secs = started.elapsed().as_secs_f64();
    let ids: std::collections::HashSet<String> = created.into_iter().map(|(id, _, _)| id).collect();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let (mut connected, mut provisioned) = (0, 0);
    let mut connected_secs = None;
    while Instant::now() < deadline {
        (connected, provisioned) = dialled_progress(d, &ids).await?;
        if connected == ids.len() && connected_secs.is_none() {
            connected_secs = Some(started.elapsed().as_secs_f64());
        }
        if provisioned == ids.len() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    let all_secs = started.elapsed().as_secs_f64();
    // Settled: what holding them costs.
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kb(&d.pid);
    let grown = grown_kb(&before, &after);
    Ok(json!({
        "scenario": "dial", "servers": d.servers.len(), "gateways": ids.len(),
        "connected": connected, "main_agents_provisioned": provisioned,
        "create_seconds": create_secs, "all_connected_seconds": connected_secs,
        "all_provisioned_seconds": all_secs,
        "rss_kb_before": before, "rss_kb_after": after,
        "bytes_per_gateway": grown as f64 * 1024.0 / ids.len().max(1) as f64,
    }))
}

/// How many of `ids` are connected, and how many have their main agent provisioned (its
/// `agents.create` answered), read page by page from the first server.
async fn dialled_progress(
    d: &Deployment,
    ids: &std::collections::HashSet<String>,
) -> Result<(usize, usize), String> {
    let api = &d.servers[0];
    let admin = Some(d.token.as_str());
    let mut connected = 0;
    let mut offset = 0;
    loop {
        let page = call(
            "GET",
            &format!("{api}/api/v1/gateways?limit=200&offset={offset}"),
            admin,
            None,
        )
        .await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        connected += items
            .iter()
            .filter(|g| ids.contains(g["id"].as_str().unwrap_or_default()))
            .filter(|g| g["connection_state"] == "connected")
            .count();
        if items.len() < 200 {
            break;
        }
        offset += 200;
    }
    let mut provisioned = 0;
    if connected == ids.len() {
        for id in ids {
            let requests = call(
                "GET",
                &format!("{api}/api/v1/gateways/{id}/requests"),
                admin,
                None,
            )
            .await?;
            provisioned += usize::from(
                requests
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["method"] == "agents.create" && r["status"] == "done"),
            );
        }
    }
    Ok((connected, provisioned))
}

/// Waits (up to 60 s) until the dialled gateway is connected and its agent provisioned.
async fn wait_provisioned(d: &Deployment, g: &Gateway) -> Result<(), String> {
    let api = &d.servers[0];
    let admin = Some(d.token.as_str());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let requests = call(
            "GET",
            &format!("{api}/api/v1/gateways/{}/requests", g.id),
            admin,
            None,
        )
        .await?;
        let done = requests.as_array().into_iter().flatten().any(|r| {
            r["method"] == "agents.create"
                && r["agent_id"] == g.agent_id.as_str()
                && r["status"] == "done"
        });
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "gateway {} never provisioned its agent: {requests}",
                g.id
            ));
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn heartbeats(args: HeartbeatArgs) -> Result<Value, String> {
    let d = &args.deployment;
    let started = Instant::now();
    let gateways = Rc::new(register_gateways(d, args.gateways.max(1)).await?.1);
    let registration_secs = started.elapsed().as_secs_f64();
    let rss_before = rss_kb(&d.pid);
    let latencies: Rc<RefCell<Vec<u64>>> = Rc::default();
    let errors: Rc<RefCell<u64>> = Rc::default();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut ticker = (args.rate > 0).then(|| {
        let mut t = actix_web::rt::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let mut sent = 0usize;
    while Instant::now() < deadline {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (gateway_id, relay_token, _) = gateways[sent % gateways.len()].clone();
        let url = format!(
            "{}/api/v1/gateway-registry/heartbeat",
            d.servers[sent % d.servers.len()]
        );
        let (latencies, errors) = (latencies.clone(), errors.clone());
        actix_web::rt::spawn(async move {
            let _slot = slot;
            let body = json!({"gateway_id": gateway_id, "relay_token": relay_token, "status": "online",
                              "metrics": {"active_sessions": 0, "memory_mb": 64.0, "cpu_pct": 1.5, "agent_count": 1}});
            let at = Instant::now();
            match call("POST", &url, None, Some(body)).await {
                Ok(_) => latencies.borrow_mut().push(at.elapsed().as_micros() as u64),
                Err(_) => *errors.borrow_mut() += 1,
            }
        });
        sent += 1;
    }
    // Let the ones in flight finish.
    let _ = slots.acquire_many(args.concurrency.max(1) as u32).await;
    let elapsed = started.elapsed().as_secs_f64() - registration_secs;
    let mut l = latencies.borrow().clone();
    l.sort_unstable();
    Ok(json!({
        "scenario": "heartbeat", "servers": d.servers.len(), "gateways": gateways.len(), "target_rate": args.rate,
        "concurrency": args.concurrency, "registration_seconds": registration_secs, "duration_seconds": args.duration_secs,
        "sent": sent, "accepted": l.len(), "errors": *errors.borrow(),
        "accepted_per_second": l.len() as f64 / elapsed.max(1e-9),
        "p50_ms": percentile(&l, 0.5), "p90_ms": percentile(&l, 0.9), "p99_ms": percentile(&l, 0.99),
        "max_ms": l.last().map_or(0.0, |m| *m as f64 / 1000.0),
        "rss_kb_before": rss_before, "rss_kb_after": rss_kb(&d.pid),
    }))
}

fn main() {
    let cli = Cli::parse();
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.scenario {
            Scenario::H5(args) => h5(args).await,
            Scenario::Idle(args) => idle(args).await,
            Scenario::Board(args) => board(args).await,
            Scenario::Heartbeat(args) => heartbeats(args).await,
            Scenario::Dial(args) => dial(args).await,
        }
    });
    match result {
        Ok(report) => {
            println!("{report}");
            if let Some(fields) = report.as_object() {
                for (k, v) in fields {
                    eprintln!("{k:>22}  {v}");
                }
            }
        }
        Err(e) => {
            eprintln!("mc-load: {e}");
            std::process::exit(1);
        }
    }
}
