//! `/api/v1/pipelines*`, `/api/v1/pipeline-runs/*`, `/api/v1/pipeline-templates`
//! (domain.md §C5): the organization's pipelines and their runs. Reads need a member of the
//! organization; writes, runs, advances and cancels an organization admin. A run is driven
//! by the instance holding it (`actors::pipelines`), which every change wakes through
//! PostgreSQL.

use actix_web::web::{self, Bytes, Data};
use actix_web::{delete, get, patch, post, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::pipelines::crud::{self, PipelineCreate, PipelineUpdate};
use crate::domain::pipelines::records::{Pipeline, Run};
use crate::domain::pipelines::runs::{self, RunStart};
use crate::domain::pipelines::templates;
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::{ApiError, ApiResult};
use crate::http::json::{self, Json};
use crate::http::OkResponse;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PipelineQuery {
    pub board_id: Option<Uuid>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RunQuery {
    /// queued, running, paused, completed, failed or cancelled.
    pub run_status: Option<String>,
}

/// A body that may be absent (or `null`): `T`'s JSON otherwise.
fn optional_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    json::parse::<Option<T>>(body)
}

/// The run of a committed change; the feed of the pipeline's board is woken (its holder
/// is woken by PostgreSQL).
fn told(state: &AppState, (run, board): runs::Changed) -> Run {
    if let Some(board) = board {
        state.board_events.feed_changed(board);
    }
    run
}

/// The organization's pipelines, newest first.
#[utoipa::path(tag = "pipelines", params(PipelineQuery, ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Pipeline>), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[get("/api/v1/pipelines")]
pub async fn list_pipelines(
    state: Data<AppState>,
    Admin(principal): Admin,
    query: web::Query<PipelineQuery>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Pipeline>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let query = query.into_inner();
    Ok(web::Json(
        crud::list(&*conn, &principal, query.board_id, query.is_active, page).await?,
    ))
}

/// Creates a pipeline; its stages and trigger are checked (422 naming the stage's field).
#[utoipa::path(tag = "pipelines", request_body = PipelineCreate,
    responses((status = 201, body = Pipeline), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/pipelines")]
pub async fn create_pipeline(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<PipelineCreate>,
) -> ApiResult<HttpResponse> {
    let pipeline = in_transaction!(state, |tx| crud::create(&tx, &principal, input));
    Ok(HttpResponse::Created().json(pipeline))
}

#[utoipa::path(tag = "pipelines", params(("pipeline_id" = Uuid, Path)),
    responses((status = 200, body = Pipeline), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/pipelines/{pipeline_id}")]
pub async fn get_pipeline(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Pipeline>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        crud::get_one(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Changes a pipeline (absent fields stay). Runs under way keep going with the new stages
/// from their current stage on.
#[utoipa::path(tag = "pipelines", params(("pipeline_id" = Uuid, Path)), request_body = PipelineUpdate,
    responses((status = 200, body = Pipeline), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[patch("/api/v1/pipelines/{pipeline_id}")]
pub async fn update_pipeline(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<PipelineUpdate>,
) -> ApiResult<web::Json<Pipeline>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| crud::update(
        &tx, &principal, id, patch
    ))))
}

/// Deletes a pipeline and its runs; tasks and approvals they created stay.
#[utoipa::path(tag = "pipelines", params(("pipeline_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[delete("/api/v1/pipelines/{pipeline_id}")]
pub async fn delete_pipeline(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    in_transaction!(state, |tx| crud::delete(&tx, &principal, id));
    Ok(OkResponse::json())
}

/// Starts a run at the first stage: `running`, or `queued` when the organization already
/// has PIPELINE_MAX_CONCURRENT_RUNS under way. The body (`{input_data}`) may be omitted.
#[utoipa::path(tag = "pipelines", params(("pipeline_id" = Uuid, Path)), request_body = Option<RunStart>,
    responses((status = 201, body = Run), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/pipelines/{pipeline_id}/run")]
pub async fn start_run(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    body: Bytes,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let input: RunStart = optional_body(&body)?.unwrap_or_default();
    let limits = (
        state.settings.pipelines.max_concurrent_runs as i64,
        state.settings.instance_id.as_str(),
    );
    let changed = in_transaction!(state, |tx| runs::start_for_user(
        &tx, &principal, id, input, limits
    ));
    Ok(HttpResponse::Created().json(told(&state, changed)))
}

/// A pipeline's runs, newest first.
#[utoipa::path(tag = "pipelines", params(("pipeline_id" = Uuid, Path), RunQuery, ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Run>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[get("/api/v1/pipelines/{pipeline_id}/runs")]
pub async fn list_runs(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    query: web::Query<RunQuery>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Run>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let status = query.into_inner().run_status;
    Ok(web::Json(
        runs::list(&*conn, &principal, path.into_inner(), status, page).await?,
    ))
}

#[utoipa::path(tag = "pipelines", params(("run_id" = Uuid, Path)),
    responses((status = 200, body = Run), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/pipeline-runs/{run_id}")]
pub async fn get_run(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Run>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        runs::get_one(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Completes a paused run's current stage (the body, a JSON object, becomes its `output`)
/// and moves the run on; 409 unless the run is paused.
#[utoipa::path(tag = "pipelines", params(("run_id" = Uuid, Path)), request_body = Option<Object>,
    responses((status = 200, body = Run), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/pipeline-runs/{run_id}/advance")]
pub async fn advance_run(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    body: Bytes,
) -> ApiResult<web::Json<Run>> {
    let id = path.into_inner();
    let output: Option<Map<String, Value>> = optional_body(&body)?;
    let changed = in_transaction!(state, |tx| runs::advance(&tx, &principal, id, output));
    Ok(web::Json(told(&state, changed)))
}

/// Cancels a run that has not ended (409 otherwise); its holder stops.
#[utoipa::path(tag = "pipelines", params(("run_id" = Uuid, Path)),
    responses((status = 200, body = Run), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[post("/api/v1/pipeline-runs/{run_id}/cancel")]
pub async fn cancel_run(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Run>> {
    let id = path.into_inner();
    let changed = in_transaction!(state, |tx| runs::cancel(&tx, &principal, id));
    Ok(web::Json(told(&state, changed)))
}

/// The three templates (review, onboarding, release), as the reference lists them.
#[utoipa::path(tag = "pipelines",
    responses((status = 200, body = Vec<Object>), (status = 401)),
    security(("bearer" = [])))]
#[get("/api/v1/pipeline-templates")]
pub async fn list_templates(_admin: Admin) -> web::Json<Value> {
    web::Json(templates::all())
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_pipelines)
        .service(create_pipeline)
        .service(get_pipeline)
        .service(update_pipeline)
        .service(delete_pipeline)
        .service(start_run)
        .service(list_runs)
        .service(get_run)
        .service(advance_run)
        .service(cancel_run)
        .service(list_templates);
}
