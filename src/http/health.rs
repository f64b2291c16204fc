//! Liveness and readiness probes.

use actix_web::web::Data;
use actix_web::{get, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::actors::bridge::Probe;
use crate::db;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthStatusResponse {
    pub ok: bool,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(tag = "health", responses((status = 200, body = HealthStatusResponse)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    alive()
}

/// Liveness: 200 while the process runs (the probe Docker, nginx and load balancers use).
#[utoipa::path(tag = "health", responses((status = 200, body = HealthStatusResponse)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    alive()
}

fn alive() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatusResponse { ok: true })
}

/// Readiness: 200 when PostgreSQL answers a query and a probe published on the Redis
/// bridge comes back; otherwise 503 naming each failed dependency.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, body = HealthStatusResponse),
        (status = 503, description = "a dependency failed; `detail` names it, `checks` says why")
    )
)]
#[get("/readyz")]
pub async fn readyz(state: Data<AppState>) -> HttpResponse {
    let timeout = state.settings.readiness_timeout;
    let bridge_probe = async {
        match state.bridge.send(Probe { timeout }).await {
            Ok(result) => result,
            Err(e) => Err(format!("bridge actor unreachable: {e}")),
        }
    };
    let (postgres, redis) = tokio::join!(db::ping(&state.db, timeout), bridge_probe);
    let failed: Vec<&str> = [("postgres", &postgres), ("redis", &redis)]
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(name, _)| *name)
        .collect();
    if failed.is_empty() {
        return HttpResponse::Ok().json(HealthStatusResponse { ok: true });
    }
    let status = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    HttpResponse::ServiceUnavailable().json(json!({
        "ok": false,
        "detail": format!("not ready: {}", failed.join(", ")),
        "checks": { "postgres": status(&postgres), "redis": status(&redis) },
    }))
}
