//! Pipelines (domain.md §C5): list, create, read, change, delete. Writes need an
//! organization admin and are checked: stages (`stages::check`), the trigger
//! (`triggers::check`), and every board or agent named belongs to the organization — 422
//! naming the field, where the reference stores anything and fails at run time.

use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::pipelines::records::{self, Pipeline};
use crate::domain::pipelines::stages;
use crate::domain::pipelines::triggers;
use crate::domain::support::access;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::Invalid;
use crate::domain::DomainResult;

const MAX_NAME_CHARS: usize = 256;
const MAX_TYPE_CHARS: usize = 64;

/// `PipelineCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PipelineCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "general")]
    pub pipeline_type: String,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub stages: Vec<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub trigger_config: Option<Value>,
    #[serde(default = "active")]
    pub is_active: bool,
}

fn general() -> String {
    "general".into()
}

fn active() -> bool {
    true
}

/// `PipelineUpdate`: absent or `null` fields stay as they are (a `null` never clears a
/// required column, which is a 500 in the reference); `board_id` and `description` and
/// `trigger_config` are cleared by `null`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PipelineUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub pipeline_type: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub board_id: Option<Option<Uuid>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub stages: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub trigger_config: Option<Option<Value>>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Option<Uuid>,
    is_active: Option<bool>,
    page: PageParams,
) -> DomainResult<Page<Pipeline>> {
    fetch_page(
        client,
        Pipeline::COLUMNS,
        "FROM pipelines p WHERE p.organization_id = $1 AND ($2::uuid IS NULL OR p.board_id = $2) \
           AND ($3::bool IS NULL OR p.is_active = $3)",
        "p.created_at DESC, p.id",
        &[&principal.organization.id, &board_id, &is_active],
        page,
        Pipeline::from_row,
    )
    .await
}

pub async fn get_one(
    client: &impl GenericClient,
    principal: &Principal,
    pipeline_id: Uuid,
) -> DomainResult<Pipeline> {
    records::pipeline_of(client, principal, pipeline_id, false).await
}

/// The fields of a pipeline as written, checked together.
struct Fields<'a> {
    name: &'a str,
    pipeline_type: &'a str,
    board_id: Option<Uuid>,
    stages: &'a [Value],
    trigger_config: Option<&'a Value>,
}

/// Checks the fields; the schedule's first firing.
async fn check(
    client: &impl GenericClient,
    principal: &Principal,
    fields: Fields<'_>,
) -> DomainResult<Option<chrono::DateTime<chrono::Utc>>> {
    let mut invalid = Invalid::default();
    invalid.non_empty("name", fields.name);
    invalid.max_chars("name", fields.name, MAX_NAME_CHARS);
    invalid.max_chars("pipeline_type", fields.pipeline_type, MAX_TYPE_CHARS);
    let read = stages::check(fields.stages, &mut invalid);
    let next_fire = triggers::check(&mut invalid, fields.trigger_config);
    // Every board and agent named must be the organization's.
    let mut named: Vec<(Vec<Value>, &str, Uuid)> = Vec::new();
    if let Some(board) = fields.board_id {
        named.push((vec![json!("board_id")], "boards", board));
    }
    let trigger_board = fields
        .trigger_config
        .and_then(|c| c.get("board_id"))
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    if let Some(board) = trigger_board {
        named.push((
            vec![json!("trigger_config"), json!("board_id")],
            "boards",
            board,
        ));
    }
    for (i, stage) in read.iter().enumerate() {
        for (key, table) in [("board_id", "boards"), ("agent_id", "agents")] {
            if let Some(id) = stage.uuid(key) {
                named.push((
                    vec![json!("stages"), json!(i), json!("config"), json!(key)],
                    table,
                    id,
                ));
            }
        }
    }
    for (loc, table, id) in named {
        let found = client
            .query_opt(
                &format!("SELECT 1 AS found FROM {table} WHERE id = $1 AND organization_id = $2"),
                &[&id, &principal.organization.id],
            )
            .await?;
        if found.is_none() {
            let what = if table == "boards" { "board" } else { "agent" };
            invalid.value_error_at(
                &loc,
                &format!("no {what} of the organization has this id"),
                json!(id),
            );
        }
    }
    invalid.finish()?;
    Ok(next_fire)
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: PipelineCreate,
) -> DomainResult<Pipeline> {
    access::require_org_admin(&principal.member)?;
    let fields = Fields {
        name: &input.name,
        pipeline_type: &input.pipeline_type,
        board_id: input.board_id,
        stages: &input.stages,
        trigger_config: input.trigger_config.as_ref(),
    };
    let next_fire = check(client, principal, fields).await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO pipelines AS p (id, organization_id, board_id, name, description, pipeline_type, \
                   stages, trigger_config, is_active, next_fire_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {columns}",
                columns = Pipeline::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &principal.organization.id,
                &input.board_id,
                &input.name.trim(),
                &input.description,
                &input.pipeline_type,
                &Value::Array(input.stages),
                &input.trigger_config.filter(|c| !c.is_null()),
                &input.is_active,
                &next_fire,
            ],
        )
        .await?;
    Ok(Pipeline::from_row(&row)?)
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    pipeline_id: Uuid,
    patch: PipelineUpdate,
) -> DomainResult<Pipeline> {
    access::require_org_admin(&principal.member)?;
    let current = records::pipeline_of(client, principal, pipeline_id, true).await?;
    let name = patch.name.unwrap_or(current.name);
    let pipeline_type = patch.pipeline_type.unwrap_or(current.pipeline_type);
    let description = patch.description.unwrap_or(current.description);
    let board_id = patch.board_id.unwrap_or(current.board_id);
    let stages = match patch.stages {
        Some(stages) => stages,
        None => current.stages.as_array().cloned().unwrap_or_default(),
    };
    let trigger_config = patch
        .trigger_config
        .unwrap_or(current.trigger_config)
        .filter(|c| !c.is_null());
    let fields = Fields {
        name: &name,
        pipeline_type: &pipeline_type,
        board_id,
        stages: &stages,
        trigger_config: trigger_config.as_ref(),
    };
    let next_fire = check(client, principal, fields).await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE pipelines p SET name = $2, description = $3, pipeline_type = $4, board_id = $5, \
                   stages = $6, trigger_config = $7, is_active = $8, next_fire_at = $9, updated_at = now() \
                 WHERE p.id = $1 RETURNING {columns}",
                columns = Pipeline::COLUMNS
            ),
            &[
                &pipeline_id,
                &name.trim(),
                &description,
                &pipeline_type,
                &board_id,
                &Value::Array(stages),
                &trigger_config,
                &patch.is_active.unwrap_or(current.is_active),
                &next_fire,
            ],
        )
        .await?;
    Ok(Pipeline::from_row(&row)?)
}

/// Deletes the pipeline with its runs (their holders stop when they see the run gone);
/// tasks and approvals its runs created stay.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    pipeline_id: Uuid,
) -> DomainResult<()> {
    access::require_org_admin(&principal.member)?;
    let row = client
        .query_one(
            "WITH gone AS (DELETE FROM pipelines WHERE id = $1 AND organization_id = $2 RETURNING id) \
             SELECT count(*) AS n FROM gone",
            &[&pipeline_id, &principal.organization.id],
        )
        .await?;
    let n: i64 = get(&row, "n")?;
    if n == 0 {
        return Err(crate::domain::DomainError::NotFound(json!(
            records::PIPELINE_NOT_FOUND
        )));
    }
    Ok(())
}
