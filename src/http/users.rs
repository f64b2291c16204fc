//! `/api/v1/users/*`.

use actix_web::web::Data;
use actix_web::{get, patch, web};

use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::admin::Admin;
use crate::domain::accounts::{self, User, UserUpdate};
use crate::error::ApiResult;
use crate::http::json::Json;
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

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_me).service(update_me);
}
