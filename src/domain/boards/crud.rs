//! Boards: the `BoardRead` model, its lookups and the admin CRUD rules (domain.md §A4).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record, RowError};
use crate::db::GenericClient;
use crate::domain::model::{Board, Principal};
use crate::domain::support::access::{self, Access};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::support::validation::model_error;
use crate::domain::{boards::groups as board_groups, outbox::board_group_notices};
use crate::domain::{DomainError, DomainResult};

const ERR_DESCRIPTION_REQUIRED: &str = "description is required";
const ERR_GATEWAY_REQUIRED: &str = "gateway_id is required";
const ERR_GOAL_FIELDS_REQUIRED: &str =
    "Confirmed goal boards require objective and success_metrics";
const ERR_GATEWAY_MAIN_AGENT_REQUIRED: &str =
    "gateway must have a gateway main agent before boards can be created or updated";

fn default_board_type() -> String {
    "goal".into()
}
fn default_true() -> bool {
    true
}
fn default_max_agents() -> i32 {
    1
}

/// `BoardCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BoardCreate {
    pub name: String,
    pub slug: String,
    pub description: String,
    #[serde(default)]
    pub gateway_id: Option<Uuid>,
    #[serde(default)]
    pub board_group_id: Option<Uuid>,
    #[serde(default = "default_board_type")]
    pub board_type: String,
    #[serde(default)]
    pub objective: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub success_metrics: Option<Map<String, Value>>,
    #[serde(
        default,
        deserialize_with = "crate::domain::support::validation::lenient_datetime"
    )]
    pub target_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub goal_confirmed: bool,
    #[serde(default)]
    pub goal_source: Option<String>,
    #[serde(default = "default_true")]
    pub require_approval_for_done: bool,
    #[serde(default)]
    pub require_review_before_done: bool,
    #[serde(default)]
    pub block_status_changes_with_pending_approval: bool,
    #[serde(default)]
    pub only_lead_can_change_status: bool,
    #[serde(default = "default_max_agents")]
    pub max_agents: i32,
}

/// `BoardUpdate`: absent fields stay. `null` clears the nullable fields; on the others it
/// is treated as absent, except `gateway_id` and `description`, which reject it like the
/// reference.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BoardUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub gateway_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub board_group_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub board_type: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub objective: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub success_metrics: Option<Option<Map<String, Value>>>,
    #[serde(
        default,
        deserialize_with = "crate::domain::support::validation::lenient_datetime_patch"
    )]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub target_date: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub goal_confirmed: Option<bool>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub goal_source: Option<Option<String>>,
    #[serde(default)]
    pub require_approval_for_done: Option<bool>,
    #[serde(default)]
    pub require_review_before_done: Option<bool>,
    #[serde(default)]
    pub block_status_changes_with_pending_approval: Option<bool>,
    #[serde(default)]
    pub only_lead_can_change_status: Option<bool>,
    #[serde(default)]
    pub max_agents: Option<i32>,
}

/// Filters of `GET /boards`.
#[derive(Debug, Default, Deserialize)]
pub struct BoardFilter {
    pub gateway_id: Option<Uuid>,
    pub board_group_id: Option<Uuid>,
}

fn check_max_agents(max_agents: i32) -> DomainResult<()> {
    if max_agents < 0 {
        return Err(DomainError::Unprocessable(json!([{
            "type": "greater_than_equal",
            "loc": ["body", "max_agents"],
            "msg": "Input should be greater than or equal to 0",
            "input": max_agents,
            "ctx": {"ge": 0},
        }])));
    }
    Ok(())
}

/// The trimmed description, or the reference's model error when it is blank.
fn required_description(description: Option<&str>) -> DomainResult<String> {
    match description.map(str::trim) {
        Some(d) if !d.is_empty() => Ok(d.to_string()),
        _ => Err(model_error(ERR_DESCRIPTION_REQUIRED)),
    }
}

fn has_goal_fields(objective: Option<&str>, metrics: Option<&Value>) -> bool {
    let objective = objective.is_some_and(|o| !o.is_empty());
    let metrics = metrics.is_some_and(|m| m.as_object().is_none_or(|o| !o.is_empty()));
    objective && metrics
}

/// A board's gateway must be in the organization and have its gateway-main agent.
async fn require_gateway(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
) -> DomainResult<()> {
    let row = client
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM agents a WHERE a.gateway_id = g.id AND a.board_id IS NULL) \
             AS has_main FROM gateways g WHERE g.id = $1 AND g.organization_id = $2",
            &[&gateway_id, &organization_id],
        )
        .await?;
    let has_main = row.map(|r| get::<bool>(&r, "has_main")).transpose()?;
    match has_main {
        None => Err(DomainError::unprocessable("gateway_id is invalid")),
        Some(false) => Err(DomainError::unprocessable(ERR_GATEWAY_MAIN_AGENT_REQUIRED)),
        Some(_) => Ok(()),
    }
}

async fn require_board_group(
    client: &impl GenericClient,
    organization_id: Uuid,
    group_id: Uuid,
) -> DomainResult<()> {
    let found = client
        .query_opt(
            "SELECT 1 FROM board_groups WHERE id = $1 AND organization_id = $2",
            &[&group_id, &organization_id],
        )
        .await?;
    if found.is_none() {
        return Err(DomainError::unprocessable("board_group_id is invalid"));
    }
    Ok(())
}

/// Each organization's boards in list order, as this instance keeps them
/// (`domain::memos`): a board list is then filtered and paged in memory.
pub type BoardListMemo = crate::db::memo::Memo<Uuid, Arc<Vec<KeptBoard>>>;

/// A board of a kept list, with its JSON written once when the list is read: a list
/// request copies the JSON of the boards it shows instead of cloning and serializing each
/// board (most of a list request's CPU when every request was served from memory).
pub struct KeptBoard {
    pub board: Board,
    pub json: Box<RawValue>,
}

/// The organization's boards in list order: kept in `memo`, else one statement.
async fn organization_boards(
    pool: &crate::db::PgPool,
    memo: &BoardListMemo,
    organization_id: Uuid,
) -> DomainResult<Arc<Vec<KeptBoard>>> {
    let read = || async {
        let conn = pool.get().await?;
        let sql = format!(
            "SELECT {} FROM boards b WHERE b.organization_id = $1 \
             ORDER BY lower(b.name), b.created_at DESC, b.id",
            Board::COLUMNS
        );
        let rows = conn.query(&sql, &[&organization_id]).await?;
        let kept = Board::from_rows(&rows)?
            .into_iter()
            .map(|board| {
                let json = serde_json::value::to_raw_value(&board).map_err(|e| RowError {
                    record: "Board",
                    column: "(as JSON)",
                    problem: e.to_string(),
                })?;
                Ok(KeptBoard { board, json })
            })
            .collect::<Result<Vec<_>, RowError>>()?;
        Ok::<_, DomainError>(Some(Arc::new(kept)))
    };
    // `read` always finds a list (maybe empty).
    Ok(memo
        .get_or_read(organization_id, read)
        .await?
        .unwrap_or_default())
}

/// The boards of the organization the member may read: every one for an owner, an admin
/// or a member with read on all boards (nothing read), else those of its access rows.
async fn read_scope(
    pool: &crate::db::PgPool,
    principal: &Principal,
) -> DomainResult<access::BoardScope> {
    if access::has_all_boards(&principal.member, Access::Read) {
        return Ok(access::BoardScope::All);
    }
    let conn = pool.get().await?;
    access::board_scope(&*conn, &principal.member, Access::Read).await
}

/// `access::board_for_user` for a read outside a transaction, from the kept list: the
/// board, if it is in the caller's organization (else 404) and the caller may read it (else
/// 403 "Board access denied"). An owner's or admin's check reads nothing.
pub async fn readable_board(
    pool: &crate::db::PgPool,
    memo: &BoardListMemo,
    principal: &Principal,
    board_id: Uuid,
) -> DomainResult<Board> {
    let all = organization_boards(pool, memo, principal.organization.id).await?;
    let board = all
        .iter()
        .find(|b| b.board.id == board_id)
        .map(|b| b.board.clone())
        .ok_or_else(DomainError::not_found)?;
    if !read_scope(pool, principal).await?.allows(board.id) {
        return Err(DomainError::forbidden("Board access denied"));
    }
    Ok(board)
}

/// The boards the member can read, by name: the organization's list is kept in memory
/// (read again after any change to its boards), so an owner's or admin's list reads
/// nothing; a member with some boards only reads which.
pub async fn list(
    pool: &crate::db::PgPool,
    memo: &BoardListMemo,
    principal: &Principal,
    filter: &BoardFilter,
    page: PageParams,
) -> DomainResult<Page<Box<RawValue>>> {
    let all = organization_boards(pool, memo, principal.organization.id).await?;
    let scope = read_scope(pool, principal).await?;
    let shown: Vec<&KeptBoard> = all
        .iter()
        .filter(|b| scope.allows(b.board.id))
        .filter(|b| {
            filter
                .gateway_id
                .is_none_or(|g| b.board.gateway_id == Some(g))
        })
        .filter(|b| {
            filter
                .board_group_id
                .is_none_or(|g| b.board.board_group_id == Some(g))
        })
        .collect();
    let items = shown
        .iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .map(|b| b.json.clone())
        .collect();
    Ok(page.page(items, shown.len() as i64))
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: BoardCreate,
) -> DomainResult<Board> {
    access::require_org_admin(&principal.member)?;
    check_max_agents(input.max_agents)?;
    let description = required_description(Some(&input.description))?;
    let gateway_id = input
        .gateway_id
        .ok_or_else(|| model_error(ERR_GATEWAY_REQUIRED))?;
    let metrics = input.success_metrics.map(Value::Object);
    if input.board_type == "goal"
        && input.goal_confirmed
        && !has_goal_fields(input.objective.as_deref(), metrics.as_ref())
    {
        return Err(model_error(ERR_GOAL_FIELDS_REQUIRED));
    }
    let org = principal.organization.id;
    require_gateway(client, org, gateway_id).await?;
    if let Some(group_id) = input.board_group_id {
        require_board_group(client, org, group_id).await?;
    }
    let board = Board {
        id: Uuid::new_v4(),
        organization_id: org,
        name: input.name,
        slug: input.slug,
        description,
        gateway_id: Some(gateway_id),
        board_group_id: input.board_group_id,
        board_type: input.board_type,
        objective: input.objective,
        success_metrics: metrics,
        target_date: input.target_date,
        goal_confirmed: input.goal_confirmed,
        goal_source: input.goal_source,
        require_approval_for_done: input.require_approval_for_done,
        require_review_before_done: input.require_review_before_done,
        block_status_changes_with_pending_approval: input
            .block_status_changes_with_pending_approval,
        only_lead_can_change_status: input.only_lead_can_change_status,
        max_agents: input.max_agents,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let row = client
        .query_one(
            &format!(
                "INSERT INTO boards AS b (id, organization_id, name, slug, description, gateway_id, board_group_id, \
                   board_type, objective, success_metrics, target_date, goal_confirmed, goal_source, \
                   require_approval_for_done, require_review_before_done, block_status_changes_with_pending_approval, \
                   only_lead_can_change_status, max_agents) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                 RETURNING {columns}",
                columns = Board::COLUMNS
            ),
            &[
                &board.id, &board.organization_id, &board.name, &board.slug, &board.description,
                &board.gateway_id, &board.board_group_id, &board.board_type, &board.objective,
                &board.success_metrics, &board.target_date, &board.goal_confirmed, &board.goal_source,
                &board.require_approval_for_done, &board.require_review_before_done,
                &board.block_status_changes_with_pending_approval, &board.only_lead_can_change_status,
                &board.max_agents,
            ],
        )
        .await?;
    Ok(Board::from_row(&row)?)
}

/// Applies a partial update with the reference's re-validation: the gateway (given or
/// kept) must still be valid and have its main agent. A move between groups tells the agents of both groups' boards (`board_group_notices`);
/// returns the gateways to poke once committed.
pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    patch: BoardUpdate,
) -> DomainResult<(Board, Vec<Uuid>)> {
    // Access first: the reference resolves the board before it reports model errors.
    lock(client, principal.organization.id, board_id).await?;
    let mut board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let previous_group = board.board_group_id;
    if let Some(None) = patch.gateway_id {
        return Err(model_error(ERR_GATEWAY_REQUIRED));
    }
    let description = match &patch.description {
        Some(d) => Some(required_description(d.as_deref())?),
        None => None,
    };
    if let Some(n) = patch.max_agents {
        check_max_agents(n)?;
    }
    let org = board.organization_id;
    if let Some(Some(gateway_id)) = patch.gateway_id {
        require_gateway(client, org, gateway_id).await?;
        board.gateway_id = Some(gateway_id);
    }
    if let Some(Some(group_id)) = patch.board_group_id {
        require_board_group(client, org, group_id).await?;
    }
    let switching_to_goal = patch.board_type.as_deref() == Some("goal");
    if let Some(v) = patch.name {
        board.name = v;
    }
    if let Some(v) = patch.slug {
        board.slug = v;
    }
    if let Some(v) = description {
        board.description = v;
    }
    if let Some(v) = patch.board_group_id {
        board.board_group_id = v;
    }
    if let Some(v) = patch.board_type {
        board.board_type = v;
    }
    if let Some(v) = patch.objective {
        board.objective = v;
    }
    if let Some(v) = patch.success_metrics {
        board.success_metrics = v.map(Value::Object);
    }
    if let Some(v) = patch.target_date {
        board.target_date = v;
    }
    if let Some(v) = patch.goal_confirmed {
        board.goal_confirmed = v;
    }
    if let Some(v) = patch.goal_source {
        board.goal_source = v;
    }
    if let Some(v) = patch.require_approval_for_done {
        board.require_approval_for_done = v;
    }
    if let Some(v) = patch.require_review_before_done {
        board.require_review_before_done = v;
    }
    if let Some(v) = patch.block_status_changes_with_pending_approval {
        board.block_status_changes_with_pending_approval = v;
    }
    if let Some(v) = patch.only_lead_can_change_status {
        board.only_lead_can_change_status = v;
    }
    if let Some(v) = patch.max_agents {
        board.max_agents = v;
    }
    // Only an explicit switch to "goal" is checked, as in the reference.
    if switching_to_goal
        && !has_goal_fields(board.objective.as_deref(), board.success_metrics.as_ref())
    {
        return Err(DomainError::unprocessable(
            "Goal boards require objective and success_metrics",
        ));
    }
    let gateway_id = board
        .gateway_id
        .ok_or_else(|| DomainError::unprocessable(ERR_GATEWAY_REQUIRED))?;
    require_gateway(client, org, gateway_id).await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE boards b SET name = $3, slug = $4, description = $5, gateway_id = $6, board_group_id = $7, \
                   board_type = $8, objective = $9, success_metrics = $10, target_date = $11, goal_confirmed = $12, \
                   goal_source = $13, require_approval_for_done = $14, require_review_before_done = $15, \
                   block_status_changes_with_pending_approval = $16, only_lead_can_change_status = $17, \
                   max_agents = $18, updated_at = now() \
                 WHERE b.id = $1 AND b.organization_id = $2 RETURNING {columns}",
                columns = Board::COLUMNS
            ),
            &[
                &board.id, &org, &board.name, &board.slug, &board.description, &board.gateway_id,
                &board.board_group_id, &board.board_type, &board.objective, &board.success_metrics,
                &board.target_date, &board.goal_confirmed, &board.goal_source,
                &board.require_approval_for_done, &board.require_review_before_done,
                &board.block_status_changes_with_pending_approval, &board.only_lead_can_change_status,
                &board.max_agents,
            ],
        )
        .await?;
    let board = Board::from_row(&row)?;
    let mut gateways = Vec::new();
    if previous_group != board.board_group_id {
        let moves = [
            (previous_group, board_group_notices::Change::Leave),
            (board.board_group_id, board_group_notices::Change::Join),
        ];
        for (group_id, change) in moves {
            let Some(group_id) = group_id else { continue };
            if let Some(group) = board_groups::find_in_org(client, org, group_id).await? {
                gateways.extend(board_group_notices::notify(client, &board, &group, change).await?);
            }
        }
    }
    Ok((board, gateways))
}

/// Deletes the board; its tasks, agents, approvals and other dependents go with it by
/// the schema's cascades. Each of its agents gets an `agents.delete` request to its
/// gateway, as when an agent is deleted. Returns the gateways to poke once committed.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
) -> DomainResult<Vec<Uuid>> {
    lock(client, principal.organization.id, board_id).await?;
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let gateways = crate::domain::agents::removal::deprovision_board(client, &board).await?;
    client
        .execute("DELETE FROM boards WHERE id = $1", &[&board.id])
        .await?;
    Ok(gateways)
}

/// Row-locks the board for a read-modify-write; a missing board is left to the access check.
async fn lock(
    client: &impl GenericClient,
    organization_id: Uuid,
    board_id: Uuid,
) -> DomainResult<()> {
    client
        .query_opt(
            "SELECT 1 FROM boards WHERE id = $1 AND organization_id = $2 FOR NO KEY UPDATE",
            &[&board_id, &organization_id],
        )
        .await?;
    Ok(())
}
