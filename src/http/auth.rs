//! `/api/v1/auth/*`. Routes of this group use full paths, no scopes: overlapping actix
//! scopes do not fall through.

use actix_web::{post, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::admin::Admin;
use crate::domain::model::User;

/// Resolves the caller from the bearer token and answers their profile; the first call
/// provisions the user. Takes no body.
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses((status = 200, body = User), (status = 401)))]
#[post("/api/v1/auth/bootstrap")]
pub async fn bootstrap(Admin(principal): Admin) -> web::Json<User> {
    web::Json(principal.user)
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(bootstrap);
}
