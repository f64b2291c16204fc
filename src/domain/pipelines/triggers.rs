//! What starts a run besides `POST /pipelines/{id}/run` (`trigger_config`, which the
//! reference stores and never acts on):
//!
//! | `trigger_type` | keys | starts a run |
//! |---|---|---|
//! | `manual` (or no `trigger_config`) | — | only through the API |
//! | `schedule` | `cron_expr` (5 or 6 fields, croner syntax), `timezone` (IANA, default UTC) | at each firing, once per deployment |
//! | `event` | `event_type` (a system or agent event type), `board_id?` | when the rule engine evaluates such an event (of the board, if given), once per event |
//!
//! Anything else is refused with 422 naming the field.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::pipelines::records::Pipeline;
use crate::domain::pipelines::runs::{self, Start};
use crate::domain::support::validation::Invalid;
use crate::domain::DomainResult;

pub const TRIGGER_TYPES: [&str; 3] = ["manual", "schedule", "event"];

fn at(key: &str) -> [Value; 2] {
    [json!("trigger_config"), json!(key)]
}

/// The cron and its zone of a `schedule` trigger.
fn schedule_of(config: &Value) -> Result<(Cron, chrono_tz::Tz), (&'static str, String)> {
    let expr = config
        .get("cron_expr")
        .and_then(Value::as_str)
        .unwrap_or("");
    let cron =
        Cron::from_str(expr).map_err(|e| ("cron_expr", format!("not a cron expression: {e}")))?;
    let zone = match config.get("timezone").and_then(Value::as_str) {
        None | Some("") => chrono_tz::UTC,
        Some(name) => name
            .parse::<chrono_tz::Tz>()
            .map_err(|_| ("timezone", format!("unknown time zone {name:?}")))?,
    };
    Ok((cron, zone))
}

/// The next firing after `after` of a schedule trigger (`None` for the others, or when the
/// cron never fires again).
pub fn next_fire(config: Option<&Value>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let config = config?;
    if config.get("trigger_type").and_then(Value::as_str) != Some("schedule") {
        return None;
    }
    let (cron, zone) = schedule_of(config).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&zone), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Checks a `trigger_config`; its first firing when it is a schedule.
pub fn check(invalid: &mut Invalid, config: Option<&Value>) -> Option<DateTime<Utc>> {
    let config = config.filter(|c| !c.is_null())?;
    let kind = config
        .get("trigger_type")
        .and_then(Value::as_str)
        .unwrap_or("manual");
    match kind {
        "manual" => None,
        "schedule" => match schedule_of(config) {
            Ok(_) => next_fire(Some(config), Utc::now()),
            Err((key, msg)) => {
                invalid.value_error_at(
                    &at(key),
                    &msg,
                    config.get(key).cloned().unwrap_or(Value::Null),
                );
                None
            }
        },
        "event" => {
            let event = config
                .get("event_type")
                .and_then(Value::as_str)
                .unwrap_or("");
            if event.trim().is_empty() || event.len() > 128 {
                invalid.value_error_at(
                    &at("event_type"),
                    "an event trigger needs event_type (task.created, task.status_changed, cron.daily, …)",
                    config.get("event_type").cloned().unwrap_or(Value::Null),
                );
            }
            if let Some(b) = config.get("board_id").filter(|b| !b.is_null()) {
                if b.as_str().and_then(|s| Uuid::parse_str(s).ok()).is_none() {
                    invalid.value_error_at(&at("board_id"), "must be a UUID", b.clone());
                }
            }
            None
        }
        other => {
            invalid.value_error_at(
                &at("trigger_type"),
                &format!("trigger_type must be one of {}", TRIGGER_TYPES.join(", ")),
                json!(other),
            );
            None
        }
    }
}

/// Starts the runs of the schedules that are due, each firing once (the pipeline row is
/// locked and its next firing moved in the same transaction); the runs started.
pub async fn fire_due(client: &impl GenericClient) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns}, p.next_fire_at FROM pipelines p \
                 WHERE p.next_fire_at <= now() ORDER BY p.next_fire_at LIMIT 100 FOR UPDATE SKIP LOCKED",
                columns = Pipeline::COLUMNS
            ),
            &[],
        )
        .await?;
    let mut started = Vec::new();
    for row in rows {
        let pipeline = Pipeline::from_row(&row)?;
        let due: DateTime<Utc> = get(&row, "next_fire_at")?;
        // A deployment that was down fires once for what it missed, not once per missed slot.
        let next = next_fire(pipeline.trigger_config.as_ref(), due.max(Utc::now()));
        client
            .execute(
                "UPDATE pipelines SET next_fire_at = $2 WHERE id = $1",
                &[&pipeline.id, &next],
            )
            .await?;
        if !pipeline.is_active {
            continue;
        }
        let start = Start {
            input_data: Some(json!({"trigger": "schedule", "scheduled_at": due})),
            started_by_user_id: None,
            trigger_event_id: None,
            cap: None,
            holder: None,
        };
        match runs::start(client, &pipeline, start).await {
            Ok(Some(run)) => started.push(run.id),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(pipeline_id = %pipeline.id, error = %e, "scheduled run not started")
            }
        }
    }
    Ok(started)
}

/// A system event, as triggers read it.
pub struct Event<'a> {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub event_type: &'a str,
    pub board_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub payload: &'a Value,
}

/// Starts the runs of the active pipelines triggered by a system event (once per event and
/// pipeline), in the transaction that evaluates the event. Events about a task a pipeline
/// run created start nothing: a pipeline whose stage makes the task that triggers it would
/// otherwise start runs for ever.
pub async fn on_event(client: &impl GenericClient, event: Event<'_>) -> DomainResult<Vec<Uuid>> {
    if let Some(task_id) = event.task_id {
        let by_pipeline = client
            .query_opt(
                "SELECT 1 AS found FROM tasks WHERE id = $1 AND auto_reason LIKE 'pipeline_run:%'",
                &[&task_id],
            )
            .await?;
        if by_pipeline.is_some() {
            return Ok(Vec::new());
        }
    }
    let Event {
        id: event_id,
        organization_id,
        event_type,
        board_id,
        payload,
        ..
    } = event;
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM pipelines p WHERE p.organization_id = $1 AND p.is_active \
                   AND p.trigger_config ->> 'trigger_type' = 'event' AND p.trigger_config ->> 'event_type' = $2 \
                   AND (p.trigger_config ->> 'board_id' IS NULL OR p.trigger_config ->> 'board_id' = $3::uuid::text)",
                columns = Pipeline::COLUMNS
            ),
            &[&organization_id, &event_type, &board_id],
        )
        .await?;
    let mut started = Vec::new();
    for pipeline in Pipeline::from_rows(&rows)? {
        if runs::check_runnable(&pipeline).is_err() {
            tracing::warn!(pipeline_id = %pipeline.id, "event-triggered pipeline cannot run; skipped");
            continue;
        }
        let start = Start {
            input_data: Some(json!({
                "trigger": "event", "event_id": event_id, "event_type": event_type,
                "board_id": board_id, "event": payload,
            })),
            started_by_user_id: None,
            trigger_event_id: Some(event_id),
            cap: None,
            holder: None,
        };
        if let Some(run) = runs::start(client, &pipeline, start).await? {
            started.push(run.id);
        }
    }
    Ok(started)
}
