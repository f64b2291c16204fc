//! `/api/v1/gateways` (domain.md §A3, admin CRUD). No gateway is dialed from here.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::gateways::crud::{self as gateways, GatewayCreate, GatewayUpdate};
use crate::domain::model::Gateway;
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

#[utoipa::path(
    tag = "gateways",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Gateway>), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/gateways")]
pub async fn list_gateways(
    state: Data<AppState>,
    Admin(principal): Admin,
    page: PageParams,
) -> ApiResult<web::Json<Page<Gateway>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(gateways::list(&*conn, &principal, page).await?))
}

/// Creates a gateway and its gateway-main agent (provisioning).
#[utoipa::path(
    tag = "gateways",
    request_body = GatewayCreate,
    responses((status = 200, body = Gateway), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/gateways")]
pub async fn create_gateway(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<GatewayCreate>,
) -> ApiResult<web::Json<Gateway>> {
    let gateway = in_transaction!(state, |tx| gateways::create(&tx, &principal, input));
    gateway_rpc::poke(&state.router, [gateway.id]);
    // With its gateway-main agent.
    state.agents_changed(principal.organization.id);
    Ok(web::Json(gateway))
}

#[utoipa::path(
    tag = "gateways",
    params(("gateway_id" = Uuid, Path)),
    responses((status = 200, body = Gateway), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/gateways/{gateway_id}")]
pub async fn get_gateway(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Gateway>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        gateways::get(&*conn, &principal, path.into_inner()).await?,
    ))
}

#[utoipa::path(
    tag = "gateways",
    params(("gateway_id" = Uuid, Path)),
    request_body = GatewayUpdate,
    responses((status = 200, body = Gateway), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/gateways/{gateway_id}")]
pub async fn update_gateway(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<GatewayUpdate>,
) -> ApiResult<web::Json<Gateway>> {
    let gateway_id = path.into_inner();
    let gateway = in_transaction!(state, |tx| gateways::update(
        &tx, &principal, gateway_id, patch
    ));
    gateway_rpc::poke(&state.router, [gateway.id]);
    // Its gateway-main agent is re-provisioned.
    state.agents_changed(principal.organization.id);
    Ok(web::Json(gateway))
}

/// Deletes a gateway no board uses, with its gateway-main agent.
#[utoipa::path(
    tag = "gateways",
    params(("gateway_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = []))
)]
#[delete("/api/v1/gateways/{gateway_id}")]
pub async fn delete_gateway(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let gateway_id = path.into_inner();
    let released = in_transaction!(state, |tx| gateways::delete(&tx, &principal, gateway_id));
    publish_released(&state, principal.organization.id, released);
    // Its relay link (or connector) is closed with 4001 wherever it is: its token is gone.
    state.router.tell(
        crate::actors::registry::Address::Gateway(gateway_id),
        crate::protocol::bus::RouteMessage::Close {
            reason: "gateway deleted".into(),
        },
    );
    Ok(OkResponse::json())
}

/// Tells the board feeds about tasks an agent deletion unassigned.
pub(crate) fn publish_released(
    state: &AppState,
    organization_id: Uuid,
    released: Vec<crate::domain::agents::removal::ReleasedTask>,
) {
    for (board_id, changes) in released {
        state
            .board_events
            .tasks_changed(organization_id, board_id, changes);
    }
}

/// Literal sub-paths such as `/gateways/status`, `/sessions` and `/commands` must be registered before the
/// `{id}` routes: actix takes the first pattern that matches, and the id's parse would answer 422.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_gateways)
        .service(create_gateway)
        .service(get_gateway)
        .service(update_gateway)
        .service(delete_gateway);
}
