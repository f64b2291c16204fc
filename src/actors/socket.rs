//! What every WebSocket actor shares: sending `protocol` frames, error frames, closing with
//! a `protocol::codes::Close`, and the per-instance connection limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, StreamHandler};
use actix_http::ws::Item;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, CloseReason};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::config::WsSettings;
use crate::protocol::codes::{Close, ErrorCode};
use crate::protocol::{self, ErrorFrame};

pub type Ctx<A> = ws::WebsocketContext<A>;

/// Runs `work` as a task of its own; the future answers its output. For work a socket
/// actor starts with `ctx.spawn` that takes a pooled connection: the actor's `ctx.wait`
/// stops its other futures until it is done, and a stopped future keeps its connection
/// (and its transaction's row locks). A wait that then needs a connection itself — or any
/// other socket's — waited on connections nobody gave back: the whole pool was held this
/// way, and H5 chat stalled from 600 messages a second.
pub fn detached<F>(work: F) -> impl std::future::Future<Output = F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    let task = actix::spawn(work);
    async move {
        match task.await {
            Ok(output) => output,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Cancelled: the runtime, and this actor with it, is stopping.
                Err(_) => std::future::pending().await,
            },
        }
    }
}

/// Sends one of the `protocol` frames.
pub fn send<A: Actor<Context = Ctx<A>>>(ctx: &mut Ctx<A>, frame: &impl Serialize) {
    ctx.text(protocol::text(frame));
}

/// An `ErrorFrame` answering the frame with id `id`; the socket stays open.
pub fn error<A: Actor<Context = Ctx<A>>>(
    ctx: &mut Ctx<A>,
    id: Option<&Value>,
    code: ErrorCode,
    message: &str,
) {
    send(ctx, &ErrorFrame::new(id, code, message));
}

pub fn close<A: Actor<Context = Ctx<A>>>(ctx: &mut Ctx<A>, code: Close, reason: &str) {
    ctx.close(Some(CloseReason {
        code: code.code().into(),
        description: Some(reason.to_string()),
    }));
    ctx.stop();
}

/// Frames above this end the connection (1009); frames above WS_MAX_FRAME_BYTES but below
/// it are answered with an error and the socket stays usable.
pub const PROTOCOL_FRAME_LIMIT: usize = 16 << 20;

/// Refuses a frame over the application limit; `true` when it was refused.
pub fn too_large<A: Actor<Context = Ctx<A>>>(ctx: &mut Ctx<A>, len: usize, limit: usize) -> bool {
    if len <= limit {
        return false;
    }
    error(
        ctx,
        None,
        ErrorCode::FrameTooLarge,
        &format!("frames are limited to {limit} bytes"),
    );
    true
}

/// Admits a socket that got one of the instance's connection slots: it is closed with 1001
/// as soon as shutdown begins, authenticated or not (a socket still waiting for its auth
/// frame is in no registry). One without a slot is closed at once: 1013 when all are
/// taken, 1001 when the instance is shutting down. `false` when it was refused.
pub fn admit<A>(ctx: &mut Ctx<A>, slot: &Slot) -> bool
where
    A: Actor<Context = Ctx<A>> + StreamHandler<Result<ws::Message, ws::ProtocolError>>,
{
    match slot {
        Ok(slot) => {
            let mut closing = slot.0.closing.subscribe();
            let closed = async move {
                let _ = closing.wait_for(|closing| *closing).await;
            };
            ctx.spawn(
                actix::fut::wrap_future::<_, A>(closed)
                    .map(|(), _, ctx| close(ctx, Close::GoingAway, "server shutting down")),
            );
            true
        }
        Err(NoSlot::Full) => {
            close(
                ctx,
                Close::TryAgainLater,
                "server at connection limit, retry",
            );
            false
        }
        Err(NoSlot::ShuttingDown) => {
            close(ctx, Close::GoingAway, "server shutting down");
            false
        }
    }
}

/// Pings the client every WS_HEARTBEAT_INTERVAL_SECONDS and closes the socket (4008) when
/// nothing came for WS_HEARTBEAT_TIMEOUT_SECONDS; `on_tick` runs after each ping.
pub fn keep_alive<A, F>(
    ctx: &mut Ctx<A>,
    ws: &WsSettings,
    last_frame: fn(&A) -> Instant,
    on_tick: F,
) where
    A: Actor<Context = Ctx<A>>,
    F: Fn(&mut A, &mut Ctx<A>) + 'static,
{
    let timeout = ws.heartbeat_timeout;
    ctx.run_interval(ws.heartbeat_interval, move |act, ctx| {
        if last_frame(act).elapsed() > timeout {
            return close(ctx, Close::HeartbeatTimeout, "heartbeat timeout");
        }
        ctx.ping(b"");
        on_tick(act, ctx);
    });
}

/// A text message arriving in fragments (continuation frames), until its last one.
#[derive(Default)]
pub struct Fragments(Option<(bool, BytesMut)>);

/// What a socket does with an incoming message: answers pings, closes on a close or a
/// protocol error, reassembles fragmented messages (at most `PROTOCOL_FRAME_LIMIT` bytes,
/// like a whole one), refuses binary ones, and hands back whole text messages.
pub fn incoming<A: Actor<Context = Ctx<A>>>(
    msg: Result<ws::Message, ws::ProtocolError>,
    fragments: &mut Fragments,
    ctx: &mut Ctx<A>,
) -> Option<String> {
    match msg {
        Err(ws::ProtocolError::Overflow) => close(ctx, Close::TooLarge, "frame larger than 16 MiB"),
        Err(e) => {
            tracing::debug!(error = %e, "websocket protocol error");
            close(ctx, Close::ProtocolError, "protocol error");
        }
        Ok(ws::Message::Text(text)) => return Some(text.to_string()),
        Ok(ws::Message::Continuation(item)) => return fragment(item, fragments, ctx),
        Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
        Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
        Ok(ws::Message::Binary(_)) => binary(ctx),
        Ok(ws::Message::Close(reason)) => {
            ctx.close(reason);
            ctx.stop();
        }
    }
    None
}

fn binary<A: Actor<Context = Ctx<A>>>(ctx: &mut Ctx<A>) {
    error(
        ctx,
        None,
        ErrorCode::BinaryNotSupported,
        "send JSON text frames",
    );
}

fn fragment<A: Actor<Context = Ctx<A>>>(
    item: Item,
    fragments: &mut Fragments,
    ctx: &mut Ctx<A>,
) -> Option<String> {
    let (first, part, last) = match item {
        Item::FirstText(part) => (Some(true), part, false),
        Item::FirstBinary(part) => (Some(false), part, false),
        Item::Continue(part) => (None, part, false),
        Item::Last(part) => (None, part, true),
    };
    if let Some(text) = first {
        fragments.0 = Some((text, BytesMut::new()));
    }
    let Some((_, buffer)) = &mut fragments.0 else {
        close(
            ctx,
            Close::ProtocolError,
            "continuation without a first fragment",
        );
        return None;
    };
    if buffer.len() + part.len() > PROTOCOL_FRAME_LIMIT {
        fragments.0 = None;
        close(ctx, Close::TooLarge, "message larger than 16 MiB");
        return None;
    }
    buffer.extend_from_slice(&part);
    if !last {
        return None;
    }
    let (text, buffer) = fragments.0.take()?;
    if !text {
        binary(ctx);
        return None;
    }
    match String::from_utf8(buffer.to_vec()) {
        Ok(whole) => Some(whole),
        Err(_) => {
            close(ctx, Close::ProtocolError, "a text message must be UTF-8");
            None
        }
    }
}

/// Refuses a frame that holds a NUL character (`\u0000`): PostgreSQL cannot store one, and
/// a client that sent one would get the same answer however often it tried. `INVALID_TEXT`
/// names the field; the socket stays open. `true` when it was refused.
pub fn refuse_nul<A: Actor<Context = Ctx<A>>>(ctx: &mut Ctx<A>, text: &str) -> bool {
    let Some((id, path)) = protocol::nul::in_frame(text) else {
        return false;
    };
    let message = format!("{path} holds a NUL character (\\u0000), which cannot be stored");
    error(ctx, id.as_ref(), ErrorCode::InvalidText, &message);
    true
}

/// The bytes a socket has queued for its client that the client has not taken yet. The
/// socket glue buffers outbound frames without a bound, so the actor counts what it queues
/// and the response stream counts what the transport takes (which stops when the client
/// stops reading).
#[derive(Clone, Default)]
pub struct Outbox(Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicBool>);

impl Outbox {
    /// Marks the socket too slow; `true` the first time only.
    pub fn mark_too_slow(&self) -> bool {
        !self.1.swap(true, Ordering::AcqRel)
    }

    /// Counts `len` more bytes unless that would exceed `limit`; `false` means the client is
    /// too slow and the socket should be closed.
    pub fn admit(&self, len: usize, limit: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + len <= limit).then_some(queued + len)
            })
            .is_ok()
    }

    /// Frees bytes that were counted but will never reach the wire (a frame the socket
    /// chose not to send).
    pub fn release(&self, len: usize) {
        self.taken(len);
    }

    fn taken(&self, len: usize) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                Some(queued.saturating_sub(len))
            });
    }
}

/// Starts a socket actor, with frames up to PROTOCOL_FRAME_LIMIT and its outbound bytes
/// counted in `outbox`.
pub fn start<A>(
    actor: A,
    outbox: Outbox,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error>
where
    A: Actor<Context = Ctx<A>> + StreamHandler<Result<ws::Message, ws::ProtocolError>>,
{
    let mut res = ws::handshake(req)?;
    let codec = actix_http::ws::Codec::new().max_size(PROTOCOL_FRAME_LIMIT);
    let body = ws::WebsocketContext::with_codec(actor, payload, codec).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            outbox.taken(bytes.len());
        }
        chunk
    });
    Ok(res.streaming(body))
}

/// The instance's open sockets, and whether it still takes new ones (not once shutdown has
/// begun: a socket that opened after the others were told to close would keep the process
/// up).
#[derive(Debug)]
pub struct Sockets {
    open: AtomicUsize,
    /// `true` once shutdown began; every admitted socket watches it (`admit`).
    closing: watch::Sender<bool>,
}

impl Default for Sockets {
    fn default() -> Sockets {
        Sockets {
            open: AtomicUsize::new(0),
            closing: watch::Sender::new(false),
        }
    }
}

impl Sockets {
    /// How many are open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Closes every socket with 1001, and refuses every new one from now on; answers how
    /// many were open.
    pub fn close(&self) -> usize {
        self.closing.send_replace(true);
        self.open.load(Ordering::Acquire)
    }
}

/// One of the instance's WS_MAX_CONNECTIONS_PER_INSTANCE socket slots, given back on drop.
pub struct ConnectionSlot(Arc<Sockets>);

/// Why a socket got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    Full,
    ShuttingDown,
}

pub type Slot = Result<ConnectionSlot, NoSlot>;

impl ConnectionSlot {
    pub fn take(sockets: &Arc<Sockets>, max: usize) -> Slot {
        if *sockets.closing.borrow() {
            return Err(NoSlot::ShuttingDown);
        }
        sockets
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| ConnectionSlot(sockets.clone()))
            .map_err(|_| NoSlot::Full)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_refuses_past_its_limit_and_frees_what_is_taken() {
        let outbox = Outbox::default();
        assert!(outbox.admit(60, 100));
        assert!(!outbox.admit(50, 100));
        outbox.taken(30);
        assert!(outbox.admit(50, 100));
        outbox.taken(1000);
        assert!(outbox.admit(100, 100));
    }

    #[test]
    fn slots_are_limited_and_given_back() {
        let counter = Arc::new(Sockets::default());
        let a = ConnectionSlot::take(&counter, 2).unwrap();
        let _b = ConnectionSlot::take(&counter, 2).unwrap();
        assert_eq!(ConnectionSlot::take(&counter, 2).err(), Some(NoSlot::Full));
        drop(a);
        assert!(ConnectionSlot::take(&counter, 2).is_ok());
        counter.close();
        assert_eq!(
            ConnectionSlot::take(&counter, 2).err(),
            Some(NoSlot::ShuttingDown)
        );
    }
}
