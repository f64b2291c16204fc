//! The local gateway's metrics for heartbeats: one short OpenClaw operator connection (the
//! same handshake Mission Control's client does, with the connector's own device key, which
//! a gateway on loopback pairs silently), `status` and `sessions.list`, then hang up.

use std::time::{Duration, Instant};

use awc::ws;
use futures_util::{SinkExt, StreamExt};
use mission_control::protocol::openclaw::{self as oc, Challenge, Credential, Device, Inbound};
use mission_control::secrets::device::DeviceKey;
use serde_json::{json, Value};

use crate::Settings;

const WITHIN: Duration = Duration::from_secs(10);

/// `{"version","agent_count","active_sessions","latency_ms"}` of the local gateway, or why
/// it could not be read.
pub async fn metrics(settings: &Settings, device_seed: &[u8]) -> Result<Value, String> {
    match actix_web::rt::time::timeout(WITHIN, read(settings, device_seed)).await {
        Ok(read) => read,
        Err(_) => Err(format!("no answer within {} s", WITHIN.as_secs())),
    }
}

async fn read(settings: &Settings, device_seed: &[u8]) -> Result<Value, String> {
    let key = DeviceKey::from_seed(device_seed).ok_or("bad device seed")?;
    let started = Instant::now();
    let (_, mut socket) = mission_control::outbound::client(WITHIN)
        .ws(settings.gateway_url.as_str())
        .max_frame_size(32 << 20)
        .connect()
        .await
        .map_err(|e| format!("{}: {e}", settings.gateway_url))?;
    let challenge: Challenge = loop {
        let frame: Value = serde_json::from_str(&next_text(&mut socket).await?).unwrap_or_default();
        if frame["event"] == oc::CHALLENGE {
            break serde_json::from_value(frame["payload"].clone()).map_err(|e| e.to_string())?;
        }
    };
    let credential = Credential::Token(&settings.gateway_token);
    let signature = key.sign(&oc::signing_string(key.id(), &credential, &challenge));
    let device = Device {
        id: key.id(),
        public_key: key.public_key(),
    };
    let connect = oc::connect_params(
        env!("CARGO_PKG_VERSION"),
        &credential,
        &device,
        &challenge,
        &signature,
    );
    let mut calls = vec![("connect", connect), ("status", json!({}))];
    let mut answers = Vec::new();
    for (n, (method, params)) in calls.drain(..).enumerate() {
        let id = format!("m{n}");
        let frame = serde_json::to_string(&oc::Req::new(&id, method, &params)).unwrap_or_default();
        socket
            .send(ws::Message::Text(frame.into()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let text = next_text(&mut socket).await?;
            if let Inbound::Res {
                id: answered,
                outcome,
            } = oc::parse(&text)
            {
                if answered == id {
                    answers.push(outcome.map_err(|e| format!("{method}: {}", e.describe()))?);
                    break;
                }
            }
        }
    }
    let _ = socket.close().await;
    let hello = oc::Hello::read(&answers[0]);
    Ok(read_status(&answers[1], hello.version, started.elapsed()))
}

/// The heartbeat's metrics from `status` (2026.9.6: `runtimeVersion`, `heartbeat.agents[]`,
/// `sessions.count`, `processMemory.rssBytes`, `eventLoop.cpuCoreRatio`).
fn read_status(status: &Value, version: Option<String>, took: Duration) -> Value {
    json!({
        "version": status["runtimeVersion"].as_str().map(str::to_string).or(version),
        "agent_count": status["heartbeat"]["agents"].as_array().map(Vec::len),
        "active_sessions": status["sessions"]["count"].as_u64(),
        "memory_mb": status["processMemory"]["rssBytes"].as_f64().map(|b| (b / 1048576.0).round()),
        "cpu_pct": status["eventLoop"]["cpuCoreRatio"].as_f64().map(|r| (r * 1000.0).round() / 10.0),
        "latency_ms": took.as_millis() as u64,
    })
}

/// The next text frame (pings and other frames skipped).
async fn next_text(
    socket: &mut actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
) -> Result<String, String> {
    loop {
        match socket.next().await {
            Some(Ok(ws::Frame::Text(bytes))) => {
                return String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
            }
            Some(Ok(ws::Frame::Close(reason))) => return Err(format!("closed {reason:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the gateway hung up".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_from_a_2026_status() {
        let status = json!({"runtimeVersion": "2026.9.6",
            "heartbeat": {"agents": [{"agentId": "main"}, {"agentId": "mc-x"}]},
            "sessions": {"count": 3}, "processMemory": {"rssBytes": 799252480u64},
            "eventLoop": {"cpuCoreRatio": 0.012}});
        let read = read_status(&status, None, Duration::from_millis(7));
        assert_eq!(
            read,
            json!({"version": "2026.9.6", "agent_count": 2, "active_sessions": 3,
                   "memory_mb": 762.0, "cpu_pct": 1.2, "latency_ms": 7})
        );
        assert_eq!(
            read_status(&json!({}), Some("v".into()), Duration::ZERO)["version"],
            "v"
        );
    }
}
