//! Board memory and board-group memory (domain.md §A13, §A14): notes and chat kept on a
//! board or shared by a group, listed newest first and streamed in feed order.
//!
//! Each entry takes its owner's next feed number under the owner row's lock (a board's
//! number comes from `activity::next_feed_seq`, shared with its other streams), so a
//! stream that has sent number n has sent every entry committed before it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{column, get, Record, RowError};
use crate::db::GenericClient;

use crate::domain::model::{Board, BoardGroupMemory, BoardMemory, MemoryBody, Principal};
use crate::domain::support::access::Caller;
use crate::domain::support::activity;
use crate::domain::support::mentions;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::non_empty;
use crate::domain::{DomainError, DomainResult};

/// Entries read per stream wake-up; a stream further behind reads again at once.
const BATCH: i64 = 200;

/// Board chat messages a board snapshot carries (the newest).
const SNAPSHOT_CHAT: i64 = 200;

/// Where a kind of entry lives: its table, its owner column, and how its owner hands out
/// feed numbers.
pub trait MemoryKind: Serialize + Sized {
    const TABLE: &'static str;
    const OWNER: &'static str;
    /// The statement that reads the owner's current feed number (`$1`: the owner).
    const CURRENT_SEQ_SQL: &'static str;
    /// Whether a post without a `source` is named after its author (the reference names
    /// board chat, and group posts that notify: chat, broadcast or `@all`).
    fn names_author(input: &MemoryCreate) -> bool;
    /// The entry in the first columns of `row` (see `columns`).
    fn from_row(row: &Row) -> Result<Self, RowError>;
    fn next_feed_seq(
        client: &impl GenericClient,
        owner_id: Uuid,
    ) -> impl std::future::Future<Output = DomainResult<i64>>;
}

impl MemoryKind for BoardMemory {
    const TABLE: &'static str = "board_memory";
    const OWNER: &'static str = "board_id";
    const CURRENT_SEQ_SQL: &'static str = activity::BOARD_FEED_SEQ_SQL;

    fn names_author(input: &MemoryCreate) -> bool {
        input.is_chat()
    }

    fn from_row(row: &Row) -> Result<BoardMemory, RowError> {
        let (id, board_id, body) = entry_at::<Self>(row, "BoardMemory")?;
        Ok(BoardMemory { id, board_id, body })
    }

    async fn next_feed_seq(client: &impl GenericClient, board_id: Uuid) -> DomainResult<i64> {
        activity::next_feed_seq(client, board_id).await
    }
}

impl MemoryKind for BoardGroupMemory {
    const TABLE: &'static str = "board_group_memory";
    const OWNER: &'static str = "board_group_id";
    const CURRENT_SEQ_SQL: &'static str =
        "SELECT feed_seq AS current_seq FROM board_groups WHERE id = $1";

    fn names_author(input: &MemoryCreate) -> bool {
        input.is_chat()
            || input.has_tag("broadcast")
            || mentions::extract(&input.content).iter().any(|m| m == "all")
    }

    fn from_row(row: &Row) -> Result<BoardGroupMemory, RowError> {
        let (id, board_group_id, body) = entry_at::<Self>(row, "BoardGroupMemory")?;
        Ok(BoardGroupMemory {
            id,
            board_group_id,
            body,
        })
    }

    /// Same discipline as a board's: the group row stays locked until commit.
    async fn next_feed_seq(client: &impl GenericClient, group_id: Uuid) -> DomainResult<i64> {
        let row = client
            .query_one(
                "UPDATE board_groups SET feed_seq = feed_seq + 1 WHERE id = $1 RETURNING feed_seq",
                &[&group_id],
            )
            .await?;
        Ok(get(&row, "feed_seq")?)
    }
}

/// What `MemoryKind::from_row` reads, then the entry's feed number.
fn columns<K: MemoryKind>() -> String {
    format!("m.id, m.{}, {}, m.feed_seq", K::OWNER, MemoryBody::COLUMNS)
}

/// An entry's id, owner and body (the first columns of `columns`).
fn entry_at<K: MemoryKind>(
    row: &Row,
    record: &'static str,
) -> Result<(Uuid, Uuid, MemoryBody), RowError> {
    let mut i = 0;
    let id = column(row, &mut i, record, "id")?;
    let owner = column(row, &mut i, record, K::OWNER)?;
    Ok((id, owner, MemoryBody::from_row_at(row, i)?))
}

/// Rows written before content was checked may be blank; the reference never shows them.
const NOT_BLANK: &str = "length(trim(m.content)) > 0";

/// `BoardMemoryCreate` / `BoardGroupMemoryCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MemoryCreate {
    pub content: String,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub source: Option<String>,
}

impl MemoryCreate {
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().flatten().any(|t| t == tag)
    }

    fn is_chat(&self) -> bool {
        self.has_tag("chat")
    }
}

/// `?is_chat=`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct MemoryFilter {
    pub is_chat: Option<bool>,
}

/// How a user is named on the posts they author, as in the reference.
/// Who posts an entry: the organization it goes to and the name an unnamed chat entry
/// is signed with.
pub struct Author {
    pub organization_id: Uuid,
    pub name: String,
    /// The posting agent, which its own post does not notify.
    pub agent_id: Option<Uuid>,
}

impl Author {
    /// Who posts: a user (see [`Author::user`]) or an agent, under its name.
    pub fn of(caller: &Caller) -> Author {
        match caller {
            Caller::User(principal) => Author::user(principal),
            Caller::Agent(agent) => Author {
                organization_id: agent.organization_id,
                name: agent.agent.name.clone(),
                agent_id: Some(agent.agent.id),
            },
        }
    }

    /// A user: their preferred name, else their name, else "User".
    pub fn user(principal: &Principal) -> Author {
        let user = &principal.user;
        let name = [user.preferred_name.as_deref(), user.name.as_deref()]
            .into_iter()
            .flatten()
            .find(|name| !name.is_empty())
            .unwrap_or("User")
            .to_string();
        Author {
            organization_id: principal.organization.id,
            name,
            agent_id: None,
        }
    }
}

/// The owner's non-blank entries, newest first, optionally only chat (or only non-chat).
pub async fn list<K: MemoryKind>(
    client: &impl GenericClient,
    owner_id: Uuid,
    filter: MemoryFilter,
    page: PageParams,
) -> DomainResult<Page<K>> {
    let params: [&(dyn ToSql + Sync); 2] = [&owner_id, &filter.is_chat];
    fetch_page(
        client,
        &columns::<K>(),
        &format!(
            "FROM {} m WHERE m.{} = $1 AND {NOT_BLANK} AND ($2::boolean IS NULL OR m.is_chat = $2)",
            K::TABLE,
            K::OWNER
        ),
        "m.created_at DESC, m.feed_seq DESC",
        &params,
        page,
        K::from_row,
    )
    .await
}

/// Records an entry by a user; `is_chat` is whether it is tagged "chat".
pub async fn create<K: MemoryKind>(
    client: &impl GenericClient,
    author: &Author,
    owner_id: Uuid,
    input: MemoryCreate,
) -> DomainResult<K> {
    let content = non_empty("content", &input.content)?;
    let unnamed = input.source.as_deref().unwrap_or_default().is_empty();
    let source = if unnamed && K::names_author(&input) {
        Some(author.name.clone())
    } else {
        input.source.clone()
    };
    let seq = K::next_feed_seq(client, owner_id).await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {} AS m (id, organization_id, {}, content, tags, is_chat, source, feed_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {}",
                K::TABLE,
                K::OWNER,
                columns::<K>()
            ),
            &[
                &Uuid::new_v4(),
                &author.organization_id,
                &owner_id,
                &content,
                &input.tags.as_ref().map(Json),
                &input.is_chat(),
                &source,
                &seq,
            ],
        )
        .await?;
    Ok(K::from_row(&row)?)
}

/// The group whose memory a board's `group-memory` routes post to; a board outside any
/// group answers 422 as in the reference.
pub fn posting_group(board: &Board) -> DomainResult<Uuid> {
    board
        .board_group_id
        .ok_or_else(|| DomainError::unprocessable("Board is not in a board group"))
}

/// Where a memory stream starts (see `crate::domain::support::streams::stream_start`).
pub async fn stream_start<K: MemoryKind>(
    client: &impl GenericClient,
    owner_id: Uuid,
    last_event_id: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> DomainResult<i64> {
    crate::domain::support::streams::stream_start(
        client,
        owner_id,
        last_event_id,
        since,
        K::CURRENT_SEQ_SQL,
        &format!(
            "SELECT min(m.feed_seq) - 1 AS first_seq FROM {} m WHERE m.{} = $1 AND m.created_at >= $2",
            K::TABLE,
            K::OWNER
        ),
    )
    .await
}

/// Non-blank entries after feed number `after`, oldest first, as
/// `(feed number, {"memory": <read>})`.
pub async fn stream_items<K: MemoryKind>(
    client: &impl GenericClient,
    owner_id: Uuid,
    filter: MemoryFilter,
    after: i64,
) -> DomainResult<Vec<(i64, Value)>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM {} m WHERE m.{} = $1 AND m.feed_seq > $2 AND {NOT_BLANK} \
                 AND ($3::boolean IS NULL OR m.is_chat = $3) ORDER BY m.feed_seq LIMIT $4",
                columns::<K>(),
                K::TABLE,
                K::OWNER
            ),
            &[&owner_id, &after, &filter.is_chat, &BATCH],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((get(row, "feed_seq")?, json!({"memory": K::from_row(row)?}))))
        .collect()
}

/// The board chat a snapshot shows: the newest non-blank chat entries, oldest first.
pub async fn recent_chat(
    client: &impl GenericClient,
    board_id: Uuid,
) -> DomainResult<Vec<BoardMemory>> {
    let mut chat = list::<BoardMemory>(
        client,
        board_id,
        MemoryFilter {
            is_chat: Some(true),
        },
        PageParams {
            limit: SNAPSHOT_CHAT,
            offset: 0,
        },
    )
    .await?
    .items;
    chat.reverse();
    Ok(chat)
}
