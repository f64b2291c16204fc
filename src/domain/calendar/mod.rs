//! M11 shared calendar (domain.md §D): events (optionally recurring), task schedules with
//! conflicts and workload, and free-slot suggestions.

pub mod events;
pub mod recurrence;
pub mod schedules;
pub mod slots;

use uuid::Uuid;

/// What a range read returns: events narrow by `board_id` and `event_type`, schedules by
/// `board_id` and `agent_id`; `boards` are those the caller reads (`None`: all), besides
/// the organization's own events.
#[derive(Debug, Default, Clone)]
pub struct RangeFilter {
    pub board_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub boards: Option<Vec<Uuid>>,
}
