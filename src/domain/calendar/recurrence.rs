//! Recurring events (RFC 5545): a rule is checked when it is written and expanded into
//! occurrences when a range is read (the reference stores the text and never reads it).
//!
//! `recurrence_rule` is a bare rule (`FREQ=WEEKLY;BYDAY=MO`) or content lines (`RRULE:…`,
//! `EXDATE…`, `RDATE…`, one per line). The series starts at the event's `starts_at`, seen in
//! the event's `timezone`: a weekly 09:00 meeting in `Europe/Berlin` stays at 09:00 local
//! across daylight-saving changes. EXDATE/RDATE values without `TZID` or `Z` are read in
//! that zone too.

use chrono::{DateTime, Duration, Utc};
use rrule::{RRuleSet, Tz};

/// Occurrences one event may yield in one range read: a rule such as `FREQ=MINUTELY`
/// could otherwise fill a response.
pub const MAX_OCCURRENCES: u16 = 2_000;

/// The IANA zone named `name` (`UTC` included), or why not.
pub fn zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("unknown time zone {name:?} (an IANA name such as Europe/Berlin)"))
}

/// The rule set of a series starting at `starts_at` in `zone`, or why `rule` is not one.
fn series(rule: &str, zone: chrono_tz::Tz, starts_at: DateTime<Utc>) -> Result<RRuleSet, String> {
    let local = starts_at.with_timezone(&zone);
    let mut lines = vec![if zone == chrono_tz::UTC {
        format!("DTSTART:{}", local.format("%Y%m%dT%H%M%SZ"))
    } else {
        format!(
            "DTSTART;TZID={}:{}",
            zone.name(),
            local.format("%Y%m%dT%H%M%S")
        )
    }];
    let mut rules = 0;
    for line in rule.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("DTSTART") {
            return Err("must not carry DTSTART: the series starts at starts_at".into());
        }
        if upper.starts_with("FREQ=") {
            lines.push(format!("RRULE:{line}"));
            rules += 1;
        } else if upper.starts_with("RRULE:") {
            lines.push(line.to_string());
            rules += 1;
        } else if (upper.starts_with("EXDATE") || upper.starts_with("RDATE"))
            && !upper.contains("TZID=")
            && !upper.ends_with('Z')
            && zone != chrono_tz::UTC
        {
            // A floating date list is read in the event's zone.
            let (name, values) = line.split_once(':').ok_or("a date line needs a value")?;
            lines.push(format!("{name};TZID={}:{values}", zone.name()));
        } else {
            lines.push(line.to_string());
        }
    }
    if rules == 0 {
        return Err("needs a rule (FREQ=…)".into());
    }
    lines
        .join("\n")
        .parse::<RRuleSet>()
        .map_err(|e| e.to_string())
}

/// `Ok` if `rule` is a valid recurrence for a series starting at `starts_at` in `zone`.
pub fn check(rule: &str, zone: chrono_tz::Tz, starts_at: DateTime<Utc>) -> Result<(), String> {
    series(rule, zone, starts_at).map(|_| ())
}

/// The starts of the occurrences that overlap `[from, to)`, each lasting `length`
/// (at most [`MAX_OCCURRENCES`]).
pub fn occurrences(
    rule: &str,
    zone: chrono_tz::Tz,
    starts_at: DateTime<Utc>,
    length: Duration,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, String> {
    let tz = Tz::Tz(zone);
    // An occurrence that started up to `length` before the range still overlaps it.
    let after = (from - length).with_timezone(&tz);
    let before = to.with_timezone(&tz);
    let found = series(rule, zone, starts_at)?
        .after(after)
        .before(before)
        .all(MAX_OCCURRENCES);
    Ok(found
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .filter(|start| {
            *start < to && (*start + length > from || (length.is_zero() && *start >= from))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn a_weekly_meeting_keeps_its_local_hour_across_a_dst_change() {
        let berlin = zone("Europe/Berlin").unwrap();
        // Mondays 09:00 Berlin from 2026-03-16 (CET, UTC+1); DST starts 2026-03-29.
        let start = utc(2026, 3, 16, 8, 0);
        let found = occurrences(
            "FREQ=WEEKLY;BYDAY=MO\nEXDATE:20260323T090000",
            berlin,
            start,
            Duration::hours(1),
            utc(2026, 3, 1, 0, 0),
            utc(2026, 4, 10, 0, 0),
        )
        .unwrap();
        assert_eq!(
            found,
            [
                utc(2026, 3, 16, 8, 0),
                // 23 March is excepted; from 30 March 09:00 local is 07:00 UTC.
                utc(2026, 3, 30, 7, 0),
                utc(2026, 4, 6, 7, 0),
            ]
        );
    }

    #[test]
    fn bad_rules_say_why() {
        let start = utc(2026, 1, 1, 0, 0);
        assert!(check("FREQ=SOMETIMES", chrono_tz::UTC, start).is_err());
        assert!(check("BYDAY=MO", chrono_tz::UTC, start).is_err());
        assert!(check(
            "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
            chrono_tz::UTC,
            start
        )
        .unwrap_err()
        .contains("DTSTART"));
        assert!(check("FREQ=DAILY;COUNT=3", chrono_tz::UTC, start).is_ok());
        assert!(zone("Mars/Olympus").is_err());
    }

    #[test]
    fn an_occurrence_that_began_before_the_range_overlaps_it() {
        let start = utc(2026, 1, 1, 22, 0);
        let found = occurrences(
            "FREQ=DAILY;COUNT=5",
            chrono_tz::UTC,
            start,
            Duration::hours(4),
            utc(2026, 1, 3, 0, 0),
            utc(2026, 1, 4, 0, 0),
        )
        .unwrap();
        assert_eq!(found, [utc(2026, 1, 2, 22, 0), utc(2026, 1, 3, 22, 0)]);
    }
}
