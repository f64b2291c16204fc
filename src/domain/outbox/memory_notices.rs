//! Who hears of a memory post, as in the reference: board chat reaches the board's leads and
//! the agents it `@mentions`; `/pause` and `/resume` reach every agent of the board; group
//! chat reaches the leads and mentioned agents of the group's boards, and a broadcast (tag
//! `broadcast` or `@all`) every agent of them. The poster is never told of its own post.
//! Each notice is a `sessions.send` request to the recipient board's gateway, recorded in the
//! post's transaction; the caller pokes the returned gateways once committed.

use serde_json::json;
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::boards::memory::Author;
use crate::domain::model::{Board, BoardGroupMemory, BoardMemory, MemoryBody};
use crate::domain::outbox::commands::{self as gateway_commands, snippet, Target};
use crate::domain::outbox::task_notices;
use crate::domain::support::mentions;
use crate::domain::DomainResult;

/// The longest excerpt of a post a notice quotes, in characters.
const MAX_SNIPPET: usize = 800;

const REPLY_BODY: &str = r#"Body: {"content":"...","tags":["chat"]}"#;

/// An agent that may be told: (id, name, session key, is lead, board id, gateway id).
type Recipient = (Uuid, String, String, bool, Uuid, Uuid);

fn has_tag(body: &MemoryBody, tag: &str) -> bool {
    body.tags.iter().flatten().any(|t| t == tag)
}

async fn recipients(
    client: &impl GenericClient,
    boards_where: &str,
    owner: Uuid,
) -> DomainResult<Vec<Recipient>> {
    let rows = client
        .query(
            &format!(
                "SELECT a.id, a.name, a.openclaw_session_id, a.is_board_lead, b.id AS board_id, \
                   b.gateway_id \
                 FROM agents a JOIN boards b ON b.id = a.board_id \
                 WHERE {boards_where} AND b.gateway_id IS NOT NULL \
                   AND COALESCE(a.openclaw_session_id, '') <> '' \
                 ORDER BY b.id, a.created_at, a.id"
            ),
            &[&owner],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let (id, name, session_key, is_lead) = task_notices::listener_in(r)?;
            let (board_id, gateway_id) = (get(r, "board_id")?, get(r, "gateway_id")?);
            Ok((id, name, session_key, is_lead, board_id, gateway_id))
        })
        .collect()
}

/// Queues `message` for one recipient and returns its gateway.
async fn tell(
    client: &impl GenericClient,
    organization_id: Uuid,
    to: &Recipient,
    message: &str,
    kind: &str,
    deliver: bool,
) -> DomainResult<Uuid> {
    let (agent_id, name, session_key, _, board_id, gateway_id) = to;
    gateway_commands::send_to_session(
        client,
        Target {
            organization_id,
            gateway_id: *gateway_id,
            agent_id: Some(*agent_id),
            board_id: Some(*board_id),
        },
        session_key,
        message,
        json!({"kind": kind, "deliver": deliver, "label": name}),
    )
    .await?;
    Ok(*gateway_id)
}

/// Notices of a board memory post (chat only).
pub async fn board_post(
    client: &impl GenericClient,
    board: &Board,
    entry: &BoardMemory,
    author: &Author,
    base_url: &str,
) -> DomainResult<Vec<Uuid>> {
    if !entry.body.is_chat {
        return Ok(Vec::new());
    }
    let agents = recipients(client, "b.id = $1", board.id).await?;
    let others = agents.iter().filter(|a| Some(a.0) != author.agent_id);
    let command = entry.body.content.trim().to_lowercase();
    let mut gateways = Vec::new();
    if command == "/pause" || command == "/resume" {
        for agent in others {
            gateways.push(
                tell(
                    client,
                    board.organization_id,
                    agent,
                    &command,
                    "board_control",
                    true,
                )
                .await?,
            );
        }
        return Ok(gateways);
    }
    let handles = mentions::extract(&entry.body.content);
    let quoted = snippet(&entry.body.content, MAX_SNIPPET);
    for agent in others {
        let mentioned = handles
            .iter()
            .any(|m| mentions::names(m, &agent.1, agent.3));
        if !(agent.3 || mentioned) {
            continue;
        }
        let header = if mentioned {
            "BOARD CHAT MENTION"
        } else {
            "BOARD CHAT"
        };
        let message = format!(
            "{header}\nBoard: {}\nFrom: {}\n\n{quoted}\n\nReply via board chat:\n\
             POST {base_url}/api/v1/agent/boards/{}/memory\n{REPLY_BODY}",
            board.name, author.name, board.id
        );
        gateways.push(
            tell(
                client,
                board.organization_id,
                agent,
                &message,
                "board_chat",
                false,
            )
            .await?,
        );
    }
    Ok(gateways)
}

/// Notices of a group memory post (chat, broadcast or `@all`).
pub async fn group_post(
    client: &impl GenericClient,
    entry: &BoardGroupMemory,
    author: &Author,
    base_url: &str,
) -> DomainResult<Vec<Uuid>> {
    let handles = mentions::extract(&entry.body.content);
    let broadcast = has_tag(&entry.body, "broadcast") || handles.iter().any(|m| m == "all");
    if !(entry.body.is_chat || broadcast) {
        return Ok(Vec::new());
    }
    let group = client
        .query_one(
            "SELECT name FROM board_groups WHERE id = $1",
            &[&entry.board_group_id],
        )
        .await?;
    let group_name: String = get(&group, "name")?;
    let agents = recipients(client, "b.board_group_id = $1", entry.board_group_id).await?;
    let quoted = snippet(&entry.body.content, MAX_SNIPPET);
    let mut gateways = Vec::new();
    for agent in agents.iter().filter(|a| Some(a.0) != author.agent_id) {
        let mentioned = handles
            .iter()
            .any(|m| mentions::names(m, &agent.1, agent.3));
        if !(broadcast || agent.3 || mentioned) {
            continue;
        }
        let header = match (broadcast, mentioned) {
            (true, _) => "GROUP BROADCAST",
            (false, true) => "GROUP CHAT MENTION",
            (false, false) => "GROUP CHAT",
        };
        let message = format!(
            "{header}\nGroup: {group_name}\nFrom: {}\n\n{quoted}\n\n\
             Reply via group chat (shared across linked boards):\n\
             POST {base_url}/api/v1/boards/{}/group-memory\n{REPLY_BODY}",
            author.name, agent.4
        );
        gateways.push(
            tell(
                client,
                author.organization_id,
                agent,
                &message,
                "group_chat",
                false,
            )
            .await?,
        );
    }
    Ok(gateways)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_trimmed_and_cut_at_800_characters() {
        assert_eq!(snippet("  hi \n", MAX_SNIPPET), "hi");
        let long = "é".repeat(900);
        let cut = snippet(&long, MAX_SNIPPET);
        assert_eq!(cut.chars().count(), 800);
        assert!(cut.ends_with("..."));
        assert_eq!(snippet(&"x".repeat(800), MAX_SNIPPET).len(), 800);
    }
}
