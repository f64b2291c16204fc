//! Who may do what: organization roles and per-board read/write access.
//!
//! A row of another organization is "not found" (404), never "forbidden": callers must
//! not learn that it exists. Within the organization, missing rights answer 403.

use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::model::{Board, Member, Principal};
use crate::domain::{DomainError, DomainResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Role ranks of the reference: member < admin < owner; unknown roles rank as member.
pub fn role_rank(role: &str) -> u8 {
    match role.trim().to_ascii_lowercase().as_str() {
        "owner" => 2,
        "admin" => 1,
        _ => 0,
    }
}

pub fn is_org_admin(member: &Member) -> bool {
    role_rank(&member.role) >= 1
}

pub fn require_org_admin(member: &Member) -> DomainResult<()> {
    if is_org_admin(member) {
        Ok(())
    } else {
        Err(DomainError::forbidden("Forbidden"))
    }
}

/// Which boards of the organization a member can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardScope {
    All,
    Only(Vec<Uuid>),
}

impl BoardScope {
    pub fn allows(&self, board_id: Uuid) -> bool {
        match self {
            BoardScope::All => true,
            BoardScope::Only(ids) => ids.contains(&board_id),
        }
    }

    /// The ids for a `board_id = ANY($n)` filter, `None` meaning "no filter".
    pub fn ids(&self) -> Option<&[Uuid]> {
        match self {
            BoardScope::All => None,
            BoardScope::Only(ids) => Some(ids),
        }
    }
}

/// Whether the member reaches every board of the organization (no access rows read).
pub fn has_all_boards(member: &Member, access: Access) -> bool {
    match access {
        Access::Read => member.all_boards_read || member.all_boards_write,
        Access::Write => member.all_boards_write,
    }
}

/// The boards a member may read (or write).
pub async fn board_scope(
    client: &impl GenericClient,
    member: &Member,
    access: Access,
) -> DomainResult<BoardScope> {
    if has_all_boards(member, access) {
        return Ok(BoardScope::All);
    }
    let rows = client
        .query(
            "SELECT board_id FROM organization_board_access \
             WHERE organization_member_id = $1 AND (can_write OR ($2 AND can_read))",
            &[&member.id, &(access == Access::Read)],
        )
        .await?;
    let ids = rows.iter().map(|r| get(r, "board_id"));
    Ok(BoardScope::Only(ids.collect::<Result<_, _>>()?))
}

/// The board, if it is in the caller's organization (else 404) and the caller has the
/// access asked for (else 403 "Board access denied").
pub async fn board_for_user(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    access: Access,
) -> DomainResult<Board> {
    let board =
        crate::domain::model::board::find_in_org(client, principal.organization.id, board_id)
            .await?
            .ok_or_else(DomainError::not_found)?;
    if !board_scope(client, &principal.member, access)
        .await?
        .allows(board.id)
    {
        return Err(DomainError::forbidden("Board access denied"));
    }
    Ok(board)
}

/// The board, for an agent: it must be in the agent's organization (else 404); an agent of
/// a board reaches only that board (else 403); a gateway-main agent (no board) reaches every
/// board of its organization, never another organization's.
pub async fn board_for_agent(
    client: &impl GenericClient,
    agent: &crate::domain::model::AgentPrincipal,
    board_id: Uuid,
) -> DomainResult<Board> {
    let board = crate::domain::model::board::find_in_org(client, agent.organization_id, board_id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    if agent.agent.board_id.is_some_and(|own| own != board.id) {
        return Err(DomainError::forbidden(
            "Agent can only access its own board.",
        ));
    }
    Ok(board)
}

/// What an agent's event, suggestion or knowledge entry is about.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostTargets {
    pub board_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
}

/// `named`, checked for an agent's post (the reference took any ids, of any organization):
/// the board passes the agent board guard (404 outside the organization, 403 another
/// board of a board agent's organization); the agent and the task must be the
/// organization's (404), and the task on the board (404). Without a board, a task's board
/// is the post's board.
pub async fn post_targets(
    client: &impl GenericClient,
    agent: &crate::domain::model::AgentPrincipal,
    named: PostTargets,
) -> DomainResult<PostTargets> {
    let board_id = match named.task_id {
        Some(task_id) => {
            let row = client
                .query_opt(
                    "SELECT board_id FROM tasks WHERE id = $1 AND organization_id = $2",
                    &[&task_id, &agent.organization_id],
                )
                .await?
                .ok_or_else(DomainError::not_found)?;
            let task_board: Uuid = get(&row, "board_id")?;
            board_for_agent(client, agent, task_board).await?;
            if named.board_id.is_some_and(|b| b != task_board) {
                return Err(DomainError::not_found());
            }
            Some(task_board)
        }
        None => {
            if let Some(id) = named.board_id {
                board_for_agent(client, agent, id).await?;
            }
            named.board_id
        }
    };
    if let Some(agent_id) = named.agent_id {
        client
            .query_opt(
                "SELECT 1 FROM agents WHERE id = $1 AND organization_id = $2",
                &[&agent_id, &agent.organization_id],
            )
            .await?
            .ok_or_else(DomainError::not_found)?;
    }
    Ok(PostTargets { board_id, ..named })
}

/// Who calls a route the reference opens to users and agents alike: the admin bearer token
/// (taking precedence when both are sent) or `X-Agent-Token`.
pub enum Caller {
    User(Principal),
    Agent(crate::domain::model::AgentPrincipal),
}

impl Caller {
    /// The actor of task changes.
    pub fn actor(&self) -> crate::domain::model::Actor {
        match self {
            Caller::User(p) => crate::domain::model::Actor::User(p.user.id),
            Caller::Agent(a) => a.actor(),
        }
    }

    /// The board for a user (with the access asked for) or an agent (its board guard).
    pub async fn board(
        &self,
        client: &impl GenericClient,
        board_id: Uuid,
        access: Access,
    ) -> DomainResult<Board> {
        match self {
            Caller::User(p) => board_for_user(client, p, board_id, access).await,
            Caller::Agent(a) => board_for_agent(client, a, board_id).await,
        }
    }

    pub fn organization_id(&self) -> Uuid {
        match self {
            Caller::User(p) => p.organization.id,
            Caller::Agent(a) => a.organization_id,
        }
    }
}
