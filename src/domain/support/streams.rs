//! Numbered streams (server-sent events): where a stream starts, and how much one read takes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::DomainResult;

/// Events read per wake-up; a stream that is further behind reads again at once.
pub const BATCH: i64 = 200;

/// Where a numbered stream starts: after `last_event_id` when the client resumes; else
/// before the first item at or after `since` (`first_sql`, given `$1` = the owner and `$2` =
/// `since`, selects `min(number) - 1 AS first_seq`); else (or when `since` does not parse, as
/// in the reference) at the owner's current number (`current_sql`, given `$1`, selects it
/// `AS current_seq`), so only new items come.
pub async fn stream_start(
    client: &impl GenericClient,
    owner_id: Uuid,
    last_event_id: Option<&str>,
    since: Option<DateTime<Utc>>,
    current_sql: &str,
    first_sql: &str,
) -> DomainResult<i64> {
    if let Some(seq) = last_event_id.and_then(|id| id.trim().parse::<i64>().ok()) {
        return Ok(seq);
    }
    let current: i64 = match client.query_opt(current_sql, &[&owner_id]).await? {
        Some(row) => get(&row, "current_seq")?,
        None => 0,
    };
    let Some(since) = since else {
        return Ok(current);
    };
    let row = client.query_one(first_sql, &[&owner_id, &since]).await?;
    let first: Option<i64> = get(&row, "first_seq")?;
    Ok(first.unwrap_or(current))
}
