//! Tasks as rows, their status and lifecycle fields, who changes them (`Actor`), and a
//! committed change as the realtime layer carries it (`TaskChange`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

crate::db::record! {
    /// A `tasks` row.
    #[derive(Debug, Clone)]
    pub struct TaskRow in "t" {
        pub id: Uuid,
        pub board_id: Uuid,
        pub title: String,
        pub description: Option<String>,
        /// The column's CHECK constraint admits only the four statuses.
        pub status: TaskStatus,
        pub priority: String,
        pub due_at: Option<DateTime<Utc>>,
        pub in_progress_at: Option<DateTime<Utc>>,
        pub previous_in_progress_at: Option<DateTime<Utc>>,
        pub created_by_user_id: Option<Uuid>,
        pub assigned_agent_id: Option<Uuid>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

impl TaskRow {
    pub fn progress(&self) -> Progress {
        Progress {
            status: self.status,
            assigned_agent_id: self.assigned_agent_id,
            in_progress_at: self.in_progress_at,
            previous_in_progress_at: self.previous_in_progress_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Inbox,
    InProgress,
    Review,
    Done,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::Inbox,
        TaskStatus::InProgress,
        TaskStatus::Review,
        TaskStatus::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Inbox => "inbox",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Review => "review",
            TaskStatus::Done => "done",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

crate::db::record::text_enum_from_sql!(TaskStatus, TaskStatus::parse);

/// The fields of a task that its lifecycle moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub status: TaskStatus,
    pub assigned_agent_id: Option<Uuid>,
    pub in_progress_at: Option<DateTime<Utc>>,
    pub previous_in_progress_at: Option<DateTime<Utc>>,
}

/// Who asks for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    Agent(AgentRef),
    /// A pipeline run (its id) creating the task of an `ai_task` stage.
    Pipeline(Uuid),
}

impl Actor {
    pub fn agent_id(&self) -> Option<Uuid> {
        match self {
            Actor::User(_) | Actor::Pipeline(_) => None,
            Actor::Agent(a) => Some(a.id),
        }
    }

    /// `updated_by` of the realtime `task.updated` event.
    pub fn reference(&self) -> Value {
        match self {
            Actor::User(id) => json!({"type": "user", "id": id}),
            Actor::Agent(a) => json!({"type": "agent", "id": a.id}),
            Actor::Pipeline(run) => json!({"type": "pipeline_run", "id": run}),
        }
    }
}

/// What the rules need to know of an agent (the actor, or a requested assignee).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentRef {
    pub id: Uuid,
    /// `None`: the gateway-main agent, which belongs to no board.
    pub board_id: Option<Uuid>,
    pub is_board_lead: bool,
}

/// A committed change of a task, as the realtime layer carries it.
#[derive(Debug, Clone)]
pub enum TaskChange {
    Created {
        task: Value,
    },
    Updated {
        task_id: Uuid,
        changes: Value,
        updated_by: Value,
    },
    Deleted {
        task_id: Uuid,
    },
    Commented {
        task_id: Uuid,
    },
    /// Agents were sent notices about the change through this gateway (a request recorded
    /// in the same transaction): its relay link is to be poked. Board sync carries nothing.
    Notified {
        gateway_id: Uuid,
    },
    /// A system event was recorded about the change (`domain::proactivity::producers`): the
    /// event bus is to carry it to the rule engine. Board sync carries nothing.
    Recorded {
        event_id: Uuid,
    },
    /// The board's sync events the write numbered (`domain::support::board_log::close`), as
    /// `(seq, frame)`: the realtime layer carries them to the board's rooms on every instance.
    Synced {
        events: Vec<(i64, String)>,
    },
}
