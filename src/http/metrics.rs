//! `/api/v1/metrics/dashboard` (domain.md §A16). Routes are full paths, no scopes:
//! overlapping actix scopes do not fall through.

use actix_web::get;
use actix_web::web::{self, Data};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::admin::Admin;
use crate::domain::boards::metrics::{self, DashboardMetrics, DashboardQuery, RangeKey};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::state::AppState;

/// KPIs and time series over the boards the caller can read, with the previous window of
/// the same length for comparison.
#[utoipa::path(
    tag = "metrics",
    params(("range_key" = Option<RangeKey>, Query, description = "default 24h"),
           ("board_id" = Option<Uuid>, Query), ("group_id" = Option<Uuid>, Query)),
    responses((status = 200, body = DashboardMetrics), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/metrics/dashboard")]
pub async fn dashboard(
    state: Data<AppState>,
    Admin(principal): Admin,
    query: web::Query<DashboardQuery>,
) -> ApiResult<web::Json<DashboardMetrics>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        metrics::dashboard(&*conn, &principal, &query).await?,
    ))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(dashboard);
}
