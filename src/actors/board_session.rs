//! `BoardSession`: one per board sync WebSocket (`/ws/board/{board_id}/sync?token=…`).
//!
//! The token is checked after the upgrade (an `error` frame, then close 4001); an unknown
//! board answers 4004. The first frame is `board.state` with its sync number; then the
//! board's room hands on every event after it, in order. A gap (or a room that lost
//! track) sends a fresh `board.state`. `task.move` and `task.create` frames go through the
//! same rules as REST; a refusal answers this client only. Protocol:
//! docs/board-sync-protocol.md.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::board_events::BoardEvents;
use super::board_room::{BoardRooms, Join, Leave, Member, Resync, SyncEvent};
use super::registry::{Control, SocketHandle};
use super::socket::{self, Outbox};
use super::suggestions::{self, SuggestionHubs, LISTENER_QUEUE};
use crate::config::Settings;
use crate::db::in_transaction;
use crate::db::PgPool;
use crate::domain::boards::sync as board_sync;
use crate::domain::model::{Actor as TaskActor, Principal, TaskStatus};
use crate::domain::orgs::accounts;
use crate::domain::support::access::{self, Access};
use crate::domain::tasks::crud::{self as tasks, TaskCreate, TaskUpdate};
use crate::domain::DomainError;
use crate::protocol;
use crate::protocol::board::{self, Closing, Outbound, Request, RequestError};
use crate::protocol::codes::{BoardErrorCode, Close};

/// What a board socket uses, handed over at the upgrade: the board's rows and its task
/// writes, the rooms and suggestion hubs it joins, and its settings (the admin token, socket
/// limits).
#[derive(Clone)]
pub struct BoardDeps {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    /// AUTH_MODE=clerk: checks the socket's Clerk token.
    pub clerk: Option<Arc<crate::domain::orgs::clerk::Verifier>>,
    pub memos: Arc<crate::domain::memos::Memos>,
    pub board_events: BoardEvents,
    pub board_rooms: Addr<BoardRooms>,
    pub suggestions: Addr<SuggestionHubs>,
}

pub struct BoardSession {
    deps: BoardDeps,
    /// `None` when the path's board id is not a UUID.
    board_id: Option<Uuid>,
    token: Option<String>,
    member_id: Uuid,
    principal: Option<Principal>,
    /// The sync number of the last frame sent; `None` until `board.state` went out.
    seq: Option<i64>,
    /// Events that came before `board.state`.
    early: Vec<SyncEvent>,
    loading: bool,
    last_frame: Instant,
    slot: socket::Slot,
    /// A text message arriving in fragments.
    fragments: socket::Fragments,
    outbox: Outbox,
}

impl BoardSession {
    pub fn new(
        deps: BoardDeps,
        board_id: Option<Uuid>,
        token: Option<String>,
        slot: socket::Slot,
        outbox: Outbox,
    ) -> BoardSession {
        BoardSession {
            deps,
            board_id,
            token,
            member_id: Uuid::new_v4(),
            principal: None,
            seq: None,
            early: Vec::new(),
            loading: false,
            last_frame: Instant::now(),
            slot,
            fragments: socket::Fragments::default(),
            outbox,
        }
    }

    /// The reference's flat error frame, then the close.
    fn refuse(ctx: &mut socket::Ctx<Self>, code: Close, message: &str) {
        socket::send(ctx, &Closing::new(code, message));
        socket::close(ctx, code, message);
    }

    /// A refused request: this client only, the socket stays.
    fn error(ctx: &mut socket::Ctx<Self>, code: BoardErrorCode, message: impl Into<Value>) {
        socket::send(ctx, &RequestError::new(code, message));
    }

    fn authenticate(&mut self, ctx: &mut socket::Ctx<Self>) {
        let Some(token) = self.token.clone() else {
            return Self::refuse(ctx, Close::AuthFailed, "unauthorized");
        };
        let Some(board_id) = self.board_id else {
            return Self::refuse(ctx, Close::BoardNotFound, "board not found");
        };
        let (db, settings, clerk, memos) = (
            self.deps.db.clone(),
            self.deps.settings.clone(),
            self.deps.clerk.clone(),
            self.deps.memos.clone(),
        );
        let check = async move {
            let (auth, clerk) = (&settings.auth, clerk.as_deref());
            let principal =
                accounts::admin_principal(&db, &memos.principals, auth, clerk, &token).await?;
            let Some(principal) = principal else {
                return Ok(None);
            };
            let conn = db.get().await?;
            access::board_for_user(&*conn, &principal, board_id, Access::Read).await?;
            Ok::<_, DomainError>(Some(principal))
        };
        ctx.wait(
            check
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(None) => Self::refuse(ctx, Close::AuthFailed, "unauthorized"),
                    Ok(Some(principal)) => {
                        let (frames, suggestions) = mpsc::channel(LISTENER_QUEUE);
                        act.deps.suggestions.do_send(suggestions::Listen {
                            organization_id: principal.organization.id,
                            listener: act.member_id,
                            board_id: Some(board_id),
                            frames,
                        });
                        ctx.add_stream(futures_util::stream::unfold(
                            suggestions,
                            |mut rx| async move {
                                rx.recv().await.map(|frame| (SuggestionFrame(frame), rx))
                            },
                        ));
                        act.principal = Some(principal);
                        act.deps.board_rooms.do_send(Join {
                            board_id,
                            member_id: act.member_id,
                            member: Member {
                                socket: SocketHandle {
                                    control: ctx.address().recipient(),
                                    frames: ctx.address().recipient(),
                                    outbox: act.outbox.clone(),
                                    queue_limit: act.deps.settings.ws.outbound_queue_bytes,
                                },
                                resync: ctx.address().recipient(),
                            },
                        });
                        act.send_state(ctx);
                    }
                    Err(DomainError::NotFound(_)) => {
                        Self::refuse(ctx, Close::BoardNotFound, "board not found")
                    }
                    Err(DomainError::Forbidden(_)) => {
                        Self::refuse(ctx, Close::AuthFailed, "board access denied")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "board socket set-up failed");
                        socket::close(ctx, Close::InternalError, "temporarily unavailable, retry");
                    }
                }),
        );
    }

    /// Sends a fresh `board.state` (all tasks, read in one snapshot with its sync number),
    /// then the events that came meanwhile.
    fn send_state(&mut self, ctx: &mut socket::Ctx<Self>) {
        let Some(board_id) = self.board_id else {
            return;
        };
        if std::mem::replace(&mut self.loading, true) {
            return;
        }
        self.seq = None;
        let deps = self.deps.clone();
        let load = async move {
            let value = in_transaction!(deps, snapshot | tx | board_sync::state(&tx, board_id));
            Ok::<_, DomainError>(value)
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| {
            act.loading = false;
            match result {
                Ok(frame) => {
                    act.seq = Some(frame.seq);
                    socket::send(ctx, &frame);
                    for event in std::mem::take(&mut act.early) {
                        act.on_event(event, ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "board state read failed");
                    socket::close(ctx, Close::InternalError, "temporarily unavailable, retry");
                }
            }
        }));
    }

    fn on_event(&mut self, event: SyncEvent, ctx: &mut socket::Ctx<Self>) {
        let Some(seq) = self.seq else {
            self.early.push(event);
            return;
        };
        if event.seq <= seq {
            // Already in the state this client has; it never reaches the wire.
            self.outbox.release(event.text.len());
        } else if event.seq == seq + 1 {
            self.seq = Some(event.seq);
            ctx.text(&*event.text);
        } else {
            self.outbox.release(event.text.len());
            self.send_state(ctx);
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut socket::Ctx<Self>) {
        if let Some((_, path)) = protocol::nul::in_frame(text) {
            let message = format!("{path} holds a NUL character (\\u0000), which cannot be stored");
            return Self::error(ctx, BoardErrorCode::InvalidText, message);
        }
        let Some(request) = board::parse(text) else {
            return Self::error(ctx, BoardErrorCode::InvalidJson, "send a JSON object");
        };
        let Some(principal) = self.principal.clone() else {
            return Self::error(
                ctx,
                BoardErrorCode::NotReady,
                "the board state is still loading",
            );
        };
        match request {
            Request::Heartbeat { id } => socket::send(ctx, &Outbound::HeartbeatAck { id }),
            Request::Move(task_move) => self.move_task(principal, task_move, ctx),
            Request::Create(create) => self.create_task(principal, create, ctx),
            Request::Unknown(kind) => Self::error(
                ctx,
                BoardErrorCode::UnknownType,
                protocol::unknown_type(&kind),
            ),
        }
    }

    fn move_task(
        &mut self,
        principal: Principal,
        task_move: board::TaskMove,
        ctx: &mut socket::Ctx<Self>,
    ) {
        let status = task_move.status.as_deref().and_then(TaskStatus::parse);
        let (Some(task_id), Some(status)) = (task_move.task_uuid(), status) else {
            let mut refused = RequestError::new(
                BoardErrorCode::InvalidFrame,
                "task.move needs a task_id (UUID) and a status (inbox, in_progress, review or done)",
            );
            refused.task_id = Some(task_move.task_id);
            return socket::send(ctx, &refused);
        };
        let patch = TaskUpdate {
            status: Some(Some(status)),
            ..TaskUpdate::default()
        };
        self.write(principal, Write::Move(task_id, Box::new(patch)), ctx);
    }

    fn create_task(
        &mut self,
        principal: Principal,
        create: board::TaskCreate,
        ctx: &mut socket::Ctx<Self>,
    ) {
        let input = TaskCreate {
            title: create.title.unwrap_or_default(),
            description: None,
            status: create
                .status
                .as_deref()
                .and_then(TaskStatus::parse)
                .unwrap_or(TaskStatus::Inbox),
            priority: "medium".into(),
            due_at: None,
            assigned_agent_id: create.assignee_id,
            depends_on_task_ids: Vec::new(),
            tag_ids: Vec::new(),
            created_by_user_id: None,
            custom_field_values: Default::default(),
        };
        self.write(principal, Write::Create(Box::new(input)), ctx);
    }

    /// Runs a task write in one transaction with the caller's write access to the board;
    /// after the commit the board's rooms are woken. A refusal is an `error` frame with the
    /// REST status and detail.
    fn write(&mut self, principal: Principal, write: Write, ctx: &mut socket::Ctx<Self>) {
        let Some(board_id) = self.board_id else {
            return;
        };
        let about = match &write {
            Write::Move(task_id, _) => Some(Value::from(task_id.to_string())),
            Write::Create(_) => None,
        };
        let deps = self.deps.clone();
        let run = async move {
            let actor = TaskActor::User(principal.user.id);
            let changes = in_transaction!(deps, |tx| async {
                let board =
                    access::board_for_user(&tx, &principal, board_id, Access::Write).await?;
                match write {
                    Write::Move(task_id, patch) => {
                        tasks::update(&tx, &board, &actor, task_id, *patch)
                            .await
                            .map(|(_, c)| c)
                    }
                    Write::Create(input) => tasks::create(&tx, &board, &actor, *input)
                        .await
                        .map(|(_, c)| c),
                }
            });
            deps.board_events
                .tasks_changed(principal.organization.id, board_id, changes);
            Ok::<_, DomainError>(())
        };
        // One write at a time, in the order the client sent them.
        ctx.wait(run.into_actor(self).map(move |result, _, ctx| {
            if let Err(e) = result {
                let (status, detail) = e.status_and_detail();
                let mut refused = RequestError::new(BoardErrorCode::Refused, detail);
                refused.status = Some(status);
                refused.task_id = about;
                socket::send(ctx, &refused);
            }
        }));
    }
}

/// A task write a client frame asks for.
enum Write {
    Move(Uuid, Box<TaskUpdate>),
    Create(Box<TaskCreate>),
}

impl Actor for BoardSession {
    type Context = socket::Ctx<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !socket::admit(ctx, &self.slot) {
            return;
        }
        socket::keep_alive(ctx, &self.deps.settings.ws, |act| act.last_frame, |_, _| {});
        self.authenticate(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let (Some(board_id), Some(principal)) = (self.board_id, &self.principal) {
            self.deps.board_rooms.do_send(Leave {
                board_id,
                member_id: self.member_id,
            });
            self.deps.suggestions.do_send(suggestions::Unlisten {
                organization_id: principal.organization.id,
                listener: self.member_id,
            });
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for BoardSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        let Some(text) = socket::incoming(msg, &mut self.fragments, ctx) else {
            return;
        };
        let limit = self.deps.settings.ws.max_frame_bytes;
        if text.len() > limit {
            return Self::error(
                ctx,
                BoardErrorCode::FrameTooLarge,
                format!("frames are limited to {limit} bytes"),
            );
        }
        self.on_text(&text, ctx)
    }
}

/// A `suggestion.new` of this board (not numbered: it is no task change).
struct SuggestionFrame(Arc<str>);

impl StreamHandler<SuggestionFrame> for BoardSession {
    fn handle(&mut self, frame: SuggestionFrame, ctx: &mut Self::Context) {
        ctx.text(&*frame.0);
    }

    // The hub drops a listener that fell behind; the board socket itself stays.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl Handler<SyncEvent> for BoardSession {
    type Result = ();

    fn handle(&mut self, event: SyncEvent, ctx: &mut Self::Context) {
        self.on_event(event, ctx);
    }
}

impl Handler<Resync> for BoardSession {
    type Result = ();

    fn handle(&mut self, _: Resync, ctx: &mut Self::Context) {
        self.send_state(ctx);
    }
}

impl Handler<Control> for BoardSession {
    type Result = ();

    fn handle(&mut self, control: Control, ctx: &mut Self::Context) {
        match control {
            Control::TooSlow => socket::close(
                ctx,
                Close::TooSlow,
                "client too slow: reconnect for a fresh board.state",
            ),
            Control::Replaced | Control::Revoked(_) => {
                Self::refuse(ctx, Close::AuthFailed, "unauthorized")
            }
            // A board's events are re-read by its room when it is woken again.
            Control::Resync => {}
        }
    }
}
