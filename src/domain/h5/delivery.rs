//! H5 messages reach their gateway at least once (V0028, docs/relay-protocol.md "No loss").
//!
//! A message is written pending in the statement that stores it; the router's send right
//! after is its first attempt. It stays pending until the gateway took it — a relay link's
//! `chat.ack`, an OpenClaw `chat.send` answered with its run — and, for an OpenClaw run,
//! until its answer is stored. The gateway's sender (its relay link, or the client of a
//! gateway we dial, on whichever instance holds it) sends again what is due, and everything
//! not yet taken whenever it connects. Each send carries the message id, which the gateway
//! uses to run it once.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::chat::{chat_send_frame, ChatMessage, ChatSession};
use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::DomainResult;
use crate::protocol::h5::{self, AckStatus, Outbound};
use crate::protocol::text;

/// A message not taken this long after a send is sent again, the wait doubling per attempt
/// up to `MAX_RESEND_AFTER`. (Its first wait is set where messages are stored.)
pub use super::chat::RESEND_AFTER;
const MAX_RESEND_AFTER: Duration = Duration::from_secs(300);

/// Claims the messages of the gateway's sessions to send now, oldest first, at most
/// `limit`, as `(message id, chat.send frame)`: every one it has not taken (`everything`: a connection
/// that just came up knows nothing of earlier sends), or only those whose resend is due.
/// Each counts an attempt and pushes its next one back; row locks keep two senders of one
/// gateway from claiming the same message.
pub async fn claim(
    client: &impl GenericClient,
    gateway_id: Uuid,
    everything: bool,
    limit: i64,
) -> DomainResult<Vec<(Uuid, String)>> {
    let rows = client
        .query(
            &format!(
                "WITH due AS ( \
                   SELECT p.message_id FROM h5_chat_pending p \
                   JOIN h5_chat_messages m ON m.id = p.message_id \
                   JOIN h5_chat_sessions s ON s.id = m.session_id \
                   WHERE s.gateway_id = $1 AND p.accepted_at IS NULL AND ($2 OR p.next_attempt_at <= now()) \
                   ORDER BY m.user_seq, m.h5_user_id LIMIT $3 FOR NO KEY UPDATE OF p SKIP LOCKED), \
                 sent AS ( \
                   UPDATE h5_chat_pending p SET attempts = p.attempts + 1, \
                          next_attempt_at = now() + make_interval(secs => least($4 * power(2, p.attempts), $5)) \
                   FROM due WHERE p.message_id = due.message_id RETURNING p.message_id) \
                 SELECT {session_columns}, {message_columns} FROM sent \
                 JOIN h5_chat_messages m ON m.id = sent.message_id \
                 JOIN h5_chat_sessions s ON s.id = m.session_id ORDER BY m.seq",
                session_columns = ChatSession::COLUMNS,
                message_columns = ChatMessage::COLUMNS
            ),
            &[
                &gateway_id,
                &everything,
                &limit,
                &RESEND_AFTER.as_secs_f64(),
                &MAX_RESEND_AFTER.as_secs_f64(),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let session = ChatSession::from_row(row)?;
            let message = ChatMessage::from_row_at(row, ChatSession::WIDTH)?;
            let id = json!(message.client_message_id);
            Ok((message.id, text(&chat_send_frame(&session, &message, &id))))
        })
        .collect()
}

/// When the gateway's next resend falls due, if any message waits for it.
pub async fn next_due(
    client: &impl GenericClient,
    gateway_id: Uuid,
) -> DomainResult<Option<chrono::DateTime<chrono::Utc>>> {
    let row = client
        .query_one(
            "SELECT min(p.next_attempt_at) AS next_due FROM h5_chat_pending p \
             JOIN h5_chat_messages m ON m.id = p.message_id \
             JOIN h5_chat_sessions s ON s.id = m.session_id \
             WHERE s.gateway_id = $1 AND p.accepted_at IS NULL",
            &[&gateway_id],
        )
        .await?;
    Ok(get(&row, "next_due")?)
}

/// Which of `gateway_ids` have an H5 message due to be sent again now.
pub async fn gateways_due(
    client: &impl GenericClient,
    gateway_ids: &[Uuid],
) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT DISTINCT s.gateway_id FROM h5_chat_pending p \
             JOIN h5_chat_messages m ON m.id = p.message_id \
             JOIN h5_chat_sessions s ON s.id = m.session_id \
             WHERE s.gateway_id = ANY($1) AND p.accepted_at IS NULL AND p.next_attempt_at <= now()",
            &[&gateway_ids],
        )
        .await?;
    rows.iter().map(|row| Ok(get(row, "gateway_id")?)).collect()
}

/// How the gateway took a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Done: nothing more is awaited from the gateway for it (a relay gateway, whose replies
    /// are not tied to messages).
    Done,
    /// Its run started; the row stays until the run's answer is stored (an OpenClaw run,
    /// read back from the gateway's history after a failover).
    AnswerAwaited,
}

/// Records that the gateway took these messages, and answers the second ack of each one
/// taken just now (not before): `(h5 user, frame)`.
pub async fn taken(
    client: &impl GenericClient,
    gateway_id: Uuid,
    message_ids: &[Uuid],
    how: Taken,
) -> DomainResult<Vec<(Uuid, String)>> {
    let change = match how {
        Taken::Done => "DELETE FROM h5_chat_pending p WHERE p.message_id = ANY($1)",
        Taken::AnswerAwaited => {
            "UPDATE h5_chat_pending p SET accepted_at = now() \
             WHERE p.message_id = ANY($1) AND p.accepted_at IS NULL"
        }
    };
    let rows = client
        .query(
            &format!(
                "WITH t AS ({change} RETURNING p.message_id) \
                 SELECT {session_columns}, {message_columns} FROM t \
                 JOIN h5_chat_messages m ON m.id = t.message_id \
                 JOIN h5_chat_sessions s ON s.id = m.session_id WHERE s.gateway_id = $2",
                session_columns = ChatSession::COLUMNS,
                message_columns = ChatMessage::COLUMNS
            ),
            &[&message_ids, &gateway_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let session = ChatSession::from_row(row)?;
            let message = ChatMessage::from_row_at(row, ChatSession::WIDTH)?;
            let ack = Outbound::ChatAck {
                id: json!(message.client_message_id),
                payload: h5::ChatAck {
                    message_id: message.id,
                    session_id: session.id,
                    session_key: session.session_key.clone(),
                    duplicate: false,
                    status: AckStatus::Delivered,
                },
            };
            Ok((session.h5_user_id, text(&ack)))
        })
        .collect()
}

/// Sends the message again in `wait` (not sooner: its agent is not ready for it yet).
pub async fn retry_in(
    client: &impl GenericClient,
    message_id: Uuid,
    wait: Duration,
) -> DomainResult<()> {
    client
        .execute(
            "UPDATE h5_chat_pending SET next_attempt_at = now() + make_interval(secs => $2) \
             WHERE message_id = $1 AND accepted_at IS NULL",
            &[&message_id, &wait.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// A message the gateway took whose answer is not stored yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    pub message_id: Uuid,
    pub agent_id: Uuid,
    pub h5_user_id: Uuid,
    /// Since the gateway took it.
    pub accepted_for: Duration,
}

/// Messages the gateway took at least `older_than` ago whose answer is not stored (after a
/// failover, their runs may have ended while nobody listened), oldest first, at most
/// `limit`.
pub async fn unanswered(
    client: &impl GenericClient,
    gateway_id: Uuid,
    older_than: Duration,
    limit: i64,
) -> DomainResult<Vec<Unanswered>> {
    let rows = client
        .query(
            "SELECT m.id, m.agent_id, m.h5_user_id, \
                    extract(epoch FROM now() - p.accepted_at)::float8 AS accepted_for \
             FROM h5_chat_pending p \
             JOIN h5_chat_messages m ON m.id = p.message_id \
             JOIN h5_chat_sessions s ON s.id = m.session_id \
             WHERE s.gateway_id = $1 AND p.accepted_at <= now() - make_interval(secs => $2) \
             ORDER BY p.accepted_at LIMIT $3",
            &[&gateway_id, &older_than.as_secs_f64(), &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Unanswered {
                message_id: get(r, "id")?,
                agent_id: get(r, "agent_id")?,
                h5_user_id: get(r, "h5_user_id")?,
                accepted_for: Duration::from_secs_f64(get::<f64>(r, "accepted_for")?.max(0.0)),
            })
        })
        .collect()
}
