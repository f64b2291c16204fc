//! `GatewayMonitor`: one per instance, supervised. Periodically marks gateways offline whose
//! last heartbeat (HTTP or relay frame) is older than GATEWAY_OFFLINE_THRESHOLD_SECONDS.
//! Every instance sweeps; the sweep is one conditional UPDATE, so each transition is
//! recorded once however many instances run it.

use std::time::Duration;

use actix::prelude::*;

use crate::db::PgPool;
use crate::domain::gateways::registry as gateway_registry;

pub struct GatewayMonitor {
    db: PgPool,
    threshold: Duration,
    instance_id: String,
    sweeping: bool,
}

impl GatewayMonitor {
    pub fn new(db: PgPool, threshold: Duration, instance_id: String) -> GatewayMonitor {
        GatewayMonitor {
            db,
            threshold,
            instance_id,
            sweeping: false,
        }
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
            let conn = db.get().await.map_err(|e| e.to_string())?;
            gateway_registry::sweep_offline(&*conn, threshold, &instance_id)
                .await
                .map_err(|e| e.to_string())
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
    }
}

impl Supervised for GatewayMonitor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.sweeping = false;
    }
}
