//! `/api/v1/skills` (domain.md §A17): the marketplace and skill packs (org admin).

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Query};
use actix_web::{delete, get, patch, post};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::domain::model::Principal;
use crate::domain::skills::catalog::{
    self as skills, GatewayQuery, MarketplaceQuery, Skill, SkillAction, SkillCard, SkillCreate,
};
use crate::domain::skills::packs::{Pack, PackCreate, PackSync};
use crate::domain::{skills::discovery as pack_discovery, DomainError};
use crate::error::{ApiError, ApiResult};
use crate::http::in_transaction;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// The organization's skills, newest first, with their install state on `gateway_id`.
#[utoipa::path(
    tag = "skills",
    params(MarketplaceQuery),
    responses((status = 200, body = Vec<SkillCard>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/skills/marketplace")]
pub async fn list_marketplace(
    state: Data<AppState>,
    Admin(principal): Admin,
    query: Query<MarketplaceQuery>,
) -> ApiResult<web::Json<Vec<SkillCard>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        skills::list_marketplace(&*conn, &principal, query.into_inner()).await?,
    ))
}

/// Registers a skill URL (upsert by URL; the name defaults to the URL's last segment).
#[utoipa::path(
    tag = "skills",
    request_body = SkillCreate,
    responses((status = 200, body = Skill), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/skills/marketplace")]
pub async fn create_skill(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<SkillCreate>,
) -> ApiResult<web::Json<Skill>> {
    Ok(web::Json(in_transaction!(
        state,
        |tx| skills::create_skill(&tx, &principal, input)
    )))
}

/// Deletes a skill and its install records.
#[utoipa::path(
    tag = "skills",
    params(("skill_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/skills/marketplace/{skill_id}")]
pub async fn delete_skill(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let skill_id = path.into_inner();
    in_transaction!(state, |tx| skills::delete_skill(&tx, &principal, skill_id));
    Ok(OkResponse::json())
}

/// Install and uninstall: the request and the record in one transaction, then the
/// gateway's relay link is poked to send it.
async fn set_installed(
    state: &AppState,
    principal: &Principal,
    skill_id: Uuid,
    gateway_id: Uuid,
    installed: bool,
) -> ApiResult<web::Json<SkillAction>> {
    let action = in_transaction!(state, |tx| {
        skills::set_installed(&tx, principal, skill_id, gateway_id, installed)
    });
    gateway_rpc::poke(state, [action.gateway_id]);
    Ok(web::Json(action))
}

/// Asks the gateway's main agent to install the skill (a gateway request) and records it.
#[utoipa::path(
    tag = "skills",
    params(("skill_id" = Uuid, Path), GatewayQuery),
    responses((status = 200, body = SkillAction), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/skills/marketplace/{skill_id}/install")]
pub async fn install_skill(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    query: Query<GatewayQuery>,
) -> ApiResult<web::Json<SkillAction>> {
    set_installed(
        &state,
        &principal,
        path.into_inner(),
        query.gateway_id,
        true,
    )
    .await
}

/// Asks the gateway's main agent to remove the skill (a gateway request) and records it.
#[utoipa::path(
    tag = "skills",
    params(("skill_id" = Uuid, Path), GatewayQuery),
    responses((status = 200, body = SkillAction), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/skills/marketplace/{skill_id}/uninstall")]
pub async fn uninstall_skill(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    query: Query<GatewayQuery>,
) -> ApiResult<web::Json<SkillAction>> {
    set_installed(
        &state,
        &principal,
        path.into_inner(),
        query.gateway_id,
        false,
    )
    .await
}

#[utoipa::path(
    tag = "skills",
    responses((status = 200, body = Vec<Pack>), (status = 401), (status = 403)),
    security(("bearer" = []))
)]
#[get("/api/v1/skills/packs")]
pub async fn list_packs(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Vec<Pack>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        crate::domain::skills::packs::list_packs(&*conn, &principal).await?,
    ))
}

/// Registers a GitHub pack URL (upsert by normalized URL; other hosts answer 400).
#[utoipa::path(
    tag = "skills",
    request_body = PackCreate,
    responses((status = 200, body = Pack), (status = 400), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/skills/packs")]
pub async fn create_pack(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<PackCreate>,
) -> ApiResult<web::Json<Pack>> {
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::skills::packs::create_pack(&tx, &principal, input)
    })))
}

#[utoipa::path(
    tag = "skills",
    params(("pack_id" = Uuid, Path)),
    responses((status = 200, body = Pack), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/skills/packs/{pack_id}")]
pub async fn get_pack(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Pack>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        crate::domain::skills::packs::get_pack(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Replaces a pack with the full create body; another pack's URL answers 409.
#[utoipa::path(
    tag = "skills",
    params(("pack_id" = Uuid, Path)),
    request_body = PackCreate,
    responses((status = 200, body = Pack), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/skills/packs/{pack_id}")]
pub async fn update_pack(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<PackCreate>,
) -> ApiResult<web::Json<Pack>> {
    let pack_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::skills::packs::update_pack(&tx, &principal, pack_id, input)
    })))
}

/// Deletes a pack; its skills stay.
#[utoipa::path(
    tag = "skills",
    params(("pack_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/skills/packs/{pack_id}")]
pub async fn delete_pack(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let pack_id = path.into_inner();
    in_transaction!(state, |tx| crate::domain::skills::packs::delete_pack(
        &tx, &principal, pack_id
    ));
    Ok(OkResponse::json())
}

/// Clones the pack's repository (its branch, else the default one) and upserts the skills
/// it lists; a repository that cannot be cloned answers 502.
#[utoipa::path(
    tag = "skills",
    params(("pack_id" = Uuid, Path)),
    responses((status = 200, body = PackSync), (status = 401), (status = 403), (status = 404), (status = 502)),
    security(("bearer" = []))
)]
#[post("/api/v1/skills/packs/{pack_id}/sync")]
pub async fn sync_pack(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<PackSync>> {
    let pack = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        crate::domain::skills::packs::pack_to_sync(&*conn, &principal, path.into_inner()).await?
    };
    let found = pack_discovery::discover(&pack.source_url, &pack.branch)
        .await
        .map_err(|e| ApiError::status(StatusCode::BAD_GATEWAY, e.0))?;
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::skills::packs::store_synced(&tx, &pack, found)
    })))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_marketplace)
        .service(create_skill)
        .service(delete_skill)
        .service(install_skill)
        .service(uninstall_skill)
        .service(list_packs)
        .service(create_pack)
        .service(get_pack)
        .service(update_pack)
        .service(delete_pack)
        .service(sync_pack);
}
