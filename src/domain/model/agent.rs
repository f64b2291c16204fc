//! Agents (`AgentRead`) and the authenticated agent: how a row reads and what its status
//! means.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::task::{Actor, AgentRef};
use crate::domain::{DomainError, DomainResult};

/// An agent not heard from for this long reads as offline.
pub const OFFLINE_AFTER_MINUTES: i64 = 10;

pub fn default_heartbeat_config() -> Value {
    json!({"every": "10m", "target": "last", "includeReasoning": false})
}

crate::db::record! {
    /// `AgentRead` (plus the provisioning intent, which the reference keeps internal).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Agent in "a" after Agent::compute_status {
        pub id: Uuid,
        pub board_id: Option<Uuid>,
        pub gateway_id: Uuid,
        pub name: String,
        /// Computed on read from the stored status: see [`computed_status`].
        pub status: String,
        #[schema(value_type = Option<Object>)]
        pub heartbeat_config: Option<Value>,
        #[schema(value_type = Option<Object>)]
        pub identity_profile: Option<Value>,
        pub identity_template: Option<String>,
        pub soul_template: Option<String>,
        pub is_board_lead: bool,
        pub is_gateway_main: bool = "(a.board_id IS NULL)",
        pub openclaw_session_id: Option<String>,
        pub last_seen_at: Option<DateTime<Utc>>,
        pub provision_requested_at: Option<DateTime<Utc>>,
        pub provision_action: Option<String>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// `updating`/`deleting` stand; otherwise never seen → provisioning, silent for over
/// ten minutes → offline, else the stored status.
pub fn computed_status(
    stored: &str,
    last_seen_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    match (stored, last_seen_at) {
        ("updating" | "deleting", _) => stored.to_string(),
        (_, None) => "provisioning".to_string(),
        (_, Some(seen)) if now - seen > Duration::minutes(OFFLINE_AFTER_MINUTES) => {
            "offline".to_string()
        }
        _ => stored.to_string(),
    }
}

impl Agent {
    /// The `after` hook of the record: the status read is the stored one.
    fn compute_status(&mut self) {
        self.status = computed_status(&self.status, self.last_seen_at, Utc::now());
    }
}

/// Session keys the gateways know agents by.
pub fn gateway_main_session_key(gateway_id: Uuid) -> String {
    format!("agent:mc-gateway-{gateway_id}:main")
}

/// An authenticated agent, and the organization it belongs to.
#[derive(Debug, Clone)]
pub struct AgentPrincipal {
    pub agent: Agent,
    pub organization_id: Uuid,
}

impl AgentPrincipal {
    /// The agent as the task rules see it.
    pub fn actor(&self) -> Actor {
        Actor::Agent(AgentRef {
            id: self.agent.id,
            board_id: self.agent.board_id,
            is_board_lead: self.agent.is_board_lead,
        })
    }

    /// Only a board's lead agent may do this.
    pub fn require_lead(&self) -> DomainResult<()> {
        if self.agent.is_board_lead {
            Ok(())
        } else {
            Err(DomainError::forbidden("Only board leads can do this."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_computed_from_last_seen() {
        let now = Utc::now();
        assert_eq!(computed_status("online", None, now), "provisioning");
        assert_eq!(
            computed_status("online", Some(now - Duration::minutes(11)), now),
            "offline"
        );
        assert_eq!(
            computed_status("online", Some(now - Duration::minutes(9)), now),
            "online"
        );
        assert_eq!(computed_status("updating", None, now), "updating");
        assert_eq!(
            computed_status("deleting", Some(now - Duration::hours(1)), now),
            "deleting"
        );
    }
}
