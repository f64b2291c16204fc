//! `serve`: wires the pools, the actors and the HTTP server, and shuts down gracefully.

use std::sync::Arc;

use actix::Supervisor;
use actix_web::web::Data;
use actix_web::HttpServer;

use crate::actors::board_events::BoardEvents;
use crate::actors::bridge::Bridge;
use crate::actors::h5_sessions::H5Sessions;
use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::db::{self, cache, migrate};
use crate::http;
use crate::state::AppState;

pub async fn serve(settings: Settings) -> Result<(), String> {
    if settings.db_auto_migrate {
        let applied = migrate::run(&settings.database).await?;
        tracing::info!(applied = applied.len(), "migrations applied at start");
    }
    let settings = Arc::new(settings);
    let db = db::pool(&settings.database);

    let instance_id = settings.instance_id.clone();
    let bridge = match &settings.redis {
        Some(urls) => {
            let publisher = cache::pool(&urls.relay, settings.redis_pool_size)?;
            let bridge = Bridge::redis(&instance_id, &urls.relay, publisher)?;
            Supervisor::start(move |_| bridge)
        }
        None => Supervisor::start(move |_| Bridge::in_process(&instance_id)),
    };

    let throttle_redis = match &settings.redis {
        Some(urls) => Some(cache::pool(&urls.base, settings.redis_pool_size)?),
        None => None,
    };
    let login_throttle = LoginThrottle::new(throttle_redis, settings.h5.login_failure_window);
    let state = Data::new(AppState {
        settings: settings.clone(),
        db,
        bridge,
        board_events: BoardEvents,
        h5_sessions: H5Sessions,
        login_throttle,
    });
    // actix-server handles SIGTERM itself: it stops accepting, lets in-flight requests
    // finish for up to the shutdown timeout, then returns, and the process exits 0.
    let server = HttpServer::new(move || http::app(state.clone()))
        .workers(settings.http_workers)
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .bind(settings.bind)
        .map_err(|e| format!("BIND: cannot listen on {}: {e}", settings.bind))?
        .run();
    tracing::info!(
        bind = %settings.bind,
        instance_id = %settings.instance_id,
        redis = settings.redis.is_some(),
        "mission-control listening"
    );
    server.await.map_err(|e| e.to_string())?;
    tracing::info!("mission-control stopped");
    Ok(())
}
