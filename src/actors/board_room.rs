//! Board rooms: one `BoardRoom` per watched board per instance fans the board's sync
//! events out to the `BoardSession`s here; `BoardRooms` (one per instance) starts a room on
//! a board's first session and stops it with the last.
//!
//! A write's sync events reach the room through the `FeedHub` once committed, from any
//! instance (`protocol::bus::SyncNews`); the room hands them on in order through each
//! socket's bounded outbox. It reads PostgreSQL only where it cannot go on in order: at
//! its start (where the board stands), for a gap (news of writers on other instances may
//! overtake each other, a publication may be lost) and for a plain poke. Each event number
//! is committed only after every smaller one (`board_log`), so news of n means a read
//! finds everything up to n.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::feeds::{FeedHub, Listen, Unlisten, Wake};
use super::registry::{Control, SocketHandle};
use crate::db::PgPool;
use crate::protocol::bus::SyncNews;
use crate::protocol::channels::Channel;

/// Events read at once; a room further behind reads again at once.
const BATCH: i64 = 500;

/// News kept while a read is under way or a gap is being filled; a room with more drops
/// them and reads (the read finds them).
const MAX_PENDING: usize = 2 * BATCH as usize;

/// One sync event for a session: its number and its frame.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct SyncEvent {
    pub seq: i64,
    pub text: Arc<str>,
}

/// The room lost track (events were dropped from the kept tail): the session must send a
/// fresh `board.state`.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Resync;

pub struct Member {
    pub socket: SocketHandle<SyncEvent>,
    pub resync: Recipient<Resync>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub board_id: Uuid,
    pub member_id: Uuid,
    pub member: Member,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub board_id: Uuid,
    pub member_id: Uuid,
}

#[derive(Message)]
#[rtype(result = "()")]
struct AddMember(Uuid, Member);

#[derive(Message)]
#[rtype(result = "()")]
struct RemoveMember(Uuid);

#[derive(Message)]
#[rtype(result = "()")]
struct Close;

/// A running room and the controls of its sessions (to close them at shutdown).
type OpenRoom = (Addr<BoardRoom>, HashMap<Uuid, Recipient<Control>>);

pub struct BoardRooms {
    db: PgPool,
    feeds: Addr<FeedHub>,
    rooms: HashMap<Uuid, OpenRoom>,
}

impl BoardRooms {
    pub fn new(db: PgPool, feeds: Addr<FeedHub>) -> BoardRooms {
        BoardRooms {
            db,
            feeds,
            rooms: HashMap::new(),
        }
    }
}

impl Actor for BoardRooms {
    type Context = Context<Self>;
}

impl Supervised for BoardRooms {}

impl Handler<Join> for BoardRooms {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        let (room, members) = self.rooms.entry(msg.board_id).or_insert_with(|| {
            let room = BoardRoom::new(msg.board_id, self.db.clone(), self.feeds.clone()).start();
            (room, HashMap::new())
        });
        members.insert(msg.member_id, msg.member.socket.control.clone());
        room.do_send(AddMember(msg.member_id, msg.member));
    }
}

impl Handler<Leave> for BoardRooms {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        let Some((room, members)) = self.rooms.get_mut(&msg.board_id) else {
            return;
        };
        members.remove(&msg.member_id);
        room.do_send(RemoveMember(msg.member_id));
        // The directory decides when a room ends, so a join can never reach a room that is
        // already stopping.
        if members.is_empty() {
            room.do_send(Close);
            self.rooms.remove(&msg.board_id);
        }
    }
}

pub struct BoardRoom {
    board_id: Uuid,
    db: PgPool,
    feeds: Addr<FeedHub>,
    listener: Uuid,
    members: HashMap<Uuid, Member>,
    /// The last event handed on; `None` until the room has read where the board stands.
    cursor: Option<i64>,
    /// News after the cursor not yet handed on: it waits for a read under way or for a gap
    /// before it to be filled.
    pending: BTreeMap<i64, Arc<str>>,
    reading: bool,
    read_again: bool,
}

impl BoardRoom {
    fn new(board_id: Uuid, db: PgPool, feeds: Addr<FeedHub>) -> BoardRoom {
        BoardRoom {
            board_id,
            db,
            feeds,
            listener: Uuid::new_v4(),
            members: HashMap::new(),
            cursor: None,
            pending: BTreeMap::new(),
            reading: false,
            read_again: false,
        }
    }

    /// News arrived: hands on what follows the cursor, keeps the rest; a plain poke (or
    /// news not understood) is a read.
    fn news(&mut self, payload: &str, ctx: &mut Context<Self>) {
        let Some(SyncNews(events)) = SyncNews::decode(payload) else {
            return self.read(ctx);
        };
        for (seq, text) in events {
            if self.cursor.is_none_or(|cursor| seq > cursor) {
                self.pending.insert(seq, text.into());
            }
        }
        if self.pending.len() > MAX_PENDING {
            self.pending.clear();
            return self.read(ctx);
        }
        self.go_on(ctx);
    }

    /// Hands on the pending news that follows the cursor; a gap before the rest is read.
    fn go_on(&mut self, ctx: &mut Context<Self>) {
        let Some(mut cursor) = self.cursor else {
            // The start's read is under way; it goes on when done.
            return;
        };
        if self.reading {
            return;
        }
        let mut ready = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            let seq = *entry.key();
            if seq > cursor + 1 {
                break;
            }
            let text = entry.remove();
            if seq == cursor + 1 {
                ready.push((seq, text));
                cursor = seq;
            }
        }
        self.hand_on(ready);
        if !self.pending.is_empty() {
            self.read(ctx);
        }
    }

    /// Reads what is new and hands it on; one read at a time, another right after when
    /// woken meanwhile.
    fn read(&mut self, ctx: &mut Context<Self>) {
        if self.reading {
            self.read_again = true;
            return;
        }
        self.reading = true;
        let (db, board_id, cursor) = (self.db.clone(), self.board_id, self.cursor);
        let fetch = async move {
            let conn = db.get().await.map_err(|e| e.to_string())?;
            let Some(after) = cursor else {
                let current = crate::domain::support::board_log::current(&*conn, board_id)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Read::Start(current));
            };
            match crate::domain::support::board_log::events_after(&*conn, board_id, after, BATCH)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(events) => Ok(Read::Events(events)),
                None => Ok(Read::Lost(
                    crate::domain::support::board_log::current(&*conn, board_id)
                        .await
                        .map_err(|e| e.to_string())?,
                )),
            }
        };
        ctx.spawn(fetch.into_actor(self).map(|result: Result<Read, String>, room, ctx| {
            room.reading = false;
            match result {
                Ok(Read::Start(current)) => room.cursor = Some(current),
                Ok(Read::Events(events)) => {
                    if events.len() as i64 == BATCH {
                        room.read_again = true;
                    }
                    room.hand_on(events.into_iter().map(|(seq, text)| (seq, text.into())).collect());
                }
                Ok(Read::Lost(current)) => {
                    room.cursor = Some(current);
                    for member in room.members.values() {
                        member.resync.do_send(Resync);
                    }
                }
                // The next news or wake-up retries; sessions that saw a gap resync by
                // themselves.
                Err(e) => {
                    tracing::warn!(board_id = %room.board_id, error = %e, "board room read failed");
                    return;
                }
            }
            if std::mem::take(&mut room.read_again) {
                room.read(ctx);
            } else {
                room.go_on(ctx);
            }
        }));
    }

    fn hand_on(&mut self, events: Vec<(i64, Arc<str>)>) {
        for (seq, text) in events {
            for member in self.members.values() {
                member.socket.deliver_sized(
                    SyncEvent {
                        seq,
                        text: text.clone(),
                    },
                    text.len(),
                );
            }
            self.cursor = Some(seq);
        }
    }
}

enum Read {
    Start(i64),
    Events(Vec<(i64, String)>),
    Lost(i64),
}

impl Actor for BoardRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (news, heard) = mpsc::unbounded_channel();
        self.feeds.do_send(Listen {
            topic: Channel::BoardSync(self.board_id).to_string(),
            listener: self.listener,
            wake: Wake::News(news),
        });
        ctx.add_stream(futures_util::stream::unfold(heard, |mut rx| async move {
            rx.recv().await.map(|payload| (News(payload), rx))
        }));
        self.read(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.feeds.do_send(Unlisten {
            topic: Channel::BoardSync(self.board_id).to_string(),
            listener: self.listener,
        });
    }
}

struct News(Arc<str>);

impl StreamHandler<News> for BoardRoom {
    fn handle(&mut self, news: News, ctx: &mut Context<Self>) {
        self.news(&news.0, ctx);
    }

    // The hub outlives rooms; a room stops only on `Close`.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<AddMember> for BoardRoom {
    type Result = ();

    fn handle(&mut self, msg: AddMember, _: &mut Context<Self>) {
        self.members.insert(msg.0, msg.1);
    }
}

impl Handler<RemoveMember> for BoardRoom {
    type Result = ();

    fn handle(&mut self, msg: RemoveMember, _: &mut Context<Self>) {
        self.members.remove(&msg.0);
    }
}

impl Handler<Close> for BoardRoom {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
