//! Tasks on a board (domain.md §A7): reads with their dependencies, tags and custom field
//! values; create, update (through `task_rules`) and delete. Every change records its
//! activity in the caller's transaction and returns the realtime notices to hand to the
//! board once that transaction has committed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{Actor, AgentRef, Board, TaskChange, TaskRow, TaskStatus};
use crate::domain::outbox::task_notices;
use crate::domain::pipelines;
use crate::domain::proactivity::producers;
use crate::domain::support::board_log::{self, Activities};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::{model_error, non_empty, validation_error};
use crate::domain::tasks::approvals;
use crate::domain::tasks::dependencies::{self, Dependency};
use crate::domain::tasks::rules::{self as task_rules, Decision, DependentEffect, Request};
use crate::domain::tasks::tags::{self, TagRef};
use crate::domain::{DomainError, DomainResult};

/// `TaskRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub board_id: Option<Uuid>,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: String,
    pub due_at: Option<DateTime<Utc>>,
    pub assigned_agent_id: Option<Uuid>,
    pub created_by_user_id: Option<Uuid>,
    pub in_progress_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub depends_on_task_ids: Vec<Uuid>,
    pub tag_ids: Vec<Uuid>,
    pub tags: Vec<TagRef>,
    pub blocked_by_task_ids: Vec<Uuid>,
    pub is_blocked: bool,
    #[schema(value_type = Object)]
    pub custom_field_values: Map<String, Value>,
}

/// The full reads of tasks of one board, in the given order: five queries for any number.
pub async fn reads(
    client: &impl GenericClient,
    board_id: Uuid,
    rows: Vec<TaskRow>,
) -> DomainResult<Vec<Task>> {
    reads_with(client, board_id, rows, None).await
}

/// `reads`, with the tasks' custom-field values when the caller has them already (a task
/// it just created).
async fn reads_with(
    client: &impl GenericClient,
    board_id: Uuid,
    rows: Vec<TaskRow>,
    known_values: Option<HashMap<Uuid, Map<String, Value>>>,
) -> DomainResult<Vec<Task>> {
    let ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
    let values = async {
        match known_values {
            Some(values) => Ok(values),
            None => {
                crate::domain::tasks::field_values::values_for_tasks(client, board_id, &ids).await
            }
        }
    };
    // Sent together: the connection pipelines them (one round trip, not three).
    let (mut deps, mut tags, mut values) = futures_util::try_join!(
        dependencies::for_tasks(client, &ids),
        tags::tags_for_tasks(client, &ids),
        values,
    )?;
    Ok(rows
        .into_iter()
        .map(|t| {
            let deps: Vec<Dependency> = deps.remove(&t.id).unwrap_or_default();
            let tags = tags.remove(&t.id).unwrap_or_default();
            let blocked = dependencies::blocked_by(t.status == TaskStatus::Done, &deps);
            Task {
                id: t.id,
                board_id: Some(t.board_id),
                title: t.title,
                description: t.description,
                status: t.status,
                priority: t.priority,
                due_at: t.due_at,
                assigned_agent_id: t.assigned_agent_id,
                created_by_user_id: t.created_by_user_id,
                in_progress_at: t.in_progress_at,
                created_at: t.created_at,
                updated_at: t.updated_at,
                depends_on_task_ids: deps.iter().map(|d| d.id).collect(),
                tag_ids: tags.iter().map(|t| t.id).collect(),
                tags,
                is_blocked: !blocked.is_empty(),
                blocked_by_task_ids: blocked,
                custom_field_values: values.remove(&t.id).unwrap_or_default(),
            }
        })
        .collect())
}

async fn read_one(
    client: &impl GenericClient,
    row: TaskRow,
    known_values: Option<Map<String, Value>>,
) -> DomainResult<Task> {
    let (board_id, id) = (row.board_id, row.id);
    let known_values = known_values.map(|values| HashMap::from([(id, values)]));
    Ok(reads_with(client, board_id, vec![row], known_values)
        .await?
        .pop()
        .expect("one row in, one read out"))
}

/// The task on this board, locked for the rest of the transaction when `lock`.
pub async fn find(
    client: &impl GenericClient,
    board_id: Uuid,
    task_id: Uuid,
    lock: bool,
) -> DomainResult<TaskRow> {
    let sql = format!(
        "SELECT {columns} FROM tasks t WHERE t.id = $1 AND t.board_id = $2{}",
        if lock { " FOR NO KEY UPDATE" } else { "" },
        columns = TaskRow::COLUMNS
    );
    client
        .query_opt(&sql, &[&task_id, &board_id])
        .await?
        .map(|r| TaskRow::from_row(&r))
        .transpose()?
        .ok_or_else(DomainError::not_found)
}

/// Query of `GET /boards/{id}/tasks`.
#[derive(Debug, Default, Deserialize)]
pub struct TaskFilter {
    pub status: Option<String>,
    pub assigned_agent_id: Option<Uuid>,
    pub unassigned: Option<bool>,
}

/// The board's tasks, newest first.
pub async fn list(
    client: &impl GenericClient,
    board: &Board,
    filter: &TaskFilter,
    page: PageParams,
) -> DomainResult<Page<Task>> {
    let statuses = task_rules::parse_status_filter(filter.status.as_deref())?;
    let statuses = (!statuses.is_empty()).then_some(statuses);
    let unassigned = filter.unassigned.unwrap_or(false);
    let params: [&(dyn ToSql + Sync); 4] =
        [&board.id, &statuses, &filter.assigned_agent_id, &unassigned];
    let page = fetch_page(
        client,
        TaskRow::COLUMNS,
        "FROM tasks t WHERE t.board_id = $1 AND ($2::text[] IS NULL OR t.status = ANY($2)) \
         AND ($3::uuid IS NULL OR t.assigned_agent_id = $3) \
         AND (NOT $4 OR t.assigned_agent_id IS NULL)",
        "t.created_at DESC, t.id",
        &params,
        page,
        TaskRow::from_row,
    )
    .await?;
    Ok(Page {
        items: reads(client, board.id, page.items).await?,
        total: page.total,
        limit: page.limit,
        offset: page.offset,
    })
}

fn default_priority() -> String {
    "medium".into()
}

/// `TaskCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskCreate {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_status")]
    pub status: TaskStatus,
    #[serde(default = "default_priority")]
    pub priority: String,
    #[serde(
        default,
        deserialize_with = "crate::domain::support::validation::lenient_datetime"
    )]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub assigned_agent_id: Option<Uuid>,
    #[serde(default)]
    pub depends_on_task_ids: Vec<Uuid>,
    #[serde(default)]
    pub tag_ids: Vec<Uuid>,
    #[serde(default)]
    pub created_by_user_id: Option<Uuid>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom_field_values: Map<String, Value>,
}

fn default_status() -> TaskStatus {
    TaskStatus::Inbox
}

/// The agent of the board's organization with this id, as the rules see it.
async fn agent_ref(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent_id: Uuid,
) -> DomainResult<Option<AgentRef>> {
    let row = client
        .query_opt(
            "SELECT id, board_id, is_board_lead FROM agents WHERE id = $1 AND organization_id = $2",
            &[&agent_id, &organization_id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(AgentRef {
        id: get(&r, "id")?,
        board_id: get(&r, "board_id")?,
        is_board_lead: get(&r, "is_board_lead")?,
    }))
}

/// A `created_by_user_id` must name a member of the board's organization.
async fn check_creator(
    client: &impl GenericClient,
    organization_id: Uuid,
    user_id: Uuid,
) -> DomainResult<()> {
    let found = client
        .query_opt(
            "SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2",
            &[&organization_id, &user_id],
        )
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(validation_error(
            "value_error",
            &["body", "created_by_user_id"],
            "Value error, user is not a member of this organization",
            json!(user_id),
        )),
    }
}

/// Creates a task for a user. Unlike the reference, an assignee must be an agent of the
/// board (404/409) and a task created in progress gets its `in_progress_at`.
/// Creates a task for a user, or for a board lead agent (the only agents that create:
/// the task is then `auto_created` with `auto_reason` `lead_agent:{id}`, and a lead may not
/// be its assignee).
pub async fn create(
    client: &impl GenericClient,
    board: &Board,
    actor: &Actor,
    input: TaskCreate,
) -> DomainResult<(Task, Vec<TaskChange>)> {
    let title = non_empty("title", &input.title)?;
    let task_id = Uuid::new_v4();
    let deps =
        dependencies::validate(client, board.id, task_id, &input.depends_on_task_ids).await?;
    let blocked: Vec<Uuid> = if deps.is_empty() {
        Vec::new()
    } else {
        client
            .query(
                "SELECT id FROM tasks WHERE id = ANY($1) AND status <> 'done'",
                &[&deps],
            )
            .await?
            .iter()
            .map(|r| get(r, "id"))
            .collect::<Result<_, _>>()?
    };
    let blocked: Vec<Uuid> = deps
        .iter()
        .filter(|d| blocked.contains(d))
        .copied()
        .collect();
    if !blocked.is_empty()
        && (input.assigned_agent_id.is_some() || input.status != TaskStatus::Inbox)
    {
        return Err(task_rules::blocked_error(&blocked));
    }
    if let Some(agent_id) = input.assigned_agent_id {
        let agent = agent_ref(client, board.organization_id, agent_id)
            .await?
            .ok_or_else(DomainError::not_found)?;
        if agent.is_board_lead && matches!(actor, Actor::Agent(_)) {
            return Err(DomainError::forbidden(
                "Board leads cannot assign tasks to themselves.",
            ));
        }
        if agent.board_id.is_some_and(|b| b != board.id) {
            return Err(DomainError::Conflict(json!("Conflict")));
        }
    }
    let (creator, auto_reason) = match actor {
        Actor::User(user_id) => {
            let creator = input.created_by_user_id.unwrap_or(*user_id);
            if creator != *user_id {
                check_creator(client, board.organization_id, creator).await?;
            }
            (Some(creator), None)
        }
        Actor::Agent(lead) => (None, Some(format!("lead_agent:{}", lead.id))),
        // The user who started the run, when one did (the pipeline code vouches for them).
        Actor::Pipeline(run) => (
            input.created_by_user_id,
            Some(format!("pipeline_run:{run}")),
        ),
    };
    let row = client
        .query_one(
            &format!(
                "INSERT INTO tasks AS t (id, organization_id, board_id, title, description, status, priority, \
                   due_at, in_progress_at, created_by_user_id, assigned_agent_id, auto_created, auto_reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $6 = 'in_progress' THEN now() END, $9, $10, \
                   $11::text IS NOT NULL, $11) \
                 RETURNING {columns}",
                columns = TaskRow::COLUMNS
            ),
            &[
                &task_id,
                &board.organization_id,
                &board.id,
                &title,
                &input.description,
                &input.status.as_str(),
                &input.priority,
                &input.due_at,
                &creator,
                &input.assigned_agent_id,
                &auto_reason,
            ],
        )
        .await?;
    let row = TaskRow::from_row(&row)?;
    let values = crate::domain::tasks::field_values::apply_on_create(
        client,
        board.id,
        task_id,
        &input.custom_field_values,
    )
    .await?;
    // A new task has no links to replace: only what it asks for is written.
    if !deps.is_empty() {
        dependencies::replace(client, board.id, task_id, &deps).await?;
    }
    if !input.tag_ids.is_empty() {
        tags::replace_task_tags(client, board.organization_id, task_id, &input.tag_ids).await?;
    }
    let mut activities = Activities::default();
    let message = match actor {
        Actor::User(_) => format!("Task created: {title}."),
        Actor::Pipeline(_) => format!("Task created by a pipeline: {title}."),
        Actor::Agent(_) => format!("Task created by lead: {title}."),
    };
    activities.push(task_id, actor.agent_id(), "task.created", message);
    let notices = task_notices::created(client, board, actor, &row).await?;
    let task = read_one(client, row.clone(), Some(values)).await?;
    let change = TaskChange::Created {
        task: serde_json::to_value(&task).unwrap_or(Value::Null),
    };
    let org = board.organization_id;
    let synced = board_log::close(
        client,
        board.id,
        org,
        activities,
        std::slice::from_ref(&change),
    )
    .await?;
    let recorded = producers::task_created(client, board, &row).await?;
    Ok((
        task,
        [change]
            .into_iter()
            .chain(synced)
            .chain(notices)
            .chain([recorded])
            .collect(),
    ))
}

/// `TaskUpdate`: absent fields stay; `null` clears where the column may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TaskUpdate {
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<TaskStatus>)]
    pub status: Option<Option<TaskStatus>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub priority: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::domain::support::validation::lenient_datetime_patch"
    )]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub assigned_agent_id: Option<Option<Uuid>>,
    /// `null` is the same as absent.
    #[serde(default)]
    pub depends_on_task_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub tag_ids: Option<Vec<Uuid>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub custom_field_values: Option<Option<Map<String, Value>>>,
    /// A comment recorded with the change; blank is the same as absent.
    #[serde(default)]
    pub comment: Option<String>,
}

fn not_null<T>(field: &str, value: Option<Option<T>>) -> DomainResult<Option<T>> {
    match value {
        Some(None) => Err(validation_error(
            "string_type",
            &["body", field],
            "Input should be a valid string",
            Value::Null,
        )),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// The plain (non-lifecycle) columns a patch sets.
struct PlainFields {
    title: Option<String>,
    description: Option<Option<String>>,
    priority: Option<String>,
    due_at: Option<Option<DateTime<Utc>>>,
}

impl PlainFields {
    fn names(&self) -> Vec<&'static str> {
        [
            (self.title.is_some(), "title"),
            (self.description.is_some(), "description"),
            (self.priority.is_some(), "priority"),
            (self.due_at.is_some(), "due_at"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

/// Whether the previous assignee left a non-blank comment since `since`: moving to review
/// needs one, in the patch or earlier.
async fn has_recent_comment(
    client: &impl GenericClient,
    task_id: Uuid,
    author: Option<Uuid>,
    since: Option<DateTime<Utc>>,
) -> DomainResult<bool> {
    let (Some(author), Some(since)) = (author, since) else {
        return Ok(false);
    };
    let row = client
        .query_opt(
            "SELECT coalesce(btrim(message), '') <> '' AS commented FROM activity_events \
             WHERE task_id = $1 AND event_type = 'task.comment' AND agent_id = $2 AND created_at >= $3 \
             ORDER BY created_at DESC LIMIT 1",
            &[&task_id, &author, &since],
        )
        .await?;
    match row {
        Some(r) => Ok(get(&r, "commented")?),
        None => Ok(false),
    }
}

/// Updates a task as `actor`, under the rules of `task_rules`. Returns the read and the
/// realtime notices (this task, and dependents a reopened dependency sent back).
pub async fn update(
    client: &impl GenericClient,
    board: &Board,
    actor: &Actor,
    task_id: Uuid,
    patch: TaskUpdate,
) -> DomainResult<(Task, Vec<TaskChange>)> {
    let status = match patch.status {
        Some(None) => return Err(model_error("status is required")),
        other => other.flatten(),
    };
    let plain = PlainFields {
        title: not_null("title", patch.title)?
            .map(|t| non_empty("title", &t))
            .transpose()?,
        description: patch.description,
        priority: not_null("priority", patch.priority)?,
        due_at: patch.due_at,
    };
    let comment = patch
        .comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let custom_values = patch.custom_field_values.map(Option::unwrap_or_default);

    let current = find(client, board.id, task_id, true).await?;
    let now = Utc::now();
    let worker = matches!(actor, Actor::Agent(a) if !a.is_board_lead);
    if let (Some(deps), false) = (&patch.depends_on_task_ids, worker) {
        if current.status == TaskStatus::Done {
            return Err(task_rules::dependencies_of_done_task_error());
        }
        let deps = dependencies::validate(client, board.id, task_id, deps).await?;
        dependencies::replace(client, board.id, task_id, &deps).await?;
    }
    let deps = dependencies::of_task(client, task_id).await?;
    let blocked = dependencies::blocked_by(false, &deps);
    let assignee = match patch.assigned_agent_id {
        Some(Some(id)) => agent_ref(client, board.organization_id, id).await?,
        _ => None,
    };
    let request = Request {
        status,
        assigned_agent_id: patch.assigned_agent_id,
        assignee,
        plain_fields: plain.names(),
        comment: comment.is_some(),
        dependencies: patch.depends_on_task_ids.is_some(),
        tags: patch.tag_ids.is_some(),
        custom_fields: custom_values.is_some(),
    };
    let decision = task_rules::decide(actor, board, current.progress(), &blocked, &request, now)?;
    let approvals = approvals::task_approval_state(client, board.id, task_id).await?;
    task_rules::check_gates(board, current.status, &decision, approvals)?;
    if decision.needs_review_comment && comment.is_none() {
        let author = decision
            .progress
            .assigned_agent_id
            .or(current.assigned_agent_id);
        let since = decision
            .progress
            .previous_in_progress_at
            .or(current.in_progress_at);
        if !has_recent_comment(client, task_id, author, since).await? {
            return Err(DomainError::unprocessable("Comment is required."));
        }
    }
    if let Some(tag_ids) = &patch.tag_ids {
        tags::replace_task_tags(client, board.organization_id, task_id, tag_ids).await?;
    }
    if let Some(values) = &custom_values {
        crate::domain::tasks::field_values::apply_on_update(client, board.id, task_id, values)
            .await?;
    }
    let row = save(client, &current, &plain, &decision, now).await?;
    if row.status != current.status {
        crate::domain::calendar::schedules::follow_task(client, task_id, row.status.as_str())
            .await?;
    }
    let was_done = current.status == TaskStatus::Done;
    let flipped = was_done != (row.status == TaskStatus::Done);
    // Dependents are locked before `board_log::close` locks the board's counters: every
    // path locks tasks before the board, so two updates cannot wait on each other.
    let dependents = if flipped {
        lock_dependents(client, task_id).await?
    } else {
        Vec::new()
    };

    let agent_id = actor.agent_id();
    let mut changes = Vec::new();
    let mut activities = Activities::default();
    if let Some(comment) = comment {
        activities.push(task_id, agent_id, "task.comment", comment);
        changes.push(TaskChange::Commented { task_id });
    }
    let (event_type, message) = task_rules::update_event(&row.title, current.status, row.status);
    activities.push(task_id, agent_id, event_type, message);
    changes.push(TaskChange::Updated {
        task_id,
        changes: json!({
            "status": row.status, "previous_status": current.status, "title": row.title,
            "description": row.description, "priority": row.priority,
            "assigned_agent_id": row.assigned_agent_id, "due_at": row.due_at,
            "in_progress_at": row.in_progress_at,
        }),
        updated_by: actor.reference(),
    });
    let reconciled =
        reconcile_dependents(client, &row, dependents, was_done, actor, &mut activities);
    changes.extend(reconciled.await?);
    let notices = task_notices::updated(client, board, actor, &current, &row).await?;
    let task = read_one(client, row.clone(), None).await?;
    let org = board.organization_id;
    let synced = board_log::close(client, board.id, org, activities, &changes).await?;
    changes.extend(synced);
    changes.extend(notices);
    if row.status != current.status {
        changes.push(producers::task_status_changed(client, board, current.status, &row).await?);
        if row.status == TaskStatus::Done {
            pipelines::progress::task_ended(client, task_id, None).await?;
        }
    }
    Ok((task, changes))
}

async fn save(
    client: &impl GenericClient,
    current: &TaskRow,
    plain: &PlainFields,
    decision: &Decision,
    now: DateTime<Utc>,
) -> DomainResult<TaskRow> {
    let p = &decision.progress;
    let description = plain
        .description
        .clone()
        .unwrap_or_else(|| current.description.clone());
    let due_at = plain.due_at.unwrap_or(current.due_at);
    let row = client
        .query_one(
            &format!(
                "UPDATE tasks t SET title = coalesce($2, t.title), description = $3, \
                   priority = coalesce($4, t.priority), due_at = $5, status = $6, assigned_agent_id = $7, \
                   in_progress_at = $8, previous_in_progress_at = $9, updated_at = $10 \
                 WHERE t.id = $1 RETURNING {columns}",
                columns = TaskRow::COLUMNS
            ),
            &[
                &current.id,
                &plain.title,
                &description,
                &plain.priority,
                &due_at,
                &p.status.as_str(),
                &p.assigned_agent_id,
                &p.in_progress_at,
                &p.previous_in_progress_at,
                &now,
            ],
        )
        .await?;
    Ok(TaskRow::from_row(&row)?)
}

/// The unfinished tasks that depend on `task_id`, locked.
async fn lock_dependents(client: &impl GenericClient, task_id: Uuid) -> DomainResult<Vec<TaskRow>> {
    let ids = dependencies::dependents(client, task_id).await?;
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM tasks t WHERE t.id = ANY($1) AND t.status <> 'done' \
                 ORDER BY t.id FOR NO KEY UPDATE",
                columns = TaskRow::COLUMNS
            ),
            &[&ids],
        )
        .await?;
    Ok(TaskRow::from_rows(&rows)?)
}

/// A dependency's completion flipped: started dependents go back to the inbox when it was
/// reopened; every other unfinished dependent gets a note.
async fn reconcile_dependents(
    client: &impl GenericClient,
    dependency: &TaskRow,
    dependents: Vec<TaskRow>,
    reopened: bool,
    actor: &Actor,
    activities: &mut Activities,
) -> DomainResult<Vec<TaskChange>> {
    let mut changes = Vec::new();
    for dependent in dependents {
        let agent_id = actor.agent_id();
        match task_rules::dependent_effect(reopened, &dependent.progress()) {
            DependentEffect::ReturnToInbox => {
                client
                    .execute(
                        "UPDATE tasks SET status = 'inbox', assigned_agent_id = NULL, \
                         in_progress_at = NULL, updated_at = now() WHERE id = $1",
                        &[&dependent.id],
                    )
                    .await?;
                let message = format!(
                    "Task returned to inbox: dependency reopened ({}).",
                    dependency.title
                );
                activities.push(dependent.id, agent_id, "task.status_changed", message);
                changes.push(TaskChange::Updated {
                    task_id: dependent.id,
                    changes: json!({
                        "status": "inbox", "previous_status": dependent.status,
                        "assigned_agent_id": null, "in_progress_at": null,
                    }),
                    updated_by: actor.reference(),
                });
            }
            DependentEffect::Note => {
                let message = format!("Dependency completion changed: {}.", dependency.title);
                activities.push(dependent.id, agent_id, "task.updated", message);
            }
        }
    }
    Ok(changes)
}

/// Deletes a task with what hangs on it. Approvals whose primary task it was move to their
/// next linked task, or go when it was their only one.
pub async fn delete(
    client: &impl GenericClient,
    board: &Board,
    task_id: Uuid,
) -> DomainResult<Vec<TaskChange>> {
    let task = find(client, board.id, task_id, true).await?;
    pipelines::progress::task_ended(client, task_id, Some("the stage's task was deleted")).await?;
    client
        .execute(
            "DELETE FROM approvals a WHERE a.task_id = $1 AND NOT EXISTS ( \
               SELECT 1 FROM approval_task_links l WHERE l.approval_id = a.id AND l.task_id <> $1)",
            &[&task_id],
        )
        .await?;
    client
        .execute(
            "UPDATE approvals a SET task_id = ( \
               SELECT l.task_id FROM approval_task_links l WHERE l.approval_id = a.id AND l.task_id <> $1 \
               ORDER BY l.created_at, l.id LIMIT 1) \
             WHERE a.task_id = $1",
            &[&task_id],
        )
        .await?;
    // Dependencies, tags, custom values, approval links and activity go by cascade.
    client
        .execute("DELETE FROM tasks WHERE id = $1", &[&task_id])
        .await?;
    let change = TaskChange::Deleted { task_id };
    let synced = board_log::append_all(client, board.id, std::slice::from_ref(&change)).await?;
    Ok([change]
        .into_iter()
        .chain(synced)
        .chain([producers::task_deleted(client, board, &task).await?])
        .collect())
}
