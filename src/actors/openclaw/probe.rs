//! One check of a gateway URL and token (`GET /api/v1/gateways/status` from the console's
//! gateway form): a short-lived client dials, does the whole handshake with our device, lists
//! the sessions and hangs up. Nothing is recorded.

use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::client::{Calls, ClientDeps, GatewayClient, Purpose, Stop};
use crate::domain::gateways::dialing::{ConnectionState, DialTarget};

/// What the check found.
#[derive(Debug, Clone)]
pub struct Probed {
    pub state: ConnectionState,
    /// Why it is not connected, in the gateway's words.
    pub error: Option<String>,
    pub pairing_request_id: Option<String>,
    pub version: Option<String>,
    pub sessions: Option<Vec<Value>>,
}

pub async fn probe(deps: ClientDeps, url: &str, token: Option<&str>, within: Duration) -> Probed {
    let target = DialTarget {
        id: Uuid::nil(),
        organization_id: Uuid::nil(),
        url: url.to_string(),
        workspace_root: String::new(),
        token: token.map(str::to_string),
        device_token: None,
    };
    let (ready, hello) = oneshot::channel();
    let client = GatewayClient::new(deps, target, Purpose::Probe(Some(ready))).start();
    let probed = match tokio::time::timeout(within, hello).await {
        Ok(Ok(Ok(hello))) => {
            let sessions = Calls::new(client.clone(), within)
                .call("sessions.list", json!({}))
                .await;
            match sessions {
                Ok(answer) => Probed {
                    state: ConnectionState::Connected,
                    error: None,
                    pairing_request_id: None,
                    version: hello.version,
                    sessions: Some(answer["sessions"].as_array().cloned().unwrap_or_default()),
                },
                Err(e) => failed(ConnectionState::Error, e.to_string()),
            }
        }
        Ok(Ok(Err(report))) => Probed {
            pairing_request_id: report.pairing_request_id,
            ..failed(report.state, report.message.unwrap_or_default())
        },
        Ok(Err(_)) => failed(ConnectionState::Error, "the check stopped".into()),
        Err(_) => failed(
            ConnectionState::Unreachable,
            format!("no answer from the gateway within {} s", within.as_secs()),
        ),
    };
    client.do_send(Stop);
    probed
}

fn failed(state: ConnectionState, error: String) -> Probed {
    Probed {
        state,
        error: Some(error),
        pairing_request_id: None,
        version: None,
        sessions: None,
    }
}
