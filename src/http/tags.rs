//! `/api/v1/tags` (domain.md §A11): list, create, read, update, delete.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::tasks::tags::{self, Tag, TagCreate, TagUpdate};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// The organization's tags by name, with how many tasks carry each.
#[utoipa::path(
    tag = "tags",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Tag>), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/tags")]
pub async fn list_tags(
    state: Data<AppState>,
    Admin(principal): Admin,
    page: PageParams,
) -> ApiResult<web::Json<Page<Tag>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(tags::list(&*conn, &principal, page).await?))
}

/// Creates a tag (org admin); the slug is derived from `slug`, else from the name.
#[utoipa::path(
    tag = "tags",
    request_body = TagCreate,
    responses((status = 200, body = Tag), (status = 401), (status = 403), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/tags")]
pub async fn create_tag(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<TagCreate>,
) -> ApiResult<web::Json<Tag>> {
    Ok(web::Json(in_transaction!(state, |tx| tags::create(
        &tx, &principal, input
    ))))
}

#[utoipa::path(
    tag = "tags",
    params(("tag_id" = Uuid, Path)),
    responses((status = 200, body = Tag), (status = 401), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/tags/{tag_id}")]
pub async fn get_tag(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Tag>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        tags::get(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Updates a tag (org admin).
#[utoipa::path(
    tag = "tags",
    params(("tag_id" = Uuid, Path)),
    request_body = TagUpdate,
    responses((status = 200, body = Tag), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/tags/{tag_id}")]
pub async fn update_tag(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<TagUpdate>,
) -> ApiResult<web::Json<Tag>> {
    let tag_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| tags::update(
        &tx, &principal, tag_id, patch
    ))))
}

/// Deletes a tag and its task assignments (org admin).
#[utoipa::path(
    tag = "tags",
    params(("tag_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/tags/{tag_id}")]
pub async fn delete_tag(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let tag_id = path.into_inner();
    in_transaction!(state, |tx| tags::delete(&tx, &principal, tag_id));
    Ok(OkResponse::json())
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_tags)
        .service(create_tag)
        .service(get_tag)
        .service(update_tag)
        .service(delete_tag);
}
