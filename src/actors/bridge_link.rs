//! The Bridge's Redis pub/sub connection: one task that connects, subscribes to every
//! wanted channel, forwards publications to the Bridge, and on any failure reconnects with
//! backoff and resubscribes everything. Losing subscriptions silently after a reconnect is
//! the classic failure of such bridges, so the wanted set lives here and is replayed on
//! every connect, and a quiet connection is pinged so a half-open socket is noticed.

use std::collections::HashSet;
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use super::bridge::{Bridge, Delivered, LinkState};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
const KEEPALIVE: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) enum LinkCommand {
    Subscribe(String),
    Unsubscribe(String),
}

enum Ended {
    /// The Bridge is gone: stop for good.
    BridgeStopped,
    /// The connection failed: reconnect.
    Lost(String),
}

pub(super) fn spawn(
    client: redis::Client,
    channels: Vec<String>,
    bridge: Addr<Bridge>,
) -> mpsc::UnboundedSender<LinkCommand> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(client, channels.into_iter().collect(), rx, bridge));
    tx
}

async fn run(
    client: redis::Client,
    mut wanted: HashSet<String>,
    mut commands: mpsc::UnboundedReceiver<LinkCommand>,
    bridge: Addr<Bridge>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match connect(&client, &wanted).await {
            Ok((mut sink, mut stream)) => {
                backoff = MIN_BACKOFF;
                bridge.do_send(LinkState { up: true });
                let ended = pump(&mut sink, &mut stream, &mut wanted, &mut commands, &bridge).await;
                bridge.do_send(LinkState { up: false });
                match ended {
                    Ended::BridgeStopped => return,
                    Ended::Lost(why) => {
                        tracing::warn!(error = %why, "redis pub/sub connection lost")
                    }
                }
            }
            Err(why) => {
                tracing::warn!(error = %why, retry_in_ms = backoff.as_millis() as u64, "redis pub/sub connect failed")
            }
        }
        // Keep the wanted set current while waiting, so the next connect replays it.
        let deadline = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = sleep_until(deadline) => break,
                command = commands.recv() => match command {
                    Some(command) => apply(&mut wanted, &command),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn apply(wanted: &mut HashSet<String>, command: &LinkCommand) {
    match command {
        LinkCommand::Subscribe(channel) => wanted.insert(channel.clone()),
        LinkCommand::Unsubscribe(channel) => wanted.remove(channel),
    };
}

async fn connect(
    client: &redis::Client,
    wanted: &HashSet<String>,
) -> Result<(PubSubSink, PubSubStream), String> {
    let pubsub = timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = pubsub.split();
    if !wanted.is_empty() {
        let channels: Vec<&String> = wanted.iter().collect();
        bounded(sink.subscribe(channels)).await?;
    }
    Ok((sink, stream))
}

async fn bounded<T>(
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    timeout(COMMAND_TIMEOUT, op)
        .await
        .map_err(|_| "redis command timed out".to_string())?
        .map_err(|e| e.to_string())
}

async fn pump(
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    wanted: &mut HashSet<String>,
    commands: &mut mpsc::UnboundedReceiver<LinkCommand>,
    bridge: &Addr<Bridge>,
) -> Ended {
    let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => {
                    keepalive.reset();
                    bridge.do_send(Delivered {
                        channel: message.get_channel_name().to_string(),
                        payload: message.get_payload_bytes().to_vec(),
                    });
                }
                None => return Ended::Lost("connection closed".into()),
            },
            command = commands.recv() => {
                let Some(command) = command else { return Ended::BridgeStopped };
                apply(wanted, &command);
                let sent = match &command {
                    LinkCommand::Subscribe(channel) => bounded(sink.subscribe(channel)).await,
                    LinkCommand::Unsubscribe(channel) => bounded(sink.unsubscribe(channel)).await,
                };
                if let Err(why) = sent {
                    return Ended::Lost(why);
                }
            }
            _ = keepalive.tick() => {
                if let Err(why) = bounded(sink.ping::<redis::Value>()).await {
                    return Ended::Lost(format!("keepalive ping failed: {why}"));
                }
            }
        }
    }
}
