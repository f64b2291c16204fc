//! The events the system emits itself (domain.md §B4, which the reference never wired),
//! each recorded in the transaction of the change it reports, with the facts the builtin
//! rules test computed at that moment. Each call records its event last (see
//! `events::record`), and returns what the caller hands to the event bus after the commit.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::model::{Board, TaskChange, TaskRow, TaskStatus};
use crate::domain::proactivity::events::{self, AgentEvent, NewEvent};
use crate::domain::DomainResult;

/// A board's work in progress is over its limit past `max_agents` × this (§B6's words).
const WIP_PER_AGENT: i64 = 3;
/// An agent's heartbeats are recorded as events at most this often (each one would
/// otherwise be a row every 30 s per agent); the idle rule needs no finer grain.
const HEARTBEAT_EVENT_EVERY_MINUTES: i32 = 5;
/// A task whose text says this asks for a follow-up (Auto Follow-up's `needs_followup`).
const FOLLOW_UP_PATTERN: &str = r"follow[ -]?up|next steps?|\mto ?do\M";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

async fn record_for_task(
    client: &impl GenericClient,
    board: &Board,
    task: &TaskRow,
    event_type: &str,
    payload: Value,
) -> DomainResult<TaskChange> {
    let exists = event_type != "task.deleted";
    let event = events::record(
        client,
        NewEvent {
            organization_id: board.organization_id,
            board_id: Some(board.id),
            agent_id: task.assigned_agent_id,
            task_id: exists.then_some(task.id),
            event_type,
            payload: object(payload),
        },
    )
    .await?;
    Ok(TaskChange::Recorded { event_id: event.id })
}

/// `task.created`.
pub async fn task_created(
    client: &impl GenericClient,
    board: &Board,
    task: &TaskRow,
) -> DomainResult<TaskChange> {
    let payload = json!({
        "title": task.title, "status": task.status, "priority": task.priority,
        "assigned_agent_id": task.assigned_agent_id, "has_assignee": task.assigned_agent_id.is_some(),
    });
    record_for_task(client, board, task, "task.created", payload).await
}

/// `task.status_changed`, with the facts of WIP Limit Warning, Unblocking Opportunity and
/// Auto Follow-up: the board's tasks in progress against its limit, the unfinished tasks
/// that depend on this one (and how many of them it unblocked), and whether its text or
/// its last comment asks for a follow-up.
pub async fn task_status_changed(
    client: &impl GenericClient,
    board: &Board,
    previous: TaskStatus,
    task: &TaskRow,
) -> DomainResult<TaskChange> {
    let row = client
        .query_one(
            "SELECT \
               (SELECT count(*) FROM tasks WHERE board_id = $2 AND status = 'in_progress') AS in_progress, \
               (SELECT count(*) FROM task_dependencies x JOIN tasks t ON t.id = x.task_id \
                 WHERE x.depends_on_task_id = $1 AND t.status <> 'done') AS dependents, \
               (SELECT count(*) FROM task_dependencies x JOIN tasks t ON t.id = x.task_id \
                 WHERE x.depends_on_task_id = $1 AND t.status <> 'done' AND NOT EXISTS ( \
                   SELECT 1 FROM task_dependencies y JOIN tasks d ON d.id = y.depends_on_task_id \
                   WHERE y.task_id = t.id AND d.status <> 'done')) AS unblocked, \
               (concat_ws(' ', t.title, t.description, (SELECT a.message FROM activity_events a \
                  WHERE a.task_id = $1 AND a.event_type = 'task.comment' ORDER BY a.created_at DESC LIMIT 1)) \
                 ~* $3) AS follow_up \
             FROM tasks t WHERE t.id = $1",
            &[&task.id, &board.id, &FOLLOW_UP_PATTERN],
        )
        .await?;
    let in_progress: i64 = get(&row, "in_progress")?;
    let dependents: i64 = get(&row, "dependents")?;
    let limit = i64::from(board.max_agents) * WIP_PER_AGENT;
    let done = task.status == TaskStatus::Done;
    let payload = json!({
        "title": task.title, "old_status": previous, "new_status": task.status,
        "priority": task.priority, "assigned_agent_id": task.assigned_agent_id,
        "has_dependents": dependents > 0, "unblocked_count": get::<i64>(&row, "unblocked")?,
        "needs_followup": done && get::<bool>(&row, "follow_up")?,
        "wip_exceeded": limit > 0 && in_progress > limit,
        "in_progress_count": in_progress, "wip_limit": limit,
    });
    record_for_task(client, board, task, "task.status_changed", payload).await
}

/// `task.deleted`, recorded after the row went: the task's id is in the payload only.
pub async fn task_deleted(
    client: &impl GenericClient,
    board: &Board,
    task: &TaskRow,
) -> DomainResult<TaskChange> {
    let payload = json!({"task_id": task.id, "title": task.title, "status": task.status});
    record_for_task(client, board, task, "task.deleted", payload).await
}

/// `approval.requested` / `approval.resolved` on the board.
pub async fn approval(
    client: &impl GenericClient,
    board: &Board,
    event_type: &str,
    agent_id: Option<Uuid>,
    task_id: Option<Uuid>,
    payload: Value,
) -> DomainResult<AgentEvent> {
    events::record(
        client,
        NewEvent {
            organization_id: board.organization_id,
            board_id: Some(board.id),
            agent_id,
            task_id,
            event_type,
            payload: object(payload),
        },
    )
    .await
}

/// `agent.heartbeat` with `idle_minutes` (0 while the agent has a task in progress, else
/// the minutes since its tasks last moved, or since it was created; computed only when the
/// event is due), at most every `HEARTBEAT_EVENT_EVERY_MINUTES`; and `agent.online` when the agent had been recorded
/// offline.
pub async fn agent_heartbeat(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent_id: Uuid,
) -> DomainResult<()> {
    let row = client
        .query_one(
            "WITH back AS (UPDATE agents SET offline_event_at = NULL \
                            WHERE id = $1 AND offline_event_at IS NOT NULL RETURNING id) \
             SELECT a.name, a.status, a.board_id, EXISTS (SELECT 1 FROM back) AS back_online, \
               r.recent, CASE WHEN r.recent THEN NULL \
                 WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.assigned_agent_id = a.id AND t.status = 'in_progress') \
                 THEN 0 ELSE floor(extract(epoch FROM now() - greatest(a.created_at, \
                   (SELECT max(t.updated_at) FROM tasks t WHERE t.assigned_agent_id = a.id))) / 60)::bigint END AS idle \
             FROM agents a, LATERAL (SELECT EXISTS (SELECT 1 FROM agent_events e WHERE e.agent_id = a.id \
                 AND e.event_type = 'agent.heartbeat' AND e.created_at > now() - make_interval(mins => $2)) AS recent) r \
             WHERE a.id = $1",
            &[&agent_id, &HEARTBEAT_EVENT_EVERY_MINUTES],
        )
        .await?;
    let name: String = get(&row, "name")?;
    let board_id: Option<Uuid> = get(&row, "board_id")?;
    let record = |event_type: &'static str, payload: Value| NewEvent {
        organization_id,
        board_id,
        agent_id: Some(agent_id),
        task_id: None,
        event_type,
        payload: object(payload),
    };
    let online = get::<bool>(&row, "back_online")?.then(|| {
        record(
            "agent.online",
            json!({"agent_name": name, "previous_status": "offline"}),
        )
    });
    let beat = (!get::<bool>(&row, "recent")?).then(|| {
        record(
            "agent.heartbeat",
            json!({"agent_name": name, "status": get::<String>(&row, "status").ok(),
                   "idle_minutes": get::<i64>(&row, "idle").ok()}),
        )
    });
    for event in online.into_iter().chain(beat) {
        events::record(client, event).await?;
    }
    Ok(())
}

/// `agent.offline` for agents not heard from for `after_seconds` that were not recorded
/// offline since (one statement per organization, so concurrent sweeps record each once).
pub async fn agents_gone_quiet(
    client: &impl GenericClient,
    after_seconds: f64,
    limit: i64,
) -> DomainResult<Vec<AgentEvent>> {
    let rows = client
        .query(
            "UPDATE agents a SET offline_event_at = now() WHERE a.id IN ( \
               SELECT id FROM agents WHERE last_seen_at < now() - make_interval(secs => $1) \
                 AND (offline_event_at IS NULL OR offline_event_at < last_seen_at) \
               ORDER BY last_seen_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING a.id, a.organization_id, a.board_id, a.name",
            &[&after_seconds, &limit],
        )
        .await?;
    let mut recorded = Vec::new();
    for row in &rows {
        recorded.push(
            events::record(
                client,
                NewEvent {
                    organization_id: get(row, "organization_id")?,
                    board_id: get(row, "board_id")?,
                    agent_id: Some(get(row, "id")?),
                    task_id: None,
                    event_type: "agent.offline",
                    payload: object(json!({
                        "agent_name": get::<String>(row, "name")?,
                        "previous_status": "online", "reason": "no heartbeat",
                    })),
                },
            )
            .await?,
        );
    }
    Ok(recorded)
}

/// `gateway.online` / `gateway.offline` for a recorded transition of a gateway's status.
pub async fn gateway_status(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
    (from, to): (&str, &str),
    reason: &str,
) -> DomainResult<Option<AgentEvent>> {
    let event_type = match to {
        "online" => "gateway.online",
        "offline" => "gateway.offline",
        _ => return Ok(None),
    };
    let name: Option<String> = client
        .query_opt("SELECT name FROM gateways WHERE id = $1", &[&gateway_id])
        .await?
        .map(|r| get(&r, "name"))
        .transpose()?;
    let payload = json!({
        "gateway_id": gateway_id, "gateway_name": name, "previous_status": from, "reason": reason,
    });
    Ok(Some(
        org_event(client, organization_id, event_type, payload).await?,
    ))
}

/// The facts of the cron ticks for one organization: tasks past their due date and not
/// done, and tasks in review for more than 24 hours.
pub async fn cron_tick(
    client: &impl GenericClient,
    organization_id: Uuid,
    event_type: &str,
) -> DomainResult<AgentEvent> {
    let row = client
        .query_one(
            "SELECT \
               (SELECT count(*) FROM tasks WHERE organization_id = $1 AND status <> 'done' AND due_at < now()) AS overdue, \
               (SELECT count(*) FROM tasks WHERE organization_id = $1 AND status = 'review' \
                  AND updated_at < now() - interval '24 hours') AS stale",
            &[&organization_id],
        )
        .await?;
    let overdue: i64 = get(&row, "overdue")?;
    let payload = json!({
        "has_overdue_tasks": overdue > 0, "overdue_count": overdue,
        "stale_review_count": get::<i64>(&row, "stale")?,
    });
    org_event(client, organization_id, event_type, payload).await
}

/// An event of the organization as a whole (no board, agent or task).
async fn org_event(
    client: &impl GenericClient,
    organization_id: Uuid,
    event_type: &str,
    payload: Value,
) -> DomainResult<AgentEvent> {
    events::record(
        client,
        NewEvent {
            organization_id,
            board_id: None,
            agent_id: None,
            task_id: None,
            event_type,
            payload: object(payload),
        },
    )
    .await
}

/// Claims the hourly and daily ticks that are due (UTC hours and days), once per
/// deployment whichever instance asks first: the kinds claimed (`cron.hourly`,
/// `cron.daily`).
pub async fn claim_ticks(client: &impl GenericClient) -> DomainResult<Vec<&'static str>> {
    let row = client
        .query_one(
            "WITH h AS (UPDATE proactivity_clock SET hourly_at = date_trunc('hour', now(), 'UTC') \
                         WHERE hourly_at < date_trunc('hour', now(), 'UTC') RETURNING 1), \
                  d AS (UPDATE proactivity_clock SET daily_at = date_trunc('day', now(), 'UTC') \
                         WHERE daily_at < date_trunc('day', now(), 'UTC') RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM h) AS hourly, EXISTS (SELECT 1 FROM d) AS daily",
            &[],
        )
        .await?;
    let mut due = Vec::new();
    if get::<bool>(&row, "hourly")? {
        due.push("cron.hourly");
    }
    if get::<bool>(&row, "daily")? {
        due.push("cron.daily");
    }
    Ok(due)
}

/// The organizations a tick is recorded for, after `after` (their ids in order, a page at a
/// time).
pub async fn organizations_after(
    client: &impl GenericClient,
    after: Option<Uuid>,
    limit: i64,
) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT id FROM organizations WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
            &[&after, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?)
}

/// The deployment's id: it names the Redis stream of its events.
pub async fn deployment_id(client: &impl GenericClient) -> DomainResult<Uuid> {
    let row = client
        .query_one("SELECT deployment_id FROM proactivity_clock", &[])
        .await?;
    Ok(get(&row, "deployment_id")?)
}
