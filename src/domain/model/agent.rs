//! Agents (`AgentRead`) and the authenticated agent: how a row reads and what its status
//! means.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::task::{Actor, AgentRef};
use crate::domain::{DomainError, DomainResult};

/// An agent not heard from for this long reads as offline.
pub const OFFLINE_AFTER_MINUTES: i64 = 10;

pub fn default_heartbeat_config() -> Value {
    json!({"every": "10m", "target": "last", "includeReasoning": false})
}

/// `AgentRead` (plus the provisioning intent, which the reference keeps internal).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub board_id: Option<Uuid>,
    pub gateway_id: Uuid,
    pub name: String,
    /// Computed on read: see [`computed_status`].
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub heartbeat_config: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub identity_profile: Option<Value>,
    pub identity_template: Option<String>,
    pub soul_template: Option<String>,
    pub is_board_lead: bool,
    pub is_gateway_main: bool,
    pub openclaw_session_id: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub provision_requested_at: Option<DateTime<Utc>>,
    pub provision_action: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const AGENT_COLUMNS: &str = "a.id, a.board_id, a.gateway_id, a.name, a.status, a.heartbeat_config, \
     a.identity_profile, a.identity_template, a.soul_template, a.is_board_lead, a.openclaw_session_id, \
     a.last_seen_at, a.provision_requested_at, a.provision_action, a.created_at, a.updated_at";

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
    pub fn from_row(row: &Row) -> Agent {
        let board_id: Option<Uuid> = row.get(1);
        let stored: String = row.get(4);
        let last_seen_at = row.get(11);
        Agent {
            id: row.get(0),
            board_id,
            gateway_id: row.get(2),
            name: row.get(3),
            status: computed_status(&stored, last_seen_at, Utc::now()),
            heartbeat_config: row.get(5),
            identity_profile: row.get(6),
            identity_template: row.get(7),
            soul_template: row.get(8),
            is_board_lead: row.get(9),
            is_gateway_main: board_id.is_none(),
            openclaw_session_id: row.get(10),
            last_seen_at,
            provision_requested_at: row.get(12),
            provision_action: row.get(13),
            created_at: row.get(14),
            updated_at: row.get(15),
        }
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
