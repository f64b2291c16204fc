//! Requests to a gateway over its relay link (docs/gateway-protocol.md §7): recorded before
//! they are sent, claimed by the link that sends them, retried with backoff until the gateway
//! answers, and answered into the same row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::DomainResult;
use crate::protocol::relay;
use crate::secrets::agent_tokens::{self, Holder};

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
pub const TIMEOUT: &str = "timeout";

crate::db::record! {
    /// A recorded request (`gateway_commands c`).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Command in "c" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub gateway_id: Uuid,
        pub agent_id: Option<Uuid>,
        pub board_id: Option<Uuid>,
        pub method: String,
        #[schema(value_type = Object)]
        pub params: Value,
        /// `pending`, `sent`, `done`, `failed` or `timeout`.
        pub status: String,
        pub attempts: i32,
        pub next_attempt_at: DateTime<Utc>,
        #[schema(value_type = Option<Object>)]
        pub result: Option<Value>,
        pub error: Option<String>,
        pub created_at: DateTime<Utc>,
        pub answered_at: Option<DateTime<Utc>>,
    }
}

/// Who a request is for.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub organization_id: Uuid,
    pub gateway_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub board_id: Option<Uuid>,
}

/// A request to record. `reply_to` names the instance whose caller waits for the answer;
/// such a request is sent once (the caller times out instead of waiting for retries).
pub struct NewCommand<'a> {
    pub target: Target,
    pub method: &'a str,
    pub params: Value,
    pub reply_to: Option<&'a str>,
}

pub async fn record(client: &impl GenericClient, new: NewCommand<'_>) -> DomainResult<Command> {
    let t = new.target;
    let max_attempts = new.reply_to.map(|_| 1i32);
    let row = client
        .query_one(
            &format!(
                "INSERT INTO gateway_commands AS c (id, organization_id, gateway_id, agent_id, board_id, \
                 method, params, max_attempts, reply_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING {}",
                Command::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &t.organization_id,
                &t.gateway_id,
                &t.agent_id,
                &t.board_id,
                &new.method,
                &new.params,
                &max_attempts,
                &new.reply_to,
            ],
        )
        .await?;
    Ok(Command::from_row(&row)?)
}

/// Queues a message into an agent's session on its gateway (`sessions.send`): nudges,
/// questions for the user, lead messages, webhook notices. `context` keys (kind,
/// correlation_id, …) travel with it.
pub async fn send_to_session(
    client: &impl GenericClient,
    target: Target,
    session_key: &str,
    message: &str,
    context: Value,
) -> DomainResult<Command> {
    let mut params = json!({"session_key": session_key, "message": message});
    if let (Some(params), Value::Object(context)) = (params.as_object_mut(), context) {
        for (key, value) in context {
            params.entry(key).or_insert(value);
        }
    }
    record(
        client,
        NewCommand {
            target,
            method: "sessions.send",
            params,
            reply_to: None,
        },
    )
    .await
}

/// A text a notice quotes: trimmed, and cut to `max` characters ending in `...` when
/// longer, as the reference quotes posts and comments.
pub fn snippet(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 3).collect();
    format!("{cut}...")
}

/// The wait before re-sending an unanswered request: `base` doubled per attempt, at most
/// 32 × `base`.
fn backoff(base: Duration, attempts: i32) -> Duration {
    base * 2u32.pow(attempts.clamp(0, 5) as u32)
}

/// Which of `gateway_ids` have a request due to be sent (again) now.
pub async fn gateways_due(
    client: &impl GenericClient,
    gateway_ids: &[Uuid],
) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT DISTINCT gateway_id FROM gateway_commands \
             WHERE gateway_id = ANY($1) AND status IN ('pending', 'sent') AND next_attempt_at <= now()",
            &[&gateway_ids],
        )
        .await?;
    rows.iter().map(|row| Ok(get(row, "gateway_id")?)).collect()
}

/// Claims the gateway's requests that are due (never sent, or sent and unanswered past their
/// backoff) for sending now, oldest first, and gives up on those out of attempts. Returns
/// the requests to send (with the fresh `auth_token` of those that rotate it), when the
/// next open request falls due, and the requests given up on. Row locks make two claimers
/// (a link and its replacement) take disjoint sets.
pub async fn claim_due(
    client: &impl GenericClient,
    gateway_id: Uuid,
    retry_base: Duration,
    max_attempts: i32,
    instance_id: &str,
    token_key: &str,
) -> DomainResult<(Vec<Command>, Option<DateTime<Utc>>, Vec<Command>)> {
    let spent = client
        .query(
            &format!(
                "WITH spent AS (
                     UPDATE gateway_commands c SET status = 'failed', updated_at = now(),
                            error = format('no answer after %s attempts', attempts)
                      WHERE gateway_id = $1 AND status = 'sent' AND next_attempt_at <= now()
                        AND attempts >= COALESCE(max_attempts, $3)
                  RETURNING {}),
                 noted AS (
                     INSERT INTO gateway_command_attempts (command_id, attempt, outcome, detail, instance_id)
                     SELECT id, attempts, 'failed', 'no answer', $2 FROM spent)
                 SELECT * FROM spent",
                Command::COLUMNS
            ),
            &[&gateway_id, &instance_id, &max_attempts],
        )
        .await?;
    let spent = Command::from_rows(&spent)?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM gateway_commands c
                  WHERE gateway_id = $1 AND status IN ('pending', 'sent') AND next_attempt_at <= now()
                  ORDER BY created_at, id LIMIT 100 FOR UPDATE SKIP LOCKED",
                Command::COLUMNS
            ),
            &[&gateway_id],
        )
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let mut command = Command::from_row(&row)?;
        command.attempts += 1;
        let wait = backoff(retry_base, command.attempts - 1);
        client
            .execute(
                "UPDATE gateway_commands SET status = 'sent', attempts = $2, updated_at = now(),
                        next_attempt_at = now() + make_interval(secs => $3)
                  WHERE id = $1",
                &[&command.id, &command.attempts, &wait.as_secs_f64()],
            )
            .await?;
        note_attempt(
            client,
            command.id,
            command.attempts,
            SENT,
            None,
            instance_id,
        )
        .await?;
        with_token(client, &mut command, token_key).await?;
        claimed.push(command);
    }
    let row = client
        .query_one(
            "SELECT min(next_attempt_at) AS next_due FROM gateway_commands
              WHERE gateway_id = $1 AND status IN ('pending', 'sent')",
            &[&gateway_id],
        )
        .await?;
    let next_due = get(&row, "next_due")?;
    Ok((claimed, next_due, spent))
}

/// A request with `"rotate_token": true` carries the agent's new token as `auth_token`,
/// minted as it is sent: the token exists in clear only on the wire, never in the recorded
/// request.
async fn with_token(
    client: &impl GenericClient,
    command: &mut Command,
    token_key: &str,
) -> DomainResult<()> {
    let params = &mut command.params;
    if let (Some(true), Some(agent_id), Some(map)) = (
        params["rotate_token"].as_bool(),
        command.agent_id,
        params.as_object_mut(),
    ) {
        let token = rotate_gateway_token(client, agent_id, token_key).await?;
        map.insert("auth_token".into(), json!(token));
    }
    Ok(())
}

/// `{"type":"rpc.request","id","attempt","payload":{"method","params"}}`: a claimed request
/// on a relay link.
pub fn rpc_frame(command: &Command) -> String {
    crate::protocol::text(&relay::Outbound::RpcRequest {
        id: command.id,
        attempt: command.attempts,
        payload: relay::RpcCall {
            method: command.method.clone(),
            params: command.params.clone(),
        },
    })
}

async fn note_attempt(
    client: &impl GenericClient,
    command_id: Uuid,
    attempt: i32,
    outcome: &str,
    detail: Option<&str>,
    instance_id: &str,
) -> DomainResult<()> {
    client
        .execute(
            "INSERT INTO gateway_command_attempts (command_id, attempt, outcome, detail, instance_id)
             VALUES ($1, $2, $3, $4, $5)",
            &[&command_id, &attempt, &outcome, &detail, &instance_id],
        )
        .await?;
    Ok(())
}

/// A gateway's answer. `Ok(None)` when the id is not one of this gateway's open requests
/// (a duplicate answer, or another gateway's id); otherwise the answered request and the
/// instance that waits for it, if any.
pub struct Answered {
    pub command: Command,
    pub reply_to: Option<String>,
}

pub async fn answer(
    client: &impl GenericClient,
    gateway_id: Uuid,
    command_id: Uuid,
    outcome: Result<Value, String>,
    instance_id: &str,
) -> DomainResult<Option<Answered>> {
    let (status, result, error) = match &outcome {
        Ok(result) => (DONE, Some(result), None),
        Err(error) => (FAILED, None, Some(error.as_str())),
    };
    let row = client
        .query_opt(
            &format!(
                "UPDATE gateway_commands c SET status = $3, result = $4, error = $5,
                        answered_at = now(), updated_at = now()
                  WHERE id = $1 AND gateway_id = $2 AND status IN ('pending', 'sent')
              RETURNING {}, reply_to",
                Command::COLUMNS
            ),
            &[&command_id, &gateway_id, &status, &result, &error],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let command = Command::from_row(&row)?;
    note_attempt(
        client,
        command.id,
        command.attempts,
        status,
        error,
        instance_id,
    )
    .await?;
    Ok(Some(Answered {
        command,
        reply_to: get(&row, "reply_to")?,
    }))
}

/// A waiting caller gave up (or its gateway was not connected): the request is closed, so a
/// late answer is ignored and the link does not send it later.
pub async fn abandon(
    client: &impl GenericClient,
    command_id: Uuid,
    why: &str,
    instance_id: &str,
) -> DomainResult<()> {
    let row = client
        .query_opt(
            "UPDATE gateway_commands SET status = $2, error = $3, updated_at = now()
              WHERE id = $1 AND status IN ('pending', 'sent') RETURNING attempts",
            &[&command_id, &TIMEOUT, &why],
        )
        .await?;
    if let Some(row) = row {
        note_attempt(
            client,
            command_id,
            get(&row, "attempts")?,
            TIMEOUT,
            Some(why),
            instance_id,
        )
        .await?;
    }
    Ok(())
}

/// The gateway's latest requests, newest first.
pub async fn recent(
    client: &impl GenericClient,
    gateway_id: Uuid,
    limit: i64,
) -> DomainResult<Vec<Command>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM gateway_commands c WHERE gateway_id = $1
                  ORDER BY created_at DESC, id DESC LIMIT $2",
                Command::COLUMNS
            ),
            &[&gateway_id, &limit],
        )
        .await?;
    Ok(Command::from_rows(&rows)?)
}

/// A new token for the agent's gateway (sent in a provisioning request); the token shown
/// to the agent's creator keeps working.
pub async fn rotate_gateway_token(
    client: &impl GenericClient,
    agent_id: Uuid,
    key: &str,
) -> DomainResult<String> {
    let minted = agent_tokens::mint(key, Holder::Gateway);
    client
        .execute(
            "INSERT INTO agent_gateway_tokens (agent_id, lookup, hash) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id) DO UPDATE SET lookup = $2, hash = $3, created_at = now()",
            &[&agent_id, &minted.lookup, &minted.hash],
        )
        .await?;
    Ok(minted.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 0), Duration::from_secs(5));
        assert_eq!(backoff(base, 1), Duration::from_secs(10));
        assert_eq!(backoff(base, 5), Duration::from_secs(160));
        assert_eq!(backoff(base, 40), Duration::from_secs(160));
    }
}
