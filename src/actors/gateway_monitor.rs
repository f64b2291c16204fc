//! `GatewayMonitor`: one per instance, supervised. Periodically marks gateways offline whose
//! last heartbeat (HTTP or relay frame) is older than GATEWAY_OFFLINE_THRESHOLD_SECONDS.
//! Every instance sweeps; the sweep is one conditional UPDATE, so each transition is
//! recorded once however many instances run it.
//!
//! It also wakes this instance's gateway senders that have work due. A request or H5
//! message stored on another instance wakes its gateway's sender over the bus, which loses
//! wake-ups while Redis is away; what a sender knew of it arms its own timer. So every
//! `delivery::RESEND_AFTER` one query asks which of the gateways held here have a request
//! or message due, and those are told to flush (one query per instance, not per gateway).

use std::time::Duration;

use actix::prelude::*;

use super::registry::{Address, LocalGateways, Router};
use crate::db::PgPool;
use crate::domain::gateways::registry as gateway_registry;
use crate::domain::h5::delivery;
use crate::domain::outbox::commands as gateway_commands;
use crate::protocol::bus::RouteMessage;

pub struct GatewayMonitor {
    db: PgPool,
    threshold: Duration,
    instance_id: String,
    router: Router,
    sweeping: bool,
    waking: bool,
}

impl GatewayMonitor {
    pub fn new(
        db: PgPool,
        threshold: Duration,
        instance_id: String,
        router: Router,
    ) -> GatewayMonitor {
        GatewayMonitor {
            db,
            threshold,
            instance_id,
            router,
            sweeping: false,
            waking: false,
        }
    }

    /// Tells the senders held here that have a request or H5 message due to flush.
    fn wake_due(&mut self, ctx: &mut Context<Self>) {
        if self.waking {
            return;
        }
        self.waking = true;
        let (db, router) = (self.db.clone(), self.router.clone());
        let work = async move {
            let held = router
                .registry()
                .send(LocalGateways)
                .await
                .map_err(|e| e.to_string())?;
            if held.is_empty() {
                return Ok(Vec::new());
            }
            let conn = db.get().await.map_err(|e| e.to_string())?;
            let mut due = gateway_commands::gateways_due(&*conn, &held)
                .await
                .map_err(|e| e.to_string())?;
            due.extend(
                delivery::gateways_due(&*conn, &held)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            due.sort_unstable();
            due.dedup();
            Ok::<_, String>(due)
        };
        ctx.spawn(work.into_actor(self).map(|result, act, _| {
            act.waking = false;
            match result {
                Ok(due) => {
                    for gateway_id in due {
                        act.router
                            .tell(Address::Gateway(gateway_id), RouteMessage::Flush);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "due gateway work not looked for"),
            }
        }));
    }

    /// A quarter of the threshold, so a gateway is marked at most 25% late.
    fn period(&self) -> Duration {
        (self.threshold / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let (db, threshold, instance_id) =
            (self.db.clone(), self.threshold, self.instance_id.clone());
        let work = async move {
            let mut conn = db.get().await.map_err(|e| e.to_string())?;
            let tx = conn.transaction().await.map_err(|e| e.to_string())?;
            let ids = gateway_registry::sweep_offline(&tx, threshold, &instance_id)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(ids)
        };
        ctx.spawn(work.into_actor(self).map(|result, act, _| {
            act.sweeping = false;
            match result {
                Ok(ids) if !ids.is_empty() => {
                    tracing::info!(gateways = ?ids, "gateways marked offline: no heartbeat")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "gateway offline sweep failed"),
            }
        }));
    }
}

impl Actor for GatewayMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.period(), |act, ctx| act.sweep(ctx));
        ctx.run_interval(delivery::RESEND_AFTER, |act, ctx| act.wake_due(ctx));
    }
}

impl Supervised for GatewayMonitor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.sweeping = false;
        self.waking = false;
    }
}
