//! Runs as the API sees them (domain.md §C4–C5): start (under the organization's cap),
//! list, read, advance, cancel.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::pipelines::progress::{self, Outcome};
use crate::domain::pipelines::records::{self, Pipeline, Run};
use crate::domain::pipelines::stages::{self, StageType};
use crate::domain::support::access;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::{model_error, Invalid};
use crate::domain::{DomainError, DomainResult};

pub const NOT_FOUND: &str = "管道执行记录不存在。";

/// `PipelineRunStart`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RunStart {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input_data: Option<Map<String, Value>>,
}

/// Who or what starts a run.
pub struct Start {
    pub input_data: Option<Value>,
    pub started_by_user_id: Option<Uuid>,
    pub trigger_event_id: Option<Uuid>,
    /// `PIPELINE_MAX_CONCURRENT_RUNS`, when the caller decides at once between `running`
    /// and `queued`; `None` queues the run for the holders to start (`holder::promote`).
    pub cap: Option<i64>,
    /// The instance to hold the run when it starts at once (the one that served the request,
    /// so runs spread as requests do); else whichever instance takes it first.
    pub holder: Option<String>,
}

/// The advisory lock that serializes one organization's decisions against its cap.
pub async fn lock_cap(client: &impl GenericClient, organization_id: Uuid) -> DomainResult<()> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('mc_pipeline_cap:' || $1::uuid::text, 0))",
            &[&organization_id],
        )
        .await?;
    Ok(())
}

/// Checks what a run needs before it starts: stages, and a board for every stage that
/// makes a task or an approval (the stage's `config.board_id` or the pipeline's).
pub fn check_runnable(pipeline: &Pipeline) -> DomainResult<()> {
    if !pipeline.is_active {
        return Err(DomainError::Conflict(json!("管道已停用，无法启动执行。")));
    }
    let read = stages::read(&pipeline.stages);
    if read.is_empty() {
        return Err(model_error(
            "the pipeline has no stages; add one before running it",
        ));
    }
    let mut invalid = Invalid::default();
    for (i, stage) in read.iter().enumerate() {
        let needs_board = matches!(stage.kind, StageType::AiTask | StageType::Approval);
        if needs_board && pipeline.board_id.is_none() && stage.uuid("board_id").is_none() {
            invalid.value_error_at(
                &[json!("stages"), json!(i), json!("config"), json!("board_id")],
                &format!(
                    "stage {:?} creates a task or an approval: give it a config.board_id or give the pipeline a board_id",
                    stage.id
                ),
                Value::Null,
            );
        }
    }
    invalid.finish()
}

/// Starts a run at the pipeline's first stage: `running` when the organization is under its
/// cap and nothing waits before it, else `queued`. `None` when the event already started
/// one.
pub async fn start(
    client: &impl GenericClient,
    pipeline: &Pipeline,
    start: Start,
) -> DomainResult<Option<Run>> {
    check_runnable(pipeline)?;
    let first = stages::read(&pipeline.stages)
        .first()
        .map(|s| s.id.clone())
        .ok_or_else(|| model_error("the pipeline has no stages"))?;
    let running = match start.cap {
        Some(cap) => {
            lock_cap(client, pipeline.organization_id).await?;
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE status IN ('running', 'paused')) AS active, \
                       count(*) FILTER (WHERE status = 'queued') AS queued \
                     FROM pipeline_runs WHERE organization_id = $1 AND status IN ('queued', 'running', 'paused')",
                    &[&pipeline.organization_id],
                )
                .await?;
            let (active, queued): (i64, i64) = (get(&row, "active")?, get(&row, "queued")?);
            active < cap && queued == 0
        }
        None => false,
    };
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO pipeline_runs AS r (id, pipeline_id, organization_id, input_data, current_stage_id, \
                   status, phase, started_by_user_id, trigger_event_id, lease_owner) \
                 VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN 'running' ELSE 'queued' END, \
                   CASE WHEN $6 THEN 'enter' END, $7, $8, CASE WHEN $6 THEN $9 END) \
                 ON CONFLICT (pipeline_id, trigger_event_id) WHERE trigger_event_id IS NOT NULL DO NOTHING \
                 RETURNING {columns}",
                columns = Run::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &pipeline.id,
                &pipeline.organization_id,
                &start.input_data,
                &first,
                &running,
                &start.started_by_user_id,
                &start.trigger_event_id,
                &start.holder,
            ],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let run = Run::from_row(&row)?;
    let about = records::About {
        organization_id: pipeline.organization_id,
        board_id: pipeline.board_id,
        pipeline_name: &pipeline.name,
        run_id: run.id,
    };
    progress::record(client, about, "pipeline.run.started", &run.status).await?;
    Ok(Some(run))
}

/// What a change of a run answers: the run, and the pipeline's board when its feed got a
/// line (the run started or ended).
pub type Changed = (Run, Option<Uuid>);

/// `POST /pipelines/{id}/run`.
pub async fn start_for_user(
    client: &impl GenericClient,
    principal: &Principal,
    pipeline_id: Uuid,
    input: RunStart,
    (cap, holder): (i64, &str),
) -> DomainResult<Changed> {
    access::require_org_admin(&principal.member)?;
    let pipeline = records::pipeline_of(client, principal, pipeline_id, false).await?;
    let how = Start {
        input_data: input.input_data.map(Value::Object),
        started_by_user_id: Some(principal.user.id),
        trigger_event_id: None,
        cap: Some(cap),
        holder: Some(holder.to_string()),
    };
    let run = start(client, &pipeline, how)
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok((run, pipeline.board_id))
}

/// A pipeline's runs, newest first, optionally of one status.
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    pipeline_id: Uuid,
    status: Option<String>,
    page: PageParams,
) -> DomainResult<Page<Run>> {
    records::pipeline_of(client, principal, pipeline_id, false).await?;
    fetch_page(
        client,
        Run::COLUMNS,
        "FROM pipeline_runs r WHERE r.pipeline_id = $1 AND ($2::text IS NULL OR r.status = $2)",
        "r.created_at DESC, r.id",
        &[&pipeline_id, &status],
        page,
        Run::from_row,
    )
    .await
}

pub async fn get_one(
    client: &impl GenericClient,
    principal: &Principal,
    run_id: Uuid,
) -> DomainResult<Run> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM pipeline_runs r WHERE r.id = $1 AND r.organization_id = $2",
                columns = Run::COLUMNS
            ),
            &[&run_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(|| DomainError::NotFound(json!(NOT_FOUND)))?;
    Ok(Run::from_row(&row)?)
}

async fn locked_for(
    client: &impl GenericClient,
    principal: &Principal,
    run_id: Uuid,
) -> DomainResult<records::Locked> {
    access::require_org_admin(&principal.member)?;
    records::lock(client, run_id, Some(principal.organization.id))
        .await?
        .ok_or_else(|| DomainError::NotFound(json!(NOT_FOUND)))
}

/// `advance`: a paused run's current stage is completed (with the body as its `output`)
/// and the run moves on, whatever the stage waited for (its task or approval stays as it
/// is).
pub async fn advance(
    client: &impl GenericClient,
    principal: &Principal,
    run_id: Uuid,
    output: Option<Map<String, Value>>,
) -> DomainResult<Changed> {
    let locked = locked_for(client, principal, run_id).await?;
    if locked.run.status != "paused" {
        return Err(DomainError::Conflict(json!(format!(
            "管道运行状态为 {}，只有暂停状态可以推进。",
            locked.run.status
        ))));
    }
    let mut fields = Map::from_iter([
        ("status".into(), json!("completed")),
        ("advanced_by_user_id".into(), json!(principal.user.id)),
    ]);
    if let Some(output) = output {
        fields.insert("output".into(), Value::Object(output));
    }
    let ended = progress::finish_stage(client, &locked, Outcome::Done(fields)).await?;
    let run = get_one(client, principal, run_id).await?;
    Ok((run, locked.control.pipeline_board_id.filter(|_| ended)))
}

/// `cancel`: the run ends `cancelled` and its holder stops (a webhook call in flight is
/// dropped); tasks and approvals it created are left as they are.
pub async fn cancel(
    client: &impl GenericClient,
    principal: &Principal,
    run_id: Uuid,
) -> DomainResult<Changed> {
    let locked = locked_for(client, principal, run_id).await?;
    if locked.ended() {
        return Err(DomainError::Conflict(json!(format!(
            "管道运行已结束（{}），无法取消。",
            locked.run.status
        ))));
    }
    let results = match &locked.run.current_stage_id {
        Some(stage) if locked.run.status != "queued" => progress::with_result(
            &locked.run.stage_results,
            stage,
            Map::from_iter([
                ("status".into(), json!("cancelled")),
                ("completed_at".into(), json!(chrono::Utc::now())),
            ]),
        ),
        _ => locked.run.stage_results.clone(),
    };
    progress::end_run(client, &locked, "cancelled", &results).await?;
    let run = get_one(client, principal, run_id).await?;
    Ok((run, locked.control.pipeline_board_id))
}
