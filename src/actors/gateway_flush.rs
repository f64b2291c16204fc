//! What a gateway's sender (a relay link, or the `GatewayClient` of a gateway we dial or
//! reach through a connector) does between its socket and PostgreSQL: claims the requests and
//! H5 messages due for the gateway (`claim_due`), one flush at a time (`Flushes`), and
//! records the gateway's answers to requests (`record_answer`).

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use uuid::Uuid;

use super::gateway_link::LinkDeps;
use super::gateway_rpc::RouteAnswer;
use super::group_commit::each_outcome;
use crate::domain::gateways::requests as gateway_requests;
use crate::domain::h5::chat::{self as h5_chat, StoredReply};
use crate::domain::h5::delivery;
use crate::domain::outbox::commands as gateway_commands;
use crate::domain::DomainError;
use crate::protocol::relay::ChatReply;

/// H5 messages sent per flush; a full batch flushes again at once.
const CHAT_BATCH: i64 = 500;

/// What a gateway's sender (a relay link, or the client of a gateway we dial) sends when it
/// comes up or is woken: its due requests, the H5 messages it has not taken, and when the
/// next of either falls due.
pub struct Due {
    pub commands: Vec<gateway_commands::Command>,
    pub next_due: Option<chrono::DateTime<Utc>>,
    /// `(message id, chat.send frame)`, oldest first.
    pub chat: Vec<(Uuid, String)>,
    /// A whole batch of chat was claimed: there may be more behind it.
    pub more_chat: bool,
}

/// Records a gateway's answer to a request (and what it settles, in one transaction), then
/// hands it to the caller waiting for it, on whichever instance that is.
pub async fn record_answer(
    deps: &LinkDeps,
    gateway_id: Uuid,
    command_id: Uuid,
    outcome: Result<serde_json::Value, String>,
) -> Result<(), String> {
    let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    let answered = gateway_requests::answer(
        &tx,
        gateway_id,
        command_id,
        outcome.clone(),
        &deps.settings.instance_id,
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    if let Some(reply_to) = answered.and_then(|a| a.reply_to) {
        deps.rpc.do_send(RouteAnswer {
            reply_to,
            command_id,
            outcome,
        });
    }
    Ok(())
}

/// Stores a link's replies (group commit: those that came while the previous batch was
/// stored) in one transaction, and answers each one's outcome in order (`None`: no session
/// of this gateway has its key). A reply alone commits by itself (`each_outcome` says what
/// a batch that failed answers).
pub async fn store_replies(
    deps: &LinkDeps,
    gateway_id: Uuid,
    replies: &[ChatReply],
) -> Vec<Result<Option<StoredReply>, String>> {
    let given: Vec<h5_chat::ReplyIn<'_>> = replies
        .iter()
        .map(|r| h5_chat::ReplyIn {
            session_key: &r.session_key,
            reply_id: r.reply_id.as_deref(),
            content: &r.content,
            extra: r.extra.as_ref(),
        })
        .collect();
    if let [reply] = given.as_slice() {
        return vec![store_alone(deps, gateway_id, reply).await];
    }
    let together = async {
        let mut conn = deps.db.get().await?;
        let tx = conn.transaction().await?;
        let stored = h5_chat::accept_replies(&tx, gateway_id, &given).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(stored)
    };
    let together = together.await;
    each_outcome("replies", &given, together, |reply| {
        store_alone(deps, gateway_id, reply)
    })
    .await
}

/// One reply, its statement committing by itself.
async fn store_alone(
    deps: &LinkDeps,
    gateway_id: Uuid,
    reply: &h5_chat::ReplyIn<'_>,
) -> Result<Option<StoredReply>, String> {
    let conn = deps.db.get().await.map_err(|e| e.to_string())?;
    h5_chat::accept_replies(&*conn, gateway_id, std::slice::from_ref(reply))
        .await
        .map(|mut stored| stored.pop().flatten())
        .map_err(|e| e.to_string())
}

/// Claims the gateway's due requests (unless `chat_only`: the reference's chat socket
/// carries chat only) and H5 messages, in one transaction: every message it has not taken
/// when `connected` (a connection that just came up), else those due again.
pub async fn claim_due(
    deps: &LinkDeps,
    gateway_id: Uuid,
    connected: bool,
    chat_only: bool,
) -> Result<Due, String> {
    let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    let settings = &deps.settings;
    let (commands, commands_due) = match chat_only {
        true => (Vec::new(), None),
        false => gateway_requests::claim_due(
            &tx,
            gateway_id,
            settings.gateway.command_retry,
            settings.gateway.command_max_attempts,
            &settings.instance_id,
            &settings.agent_token_key.0,
        )
        .await
        .map_err(|e| e.to_string())?,
    };
    let chat = delivery::claim(&tx, gateway_id, connected, CHAT_BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let chat_due = delivery::next_due(&tx, gateway_id)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    let next_due = match (commands_due, chat_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Due {
        commands,
        next_due,
        more_chat: chat.len() as i64 == CHAT_BATCH,
        chat,
    })
}

/// The flushes of a gateway's sender (a relay link, or the client of a gateway we dial): one
/// at a time (a wake-up meanwhile runs another after it), whether the next is the first of
/// the connection, and the timer for the next request or message that falls due.
pub struct Flushes {
    running: bool,
    again: bool,
    /// The next flush is the first of this connection: it claims every H5 message the
    /// gateway has not taken (whatever was sent before may have been lost with the connection).
    first: bool,
    retry: Option<SpawnHandle>,
}

impl Default for Flushes {
    fn default() -> Flushes {
        Flushes {
            running: false,
            again: false,
            first: true,
            retry: None,
        }
    }
}

impl Flushes {
    /// Starts a flush: `Some(first of the connection)`, or `None` when one is running (this
    /// one then runs after it).
    pub fn start(&mut self) -> Option<bool> {
        if self.running {
            self.again = true;
            return None;
        }
        self.running = true;
        self.again = false;
        Some(std::mem::take(&mut self.first))
    }

    /// Another flush runs after this one (more was due than one claim takes).
    pub fn again(&mut self) {
        self.again = true;
    }

    /// A flush running now runs again after it (what it claimed may have changed).
    pub fn again_if_running(&mut self) {
        self.again |= self.running;
    }

    /// The claim of a flush failed: if it was the connection's first, the next one is.
    pub fn claim_failed(&mut self, first: bool) {
        self.first |= first;
    }

    /// The flush is over: `true` when another was asked for meanwhile.
    pub fn done(&mut self) -> bool {
        self.running = false;
        std::mem::take(&mut self.again)
    }

    /// The connection is new: its first flush claims everything not taken.
    pub fn reconnected(&mut self) {
        self.first = true;
    }

    /// Runs `flush` when the next request or message falls due (replacing the timer armed
    /// before).
    pub fn arm<A, C>(
        &mut self,
        ctx: &mut C,
        next_due: Option<chrono::DateTime<Utc>>,
        flush: fn(&mut A, &mut C),
    ) where
        A: Actor<Context = C>,
        C: AsyncContext<A> + 'static,
    {
        if let Some(retry) = self.retry.take() {
            ctx.cancel_future(retry);
        }
        if let Some(due) = next_due {
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            self.retry = Some(
                ctx.run_later(wait + Duration::from_millis(10), move |act, ctx| {
                    flush(act, ctx)
                }),
            );
        }
    }
}

/// The last `RECENT` message ids a link wrote, oldest forgotten first.
#[derive(Default)]
pub struct RecentIds {
    order: std::collections::VecDeque<Uuid>,
    ids: std::collections::HashSet<Uuid>,
}

/// Enough to cover a connection's first flush racing the messages routed meanwhile.
const RECENT: usize = 1024;

impl RecentIds {
    /// `false` when `id` is among the recent ones already.
    pub fn insert(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}
