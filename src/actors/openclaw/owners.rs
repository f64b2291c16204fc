//! `GatewayOwners`: this instance's share of the gateways we dial. Every few seconds it
//! renews its leases and takes free ones (`dialing::hold_leases`), starts a `GatewayClient`
//! for each gateway it newly holds, and stops the client of each one it no longer holds (the
//! gateway was deleted or re-pointed, or the lease was lost). An instance that cannot renew
//! stops its clients before its leases can expire, so two instances never hold one gateway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use uuid::Uuid;

use super::client::{ClientDeps, GatewayClient, Purpose, Stop};
use super::DeviceCell;
use crate::actors::gateway_link::LinkDeps;
use crate::domain::gateways::dialing::{self, DialTarget};

/// Gateways an instance takes per renewal: instances that start together share them.
const TAKE_PER_TICK: i64 = 50;
/// After a renewal that took a whole batch, the next one comes this soon (a thousand free
/// gateways are held within seconds, still shared with instances starting alongside).
const TAKE_AGAIN: Duration = Duration::from_millis(250);

pub struct GatewayOwners {
    link: LinkDeps,
    device: DeviceCell,
    clients: HashMap<Uuid, (DialTarget, Addr<GatewayClient>)>,
    renewed: Instant,
    busy: bool,
    released: bool,
}

/// Gives up every lease and stops every client (graceful shutdown): another instance takes
/// the gateways at its next renewal instead of after the leases expire.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release;

impl GatewayOwners {
    pub fn new(link: LinkDeps, device: DeviceCell) -> GatewayOwners {
        GatewayOwners {
            link,
            device,
            clients: HashMap::new(),
            renewed: Instant::now(),
            busy: false,
            released: false,
        }
    }

    fn lease(&self) -> Duration {
        self.link.settings.gateway.lease
    }

    fn renew(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.released {
            return;
        }
        self.busy = true;
        let (link, device, ttl) = (self.link.clone(), self.device.clone(), self.lease());
        let held = async move {
            let device = super::device_key(&link, &device).await?;
            let conn = link.db.get().await.map_err(|e| e.to_string())?;
            let held = dialing::hold_leases(&*conn, &link.settings.instance_id, ttl, TAKE_PER_TICK)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((device, held))
        };
        ctx.spawn(held.into_actor(self).map(|result, act, ctx| {
            act.busy = false;
            if act.released {
                return;
            }
            match result {
                Ok((device, held)) => {
                    act.renewed = Instant::now();
                    let taken = held
                        .iter()
                        .filter(|t| !act.clients.contains_key(&t.id))
                        .count();
                    if taken as i64 >= TAKE_PER_TICK {
                        ctx.run_later(TAKE_AGAIN, |act, ctx| act.renew(ctx));
                    }
                    act.adopt(
                        held,
                        ClientDeps {
                            link: act.link.clone(),
                            device,
                        },
                        ctx,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "gateway leases not renewed");
                    // Our leases may lapse: stop before another instance can take them.
                    if act.renewed.elapsed() > act.lease() * 2 / 3 {
                        act.stop_all();
                    }
                }
            }
        }));
    }

    fn adopt(&mut self, held: Vec<DialTarget>, deps: ClientDeps, _: &mut Context<Self>) {
        let held: HashMap<Uuid, DialTarget> = held.into_iter().map(|t| (t.id, t)).collect();
        self.clients.retain(|id, (target, client)| {
            // Same gateway, same address and token: keep the connection.
            let keep = held.get(id).is_some_and(|now| {
                now.url == target.url
                    && now.token == target.token
                    && now.workspace_root == target.workspace_root
            });
            if !keep {
                client.do_send(Stop);
            }
            keep
        });
        for (id, target) in held {
            if self.clients.contains_key(&id) {
                continue;
            }
            tracing::info!(gateway_id = %id, url = %target.url, "holding gateway");
            let client = GatewayClient::new(deps.clone(), target.clone(), Purpose::Hold).start();
            self.clients.insert(id, (target, client));
        }
    }

    fn stop_all(&mut self) {
        for (_, (_, client)) in self.clients.drain() {
            client.do_send(Stop);
        }
    }
}

impl Actor for GatewayOwners {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.renew(ctx);
        ctx.run_interval(self.lease() / 3, |act, ctx| act.renew(ctx));
    }
}

impl Supervised for GatewayOwners {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.stop_all();
        self.busy = false;
    }
}

impl Handler<Release> for GatewayOwners {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Release, _: &mut Context<Self>) -> Self::Result {
        self.stop_all();
        // No more renewals: the leases are given up below.
        self.released = true;
        let link = self.link.clone();
        Box::pin(
            async move {
                if let Ok(conn) = link.db.get().await {
                    if let Err(e) =
                        dialing::release_lease(&*conn, None, &link.settings.instance_id).await
                    {
                        tracing::warn!(error = %e, "gateway leases not released");
                    }
                }
            }
            .into_actor(self),
        )
    }
}
