//! H5 chat: sessions between a user and an assigned agent, and their messages. Messages are
//! stored before anything is routed (pub/sub is fire-and-forget), each with a global order
//! (`seq`) so a reconnecting client can ask for everything after the last one it saw.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{DomainError, DomainResult};
use crate::protocol::codes::ErrorCode;
use crate::protocol::h5::{self, AgentPresence, Extra, MessageFields, Outbound, Role};
use crate::protocol::relay;

/// A user message not taken by its gateway this long after a send is sent again
/// (`delivery`, which doubles the wait per attempt).
pub const RESEND_AFTER: Duration = Duration::from_secs(10);

/// The CTE that makes the user message just inserted (CTE `ins`) pending (`h5_chat_pending`,
/// read by `delivery`); the router's send is its first attempt.
fn pending_cte() -> String {
    format!(
        "pend AS (INSERT INTO h5_chat_pending (message_id, attempts, next_attempt_at) \
         SELECT id, 1, now() + make_interval(secs => {}) FROM ins)",
        RESEND_AFTER.as_secs()
    )
}

crate::db::record! {
    /// A chat session (`h5_chat_sessions`).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct ChatSession in "s" {
        pub id: Uuid,
        pub h5_user_id: Uuid,
        pub agent_id: Uuid,
        pub gateway_id: Uuid,
        pub session_key: String,
        pub status: String,
        pub last_message_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

crate::db::record! {
    /// A stored message.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct ChatMessage in "m" {
        pub id: Uuid,
        pub session_id: Uuid,
        pub agent_id: Uuid,
        /// `user` or `assistant`.
        pub role: String,
        #[schema(value_type = Object)]
        pub content: Value,
        #[schema(value_type = Option<Object>)]
        pub extra: Option<Value>,
        pub client_message_id: Option<String>,
        /// The message's number among its user's messages (in commit order).
        pub user_seq: i64,
        pub created_at: DateTime<Utc>,
    }
}

/// Takes the user's next message number under the user's row lock (see V0010).
const NEXT_USER_SEQ: &str = "UPDATE h5_users SET message_seq = message_seq + 1";

pub fn session_key(h5_user_id: Uuid, agent_id: Uuid) -> String {
    format!("h5:{h5_user_id}:{agent_id}")
}

/// Why a chat message was not accepted; the codes are the relay protocol's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AssignmentNotFound,
    AgentUnavailable,
}

impl Refusal {
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::AssignmentNotFound => ErrorCode::AssignmentNotFound,
            Refusal::AgentUnavailable => ErrorCode::AgentUnavailable,
        }
    }
}

/// A user message, stored: `duplicate` when the frame resends a stored message (`Resend`;
/// it is not routed again).
pub struct Accepted {
    pub session: ChatSession,
    pub message: ChatMessage,
    pub duplicate: bool,
}

/// What makes a chat frame a resend of a stored user message (docs/relay-protocol.md,
/// "Resends"): the same frame id and the same content, stored less than `window` ago — or
/// at any age when the id is a UUID (a client that mints UUIDs means them to be unique).
/// The shipped app restarts its ids at `local-1` on every page load, so an id alone is not
/// a message's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Resend {
    /// The frame id and a digest of the content (`h5_chat_messages.resend_key`).
    key: String,
    /// `None`: the id is a UUID, a resend at any age.
    window: Option<f64>,
}

impl Resend {
    /// `None` for a frame without an id (it cannot be resent).
    pub fn of(
        client_message_id: Option<&str>,
        content: &Value,
        window: Duration,
    ) -> Option<Resend> {
        let id = client_message_id?;
        let digest = crate::secrets::tokens::sha256_hex(&content.to_string());
        Some(Resend {
            key: format!("{id}:{digest}"),
            window: Uuid::parse_str(id).is_err().then_some(window.as_secs_f64()),
        })
    }
}

/// The stored message that `resend` repeats, if it is recent enough to be one. An older
/// message with the same key gives the key up (`None`: the frame is a new message, and the
/// caller stores it again).
async fn resent_message(
    client: &impl GenericClient,
    session_id: Uuid,
    resend: &Resend,
) -> DomainResult<Option<ChatMessage>> {
    let row = client
        .query_opt(
            &format!(
                "WITH prior AS ( \
                   SELECT id, ($3::float8 IS NULL OR created_at > now() - make_interval(secs => $3)) AS recent \
                   FROM h5_chat_messages WHERE session_id = $1 AND resend_key = $2), \
                 released AS ( \
                   UPDATE h5_chat_messages SET resend_key = NULL \
                   WHERE id = (SELECT id FROM prior WHERE NOT recent) RETURNING id) \
                 SELECT {} FROM h5_chat_messages m JOIN prior ON prior.id = m.id AND prior.recent",
                ChatMessage::COLUMNS
            ),
            &[&session_id, &resend.key, &resend.window],
        )
        .await?;
    Ok(row.as_ref().map(ChatMessage::from_row).transpose()?)
}

/// Stores a user message in `session` unless it resends a stored one (then that one, and
/// `true`). `insert` runs the insert; `Ok(None)` from it means the resend key was taken.
async fn store_once<C, F, Fut>(
    client: &C,
    session_id: Uuid,
    resend: Option<&Resend>,
    insert: F,
) -> DomainResult<Option<(ChatMessage, bool)>>
where
    C: GenericClient,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = DomainResult<Inserted>>,
{
    // Twice at most: a key held by an old message is released by the first look.
    for _ in 0..2 {
        match insert().await? {
            Inserted::Refused => return Ok(None),
            Inserted::Stored(message) => return Ok(Some((*message, false))),
            Inserted::KeyTaken => {}
        }
        let Some(resend) = resend else { break };
        if let Some(earlier) = resent_message(client, session_id, resend).await? {
            return Ok(Some((earlier, true)));
        }
    }
    Err(DomainError::Conflict(json!(
        "the message's resend key stayed taken; send it again"
    )))
}

/// What one insert of a user message did.
enum Inserted {
    Stored(Box<ChatMessage>),
    /// A message with the same resend key is stored.
    KeyTaken,
    /// The check in the statement failed (the fast path's assignment).
    Refused,
}

/// Checks the assignment, gets or creates the session (pointing at the agent's current
/// gateway) and stores the message.
pub async fn accept_user_message(
    client: &impl GenericClient,
    h5_user_id: Uuid,
    organization_id: Uuid,
    agent_id: Uuid,
    client_message_id: Option<&str>,
    resend: Option<&Resend>,
    content: &Value,
) -> DomainResult<Result<Accepted, Refusal>> {
    let assignment = client
        .query_opt(
            "SELECT ag.gateway_id, ag.status FROM h5_user_agent_assignments a JOIN agents ag ON ag.id = a.agent_id \
             WHERE a.h5_user_id = $1 AND a.agent_id = $2 AND ag.organization_id = $3",
            &[&h5_user_id, &agent_id, &organization_id],
        )
        .await?;
    let Some(assignment) = assignment else {
        return Ok(Err(Refusal::AssignmentNotFound));
    };
    let gateway_id: Uuid = get(&assignment, "gateway_id")?;
    if get::<&str>(&assignment, "status")? == "deleting" {
        return Ok(Err(Refusal::AgentUnavailable));
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO h5_chat_sessions AS s (id, organization_id, h5_user_id, agent_id, gateway_id, session_key) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (h5_user_id, agent_id) DO UPDATE SET gateway_id = EXCLUDED.gateway_id, updated_at = now() \
                 RETURNING {columns}",
                columns = ChatSession::COLUMNS
            ),
            &[&Uuid::new_v4(), &organization_id, &h5_user_id, &agent_id, &gateway_id, &session_key(h5_user_id, agent_id)],
        )
        .await?;
    let session = ChatSession::from_row(&row)?;
    let stored = store_once(client, session.id, resend, || {
        insert_checked(client, &session, client_message_id, resend, content)
    })
    .await?;
    // The check passed a moment ago: it fails only if the assignment or the agent changed
    // since, in a race with this message.
    let (message, duplicate) =
        stored.ok_or_else(|| DomainError::conflict("the message was not stored; send it again"))?;
    Ok(Ok(Accepted {
        session,
        message,
        duplicate,
    }))
}

/// What a reply answers: a session by its key (relay gateways echo it), or the user
/// message whose id started the run (OpenClaw gateways run each message under its id).
#[derive(Debug, Clone, Copy)]
pub enum ReplyTo<'a> {
    Session(&'a str),
    Message(Uuid),
}

/// A stored reply: its session, the message, and whether it was stored before (resent).
pub type StoredReply = (ChatSession, ChatMessage, bool);

/// A gateway's reply: stored in the session it answers, if the session is this gateway's
/// (a gateway cannot write into another gateway's sessions). `None` otherwise.
pub async fn accept_reply(
    client: &impl GenericClient,
    gateway_id: Uuid,
    to: ReplyTo<'_>,
    reply_id: Option<&str>,
    content: &Value,
    extra: Option<&Value>,
) -> DomainResult<Option<StoredReply>> {
    let (session, key, message): (&str, Option<&str>, Option<Uuid>) = match to {
        ReplyTo::Session(key) => (
            // Every variant names all seven parameters: `$7` (`$1`) is null here.
            "SELECT * FROM h5_chat_sessions WHERE session_key = $1 AND gateway_id = $2 AND $7::uuid IS NULL",
            Some(key),
            None,
        ),
        ReplyTo::Message(id) => (
            "SELECT s.* FROM h5_chat_sessions s JOIN h5_chat_messages um ON um.session_id = s.id \
             WHERE um.id = $7 AND um.role = 'user' AND s.gateway_id = $2 AND $1::text IS NULL",
            None,
            Some(id),
        ),
    };
    // One statement: find the session, store the reply (a resent reply, stored before,
    // takes no number), touch the session.
    let row = client.query_opt(&format!(
            "WITH s AS ({session}), \
             next AS ({NEXT_USER_SEQ} WHERE id = (SELECT h5_user_id FROM s) AND NOT EXISTS ( \
               SELECT 1 FROM h5_chat_messages WHERE session_id = (SELECT id FROM s) AND role = 'assistant' AND client_message_id = $4) \
               RETURNING message_seq), \
             ins AS ( \
               INSERT INTO h5_chat_messages (id, session_id, h5_user_id, agent_id, role, client_message_id, content, extra, user_seq) \
               SELECT $3, s.id, s.h5_user_id, s.agent_id, 'assistant', $4, $5, $6, next.message_seq FROM s, next \
               ON CONFLICT (session_id, client_message_id) WHERE role = 'assistant' DO NOTHING \
               RETURNING id, session_id, agent_id, role, content, extra, client_message_id, user_seq, created_at), \
             touch AS ( \
               UPDATE h5_chat_sessions SET last_message_at = now(), updated_at = now() \
               WHERE id = (SELECT id FROM s) AND EXISTS (SELECT 1 FROM ins)), \
             answered AS ( \
               DELETE FROM h5_chat_pending WHERE message_id = $7 AND EXISTS (SELECT 1 FROM s)) \
             SELECT {session_columns}, {message_columns}, m.id IS NULL AS resent \
             FROM s LEFT JOIN ins m ON true",
            session_columns = ChatSession::COLUMNS,
            message_columns = ChatMessage::COLUMNS
        ),
        &[&key, &gateway_id, &Uuid::new_v4(), &reply_id, content, &extra, &message],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let session = ChatSession::from_row(&row)?;
    if get(&row, "resent")? {
        // A resent reply: already stored and delivered.
        let stored = client
            .query_one(
                &format!(
                    "SELECT {columns} FROM h5_chat_messages m \
                     WHERE m.session_id = $1 AND m.role = 'assistant' AND m.client_message_id = $2",
                    columns = ChatMessage::COLUMNS
                ),
                &[&session.id, &reply_id],
            )
            .await?;
        return Ok(Some((session, ChatMessage::from_row(&stored)?, true)));
    }
    let message = ChatMessage::from_row_at(&row, ChatSession::WIDTH)?;
    Ok(Some((session, message, false)))
}

/// A gateway's reply to store with others (`accept_replies`).
pub struct ReplyIn<'a> {
    pub session_key: &'a str,
    pub reply_id: Option<&'a str>,
    pub content: &'a Value,
    pub extra: Option<&'a Value>,
}

/// Stores a gateway's replies in the caller's transaction and answers each one's outcome
/// (`accept_reply`), in the order given. Their statements are sent together in the order
/// of their session keys (stable: a session's replies keep their order, and so their
/// numbers): a key starts with its user's id (`session_key`), so every batch takes users'
/// rows in one order and two batches never wait on each other in a circle.
pub async fn accept_replies(
    client: &impl GenericClient,
    gateway_id: Uuid,
    replies: &[ReplyIn<'_>],
) -> DomainResult<Vec<Option<StoredReply>>> {
    in_order(
        replies,
        |r| r.session_key,
        |reply| {
            accept_reply(
                client,
                gateway_id,
                ReplyTo::Session(reply.session_key),
                reply.reply_id,
                reply.content,
                reply.extra,
            )
        },
    )
    .await
}

/// Runs `store` for each item, sent together (one round trip, not one per item) in the
/// order of `key` (stable), and answers the outcomes in the order given. The first runs
/// alone: once it ran, its statement is prepared on the connection, so each of the others
/// is sent as soon as it is polled, in the order polled (a statement still to prepare
/// would be sent when its preparation came back).
async fn in_order<'i, T, K, F, Fut, O>(items: &'i [T], key: K, store: F) -> DomainResult<Vec<O>>
where
    K: Fn(&'i T) -> &'i str,
    F: Fn(&'i T) -> Fut,
    Fut: std::future::Future<Output = DomainResult<O>>,
    O: Default,
{
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| key(&items[i]));
    let mut outcomes: Vec<O> = (0..items.len()).map(|_| O::default()).collect();
    let Some((&first, rest)) = order.split_first() else {
        return Ok(outcomes);
    };
    outcomes[first] = store(&items[first]).await?;
    let stored = futures_util::future::try_join_all(rest.iter().map(|&i| store(&items[i]))).await?;
    for (&i, outcome) in rest.iter().zip(stored) {
        outcomes[i] = outcome;
    }
    Ok(outcomes)
}

/// What every frame of `message` says about it; `role` is the frame's.
fn message_fields(session: &ChatSession, message: &ChatMessage, role: Role) -> MessageFields {
    MessageFields {
        session_key: session.session_key.clone(),
        session_id: session.id,
        agent_id: message.agent_id,
        content: message.content.clone(),
        role,
        message_id: message.id,
        seq: message.user_seq,
    }
}

/// The frame an H5 client receives for an assistant message (the reference's `chat_reply`,
/// plus ids; `extra` fields never override the ones the client relies on).
pub fn reply_frame(session: &ChatSession, message: &ChatMessage) -> Outbound {
    Outbound::ChatReply {
        id: message.id,
        payload: h5::ChatReply {
            message: message_fields(session, message, Role::Assistant),
            created_at: message.created_at,
            extra: Extra::new(message.extra.as_ref()),
        },
    }
}

/// The `chat.send` frame that carries a user message to its agent's gateway (relay
/// protocol, gateway side); `id` is the user's frame id.
pub fn chat_send_frame(
    session: &ChatSession,
    message: &ChatMessage,
    id: &Value,
) -> relay::Outbound {
    relay::Outbound::ChatSend {
        id: id.clone(),
        payload: relay::ChatSend {
            message: message_fields(session, message, Role::User),
            h5_user_id: session.h5_user_id,
        },
    }
}

/// The frame of a user message, for the user's other devices and for resume.
pub fn user_message_frame(session: &ChatSession, message: &ChatMessage) -> Outbound {
    Outbound::ChatMessage {
        id: message.id,
        payload: h5::UserMessage {
            message: message_fields(session, message, Role::User),
            client_message_id: message.client_message_id.clone(),
            created_at: message.created_at,
        },
    }
}

pub async fn sessions(
    client: &impl GenericClient,
    h5_user_id: Uuid,
    page: PageParams,
) -> DomainResult<Page<ChatSession>> {
    fetch_page(
        client,
        ChatSession::COLUMNS,
        "FROM h5_chat_sessions s WHERE s.h5_user_id = $1",
        "s.last_message_at DESC NULLS LAST, s.created_at DESC, s.id",
        &[&h5_user_id],
        page,
        ChatSession::from_row,
    )
    .await
}

/// A session's messages, newest first; `before` (a message id) pages back in time.
pub async fn messages(
    client: &impl GenericClient,
    h5_user_id: Uuid,
    session_id: Uuid,
    before: Option<Uuid>,
    page: PageParams,
) -> DomainResult<Page<ChatMessage>> {
    let owned = client
        .query_opt(
            "SELECT 1 FROM h5_chat_sessions WHERE id = $1 AND h5_user_id = $2",
            &[&session_id, &h5_user_id],
        )
        .await?
        .is_some();
    if !owned {
        return Err(DomainError::not_found());
    }
    fetch_page(
        client,
        ChatMessage::COLUMNS,
        "FROM h5_chat_messages m WHERE m.session_id = $1 \
         AND ($2::uuid IS NULL OR m.user_seq < (SELECT user_seq FROM h5_chat_messages WHERE id = $2 AND session_id = $1))",
        "m.user_seq DESC",
        &[&session_id, &before],
        page,
        ChatMessage::from_row,
    )
    .await
}

/// The (H5 user, agent) pairs that chat through this gateway: who to tell when it goes
/// offline or comes back.
pub async fn audience_of_gateway(
    client: &impl GenericClient,
    gateway_id: Uuid,
) -> DomainResult<Vec<(Uuid, Uuid)>> {
    let rows = client
        .query(
            "SELECT a.h5_user_id, a.agent_id FROM h5_user_agent_assignments a JOIN agents ag ON ag.id = a.agent_id \
             WHERE ag.gateway_id = $1",
            &[&gateway_id],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((get(r, "h5_user_id")?, get(r, "agent_id")?)))
        .collect()
}

/// `{"type":"system","payload":{"event":"agent_offline"|"agent_online","agent_id","gateway_id"}}`.
pub fn presence_frame(event: AgentPresence, agent_id: Uuid, gateway_id: Uuid) -> Outbound {
    Outbound::System {
        payload: h5::SystemEvent {
            event,
            agent_id,
            gateway_id,
        },
    }
}

/// The chat sessions routed to a gateway, most recent first (for the admin view).
pub async fn sessions_of_gateway(
    client: &impl GenericClient,
    gateway_id: Uuid,
    limit: i64,
) -> DomainResult<Vec<ChatSession>> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM h5_chat_sessions s WHERE s.gateway_id = $1 \
                 ORDER BY s.last_message_at DESC NULLS LAST, s.created_at DESC LIMIT $2",
                columns = ChatSession::COLUMNS
            ),
            &[&gateway_id, &limit],
        )
        .await?;
    Ok(ChatSession::from_rows(&rows)?)
}

/// The fast path of a user message once the socket knows its session: one statement that
/// re-checks the assignment (and that the agent is still on the session's gateway), stores
/// the message and touches the session. `None` when the check fails: the caller then takes
/// `accept_user_message`, which says why (or moves the session to the agent's new gateway).
pub async fn store_user_message(
    client: &impl GenericClient,
    session: &ChatSession,
    client_message_id: Option<&str>,
    resend: Option<&Resend>,
    content: &Value,
) -> DomainResult<Option<(ChatMessage, bool)>> {
    store_once(client, session.id, resend, || {
        insert_checked(client, session, client_message_id, resend, content)
    })
    .await
}

/// A user message to store in the socket's known session (`store_user_messages`).
pub struct UserMessageIn {
    pub session: ChatSession,
    pub client_message_id: Option<String>,
    pub resend: Option<Resend>,
    pub content: Value,
}

/// Stores user messages as `store_user_message` does, each in its known session, in the
/// caller's transaction, and answers each one's outcome in the order given. Their
/// statements are sent together in the order of their session keys, which start with
/// their users' ids (`session_key`): every batch takes users' rows in one order (as
/// replies and delivered marks do: `accept_replies`, `stream::delivered`), so two never
/// wait on each other in a circle, and a user's messages keep their order (and so their
/// numbers).
pub async fn store_user_messages(
    client: &impl GenericClient,
    messages: &[UserMessageIn],
) -> DomainResult<Vec<Option<(ChatMessage, bool)>>> {
    in_order(
        messages,
        |m| m.session.session_key.as_str(),
        |m| {
            store_user_message(
                client,
                &m.session,
                m.client_message_id.as_deref(),
                m.resend.as_ref(),
                &m.content,
            )
        },
    )
    .await
}

/// One statement: checks the assignment (and that the agent is on the session's gateway and
/// not being deleted), takes the user's next message number under the user's row lock
/// (`NEXT_USER_SEQ`; not for a frame whose resend key is stored: a resend uses up no
/// number, so a user's numbers have no gaps a client would wait to see filled), stores the
/// message pending with its resend key unique in the session, and touches the session.
async fn insert_checked(
    client: &impl GenericClient,
    session: &ChatSession,
    client_message_id: Option<&str>,
    resend: Option<&Resend>,
    content: &Value,
) -> DomainResult<Inserted> {
    let key = resend.map(|r| r.key.as_str());
    let row = client.query_one(&format!(
            "WITH allowed AS ( \
           SELECT 1 FROM h5_user_agent_assignments a JOIN agents ag ON ag.id = a.agent_id \
           WHERE a.h5_user_id = $2 AND a.agent_id = $3 AND ag.gateway_id = $4 AND ag.status <> 'deleting'), \
         next AS ({NEXT_USER_SEQ} WHERE id = $2 AND EXISTS (SELECT 1 FROM allowed) AND NOT EXISTS ( \
           SELECT 1 FROM h5_chat_messages WHERE session_id = $1 AND resend_key = $7) RETURNING message_seq), \
         ins AS ( \
           INSERT INTO h5_chat_messages (id, session_id, h5_user_id, agent_id, role, client_message_id, resend_key, content, user_seq) \
           SELECT $5, $1, $2, $3, 'user', $6, $7, $8, next.message_seq FROM allowed, next \
           ON CONFLICT (session_id, resend_key) WHERE resend_key IS NOT NULL DO NOTHING \
           RETURNING id, session_id, agent_id, role, content, extra, client_message_id, user_seq, created_at), \
         {pending}, \
         touch AS ( \
           UPDATE h5_chat_sessions SET last_message_at = now(), updated_at = now() \
           WHERE id = $1 AND EXISTS (SELECT 1 FROM ins)) \
         SELECT {columns}, EXISTS (SELECT 1 FROM allowed) AS allowed, m.id IS NOT NULL AS stored \
         FROM (SELECT 1) AS one LEFT JOIN ins m ON true",
            pending = pending_cte(),
            columns = ChatMessage::COLUMNS
        ),
        &[&session.id, &session.h5_user_id, &session.agent_id, &session.gateway_id, &Uuid::new_v4(), &client_message_id, &key, content],
    )
    .await?;
    if !get::<bool>(&row, "allowed")? {
        return Ok(Inserted::Refused);
    }
    if get(&row, "stored")? {
        return Ok(Inserted::Stored(Box::new(ChatMessage::from_row(&row)?)));
    }
    Ok(Inserted::KeyTaken)
}
