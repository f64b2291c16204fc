//! `Tunnel`: the far end of a connector's OpenClaw tunnel (`protocol::tunnel`), one per relay
//! link that asked for it. It listens on a loopback port of this instance and runs the
//! gateway's `GatewayClient` against that port, so the client is the very one used for
//! gateways we dial — only its bytes travel over the link: each TCP connection the client
//! opens becomes a tunnelled stream, which the connector joins to the local gateway.
//!
//! The link owns the tunnel: it forwards what the connector sends (`FromConnector`) and
//! writes what the tunnel hands it (`ToConnector`); when the link ends, the tunnel stops,
//! and with it the client and every stream.

use std::collections::HashMap;

use actix::prelude::*;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::client::{ClientDeps, GatewayClient, Purpose, Stop};
use crate::actors::registry::Control;
use crate::domain::gateways::dialing::DialTarget;
use crate::protocol::{text, tunnel};

/// What the link writes to the connector.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ToConnector {
    Text(String),
    Binary(Bytes),
}

/// What the connector sent on the link, for the tunnel.
#[derive(Message)]
#[rtype(result = "()")]
pub enum FromConnector {
    /// A binary frame (`[stream][bytes]`).
    Data(Bytes),
    /// `tunnel.close`: the connector's end of the stream is gone.
    Closed(u32),
}

/// What happens on this instance's side of the streams.
#[derive(Message)]
#[rtype(result = "()")]
enum Local {
    Read(u32, Bytes),
    Ended(u32),
}

pub struct Tunnel {
    link: Recipient<ToConnector>,
    /// The link's own door, for a revocation of the gateway.
    control: Recipient<Control>,
    deps: ClientDeps,
    /// The gateway's target; its `url` is set to the loopback port once it is bound.
    target: DialTarget,
    client: Option<Addr<GatewayClient>>,
    /// The writer of each open stream (to the client's TCP connection).
    streams: HashMap<u32, mpsc::UnboundedSender<Bytes>>,
    next: u32,
}

impl Tunnel {
    pub fn new(
        link: Recipient<ToConnector>,
        control: Recipient<Control>,
        deps: ClientDeps,
        target: DialTarget,
    ) -> Tunnel {
        Tunnel {
            link,
            control,
            deps,
            target,
            client: None,
            streams: HashMap::new(),
            next: 0,
        }
    }

    /// Tells the connector to close its end of `stream`.
    fn tell_closed(&self, stream: u32) {
        let close = text(&tunnel::Control::close(stream, None));
        self.link.do_send(ToConnector::Text(close));
    }
}

impl Actor for Tunnel {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let bound = async move {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            let port = listener.local_addr()?.port();
            Ok::<_, std::io::Error>((listener, port))
        };
        ctx.wait(bound.into_actor(self).map(|bound, act, ctx| match bound {
            Ok((listener, port)) => {
                // The actor's own stream: the port is closed when the tunnel stops.
                let accepted = futures_util::stream::unfold(listener, |listener| async move {
                    let accepted = listener.accept().await.map(|(socket, _)| socket);
                    Some((accepted, listener))
                });
                ctx.add_stream(accepted);
                let mut target = act.target.clone();
                target.url = format!("ws://127.0.0.1:{port}");
                tracing::info!(gateway_id = %target.id, port, "openclaw tunnel listening");
                let purpose = Purpose::Tunnelled(act.control.clone());
                act.client = Some(GatewayClient::new(act.deps.clone(), target, purpose).start());
            }
            Err(e) => {
                tracing::error!(gateway_id = %act.target.id, error = %e, "openclaw tunnel not bound");
                ctx.stop();
            }
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(client) = self.client.take() {
            client.do_send(Stop);
        }
        self.streams.clear();
    }
}

impl Handler<Stop> for Tunnel {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl StreamHandler<std::io::Result<TcpStream>> for Tunnel {
    fn handle(&mut self, accepted: std::io::Result<TcpStream>, ctx: &mut Context<Self>) {
        match accepted {
            Ok(socket) => self.accepted(socket, ctx),
            Err(e) => {
                tracing::warn!(gateway_id = %self.target.id, error = %e, "tunnel accept failed")
            }
        }
    }

    /// The listener never ends by itself; the tunnel ends when its link does.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Tunnel {
    /// A connection of the client: a new stream, opened at the connector, bytes both ways.
    fn accepted(&mut self, socket: TcpStream, ctx: &mut Context<Self>) {
        self.next = self.next.wrapping_add(1);
        let stream = self.next;
        let (mut read, mut write) = socket.into_split();
        let (writer, mut queue) = mpsc::unbounded_channel::<Bytes>();
        self.streams.insert(stream, writer);
        actix::spawn(async move {
            while let Some(bytes) = queue.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
        self.link
            .do_send(ToConnector::Text(text(&tunnel::Control::open(stream))));
        let me = ctx.address();
        actix::spawn(async move {
            let mut buffer = vec![0u8; tunnel::CHUNK];
            loop {
                match read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let bytes = Bytes::copy_from_slice(&buffer[..n]);
                        // `send` waits for room in the mailbox (the next read waits for this
                        // one to be handed to the link): fails only when the tunnel is gone.
                        if me.send(Local::Read(stream, bytes)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            me.do_send(Local::Ended(stream));
        });
    }
}

impl Handler<Local> for Tunnel {
    type Result = ();

    fn handle(&mut self, msg: Local, _: &mut Context<Self>) {
        match msg {
            Local::Read(stream, bytes) => {
                if self.streams.contains_key(&stream) {
                    let frame = tunnel::data(stream, &bytes);
                    self.link.do_send(ToConnector::Binary(frame.into()));
                }
            }
            // Dropping a writer ends its task, which shuts the client's connection down.
            Local::Ended(stream) => {
                if self.streams.remove(&stream).is_some() {
                    self.tell_closed(stream);
                }
            }
        }
    }
}

impl Handler<FromConnector> for Tunnel {
    type Result = ();

    fn handle(&mut self, msg: FromConnector, _: &mut Context<Self>) {
        match msg {
            FromConnector::Data(frame) => {
                let Some((stream, bytes)) = tunnel::read_data(&frame) else {
                    return;
                };
                let delivered = self
                    .streams
                    .get(&stream)
                    .is_some_and(|writer| writer.send(bytes).is_ok());
                if !delivered {
                    // Bytes for a stream this side no longer has: the connector closes its end.
                    self.streams.remove(&stream);
                    self.tell_closed(stream);
                }
            }
            FromConnector::Closed(stream) => {
                self.streams.remove(&stream);
            }
        }
    }
}
