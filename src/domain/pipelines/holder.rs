//! What the instance holding a run does (its `PipelineRun` actor calls these): leases,
//! starting queued runs under the cap, entering stages, timeouts, and webhook attempts.
//!
//! Every step locks the run and checks that this instance still holds it, so an instance
//! that lost its runs (paused, partitioned, its lease expired and another took over)
//! writes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::db::record::get;
use crate::db::{GenericClient, Transaction};
use crate::domain::model::{board, Actor, ApprovalStatus, TaskChange, TaskStatus};
use crate::domain::pipelines::progress::{self, Outcome};
use crate::domain::pipelines::records::{self, Locked};
use crate::domain::pipelines::runs;
use crate::domain::pipelines::stages::{
    Stage, StageType, DEFAULT_REQUEST_TIMEOUT_SECONDS, DEFAULT_WEBHOOK_ATTEMPTS,
};
use crate::domain::tasks::approvals::{self, ApprovalCreate};
use crate::domain::tasks::crud::{self as tasks, TaskCreate};
use crate::domain::{DomainError, DomainResult};

/// Moves between stages per run: more is a loop that does not end.
const MAX_STEPS: i32 = 1_000;
/// Webhook retries wait 1 s, 2 s, 4 s, … up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const SIGNATURE_HEADER: &str = "X-Webhook-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
pub const ATTEMPT_HEADER: &str = "X-Webhook-Attempt";

/// The settings a holder works with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `PIPELINE_DEFAULT_STAGE_TIMEOUT_HOURS`.
    pub default_timeout_hours: f64,
    /// `PIPELINE_MAX_CONCURRENT_RUNS`.
    pub max_concurrent_runs: i64,
    /// `PIPELINE_LEASE_SECONDS`.
    pub lease: Duration,
}

/// Renews this instance's lease (one row, however many runs it holds).
pub async fn renew(client: &impl GenericClient, me: &str, lease: Duration) -> DomainResult<()> {
    client
        .execute(
            "INSERT INTO pipeline_holders (instance_id, lease_until) VALUES ($1, now() + make_interval(secs => $2)) \
             ON CONFLICT (instance_id) DO UPDATE SET lease_until = EXCLUDED.lease_until",
            &[&me, &lease.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// The active runs this instance holds.
pub async fn held(client: &impl GenericClient, me: &str) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT id FROM pipeline_runs WHERE lease_owner = $1 AND status IN ('running', 'paused')",
            &[&me],
        )
        .await?;
    rows.iter().map(|r| Ok(get(r, "id")?)).collect()
}

/// Takes active runs that nobody holds, or whose holder's lease expired (up to `limit` of
/// them), or `run` alone, which may also be one started here (held here, with no actor
/// yet); the runs taken. A sweep never returns runs this instance already holds, so taking
/// batch after batch ends.
pub async fn claim(
    client: &impl GenericClient,
    me: &str,
    run: Option<Uuid>,
    limit: i64,
) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "UPDATE pipeline_runs r SET lease_owner = $1 WHERE r.id IN ( \
               SELECT f.id FROM pipeline_runs f LEFT JOIN pipeline_holders h ON h.instance_id = f.lease_owner \
               WHERE f.status IN ('running', 'paused') AND ($2::uuid IS NULL OR f.id = $2) \
                 AND (($2::uuid IS NOT NULL AND f.lease_owner = $1) \
                      OR (f.lease_owner IS DISTINCT FROM $1 \
                          AND (f.lease_owner IS NULL OR h.lease_until IS NULL OR h.lease_until < now()))) \
               ORDER BY f.created_at LIMIT $3 FOR NO KEY UPDATE OF f SKIP LOCKED) \
             RETURNING r.id",
            &[&me, &run, &limit],
        )
        .await?;
    rows.iter().map(|r| Ok(get(r, "id")?)).collect()
}

/// Gives every run back (a clean shutdown): other instances take them at once.
pub async fn release_all(client: &impl GenericClient, me: &str) -> DomainResult<()> {
    client
        .execute(
            "UPDATE pipeline_runs SET lease_owner = NULL WHERE lease_owner = $1 AND status IN ('running', 'paused')",
            &[&me],
        )
        .await?;
    client
        .execute(
            "DELETE FROM pipeline_holders WHERE instance_id = $1",
            &[&me],
        )
        .await?;
    Ok(())
}

/// The organizations with queued runs.
pub async fn waiting_organizations(client: &impl GenericClient) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT DISTINCT organization_id FROM pipeline_runs WHERE status = 'queued'",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok(get(r, "organization_id")?))
        .collect()
}

/// Starts the organization's oldest queued runs while it is under the cap.
pub async fn promote(
    client: &impl GenericClient,
    organization_id: Uuid,
    cap: i64,
) -> DomainResult<Vec<Uuid>> {
    runs::lock_cap(client, organization_id).await?;
    let rows = client
        .query(
            "UPDATE pipeline_runs SET status = 'running', phase = 'enter', started_at = now(), updated_at = now() \
             WHERE id IN (SELECT id FROM pipeline_runs WHERE organization_id = $1 AND status = 'queued' \
               ORDER BY created_at, id \
               LIMIT greatest(0, $2 - (SELECT count(*) FROM pipeline_runs \
                 WHERE organization_id = $1 AND status IN ('running', 'paused')))) \
             RETURNING id",
            &[&organization_id, &cap],
        )
        .await?;
    rows.iter().map(|r| Ok(get(r, "id")?)).collect()
}

/// One webhook attempt to make, outside any transaction.
#[derive(Debug, Clone)]
pub struct WebhookCall {
    pub stage_id: String,
    pub attempt: i64,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// What the holder does after a step.
#[derive(Debug)]
pub enum Next {
    /// Step again at once (the run moved).
    Again,
    /// Nothing to do until this time (or a wake-up).
    Sleep(Option<DateTime<Utc>>),
    Call(WebhookCall),
    /// The run ended, is gone, or is held elsewhere.
    Stop,
}

/// What a step changed that the realtime layer is told after the commit.
#[derive(Debug, Default)]
pub struct Effects {
    /// (organization, board, changes) of the tasks created.
    pub tasks: Vec<(Uuid, Uuid, Vec<TaskChange>)>,
    /// (board, recorded event) of the approvals created.
    pub approvals: Vec<(Uuid, Option<Uuid>)>,
    /// The pipeline's board, whose feed got a line.
    pub feed: Option<Uuid>,
}

/// Whether this instance still holds the run and it is active (read without a lock: a
/// change that comes while a webhook call is under way asks whether to drop the call).
pub async fn still_mine(client: &impl GenericClient, me: &str, run_id: Uuid) -> DomainResult<bool> {
    let row = client
        .query_opt(
            "SELECT 1 AS held FROM pipeline_runs WHERE id = $1 AND lease_owner = $2 \
               AND status IN ('running', 'paused')",
            &[&run_id, &me],
        )
        .await?;
    Ok(row.is_some())
}

/// Locks the run if this instance holds it and it is active.
async fn mine(client: &impl GenericClient, me: &str, run_id: Uuid) -> DomainResult<Option<Locked>> {
    let locked = records::lock(client, run_id, None).await?;
    Ok(locked.filter(|l| {
        l.control.lease_owner.as_deref() == Some(me)
            && records::ACTIVE.contains(&l.run.status.as_str())
    }))
}

/// Does what the run's phase asks for now.
pub async fn step(
    tx: &mut Transaction<'_>,
    me: &str,
    run_id: Uuid,
    limits: Limits,
) -> DomainResult<(Next, Effects)> {
    let Some(locked) = mine(tx, me, run_id).await? else {
        return Ok((Next::Stop, Effects::default()));
    };
    let mut effects = Effects::default();
    let now = Utc::now();
    let deadline_passed = locked.control.stage_deadline.is_some_and(|d| d <= now);
    let next = match locked.control.phase.as_deref() {
        Some("enter") => enter(tx, &locked, limits, &mut effects).await?,
        Some("wait" | "call") if deadline_passed => {
            let hours = locked
                .current()
                .map(|s| s.timeout(limits.default_timeout_hours).as_secs_f64() / 3600.0);
            let outcome = Outcome::failed(
                format!(
                    "the stage timed out after {:.4} h",
                    hours.unwrap_or_default()
                ),
                json!({"timed_out": true, "in_flight": false}),
            );
            finish(&*tx, &locked, outcome, &mut effects).await?
        }
        Some("wait") => Next::Sleep(locked.control.stage_deadline),
        Some("call") => match locked.control.wake_at.filter(|w| *w > now) {
            Some(later) => Next::Sleep(Some(later)),
            None => attempt(&*tx, &locked, &mut effects).await?,
        },
        _ => Next::Stop,
    };
    Ok((next, effects))
}

/// Enters the current stage.
async fn enter(
    tx: &mut Transaction<'_>,
    locked: &Locked,
    limits: Limits,
    effects: &mut Effects,
) -> DomainResult<Next> {
    let Some(stage) = locked.current() else {
        let failed = Outcome::failed("no such stage", json!({}));
        return finish(&*tx, locked, failed, effects).await;
    };
    if locked.control.steps >= MAX_STEPS {
        let results = progress::with_result(
            &locked.run.stage_results,
            &stage.id,
            Map::from_iter([
                ("status".into(), json!("failed")),
                (
                    "error".into(),
                    json!(format!(
                        "more than {MAX_STEPS} moves between stages: a loop that does not end"
                    )),
                ),
            ]),
        );
        progress::end_run(&*tx, locked, "failed", &results).await?;
        effects.feed = locked.control.pipeline_board_id;
        return Ok(Next::Stop);
    }
    let started = json!(Utc::now());
    let deadline = Utc::now()
        + chrono::Duration::from_std(stage.timeout(limits.default_timeout_hours))
            .unwrap_or(chrono::Duration::days(365));
    // Waiting stages: (result fields, phase, status).
    let waiting = match stage.kind {
        StageType::Condition => {
            let done = Outcome::done(json!({"status": "completed", "started_at": started}));
            return finish(&*tx, locked, done, effects).await;
        }
        StageType::Webhook if stage.text("url").is_none() => {
            let skipped = Outcome::done(
                json!({"status": "skipped", "reason": "the stage has no url", "started_at": started}),
            );
            return finish(&*tx, locked, skipped, effects).await;
        }
        StageType::Webhook => (
            json!({"status": "running", "attempts": 0, "in_flight": false, "started_at": started}),
            "call",
            "running",
        ),
        StageType::Manual => (
            json!({"status": "waiting_manual", "message": stage.text("message").unwrap_or("请人工确认"), "started_at": started}),
            "wait",
            "paused",
        ),
        StageType::AiTask | StageType::Approval => {
            // What the stage creates is made in a savepoint: a refusal (an agent not on the
            // board, say) fails the stage, not the step.
            let savepoint = tx.transaction().await?;
            let made = create_for_stage(&savepoint, locked, stage, effects).await;
            match made {
                Ok(fields) => {
                    savepoint.commit().await?;
                    let mut fields = fields;
                    fields.insert("started_at".into(), started);
                    (Value::Object(fields), "wait", "paused")
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    effects.tasks.clear();
                    effects.approvals.clear();
                    let failed = Outcome::failed(refusal(&e), json!({"started_at": started}));
                    return finish(&*tx, locked, failed, effects).await;
                }
            }
        }
    };
    let (fields, phase, status) = waiting;
    let results = progress::with_result(
        &locked.run.stage_results,
        &stage.id,
        fields.as_object().cloned().unwrap_or_default(),
    );
    tx.execute(
        "UPDATE pipeline_runs SET stage_results = $2, phase = $3, status = $4, stage_deadline = $5, \
           wake_at = NULL, updated_at = now() WHERE id = $1",
        &[&locked.run.id, &results, &phase, &status, &deadline],
    )
    .await?;
    Ok(if phase == "call" {
        Next::Again
    } else {
        Next::Sleep(Some(deadline))
    })
}

/// Ends the current stage (`progress::finish_stage`) and steps again; a run that ended there
/// wrote a line of its board's feed, which is then woken.
async fn finish(
    client: &impl GenericClient,
    locked: &Locked,
    outcome: Outcome,
    effects: &mut Effects,
) -> DomainResult<Next> {
    if progress::finish_stage(client, locked, outcome).await? {
        effects.feed = locked.control.pipeline_board_id;
    }
    Ok(Next::Again)
}

/// A refusal as a stage's error text: what the API would answer, or the fault itself.
fn refusal(e: &DomainError) -> String {
    match e.status_and_detail() {
        (status, Value::String(detail)) if status < 500 => detail,
        (status, detail) if status < 500 => detail.to_string(),
        _ => e.to_string(),
    }
}

/// The task of an `ai_task` stage or the approval of an `approval` stage, on the stage's
/// board (else the pipeline's), linked to the run: the fields of the stage's result.
async fn create_for_stage(
    client: &Transaction<'_>,
    locked: &Locked,
    stage: &Stage,
    effects: &mut Effects,
) -> DomainResult<Map<String, Value>> {
    let board_id = stage
        .uuid("board_id")
        .or(locked.control.pipeline_board_id)
        .ok_or_else(|| DomainError::Conflict(json!("the stage has no board")))?;
    let board = board::find_in_org(client, locked.run.organization_id, board_id)
        .await?
        .ok_or_else(|| DomainError::NotFound(json!("the stage's board no longer exists")))?;
    let (column, id, fields) = if stage.kind == StageType::AiTask {
        let input = TaskCreate {
            title: stage.text("task_title").unwrap_or("管道任务").to_string(),
            description: Some(stage.text("description").unwrap_or("").to_string()),
            status: TaskStatus::Inbox,
            priority: stage.text("priority").unwrap_or("medium").to_string(),
            due_at: None,
            assigned_agent_id: stage.uuid("agent_id"),
            depends_on_task_ids: Vec::new(),
            tag_ids: Vec::new(),
            created_by_user_id: locked.control.started_by_user_id,
            custom_field_values: Map::new(),
        };
        let (task, changes) =
            tasks::create(client, &board, &Actor::Pipeline(locked.run.id), input).await?;
        effects
            .tasks
            .push((board.organization_id, board.id, changes));
        let fields = json!({"status": "waiting", "task_id": task.id, "board_id": board.id});
        ("task_id", task.id, fields)
    } else {
        let title = stage.text("title").unwrap_or("审批").to_string();
        let description = stage.text("description").unwrap_or("").to_string();
        let payload = json!({
            "title": title, "description": description,
            "reason": if description.is_empty() { title.clone() } else { description.clone() },
            "pipeline_id": locked.run.pipeline_id, "pipeline_run_id": locked.run.id, "stage_id": stage.id,
        });
        let input = ApprovalCreate {
            action_type: "pipeline_approval".into(),
            task_id: None,
            task_ids: Vec::new(),
            payload: payload.as_object().cloned(),
            confidence: stage
                .config
                .get("confidence")
                .and_then(Value::as_f64)
                .unwrap_or(100.0),
            rubric_scores: None,
            status: ApprovalStatus::Pending,
            agent_id: stage.uuid("agent_id"),
            lead_reasoning: None,
        };
        let (approval, event) = approvals::create(client, &board, input).await?;
        effects.approvals.push((board.id, event));
        let fields = json!({"status": "waiting_approval", "title": title, "approval_id": approval.id, "board_id": board.id});
        ("approval_id", approval.id, fields)
    };
    client
        .execute(
            &format!(
                "INSERT INTO pipeline_stage_tasks (id, pipeline_run_id, stage_id, {column}) VALUES ($1, $2, $3, $4)"
            ),
            &[&Uuid::new_v4(), &locked.run.id, &stage.id, &id],
        )
        .await?;
    Ok(fields.as_object().cloned().unwrap_or_default())
}

/// The next webhook attempt, recorded as in flight before it is made. Every attempt of one
/// stage visit carries the same `Idempotency-Key` (one logical delivery) and its own number
/// (`X-Webhook-Attempt`): no attempt is ever made twice. An attempt still in flight when the
/// run was taken over (its holder died mid-call; whether it arrived is unknown) counts as
/// made, and the next one follows at once — unless it was the last allowed, which fails the
/// stage.
async fn attempt(
    client: &impl GenericClient,
    locked: &Locked,
    effects: &mut Effects,
) -> DomainResult<Next> {
    let Some(stage) = locked.current() else {
        return Ok(Next::Stop);
    };
    let result = locked.current_result().cloned().unwrap_or(Value::Null);
    let attempts = result.get("attempts").and_then(Value::as_i64).unwrap_or(0);
    let interrupted = result
        .get("in_flight")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let max = stage.int("max_attempts", DEFAULT_WEBHOOK_ATTEMPTS);
    if interrupted && attempts >= max {
        let failed = Outcome::failed(
            format!("attempt {attempts} of {max} was interrupted (its instance stopped); delivery unknown"),
            json!({"in_flight": false}),
        );
        return finish(client, locked, failed, effects).await;
    }
    let attempt = attempts + 1;
    let mut fields = Map::from_iter([
        ("attempts".into(), json!(attempt)),
        ("in_flight".into(), json!(true)),
        ("last_attempt_at".into(), json!(Utc::now())),
    ]);
    if interrupted {
        fields.insert(
            "last_error".into(),
            json!(format!(
                "attempt {attempts} was interrupted (its instance stopped); delivery unknown"
            )),
        );
    }
    let results = progress::with_result(&locked.run.stage_results, &stage.id, fields);
    client
        .execute(
            "UPDATE pipeline_runs SET stage_results = $2, wake_at = NULL, updated_at = now() WHERE id = $1",
            &[&locked.run.id, &results],
        )
        .await?;
    let body = json!({
        "pipeline_id": locked.run.pipeline_id,
        "pipeline_run_id": locked.run.id,
        "stage_id": stage.id,
        "attempt": attempt,
        "stage_results": locked.run.stage_results,
        "input_data": locked.run.input_data,
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut headers: Vec<(String, String)> = stage
        .config
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    headers.push((
        IDEMPOTENCY_HEADER.into(),
        format!("{}:{}:{}", locked.run.id, stage.id, locked.control.steps),
    ));
    headers.push((ATTEMPT_HEADER.into(), attempt.to_string()));
    if let Some(secret) = stage.text("secret") {
        headers.push((SIGNATURE_HEADER.into(), sign(secret, &body)));
    }
    Ok(Next::Call(WebhookCall {
        stage_id: stage.id.clone(),
        attempt,
        url: stage.text("url").unwrap_or_default().to_string(),
        method: stage.text("method").unwrap_or("POST").to_ascii_uppercase(),
        headers,
        body,
        timeout: Duration::from_secs(
            stage
                .int("request_timeout_seconds", DEFAULT_REQUEST_TIMEOUT_SECONDS)
                .max(1) as u64,
        ),
    }))
}

/// `sha256=<hex HMAC-SHA256 of the body>`, as board webhooks check it.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Records a webhook attempt's answer (`Ok(status)`, or `Err` when there was none): a 2xx
/// completes the stage; anything else is retried after a backoff until the stage's
/// `max_attempts`, then fails it. What the realtime layer is to be told.
pub async fn record_call(
    client: &impl GenericClient,
    me: &str,
    run_id: Uuid,
    call: &WebhookCall,
    answer: Result<u16, String>,
) -> DomainResult<Effects> {
    let mut effects = Effects::default();
    let Some(locked) = mine(client, me, run_id).await? else {
        return Ok(effects);
    };
    let Some(stage) = locked.current().filter(|s| s.id == call.stage_id) else {
        return Ok(effects);
    };
    let attempts = locked
        .current_result()
        .and_then(|r| r.get("attempts"))
        .and_then(Value::as_i64);
    if locked.control.phase.as_deref() != Some("call") || attempts != Some(call.attempt) {
        return Ok(effects);
    }
    let (status, error) = match &answer {
        Ok(code) => (json!(code), format!("the webhook answered HTTP {code}")),
        Err(e) => (Value::Null, format!("the webhook call failed: {e}")),
    };
    if matches!(answer, Ok(code) if (200..300).contains(&code)) {
        let done = Outcome::done(
            json!({"status": "completed", "http_status": status, "in_flight": false}),
        );
        finish(client, &locked, done, &mut effects).await?;
        return Ok(effects);
    }
    let max = stage.int("max_attempts", DEFAULT_WEBHOOK_ATTEMPTS);
    if call.attempt >= max {
        let failed = Outcome::failed(
            format!("{error} (attempt {} of {max})", call.attempt),
            json!({"http_status": status, "in_flight": false}),
        );
        finish(client, &locked, failed, &mut effects).await?;
        return Ok(effects);
    }
    let backoff = Duration::from_secs(1u64 << (call.attempt - 1).clamp(0, 16)).min(MAX_BACKOFF);
    let results = progress::with_result(
        &locked.run.stage_results,
        &stage.id,
        Map::from_iter([
            ("in_flight".into(), json!(false)),
            ("http_status".into(), status),
            ("last_error".into(), json!(error)),
        ]),
    );
    client
        .execute(
            "UPDATE pipeline_runs SET stage_results = $2, wake_at = now() + make_interval(secs => $3), \
               updated_at = now() WHERE id = $1",
            &[&run_id, &results, &backoff.as_secs_f64()],
        )
        .await?;
    Ok(effects)
}
