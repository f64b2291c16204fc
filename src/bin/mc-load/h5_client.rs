//! One H5 user's chat client, as a real app should be: it sends while connected, keeps
//! what the server has not acknowledged and sends it again (same id) after a reconnect,
//! reconnects with backoff to the next server when its socket ends, and resumes after the
//! last `seq` it saw. So what `mc-load h5` counts as lost or duplicated is the server's
//! doing, not the tool's.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{open, ws_url, Framed};

/// What all the clients saw.
#[derive(Default)]
pub struct Seen {
    /// Message id → when it was (first) sent, until its reply arrives.
    pub waiting: HashMap<String, Instant>,
    /// Round trips, µs.
    pub rtts: Vec<u64>,
    /// Messages the server acknowledged (`stored`, or `GATEWAY_OFFLINE`: stored, sent later).
    pub acked: u64,
    /// Messages refused for good (an error frame other than GATEWAY_OFFLINE / INTERNAL).
    pub refused: u64,
    /// Reply frames of a `seq` the client had seen already.
    pub duplicates: u64,
    /// Replies (of a new `seq`) to a message answered already.
    pub answered_twice: u64,
    /// Sockets that ended and were opened again.
    pub reconnects: u64,
}

/// The first wait before reconnecting, doubled up to `BACKOFF_MAX`.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub struct Client {
    pub servers: Rc<Vec<String>>,
    /// The server it is connected to (an index into `servers`).
    pub at: usize,
    pub token: String,
    pub seen: Rc<RefCell<Seen>>,
}

impl Client {
    /// Runs until `outgoing` closes: each item is (message id, chat frame). `socket` is the
    /// socket already authenticated at `servers[at]`.
    pub async fn run(
        self,
        socket: Framed,
        mut outgoing: mpsc::UnboundedReceiver<(String, String)>,
    ) {
        let mut socket = Some(socket);
        let mut last_seq: Option<i64> = None;
        // Sent and not acknowledged yet, in sending order.
        let mut unacked: BTreeMap<u64, (String, String)> = BTreeMap::new();
        let mut next = 0u64;
        let mut at = self.at;
        let mut backoff = BACKOFF_FIRST;
        loop {
            let framed = match socket.take() {
                Some(framed) => framed,
                None => {
                    let mut auth = json!({"type": "auth", "payload": {"token": self.token}});
                    if let Some(seq) = last_seq {
                        auth["payload"]["last_seq"] = json!(seq);
                    }
                    match open(&ws_url(&self.servers[at], "/ws/h5/chat"), auth).await {
                        Ok(framed) => framed,
                        Err(_) => {
                            at = (at + 1) % self.servers.len();
                            actix_web::rt::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            continue;
                        }
                    }
                }
            };
            backoff = BACKOFF_FIRST;
            let (mut sink, mut stream) = framed.split();
            let mut alive = true;
            for (_, frame) in unacked.values() {
                alive &= sink
                    .send(ws::Message::Text(frame.clone().into()))
                    .await
                    .is_ok();
            }
            while alive {
                tokio::select! {
                    out = outgoing.recv() => {
                        let Some((id, frame)) = out else { return };
                        unacked.insert(next, (id, frame.clone()));
                        next += 1;
                        alive = sink.send(ws::Message::Text(frame.into())).await.is_ok();
                    }
                    frame = stream.next() => match frame {
                        Some(Ok(ws::Frame::Text(bytes))) => {
                            let frame: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            self.on_frame(&frame, &mut last_seq, &mut unacked);
                        }
                        Some(Ok(ws::Frame::Ping(p))) => {
                            alive = sink.send(ws::Message::Pong(p)).await.is_ok();
                        }
                        Some(Ok(ws::Frame::Close(_))) | Some(Err(_)) | None => alive = false,
                        Some(Ok(_)) => {}
                    },
                }
            }
            self.seen.borrow_mut().reconnects += 1;
            at = (at + 1) % self.servers.len();
        }
    }

    fn on_frame(
        &self,
        frame: &Value,
        last_seq: &mut Option<i64>,
        unacked: &mut BTreeMap<u64, (String, String)>,
    ) {
        let mut seen = self.seen.borrow_mut();
        let id = frame["id"].as_str().unwrap_or_default();
        let mut settle = |seen: &mut Seen, acked: bool| {
            let before = unacked.len();
            unacked.retain(|_, (sent, _)| sent != id);
            if unacked.len() < before {
                match acked {
                    true => seen.acked += 1,
                    false => seen.refused += 1,
                }
            }
        };
        match frame["type"].as_str().unwrap_or_default() {
            "chat_ack" if frame["payload"]["status"] == "stored" => settle(&mut seen, true),
            "error" => match frame["payload"]["code"].as_str().unwrap_or_default() {
                "GATEWAY_OFFLINE" => settle(&mut seen, true),
                // Not stored: sent again with the others after the next reconnect.
                "INTERNAL" => {}
                _ => settle(&mut seen, false),
            },
            kind @ ("chat_reply" | "chat_message") => {
                let seq = frame["payload"]["seq"].as_i64();
                if let (Some(seq), Some(last)) = (seq, *last_seq) {
                    if seq <= last {
                        seen.duplicates += 1;
                        return;
                    }
                }
                *last_seq = seq.or(*last_seq);
                if kind == "chat_reply" {
                    // The content is the message id; an OpenClaw gateway quotes it
                    // ("You said: m-7").
                    let content = frame["payload"]["content"].as_str().unwrap_or_default();
                    let key = content.rsplit(' ').next().unwrap_or_default();
                    match seen.waiting.remove(key) {
                        Some(at) => seen.rtts.push(at.elapsed().as_micros() as u64),
                        None => seen.answered_twice += 1,
                    }
                }
            }
            _ => {}
        }
    }
}
