//! `/api/v1/organizations/*` (domain.md §A1): organizations, members, invites.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, put};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::domain::model::Organization;
use crate::domain::orgs::accounts::{self, MembershipListItem};
use crate::domain::orgs::invites::{InviteAccept, InviteCreate, InviteRead};
use crate::domain::orgs::members::{MemberAccessUpdate, MemberRead, MemberUpdate};
use crate::domain::orgs::organizations::{
    self as orgs, OrganizationActiveUpdate, OrganizationCreate,
};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::in_transaction;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// Creates an organization; the caller becomes its owner and it becomes active.
#[utoipa::path(
    tag = "organizations",
    request_body = OrganizationCreate,
    responses((status = 200, body = Organization), (status = 401), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/organizations")]
pub async fn create_organization(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<OrganizationCreate>,
) -> ApiResult<web::Json<Organization>> {
    Ok(web::Json(in_transaction!(state, |tx| orgs::create(
        &tx,
        &principal.user,
        input
    ))))
}

/// The caller's active organization.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), responses((status = 200, body = Organization), (status = 401)))]
#[get("/api/v1/organizations/me")]
pub async fn get_my_org(Admin(principal): Admin) -> web::Json<Organization> {
    web::Json(principal.organization)
}

/// Deletes the active organization and everything in it (owners only).
#[utoipa::path(
    tag = "organizations",
    responses((status = 200, body = OkResponse), (status = 401), (status = 403)),
    security(("bearer" = []))
)]
#[delete("/api/v1/organizations/me")]
pub async fn delete_my_org(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<OkResponse>> {
    in_transaction!(state, |tx| orgs::delete_active(&tx, &principal));
    Ok(OkResponse::json())
}

/// Every organization the caller belongs to, by name.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), responses((status = 200, body = Vec<MembershipListItem>), (status = 401)))]
#[get("/api/v1/organizations/me/list")]
pub async fn list_my_organizations(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Vec<MembershipListItem>>> {
    let items =
        accounts::memberships(&state.db, principal.user.id, principal.organization.id).await?;
    Ok(web::Json(items))
}

/// Switches the caller's active organization (they must be a member).
#[utoipa::path(
    tag = "organizations",
    request_body = OrganizationActiveUpdate,
    responses((status = 200, body = Organization), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/organizations/me/active")]
pub async fn set_active_org(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<OrganizationActiveUpdate>,
) -> ApiResult<web::Json<Organization>> {
    Ok(web::Json(in_transaction!(state, |tx| orgs::set_active(
        &tx,
        principal.user.id,
        input.organization_id
    ))))
}

/// The caller's membership in the active organization.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), responses((status = 200, body = MemberRead), (status = 401)))]
#[get("/api/v1/organizations/me/member")]
pub async fn get_my_membership(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<MemberRead>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        crate::domain::orgs::members::my_membership(&*conn, &principal).await?,
    ))
}

/// Members of the active organization, by email.
#[utoipa::path(
    tag = "organizations",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<MemberRead>), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/organizations/me/members")]
pub async fn list_members(
    state: Data<AppState>,
    Admin(principal): Admin,
    page: PageParams,
) -> ApiResult<web::Json<Page<MemberRead>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        crate::domain::orgs::members::list_members(&*conn, &principal, page).await?,
    ))
}

/// One member (admins, or the member themself).
#[utoipa::path(
    tag = "organizations",
    params(("member_id" = Uuid, Path)),
    responses((status = 200, body = MemberRead), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/organizations/me/members/{member_id}")]
pub async fn get_member(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<MemberRead>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        crate::domain::orgs::members::get_member(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Changes a member's role (admins; owners only by owners; never the last owner).
#[utoipa::path(
    tag = "organizations",
    params(("member_id" = Uuid, Path)),
    request_body = MemberUpdate,
    responses((status = 200, body = MemberRead), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/organizations/me/members/{member_id}")]
pub async fn update_member(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(update): Json<MemberUpdate>,
) -> ApiResult<web::Json<MemberRead>> {
    let member_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::orgs::members::update_member(&tx, &principal, member_id, update)
    })))
}

/// Removes a member (admins; not oneself; owners only by owners; never the last owner).
#[utoipa::path(
    tag = "organizations",
    params(("member_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[delete("/api/v1/organizations/me/members/{member_id}")]
pub async fn remove_member(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let member_id = path.into_inner();
    in_transaction!(state, |tx| crate::domain::orgs::members::remove_member(
        &tx, &principal, member_id
    ));
    Ok(OkResponse::json())
}

/// Replaces a member's board access (admins).
#[utoipa::path(
    tag = "organizations",
    params(("member_id" = Uuid, Path)),
    request_body = MemberAccessUpdate,
    responses((status = 200, body = MemberRead), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[put("/api/v1/organizations/me/members/{member_id}/access")]
pub async fn update_member_access(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(update): Json<MemberAccessUpdate>,
) -> ApiResult<web::Json<MemberRead>> {
    let member_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::orgs::members::update_access(&tx, &principal, member_id, update)
    })))
}

/// Pending invites, newest first (admins). Tokens are not listed: only their hash is kept.
#[utoipa::path(
    tag = "organizations",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<InviteRead>), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/organizations/me/invites")]
pub async fn list_invites(
    state: Data<AppState>,
    Admin(principal): Admin,
    page: PageParams,
) -> ApiResult<web::Json<Page<InviteRead>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        crate::domain::orgs::invites::list_invites(&*conn, &principal, page).await?,
    ))
}

/// Invites an email address (admins); the answer carries the token, shown this once.
#[utoipa::path(
    tag = "organizations",
    request_body = InviteCreate,
    responses((status = 200, body = InviteRead), (status = 401), (status = 403), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/organizations/me/invites")]
pub async fn create_invite(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<InviteCreate>,
) -> ApiResult<web::Json<InviteRead>> {
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::orgs::invites::create_invite(&tx, &principal, input)
    })))
}

/// Revokes (deletes) an invite (admins) and answers it.
#[utoipa::path(
    tag = "organizations",
    params(("invite_id" = Uuid, Path)),
    responses((status = 200, body = InviteRead), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/organizations/me/invites/{invite_id}")]
pub async fn revoke_invite(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<InviteRead>> {
    let invite_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::orgs::invites::revoke_invite(&tx, &principal, invite_id)
    })))
}

/// Accepts an invite sent to the caller's email and answers the resulting membership.
#[utoipa::path(
    tag = "organizations",
    request_body = InviteAccept,
    responses((status = 200, body = MemberRead), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/organizations/invites/accept")]
pub async fn accept_invite(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<InviteAccept>,
) -> ApiResult<web::Json<MemberRead>> {
    Ok(web::Json(in_transaction!(state, |tx| {
        crate::domain::orgs::invites::accept_invite(&tx, &principal.user, input)
    })))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_organization)
        .service(get_my_org)
        .service(delete_my_org)
        .service(list_my_organizations)
        .service(set_active_org)
        .service(get_my_membership)
        .service(list_members)
        .service(get_member)
        .service(update_member)
        .service(remove_member)
        .service(update_member_access)
        .service(list_invites)
        .service(create_invite)
        .service(revoke_invite)
        .service(accept_invite);
}
