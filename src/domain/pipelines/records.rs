//! The rows of pipelines and their runs, and a run read with what its state machine needs.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::pipelines::stages::{self, Stage};
use crate::domain::DomainResult;

crate::db::record! {
    /// `PipelineRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Pipeline in "p" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub board_id: Option<Uuid>,
        pub name: String,
        pub description: Option<String>,
        pub pipeline_type: String,
        #[schema(value_type = Vec<Object>)]
        pub stages: Value,
        #[schema(value_type = Option<Object>)]
        pub trigger_config: Option<Value>,
        pub is_active: bool,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

crate::db::record! {
    /// `PipelineRunRead`. `status` is `queued` (waiting under the organization's cap),
    /// `running`, `paused` (waiting for a task, an approval or an advance), `completed`,
    /// `failed` or `cancelled`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Run in "r" {
        pub id: Uuid,
        pub pipeline_id: Uuid,
        pub organization_id: Uuid,
        #[schema(value_type = Option<Object>)]
        pub input_data: Option<Value>,
        pub current_stage_id: Option<String>,
        pub status: String,
        #[schema(value_type = Object)]
        pub stage_results: Value,
        pub started_at: DateTime<Utc>,
        pub completed_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

crate::db::record! {
    /// What the state machine keeps beside the read shape.
    #[derive(Debug, Clone)]
    pub struct Control in "r" {
        pub phase: Option<String>,
        pub lease_owner: Option<String>,
        pub stage_deadline: Option<DateTime<Utc>>,
        pub wake_at: Option<DateTime<Utc>>,
        pub steps: i32,
        pub started_by_user_id: Option<Uuid>,
        pub pipeline_board_id: Option<Uuid> = "(SELECT p.board_id FROM pipelines p WHERE p.id = r.pipeline_id)",
        pub pipeline_name: String = "(SELECT p.name FROM pipelines p WHERE p.id = r.pipeline_id)",
        pub stages: Value = "(SELECT p.stages FROM pipelines p WHERE p.id = r.pipeline_id)",
    }
}

pub const ACTIVE: [&str; 2] = ["running", "paused"];
pub const ENDED: [&str; 3] = ["completed", "failed", "cancelled"];

/// A run with its control columns and its pipeline's stages, row-locked for the
/// transaction: every change of a run goes through this lock, whoever makes it.
pub struct Locked {
    pub run: Run,
    pub control: Control,
    pub stages: Vec<Stage>,
}

/// Which run a line of the activity feed is about.
pub struct About<'a> {
    pub organization_id: Uuid,
    pub board_id: Option<Uuid>,
    pub pipeline_name: &'a str,
    pub run_id: Uuid,
}

impl Locked {
    pub fn about(&self) -> About<'_> {
        About {
            organization_id: self.run.organization_id,
            board_id: self.control.pipeline_board_id,
            pipeline_name: &self.control.pipeline_name,
            run_id: self.run.id,
        }
    }

    pub fn current(&self) -> Option<&Stage> {
        self.run
            .current_stage_id
            .as_deref()
            .and_then(|id| stages::find(&self.stages, id))
    }

    pub fn ended(&self) -> bool {
        ENDED.contains(&self.run.status.as_str())
    }

    /// What condition expressions read.
    pub fn context(&self) -> Value {
        serde_json::json!({
            "stage_results": self.run.stage_results,
            "input_data": self.run.input_data.clone().unwrap_or(Value::Null),
        })
    }

    /// The recorded result of the current stage.
    pub fn current_result(&self) -> Option<&Value> {
        self.run
            .current_stage_id
            .as_deref()
            .and_then(|id| self.run.stage_results.get(id))
    }
}

/// The run, locked, if it is of `organization_id` (any organization when `None`).
pub async fn lock(
    client: &impl GenericClient,
    run_id: Uuid,
    organization_id: Option<Uuid>,
) -> DomainResult<Option<Locked>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {run}, {control} FROM pipeline_runs r \
                 WHERE r.id = $1 AND ($2::uuid IS NULL OR r.organization_id = $2) FOR NO KEY UPDATE",
                run = Run::COLUMNS,
                control = Control::COLUMNS
            ),
            &[&run_id, &organization_id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let run = Run::from_row(&row)?;
    let control = Control::from_row_at(&row, Run::WIDTH)?;
    let stages = stages::read(&control.stages);
    Ok(Some(Locked {
        run,
        control,
        stages,
    }))
}

pub const PIPELINE_NOT_FOUND: &str = "管道不存在。";

/// A pipeline of the principal's organization (404 otherwise), locked when `lock`.
pub async fn pipeline_of(
    client: &impl GenericClient,
    principal: &crate::domain::model::Principal,
    pipeline_id: Uuid,
    lock: bool,
) -> DomainResult<Pipeline> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM pipelines p WHERE p.id = $1 AND p.organization_id = $2{lock}",
                columns = Pipeline::COLUMNS,
                lock = if lock { " FOR NO KEY UPDATE" } else { "" }
            ),
            &[&pipeline_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(|| crate::domain::DomainError::NotFound(serde_json::json!(PIPELINE_NOT_FOUND)))?;
    Ok(Pipeline::from_row(&row)?)
}
