//! System events that agents report (domain.md §B1, §B3): kept in `agent_events` for the
//! rule engine and as an audit log, then broadcast as `SystemEvent`s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
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
    record(
        client,
        NewEvent {
            organization_id: agent.organization_id,
            board_id: targets.board_id,
            agent_id: targets.agent_id,
            task_id: targets.task_id,
            event_type: &input.event_type,
            payload: input.payload,
        },
    )
    .await
}

/// An event the system itself records, in the transaction of the change it reports.
pub struct NewEvent<'a> {
    pub organization_id: Uuid,
    pub board_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub event_type: &'a str,
    pub payload: Map<String, Value>,
}

/// Writes the event with the organization's next `seq`. The organization row stays locked
/// until the commit (so `seq` is in commit order): record events **last** in a
/// transaction, after every other lock it takes, so that two writers never wait on each
/// other in opposite orders.
pub async fn record(client: &impl GenericClient, event: NewEvent<'_>) -> DomainResult<AgentEvent> {
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
                &event.organization_id,
                &event.board_id,
                &event.agent_id,
                &event.task_id,
                &event.event_type,
                &Json(&event.payload),
            ],
        )
        .await?;
    Ok(AgentEvent::from_row(&row)?)
}

/// Deletes events older than `ttl_days`, at most `batch` of them (the caller repeats while
/// it deletes a full batch, so no statement holds many rows). Suggestions keep their text
/// and lose only their `source_event_id`.
pub async fn delete_older_than(
    client: &impl GenericClient,
    ttl_days: i32,
    batch: i64,
) -> DomainResult<u64> {
    Ok(client
        .execute(
            "DELETE FROM agent_events WHERE id IN (SELECT id FROM agent_events \
               WHERE created_at < now() - make_interval(days => $1) ORDER BY created_at LIMIT $2)",
            &[&ttl_days, &batch],
        )
        .await?)
}
