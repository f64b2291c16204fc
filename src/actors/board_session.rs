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
use actix_web::web::Data;
use actix_web_actors::ws::{self, CloseCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::board_room::{Join, Leave, Member, Resync, SyncEvent};
use super::registry::{Control, SocketHandle};
use super::socket::{self, codes, ConnectionSlot, Outbox};
use super::suggestions::{self, LISTENER_QUEUE};
use crate::auth::admin;
use crate::domain::boards::sync as board_sync;
use crate::domain::model::{Actor as TaskActor, Principal, TaskStatus};
use crate::domain::orgs::accounts;
use crate::domain::support::access::{self, Access};
use crate::domain::tasks::crud::{self as tasks, TaskCreate, TaskUpdate};
use crate::domain::DomainError;
use crate::http::in_transaction;
use crate::state::AppState;

/// Close codes of the board protocol (the reference's).
const UNAUTHORIZED: u16 = 4001;
const BOARD_NOT_FOUND: u16 = 4004;

pub struct BoardSession {
    state: Data<AppState>,
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
    slot: Option<ConnectionSlot>,
    outbox: Outbox,
}

impl BoardSession {
    pub fn new(
        state: Data<AppState>,
        board_id: Option<Uuid>,
        token: Option<String>,
        slot: Option<ConnectionSlot>,
        outbox: Outbox,
    ) -> BoardSession {
        BoardSession {
            state,
            board_id,
            token,
            member_id: Uuid::new_v4(),
            principal: None,
            seq: None,
            early: Vec::new(),
            loading: false,
            last_frame: Instant::now(),
            slot,
            outbox,
        }
    }

    /// The reference's flat error frame, then the close.
    fn refuse(ctx: &mut socket::Ctx<Self>, code: u16, message: &str) {
        socket::send(
            ctx,
            &json!({"type": "error", "code": code, "message": message}),
        );
        socket::close(ctx, CloseCode::Other(code), message);
    }

    /// A refused request: this client only, the socket stays.
    fn error(ctx: &mut socket::Ctx<Self>, code: &str, message: Value, extra: Value) {
        let mut frame = json!({"type": "error", "code": code, "message": message});
        if let (Some(frame), Some(extra)) = (frame.as_object_mut(), extra.as_object()) {
            frame.extend(extra.clone());
        }
        socket::send(ctx, &frame);
    }

    fn authenticate(&mut self, ctx: &mut socket::Ctx<Self>) {
        let valid = self
            .token
            .as_deref()
            .is_some_and(|t| admin::token_valid(&self.state.settings, t));
        if !valid {
            return Self::refuse(ctx, UNAUTHORIZED, "unauthorized");
        }
        let Some(board_id) = self.board_id else {
            return Self::refuse(ctx, BOARD_NOT_FOUND, "board not found");
        };
        let state = self.state.clone();
        let check = async move {
            let principal = accounts::local_principal(&state.db).await?;
            let conn = state.db.get().await?;
            access::board_for_user(&*conn, &principal, board_id, Access::Read).await?;
            Ok::<_, DomainError>(principal)
        };
        ctx.wait(
            check
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(principal) => {
                        let (frames, suggestions) = mpsc::channel(LISTENER_QUEUE);
                        act.state.suggestions.do_send(suggestions::Listen {
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
                        act.state.board_rooms.do_send(Join {
                            board_id,
                            member_id: act.member_id,
                            member: Member {
                                socket: SocketHandle {
                                    control: ctx.address().recipient(),
                                    frames: ctx.address().recipient(),
                                    outbox: act.outbox.clone(),
                                    queue_limit: act.state.settings.ws.outbound_queue_bytes,
                                },
                                resync: ctx.address().recipient(),
                            },
                        });
                        act.send_state(ctx);
                    }
                    Err(DomainError::NotFound(_)) => {
                        Self::refuse(ctx, BOARD_NOT_FOUND, "board not found")
                    }
                    Err(DomainError::Forbidden(_)) => {
                        Self::refuse(ctx, UNAUTHORIZED, "board access denied")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "board socket set-up failed");
                        socket::close(ctx, CloseCode::Error, "temporarily unavailable, retry");
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
        let state = self.state.clone();
        let load = async move {
            let value = in_transaction!(state, |tx| async {
                crate::db::read_snapshot(&tx).await?;
                board_sync::state(&tx, board_id).await
            });
            Ok::<_, DomainError>(value)
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| {
            act.loading = false;
            match result {
                Ok(frame) => {
                    act.seq = frame["seq"].as_i64();
                    socket::send(ctx, &frame);
                    for event in std::mem::take(&mut act.early) {
                        act.on_event(event, ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "board state read failed");
                    socket::close(ctx, CloseCode::Error, "temporarily unavailable, retry");
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
        let frame: Value = match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return Self::error(
                    ctx,
                    "invalid_json",
                    json!("send a JSON object"),
                    Value::Null,
                )
            }
        };
        let Some(principal) = self.principal.clone() else {
            return Self::error(
                ctx,
                "not_ready",
                json!("the board state is still loading"),
                Value::Null,
            );
        };
        match frame["type"].as_str().unwrap_or_default() {
            "heartbeat" => socket::send(ctx, &json!({"type": "heartbeat.ack", "id": frame["id"]})),
            "task.move" => self.move_task(principal, &frame, ctx),
            "task.create" => self.create_task(principal, &frame, ctx),
            other => Self::error(
                ctx,
                "unknown_type",
                json!(format!("unknown frame type {other:?}")),
                Value::Null,
            ),
        }
    }

    fn move_task(&mut self, principal: Principal, frame: &Value, ctx: &mut socket::Ctx<Self>) {
        let task_id = frame["task_id"]
            .as_str()
            .and_then(|id| id.parse::<Uuid>().ok());
        let status = frame["status"].as_str().and_then(TaskStatus::parse);
        let (Some(task_id), Some(status)) = (task_id, status) else {
            return Self::error(
                ctx,
                "invalid_frame",
                json!("task.move needs a task_id (UUID) and a status (inbox, in_progress, review or done)"),
                json!({"task_id": frame["task_id"]}),
            );
        };
        let patch = TaskUpdate {
            status: Some(Some(status)),
            ..TaskUpdate::default()
        };
        self.write(principal, Write::Move(task_id, Box::new(patch)), ctx);
    }

    fn create_task(&mut self, principal: Principal, frame: &Value, ctx: &mut socket::Ctx<Self>) {
        let input = TaskCreate {
            title: frame["title"].as_str().unwrap_or_default().to_string(),
            description: None,
            status: frame["status"]
                .as_str()
                .and_then(TaskStatus::parse)
                .unwrap_or(TaskStatus::Inbox),
            priority: "medium".into(),
            due_at: None,
            assigned_agent_id: frame["assignee_id"].as_str().and_then(|id| id.parse().ok()),
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
            Write::Move(task_id, _) => json!({"task_id": task_id}),
            Write::Create(_) => Value::Null,
        };
        let state = self.state.clone();
        let run = async move {
            let actor = TaskActor::User(principal.user.id);
            let changes = in_transaction!(state, |tx| async {
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
            state
                .board_events
                .tasks_changed(principal.organization.id, board_id, changes);
            Ok::<_, DomainError>(())
        };
        // One write at a time, in the order the client sent them.
        ctx.wait(run.into_actor(self).map(move |result, _, ctx| {
            if let Err(e) = result {
                let (status, detail) = e.status_and_detail();
                let mut extra = json!({"status": status});
                if let (Some(extra), Some(about)) = (extra.as_object_mut(), about.as_object()) {
                    extra.extend(about.clone());
                }
                Self::error(ctx, "refused", detail, extra);
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
        if socket::refuse_over_capacity(ctx, &self.slot) {
            return;
        }
        socket::keep_alive(
            ctx,
            &self.state.settings.ws,
            |act| act.last_frame,
            |_, _| {},
        );
        self.authenticate(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let (Some(board_id), Some(principal)) = (self.board_id, &self.principal) {
            self.state.board_rooms.do_send(Leave {
                board_id,
                member_id: self.member_id,
            });
            self.state.suggestions.do_send(suggestions::Unlisten {
                organization_id: principal.organization.id,
                listener: self.member_id,
            });
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for BoardSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        let Some(ws::Message::Text(text)) = socket::incoming(msg, ctx) else {
            return;
        };
        let limit = self.state.settings.ws.max_frame_bytes;
        if text.len() > limit {
            return Self::error(
                ctx,
                "frame_too_large",
                json!(format!("frames are limited to {limit} bytes")),
                Value::Null,
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
            Control::GoingAway => socket::close(ctx, CloseCode::Away, "server shutting down"),
            Control::TooSlow => socket::close(
                ctx,
                CloseCode::Other(codes::TOO_SLOW),
                "client too slow: reconnect for a fresh board.state",
            ),
            Control::Replaced | Control::Revoked(_) => {
                Self::refuse(ctx, UNAUTHORIZED, "unauthorized")
            }
        }
    }
}
