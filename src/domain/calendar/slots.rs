//! `suggest-slot` (domain.md §D4, corrected): the first free slot of an agent in working
//! hours.
//!
//! The reference searches 09:00–18:00 UTC, compares hours only (a slot may end at 18:59 or
//! cross midnight), ignores weekends and the calendar, and may end after
//! `preferred_before`. Here working hours are 09:00–18:00 in the caller's zone (the
//! request's `timezone`, else the user's profile, else UTC), Monday to Friday; a slot never
//! ends after 18:00 or after `preferred_before`; it avoids the agent's active schedules,
//! meetings (recurring ones expanded; one without an end takes an hour) and holidays (an
//! all-day holiday takes its whole local days) of the agent's board and of the whole
//! organization. Candidates start on the hour or the half hour, within 14 days.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::events;
use super::schedules::{self, Schedule};
use super::{recurrence, RangeFilter};
use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::validation::{lenient_datetime, Invalid};
use crate::domain::{DomainError, DomainResult};

const DAY_START: u32 = 9;
const DAY_END: u32 = 18;
const STEP_MINUTES: i64 = 30;
const SEARCH_DAYS: i64 = 14;
const MEETING_WITHOUT_END: Duration = Duration::hours(1);

/// `SuggestSlotRequest`, plus `timezone`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SlotRequest {
    pub agent_id: Uuid,
    pub duration_hours: f64,
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub preferred_after: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub preferred_before: Option<DateTime<Utc>>,
    /// The IANA zone of the working hours (default: the user's, else UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// `SuggestSlotResponse` (`conflicts` is empty: the slot is free).
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotSuggestion {
    pub suggested_start: DateTime<Utc>,
    pub suggested_end: DateTime<Utc>,
    pub conflicts: Vec<Schedule>,
    /// The zone the working hours were read in.
    pub timezone: String,
}

/// Busy time: half-open intervals, and whole local days off.
struct Busy {
    intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    days_off: Vec<chrono::NaiveDate>,
}

pub async fn suggest(
    client: &impl GenericClient,
    principal: &Principal,
    input: SlotRequest,
    now: DateTime<Utc>,
) -> DomainResult<SlotSuggestion> {
    let zone_name = input
        .timezone
        .clone()
        .or_else(|| {
            principal
                .user
                .timezone
                .clone()
                .filter(|z| !z.trim().is_empty())
        })
        .unwrap_or_else(|| "UTC".into());
    let mut invalid = Invalid::default();
    let zone = invalid.check("timezone", &zone_name, recurrence::zone(&zone_name));
    let day_hours = f64::from(DAY_END - DAY_START);
    if !(input.duration_hours > 0.0 && input.duration_hours <= day_hours) {
        invalid.value_error(
            "duration_hours",
            &format!(
                "duration_hours must be more than 0 and at most {day_hours} (one working day)"
            ),
            serde_json::json!(input.duration_hours),
        );
    }
    invalid.finish()?;
    let zone = zone.unwrap_or(chrono_tz::UTC);
    let agent_board: Option<Uuid> = client
        .query_opt(
            "SELECT board_id FROM agents WHERE id = $1 AND organization_id = $2",
            &[&input.agent_id, &principal.organization.id],
        )
        .await?
        .map(|r| get(&r, "board_id"))
        .transpose()?
        .ok_or_else(DomainError::not_found)?;
    let duration = Duration::milliseconds((input.duration_hours * 3_600_000.0).round() as i64);
    let from = input.preferred_after.unwrap_or(now);
    let limit = input
        .preferred_before
        .unwrap_or(from + Duration::days(SEARCH_DAYS))
        .min(from + Duration::days(SEARCH_DAYS));
    let busy = busy(
        client,
        principal,
        input.agent_id,
        agent_board,
        from,
        limit,
        zone,
    )
    .await?;
    match first_free(&busy, zone, duration, from, limit) {
        Some(start) => Ok(SlotSuggestion {
            suggested_start: start,
            suggested_end: start + duration,
            conflicts: Vec::new(),
            timezone: zone_name,
        }),
        None => Err(DomainError::conflict(format!(
            "No free slot of {} h for this agent between {} and {} (working hours {DAY_START:02}:00–{DAY_END:02}:00 {zone_name}, Monday to Friday).",
            input.duration_hours,
            from.to_rfc3339(),
            limit.to_rfc3339()
        ))),
    }
}

async fn busy(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
    agent_board: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> DomainResult<Busy> {
    let mut intervals: Vec<_> = schedules::conflicts(client, agent_id, from, to, None)
        .await?
        .into_iter()
        .map(|s| (s.scheduled_start, s.scheduled_end))
        .collect();
    let mut days_off = Vec::new();
    // The agent's board's events and the organization's own.
    let filter = RangeFilter {
        boards: Some(agent_board.into_iter().collect()),
        ..RangeFilter::default()
    };
    // A holiday that began before the search may still cover its first days.
    let look_back = from - Duration::days(SEARCH_DAYS);
    for found in events::in_range(client, principal.organization.id, look_back, to, &filter).await?
    {
        let event = found.event;
        match event.event_type.as_str() {
            "meeting" => {
                let end = event
                    .ends_at
                    .unwrap_or(event.starts_at + MEETING_WITHOUT_END);
                intervals.push((event.starts_at, end));
            }
            "holiday" if event.is_all_day => {
                let first = event.starts_at.with_timezone(&zone).date_naive();
                let last = event
                    .ends_at
                    .unwrap_or(event.starts_at)
                    .with_timezone(&zone)
                    .date_naive();
                days_off.extend(first.iter_days().take_while(|d| *d <= last));
            }
            "holiday" => {
                let end = event
                    .ends_at
                    .unwrap_or_else(|| end_of_local_day(event.starts_at, zone));
                intervals.push((event.starts_at, end));
            }
            _ => {}
        }
    }
    Ok(Busy {
        intervals,
        days_off,
    })
}

fn end_of_local_day(at: DateTime<Utc>, zone: chrono_tz::Tz) -> DateTime<Utc> {
    let next = at
        .with_timezone(&zone)
        .date_naive()
        .succ_opt()
        .unwrap_or_default();
    local(zone, next, NaiveTime::MIN)
}

/// `date` at `time` in `zone`, as UTC (a time skipped by a DST change: the first after it).
fn local(zone: chrono_tz::Tz, date: chrono::NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(time);
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| naive.and_utc(), |d| d.with_timezone(&Utc))
}

/// The next start on the hour or half hour, `at` itself if it is one.
fn ceil_to_step(at: DateTime<Utc>) -> DateTime<Utc> {
    let step = STEP_MINUTES * 60;
    let secs = at.timestamp();
    let exact = secs % step == 0 && at.timestamp_subsec_nanos() == 0;
    let rounded = if exact {
        secs
    } else {
        (secs / step + 1) * step
    };
    DateTime::from_timestamp(rounded, 0).unwrap_or(at)
}

fn first_free(
    busy: &Busy,
    zone: chrono_tz::Tz,
    duration: Duration,
    from: DateTime<Utc>,
    limit: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let day_start = NaiveTime::from_hms_opt(DAY_START, 0, 0)?;
    let day_end = NaiveTime::from_hms_opt(DAY_END, 0, 0)?;
    let mut candidate = ceil_to_step(from);
    while candidate + duration <= limit {
        let here = candidate.with_timezone(&zone);
        let date = here.date_naive();
        let next_morning = local(zone, date.succ_opt()?, day_start);
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) || busy.days_off.contains(&date) {
            candidate = next_morning;
            continue;
        }
        let opens = local(zone, date, day_start);
        if candidate < opens {
            candidate = opens;
            continue;
        }
        if candidate + duration > local(zone, date, day_end) {
            candidate = next_morning;
            continue;
        }
        let end = candidate + duration;
        let blocking = busy
            .intervals
            .iter()
            .filter(|(s, e)| *s < end && *e > candidate)
            .map(|(_, e)| *e)
            .max();
        match blocking {
            Some(until) => candidate = ceil_to_step(until),
            None => return Some(candidate),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn free(
        busy: Busy,
        zone: chrono_tz::Tz,
        hours: i64,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        first_free(
            &busy,
            zone,
            Duration::hours(hours),
            from,
            from + Duration::days(14),
        )
    }

    #[test]
    fn slots_stay_in_local_working_hours_and_skip_weekends() {
        let none = || Busy {
            intervals: vec![],
            days_off: vec![],
        };
        let shanghai = recurrence::zone("Asia/Shanghai").unwrap();
        // Friday 2026-12-04 17:30 Shanghai (09:30 UTC): 2 h do not fit before 18:00, the
        // weekend is skipped, Monday 09:00 Shanghai is 01:00 UTC.
        assert_eq!(
            free(none(), shanghai, 2, utc(2026, 12, 4, 9, 30)),
            Some(utc(2026, 12, 7, 1, 0))
        );
        // Before opening: the same day at 09:00.
        assert_eq!(
            free(none(), chrono_tz::UTC, 1, utc(2026, 12, 7, 6, 10)),
            Some(utc(2026, 12, 7, 9, 0))
        );
        // Off the half hour: rounded up.
        assert_eq!(
            free(none(), chrono_tz::UTC, 1, utc(2026, 12, 7, 10, 10)),
            Some(utc(2026, 12, 7, 10, 30))
        );
    }

    #[test]
    fn meetings_and_holidays_are_stepped_over() {
        let busy = Busy {
            intervals: vec![(utc(2026, 12, 7, 9, 0), utc(2026, 12, 7, 10, 15))],
            days_off: vec![chrono::NaiveDate::from_ymd_opt(2026, 12, 8).unwrap()],
        };
        assert_eq!(
            free(busy, chrono_tz::UTC, 1, utc(2026, 12, 7, 9, 0)),
            Some(utc(2026, 12, 7, 10, 30))
        );
        let busy = Busy {
            intervals: vec![(utc(2026, 12, 7, 0, 0), utc(2026, 12, 7, 23, 0))],
            days_off: vec![chrono::NaiveDate::from_ymd_opt(2026, 12, 8).unwrap()],
        };
        assert_eq!(
            free(busy, chrono_tz::UTC, 1, utc(2026, 12, 7, 9, 0)),
            Some(utc(2026, 12, 9, 9, 0))
        );
    }

    #[test]
    fn nothing_after_the_bound() {
        let none = Busy {
            intervals: vec![],
            days_off: vec![],
        };
        let from = utc(2026, 12, 7, 17, 0);
        assert_eq!(
            first_free(
                &none,
                chrono_tz::UTC,
                Duration::hours(1),
                from,
                from + Duration::minutes(30)
            ),
            None
        );
    }
}
