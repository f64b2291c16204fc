//! Routes of this group (full paths, no scopes: overlapping actix scopes do not fall through).

use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(_cfg: &mut ServiceConfig) {}
