//! `mc-connector`: runs on an OpenClaw gateway's host and attaches that stock gateway to
//! Mission Control over one outbound link, so a gateway behind NAT needs no inbound port
//! (docs/connector.md).
//!
//! - First start: registers the gateway with an admin's registration token (M2) and keeps its
//!   id, relay token and device key in a state file (0600); later starts reuse them.
//! - Holds the relay link (`/ws/gateway/{id}/relay`) with the `openclaw.tunnel` capability,
//!   reconnecting with backoff and jitter, and joins every stream Mission Control opens on it
//!   to a TCP connection to the local gateway (`link`): Mission Control's own OpenClaw client
//!   speaks through it, as to a gateway it dials.
//! - Heartbeats at the interval the server gives, with the local gateway's metrics read over
//!   its own short OpenClaw connection (`local`); a local gateway that does not answer is
//!   reported `degraded`.

mod link;
mod local;
mod state;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use uuid::Uuid;

use state::State;

#[derive(Parser, Clone)]
#[command(
    name = "mc-connector",
    version,
    about = "Attaches the OpenClaw gateway on this host to Mission Control over one outbound link",
    after_help = "Also read: LOG_LEVEL (env; trace, debug, info, warn or error) [default: info].\n\
                  Exit codes: 2 registration refused, 3 relay token refused (the gateway was deleted \
                  or registered again), 4 state file unusable."
)]
pub struct Settings {
    /// Mission Control's base URL (https://… in production).
    #[arg(long, env = "MC_URL")]
    pub url: String,
    /// The organization the gateway joins (first start only).
    #[arg(long, env = "MC_ORGANIZATION_ID")]
    pub organization_id: Option<Uuid>,
    /// A registration token issued by an admin (first start only).
    #[arg(long, env = "MC_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,
    /// The gateway's name in Mission Control [default: this host's name].
    #[arg(long, env = "MC_GATEWAY_NAME")]
    pub name: Option<String>,
    /// Where agents' workspaces go on this host (agents.create's workspace root).
    #[arg(
        long,
        env = "MC_WORKSPACE_ROOT",
        default_value = "/var/lib/openclaw/workspaces"
    )]
    pub workspace_root: String,
    /// The local OpenClaw gateway, on loopback (where it pairs a new device silently).
    #[arg(long, env = "OPENCLAW_URL", default_value = "ws://127.0.0.1:18789")]
    pub gateway_url: String,
    /// The local gateway's shared token (gateway.auth.token).
    #[arg(long, env = "OPENCLAW_TOKEN", hide_env_values = true)]
    pub gateway_token: String,
    /// The connector's identity (gateway id, relay token, device key), kept 0600.
    #[arg(
        long,
        env = "MC_CONNECTOR_STATE",
        default_value = "/var/lib/mc-connector/state.json"
    )]
    pub state: PathBuf,
}

impl Settings {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    /// The relay link's URL: Mission Control's own, in ws(s)://.
    fn relay_url(&self, gateway_id: Uuid) -> String {
        let base = self.url.trim_end_matches('/');
        let ws = match base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => format!("ws://{base}"),
        };
        format!("{ws}/ws/gateway/{gateway_id}/relay")
    }
}

/// How the connector ends (its exit code says which).
#[derive(Debug)]
pub enum Fatal {
    /// Mission Control refused the registration: nothing was created (exit 2).
    Refused(String),
    /// The relay token is no longer valid: the gateway was deleted or registered again
    /// elsewhere (exit 3).
    Revoked(String),
    /// The state file cannot be read or written (exit 4).
    State(String),
}

#[actix_web::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::parse();
    let outcome = run(settings).await;
    let (code, why) = match outcome {
        Fatal::Refused(why) => (2, format!("registration refused: {why}")),
        Fatal::Revoked(why) => (3, format!("relay token refused: {why}")),
        Fatal::State(why) => (4, format!("state file: {why}")),
    };
    tracing::error!("{why}");
    std::process::exit(code);
}

async fn run(settings: Settings) -> Fatal {
    let state = match State::load(&settings.state) {
        Ok(Some(state)) => state,
        Ok(None) => match register(&settings).await {
            Ok(state) => state,
            Err(fatal) => return fatal,
        },
        Err(e) => return Fatal::State(e),
    };
    tracing::info!(gateway_id = %state.gateway_id, "connector starting");
    link::hold(&settings, &state).await
}

/// Registers until Mission Control answers: a refusal ends the connector, an unreachable
/// server is tried again with backoff.
async fn register(settings: &Settings) -> Result<State, Fatal> {
    let (Some(organization_id), Some(token)) = (
        settings.organization_id,
        settings.registration_token.as_deref(),
    ) else {
        return Err(Fatal::Refused(
            "no state file yet: MC_ORGANIZATION_ID and MC_REGISTRATION_TOKEN are needed to register"
                .into(),
        ));
    };
    let name = settings.name.clone().unwrap_or_else(hostname);
    let device_seed = State::new_seed();
    let version = local::metrics(settings, &device_seed)
        .await
        .ok()
        .and_then(|m| m["version"].as_str().map(str::to_string));
    let body = json!({
        "organization_id": organization_id,
        "registration_token": token,
        "name": name,
        "url": settings.gateway_url,
        "workspace_root": settings.workspace_root,
        "version": version,
        "capabilities": [mission_control::protocol::tunnel::CAPABILITY],
    });
    let mut attempt = 0;
    loop {
        let sent = mission_control::outbound::client(Duration::from_secs(15))
            .post(settings.endpoint("/api/v1/gateway-registry/register"))
            .send_json(&body)
            .await;
        match sent {
            Ok(mut answer) => {
                let status = answer.status();
                let reply: Value = answer.json().limit(1 << 20).await.unwrap_or_default();
                if status.is_success() {
                    let (Some(gateway_id), Some(relay_token)) = (
                        reply["gateway_id"].as_str().and_then(|id| id.parse().ok()),
                        reply["relay_token"].as_str(),
                    ) else {
                        return Err(Fatal::Refused(format!("unexpected answer {reply}")));
                    };
                    let state = State {
                        gateway_id,
                        relay_token: relay_token.to_string(),
                        device_seed,
                    };
                    state.save(&settings.state).map_err(Fatal::State)?;
                    tracing::info!(%gateway_id, %name, "registered");
                    return Ok(state);
                }
                if status.is_client_error() && status.as_u16() != 429 {
                    return Err(Fatal::Refused(format!("{status}: {}", reply["detail"])));
                }
                tracing::warn!(%status, "registration not taken; trying again");
            }
            Err(e) => tracing::warn!(error = %e, "Mission Control unreachable; trying again"),
        }
        attempt += 1;
        actix_web::rt::time::sleep(link::backoff(attempt)).await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "openclaw-gateway".into())
}
