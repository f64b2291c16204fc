//! `/api/v1/h5/users/*`: organization admins manage H5 users and their agent assignments.

use actix_web::web::{self, Data, Path, Query};
use actix_web::{delete, get, post, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::registry::Address;
use crate::auth::admin::Admin;
use crate::domain::h5::users::{
    self as h5_users, Assignment, H5User, ListFilter, NewAssignment, UserWithAssignments,
    STATUS_ACTIVE, STATUS_SUSPENDED,
};
use crate::domain::support::access::require_org_admin;
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::{ApiError, ApiResult};
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::protocol::bus::RouteMessage;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
pub struct UserFilter {
    /// `active` or `suspended`.
    pub status: Option<String>,
    /// Part of the username or display name.
    pub q: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AssignRequest {
    pub agent_id: Uuid,
    pub board_id: Uuid,
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role() -> String {
    "user".into()
}

/// The organization's H5 users, newest first.
#[utoipa::path(tag = "h5-users", security(("bearer" = [])), params(UserFilter), responses((status = 200, body = Page<H5User>), (status = 401), (status = 403)))]
#[get("/api/v1/h5/users")]
pub async fn list(
    state: Data<AppState>,
    Admin(p): Admin,
    page: PageParams,
    Query(filter): Query<UserFilter>,
) -> ApiResult<web::Json<Page<H5User>>> {
    require_org_admin(&p.member)?;
    if let Some(status) = filter.status.as_deref() {
        if status != STATUS_ACTIVE && status != STATUS_SUSPENDED {
            return Err(ApiError::validation(
                "literal_error",
                vec!["query".into(), "status".into()],
                "Input should be 'active' or 'suspended'",
                status.into(),
            ));
        }
    }
    let filter = ListFilter {
        status: filter.status,
        q: filter.q.filter(|q| !q.trim().is_empty()),
    };
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        h5_users::list(&*conn, p.organization.id, &filter, page).await?,
    ))
}

/// One H5 user with their assignments.
#[utoipa::path(tag = "h5-users", security(("bearer" = [])), responses((status = 200, body = UserWithAssignments), (status = 404)))]
#[get("/api/v1/h5/users/{h5_user_id}")]
pub async fn detail(
    state: Data<AppState>,
    Admin(p): Admin,
    id: Path<Uuid>,
) -> ApiResult<web::Json<UserWithAssignments>> {
    require_org_admin(&p.member)?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let user = h5_users::find_in_org(&*conn, p.organization.id, *id).await?;
    Ok(web::Json(h5_users::with_assignments(&*conn, user).await?))
}

/// Lets the user chat with an agent of this organization, on the agent's board.
#[utoipa::path(tag = "h5-users", security(("bearer" = [])), request_body = AssignRequest, responses((status = 201, body = Assignment), (status = 404), (status = 409), (status = 422)))]
#[post("/api/v1/h5/users/{h5_user_id}/assign")]
pub async fn assign(
    state: Data<AppState>,
    Admin(p): Admin,
    id: Path<Uuid>,
    Json(body): Json<AssignRequest>,
) -> ApiResult<HttpResponse> {
    require_org_admin(&p.member)?;
    if body.role.trim().is_empty() || body.role.chars().count() > 32 {
        return Err(ApiError::validation(
            "value_error",
            vec!["body".into(), "role".into()],
            "role must be 1 to 32 characters",
            body.role.into(),
        ));
    }
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let new = NewAssignment {
        agent_id: body.agent_id,
        board_id: body.board_id,
        role: body.role.trim().to_string(),
        assigned_by: p.user.id,
    };
    let assignment = h5_users::assign(&*conn, p.organization.id, *id, new).await?;
    Ok(HttpResponse::Created().json(assignment))
}

/// Ends an assignment.
#[utoipa::path(tag = "h5-users", security(("bearer" = [])), responses((status = 200, body = OkResponse), (status = 404)))]
#[delete("/api/v1/h5/users/{h5_user_id}/assign/{agent_id}")]
pub async fn unassign(
    state: Data<AppState>,
    Admin(p): Admin,
    ids: Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<OkResponse>> {
    require_org_admin(&p.member)?;
    let (user_id, agent_id) = ids.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    h5_users::unassign(&*conn, p.organization.id, user_id, agent_id).await?;
    Ok(OkResponse::json())
}

/// Suspends the user: logins and refreshes are refused, every refresh token is revoked and
/// their open chat sockets are closed.
#[utoipa::path(tag = "h5-users", security(("bearer" = [])), responses((status = 200, body = H5User), (status = 404)))]
#[post("/api/v1/h5/users/{h5_user_id}/suspend")]
pub async fn suspend(
    state: Data<AppState>,
    Admin(p): Admin,
    id: Path<Uuid>,
) -> ApiResult<web::Json<H5User>> {
    let user = set_status(&state, &p, *id, STATUS_SUSPENDED).await?;
    state.router.tell(
        Address::User(user.id),
        RouteMessage::Close {
            reason: "account suspended".into(),
        },
    );
    Ok(web::Json(user))
}

/// Lets a suspended user log in again.
#[utoipa::path(tag = "h5-users", security(("bearer" = [])), responses((status = 200, body = H5User), (status = 404)))]
#[post("/api/v1/h5/users/{h5_user_id}/reactivate")]
pub async fn reactivate(
    state: Data<AppState>,
    Admin(p): Admin,
    id: Path<Uuid>,
) -> ApiResult<web::Json<H5User>> {
    Ok(web::Json(set_status(&state, &p, *id, STATUS_ACTIVE).await?))
}

async fn set_status(
    state: &AppState,
    p: &crate::domain::model::Principal,
    user_id: Uuid,
    status: &str,
) -> ApiResult<H5User> {
    require_org_admin(&p.member)?;
    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let tx = conn.transaction().await.map_err(DomainError::from)?;
    let user = h5_users::set_status(&tx, p.organization.id, user_id, status).await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(user)
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(detail)
        .service(assign)
        .service(unassign)
        .service(suspend)
        .service(reactivate);
}
