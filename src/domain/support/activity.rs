//! The activity feed: one row per notable change, written in the same transaction as the
//! change itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::Board;
use crate::domain::model::Principal;
use crate::domain::support::access::{self, Access};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::DomainResult;

crate::db::record! {
    /// `ActivityEventRead` (plus `board_id`, which the reference lacks).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct ActivityEvent in "a" {
        pub id: Uuid,
        pub event_type: String,
        pub message: Option<String>,
        pub agent_id: Option<Uuid>,
        pub task_id: Option<Uuid>,
        pub board_id: Option<Uuid>,
        pub created_at: DateTime<Utc>,
    }
}

pub struct NewActivity<'a> {
    pub organization_id: Uuid,
    pub board_id: Option<Uuid>,
    pub event_type: &'a str,
    pub message: Option<String>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
}

/// Records an event. A board's events take the board's next feed number (see
/// `next_feed_seq`).
pub async fn record(
    client: &impl GenericClient,
    activity: NewActivity<'_>,
) -> DomainResult<ActivityEvent> {
    let seq = match activity.board_id {
        Some(board_id) => Some(next_feed_seq(client, board_id).await?),
        None => None,
    };
    let row = client
        .query_one(
            &format!(
                "INSERT INTO activity_events AS a (id, organization_id, board_id, event_type, message, agent_id, task_id, seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {columns}",
                columns = ActivityEvent::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &activity.organization_id,
                &activity.board_id,
                &activity.event_type,
                &activity.message,
                &activity.agent_id,
                &activity.task_id,
                &seq,
            ],
        )
        .await?;
    Ok(ActivityEvent::from_row(&row)?)
}

/// The board's next feed number. The board's counter row stays locked until the
/// transaction ends, so numbers are handed out in commit order: a stream that has seen
/// number n has seen every change before it (see `board_log`, which task writes use).
pub async fn next_feed_seq(client: &impl GenericClient, board_id: Uuid) -> DomainResult<i64> {
    let row = client
        .query_one(
            "INSERT INTO board_seqs AS s (board_id, feed_seq) VALUES ($1, 1) \
             ON CONFLICT (board_id) DO UPDATE SET feed_seq = s.feed_seq + 1 RETURNING s.feed_seq",
            &[&board_id],
        )
        .await?;
    Ok(get(&row, "feed_seq")?)
}

/// The statement that reads a board's current feed number (`$1`: the board).
pub const BOARD_FEED_SEQ_SQL: &str =
    "SELECT COALESCE((SELECT feed_seq FROM board_seqs WHERE board_id = $1), 0) AS current_seq";

/// The feed a user sees, newest first: events tied to a task, and the lifecycle of agents
/// (provisioning asked for and ended, updates, deletion, nudges: the console's agent page
/// lists these) on boards they can read; members who read every board also see the
/// board-less ones (gateway connections, gateway-main agents). Heartbeats stay out, as in
/// the reference, which hid every task-less event. Agents (who see their own events) come
/// with agent authentication.
pub async fn list_for_user(
    client: &impl GenericClient,
    principal: &Principal,
    page: PageParams,
) -> DomainResult<Page<ActivityEvent>> {
    let scope = access::board_scope(client, &principal.member, Access::Read).await?;
    let params: [&(dyn ToSql + Sync); 2] = [&principal.organization.id, &scope.ids()];
    fetch_page(
        client,
        ActivityEvent::COLUMNS,
        "FROM activity_events a WHERE a.organization_id = $1 \
         AND (a.task_id IS NOT NULL OR a.event_type LIKE 'gateway.%' \
              OR (a.event_type LIKE 'agent.%' AND a.event_type <> 'agent.heartbeat')) \
         AND ($2::uuid[] IS NULL OR a.board_id = ANY($2))",
        "a.created_at DESC, a.id DESC",
        &params,
        page,
        ActivityEvent::from_row,
    )
    .await
}

/// Query of `GET /activity/task-comments`.
#[derive(Debug, Default, Deserialize)]
pub struct CommentFeedFilter {
    pub board_id: Option<Uuid>,
}

crate::db::record! {
    /// `ActivityTaskCommentFeedItemRead`: a task comment with its task, board and author.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct TaskCommentFeedItem in "a" {
        pub id: Uuid,
        pub created_at: DateTime<Utc>,
        pub message: Option<String>,
        pub agent_id: Option<Uuid>,
        pub agent_name: Option<String> = "ag.name",
        /// The agent's `identity_profile.role` when that is a string, trimmed of whitespace
        /// like Python's `strip`, and not blank.
        pub agent_role: Option<String> = "CASE WHEN jsonb_typeof(ag.identity_profile -> 'role') = 'string' \
            THEN nullif(regexp_replace(ag.identity_profile ->> 'role', '^\\s+|\\s+$', '', 'g'), '') END",
        pub task_id: Uuid = "t.id",
        pub task_title: String = "t.title",
        pub board_id: Uuid = "b.id",
        pub board_name: String = "b.name",
    }
}

/// Non-blank comments (blank after trimming spaces, as the reference's SQL `trim`) on
/// tasks of the organization's boards; `$1` is the organization, `$2` the board ids
/// (`NULL`: all of them).
pub const COMMENT_FEED_FROM: &str = "FROM activity_events a \
     JOIN tasks t ON t.id = a.task_id \
     JOIN boards b ON b.id = t.board_id \
     LEFT JOIN agents ag ON ag.id = a.agent_id \
     WHERE a.event_type = 'task.comment' AND length(btrim(a.message)) > 0 \
       AND b.organization_id = $1 AND ($2::uuid[] IS NULL OR b.id = ANY($2))";

/// The boards whose comments a member may follow: the one asked for (another
/// organization's is 404, an unreadable one 403), else every board they can read
/// (`None`: all of the organization's).
pub async fn comment_feed_boards(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Option<Uuid>,
) -> DomainResult<Option<Vec<Uuid>>> {
    if let Some(board_id) = board_id {
        access::board_for_user(client, principal, board_id, Access::Read).await?;
        return Ok(Some(vec![board_id]));
    }
    let scope = access::board_scope(client, &principal.member, Access::Read).await?;
    Ok(scope.ids().map(<[Uuid]>::to_vec))
}

/// Task comments on the boards of `comment_feed_boards`, newest first.
pub async fn task_comment_feed(
    client: &impl GenericClient,
    principal: &Principal,
    filter: &CommentFeedFilter,
    page: PageParams,
) -> DomainResult<Page<TaskCommentFeedItem>> {
    let boards = comment_feed_boards(client, principal, filter.board_id).await?;
    let params: [&(dyn ToSql + Sync); 2] = [&principal.organization.id, &boards];
    fetch_page(
        client,
        TaskCommentFeedItem::COLUMNS,
        COMMENT_FEED_FROM,
        "a.created_at DESC, a.id DESC",
        &params,
        page,
        TaskCommentFeedItem::from_row,
    )
    .await
}

/// Records an activity event of a task of `board`.
pub async fn record_task(
    client: &impl GenericClient,
    board: &Board,
    task_id: Uuid,
    agent_id: Option<Uuid>,
    event_type: &str,
    message: String,
) -> DomainResult<()> {
    record(
        client,
        NewActivity {
            organization_id: board.organization_id,
            board_id: Some(board.id),
            event_type,
            message: Some(message),
            agent_id,
            task_id: Some(task_id),
        },
    )
    .await?;
    Ok(())
}
