//! `/api/v1/organizations/*`.

use actix_web::web::Data;
use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::admin::Admin;
use crate::domain::accounts::{self, Member, MembershipListItem, Organization};
use crate::error::ApiResult;
use crate::state::AppState;

/// The caller's active organization.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), responses((status = 200, body = Organization), (status = 401)))]
#[get("/api/v1/organizations/me")]
pub async fn get_my_org(Admin(principal): Admin) -> web::Json<Organization> {
    web::Json(principal.organization)
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

/// `OrganizationUserRead`.
#[derive(Serialize, ToSchema)]
pub struct MemberUser {
    pub id: Uuid,
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_name: Option<String>,
}

/// `OrganizationMemberRead`. Per-board access rows arrive with boards; until then the
/// list is empty, as it is for members with all-boards access.
#[derive(Serialize, ToSchema)]
pub struct MemberRead {
    #[serde(flatten)]
    pub member: Member,
    pub user: Option<MemberUser>,
    #[schema(value_type = Vec<Object>)]
    pub board_access: Vec<serde_json::Value>,
}

/// The caller's membership in the active organization.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), responses((status = 200, body = MemberRead), (status = 401)))]
#[get("/api/v1/organizations/me/member")]
pub async fn get_my_membership(Admin(principal): Admin) -> web::Json<MemberRead> {
    let user = principal.user;
    web::Json(MemberRead {
        member: principal.member,
        user: Some(MemberUser {
            id: user.id,
            email: user.email,
            name: user.name,
            preferred_name: user.preferred_name,
        }),
        board_access: Vec::new(),
    })
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_my_org)
        .service(list_my_organizations)
        .service(get_my_membership);
}
