//! Calendar events (domain.md §D1–D2, D5): milestones, meetings, deadlines, releases and
//! holidays of an organization or one of its boards, optionally recurring.
//!
//! Unlike the reference (whose event routes all fail), events belong to the caller's
//! organization; a board's events are read and written with access to the board, the
//! organization's own (no board) are read by every member and written by its admins.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{recurrence, RangeFilter};
use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::access::{self, Access};
use crate::domain::support::validation::{lenient_datetime, lenient_datetime_patch, Invalid};
use crate::domain::{DomainError, DomainResult};

pub const EVENT_TYPES: [&str; 5] = ["milestone", "meeting", "deadline", "release", "holiday"];
const MAX_TITLE: usize = 512;
const MAX_RULE: usize = 2_048;

crate::db::record! {
    /// `CalendarEventRead`, plus the IANA `timezone` its recurrence is expanded in.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct CalendarEvent in "e" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub board_id: Option<Uuid>,
        pub title: String,
        pub description: Option<String>,
        pub event_type: String,
        pub starts_at: DateTime<Utc>,
        pub ends_at: Option<DateTime<Utc>>,
        pub is_all_day: bool,
        pub recurrence_rule: Option<String>,
        pub timezone: String,
        #[schema(value_type = Option<Object>)]
        pub event_metadata: Option<Value>,
        pub created_by_user_id: Option<Uuid>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// An event as a range read answers it: a recurring event once per occurrence in the
/// range, with that occurrence's `starts_at`/`ends_at`; `series_id` (the event's `id`, which
/// edits and deletes take) and `occurrence_start` are set on occurrences only.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventInRange {
    #[serde(flatten)]
    pub event: CalendarEvent,
    pub series_id: Option<Uuid>,
    pub occurrence_start: Option<DateTime<Utc>>,
}

/// `CalendarEventCreate`, plus `timezone` (default UTC).
#[derive(Debug, Deserialize, ToSchema)]
pub struct EventCreate {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(deserialize_with = "lenient_datetime")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_all_day: bool,
    #[serde(default)]
    pub recurrence_rule: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event_metadata: Option<Value>,
    #[serde(default)]
    pub board_id: Option<Uuid>,
}

/// `CalendarEventUpdate`: absent fields stay; `null` clears what may be empty
/// (`description`, `ends_at`, `recurrence_rule`, `event_metadata`, `board_id`) and leaves
/// the rest.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EventUpdate {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_datetime_patch")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub ends_at: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub is_all_day: Option<bool>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub recurrence_rule: Option<Option<String>>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub event_metadata: Option<Option<Value>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub board_id: Option<Option<Uuid>>,
}

/// What an event is once written: every field checked together (a rule against its
/// start and zone, an end against its start).
struct Fields {
    board_id: Option<Uuid>,
    title: String,
    description: Option<String>,
    event_type: String,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    is_all_day: bool,
    recurrence_rule: Option<String>,
    timezone: String,
    event_metadata: Option<Value>,
}

impl Fields {
    fn check(mut self) -> DomainResult<Fields> {
        let mut invalid = Invalid::default();
        if let Some(title) = invalid.non_empty("title", &self.title) {
            invalid.max_chars("title", &title, MAX_TITLE);
            self.title = title;
        }
        if !EVENT_TYPES.contains(&self.event_type.as_str()) {
            invalid.value_error(
                "event_type",
                &format!("event_type must be one of: {}", EVENT_TYPES.join(", ")),
                Value::String(self.event_type.clone()),
            );
        }
        if self.ends_at.is_some_and(|end| end < self.starts_at) {
            invalid.value_error(
                "ends_at",
                "ends_at must not be before starts_at",
                serde_json::json!(self.ends_at),
            );
        }
        let zone = invalid.check("timezone", &self.timezone, recurrence::zone(&self.timezone));
        self.recurrence_rule = self
            .recurrence_rule
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if let (Some(rule), Some(zone)) = (&self.recurrence_rule, zone) {
            invalid.max_chars("recurrence_rule", rule, MAX_RULE);
            let checked = recurrence::check(rule, zone, self.starts_at)
                .map_err(|why| format!("recurrence_rule is not a valid RRULE: {why}"));
            invalid.check("recurrence_rule", rule, checked);
        }
        if self.event_metadata.as_ref().is_some_and(|m| !m.is_object()) {
            invalid.value_error(
                "event_metadata",
                "event_metadata must be an object",
                self.event_metadata.clone().unwrap_or_default(),
            );
        }
        invalid.finish()?;
        Ok(self)
    }
}

/// May `principal` write an event of `board_id` (a board's: write access to it; the
/// organization's: an admin)?
async fn require_write(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Option<Uuid>,
) -> DomainResult<()> {
    match board_id {
        Some(board_id) => {
            access::board_for_user(client, principal, board_id, Access::Write).await?;
            Ok(())
        }
        None => access::require_org_admin(&principal.member),
    }
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: EventCreate,
) -> DomainResult<CalendarEvent> {
    let Some(starts_at) = input.starts_at else {
        return Err(crate::domain::support::validation::validation_error(
            "missing",
            &["body", "starts_at"],
            "Field required",
            Value::Null,
        ));
    };
    let fields = Fields {
        board_id: input.board_id,
        title: input.title,
        description: input.description,
        event_type: input.event_type.unwrap_or_else(|| "milestone".into()),
        starts_at,
        ends_at: input.ends_at,
        is_all_day: input.is_all_day,
        recurrence_rule: input.recurrence_rule,
        timezone: input.timezone.unwrap_or_else(|| "UTC".into()),
        event_metadata: input.event_metadata,
    }
    .check()?;
    require_write(client, principal, fields.board_id).await?;
    save(client, Uuid::new_v4(), principal, &fields).await
}

/// Writes the event `id` (new, or changed: who created it stays).
async fn save(
    client: &impl GenericClient,
    id: Uuid,
    principal: &Principal,
    fields: &Fields,
) -> DomainResult<CalendarEvent> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO calendar_events AS e (id, organization_id, board_id, title, description, \
                   event_type, starts_at, ends_at, is_all_day, recurrence_rule, timezone, event_metadata, \
                   created_by_user_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (id) DO UPDATE SET board_id = EXCLUDED.board_id, title = EXCLUDED.title, \
                   description = EXCLUDED.description, event_type = EXCLUDED.event_type, \
                   starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, \
                   is_all_day = EXCLUDED.is_all_day, recurrence_rule = EXCLUDED.recurrence_rule, \
                   timezone = EXCLUDED.timezone, event_metadata = EXCLUDED.event_metadata, \
                   updated_at = now() \
                 RETURNING {}",
                CalendarEvent::COLUMNS
            ),
            &[
                &id,
                &principal.organization.id,
                &fields.board_id,
                &fields.title,
                &fields.description,
                &fields.event_type,
                &fields.starts_at,
                &fields.ends_at,
                &fields.is_all_day,
                &fields.recurrence_rule,
                &fields.timezone,
                &fields.event_metadata,
                &principal.user.id,
            ],
        )
        .await?;
    Ok(CalendarEvent::from_row(&row)?)
}

/// The event, if it is the organization's and the caller may write it (else 404 / 403),
/// locked for the change.
async fn writable(
    client: &impl GenericClient,
    principal: &Principal,
    event_id: Uuid,
) -> DomainResult<CalendarEvent> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM calendar_events e WHERE e.id = $1 AND e.organization_id = $2 FOR NO KEY UPDATE",
                CalendarEvent::COLUMNS
            ),
            &[&event_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let event = CalendarEvent::from_row(&row)?;
    require_write(client, principal, event.board_id).await?;
    Ok(event)
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    event_id: Uuid,
    patch: EventUpdate,
) -> DomainResult<CalendarEvent> {
    let current = writable(client, principal, event_id).await?;
    let fields = Fields {
        board_id: patch.board_id.unwrap_or(current.board_id),
        title: patch.title.unwrap_or(current.title),
        description: patch.description.unwrap_or(current.description),
        event_type: patch.event_type.unwrap_or(current.event_type),
        starts_at: patch.starts_at.unwrap_or(current.starts_at),
        ends_at: patch.ends_at.unwrap_or(current.ends_at),
        is_all_day: patch.is_all_day.unwrap_or(current.is_all_day),
        recurrence_rule: patch.recurrence_rule.unwrap_or(current.recurrence_rule),
        timezone: patch.timezone.unwrap_or(current.timezone),
        event_metadata: patch.event_metadata.unwrap_or(current.event_metadata),
    }
    .check()?;
    if fields.board_id != current.board_id {
        require_write(client, principal, fields.board_id).await?;
    }
    save(client, current.id, principal, &fields).await
}

pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    event_id: Uuid,
) -> DomainResult<()> {
    let event = writable(client, principal, event_id).await?;
    client
        .execute("DELETE FROM calendar_events WHERE id = $1", &[&event.id])
        .await?;
    Ok(())
}

/// The events of the organization that overlap `[from, to)` (half-open; an event without
/// an end is an instant), recurring ones once per occurrence, by start.
pub async fn in_range(
    client: &impl GenericClient,
    organization_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &RangeFilter,
) -> DomainResult<Vec<EventInRange>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM calendar_events e \
                 WHERE e.organization_id = $1 AND e.starts_at < $3 \
                   AND (e.recurrence_rule IS NOT NULL \
                        OR (e.ends_at IS NULL AND e.starts_at >= $2) OR e.ends_at > $2) \
                   AND ($4::uuid IS NULL OR e.board_id = $4) \
                   AND ($5::text IS NULL OR e.event_type = $5) \
                   AND ($6::uuid[] IS NULL OR e.board_id IS NULL OR e.board_id = ANY($6)) \
                 ORDER BY e.starts_at, e.id",
                CalendarEvent::COLUMNS
            ),
            &[
                &organization_id,
                &from,
                &to,
                &filter.board_id,
                &filter.event_type,
                &filter.boards,
            ],
        )
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for event in CalendarEvent::from_rows(&rows)? {
        let Some(rule) = event.recurrence_rule.clone() else {
            found.push(EventInRange {
                event,
                series_id: None,
                occurrence_start: None,
            });
            continue;
        };
        let length = event
            .ends_at
            .map_or(Duration::zero(), |end| end - event.starts_at);
        // A rule stored under an older check that no longer expands is left out, not a 500.
        let Ok(zone) = recurrence::zone(&event.timezone) else {
            continue;
        };
        let starts = recurrence::occurrences(&rule, zone, event.starts_at, length, from, to)
            .unwrap_or_else(|why| {
                tracing::warn!(event_id = %event.id, %why, "recurrence not expanded");
                Vec::new()
            });
        for start in starts {
            let mut occurrence = event.clone();
            occurrence.starts_at = start;
            occurrence.ends_at = event.ends_at.map(|_| start + length);
            found.push(EventInRange {
                event: occurrence,
                series_id: Some(event.id),
                occurrence_start: Some(start),
            });
        }
    }
    found.sort_by_key(|e| (e.event.starts_at, e.event.id));
    Ok(found)
}

/// The boards whose events and schedules `principal` reads (`None`: every board).
pub async fn readable_boards(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Option<Vec<Uuid>>> {
    Ok(access::board_scope(client, &principal.member, Access::Read)
        .await?
        .ids()
        .map(<[Uuid]>::to_vec))
}
