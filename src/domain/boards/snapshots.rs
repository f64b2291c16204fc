//! Denormalized views the console renders in one request: a board with its task cards,
//! agents and approvals, and a board group with a few top tasks per board.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::boards::groups as board_groups;
use crate::domain::boards::memory;
use crate::domain::model::{
    Agent, Approval, Board, BoardGroup, BoardMemory, Principal, TaskRow, TaskStatus,
};
use crate::domain::support::access::{self, Access};
use crate::domain::support::pagination::PageParams;
use crate::domain::tasks::approvals::{self, ApprovalFilter};
use crate::domain::tasks::crud::{self as tasks, Task};
use crate::domain::tasks::tags::{self, TagRef};
use crate::domain::{DomainError, DomainResult};

/// `TaskCardRead`: a task read with its assignee's name and approval counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCard {
    #[serde(flatten)]
    pub task: Task,
    pub assignee: Option<String>,
    pub approvals_count: i64,
    pub approvals_pending_count: i64,
}

/// `BoardSnapshot`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardSnapshot {
    pub board: Board,
    pub tasks: Vec<TaskCard>,
    pub agents: Vec<Agent>,
    /// The newest 200.
    pub approvals: Vec<Approval>,
    /// Board chat: the newest 200 non-blank chat entries, oldest first.
    pub chat_messages: Vec<BoardMemory>,
    pub pending_approvals_count: i64,
}

const SNAPSHOT_APPROVALS: i64 = 200;

pub async fn board_snapshot(
    client: &impl GenericClient,
    board: Board,
) -> DomainResult<BoardSnapshot> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM tasks t WHERE t.board_id = $1 ORDER BY t.created_at DESC, t.id",
                TaskRow::COLUMNS
            ),
            &[&board.id],
        )
        .await?;
    let rows = TaskRow::from_rows(&rows)?;
    let task_ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
    let counts = approvals::approval_counts(client, &task_ids).await?;
    let agents = client
        .query(
            &format!(
                "SELECT {} FROM agents a WHERE a.board_id = $1 ORDER BY a.created_at DESC, a.id",
                Agent::COLUMNS
            ),
            &[&board.id],
        )
        .await?;
    let agents = Agent::from_rows(&agents)?;
    let names: HashMap<Uuid, &str> = agents.iter().map(|a| (a.id, a.name.as_str())).collect();
    let tasks = tasks::reads(client, board.id, rows)
        .await?
        .into_iter()
        .map(|task| {
            let (all, pending) = counts.get(&task.id).copied().unwrap_or_default();
            TaskCard {
                assignee: task
                    .assigned_agent_id
                    .and_then(|id| names.get(&id).map(|n| n.to_string())),
                approvals_count: all,
                approvals_pending_count: pending,
                task,
            }
        })
        .collect();
    let recent = PageParams {
        limit: SNAPSHOT_APPROVALS,
        offset: 0,
    };
    let approvals = approvals::list(client, board.id, &ApprovalFilter::default(), recent)
        .await?
        .items;
    let chat_messages = memory::recent_chat(client, board.id).await?;
    let row = client
        .query_one(
            "SELECT count(*) AS pending FROM approvals WHERE board_id = $1 AND status = 'pending'",
            &[&board.id],
        )
        .await?;
    let pending_approvals_count: i64 = get(&row, "pending")?;
    Ok(BoardSnapshot {
        board,
        tasks,
        agents,
        approvals,
        chat_messages,
        pending_approvals_count,
    })
}

/// `BoardGroupTaskSummary`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupTaskSummary {
    pub id: Uuid,
    pub board_id: Uuid,
    pub board_name: String,
    pub title: String,
    pub status: TaskStatus,
    pub priority: String,
    pub assigned_agent_id: Option<Uuid>,
    pub assignee: Option<String>,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    pub in_progress_at: Option<chrono::DateTime<chrono::Utc>>,
    pub tags: Vec<TagRef>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// `BoardGroupBoardSnapshot`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupBoardSnapshot {
    pub board: Board,
    pub task_counts: HashMap<String, i64>,
    pub tasks: Vec<GroupTaskSummary>,
}

/// `BoardGroupSnapshot`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupSnapshot {
    pub group: Option<BoardGroup>,
    pub boards: Vec<GroupBoardSnapshot>,
}

fn default_task_limit() -> i64 {
    5
}

/// Query of the group snapshots.
#[derive(Debug, Deserialize)]
pub struct GroupSnapshotQuery {
    #[serde(default)]
    pub include_self: bool,
    #[serde(default)]
    pub include_done: bool,
    #[serde(default = "default_task_limit")]
    pub per_board_task_limit: i64,
}

const MAX_TASK_LIMIT: i64 = 100;

/// The snapshot of a group the caller can read, over the boards it can read (the
/// reference shows every board of the group to whoever reaches the board route).
async fn group_snapshot(
    client: &impl GenericClient,
    principal: &Principal,
    group: BoardGroup,
    except_board: Option<Uuid>,
    query: &GroupSnapshotQuery,
) -> DomainResult<GroupSnapshot> {
    if !(0..=MAX_TASK_LIMIT).contains(&query.per_board_task_limit) {
        return Err(DomainError::unprocessable(format!(
            "per_board_task_limit must be between 0 and {MAX_TASK_LIMIT}"
        )));
    }
    let scope = access::board_scope(client, &principal.member, Access::Read).await?;
    let ids = scope.ids().map(<[Uuid]>::to_vec);
    let boards = client
        .query(
            &format!(
                "SELECT {columns} FROM boards b WHERE b.board_group_id = $1 \
                 AND ($2::uuid IS NULL OR b.id <> $2) AND ($3::uuid[] IS NULL OR b.id = ANY($3)) \
                 ORDER BY lower(b.name), b.id",
                columns = Board::COLUMNS
            ),
            &[&group.id, &except_board, &ids],
        )
        .await?;
    let boards = Board::from_rows(&boards)?;
    let board_ids: Vec<Uuid> = boards.iter().map(|b| b.id).collect();
    let mut counts: HashMap<Uuid, HashMap<String, i64>> = HashMap::new();
    for r in client
        .query(
            "SELECT board_id, status, count(*) AS tasks FROM tasks WHERE board_id = ANY($1) \
             GROUP BY 1, 2",
            &[&board_ids],
        )
        .await?
    {
        counts
            .entry(get(&r, "board_id")?)
            .or_default()
            .insert(get(&r, "status")?, get(&r, "tasks")?);
    }
    // The top tasks of each board: started first, then by priority, freshest first.
    let rows = client
        .query(
            "SELECT id, board_id, title, status, priority, assigned_agent_id, assignee, due_at, in_progress_at, created_at, updated_at \
             FROM (SELECT t.*, a.name AS assignee, row_number() OVER (PARTITION BY t.board_id ORDER BY \
                     CASE t.status WHEN 'in_progress' THEN 0 WHEN 'review' THEN 1 WHEN 'inbox' THEN 2 WHEN 'done' THEN 3 ELSE 99 END, \
                     CASE t.priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 WHEN 'low' THEN 2 ELSE 99 END, \
                     t.updated_at DESC, t.created_at DESC) AS rank \
                   FROM tasks t LEFT JOIN agents a ON a.id = t.assigned_agent_id \
                   WHERE t.board_id = ANY($1) AND ($2 OR t.status <> 'done')) ranked \
             WHERE rank <= $3 ORDER BY board_id, rank",
            &[&board_ids, &query.include_done, &query.per_board_task_limit],
        )
        .await?;
    let task_ids: Vec<Uuid> = rows
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?;
    let mut tag_map = tags::tags_for_tasks(client, &task_ids).await?;
    let names: HashMap<Uuid, String> = boards.iter().map(|b| (b.id, b.name.clone())).collect();
    let mut by_board: HashMap<Uuid, Vec<GroupTaskSummary>> = HashMap::new();
    for r in rows {
        let id: Uuid = get(&r, "id")?;
        let board_id: Uuid = get(&r, "board_id")?;
        by_board
            .entry(board_id)
            .or_default()
            .push(GroupTaskSummary {
                id,
                board_id,
                board_name: names.get(&board_id).cloned().unwrap_or_default(),
                title: get(&r, "title")?,
                status: get(&r, "status")?,
                priority: get(&r, "priority")?,
                assigned_agent_id: get(&r, "assigned_agent_id")?,
                assignee: get(&r, "assignee")?,
                due_at: get(&r, "due_at")?,
                in_progress_at: get(&r, "in_progress_at")?,
                tags: tag_map.remove(&id).unwrap_or_default(),
                created_at: get(&r, "created_at")?,
                updated_at: get(&r, "updated_at")?,
            });
    }
    let boards = boards
        .into_iter()
        .map(|board| GroupBoardSnapshot {
            task_counts: counts.remove(&board.id).unwrap_or_default(),
            tasks: by_board.remove(&board.id).unwrap_or_default(),
            board,
        })
        .collect();
    Ok(GroupSnapshot {
        group: Some(group),
        boards,
    })
}

/// `GET /board-groups/{id}/snapshot`.
pub async fn of_group(
    client: &impl GenericClient,
    principal: &Principal,
    group_id: Uuid,
    query: &GroupSnapshotQuery,
) -> DomainResult<GroupSnapshot> {
    let group =
        board_groups::group_for_user(client, principal, group_id, Access::Read, false).await?;
    group_snapshot(client, principal, group, None, query).await
}

/// `GET /boards/{id}/group-snapshot`: the board's group, without the board itself unless
/// `include_self`; a board in no group has an empty snapshot.
pub async fn of_boards_group(
    client: &impl GenericClient,
    principal: &Principal,
    board: &Board,
    query: &GroupSnapshotQuery,
) -> DomainResult<GroupSnapshot> {
    let Some(group_id) = board.board_group_id else {
        return Ok(GroupSnapshot {
            group: None,
            boards: Vec::new(),
        });
    };
    let group = board_groups::find_in_org(client, board.organization_id, group_id).await?;
    match group {
        None => Ok(GroupSnapshot {
            group: None,
            boards: Vec::new(),
        }),
        Some(group) => {
            let except = (!query.include_self).then_some(board.id);
            group_snapshot(client, principal, group, except, query).await
        }
    }
}
