//! Gateway simulator, two kinds of gateway (docs/gateway-protocol.md):
//!
//! - `run`: gateways that dial us (the relay protocol): they register with a registration
//!   token, heartbeat, hold their relay links, reconnect with backoff, answer Mission
//!   Control's `rpc.request`s, and answer `chat.send` with `chat.reply` (an echo, or a canned
//!   text) after a configurable delay.
//! - `openclaw`: gateways we dial, speaking OpenClaw's own protocol (`openclaw.rs`).
//!
//! The tests, the README demo and the benchmarks use it (heartbeat load is `mc-load
//! heartbeat`).

mod openclaw;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use awc::ws;
use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "gateway-sim",
    about = "Simulates office gateways against a Mission Control server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run gateways: register, heartbeat, hold relay links, answer chats.
    Run(RunArgs),
    /// Serve OpenClaw gateways for Mission Control to dial (one per URL path).
    Openclaw(openclaw::OpenClawArgs),
}

#[derive(Args, Clone)]
struct Target {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    server: String,
    /// Organization the gateways join.
    #[arg(long)]
    org: String,
    /// Registration token issued by an admin (POST /api/v1/gateway-registry/tokens).
    #[arg(long)]
    registration_token: String,
    /// Gateway name; with several gateways, `-<n>` is appended.
    #[arg(long, default_value = "sim-gateway")]
    name: String,
    /// How many gateways to simulate.
    #[arg(long, default_value_t = 1)]
    gateways: usize,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// `echo` answers with the message; anything else is sent as the answer.
    #[arg(long, default_value = "echo")]
    reply: String,
    /// Delay before answering a chat.
    #[arg(long, default_value_t = 0)]
    reply_delay_ms: u64,
    /// Stop after this many seconds and print a summary (0 = run until killed).
    #[arg(long, default_value_t = 0)]
    duration_secs: u64,
}

#[derive(Clone)]
struct Registration {
    gateway_id: String,
    relay_token: String,
    relay_ws_url: String,
    heartbeat: Duration,
}

#[derive(Default)]
struct Counters {
    registrations: u64,
    links_up: u64,
    heartbeats: u64,
    chats_answered: u64,
    reconnects: u64,
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

fn gateway_name(target: &Target, index: usize) -> String {
    if target.gateways == 1 {
        target.name.clone()
    } else {
        format!("{}-{index}", target.name)
    }
}

async fn register(target: &Target, name: &str) -> Result<Registration, String> {
    let body = json!({
        "organization_id": target.org, "registration_token": target.registration_token, "name": name,
        "url": format!("ws://{name}.sim.local:18789"), "workspace_root": "/srv/sim", "version": "sim-1",
        "capabilities": ["chat"],
    });
    let mut res = client()
        .post(format!(
            "{}/api/v1/gateway-registry/register",
            target.server
        ))
        .send_json(&body)
        .await
        .map_err(|e| e.to_string())?;
    let reply: Value = res.json().await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("register {}: {reply}", res.status()));
    }
    let text = |k: &str| reply[k].as_str().unwrap_or_default().to_string();
    Ok(Registration {
        gateway_id: text("gateway_id"),
        relay_token: text("relay_token"),
        relay_ws_url: text("relay_ws_url"),
        heartbeat: Duration::from_secs(
            reply["heartbeat_interval_seconds"]
                .as_u64()
                .unwrap_or(30)
                .max(1),
        ),
    })
}

async fn heartbeat(server: &str, reg: &Registration, sessions: u64) -> Result<(), String> {
    let body = json!({
        "gateway_id": reg.gateway_id, "relay_token": reg.relay_token, "status": "online",
        "metrics": {"active_sessions": sessions, "memory_mb": 64.0, "cpu_pct": 1.5, "agent_count": 1},
    });
    let res = client()
        .post(format!("{server}/api/v1/gateway-registry/heartbeat"))
        .send_json(&body)
        .await
        .map_err(|e| e.to_string())?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("heartbeat {}", res.status()))
    }
}

/// 100 ms doubling to 5 s, with up to 25% jitter so restarted gateways do not stampede.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(6));
    let base = base.min(Duration::from_secs(5));
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base.as_millis() as u64 / 1024;
    base + Duration::from_millis(jitter)
}

enum LinkEnd {
    /// Auth refused: the relay token is stale, register again.
    Reregister,
    /// Any other end: reconnect.
    Reconnect(String),
}

/// One relay link session, until it ends.
async fn hold_link(
    args: Rc<RunArgs>,
    reg: &Registration,
    counters: Rc<RefCell<Counters>>,
) -> LinkEnd {
    let connected = awc::Client::new()
        .ws(&reg.relay_ws_url)
        .max_frame_size(16 << 20)
        .connect()
        .await;
    let framed = match connected {
        Ok((_, framed)) => framed,
        Err(e) => return LinkEnd::Reconnect(e.to_string()),
    };
    let (mut sink, mut stream) = framed.split();
    // `chat.ack`: messages stay pending at the server until this gateway says it took them.
    let auth = json!({"type": "auth", "payload": {"relay_token": reg.relay_token, "capabilities": ["chat.ack"]}})
        .to_string();
    if sink.send(ws::Message::Text(auth.into())).await.is_err() {
        return LinkEnd::Reconnect("send failed".into());
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = actix_web::rt::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(ws::Message::Text(frame.into())).await.is_err() {
                break;
            }
        }
    });
    let mut ticker = actix_web::rt::time::interval(reg.heartbeat);
    let mut beat = 0u64;
    let mut sessions = Vec::new();
    let end = loop {
        tokio::select! {
            _ = ticker.tick() => {
                beat += 1;
                let _ = tx.send(json!({"type": "heartbeat", "id": format!("hb-{beat}")}).to_string());
            }
            frame = stream.next() => match frame {
                Some(Ok(ws::Frame::Text(bytes))) => {
                    let frame: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    match frame["type"].as_str().unwrap_or_default() {
                        "auth_ok" => {
                            counters.borrow_mut().links_up += 1;
                            eprintln!("gateway {} linked", reg.gateway_id);
                        }
                        "auth_error" => break LinkEnd::Reregister,
                        "chat.send" => {
                            let ack = json!({"type": "chat.ack", "payload": {"message_ids": [frame["payload"]["message_id"]]}});
                            let _ = tx.send(ack.to_string());
                            answer(args.clone(), frame, tx.clone(), counters.clone());
                        }
                        "rpc.request" => {
                            let _ = tx.send(rpc_result(&frame, &mut sessions).to_string());
                        }
                        _ => {}
                    }
                }
                Some(Ok(ws::Frame::Close(reason))) => {
                    if reason.as_ref().is_some_and(|r| u16::from(r.code) == 4001) {
                        break LinkEnd::Reregister;
                    }
                    break LinkEnd::Reconnect(format!("closed: {reason:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break LinkEnd::Reconnect(e.to_string()),
                None => break LinkEnd::Reconnect("stream ended".into()),
            }
        }
    };
    writer.abort();
    end
}

/// Answers Mission Control's requests (docs/gateway-protocol.md §7) as a gateway whose agents
/// all accept: provisioning adds the agent's session, `sessions.send` appends to its
/// history, reads answer from what it holds.
fn rpc_result(frame: &Value, sessions: &mut Vec<(String, Vec<Value>)>) -> Value {
    let params = &frame["payload"]["params"];
    let key = params["session_key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let position = sessions.iter().position(|(k, _)| *k == key);
    let result = match frame["payload"]["method"].as_str().unwrap_or_default() {
        "agents.create" | "agents.update" | "agents.templates.sync" => {
            if position.is_none() && !key.is_empty() {
                sessions.push((key, Vec::new()));
            }
            json!({})
        }
        "agents.delete" => {
            if let Some(i) = position {
                sessions.remove(i);
            }
            json!({})
        }
        "sessions.send" => {
            let message = json!({"role": "user", "content": params["message"]});
            match position {
                Some(i) => sessions[i].1.push(message),
                None => sessions.push((key, vec![message])),
            }
            json!({})
        }
        "sessions.list" => {
            json!({"sessions": sessions.iter().map(|(k, h)| json!({"key": k, "messages": h.len()})).collect::<Vec<_>>()})
        }
        "chat.history" => {
            json!({"messages": position.map(|i| sessions[i].1.clone()).unwrap_or_default()})
        }
        _ => json!({}),
    };
    json!({"type": "rpc.result", "id": frame["id"], "payload": {"ok": true, "result": result}})
}

/// Answers a `chat.send` with a `chat.reply` after the configured delay.
fn answer(
    args: Rc<RunArgs>,
    frame: Value,
    tx: mpsc::UnboundedSender<String>,
    counters: Rc<RefCell<Counters>>,
) {
    actix_web::rt::spawn(async move {
        if args.reply_delay_ms > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(args.reply_delay_ms)).await;
        }
        let content = match args.reply.as_str() {
            "echo" => format!(
                "echo: {}",
                frame["payload"]["content"].as_str().unwrap_or_default()
            ),
            canned => canned.to_string(),
        };
        let reply = json!({
            "type": "chat.reply",
            // The message id, unique: the frame id (`local-1`) repeats after a page load.
            "id": frame["payload"]["message_id"],
            "payload": {"session_key": frame["payload"]["session_key"], "agent_id": frame["payload"]["agent_id"], "content": content},
        });
        if tx.send(reply.to_string()).is_ok() {
            counters.borrow_mut().chats_answered += 1;
        }
    });
}

async fn run_gateway(args: Rc<RunArgs>, index: usize, counters: Rc<RefCell<Counters>>) {
    let name = gateway_name(&args.target, index);
    let mut attempt = 0;
    loop {
        let reg = match register(&args.target, &name).await {
            Ok(reg) => reg,
            Err(e) => {
                eprintln!("gateway {name}: {e}");
                actix_web::rt::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        counters.borrow_mut().registrations += 1;
        let beats = {
            let (server, reg, counters) =
                (args.target.server.clone(), reg.clone(), counters.clone());
            actix_web::rt::spawn(async move {
                let mut ticker = actix_web::rt::time::interval(reg.heartbeat);
                loop {
                    ticker.tick().await;
                    let answered = counters.borrow().chats_answered;
                    match heartbeat(&server, &reg, answered).await {
                        Ok(()) => counters.borrow_mut().heartbeats += 1,
                        Err(e) => eprintln!("gateway {}: {e}", reg.gateway_id),
                    }
                }
            })
        };
        loop {
            match hold_link(args.clone(), &reg, counters.clone()).await {
                LinkEnd::Reregister => break,
                LinkEnd::Reconnect(why) => {
                    eprintln!(
                        "gateway {}: link down ({why}); reconnecting",
                        reg.gateway_id
                    );
                    counters.borrow_mut().reconnects += 1;
                    actix_web::rt::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
        beats.abort();
    }
}

async fn run(args: RunArgs) {
    let args = Rc::new(args);
    let counters = Rc::new(RefCell::new(Counters::default()));
    for i in 0..args.target.gateways {
        actix_web::rt::spawn(run_gateway(args.clone(), i, counters.clone()));
    }
    if args.duration_secs == 0 {
        std::future::pending::<()>().await;
    }
    actix_web::rt::time::sleep(Duration::from_secs(args.duration_secs)).await;
    let c = counters.borrow();
    println!(
        "{}",
        json!({"gateways": args.target.gateways, "registrations": c.registrations, "links_up": c.links_up,
               "heartbeats": c.heartbeats, "chats_answered": c.chats_answered, "reconnects": c.reconnects})
    );
}

fn main() {
    let cli = Cli::parse();
    actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Openclaw(args) => openclaw::run(args).await,
        }
    });
}
