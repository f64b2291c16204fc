//! Task schedules (domain.md §D1–D3): when an agent works on a task, with conflicts
//! between one agent's schedules refused, and the hours each agent has scheduled.
//!
//! Beyond the reference: schedules belong to the caller's organization (the reference's
//! have no organization at all), the task, board and agent must agree, the conflict check
//! runs on update too and under a lock on the agent (two concurrent writes cannot book the
//! same hour), and a bad range is a 422, never a database error.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::RangeFilter;
use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::access::{self, Access};
use crate::domain::support::validation::{lenient_datetime, lenient_datetime_patch, Invalid};
use crate::domain::{DomainError, DomainResult};

pub const STATUSES: [&str; 4] = ["planned", "in_progress", "completed", "missed"];
/// Statuses whose schedules hold their agent's time (and so can conflict).
const ACTIVE: [&str; 2] = ["planned", "in_progress"];
const ERR_RANGE: &str = "scheduled_end must be after scheduled_start.";

crate::db::record! {
    /// `TaskScheduleRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Schedule in "s" {
        pub id: Uuid,
        pub task_id: Uuid,
        pub agent_id: Option<Uuid>,
        pub board_id: Uuid,
        pub scheduled_start: DateTime<Utc>,
        pub scheduled_end: DateTime<Utc>,
        pub actual_start: Option<DateTime<Utc>>,
        pub actual_end: Option<DateTime<Utc>>,
        pub status: String,
        pub estimated_hours: Option<f64>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// `TaskScheduleCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScheduleCreate {
    pub task_id: Uuid,
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    pub board_id: Uuid,
    #[serde(deserialize_with = "lenient_datetime")]
    #[schema(value_type = DateTime<Utc>)]
    pub scheduled_start: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_datetime")]
    #[schema(value_type = DateTime<Utc>)]
    pub scheduled_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub estimated_hours: Option<f64>,
}

/// `TaskScheduleUpdate`: absent or `null` leaves a field as it is, except the nullable
/// `actual_start`, `actual_end` and `estimated_hours`, which `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ScheduleUpdate {
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub scheduled_start: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub scheduled_end: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_datetime_patch")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub actual_start: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "lenient_datetime_patch")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub actual_end: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<f64>)]
    pub estimated_hours: Option<Option<f64>>,
}

fn check_fields(status: &str, estimated_hours: Option<f64>) -> DomainResult<()> {
    let mut invalid = Invalid::default();
    if !STATUSES.contains(&status) {
        invalid.value_error(
            "status",
            &format!("status must be one of: {}", STATUSES.join(", ")),
            json!(status),
        );
    }
    if estimated_hours.is_some_and(|h| !h.is_finite() || h < 0.0) {
        invalid.value_error(
            "estimated_hours",
            "estimated_hours must be a number of hours, 0 or more",
            json!(estimated_hours),
        );
    }
    invalid.finish()
}

/// The agent's active schedules overlapping `[start, end)` (half-open: touching ones do
/// not), other than `except`.
pub async fn conflicts(
    client: &impl GenericClient,
    agent_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    except: Option<Uuid>,
) -> DomainResult<Vec<Schedule>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM task_schedules s \
                 WHERE s.agent_id = $1 AND s.scheduled_start < $3 AND s.scheduled_end > $2 \
                   AND s.status = ANY($4) AND ($5::uuid IS NULL OR s.id <> $5) \
                 ORDER BY s.scheduled_start, s.id",
                Schedule::COLUMNS
            ),
            &[&agent_id, &start, &end, &&ACTIVE[..], &except],
        )
        .await?;
    Ok(Schedule::from_rows(&rows)?)
}

/// 409 when the agent is booked in `[start, end)`; the agent's row is locked first, so
/// that concurrent writes for one agent check one after the other.
async fn refuse_conflicts(
    client: &impl GenericClient,
    agent_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    except: Option<Uuid>,
) -> DomainResult<()> {
    client
        .query_opt(
            "SELECT 1 FROM agents WHERE id = $1 FOR NO KEY UPDATE",
            &[&agent_id],
        )
        .await?;
    let found = conflicts(client, agent_id, start, end, except).await?;
    if found.is_empty() {
        return Ok(());
    }
    Err(DomainError::Conflict(json!({
        "message": "Schedule conflicts with existing agent schedules.",
        "conflict_ids": found.iter().map(|s| s.id).collect::<Vec<_>>(),
        "conflicts": found,
    })))
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: ScheduleCreate,
) -> DomainResult<Schedule> {
    let (Some(start), Some(end)) = (input.scheduled_start, input.scheduled_end) else {
        return Err(DomainError::unprocessable(ERR_RANGE));
    };
    if end <= start {
        return Err(DomainError::unprocessable(ERR_RANGE));
    }
    check_fields("planned", input.estimated_hours)?;
    let board = access::board_for_user(client, principal, input.board_id, Access::Write).await?;
    let mut invalid = Invalid::default();
    let task_here = client
        .query_opt(
            "SELECT 1 FROM tasks WHERE id = $1 AND board_id = $2",
            &[&input.task_id, &board.id],
        )
        .await?;
    if task_here.is_none() {
        invalid.value_error(
            "task_id",
            "task_id must reference a task of board_id",
            json!(input.task_id),
        );
    }
    if let Some(agent_id) = input.agent_id {
        let agent_here = client
            .query_opt(
                "SELECT 1 FROM agents WHERE id = $1 AND organization_id = $2 \
                   AND (board_id = $3 OR board_id IS NULL)",
                &[&agent_id, &board.organization_id, &board.id],
            )
            .await?;
        if agent_here.is_none() {
            invalid.value_error(
                "agent_id",
                "agent_id must reference an agent of board_id (or its gateway's main agent)",
                json!(agent_id),
            );
        }
    }
    invalid.finish()?;
    if let Some(agent_id) = input.agent_id {
        refuse_conflicts(client, agent_id, start, end, None).await?;
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO task_schedules AS s (id, organization_id, task_id, agent_id, board_id, \
                   scheduled_start, scheduled_end, estimated_hours) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {}",
                Schedule::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &board.organization_id,
                &input.task_id,
                &input.agent_id,
                &board.id,
                &start,
                &end,
                &input.estimated_hours,
            ],
        )
        .await?;
    Ok(Schedule::from_row(&row)?)
}

/// The schedule, if it is the organization's and its board is writable (404 / 403),
/// locked.
async fn writable(
    client: &impl GenericClient,
    principal: &Principal,
    schedule_id: Uuid,
) -> DomainResult<Schedule> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM task_schedules s WHERE s.id = $1 AND s.organization_id = $2 FOR NO KEY UPDATE",
                Schedule::COLUMNS
            ),
            &[&schedule_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let schedule = Schedule::from_row(&row)?;
    access::board_for_user(client, principal, schedule.board_id, Access::Write).await?;
    Ok(schedule)
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    schedule_id: Uuid,
    patch: ScheduleUpdate,
) -> DomainResult<Schedule> {
    let current = writable(client, principal, schedule_id).await?;
    let start = patch.scheduled_start.unwrap_or(current.scheduled_start);
    let end = patch.scheduled_end.unwrap_or(current.scheduled_end);
    if end <= start {
        return Err(DomainError::unprocessable(ERR_RANGE));
    }
    let status = patch.status.unwrap_or(current.status);
    let estimated_hours = patch.estimated_hours.unwrap_or(current.estimated_hours);
    check_fields(&status, estimated_hours)?;
    if let Some(agent_id) = current
        .agent_id
        .filter(|_| ACTIVE.contains(&status.as_str()))
    {
        refuse_conflicts(client, agent_id, start, end, Some(current.id)).await?;
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE task_schedules s SET scheduled_start = $2, scheduled_end = $3, actual_start = $4, \
                   actual_end = $5, status = $6, estimated_hours = $7, updated_at = now() \
                 WHERE s.id = $1 RETURNING {}",
                Schedule::COLUMNS
            ),
            &[
                &current.id,
                &start,
                &end,
                &patch.actual_start.unwrap_or(current.actual_start),
                &patch.actual_end.unwrap_or(current.actual_end),
                &status,
                &estimated_hours,
            ],
        )
        .await?;
    Ok(Schedule::from_row(&row)?)
}

pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    schedule_id: Uuid,
) -> DomainResult<()> {
    let schedule = writable(client, principal, schedule_id).await?;
    client
        .execute("DELETE FROM task_schedules WHERE id = $1", &[&schedule.id])
        .await?;
    Ok(())
}

/// The organization's schedules overlapping `[from, to)`, by start.
pub async fn in_range(
    client: &impl GenericClient,
    organization_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &RangeFilter,
) -> DomainResult<Vec<Schedule>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM task_schedules s \
                 WHERE s.organization_id = $1 AND s.scheduled_start < $3 AND s.scheduled_end > $2 \
                   AND ($4::uuid IS NULL OR s.agent_id = $4) AND ($5::uuid IS NULL OR s.board_id = $5) \
                   AND ($6::uuid[] IS NULL OR s.board_id = ANY($6)) \
                 ORDER BY s.scheduled_start, s.id",
                Schedule::COLUMNS
            ),
            &[
                &organization_id,
                &from,
                &to,
                &filter.agent_id,
                &filter.board_id,
                &filter.boards,
            ],
        )
        .await?;
    Ok(Schedule::from_rows(&rows)?)
}

/// `{"workload": {agent_id: {hours_scheduled, schedule_ids}}}` over `[from, to)`: each
/// schedule counts the part of it inside the range, whatever its status (§D3). Every agent
/// asked for has an entry; one that is not the organization's is a 404.
pub async fn workload(
    client: &impl GenericClient,
    organization_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    agent_ids: &[Uuid],
) -> DomainResult<Value> {
    let known: Vec<Uuid> = client
        .query(
            "SELECT id FROM agents WHERE organization_id = $1 AND id = ANY($2)",
            &[&organization_id, &agent_ids],
        )
        .await?
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?;
    if agent_ids.iter().any(|id| !known.contains(id)) {
        return Err(DomainError::not_found());
    }
    let rows = client
        .query(
            "SELECT s.agent_id, s.id, \
                    EXTRACT(EPOCH FROM LEAST(s.scheduled_end, $3) - GREATEST(s.scheduled_start, $2))::float8 / 3600 AS hours \
             FROM task_schedules s \
             WHERE s.organization_id = $1 AND s.agent_id = ANY($4) \
               AND s.scheduled_start < $3 AND s.scheduled_end > $2 \
             ORDER BY s.scheduled_start, s.id",
            &[&organization_id, &from, &to, &agent_ids],
        )
        .await?;
    let mut per_agent: BTreeMap<Uuid, (f64, Vec<Uuid>)> = agent_ids
        .iter()
        .map(|id| (*id, (0.0, Vec::new())))
        .collect();
    for row in rows {
        let agent: Uuid = get(&row, "agent_id")?;
        let hours: f64 = get(&row, "hours")?;
        let entry = per_agent.entry(agent).or_default();
        entry.0 += hours;
        entry.1.push(get(&row, "id")?);
    }
    let workload: serde_json::Map<String, Value> = per_agent
        .into_iter()
        .map(|(agent, (hours, ids))| {
            (
                agent.to_string(),
                json!({"hours_scheduled": hours, "schedule_ids": ids}),
            )
        })
        .collect();
    Ok(json!({ "workload": workload }))
}

/// A task's own lifecycle moves its schedules: starting the task starts its planned
/// schedules (`in_progress`, `actual_start`), finishing it completes the open ones
/// (`completed`, `actual_end`). Nothing else is inferred (a schedule is `missed` only when
/// someone says so).
pub async fn follow_task(
    client: &impl GenericClient,
    task_id: Uuid,
    status: &str,
) -> DomainResult<()> {
    let sql = match status {
        "in_progress" => {
            "UPDATE task_schedules SET status = 'in_progress', actual_start = COALESCE(actual_start, now()), \
               updated_at = now() WHERE task_id = $1 AND status = 'planned'"
        }
        "done" => {
            "UPDATE task_schedules SET status = 'completed', actual_start = COALESCE(actual_start, now()), \
               actual_end = COALESCE(actual_end, now()), updated_at = now() \
             WHERE task_id = $1 AND status IN ('planned', 'in_progress')"
        }
        _ => return Ok(()),
    };
    client.execute(sql, &[&task_id]).await?;
    Ok(())
}
