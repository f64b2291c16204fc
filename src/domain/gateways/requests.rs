//! A gateway's recorded requests (`outbox::commands`) as the actors that carry them see them:
//! claim what is due, record an answer, and what each outcome settles — the agent's
//! lifecycle activity (what the console's agent page lists) and a webhook payload's
//! delivery. A relay link and a gateway client do the same here, whatever their transport.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::agents::coordination;
use crate::domain::outbox::commands::{self as gateway_commands, Answered, Command, DONE};
use crate::domain::outbox::provisioning::{CREATE, DELETE, UPDATE};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::DomainResult;

/// What a claim gives a sender: the requests to send now, and when the next one falls due.
pub type Claimed = (Vec<Command>, Option<DateTime<Utc>>);

/// Claims the gateway's due requests (`gateway_commands::claim_due`); the requests it gives
/// up on (out of attempts) are settled as failed here, in the caller's transaction.
pub async fn claim_due(
    client: &impl GenericClient,
    gateway_id: Uuid,
    retry_base: Duration,
    max_attempts: i32,
    instance_id: &str,
    token_key: &str,
) -> DomainResult<Claimed> {
    let (claimed, next_due, spent) = gateway_commands::claim_due(
        client,
        gateway_id,
        retry_base,
        max_attempts,
        instance_id,
        token_key,
    )
    .await?;
    for command in &spent {
        settle(client, command).await?;
    }
    Ok((claimed, next_due))
}

/// Records the gateway's answer to a request and settles it. `None`: the request was
/// already answered (a repeated answer) or is not this gateway's.
pub async fn answer(
    client: &impl GenericClient,
    gateway_id: Uuid,
    command_id: Uuid,
    outcome: Result<Value, String>,
    instance_id: &str,
) -> DomainResult<Option<Answered>> {
    let answered =
        gateway_commands::answer(client, gateway_id, command_id, outcome, instance_id).await?;
    if let Some(answered) = &answered {
        settle(client, &answered.command).await?;
    }
    Ok(answered)
}

/// What an ended request settles.
async fn settle(client: &impl GenericClient, command: &Command) -> DomainResult<()> {
    coordination::answered(client, command).await?;
    provisioned(client, command).await
}

/// The reference's activity for a provisioning request that ended: `agent.provision.direct`
/// / `agent.update.direct` / `agent.delete.direct` when the gateway took it,
/// `agent.provision.failed` / `agent.update.failed` / `agent.delete.failed` with the
/// gateway's error when it did not (or the retries ran out).
async fn provisioned(client: &impl GenericClient, command: &Command) -> DomainResult<()> {
    let (action, label, done) = match command.method.as_str() {
        CREATE => ("provision", "Provision", "Provisioned directly for"),
        UPDATE => ("update", "Update", "Updated directly for"),
        DELETE => ("delete", "Delete", "Deleted agent"),
        _ => return Ok(()),
    };
    let (agent_id, board_id, name) = if action == "delete" {
        // The row is gone: the request carries the name.
        let name = command.params["agent_name"].as_str().unwrap_or("the agent");
        (None, command.board_id, name.to_string())
    } else {
        let Some(agent_id) = command.agent_id else {
            return Ok(());
        };
        let Some(row) = client
            .query_opt(
                "SELECT name, board_id FROM agents WHERE id = $1",
                &[&agent_id],
            )
            .await?
        else {
            // Deleted since: its deletion is the last word.
            return Ok(());
        };
        (Some(agent_id), get(&row, "board_id")?, get(&row, "name")?)
    };
    let (event_type, message) = if command.status == DONE {
        (format!("agent.{action}.direct"), format!("{done} {name}."))
    } else {
        let error = command.error.as_deref().unwrap_or("no answer");
        (
            format!("agent.{action}.failed"),
            format!("{label} message failed: {error}"),
        )
    };
    activity::record(
        client,
        NewActivity {
            organization_id: command.organization_id,
            board_id,
            event_type: &event_type,
            message: Some(message),
            agent_id,
            task_id: None,
        },
    )
    .await?;
    Ok(())
}
