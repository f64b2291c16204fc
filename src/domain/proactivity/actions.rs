//! What accepting a suggestion does (`docs/proactivity.md`). The reference only marked it
//! accepted; here a suggestion may carry an action in `payload.action`, planned when the
//! rule fired (so an admin sees what accept will do) or posted by an agent in the same
//! vocabulary:
//!
//! | `type` | does | planned for |
//! |---|---|---|
//! | `create_task` `{board_id, title, description?, priority?, assigned_agent_id?}` | creates the task (as the accepting admin; its assignee is told through its gateway) | Auto Follow-up (`task_create`) |
//! | `assign_or_nudge` `{agent_id}` | assigns the oldest unassigned inbox task of the agent's board to it, or else nudges it | Idle Agent Detection |
//! | `nudge_agents` `{nudges: [{agent_id, message}]}` | sends each agent the message in its session, through its gateway | Unblocking Opportunity (the dependents' assignees), Overdue Task Alert (the assignees), Stale Review Detection and WIP Limit Warning (the boards' leads) |
//!
//! A suggestion without an action is only marked accepted (its result says so).

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{board, Actor, Agent, Principal, TaskChange};
use crate::domain::outbox::commands::{self, Target};
use crate::domain::proactivity::events::AgentEvent;
use crate::domain::proactivity::rules::Rule;
use crate::domain::tasks::crud::{self as tasks, TaskCreate, TaskUpdate};
use crate::domain::{DomainError, DomainResult};

/// What an action changed that the realtime layer carries after the commit, per board.
pub type Effects = Vec<(Uuid, Vec<TaskChange>)>;

/// Most agents one suggestion nudges (what a rule plans, and what an accept carries out).
const MAX_NUDGES: usize = 50;

/// The action of the suggestion a rule creates for this event, if it has one.
pub async fn plan(
    client: &impl GenericClient,
    rule: &Rule,
    event: &AgentEvent,
) -> DomainResult<Option<Value>> {
    let kind = rule
        .action_config
        .get("suggestion_type")
        .and_then(Value::as_str)
        .unwrap_or(&rule.action_type);
    let org = event.organization_id;
    Ok(match (kind, event.event_type.as_str()) {
        ("task_create", _) => match event.task_id {
            Some(task_id) => follow_up(client, task_id).await?,
            None => None,
        },
        ("task_reassign", "agent.heartbeat") => event
            .agent_id
            .map(|agent_id| json!({"type": "assign_or_nudge", "agent_id": agent_id})),
        ("task_reassign", _) => match event.task_id {
            Some(task_id) => nudges(
                client,
                "SELECT DISTINCT t.assigned_agent_id AS agent_id, \
                   'Task \"' || d.title || '\" is done: \"' || t.title || '\" can go ahead.' AS message \
                 FROM task_dependencies x JOIN tasks t ON t.id = x.task_id JOIN tasks d ON d.id = x.depends_on_task_id \
                 WHERE x.depends_on_task_id = $1 AND t.status <> 'done' AND t.assigned_agent_id IS NOT NULL \
                   AND $2::uuid IS NOT NULL",
                &task_id,
                &event.board_id,
            )
            .await?,
            None => None,
        },
        ("deadline_alert", _) => nudges(
            client,
            "SELECT t.assigned_agent_id AS agent_id, 'Past their due date: ' || \
               string_agg('\"' || t.title || '\"', ', ' ORDER BY t.due_at) AS message \
             FROM tasks t WHERE t.organization_id = $1 AND t.status <> 'done' AND t.due_at < now() \
               AND t.assigned_agent_id IS NOT NULL AND ($2::uuid IS NULL OR t.board_id = $2) \
             GROUP BY t.assigned_agent_id",
            &org,
            &event.board_id,
        )
        .await?,
        ("quality_concern", _) => nudges(
            client,
            "SELECT a.id AS agent_id, 'In review for more than 24 hours: ' || \
               string_agg('\"' || t.title || '\"', ', ' ORDER BY t.updated_at) AS message \
             FROM tasks t JOIN agents a ON a.board_id = t.board_id AND a.is_board_lead \
             WHERE t.organization_id = $1 AND t.status = 'review' AND t.updated_at < now() - interval '24 hours' \
               AND ($2::uuid IS NULL OR t.board_id = $2) GROUP BY a.id",
            &org,
            &event.board_id,
        )
        .await?,
        ("workload_rebalance", _) => nudges(
            client,
            "SELECT a.id AS agent_id, b.name || ' has ' || \
               (SELECT count(*) FROM tasks t WHERE t.board_id = b.id AND t.status = 'in_progress') || \
               ' tasks in progress, over its limit of ' || (b.max_agents * 3) || \
               ': finish or hand work off before more starts.' AS message \
             FROM boards b JOIN agents a ON a.board_id = b.id AND a.is_board_lead \
             WHERE b.organization_id = $1 AND b.id = $2",
            &org,
            &event.board_id,
        )
        .await?,
        _ => None,
    })
}

/// A follow-up of a done task, for its assignee.
async fn follow_up(client: &impl GenericClient, task_id: Uuid) -> DomainResult<Option<Value>> {
    let row = client
        .query_opt(
            "SELECT board_id, title, priority, assigned_agent_id FROM tasks WHERE id = $1",
            &[&task_id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let title: String = get(&row, "title")?;
    Ok(Some(json!({
        "type": "create_task",
        "board_id": get::<Uuid>(&row, "board_id")?,
        "title": truncate(&format!("Follow up: {title}"), 512),
        "description": format!("Follow-up of the completed task \"{title}\" ({task_id})."),
        "priority": get::<String>(&row, "priority")?,
        "assigned_agent_id": get::<Option<Uuid>>(&row, "assigned_agent_id")?,
    })))
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// `nudge_agents` to the agents (and messages) `sql` selects (at most `MAX_NUDGES`), or none
/// when it selects none.
async fn nudges(
    client: &impl GenericClient,
    sql: &str,
    first: &Uuid,
    board_id: &Option<Uuid>,
) -> DomainResult<Option<Value>> {
    let sql = format!("{sql} LIMIT {MAX_NUDGES}");
    let rows = client.query(&sql, &[first, board_id]).await?;
    let list = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "agent_id": get::<Uuid>(r, "agent_id")?,
                "message": get::<String>(r, "message")?,
            }))
        })
        .collect::<Result<Vec<_>, crate::db::record::RowError>>()?;
    Ok((!list.is_empty()).then(|| json!({"type": "nudge_agents", "nudges": list})))
}

/// Carries out `action` for the accepting admin. `Err` is a refusal to record in the
/// suggestion's result (its text), not a failed request.
pub async fn execute(
    client: &impl GenericClient,
    principal: &Principal,
    action: &Map<String, Value>,
) -> Result<(Value, Effects), String> {
    let org = principal.organization.id;
    let uuid = |key: &str| -> Result<Uuid, String> {
        action
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("the action has no valid `{key}`"))
    };
    let failed = |e: DomainError| e.to_string();
    match action.get("type").and_then(Value::as_str) {
        Some("create_task") => {
            let board = board::find_in_org(client, org, uuid("board_id")?)
                .await
                .map_err(failed)?
                .ok_or("the board is gone")?;
            let mut input = json!({
                "title": action.get("title").cloned().unwrap_or(json!("Follow-up")),
                "description": action.get("description").cloned().unwrap_or(Value::Null),
                "assigned_agent_id": action.get("assigned_agent_id").cloned().unwrap_or(Value::Null),
            });
            if let Some(priority) = action.get("priority") {
                input["priority"] = priority.clone();
            }
            let input: TaskCreate =
                serde_json::from_value(input).map_err(|e| format!("the task is not valid: {e}"))?;
            let (task, changes) =
                tasks::create(client, &board, &Actor::User(principal.user.id), input)
                    .await
                    .map_err(failed)?;
            Ok((json!({"task_id": task.id}), vec![(board.id, changes)]))
        }
        Some("assign_or_nudge") => {
            let agent = agent_of(client, org, uuid("agent_id")?).await?;
            let board_id = agent.board_id.ok_or("the agent belongs to no board")?;
            let board = board::find_in_org(client, org, board_id)
                .await
                .map_err(failed)?
                .ok_or("the board is gone")?;
            let free = client
                .query_opt(
                    "SELECT id FROM tasks WHERE board_id = $1 AND status = 'inbox' \
                       AND assigned_agent_id IS NULL ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &[&board.id],
                )
                .await
                .map_err(|e| failed(e.into()))?;
            if let Some(row) = free {
                let task_id: Uuid = get(&row, "id").map_err(|e| failed(e.into()))?;
                let patch = TaskUpdate {
                    assigned_agent_id: Some(Some(agent.id)),
                    ..TaskUpdate::default()
                };
                let (_, changes) = tasks::update(
                    client,
                    &board,
                    &Actor::User(principal.user.id),
                    task_id,
                    patch,
                )
                .await
                .map_err(failed)?;
                return Ok((
                    json!({"assigned_task_id": task_id, "agent_id": agent.id}),
                    vec![(board.id, changes)],
                ));
            }
            let message =
                "You have had no work for a while and the board's inbox has no unassigned task: \
                           ask your lead what to pick up next.";
            let effects = nudge(client, org, &agent, message).await?;
            Ok((json!({"nudged_agent_ids": [agent.id]}), effects))
        }
        Some("nudge_agents") => {
            let list = action
                .get("nudges")
                .and_then(Value::as_array)
                .ok_or("the action has no `nudges` list")?;
            let (mut nudged, mut effects) = (Vec::new(), Vec::new());
            for item in list.iter().take(MAX_NUDGES) {
                let agent_id = item["agent_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or("a nudge names no valid agent_id")?;
                let message = item["message"].as_str().ok_or("a nudge has no message")?;
                let agent = agent_of(client, org, agent_id).await?;
                effects.extend(nudge(client, org, &agent, message).await?);
                nudged.push(agent_id);
            }
            Ok((json!({"nudged_agent_ids": nudged}), effects))
        }
        Some(other) => Err(format!("unknown action type `{other}`")),
        None => Err("the action has no type".into()),
    }
}

async fn agent_of(client: &impl GenericClient, org: Uuid, agent_id: Uuid) -> Result<Agent, String> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agents a WHERE a.id = $1 AND a.organization_id = $2",
                columns = Agent::COLUMNS
            ),
            &[&agent_id, &org],
        )
        .await
        .map_err(|e| DomainError::from(e).to_string())?
        .ok_or_else(|| format!("agent {agent_id} is not an agent of the organization"))?;
    Agent::from_row(&row).map_err(|e| e.to_string())
}

/// Sends `message` into the agent's session through its board's gateway.
async fn nudge(
    client: &impl GenericClient,
    org: Uuid,
    agent: &Agent,
    message: &str,
) -> Result<Effects, String> {
    let session = agent
        .openclaw_session_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{} has no session on a gateway", agent.name))?;
    let board_id = agent.board_id.ok_or("the agent belongs to no board")?;
    let board = board::find_in_org(client, org, board_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the board is gone")?;
    let gateway_id = board.gateway_id.ok_or("the agent's board has no gateway")?;
    commands::send_to_session(
        client,
        Target {
            organization_id: org,
            gateway_id,
            agent_id: Some(agent.id),
            board_id: Some(board.id),
        },
        session,
        message,
        json!({"kind": "suggestion", "deliver": true, "label": agent.name}),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(vec![(board.id, vec![TaskChange::Notified { gateway_id }])])
}
