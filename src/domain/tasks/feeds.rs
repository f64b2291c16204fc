//! What the board streams send: task activity and approval changes after a cursor, in the
//! board's feed order (see `activity::next_feed_seq`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::record::{get, Record, RowError};
use crate::db::GenericClient;
use crate::domain::model::{Approval, TaskRow};
use crate::domain::support::activity::{
    self, ActivityEvent, TaskCommentFeedItem, COMMENT_FEED_FROM,
};
use crate::domain::support::streams::{stream_start, BATCH};
use crate::domain::tasks::approvals;
use crate::domain::tasks::comments::TaskComment;
use crate::domain::tasks::crud as tasks;
use crate::domain::DomainResult;

/// The streams of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardFeed {
    Tasks,
    Approvals,
}

impl BoardFeed {
    /// The SSE `event:` name of its items.
    pub fn event_name(self) -> &'static str {
        match self {
            BoardFeed::Tasks => "task",
            BoardFeed::Approvals => "approval",
        }
    }

    /// Its items after feed number `after`, with their numbers.
    pub async fn items(
        self,
        client: &impl GenericClient,
        board_id: Uuid,
        after: i64,
    ) -> DomainResult<Vec<(i64, Value)>> {
        match self {
            BoardFeed::Tasks => task_events(client, board_id, after).await,
            BoardFeed::Approvals => approval_events(client, board_id, after).await,
        }
    }
}

/// Where a board stream starts (see `stream_start`).
pub async fn start(
    client: &impl GenericClient,
    board_id: Uuid,
    feed: BoardFeed,
    last_event_id: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> DomainResult<i64> {
    let first_sql = if feed == BoardFeed::Approvals {
        "SELECT min(feed_seq) - 1 AS first_seq FROM approvals \
         WHERE board_id = $1 AND (created_at >= $2 OR resolved_at >= $2)"
    } else {
        "SELECT min(seq) - 1 AS first_seq FROM activity_events WHERE board_id = $1 AND created_at >= $2"
    };
    stream_start(
        client,
        board_id,
        last_event_id,
        since,
        activity::BOARD_FEED_SEQ_SQL,
        first_sql,
    )
    .await
}

const TASK_EVENT_TYPES: [&str; 4] = [
    "task.created",
    "task.updated",
    "task.status_changed",
    "task.comment",
];

/// Task activity after `after`: `(seq, {type, activity, task})`, or `comment` instead of
/// `task` for comments; `task` is null when the task is gone.
async fn task_events(
    client: &impl GenericClient,
    board_id: Uuid,
    after: i64,
) -> DomainResult<Vec<(i64, Value)>> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns}, a.seq FROM activity_events a \
                 WHERE a.board_id = $1 AND a.seq > $2 AND a.event_type = ANY($3) \
                 ORDER BY a.seq LIMIT $4",
                columns = ActivityEvent::COLUMNS
            ),
            &[&board_id, &after, &TASK_EVENT_TYPES.as_slice(), &BATCH],
        )
        .await?;
    let events: Vec<(i64, ActivityEvent)> = rows
        .iter()
        .map(|r| Ok((get(r, "seq")?, ActivityEvent::from_row(r)?)))
        .collect::<Result<_, RowError>>()?;
    let task_ids: Vec<Uuid> = events
        .iter()
        .filter(|(_, e)| e.event_type != "task.comment")
        .filter_map(|(_, e)| e.task_id)
        .collect();
    let task_rows = client
        .query(
            &format!(
                "SELECT {} FROM tasks t WHERE t.id = ANY($1)",
                TaskRow::COLUMNS
            ),
            &[&task_ids],
        )
        .await?;
    let task_rows = TaskRow::from_rows(&task_rows)?;
    let reads = tasks::reads(client, board_id, task_rows).await?;
    Ok(events
        .into_iter()
        .map(|(seq, event)| {
            let data = if event.event_type == "task.comment" {
                let comment = TaskComment {
                    id: event.id,
                    message: event.message.clone(),
                    agent_id: event.agent_id,
                    task_id: event.task_id,
                    created_at: event.created_at,
                };
                json!({"type": event.event_type, "activity": event, "comment": comment})
            } else {
                let task = reads.iter().find(|t| Some(t.id) == event.task_id);
                json!({"type": event.event_type, "activity": event, "task": task})
            };
            (seq, data)
        })
        .collect())
}

/// Approvals changed after `after`, each in its current state:
/// `(seq, {approval, pending_approvals_count, task_counts?})` where `task_counts` is an
/// object for one linked task and a list for several, as in the reference.
async fn approval_events(
    client: &impl GenericClient,
    board_id: Uuid,
    after: i64,
) -> DomainResult<Vec<(i64, Value)>> {
    let changed: Vec<(i64, Approval)> =
        approvals::changed_after(client, board_id, after, BATCH).await?;
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let row = client
        .query_one(
            "SELECT count(*) AS pending FROM approvals WHERE board_id = $1 AND status = 'pending'",
            &[&board_id],
        )
        .await?;
    let pending: i64 = get(&row, "pending")?;
    let task_ids: Vec<Uuid> = changed
        .iter()
        .flat_map(|(_, a)| a.task_ids.iter().copied())
        .collect();
    let counts = approvals::approval_counts(client, &task_ids).await?;
    Ok(changed
        .into_iter()
        .map(|(seq, approval)| {
            let task_counts: Vec<Value> = approval
                .task_ids
                .iter()
                .filter_map(|id| {
                    counts.get(id).map(|(all, pending)| {
                        json!({"task_id": id, "approvals_count": all, "approvals_pending_count": pending})
                    })
                })
                .collect();
            let mut data = json!({"approval": approval, "pending_approvals_count": pending});
            match task_counts.len() {
                0 => {}
                1 => data["task_counts"] = task_counts[0].clone(),
                _ => data["task_counts"] = Value::Array(task_counts),
            }
            (seq, data)
        })
        .collect())
}

/// How long after its `created_at` a comment may still commit and be picked up by a
/// stream that has passed that time (comments commit within milliseconds).
const LATE_COMMIT_WINDOW_SECONDS: i64 = 5;

/// Where a comment stream stands: the newest comment time sent, the comments sent within
/// the late-commit window of it (not to send them twice), and a floor it never goes below
/// (its start, or the `Last-Event-ID` it resumed from).
#[derive(Debug, Clone)]
pub struct CommentCursor {
    after: DateTime<Utc>,
    floor: DateTime<Utc>,
    recent: Vec<(DateTime<Utc>, Uuid)>,
}

impl CommentCursor {
    /// Starts after `Last-Event-ID` (a comment's time in microseconds), else at `since`,
    /// else now.
    pub fn start(last_event_id: Option<&str>, since: Option<DateTime<Utc>>) -> CommentCursor {
        let resumed = last_event_id
            .and_then(|id| id.trim().parse::<i64>().ok())
            .and_then(DateTime::<Utc>::from_timestamp_micros);
        let at = resumed.or(since).unwrap_or_else(Utc::now);
        CommentCursor {
            after: at,
            floor: at,
            recent: Vec::new(),
        }
    }
}

/// Comments on `boards` (`None`: all of the organization's) newer than the cursor, as
/// `(time in microseconds, {"comment": <ActivityTaskCommentFeedItemRead>})`, oldest first.
pub async fn comment_events(
    client: &impl GenericClient,
    organization_id: Uuid,
    boards: &Option<Vec<Uuid>>,
    mut cursor: CommentCursor,
) -> DomainResult<(Vec<(i64, Value)>, CommentCursor)> {
    let window = chrono::Duration::seconds(LATE_COMMIT_WINDOW_SECONDS);
    let from = (cursor.after - window).max(cursor.floor);
    let rows = client
        .query(
            &format!(
                "SELECT {columns} {COMMENT_FEED_FROM} AND a.created_at > $3 \
                 ORDER BY a.created_at, a.id LIMIT $4",
                columns = TaskCommentFeedItem::COLUMNS
            ),
            &[&organization_id, boards, &from, &BATCH],
        )
        .await?;
    let mut events = Vec::new();
    for item in TaskCommentFeedItem::from_rows(&rows)? {
        if cursor.recent.iter().any(|(_, id)| *id == item.id) {
            continue;
        }
        cursor.recent.push((item.created_at, item.id));
        cursor.after = cursor.after.max(item.created_at);
        events.push((item.created_at.timestamp_micros(), json!({"comment": item})));
    }
    let horizon = cursor.after - window;
    cursor.recent.retain(|(at, _)| *at > horizon);
    Ok((events, cursor))
}
