//! `/api/v1/users/*`.

use actix_web::web::Data;
use actix_web::{delete, get, patch, web};

use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::model::User;
use crate::domain::orgs::accounts::{self, UserUpdate};
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// The authenticated user.
#[utoipa::path(tag = "users", security(("bearer" = [])), responses((status = 200, body = User), (status = 401)))]
#[get("/api/v1/users/me")]
pub async fn get_me(Admin(principal): Admin) -> web::Json<User> {
    web::Json(principal.user)
}

/// Updates the authenticated user's profile; absent fields stay, `null` clears.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    request_body = UserUpdate,
    responses((status = 200, body = User), (status = 401), (status = 422))
)]
#[patch("/api/v1/users/me")]
pub async fn update_me(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(update): Json<UserUpdate>,
) -> ApiResult<web::Json<User>> {
    Ok(web::Json(
        accounts::update_user(&state.db, principal.user.id, update).await?,
    ))
}

/// Deletes the authenticated user. Organizations where they are the only member go with
/// them; being the last owner of an organization with other members is refused (422).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = OkResponse), (status = 401), (status = 422))
)]
#[delete("/api/v1/users/me")]
pub async fn delete_me(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<OkResponse>> {
    in_transaction!(state, |tx| accounts::delete_user(&tx, principal.user.id));
    Ok(OkResponse::json())
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_me).service(update_me).service(delete_me);
}
