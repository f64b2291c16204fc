//! What an H5 user's sockets are sent, in order and without gaps. Every stored message has
//! its number among the user's messages (`user_seq`, taken under the user's row lock, so in
//! commit order); its frame carries it as `seq`. A socket that sees a gap, a client that
//! resumes after the last `seq` (or message) it saw, and a client that says nothing (the
//! shipped app: it gets what came after the last number any socket of the user was handed,
//! `h5_users.delivered_seq`) are all answered from here.

use uuid::Uuid;

use super::chat::{reply_frame, user_message_frame, ChatMessage, ChatSession};
use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::DomainResult;
use crate::protocol::h5::{Outbound, ResumeFrom};

/// Where the messages to send start (after which number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// What the client said it saw.
    Client(ResumeFrom),
    /// The last number a socket of the user was handed.
    Delivered,
    /// A number this socket knows.
    Seq(i64),
}

/// The user's messages after `after`, oldest first, at most `limit`, as `(seq, frame)`: a
/// reply as `chat_reply`, a message of the user (from any device) as `chat_message`. A
/// message id unknown to this user resumes from the start.
pub async fn frames(
    client: &impl GenericClient,
    h5_user_id: Uuid,
    after: After,
    limit: i64,
) -> DomainResult<Vec<(i64, Outbound)>> {
    let (seq, message): (Option<i64>, Option<Uuid>) = match after {
        After::Client(ResumeFrom::Seq(seq)) | After::Seq(seq) => (Some(seq), None),
        After::Client(ResumeFrom::Message(id)) => (None, Some(id)),
        After::Delivered => (None, None),
    };
    let rows = client
        .query(
            &format!(
                "WITH start AS (SELECT CASE \
                    WHEN $2::bigint IS NOT NULL THEN $2 \
                    WHEN $3::uuid IS NOT NULL THEN COALESCE( \
                      (SELECT user_seq FROM h5_chat_messages WHERE id = $3 AND h5_user_id = $1), 0) \
                    ELSE (SELECT delivered_seq FROM h5_users WHERE id = $1) END AS seq) \
                 SELECT {message_columns}, {session_columns} FROM h5_chat_messages m \
                 JOIN h5_chat_sessions s ON s.id = m.session_id \
                 WHERE m.h5_user_id = $1 AND m.user_seq > (SELECT seq FROM start) \
                 ORDER BY m.user_seq LIMIT $4",
                message_columns = ChatMessage::COLUMNS,
                session_columns = ChatSession::COLUMNS
            ),
            &[&h5_user_id, &seq, &message, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let message = ChatMessage::from_row(row)?;
            let session = ChatSession::from_row_at(row, ChatMessage::WIDTH)?;
            let frame = match message.role.as_str() {
                "assistant" => reply_frame(&session, &message),
                _ => user_message_frame(&session, &message),
            };
            Ok((message.user_seq, frame))
        })
        .collect()
}

/// The number of the user's latest message (0 when none).
pub async fn latest(client: &impl GenericClient, h5_user_id: Uuid) -> DomainResult<i64> {
    let row = client
        .query_one(
            "SELECT message_seq FROM h5_users WHERE id = $1",
            &[&h5_user_id],
        )
        .await?;
    Ok(get(&row, "message_seq")?)
}

/// Sockets of these users were handed their messages up to these numbers (one per user):
/// each user's mark moves up to it, never down. One statement; it locks the users in id
/// order (as a batch of replies does: `chat::accept_replies`), so it never waits on another
/// batch in a circle.
pub async fn delivered(client: &impl GenericClient, marks: &[(Uuid, i64)]) -> DomainResult<()> {
    let (users, seqs): (Vec<Uuid>, Vec<i64>) = marks.iter().copied().unzip();
    client
        .query(
            "WITH b AS (SELECT * FROM unnest($1::uuid[], $2::int8[]) AS b(id, seq)), \
         locked AS MATERIALIZED ( \
           SELECT u.id FROM h5_users u WHERE u.id = ANY($1) ORDER BY u.id FOR NO KEY UPDATE) \
         UPDATE h5_users u SET delivered_seq = greatest(u.delivered_seq, b.seq) \
         FROM b JOIN locked l ON l.id = b.id WHERE u.id = b.id",
            &[&users, &seqs],
        )
        .await?;
    Ok(())
}
