//! Gateways we dial: OpenClaw's operator protocol (`protocol::openclaw`,
//! docs/gateway-protocol.md §8).
//!
//! - `GatewayOwners` (one per instance) holds leases (`domain::gateways::dialing`): exactly
//!   one instance holds each dialled gateway, because every chat event of a gateway reaches
//!   every operator connection and two holders would deliver each reply twice.
//! - `GatewayClient` (one per held gateway) is that one connection: the signed handshake,
//!   calls correlated by id, events, reconnects with backoff and jitter. It registers in the
//!   local registry exactly like a relay link, so the `Router` reaches it from any instance
//!   (a flush of recorded requests, an H5 user's message) and the callers' answers go back
//!   through `RpcReplies` as for a link.
//! - `Tunnel` (one per connector link) runs a `GatewayClient` over a connector's tunnel,
//!   for gateways behind NAT (`protocol::tunnel`, docs/connector.md).
//! - `commands` turns a recorded request (`domain::outbox::commands`) into the gateway's
//!   calls; `probe` is the one-off check of a URL and token (`GET /gateways/status`).

mod client;
mod commands;
mod owners;
mod probe;
mod tunnel;

pub use client::{CallError, ClientDeps, Stop};
pub use owners::{GatewayOwners, Release};
pub use probe::{probe, Probed};
pub use tunnel::{FromConnector, ToConnector, Tunnel};

use std::sync::Arc;

use crate::actors::gateway_link::LinkDeps;
use crate::domain::gateways::dialing;
use crate::secrets::device::DeviceKey;

/// The deployment's device key, loaded once per process (GATEWAY_DEVICE_KEY, else the seed
/// kept in PostgreSQL).
pub type DeviceCell = Arc<tokio::sync::OnceCell<Arc<DeviceKey>>>;

pub async fn device_key(link: &LinkDeps, cell: &DeviceCell) -> Result<Arc<DeviceKey>, String> {
    cell.get_or_try_init(|| async {
        let seed = match &link.settings.gateway.device_seed {
            Some(seed) => seed.0.to_vec(),
            None => {
                let conn = link.db.get().await.map_err(|e| e.to_string())?;
                dialing::device_seed(&*conn, &DeviceKey::generate_seed())
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        DeviceKey::from_seed(&seed)
            .map(Arc::new)
            .ok_or_else(|| "the stored device seed is not 32 bytes".to_string())
    })
    .await
    .cloned()
}
