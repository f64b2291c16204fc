//! The dashboard metrics of domain.md §A16: KPIs and bucketed series over the boards a
//! member can read, each series paired with the previous window of the same length.
//!
//! Everything is aggregated in PostgreSQL; buckets are UTC `date_trunc` periods, and every
//! bucket from the one holding the window's start to the window's end is present
//! (zero-filled), as in the reference.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, RowError};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::access::{self, Access};
use crate::domain::support::validation::validation_error;
use crate::domain::{DomainError, DomainResult};

/// `DashboardRangeKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum RangeKey {
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "3d")]
    ThreeDays,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "14d")]
    TwoWeeks,
    #[serde(rename = "1m")]
    Month,
    #[serde(rename = "3m")]
    Quarter,
    #[serde(rename = "6m")]
    HalfYear,
    #[serde(rename = "1y")]
    Year,
}

/// `DashboardBucketKey`; the names are also `date_trunc` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BucketKey {
    Hour,
    Day,
    Week,
    Month,
}

const RANGES: [(&str, RangeKey); 8] = [
    ("24h", RangeKey::Day),
    ("3d", RangeKey::ThreeDays),
    ("7d", RangeKey::Week),
    ("14d", RangeKey::TwoWeeks),
    ("1m", RangeKey::Month),
    ("3m", RangeKey::Quarter),
    ("6m", RangeKey::HalfYear),
    ("1y", RangeKey::Year),
];

impl RangeKey {
    /// The `range_key` query parameter: absent means 24h; anything else outside the
    /// literal set is the reference's 422 `literal_error`.
    pub fn parse(raw: Option<&str>) -> DomainResult<RangeKey> {
        let Some(raw) = raw else {
            return Ok(RangeKey::Day);
        };
        RANGES
            .iter()
            .find(|(name, _)| *name == raw)
            .map(|(_, key)| *key)
            .ok_or_else(|| {
                validation_error(
                    "literal_error",
                    &["query", "range_key"],
                    "Input should be '24h', '3d', '7d', '14d', '1m', '3m', '6m' or '1y'",
                    json!(raw),
                )
            })
    }

    /// Months and years are fixed day counts (30, 90, 180, 365) in the reference.
    fn duration(self) -> Duration {
        match self {
            RangeKey::Day => Duration::hours(24),
            RangeKey::ThreeDays => Duration::days(3),
            RangeKey::Week => Duration::days(7),
            RangeKey::TwoWeeks => Duration::days(14),
            RangeKey::Month => Duration::days(30),
            RangeKey::Quarter => Duration::days(90),
            RangeKey::HalfYear => Duration::days(180),
            RangeKey::Year => Duration::days(365),
        }
    }

    fn bucket(self) -> BucketKey {
        match self {
            RangeKey::Day => BucketKey::Hour,
            RangeKey::ThreeDays | RangeKey::Week | RangeKey::TwoWeeks | RangeKey::Month => {
                BucketKey::Day
            }
            RangeKey::Quarter | RangeKey::HalfYear => BucketKey::Week,
            RangeKey::Year => BucketKey::Month,
        }
    }
}

impl BucketKey {
    fn field(self) -> &'static str {
        match self {
            BucketKey::Hour => "hour",
            BucketKey::Day => "day",
            BucketKey::Week => "week",
            BucketKey::Month => "month",
        }
    }

    fn step(self) -> &'static str {
        match self {
            BucketKey::Hour => "1 hour",
            BucketKey::Day => "1 day",
            BucketKey::Week => "1 week",
            BucketKey::Month => "1 month",
        }
    }
}

/// Query of `GET /metrics/dashboard`; `range_key` stays text so a bad value gets the
/// reference's literal error rather than serde's.
#[derive(Debug, Default, Deserialize)]
pub struct DashboardQuery {
    pub range_key: Option<String>,
    pub board_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
}

/// `DashboardSeriesPoint`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardSeriesPoint {
    pub period: DateTime<Utc>,
    pub value: f64,
}

/// `DashboardWipPoint`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardWipPoint {
    pub period: DateTime<Utc>,
    pub inbox: i64,
    pub in_progress: i64,
    pub review: i64,
    pub done: i64,
}

/// `DashboardRangeSeries`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardRangeSeries {
    pub range: RangeKey,
    pub bucket: BucketKey,
    pub points: Vec<DashboardSeriesPoint>,
}

/// `DashboardWipRangeSeries`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardWipRangeSeries {
    pub range: RangeKey,
    pub bucket: BucketKey,
    pub points: Vec<DashboardWipPoint>,
}

/// `DashboardSeriesSet`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardSeriesSet {
    pub primary: DashboardRangeSeries,
    pub comparison: DashboardRangeSeries,
}

/// `DashboardWipSeriesSet`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardWipSeriesSet {
    pub primary: DashboardWipRangeSeries,
    pub comparison: DashboardWipRangeSeries,
}

/// `DashboardKpis`. `median_cycle_time_hours_7d` covers the selected window, whatever it
/// is, despite its name (as in the reference).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardKpis {
    pub active_agents: i64,
    pub tasks_in_progress: i64,
    pub error_rate_pct: f64,
    pub median_cycle_time_hours_7d: Option<f64>,
}

/// `DashboardMetrics`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardMetrics {
    pub range: RangeKey,
    pub generated_at: DateTime<Utc>,
    pub kpis: DashboardKpis,
    pub throughput: DashboardSeriesSet,
    pub cycle_time: DashboardSeriesSet,
    pub error_rate: DashboardSeriesSet,
    pub wip: DashboardWipSeriesSet,
}

/// One window of the dashboard: both ends inclusive, like the reference's filters.
#[derive(Debug, Clone, Copy)]
struct Window {
    range: RangeKey,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Window {
    fn ending_at(range: RangeKey, end: DateTime<Utc>) -> Window {
        Window {
            range,
            start: end - range.duration(),
            end,
        }
    }

    fn previous(self) -> Window {
        Window::ending_at(self.range, self.start)
    }
}

/// The bucket periods of a window (`$2`..`$5`: start, end, `date_trunc` field, step),
/// generated in UTC wall time so neither the session time zone nor DST moves a bucket.
const BUCKETS: &str = "SELECT p AT TIME ZONE 'UTC' AS period FROM generate_series( \
     date_trunc($4, $2::timestamptz AT TIME ZONE 'UTC'), $3::timestamptz AT TIME ZONE 'UTC', \
     $5::text::interval) AS p";

/// Rows of `body` (which follows a `buckets` CTE) for one window; it takes `$1` board ids,
/// `$2` start, `$3` end, `$4` the bucket field and `$5` its step.
async fn query_buckets(
    client: &impl GenericClient,
    body: &str,
    boards: &[Uuid],
    window: Window,
) -> DomainResult<Vec<Row>> {
    let sql = format!("WITH buckets AS ({BUCKETS}), {body}");
    let bucket = window.range.bucket();
    let params: [&(dyn ToSql + Sync); 5] = [
        &boards,
        &window.start,
        &window.end,
        &bucket.field(),
        &bucket.step(),
    ];
    Ok(client.query(&sql, &params).await?)
}

/// Per bucket: tasks created in it that are still in the inbox; tasks last updated in it
/// by their current status; and the mean hours from `in_progress_at` to the last update of
/// review tasks (throughput and cycle time only look at review tasks, as the reference).
const TASK_SERIES: &str = "created AS ( \
       SELECT date_trunc($4, t.created_at, 'UTC') AS period, count(*) AS inbox FROM tasks t \
       WHERE t.board_id = ANY($1) AND t.status = 'inbox' AND t.created_at BETWEEN $2 AND $3 \
       GROUP BY 1), \
     updated AS ( \
       SELECT date_trunc($4, t.updated_at, 'UTC') AS period, \
         count(*) FILTER (WHERE t.status = 'in_progress') AS in_progress, \
         count(*) FILTER (WHERE t.status = 'review') AS review, \
         count(*) FILTER (WHERE t.status = 'done') AS done, \
         avg(extract(epoch FROM t.updated_at - t.in_progress_at) / 3600) \
           FILTER (WHERE t.status = 'review' AND t.in_progress_at IS NOT NULL) AS cycle_hours \
       FROM tasks t WHERE t.board_id = ANY($1) AND t.updated_at BETWEEN $2 AND $3 \
       GROUP BY 1) \
     SELECT b.period, coalesce(c.inbox, 0) AS inbox, coalesce(u.in_progress, 0) AS in_progress, \
       coalesce(u.review, 0) AS review, coalesce(u.done, 0) AS done, \
       coalesce(u.cycle_hours, 0)::float8 AS cycle_hours \
     FROM buckets b LEFT JOIN created c USING (period) LEFT JOIN updated u USING (period) \
     ORDER BY b.period";

/// Per bucket: failed events (`…failed`) and all events among the task-bound activity of
/// the boards.
const ERROR_SERIES: &str = "events AS ( \
       SELECT date_trunc($4, a.created_at, 'UTC') AS period, \
         count(*) FILTER (WHERE a.event_type LIKE '%failed') AS errors, count(*) AS total \
       FROM activity_events a \
       WHERE a.board_id = ANY($1) AND a.task_id IS NOT NULL AND a.created_at BETWEEN $2 AND $3 \
       GROUP BY 1) \
     SELECT b.period, coalesce(e.errors, 0) AS errors, coalesce(e.total, 0) AS total \
     FROM buckets b LEFT JOIN events e USING (period) ORDER BY b.period";

const AGENTS_AND_MEDIAN: &str = "SELECT \
     (SELECT count(*) FROM agents a WHERE a.board_id = ANY($1) AND a.last_seen_at BETWEEN $2 AND $3) \
       AS active_agents, \
     (SELECT percentile_cont(0.5) WITHIN GROUP ( \
        ORDER BY (extract(epoch FROM t.updated_at - t.in_progress_at) / 3600)::float8) \
      FROM tasks t WHERE t.board_id = ANY($1) AND t.status = 'review' \
        AND t.in_progress_at IS NOT NULL AND t.updated_at BETWEEN $2 AND $3) AS median_cycle_hours";

struct TaskSeries {
    throughput: DashboardRangeSeries,
    cycle_time: DashboardRangeSeries,
    wip: DashboardWipRangeSeries,
}

async fn task_series(
    client: &impl GenericClient,
    boards: &[Uuid],
    window: Window,
) -> DomainResult<TaskSeries> {
    let rows = query_buckets(client, TASK_SERIES, boards, window).await?;
    let series = |points| DashboardRangeSeries {
        range: window.range,
        bucket: window.range.bucket(),
        points,
    };
    let wip: Vec<DashboardWipPoint> = rows
        .iter()
        .map(|r| -> Result<_, RowError> {
            Ok(DashboardWipPoint {
                period: get(r, "period")?,
                inbox: get(r, "inbox")?,
                in_progress: get(r, "in_progress")?,
                review: get(r, "review")?,
                done: get(r, "done")?,
            })
        })
        .collect::<Result<_, _>>()?;
    let throughput = wip
        .iter()
        .map(|p| DashboardSeriesPoint {
            period: p.period,
            value: p.review as f64,
        })
        .collect();
    let cycle_time = rows
        .iter()
        .map(|r| -> Result<_, RowError> {
            Ok(DashboardSeriesPoint {
                period: get(r, "period")?,
                value: get(r, "cycle_hours")?,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(TaskSeries {
        throughput: series(throughput),
        cycle_time: series(cycle_time),
        wip: DashboardWipRangeSeries {
            range: window.range,
            bucket: window.range.bucket(),
            points: wip,
        },
    })
}

fn error_pct(errors: i64, total: i64) -> f64 {
    if total > 0 {
        errors as f64 / total as f64 * 100.0
    } else {
        0.0
    }
}

/// The error-rate series and the window's overall rate.
async fn error_series(
    client: &impl GenericClient,
    boards: &[Uuid],
    window: Window,
) -> DomainResult<(DashboardRangeSeries, f64)> {
    let rows = query_buckets(client, ERROR_SERIES, boards, window).await?;
    let (mut errors, mut total) = (0, 0);
    let points = rows
        .iter()
        .map(|r| -> Result<_, RowError> {
            let (e, t): (i64, i64) = (get(r, "errors")?, get(r, "total")?);
            errors += e;
            total += t;
            Ok(DashboardSeriesPoint {
                period: get(r, "period")?,
                value: error_pct(e, t),
            })
        })
        .collect::<Result<_, _>>()?;
    let series = DashboardRangeSeries {
        range: window.range,
        bucket: window.range.bucket(),
        points,
    };
    Ok((series, error_pct(errors, total)))
}

/// The boards the dashboard covers: those the member can read, narrowed to `board_id`
/// and/or `group_id`. Another organization's board or group is 404 and an unreadable
/// board 403; a board outside the group leaves nothing to count.
async fn dashboard_boards(
    client: &impl GenericClient,
    principal: &Principal,
    query: &DashboardQuery,
) -> DomainResult<Vec<Uuid>> {
    if let Some(board_id) = query.board_id {
        access::board_for_user(client, principal, board_id, Access::Read).await?;
    }
    if let Some(group_id) = query.group_id {
        client
            .query_opt(
                "SELECT 1 FROM board_groups WHERE id = $1 AND organization_id = $2",
                &[&group_id, &principal.organization.id],
            )
            .await?
            .ok_or_else(DomainError::not_found)?;
    }
    let scope = access::board_scope(client, &principal.member, Access::Read).await?;
    let rows = client
        .query(
            "SELECT id FROM boards WHERE organization_id = $1 \
               AND ($2::uuid[] IS NULL OR id = ANY($2)) \
               AND ($3::uuid IS NULL OR id = $3) \
               AND ($4::uuid IS NULL OR board_group_id = $4)",
            &[
                &principal.organization.id,
                &scope.ids(),
                &query.board_id,
                &query.group_id,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?)
}

pub async fn dashboard(
    client: &impl GenericClient,
    principal: &Principal,
    query: &DashboardQuery,
) -> DomainResult<DashboardMetrics> {
    let range = RangeKey::parse(query.range_key.as_deref())?;
    let boards = dashboard_boards(client, principal, query).await?;
    let now = Utc::now();
    let primary = Window::ending_at(range, now);
    let comparison = primary.previous();

    let tasks_now = task_series(client, &boards, primary).await?;
    let tasks_before = task_series(client, &boards, comparison).await?;
    let (errors_now, error_rate_pct) = error_series(client, &boards, primary).await?;
    let (errors_before, _) = error_series(client, &boards, comparison).await?;
    let kpi = client
        .query_one(AGENTS_AND_MEDIAN, &[&boards, &primary.start, &primary.end])
        .await?;

    // The wip series counts every in-progress task updated in the window exactly once
    // (each falls in one bucket), which is the KPI.
    let tasks_in_progress = tasks_now.wip.points.iter().map(|p| p.in_progress).sum();
    let kpis = DashboardKpis {
        active_agents: get(&kpi, "active_agents")?,
        tasks_in_progress,
        error_rate_pct,
        median_cycle_time_hours_7d: get(&kpi, "median_cycle_hours")?,
    };
    Ok(DashboardMetrics {
        range,
        generated_at: now,
        kpis,
        throughput: DashboardSeriesSet {
            primary: tasks_now.throughput,
            comparison: tasks_before.throughput,
        },
        cycle_time: DashboardSeriesSet {
            primary: tasks_now.cycle_time,
            comparison: tasks_before.cycle_time,
        },
        error_rate: DashboardSeriesSet {
            primary: errors_now,
            comparison: errors_before,
        },
        wip: DashboardWipSeriesSet {
            primary: tasks_now.wip,
            comparison: tasks_before.wip,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_keys_parse_to_the_reference_buckets() {
        assert_eq!(RangeKey::parse(None).unwrap(), RangeKey::Day);
        let buckets: Vec<_> = RANGES
            .iter()
            .map(|(name, _)| RangeKey::parse(Some(name)).unwrap().bucket())
            .collect();
        use BucketKey::*;
        assert_eq!(
            buckets,
            [Hour, Day, Day, Day, Day, Week, Week, Month],
            "24h hourly, up to 1m daily, 3m/6m weekly, 1y monthly"
        );
        assert_eq!(RangeKey::Month.duration(), Duration::days(30));
        assert_eq!(RangeKey::Year.duration(), Duration::days(365));
        for (name, key) in RANGES {
            assert_eq!(serde_json::to_value(key).unwrap(), json!(name));
        }
    }

    #[test]
    fn bad_range_keys_are_literal_errors_on_the_query_field() {
        for bad in ["", "2h", "24H", "1w"] {
            match RangeKey::parse(Some(bad)) {
                Err(DomainError::Unprocessable(v)) => {
                    assert_eq!(v[0]["loc"], json!(["query", "range_key"]));
                    assert_eq!(v[0]["type"], "literal_error");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_comparison_window_is_the_previous_one() {
        let end = Utc::now();
        let w = Window::ending_at(RangeKey::Week, end);
        let p = w.previous();
        assert_eq!((p.start, p.end), (end - Duration::days(14), w.start));
    }

    #[test]
    fn error_rate_is_a_percentage_and_zero_without_events() {
        assert_eq!(error_pct(1, 4), 25.0);
        assert_eq!(error_pct(0, 0), 0.0);
    }
}
