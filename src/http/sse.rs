//! Server-sent event streams over a feed: the stream reads what is new after its cursor
//! when the `FeedHub` wakes it (a commit on any instance), and on every keepalive tick in
//! case a wake-up was lost (Redis away). A cursor only moves past what was sent, so
//! nothing is skipped or sent twice.

use std::collections::VecDeque;
use std::time::Duration;

use actix::Addr;
use actix_web::http::header::{HeaderMap, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use uuid::Uuid;

use crate::actors::feeds::{FeedHub, Listen, Unlisten, Wake};
use crate::db::PgPool;
use crate::domain::support::access::{Access, Caller};
use crate::domain::tasks::feeds::{self, BoardFeed};
use crate::domain::{DomainError, DomainResult};
use crate::error::ApiResult;
use crate::protocol::channels::Channel;
use crate::state::AppState;

/// One event: `event:`, optional `id:` (what the client sends back as `Last-Event-ID`),
/// and its JSON `data:`.
pub struct Event {
    pub event: &'static str,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    fn encode(&self) -> Bytes {
        let mut out = format!("event: {}\n", self.event);
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        // JSON has no raw newlines, so the data is one line.
        out.push_str(&format!("data: {}\n\n", self.data));
        Bytes::from(out)
    }
}

/// Reads the events after a cursor and the cursor after them.
pub type Fetch<C> =
    Box<dyn Fn(PgPool, C) -> LocalBoxFuture<'static, DomainResult<(Vec<Event>, C)>>>;

/// The `Last-Event-ID` a reconnecting client sends.
pub fn last_event_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("last-event-id")?.to_str().ok()
}

struct Stream<C> {
    db: PgPool,
    feeds: Addr<FeedHub>,
    topic: String,
    listener: Uuid,
    wake: mpsc::Receiver<()>,
    keepalive: Interval,
    cursor: C,
    fetch: Fetch<C>,
    queue: VecDeque<Bytes>,
    fetch_now: bool,
}

impl<C> Drop for Stream<C> {
    fn drop(&mut self) {
        self.feeds.do_send(Unlisten {
            topic: std::mem::take(&mut self.topic),
            listener: self.listener,
        });
    }
}

impl<C: Clone + 'static> Stream<C> {
    async fn read(&mut self) {
        match (self.fetch)(self.db.clone(), self.cursor.clone()).await {
            Ok((events, cursor)) => {
                self.queue.extend(events.iter().map(Event::encode));
                self.cursor = cursor;
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "feed read failed; retrying on the next tick")
            }
        }
    }

    async fn next_chunk(&mut self) -> Bytes {
        loop {
            if let Some(chunk) = self.queue.pop_front() {
                return chunk;
            }
            if std::mem::take(&mut self.fetch_now) {
                self.read().await;
                continue;
            }
            tokio::select! {
                _ = self.wake.recv() => self.fetch_now = true,
                _ = self.keepalive.tick() => {
                    self.read().await;
                    if self.queue.is_empty() {
                        return Bytes::from_static(b": keepalive\n\n");
                    }
                }
            }
        }
    }
}

/// A `text/event-stream` response over `topic`, starting after `cursor`.
pub fn respond<C: Clone + 'static>(
    db: PgPool,
    feeds: Addr<FeedHub>,
    topic: String,
    keepalive: Duration,
    cursor: C,
    fetch: Fetch<C>,
) -> HttpResponse {
    let (wake_tx, wake) = mpsc::channel(1);
    let listener = Uuid::new_v4();
    feeds.do_send(Listen {
        topic: topic.clone(),
        listener,
        wake: Wake::Poke(wake_tx),
    });
    let ticks = keepalive_ticks(keepalive);
    let stream = Stream {
        db,
        feeds,
        topic,
        listener,
        wake,
        keepalive: ticks,
        cursor,
        fetch,
        queue: VecDeque::new(),
        fetch_now: true,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let chunk = s.next_chunk().await;
        Some((Ok::<_, actix_web::Error>(chunk), s))
    });
    event_stream(body)
}

/// A board's feed as a stream (the board must be readable by the caller): resumes after
/// `Last-Event-ID`, else starts at `since`, else now.
pub async fn board_feed(
    state: &AppState,
    caller: &Caller,
    board_id: Uuid,
    feed: BoardFeed,
    since: &SinceQuery,
    request: &HttpRequest,
) -> ApiResult<HttpResponse> {
    let cursor = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        caller.board(&*conn, board_id, Access::Read).await?;
        let resume = last_event_id(request.headers());
        feeds::start(&*conn, board_id, feed, resume, since.time()).await?
    };
    Ok(respond(
        state.db.clone(),
        state.feeds.clone(),
        Channel::BoardFeed(board_id).to_string(),
        state.settings.ws.sse_keepalive,
        cursor,
        Box::new(move |db, after| {
            Box::pin(async move {
                let conn = db.get().await.map_err(DomainError::from)?;
                let items = feed.items(&*conn, board_id, after).await?;
                Ok(numbered(feed.event_name(), items, after))
            })
        }),
    ))
}

/// Stream items `(id, data)` as events named `event`.
pub fn events(event: &'static str, items: Vec<(i64, serde_json::Value)>) -> Vec<Event> {
    items
        .into_iter()
        .map(|(id, data)| Event {
            event,
            id: Some(id.to_string()),
            data: data.to_string(),
        })
        .collect()
}

/// Items numbered by a feed's order as events named `event`, and the cursor after them.
pub fn numbered(
    event: &'static str,
    items: Vec<(i64, serde_json::Value)>,
    after: i64,
) -> (Vec<Event>, i64) {
    let cursor = items.last().map_or(after, |(seq, _)| *seq);
    (events(event, items), cursor)
}

/// `?since=`: an ISO-8601 time; one that does not parse means "from now", as in the
/// reference.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SinceQuery {
    pub since: Option<String>,
}

impl SinceQuery {
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.since
            .as_deref()
            .and_then(|s| crate::domain::support::validation::parse_datetime(s.trim()))
    }
}

/// A `text/event-stream` of ready frames from `frames` (each sent as `event: {event}`),
/// with a keepalive comment every `keepalive`; it ends when `frames` closes (the sender
/// dropped a listener that fell behind). `on_drop` runs when the stream goes.
pub fn relay(
    frames: mpsc::Receiver<std::sync::Arc<str>>,
    event: &'static str,
    keepalive: Duration,
    on_drop: impl FnOnce() + 'static,
) -> HttpResponse {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let ticks = keepalive_ticks(keepalive);
    let state = (frames, ticks, Guard(Some(on_drop)));
    let body = futures_util::stream::unfold(
        state,
        move |(mut frames, mut ticks, guard)| async move {
            let chunk = tokio::select! {
                frame = frames.recv() => Bytes::from(format!("event: {event}\ndata: {}\n\n", frame?)),
                _ = ticks.tick() => Bytes::from_static(b": keepalive\n\n"),
            };
            Some((Ok::<_, actix_web::Error>(chunk), (frames, ticks, guard)))
        },
    );
    event_stream(body)
}

/// Ticks every `keepalive`, the first one `keepalive` from now.
fn keepalive_ticks(keepalive: Duration) -> Interval {
    let mut ticks = interval_at(Instant::now() + keepalive, keepalive);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

fn event_stream(
    body: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        // Proxies such as nginx must pass events through as they come.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}
