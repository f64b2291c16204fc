//! A recorded request (`domain::outbox::commands`, the relay protocol's methods) carried out
//! as OpenClaw calls (docs/gateway-protocol.md §8). The answer recorded for the request is
//! what a relay gateway would have answered: `{"sessions"}`, `{"messages"}`, or a summary.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{CallError, Calls};
use crate::domain::gateways::sessions::{LIST_SESSIONS, SEND_TO_SESSION, SESSION_HISTORY};
use crate::domain::outbox::commands::Command;
use crate::domain::outbox::provisioning::{
    CREATE, DELETE, SET_HEARTBEATS, SYNC_TEMPLATES, UPDATE, WRITE_FILE,
};
use crate::domain::outbox::workspace;
use crate::protocol::openclaw::{self as oc, GatewayError};

/// After `agents.create` the gateway reloads its configuration for 0.4–3.4 s; we wait for
/// the agent this long at most.
const HOT_RELOAD: Duration = Duration::from_secs(20);
const CONFIG_RETRIES: usize = 5;

/// Requests whose caller waits for the answer: carried out at once, beside the others.
pub fn is_read(command: &Command) -> bool {
    matches!(command.method.as_str(), LIST_SESSIONS | SESSION_HISTORY)
}

pub async fn run(
    calls: &Calls,
    workspace_root: &str,
    base_url: Option<&str>,
    command: &Command,
) -> Result<Value, CallError> {
    let p = &command.params;
    match command.method.as_str() {
        CREATE | UPDATE | SYNC_TEMPLATES => {
            provision(calls, workspace_root, base_url, command).await
        }
        DELETE => {
            let agent = agent_of(p)?;
            match calls
                .call(
                    "agents.delete",
                    json!({"agentId": agent, "deleteFiles": true}),
                )
                .await
            {
                Err(CallError::Gateway(e)) if e.message.contains("not found") => {
                    Ok(json!({"ok": true, "already_deleted": true}))
                }
                other => other,
            }
        }
        WRITE_FILE => {
            let agent = agent_of(p)?;
            let name = p["name"].as_str().unwrap_or_default();
            let content = p["content"].as_str().unwrap_or_default();
            write_files(calls, &agent, &[(name, content.to_string())]).await
        }
        SET_HEARTBEATS => {
            let mut entries = serde_json::Map::new();
            for entry in p["agents"].as_array().into_iter().flatten() {
                if let Ok(agent) = agent_of(entry) {
                    entries.insert(
                        agent,
                        json!({"heartbeat": heartbeat(&entry["heartbeat_config"])}),
                    );
                }
            }
            patch_config(calls, json!({"agents": {"entries": entries}})).await
        }
        SEND_TO_SESSION => {
            let session = p["session_key"].as_str().unwrap_or_default();
            calls
                .call(
                    "chat.send",
                    json!({"sessionKey": session, "message": p["message"].as_str().unwrap_or_default(),
                           "deliver": false, "idempotencyKey": command.id.to_string()}),
                )
                .await
        }
        LIST_SESSIONS => {
            let answer = calls.call("sessions.list", json!({})).await?;
            Ok(json!({"sessions": answer["sessions"]}))
        }
        SESSION_HISTORY => {
            let session = p["session_key"].as_str().unwrap_or_default();
            let answer = calls
                .call("chat.history", json!({"sessionKey": session, "limit": 200}))
                .await?;
            Ok(json!({"messages": answer["messages"]}))
        }
        other => Err(refusal(format!(
            "{other} is not a request Mission Control sends to OpenClaw gateways"
        ))),
    }
}

fn refusal(message: String) -> CallError {
    CallError::Gateway(GatewayError {
        message,
        ..Default::default()
    })
}

/// The gateway's agent id from a request's `session_key` (`agent:<id>:main`).
fn agent_of(params: &Value) -> Result<String, CallError> {
    params["session_key"]
        .as_str()
        .and_then(oc::agent_of_session)
        .map(str::to_string)
        .ok_or_else(|| refusal("the agent has no gateway session key".into()))
}

/// Creates (or updates) the agent, waits until the gateway has loaded it, writes its
/// workspace files and sets its heartbeat; a template sync may also reset its session.
async fn provision(
    calls: &Calls,
    workspace_root: &str,
    base_url: Option<&str>,
    command: &Command,
) -> Result<Value, CallError> {
    let p = &command.params;
    let agent = agent_of(p)?;
    let root = workspace_root.trim_end_matches('/');
    let workspace = if root.is_empty() {
        format!("~/.openclaw/workspace-{agent}")
    } else {
        format!("{root}/workspace-{agent}")
    };
    let spec = json!({"agentId": agent, "name": agent, "workspace": workspace});
    let created = calls
        .call(
            "agents.create",
            json!({"name": agent, "workspace": workspace}),
        )
        .await;
    match created {
        Ok(_) => wait_until_loaded(calls, &agent).await?,
        Err(CallError::Gateway(e)) if oc::is_already_exists(&e) => {
            calls.call("agents.update", spec).await?;
        }
        Err(e) => return Err(e),
    }
    let files = workspace::files(p, base_url);
    let written = write_files(calls, &agent, &files).await?;
    patch_config(
        calls,
        json!({"agents": {"entries": {&agent: {"heartbeat": heartbeat(&p["heartbeat_config"])}}}}),
    )
    .await?;
    let session = format!("agent:{agent}:main");
    if p["reset_session"] == true {
        match calls.call("sessions.reset", json!({"key": session})).await {
            // The main session cannot be deleted; it is then kept as it is.
            Err(CallError::Gateway(e)) if e.message.contains("main session") => {}
            other => {
                other?;
            }
        }
    }
    Ok(json!({"ok": true, "agent_id": agent, "workspace": workspace, "files": written}))
}

/// Polls `agents.files.list` until the new agent answers.
async fn wait_until_loaded(calls: &Calls, agent: &str) -> Result<(), CallError> {
    let started = Instant::now();
    loop {
        match calls
            .call("agents.files.list", json!({"agentId": agent}))
            .await
        {
            Ok(_) => return Ok(()),
            Err(CallError::Gateway(e))
                if oc::is_not_loaded_yet(&e) && started.elapsed() < HOT_RELOAD =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes each file; a file the gateway refuses as unsupported (TOOLS.md, HEARTBEAT.md on
/// 2026.9) is listed in the answer, not an error.
async fn write_files(
    calls: &Calls,
    agent: &str,
    files: &[(&str, String)],
) -> Result<Value, CallError> {
    let (mut written, mut refused) = (Vec::new(), Vec::new());
    for (name, content) in files {
        let params = json!({"agentId": agent, "name": name, "content": content});
        let started = Instant::now();
        loop {
            match calls.call("agents.files.set", params.clone()).await {
                Ok(_) => {
                    written.push(json!(name));
                    break;
                }
                Err(CallError::Gateway(e)) if e.message.contains("unsupported") => {
                    refused.push(json!({"name": name, "error": e.describe()}));
                    break;
                }
                Err(CallError::Gateway(e))
                    if oc::is_not_loaded_yet(&e) && started.elapsed() < HOT_RELOAD =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(json!({"written": written, "unsupported": refused}))
}

/// `config.patch` against the hash `config.get` gave; a patch that raced another change of
/// the config is read and tried again.
async fn patch_config(calls: &Calls, patch: Value) -> Result<Value, CallError> {
    let raw = patch.to_string();
    let mut attempt = 0;
    loop {
        let config = calls.call("config.get", json!({})).await?;
        let hash = config["hash"].clone();
        match calls
            .call("config.patch", json!({"raw": raw, "baseHash": hash}))
            .await
        {
            Err(CallError::Gateway(e)) if oc::is_stale_config(&e) && attempt < CONFIG_RETRIES => {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The heartbeat in the gateway's shape: only `every` and `target` (the reference's other
/// keys are refused by current gateways).
fn heartbeat(config: &Value) -> Value {
    json!({
        "every": config["every"].as_str().unwrap_or("10m"),
        "target": config["target"].as_str().unwrap_or("last"),
    })
}
