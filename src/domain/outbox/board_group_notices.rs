//! "BOARD GROUP UPDATED": when a board joins or leaves a group, every agent on the group's
//! boards (and on the board itself) is told, as a `sessions.send` request to its gateway
//! recorded with the change, with a `board.group.{join,leave}.notified` activity each.

use serde_json::json;
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::model::{Board, BoardGroup};
use crate::domain::outbox::commands::{self as gateway_commands, Target};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::DomainResult;

/// Join or leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Join,
    Leave,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Join => "join",
            Change::Leave => "leave",
        }
    }
}

/// The reference's notice, word for word.
fn notice(change: Change, changed: &Board, recipient: (Uuid, &str), group: &BoardGroup) -> String {
    let (label, guidance) = match change {
        Change::Join => (
            "Joined Board",
            "1) Use cross-board discussion when work spans multiple boards.\n\
             2) Check related board activity before acting on shared concerns.\n\
             3) Explicitly coordinate ownership to avoid duplicate or conflicting work.\n",
        ),
        Change::Leave => (
            "Left Board",
            "1) Treat cross-board coordination with the departed board as inactive.\n\
             2) Re-check dependencies and ownership that previously spanned this board.\n\
             3) Confirm no in-flight handoffs still rely on the prior group link.\n",
        ),
    };
    format!(
        "BOARD GROUP UPDATED\n{label}: {}\n{label} ID: {}\nRecipient Board: {}\n\
         Recipient Board ID: {}\nBoard Group: {}\nBoard Group ID: {}\n\n\
         Coordination guidance:\n{guidance}",
        changed.name, changed.id, recipient.1, recipient.0, group.name, group.id
    )
}

/// Tells the agents of `group`'s boards, and of `board`, that `board` joined or left it.
/// Agents without a session, and boards without a gateway, are skipped. Returns the
/// gateways to poke once committed.
pub async fn notify(
    client: &impl GenericClient,
    board: &Board,
    group: &BoardGroup,
    change: Change,
) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT a.id AS agent_id, a.name AS agent_name, a.openclaw_session_id, \
               b.id AS board_id, b.name AS board_name, b.gateway_id \
             FROM agents a JOIN boards b ON b.id = a.board_id \
             WHERE (b.board_group_id = $1 OR b.id = $2) AND b.organization_id = $3 \
               AND b.gateway_id IS NOT NULL AND COALESCE(a.openclaw_session_id, '') <> '' \
             ORDER BY b.id, a.created_at, a.id",
            &[&group.id, &board.id, &board.organization_id],
        )
        .await?;
    let action = change.as_str();
    let event_type = format!("board.group.{action}.notified");
    let mut gateways = Vec::new();
    for row in rows {
        let agent_id: Uuid = get(&row, "agent_id")?;
        let agent_name: String = get(&row, "agent_name")?;
        let session_key: String = get(&row, "openclaw_session_id")?;
        let recipient_id: Uuid = get(&row, "board_id")?;
        let recipient_name: String = get(&row, "board_name")?;
        let gateway_id: Uuid = get(&row, "gateway_id")?;
        gateway_commands::send_to_session(
            client,
            Target {
                organization_id: board.organization_id,
                gateway_id,
                agent_id: Some(agent_id),
                board_id: Some(recipient_id),
            },
            &session_key,
            &notice(change, board, (recipient_id, &recipient_name), group),
            json!({"kind": format!("board_group_{action}"), "deliver": false, "label": agent_name}),
        )
        .await?;
        activity::record(
            client,
            NewActivity {
                organization_id: board.organization_id,
                board_id: None,
                event_type: &event_type,
                message: Some(format!(
                    "Board-group {action} notice sent to {agent_name} for board {recipient_name} \
                     related to {} and {}.",
                    board.name, group.name
                )),
                agent_id: Some(agent_id),
                task_id: None,
            },
        )
        .await?;
        gateways.push(gateway_id);
    }
    Ok(gateways)
}
