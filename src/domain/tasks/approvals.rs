//! Approvals and their links to tasks.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record, RowError};
use crate::db::GenericClient;
use crate::domain::model::{Approval, ApprovalStatus, Board, TaskApprovalState};
use crate::domain::outbox::task_notices;
use crate::domain::support::activity::next_feed_seq;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::{dedupe, missing_ids, model_error};
use crate::domain::{DomainError, DomainResult};

pub async fn task_approval_state(
    client: &impl GenericClient,
    board_id: Uuid,
    task_id: Uuid,
) -> DomainResult<TaskApprovalState> {
    // Approvals linked by a link row or, for legacy rows, only by their primary `task_id`.
    let row = client
        .query_one(
            "SELECT \
               coalesce(bool_or(a.status = 'pending'), false) AS has_pending, \
               coalesce(bool_or(a.status = 'approved'), false) AS has_approved \
             FROM approvals a \
             WHERE a.board_id = $1 \
               AND (a.task_id = $2 OR EXISTS ( \
                 SELECT 1 FROM approval_task_links l WHERE l.approval_id = a.id AND l.task_id = $2))",
            &[&board_id, &task_id],
        )
        .await?;
    Ok(TaskApprovalState {
        has_pending: get(&row, "has_pending")?,
        has_approved: get(&row, "has_approved")?,
    })
}

/// Per task: (all approvals, pending approvals) linked to it.
pub async fn approval_counts(
    client: &impl GenericClient,
    task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, (i64, i64)>> {
    if task_ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Union of link rows and legacy primary `task_id`s, each approval counted once per task.
    let rows = client
        .query(
            "WITH linked AS ( \
               SELECT l.task_id, l.approval_id FROM approval_task_links l WHERE l.task_id = ANY($1) \
               UNION \
               SELECT a.task_id, a.id FROM approvals a WHERE a.task_id = ANY($1)) \
             SELECT linked.task_id, count(*) AS total, \
               count(*) FILTER (WHERE a.status = 'pending') AS pending \
             FROM linked JOIN approvals a ON a.id = linked.approval_id \
             GROUP BY linked.task_id",
            &[&task_ids],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((get(r, "task_id")?, (get(r, "total")?, get(r, "pending")?))))
        .collect()
}

/// Fills the linked tasks (link rows, else the legacy primary `task_id`) and their titles.
async fn with_tasks(
    client: &impl GenericClient,
    mut approvals: Vec<Approval>,
) -> DomainResult<Vec<Approval>> {
    let ids: Vec<Uuid> = approvals.iter().map(|a| a.id).collect();
    let rows = client
        .query(
            "SELECT l.approval_id, l.task_id, t.title FROM approval_task_links l \
             LEFT JOIN tasks t ON t.id = l.task_id \
             WHERE l.approval_id = ANY($1) ORDER BY l.approval_id, l.created_at, l.id",
            &[&ids],
        )
        .await?;
    let mut links: HashMap<Uuid, Vec<(Uuid, Option<String>)>> = HashMap::new();
    for r in rows {
        links
            .entry(get(&r, "approval_id")?)
            .or_default()
            .push((get(&r, "task_id")?, get(&r, "title")?));
    }
    let legacy: Vec<Uuid> = approvals
        .iter()
        .filter(|a| !links.contains_key(&a.id))
        .filter_map(|a| a.task_id)
        .collect();
    let legacy_titles: HashMap<Uuid, String> = client
        .query("SELECT id, title FROM tasks WHERE id = ANY($1)", &[&legacy])
        .await?
        .iter()
        .map(|r| Ok((get(r, "id")?, get(r, "title")?)))
        .collect::<Result<_, RowError>>()?;
    for approval in &mut approvals {
        let linked = links.remove(&approval.id).unwrap_or_else(|| {
            approval
                .task_id
                .map(|id| vec![(id, legacy_titles.get(&id).cloned())])
                .unwrap_or_default()
        });
        approval.task_id = linked.first().map(|(id, _)| *id);
        approval.task_ids = linked.iter().map(|(id, _)| *id).collect();
        approval.task_titles = linked.into_iter().filter_map(|(_, t)| t).collect();
    }
    Ok(approvals)
}

/// Query of `GET /boards/{id}/approvals`.
#[derive(Debug, Default, Deserialize)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
}

/// The board's approvals, newest first.
pub async fn list(
    client: &impl GenericClient,
    board_id: Uuid,
    filter: &ApprovalFilter,
    page: PageParams,
) -> DomainResult<Page<Approval>> {
    let status = filter.status.map(ApprovalStatus::as_str);
    let page = fetch_page(
        client,
        Approval::COLUMNS,
        "FROM approvals a WHERE a.board_id = $1 AND ($2::text IS NULL OR a.status = $2)",
        "a.created_at DESC, a.id",
        &[&board_id, &status],
        page,
        Approval::from_row,
    )
    .await?;
    Ok(Page {
        items: with_tasks(client, page.items).await?,
        total: page.total,
        limit: page.limit,
        offset: page.offset,
    })
}

fn default_pending() -> ApprovalStatus {
    ApprovalStatus::Pending
}

/// `ApprovalCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApprovalCreate {
    pub action_type: String,
    #[serde(default)]
    pub task_id: Option<Uuid>,
    #[serde(default)]
    pub task_ids: Vec<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
    pub confidence: f64,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub rubric_scores: Option<HashMap<String, i64>>,
    #[serde(default = "default_pending")]
    pub status: ApprovalStatus,
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    #[serde(default)]
    pub lead_reasoning: Option<String>,
}

/// A non-blank string at `key` of `map`.
fn reason_in(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// The payload with its reason: `payload.reason`, `payload.decision.reason`, or else the
/// `lead_reasoning`, copied into `payload.reason`.
fn payload_with_reason(
    payload: Option<Map<String, Value>>,
    lead_reasoning: Option<&str>,
) -> DomainResult<Option<Map<String, Value>>> {
    if let Some(p) = &payload {
        let decision = p.get("decision").and_then(Value::as_object);
        if reason_in(p, "reason") || decision.is_some_and(|d| reason_in(d, "reason")) {
            return Ok(payload);
        }
    }
    match lead_reasoning.map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => {
            let mut p = payload.unwrap_or_default();
            p.insert("reason".into(), Value::String(reason.into()));
            Ok(Some(p))
        }
        None => Err(model_error("lead reasoning is required")),
    }
}

/// Every task the request names, first occurrence first: `task_id`, `task_ids`, then the
/// payload's `task_ids`/`taskIds`/`taskIDs` lists and `task_id`/`taskId`/`taskID` values.
fn requested_task_ids(input: &ApprovalCreate, payload: Option<&Map<String, Value>>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = input.task_id.into_iter().collect();
    ids.extend(&input.task_ids);
    let parse = |v: &Value| v.as_str().and_then(|s| Uuid::parse_str(s.trim()).ok());
    if let Some(p) = payload {
        for key in ["task_ids", "taskIds", "taskIDs"] {
            if let Some(list) = p.get(key).and_then(Value::as_array) {
                ids.extend(list.iter().filter_map(parse));
            }
        }
        for key in ["task_id", "taskId", "taskID"] {
            ids.extend(p.get(key).and_then(parse));
        }
    }
    dedupe(&ids)
}

fn check_confidence(confidence: f64) -> DomainResult<()> {
    if !(0.0..=100.0).contains(&confidence) {
        let (kind, msg, bound) = if confidence < 0.0 {
            (
                "greater_than_equal",
                "Input should be greater than or equal to 0",
                json!({"ge": 0}),
            )
        } else {
            (
                "less_than_equal",
                "Input should be less than or equal to 100",
                json!({"le": 100}),
            )
        };
        return Err(DomainError::Unprocessable(json!([{
            "type": kind, "loc": ["body", "confidence"], "msg": msg, "input": confidence, "ctx": bound,
        }])));
    }
    Ok(())
}

/// Locks the tasks (in id order, so concurrent requests cannot deadlock) and refuses when
/// any already has a pending approval on the board other than `except`.
async fn ensure_no_pending(
    client: &impl GenericClient,
    board_id: Uuid,
    task_ids: &[Uuid],
    except: Option<Uuid>,
) -> DomainResult<()> {
    if task_ids.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "SELECT 1 FROM tasks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&task_ids],
        )
        .await?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (x.task_id) x.task_id, a.id FROM approvals a \
             JOIN LATERAL ( \
               SELECT l.task_id FROM approval_task_links l WHERE l.approval_id = a.id \
               UNION SELECT a.task_id WHERE a.task_id IS NOT NULL) x ON true \
             WHERE a.board_id = $1 AND a.status = 'pending' AND x.task_id = ANY($2) \
               AND ($3::uuid IS NULL OR a.id <> $3) \
             ORDER BY x.task_id, a.created_at",
            &[&board_id, &task_ids, &except],
        )
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut conflicts: Vec<(Uuid, Uuid)> = rows
        .iter()
        .map(|r| Ok((get(r, "task_id")?, get(r, "id")?)))
        .collect::<Result<_, RowError>>()?;
    conflicts.sort_by_key(|(task, _)| task.to_string());
    Err(DomainError::Conflict(json!({
        "message": "Each task can have only one pending approval.",
        "conflicts": conflicts
            .iter()
            .map(|(task_id, approval_id)| json!({"task_id": task_id, "approval_id": approval_id}))
            .collect::<Vec<_>>(),
    })))
}

/// Creates an approval. Unlike the reference, linked tasks must be tasks of the board
/// (404 with the missing ids) and an agent must be one of the organization's.
pub async fn create(
    client: &impl GenericClient,
    board: &Board,
    input: ApprovalCreate,
) -> DomainResult<(Approval, Option<Uuid>)> {
    check_confidence(input.confidence)?;
    let payload = payload_with_reason(input.payload.clone(), input.lead_reasoning.as_deref())?;
    let task_ids = requested_task_ids(&input, payload.as_ref());
    let missing = missing_ids(
        client,
        "SELECT id FROM tasks WHERE board_id = $1 AND id = ANY($2)",
        board.id,
        &task_ids,
    )
    .await?;
    if !missing.is_empty() {
        return Err(DomainError::NotFound(json!({
            "message": "One or more tasks were not found on this board.",
            "missing_task_ids": missing,
        })));
    }
    if let Some(agent_id) = input.agent_id {
        let found = client
            .query_opt(
                "SELECT 1 FROM agents WHERE id = $1 AND organization_id = $2",
                &[&agent_id, &board.organization_id],
            )
            .await?;
        if found.is_none() {
            return Err(DomainError::not_found());
        }
    }
    if input.status == ApprovalStatus::Pending {
        ensure_no_pending(client, board.id, &task_ids, None).await?;
    }
    let id = Uuid::new_v4();
    let payload = payload.map(Value::Object);
    let rubric = input.rubric_scores.map(|r| json!(r));
    let row = client
        .query_one(
            &format!(
                "INSERT INTO approvals AS a (id, organization_id, board_id, task_id, agent_id, action_type, payload, \
                   confidence, rubric_scores, status, resolved_at, feed_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $10 <> 'pending' THEN now() END, $11) \
                 RETURNING {columns}",
                columns = Approval::COLUMNS
            ),
            &[
                &id,
                &board.organization_id,
                &board.id,
                &task_ids.first(),
                &input.agent_id,
                &input.action_type,
                &payload,
                &input.confidence,
                &rubric,
                &input.status.as_str(),
                &next_feed_seq(client, board.id).await?,
            ],
        )
        .await?;
    crate::domain::support::links::insert_ordered(
        client,
        "approval_task_links",
        ("approval_id", id),
        None,
        "task_id",
        &task_ids,
    )
    .await?;
    let approval = with_tasks(client, vec![Approval::from_row(&row)?])
        .await?
        .remove(0);
    let event = if approval.status == ApprovalStatus::Pending {
        Some(recorded(client, board, "approval.requested", &approval).await?)
    } else {
        None
    };
    Ok((approval, event))
}

/// `approval.requested` / `approval.resolved` for the rule engine; the event's id.
async fn recorded(
    client: &impl GenericClient,
    board: &Board,
    event_type: &str,
    approval: &Approval,
) -> DomainResult<Uuid> {
    let payload = json!({
        "approval_id": approval.id, "action_type": approval.action_type,
        "status": approval.status, "confidence": approval.confidence, "task_ids": approval.task_ids,
    });
    let event = crate::domain::proactivity::producers::approval(
        client,
        board,
        event_type,
        approval.agent_id,
        approval.task_id,
        payload,
    )
    .await?;
    Ok(event.id)
}

/// `ApprovalUpdate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ApprovalUpdate {
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<ApprovalStatus>)]
    pub status: Option<Option<ApprovalStatus>>,
}

/// Resolves or re-opens an approval. Re-opening checks the pending conflict again; every
/// resolution stamps `resolved_at` (kept when re-opened, as the reference does). A newly
/// approved or rejected approval is told to the board's lead; the gateway to poke then
/// comes back with it, and the `approval.resolved` event recorded.
pub async fn update(
    client: &impl GenericClient,
    board: &Board,
    approval_id: Uuid,
    patch: ApprovalUpdate,
) -> DomainResult<(Approval, Option<Uuid>, Option<Uuid>)> {
    let status = match patch.status {
        Some(None) => return Err(model_error("status is required")),
        other => other.flatten(),
    };
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM approvals a WHERE a.id = $1 AND a.board_id = $2 FOR NO KEY UPDATE",
                columns = Approval::COLUMNS
            ),
            &[&approval_id, &board.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let current = with_tasks(client, vec![Approval::from_row(&row)?])
        .await?
        .remove(0);
    let Some(status) = status else {
        return Ok((current, None, None));
    };
    if status == ApprovalStatus::Pending && current.status != ApprovalStatus::Pending {
        ensure_no_pending(client, board.id, &current.task_ids, Some(approval_id)).await?;
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE approvals a SET status = $2, feed_seq = $3, \
                   resolved_at = CASE WHEN $2 <> 'pending' THEN now() ELSE a.resolved_at END \
                 WHERE a.id = $1 RETURNING {columns}",
                columns = Approval::COLUMNS
            ),
            &[
                &approval_id,
                &status.as_str(),
                &next_feed_seq(client, board.id).await?,
            ],
        )
        .await?;
    let approval = with_tasks(client, vec![Approval::from_row(&row)?])
        .await?
        .remove(0);
    let notified = if approval.status != current.status {
        task_notices::approval_resolved(client, board, &approval).await?
    } else {
        None
    };
    let resolved = approval.status != current.status && approval.status != ApprovalStatus::Pending;
    if resolved {
        let approved = approval.status == ApprovalStatus::Approved;
        crate::domain::pipelines::progress::approval_resolved(client, approval.id, approved)
            .await?;
    }
    let event = if resolved {
        Some(recorded(client, board, "approval.resolved", &approval).await?)
    } else {
        None
    };
    Ok((approval, notified, event))
}

/// The board's approvals whose last change is after feed number `after`, in feed order.
pub async fn changed_after(
    client: &impl GenericClient,
    board_id: Uuid,
    after: i64,
    limit: i64,
) -> DomainResult<Vec<(i64, Approval)>> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns}, a.feed_seq FROM approvals a \
                 WHERE a.board_id = $1 AND a.feed_seq > $2 ORDER BY a.feed_seq LIMIT $3",
                columns = Approval::COLUMNS
            ),
            &[&board_id, &after, &limit],
        )
        .await?;
    let seqs = rows.iter().map(|r| get::<i64>(r, "feed_seq"));
    let seqs = seqs.collect::<Result<Vec<_>, _>>()?;
    let approvals = with_tasks(client, Approval::from_rows(&rows)?).await?;
    Ok(seqs.into_iter().zip(approvals).collect())
}
