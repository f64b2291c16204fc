//! `/api/v1/organizations/me/custom-fields` (domain.md §A12): the organization's task
//! custom field definitions and their board bindings.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::tasks::custom_fields::{
    self, FieldDefinition, FieldDefinitionCreate, FieldDefinitionUpdate,
};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// Every definition of the organization, by label (not paginated).
#[utoipa::path(
    tag = "custom-fields",
    responses((status = 200, body = Vec<FieldDefinition>), (status = 401)),
    security(("bearer" = []))
)]
#[get("/api/v1/organizations/me/custom-fields")]
pub async fn list_custom_fields(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Vec<FieldDefinition>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(custom_fields::list(&*conn, &principal).await?))
}

/// Creates a definition bound to at least one board (org admin).
#[utoipa::path(
    tag = "custom-fields",
    request_body = FieldDefinitionCreate,
    responses((status = 200, body = FieldDefinition), (status = 401), (status = 403), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/organizations/me/custom-fields")]
pub async fn create_custom_field(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<FieldDefinitionCreate>,
) -> ApiResult<web::Json<FieldDefinition>> {
    Ok(web::Json(in_transaction!(state, |tx| {
        custom_fields::create(&tx, &principal, input)
    })))
}

/// Updates a definition; `board_ids` replaces its board bindings (org admin).
#[utoipa::path(
    tag = "custom-fields",
    params(("task_custom_field_definition_id" = Uuid, Path)),
    request_body = FieldDefinitionUpdate,
    responses((status = 200, body = FieldDefinition), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/organizations/me/custom-fields/{task_custom_field_definition_id}")]
pub async fn update_custom_field(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<FieldDefinitionUpdate>,
) -> ApiResult<web::Json<FieldDefinition>> {
    let definition_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| {
        custom_fields::update(&tx, &principal, definition_id, patch)
    })))
}

/// Deletes a definition that no task has a value for (org admin).
#[utoipa::path(
    tag = "custom-fields",
    params(("task_custom_field_definition_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = []))
)]
#[delete("/api/v1/organizations/me/custom-fields/{task_custom_field_definition_id}")]
pub async fn delete_custom_field(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let definition_id = path.into_inner();
    in_transaction!(state, |tx| custom_fields::delete(
        &tx,
        &principal,
        definition_id
    ));
    Ok(OkResponse::json())
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_custom_fields)
        .service(create_custom_field)
        .service(update_custom_field)
        .service(delete_custom_field);
}
