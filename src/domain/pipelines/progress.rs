//! How a run moves (domain.md §C4, done right): a stage ends well or fails, and the run goes
//! to the next stage, to the failure branch, or ends. Whoever ends a stage — the task's
//! completion, the approval's resolution, an `advance`, the webhook's answer, a timeout —
//! does it here, in its own transaction, on the row-locked run. The next stage is then
//! entered by the run's holder (`holder`), woken by the row's NOTIFY at commit.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::pipelines::records::{self, About, Locked};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::DomainResult;

/// How the current stage ended, with the fields it adds to its result.
pub enum Outcome {
    Done(Map<String, Value>),
    Failed(String, Map<String, Value>),
}

impl Outcome {
    pub fn done(fields: Value) -> Outcome {
        Outcome::Done(fields.as_object().cloned().unwrap_or_default())
    }

    pub fn failed(error: impl Into<String>, fields: Value) -> Outcome {
        Outcome::Failed(
            error.into(),
            fields.as_object().cloned().unwrap_or_default(),
        )
    }
}

fn now_text() -> Value {
    json!(chrono::Utc::now())
}

/// The run's results with `stage_id`'s merged with `fields`.
pub fn with_result(run_results: &Value, stage_id: &str, fields: Map<String, Value>) -> Value {
    let mut results = run_results.as_object().cloned().unwrap_or_default();
    let mut result = results
        .get(stage_id)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    result.extend(fields);
    results.insert(stage_id.to_string(), Value::Object(result));
    Value::Object(results)
}

/// Ends the current stage and moves the run on: to the stage after it (a condition's
/// branch), to its `on_failure_stage_id` when it failed, or to the run's end. True when the
/// run ended (a line of its board's feed).
pub async fn finish_stage(
    client: &impl GenericClient,
    locked: &Locked,
    outcome: Outcome,
) -> DomainResult<bool> {
    let Some(stage_id) = locked.run.current_stage_id.clone() else {
        end_run(client, locked, "completed", &locked.run.stage_results).await?;
        return Ok(true);
    };
    let Some(stage) = locked.current() else {
        let results = with_result(
            &locked.run.stage_results,
            &stage_id,
            Map::from_iter([
                ("status".into(), json!("failed")),
                (
                    "error".into(),
                    json!("the stage no longer exists in the pipeline"),
                ),
            ]),
        );
        end_run(client, locked, "failed", &results).await?;
        return Ok(true);
    };
    let (mut fields, next, ok) = match outcome {
        Outcome::Done(mut fields) => {
            let (next, tested) = stage.next_after(&locked.context());
            if let Some(result) = tested {
                fields.insert("condition_result".into(), json!(result));
                fields.insert("next_stage_id".into(), json!(next));
            }
            fields.entry("status").or_insert(json!("completed"));
            (fields, next, true)
        }
        Outcome::Failed(error, mut fields) => {
            fields.insert("status".into(), json!("failed"));
            fields.insert("error".into(), json!(error));
            (fields, stage.on_failure.clone(), false)
        }
    };
    fields.insert("completed_at".into(), now_text());
    let results = with_result(&locked.run.stage_results, &stage_id, fields);
    match next {
        Some(next) => {
            client
                .execute(
                    "UPDATE pipeline_runs SET stage_results = $2, current_stage_id = $3, status = 'running', \
                       phase = 'enter', stage_deadline = NULL, wake_at = NULL, steps = steps + 1, \
                       updated_at = now() \
                     WHERE id = $1",
                    &[&locked.run.id, &results, &next],
                )
                .await?;
            Ok(false)
        }
        None => {
            let status = if ok { "completed" } else { "failed" };
            end_run(client, locked, status, &results).await?;
            Ok(true)
        }
    }
}

/// Ends the run (`completed`, `failed` or `cancelled`) and frees its lease; the activity
/// feed of the pipeline's board records it. Queued runs of the organization are started by
/// the holders (`holder::promote`), woken by this change.
pub async fn end_run(
    client: &impl GenericClient,
    locked: &Locked,
    status: &str,
    results: &Value,
) -> DomainResult<()> {
    client
        .execute(
            "UPDATE pipeline_runs SET status = $2, stage_results = $3, completed_at = now(), phase = NULL, \
               lease_owner = NULL, stage_deadline = NULL, wake_at = NULL, \
               current_stage_id = CASE WHEN $2 = 'completed' THEN NULL ELSE current_stage_id END, \
               updated_at = now() \
             WHERE id = $1",
            &[&locked.run.id, &status, results],
        )
        .await?;
    record(
        client,
        locked.about(),
        &format!("pipeline.run.{status}"),
        status,
    )
    .await
}

/// A line in the activity feed of the pipeline's board (or of the organization).
pub async fn record(
    client: &impl GenericClient,
    about: About<'_>,
    event_type: &str,
    what: &str,
) -> DomainResult<()> {
    activity::record(
        client,
        NewActivity {
            organization_id: about.organization_id,
            board_id: about.board_id,
            event_type,
            message: Some(format!(
                "Pipeline {}: run {} {what}.",
                about.pipeline_name, about.run_id
            )),
            agent_id: None,
            task_id: None,
        },
    )
    .await?;
    Ok(())
}

/// The runs waiting on what `link_column` names (`task_id` or `approval_id`) = `id`, locked,
/// that still wait for it.
async fn waiting_on(
    client: &impl GenericClient,
    link_column: &str,
    id: Uuid,
) -> DomainResult<Vec<Locked>> {
    let rows = client
        .query(
            &format!(
                "SELECT l.pipeline_run_id FROM pipeline_stage_tasks l \
                 JOIN pipeline_runs r ON r.id = l.pipeline_run_id \
                 WHERE l.{link_column} = $1 AND r.status = 'paused' AND r.current_stage_id = l.stage_id"
            ),
            &[&id],
        )
        .await?;
    let mut waiting = Vec::new();
    for row in rows {
        let run_id: Uuid = get(&row, "pipeline_run_id")?;
        let Some(locked) = records::lock(client, run_id, None).await? else {
            continue;
        };
        let still = locked.run.status == "paused"
            && locked.control.phase.as_deref() == Some("wait")
            && locked
                .current_result()
                .and_then(|r| r.get(link_column))
                .is_some_and(|v| v == &json!(id));
        if still {
            waiting.push(locked);
        }
    }
    Ok(waiting)
}

/// A task reached done (`error` `None`) or is being deleted: the `ai_task` stages waiting on
/// it end, in the task's transaction.
pub async fn task_ended(
    client: &impl GenericClient,
    task_id: Uuid,
    error: Option<&str>,
) -> DomainResult<()> {
    for locked in waiting_on(client, "task_id", task_id).await? {
        let outcome = match error {
            None => Outcome::done(json!({"status": "completed"})),
            Some(error) => Outcome::failed(error, json!({})),
        };
        finish_stage(client, &locked, outcome).await?;
    }
    Ok(())
}

/// An approval was approved or rejected: the `approval` stages waiting on it end (a
/// rejection fails the stage: the run takes its `on_failure_stage_id`, or fails).
pub async fn approval_resolved(
    client: &impl GenericClient,
    approval_id: Uuid,
    approved: bool,
) -> DomainResult<()> {
    for locked in waiting_on(client, "approval_id", approval_id).await? {
        let outcome = if approved {
            Outcome::done(json!({"status": "completed", "approval_status": "approved"}))
        } else {
            Outcome::failed(
                "the approval was rejected",
                json!({"approval_status": "rejected"}),
            )
        };
        finish_stage(client, &locked, outcome).await?;
    }
    Ok(())
}
