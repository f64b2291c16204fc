//! The relay link to Mission Control and the tunnel it carries (`protocol::tunnel`): each
//! stream Mission Control opens becomes a TCP connection to the local gateway, bytes both
//! ways in order; heartbeats (with the local gateway's metrics) go at the server's interval.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use awc::ws;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mission_control::protocol::tunnel::{self, Control};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::state::State;
use crate::{local, Fatal, Settings};

/// A link that stayed up this long starts the backoff over when it ends.
const STABLE: Duration = Duration::from_secs(60);

/// The wait before reconnect `attempt` (1, 2, …): doubling from 0.5 s up to 30 s, each
/// between half and all of it (jitter), so connectors that lost one server do not all
/// come back at once.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.pow(attempt.min(6));
    let base = base.min(Duration::from_secs(30));
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    base / 2 + base.mul_f64(f64::from(byte[0]) / 510.0)
}

enum Ended {
    /// The server refused the relay token.
    Revoked(String),
    /// The link went away (or never came up): reconnect.
    Lost(String),
}

/// Holds the link for ever; returns only when the relay token is refused.
pub async fn hold(settings: &Settings, state: &State) -> Fatal {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        match session(settings, state).await {
            Ended::Revoked(why) => return Fatal::Revoked(why),
            Ended::Lost(why) => tracing::warn!(%why, "relay link lost"),
        }
        attempt = if started.elapsed() > STABLE {
            1
        } else {
            attempt + 1
        };
        actix_web::rt::time::sleep(backoff(attempt)).await;
    }
}

async fn session(settings: &Settings, state: &State) -> Ended {
    let url = settings.relay_url(state.gateway_id);
    let connected = mission_control::outbound::client(Duration::from_secs(15))
        .ws(url.as_str())
        .max_frame_size(tunnel::CHUNK + 1024)
        .connect()
        .await;
    let mut socket = match connected {
        Ok((_, socket)) => socket,
        Err(e) => return Ended::Lost(format!("{url}: {e}")),
    };
    let auth = json!({"type": "auth", "payload": {
        "relay_token": state.relay_token,
        "capabilities": [tunnel::CAPABILITY],
        "gateway_token": settings.gateway_token,
    }});
    if let Err(e) = socket
        .send(ws::Message::Text(auth.to_string().into()))
        .await
    {
        return Ended::Lost(e.to_string());
    }
    let interval = match socket.next().await {
        Some(Ok(ws::Frame::Text(bytes))) => {
            let frame: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            match frame["type"].as_str() {
                Some("auth_ok") => frame["payload"]["config"]["heartbeat_interval_seconds"]
                    .as_u64()
                    .unwrap_or(30),
                Some("auth_error") => {
                    return Ended::Revoked(frame["payload"]["message"].to_string())
                }
                _ => return Ended::Lost(format!("unexpected first frame {frame}")),
            }
        }
        Some(Ok(ws::Frame::Close(Some(reason)))) if u16::from(reason.code) == 4001 => {
            return Ended::Revoked(reason.description.unwrap_or_default())
        }
        other => return Ended::Lost(format!("no auth_ok: {other:?}")),
    };
    tracing::info!(gateway_id = %state.gateway_id, interval, "relay link up");
    let (out, mut queue) = mpsc::unbounded_channel::<ws::Message>();
    let (refused, mut revoked) = mpsc::unbounded_channel::<String>();
    let mut streams: HashMap<u32, mpsc::UnboundedSender<Bytes>> = HashMap::new();
    let mut heartbeat = actix_web::rt::time::interval(Duration::from_secs(interval.max(1)));
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let beat = beat(settings.clone(), state.gateway_id, state.relay_token.clone(), state.device_seed.clone(), refused.clone());
                actix_web::rt::spawn(beat);
            }
            Some(why) = revoked.recv() => return Ended::Revoked(why),
            Some(message) = queue.recv() => {
                if let Err(e) = socket.send(message).await {
                    return Ended::Lost(e.to_string());
                }
            }
            frame = socket.next() => match frame {
                Some(Ok(ws::Frame::Binary(frame))) => {
                    let Some((stream, bytes)) = tunnel::read_data(&frame) else { continue };
                    let delivered = streams.get(&stream).is_some_and(|w| w.send(bytes).is_ok());
                    if !delivered {
                        streams.remove(&stream);
                        let _ = out.send(control(Control::close(stream, Some("no such stream".into()))));
                    }
                }
                Some(Ok(ws::Frame::Text(text))) => match Control::read(std::str::from_utf8(&text).unwrap_or_default()) {
                    Some(Control::Open { payload }) => {
                        streams.insert(payload.stream, open(settings, payload.stream, out.clone()));
                    }
                    Some(Control::Close { payload }) => {
                        streams.remove(&payload.stream);
                    }
                    None => tracing::debug!(frame = %String::from_utf8_lossy(&text), "from Mission Control"),
                },
                Some(Ok(ws::Frame::Ping(data))) => {
                    let _ = out.send(ws::Message::Pong(data));
                }
                Some(Ok(ws::Frame::Close(reason))) => {
                    if let Some(reason) = &reason {
                        if u16::from(reason.code) == 4001 {
                            return Ended::Revoked(reason.description.clone().unwrap_or_default());
                        }
                    }
                    return Ended::Lost(format!("closed by Mission Control: {reason:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                None => return Ended::Lost("the connection ended".into()),
            },
        }
    }
}

fn control(frame: Control) -> ws::Message {
    ws::Message::Text(mission_control::protocol::text(&frame).into())
}

/// Stream `stream`: connects to the local gateway, then writes what Mission Control sends
/// (held meanwhile in the returned queue) and sends back what the gateway writes. Either
/// end closing closes the stream on the other.
fn open(
    settings: &Settings,
    stream: u32,
    out: mpsc::UnboundedSender<ws::Message>,
) -> mpsc::UnboundedSender<Bytes> {
    let (writer, mut queue) = mpsc::unbounded_channel::<Bytes>();
    let address = local_address(&settings.gateway_url);
    actix_web::rt::spawn(async move {
        let socket = match TcpStream::connect(&address).await {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(%address, error = %e, "local gateway unreachable");
                let _ = out.send(control(Control::close(stream, Some(e.to_string()))));
                return;
            }
        };
        let _ = socket.set_nodelay(true);
        let (mut read, mut write) = socket.into_split();
        let back = out.clone();
        actix_web::rt::spawn(async move {
            let mut buffer = vec![0u8; tunnel::CHUNK];
            loop {
                match read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let frame = tunnel::data(stream, &buffer[..n]);
                        if back.send(ws::Message::Binary(frame.into())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = back.send(control(Control::close(stream, None)));
        });
        while let Some(bytes) = queue.recv().await {
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    writer
}

/// `host:port` of the local gateway's ws:// URL (port 18789 when it names none).
fn local_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_string(),
        _ => format!("{authority}:18789"),
    }
}

/// One heartbeat: the local gateway's metrics (or why there are none: `degraded`). A refused
/// relay token (the gateway was deleted, or registered again elsewhere) goes to `refused`.
async fn beat(
    settings: Settings,
    gateway_id: uuid::Uuid,
    relay_token: String,
    seed: Vec<u8>,
    refused: mpsc::UnboundedSender<String>,
) {
    let (status, metrics) = match local::metrics(&settings, &seed).await {
        Ok(metrics) => ("online", metrics),
        Err(e) => {
            tracing::warn!(error = %e, "local gateway not answering");
            ("degraded", json!({"error": e}))
        }
    };
    let body = json!({"gateway_id": gateway_id, "relay_token": relay_token, "status": status, "metrics": metrics});
    let sent = mission_control::outbound::client(Duration::from_secs(10))
        .post(settings.endpoint("/api/v1/gateway-registry/heartbeat"))
        .send_json(&body)
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => {}
        Ok(answer) if [401, 404].contains(&answer.status().as_u16()) => {
            let _ = refused.send(format!("heartbeat answered {}", answer.status()));
        }
        Ok(answer) => tracing::warn!(status = %answer.status(), "heartbeat refused"),
        Err(e) => tracing::warn!(error = %e, "heartbeat not sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_address_is_read_from_the_url() {
        assert_eq!(local_address("ws://127.0.0.1:18789"), "127.0.0.1:18789");
        assert_eq!(local_address("ws://localhost:4000/x"), "localhost:4000");
        assert_eq!(local_address("ws://gateway"), "gateway:18789");
        for attempt in 1..10 {
            let wait = backoff(attempt);
            assert!(wait >= Duration::from_millis(250) && wait <= Duration::from_secs(30));
        }
    }
}
