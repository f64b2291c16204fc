//! System events that agents report (domain.md §B1, §B3): kept in `agent_events` for the
//! rule engine and as an audit log, then broadcast as `SystemEvent`s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::types::Json;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::domain::model::AgentPrincipal;
use crate::domain::support::access::{self, PostTargets};
use crate::domain::support::validation::Invalid;
use crate::domain::DomainResult;

/// The reference's `event_type` column width.
const EVENT_TYPE_MAX: usize = 128;

crate::db::record! {
    /// `AgentEventRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct AgentEvent in "e" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub board_id: Option<Uuid>,
        pub agent_id: Option<Uuid>,
        pub task_id: Option<Uuid>,
        pub event_type: String,
        #[schema(value_type = Object)]
        pub payload: Map<String, Value> as Json<Map<String, Value>>,
        pub created_at: DateTime<Utc>,
    }
}

impl AgentEvent {
    /// The reference's `SystemEvent` message: what rule engines subscribe to.
    pub fn system_event(&self) -> Value {
        json!({
            "event_type": self.event_type,
            "organization_id": self.organization_id,
            "board_id": self.board_id,
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "payload": self.payload,
            "timestamp": self.created_at,
            "event_id": self.id,
        })
    }
}

/// `AgentEventCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentEventCreate {
    pub event_type: String,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    #[serde(default)]
    pub task_id: Option<Uuid>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Map<String, Value>,
}

/// Records an event of the agent's organization. Unnamed, the board is the agent's own
/// and the agent is the caller, as in the reference. It takes the organization's next
/// `seq` under the organization row's lock (commit order: the command center's cursor).
pub async fn create(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    input: AgentEventCreate,
) -> DomainResult<AgentEvent> {
    let mut invalid = Invalid::default();
    invalid.max_chars("event_type", &input.event_type, EVENT_TYPE_MAX);
    invalid.finish()?;
    let targets = access::post_targets(
        client,
        agent,
        PostTargets {
            board_id: input.board_id.or(agent.agent.board_id),
            agent_id: input.agent_id.or(Some(agent.agent.id)),
            task_id: input.task_id,
        },
    )
    .await?;
    let row = client
        .query_one(
            &format!(
                "WITH n AS (UPDATE organizations SET agent_event_seq = agent_event_seq + 1 \
                            WHERE id = $2 RETURNING agent_event_seq) \
                 INSERT INTO agent_events AS e (id, organization_id, board_id, agent_id, task_id, event_type, payload, seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT agent_event_seq FROM n)) RETURNING {}",
                AgentEvent::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &agent.organization_id,
                &targets.board_id,
                &targets.agent_id,
                &targets.task_id,
                &input.event_type,
                &Json(&input.payload),
            ],
        )
        .await?;
    Ok(AgentEvent::from_row(&row)?)
}
