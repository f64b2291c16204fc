//! `/api/v1/agent/*` (domain.md §A19): what agents call with their token, for their own
//! board (a gateway-main agent: its organization's boards). Task changes go through the
//! same rules as the admin API, with the agent as actor (lead or worker).

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, put};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::agent::AgentCaller;
use crate::db::in_transaction;
use crate::domain::agents::crud::{self as agents, AgentCreate};
use crate::domain::agents::presence::AgentHeartbeat;
use crate::domain::agents::soul::SoulUpdate;
use crate::domain::agents::tokens::AgentWithToken;
use crate::domain::boards::memory::{MemoryCreate, MemoryFilter};
use crate::domain::boards::onboarding::{self, Onboarding};
use crate::domain::model::{Agent, Approval, Board, BoardMemory};
use crate::domain::support::access::{self, Caller};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::tasks::approvals::{self, ApprovalCreate, ApprovalFilter};
use crate::domain::tasks::comments::{TaskComment, TaskCommentCreate};
use crate::domain::tasks::crud::{self as tasks, Task, TaskCreate, TaskFilter, TaskUpdate};
use crate::domain::tasks::tags::{self, TagRef};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// `AgentHealthStatusResponse`.
#[derive(Serialize, ToSchema)]
pub struct AgentHealth {
    pub ok: bool,
    pub agent_id: Uuid,
    pub board_id: Option<Uuid>,
    pub gateway_id: Uuid,
    pub status: String,
    pub is_board_lead: bool,
}

/// Who the token belongs to.
#[utoipa::path(tag = "agent", responses((status = 200, body = AgentHealth), (status = 401)), security(("agent_token" = [])))]
#[get("/api/v1/agent/healthz")]
pub async fn agent_health(AgentCaller(me): AgentCaller) -> web::Json<AgentHealth> {
    web::Json(AgentHealth {
        ok: true,
        agent_id: me.agent.id,
        board_id: me.agent.board_id,
        gateway_id: me.agent.gateway_id,
        status: me.agent.status.clone(),
        is_board_lead: me.agent.is_board_lead,
    })
}

/// The agent's board, or (a gateway-main agent) its organization's boards.
#[utoipa::path(tag = "agent", params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Board>), (status = 401)), security(("agent_token" = [])))]
#[get("/api/v1/agent/boards")]
pub async fn agent_boards(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    page: PageParams,
) -> ApiResult<web::Json<Page<Board>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        agents::boards_for_agent(&*conn, &me, page).await?,
    ))
}

#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)),
    responses((status = 200, body = Board), (status = 401), (status = 403), (status = 404)), security(("agent_token" = [])))]
#[get("/api/v1/agent/boards/{board_id}")]
pub async fn agent_board(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Board>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        access::board_for_agent(&*conn, &me, path.into_inner()).await?,
    ))
}

#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("status" = Option<String>, Query),
    ("assigned_agent_id" = Option<Uuid>, Query), ("unassigned" = Option<bool>, Query),
    ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Task>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[get("/api/v1/agent/boards/{board_id}/tasks")]
pub async fn agent_tasks(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    filter: web::Query<TaskFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Task>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = access::board_for_agent(&*conn, &me, path.into_inner()).await?;
    Ok(web::Json(tasks::list(&*conn, &board, &filter, page).await?))
}

/// A lead creates a task on its board (`auto_created`, `auto_reason` `lead_agent:{id}`).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)), request_body = TaskCreate,
    responses((status = 200, body = Task), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/boards/{board_id}/tasks")]
pub async fn agent_create_task(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    Json(input): Json<TaskCreate>,
) -> ApiResult<web::Json<Task>> {
    let board_id = path.into_inner();
    let (task, changes) = in_transaction!(state, |tx| async {
        me.require_lead()?;
        let board = access::board_for_agent(&tx, &me, board_id).await?;
        tasks::create(&tx, &board, &me.actor(), input).await
    });
    state
        .board_events
        .tasks_changed(me.organization_id, board_id, changes);
    Ok(web::Json(task))
}

/// An agent moves, claims, assigns or hands in a task under the lead/worker rules.
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path)), request_body = TaskUpdate,
    responses((status = 200, body = Task), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("agent_token" = [])))]
#[patch("/api/v1/agent/boards/{board_id}/tasks/{task_id}")]
pub async fn agent_update_task(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
    Json(patch): Json<TaskUpdate>,
) -> ApiResult<web::Json<Task>> {
    let (board_id, task_id) = path.into_inner();
    let (task, changes) = in_transaction!(state, |tx| async {
        let board = access::board_for_agent(&tx, &me, board_id).await?;
        tasks::update(&tx, &board, &me.actor(), task_id, patch).await
    });
    state
        .board_events
        .tasks_changed(me.organization_id, board_id, changes);
    Ok(web::Json(task))
}

/// A lead deletes a task of its board.
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)), security(("agent_token" = [])))]
#[delete("/api/v1/agent/boards/{board_id}/tasks/{task_id}")]
pub async fn agent_delete_task(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<OkResponse>> {
    let (board_id, task_id) = path.into_inner();
    let changes = in_transaction!(state, |tx| async {
        me.require_lead()?;
        let board = access::board_for_agent(&tx, &me, board_id).await?;
        tasks::delete(&tx, &board, task_id).await
    });
    state
        .board_events
        .tasks_changed(me.organization_id, board_id, changes);
    Ok(OkResponse::json())
}

#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path),
    ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<TaskComment>), (status = 401), (status = 403), (status = 404)), security(("agent_token" = [])))]
#[get("/api/v1/agent/boards/{board_id}/tasks/{task_id}/comments")]
pub async fn agent_comments(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
    page: PageParams,
) -> ApiResult<web::Json<Page<TaskComment>>> {
    let (board_id, task_id) = path.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = access::board_for_agent(&*conn, &me, board_id).await?;
    Ok(web::Json(
        crate::domain::tasks::comments::comments(&*conn, &board, task_id, page).await?,
    ))
}

/// Comments as the agent (leads: in review, when mentioned, or on tasks they created).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path)), request_body = TaskCommentCreate,
    responses((status = 200, body = TaskComment), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/boards/{board_id}/tasks/{task_id}/comments")]
pub async fn agent_comment(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
    Json(input): Json<TaskCommentCreate>,
) -> ApiResult<web::Json<TaskComment>> {
    let (board_id, task_id) = path.into_inner();
    let (comment, changes) = in_transaction!(state, |tx| async {
        let board = access::board_for_agent(&tx, &me, board_id).await?;
        crate::domain::tasks::comments::add_comment(&tx, &board, &me.actor(), task_id, input).await
    });
    state
        .board_events
        .tasks_changed(me.organization_id, board_id, changes);
    Ok(web::Json(comment))
}

/// The organization's tags (a plain list).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)),
    responses((status = 200, body = Vec<TagRef>), (status = 401), (status = 403), (status = 404)), security(("agent_token" = [])))]
#[get("/api/v1/agent/boards/{board_id}/tags")]
pub async fn agent_tags(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<TagRef>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = access::board_for_agent(&*conn, &me, path.into_inner()).await?;
    Ok(web::Json(
        tags::refs_of_org(&*conn, board.organization_id).await?,
    ))
}

#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("status" = Option<crate::domain::model::ApprovalStatus>, Query),
    ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Approval>), (status = 401), (status = 403), (status = 404)), security(("agent_token" = [])))]
#[get("/api/v1/agent/boards/{board_id}/approvals")]
pub async fn agent_approvals(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    filter: web::Query<ApprovalFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Approval>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = access::board_for_agent(&*conn, &me, path.into_inner()).await?;
    Ok(web::Json(
        approvals::list(&*conn, board.id, &filter, page).await?,
    ))
}

/// Asks for an approval (the agent is its author unless another agent is named).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)), request_body = ApprovalCreate,
    responses((status = 200, body = Approval), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/boards/{board_id}/approvals")]
pub async fn agent_request_approval(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    Json(mut input): Json<ApprovalCreate>,
) -> ApiResult<web::Json<Approval>> {
    let board_id = path.into_inner();
    input.agent_id = input.agent_id.or(Some(me.agent.id));
    let (approval, event) = in_transaction!(state, |tx| async {
        let board = access::board_for_agent(&tx, &me, board_id).await?;
        approvals::create(&tx, &board, input).await
    });
    state.board_events.approval_changed(board_id, event);
    Ok(web::Json(approval))
}

/// The agent says it is alive; answers its `AgentRead` (as `POST /agents/{its id}/heartbeat`).
#[utoipa::path(tag = "agent", responses((status = 200, body = Agent), (status = 401)), security(("agent_token" = [])))]
#[post("/api/v1/agent/heartbeat")]
pub async fn agent_heartbeat(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
) -> ApiResult<web::Json<Agent>> {
    let (agent_id, organization_id) = (me.agent.id, me.organization_id);
    let caller = Caller::Agent(me);
    let (agent, written) = in_transaction!(state, |tx| {
        crate::domain::agents::presence::heartbeat_agent(
            &tx,
            &caller,
            agent_id,
            AgentHeartbeat::default(),
        )
    });
    if written {
        state.agents_changed(organization_id);
    }
    Ok(web::Json(agent))
}

/// Query of `GET /agent/agents`.
#[derive(serde::Deserialize)]
pub struct AgentBoardFilter {
    board_id: Option<Uuid>,
}

/// The agents of the caller's board (a gateway-main agent: of its organization's boards).
#[utoipa::path(tag = "agent", params(("board_id" = Option<Uuid>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Agent>), (status = 401), (status = 403)), security(("agent_token" = [])))]
#[get("/api/v1/agent/agents")]
pub async fn agent_agents(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    filter: web::Query<AgentBoardFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Agent>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        agents::list_for_agent(&*conn, &me, filter.board_id, page).await?,
    ))
}

/// A lead adds a worker to its board (within `max_agents`); the new agent's token is shown
/// once.
#[utoipa::path(tag = "agent", request_body = AgentCreate,
    responses((status = 200, body = AgentWithToken), (status = 401), (status = 403), (status = 409), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/agents")]
pub async fn agent_create_agent(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    Json(input): Json<AgentCreate>,
) -> ApiResult<web::Json<AgentWithToken>> {
    let key = &state.settings.agent_token_key.0;
    let created = in_transaction!(state, |tx| async {
        let agent = agents::create_by_lead(&tx, &me, input).await?;
        crate::domain::agents::tokens::with_new_token(&tx, agent, key).await
    });
    gateway_rpc::poke(&state.router, [created.agent.gateway_id]);
    state.agents_changed(me.organization_id);
    Ok(web::Json(created))
}

/// An agent's SOUL.md (its lead, or the agent itself).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("agent_id" = Uuid, Path)),
    responses((status = 200, body = String), (status = 401), (status = 403), (status = 404)), security(("agent_token" = [])))]
#[get("/api/v1/agent/boards/{board_id}/agents/{agent_id}/soul")]
pub async fn agent_soul(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<String>> {
    let (board_id, agent_id) = path.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    access::board_for_agent(&*conn, &me, board_id).await?;
    Ok(web::Json(
        crate::domain::agents::soul::soul(&*conn, &me, board_id, agent_id).await?,
    ))
}

/// A lead rewrites an agent's SOUL.md (kept for re-provisioning).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("agent_id" = Uuid, Path)), request_body = SoulUpdate,
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[put("/api/v1/agent/boards/{board_id}/agents/{agent_id}/soul")]
pub async fn agent_update_soul(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
    Json(input): Json<SoulUpdate>,
) -> ApiResult<web::Json<OkResponse>> {
    let (board_id, agent_id) = path.into_inner();
    let gateway_id = in_transaction!(state, |tx| async {
        access::board_for_agent(&tx, &me, board_id).await?;
        crate::domain::agents::soul::update_soul(&tx, &me, board_id, agent_id, input).await
    });
    gateway_rpc::poke(&state.router, [gateway_id]);
    state.agents_changed(me.organization_id);
    Ok(OkResponse::json())
}

#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("is_chat" = Option<bool>, Query),
    ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<BoardMemory>), (status = 401), (status = 403), (status = 404)), security(("agent_token" = [])))]
#[get("/api/v1/agent/boards/{board_id}/memory")]
pub async fn agent_memory(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    filter: web::Query<MemoryFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<BoardMemory>>> {
    let caller = Caller::Agent(me);
    crate::http::memory::board_memory(&state, &caller, path.into_inner(), *filter, page).await
}

/// Adds board memory as the agent (chat entries without a source are signed with its name).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)), request_body = MemoryCreate,
    responses((status = 200, body = BoardMemory), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/boards/{board_id}/memory")]
pub async fn agent_add_memory(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    Json(input): Json<MemoryCreate>,
) -> ApiResult<web::Json<BoardMemory>> {
    crate::http::memory::post_board_memory(&state, &Caller::Agent(me), path.into_inner(), input)
        .await
}

/// The onboarding agent's question or completed draft (gateway-main agent of the board).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)), request_body = Object,
    responses((status = 200, body = Onboarding), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/boards/{board_id}/onboarding")]
pub async fn agent_onboarding(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    Json(payload): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<web::Json<Onboarding>> {
    let board_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| {
        onboarding::agent_update(&tx, &me, board_id, payload)
    })))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(agent_health)
        .service(agent_boards)
        .service(agent_board)
        .service(agent_tasks)
        .service(agent_create_task)
        .service(agent_update_task)
        .service(agent_delete_task)
        .service(agent_comments)
        .service(agent_comment)
        .service(agent_tags)
        .service(agent_approvals)
        .service(agent_request_approval)
        .service(agent_heartbeat)
        .service(agent_agents)
        .service(agent_create_agent)
        .service(agent_soul)
        .service(agent_update_soul)
        .service(agent_memory)
        .service(agent_add_memory)
        .service(agent_onboarding);
}
