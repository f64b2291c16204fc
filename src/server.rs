//! `serve`: wires the pools, the actors and the HTTP server, and shuts down gracefully.

use std::sync::Arc;
use std::time::Duration;

use actix::Supervisor;
use actix_web::web::Data;
use actix_web::HttpServer;

use crate::actors::board_events::BoardEvents;
use crate::actors::board_room::BoardRooms;
use crate::actors::bridge::Bridge;
use crate::actors::chat_writes::UserMessageWrites;
use crate::actors::delivered::DeliveredMarks;
use crate::actors::embedder::{self, Embedder};
use crate::actors::feeds::FeedHub;
use crate::actors::gateway_monitor::GatewayMonitor;
use crate::actors::gateway_rpc::RpcReplies;
use crate::actors::group_commit::GroupCommit;
use crate::actors::heartbeats::HeartbeatWrites;
use crate::actors::invalidations::Invalidations;
use crate::actors::openclaw::{GatewayOwners, Release};
use crate::actors::pipelines::{PipelineDeps, PipelineRuns};
use crate::actors::presence::Presence;
use crate::actors::registry::{Registry, Router};
use crate::actors::rule_engine::{EngineDeps, EventBus, RuleEngine};
use crate::actors::socket::Sockets;
use crate::actors::suggestions::SuggestionHubs;
use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::db::{self, cache, migrate};
use crate::domain::pipelines::holder::Limits;
use crate::http;
use crate::state::AppState;

pub async fn serve(settings: Settings) -> Result<(), String> {
    // First, before any actor runs: a taken port is a plain error (exit 1), not actors
    // torn down half-started.
    let listener = listen(settings.bind)
        .map_err(|e| format!("BIND: cannot listen on {}: {e}", settings.bind))?;
    if settings.db_auto_migrate {
        let applied = migrate::run(&settings.database).await?;
        tracing::info!(applied = applied.len(), "migrations applied at start");
    }
    let settings = Arc::new(settings);
    let db = db::pool(&settings.database);

    let bridge = start_bridge(&settings)?;

    let redis = match &settings.redis {
        Some(urls) => Some(cache::pool(&urls.base, settings.redis_pool_size)?),
        None => None,
    };
    let login_throttle = LoginThrottle::new(redis.clone(), settings.h5.login_failure_window);
    let webhook_throttle = LoginThrottle::new(redis.clone(), Duration::from_secs(60));
    let presence = Arc::new(Presence::new(redis));
    let registry = {
        let (bridge, presence) = (bridge.clone(), presence.clone());
        Supervisor::start(move |_| Registry::new(bridge, presence))
    };
    let router = Router::new(registry);
    let feeds = {
        let bridge = bridge.clone();
        Supervisor::start(move |_| FeedHub::new(bridge))
    };
    let board_rooms = {
        let (db, feeds) = (db.clone(), feeds.clone());
        Supervisor::start(move |_| BoardRooms::new(db.clone(), feeds.clone()))
    };
    let suggestions = {
        let bridge = bridge.clone();
        Supervisor::start(move |_| SuggestionHubs::new(bridge.clone()))
    };
    let events = start_proactivity(
        &settings,
        &db,
        &suggestions,
        settings.proactivity.engine_in_serve,
    )?;
    let rpc = {
        let (bridge, instance_id) = (bridge.clone(), settings.instance_id.clone());
        Supervisor::start(move |_| RpcReplies::new(bridge.clone(), instance_id.clone()))
    };
    let storage = crate::storage::Storage::open(&settings.knowledge.storage)?;
    let memos = Arc::new(crate::domain::memos::Memos::default());
    {
        let (database, memos) = (settings.database.url.clone(), memos.clone());
        Supervisor::start(move |_| Invalidations::new(database.clone(), memos.clone()));
    }
    let heartbeats = {
        let (db, instance_id) = (db.clone(), settings.instance_id.clone());
        Supervisor::start(move |_| {
            GroupCommit::new(HeartbeatWrites {
                db: db.clone(),
                instance_id: instance_id.clone(),
            })
        })
    };
    let delivered = {
        let db = db.clone();
        Supervisor::start(move |_| DeliveredMarks::new(db.clone()))
    };
    let chat_writes = {
        let db = db.clone();
        Supervisor::start(move |_| GroupCommit::new(UserMessageWrites { db: db.clone() }))
    };
    let state = Data::new(AppState {
        memos,
        heartbeats,
        delivered,
        chat_writes,
        storage,
        settings: settings.clone(),
        db,
        bridge,
        board_events: BoardEvents::new(feeds.clone(), router.clone(), events.clone()),
        board_rooms,
        suggestions,
        events,
        feeds,
        login_throttle,
        webhook_throttle,
        router,
        rpc,
        device: Default::default(),
        presence,
        sockets: Default::default(),
        clerk: match &settings.auth {
            crate::config::AuthMode::Clerk(clerk) => Some(std::sync::Arc::new(
                crate::domain::orgs::clerk::Verifier::new(clerk.clone()),
            )),
            crate::config::AuthMode::Local { .. } => None,
        },
    });
    let owners = {
        let (link, device) = (state.link_deps(), state.device.clone());
        Supervisor::start(move |_| GatewayOwners::new(link.clone(), device.clone()))
    };
    {
        let (db, threshold, instance_id, router) = (
            state.db.clone(),
            settings.gateway.offline_threshold,
            settings.instance_id.clone(),
            state.router.clone(),
        );
        Supervisor::start(move |_| GatewayMonitor::new(db, threshold, instance_id, router));
    }
    let pipelines = {
        let deps = PipelineDeps {
            db: state.db.clone(),
            database: settings.database.url.clone(),
            instance_id: settings.instance_id.clone(),
            limits: Limits {
                default_timeout_hours: settings.pipelines.default_stage_timeout_hours as f64,
                max_concurrent_runs: settings.pipelines.max_concurrent_runs as i64,
                lease: settings.pipelines.lease,
            },
            board_events: state.board_events.clone(),
            steps: Arc::new(tokio::sync::Semaphore::new(
                (settings.database.pool_size as usize / 2).max(2),
            )),
        };
        Supervisor::start(move |_| PipelineRuns::new(deps.clone()))
    };
    if let Some(embedding) = settings.knowledge.embedding.clone() {
        let db = state.db.clone();
        Supervisor::start(move |_| Embedder::new(db.clone(), embedding.clone()));
    }
    actix::spawn(embedder::reindex_language(
        state.db.clone(),
        settings.knowledge.search_language.clone(),
    ));
    let closers = Closers {
        owners,
        pipelines,
        sockets: state.sockets.clone(),
        timeout: settings.shutdown_timeout,
    };
    let write_timeout = settings.ws.write_timeout;
    let server = HttpServer::new(move || http::app(state.clone()))
        // A client that stops reading leaves the server's write to it pending for ever (a
        // closed socket too: its last bytes are flushed first); the kernel drops such a
        // connection once nothing it was sent is taken for this long. No Nagle: a socket's
        // second small frame (a chat reply after its ack) waited for the client's delayed
        // ACK, ~40 ms on every round trip.
        .on_connect(move |connection, _| {
            if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                if let Err(e) =
                    socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(write_timeout))
                {
                    tracing::warn!(error = %e, "no write timeout on a connection");
                }
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::warn!(error = %e, "Nagle left on for a connection");
                }
            }
        })
        // No lingering close. actix keeps reading what a client still sends, after a
        // WebSocket ends or a response left a request body unread, for this long before it
        // closes the connection (closing on unread data sends an RST, which can destroy the
        // response before the client reads it). Its default, 1 s on a clock that ticks every
        // 500 ms, held every closed WebSocket's TCP connection open 0.5-1 s after the close
        // frames; a few milliseconds cannot be had (a deadline that is already past when set
        // is never woken, and the connection then stays open for good), so it is off: nginx
        // in front reads request bodies whole before it forwards them.
        .client_disconnect_timeout(Duration::ZERO)
        .workers(settings.http_workers)
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listener)
        .map_err(|e| format!("BIND: cannot listen on {}: {e}", settings.bind))?
        .run();
    actix::spawn(graceful_shutdown(server.handle(), closers));
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

/// The Redis bridge to the other instances, or the in-process bus without Redis.
fn start_bridge(settings: &Settings) -> Result<actix::Addr<Bridge>, String> {
    let instance_id = settings.instance_id.clone();
    Ok(match &settings.redis {
        Some(urls) => {
            let publisher = cache::pool(&urls.relay, settings.redis_pool_size)?;
            let bridge = Bridge::redis(&instance_id, &urls.relay, publisher)?;
            Supervisor::start(move |_| bridge)
        }
        None => Supervisor::start(move |_| Bridge::in_process(&instance_id)),
    })
}

/// The event bus of this process and, when `engine` says so, the rule engine reading it
/// (supervised: restarted when its stream reader fails).
pub fn start_proactivity(
    settings: &Settings,
    db: &db::PgPool,
    suggestions: &actix::Addr<SuggestionHubs>,
    engine: bool,
) -> Result<EventBus, String> {
    let redis = match &settings.redis {
        Some(urls) => Some(cache::pool(&urls.events, settings.redis_pool_size)?),
        None => None,
    };
    let bus = EventBus::new(db.clone(), redis);
    if engine {
        let deps = EngineDeps {
            db: db.clone(),
            bus: bus.clone(),
            redis_url: settings.redis.as_ref().map(|urls| urls.events.clone()),
            consumer: settings.instance_id.clone(),
            settings: settings.proactivity.clone(),
            hubs: suggestions.clone(),
        };
        Supervisor::start(move |_| RuleEngine::new(deps));
    }
    Ok(bus)
}

/// `mission-control consumer`: the rule engine alone (the reference's event-bus-consumer
/// process), until SIGTERM or SIGINT.
pub async fn consume(settings: Settings) -> Result<(), String> {
    if settings.db_auto_migrate {
        migrate::run(&settings.database).await?;
    }
    if settings.redis.is_none() {
        tracing::warn!("no REDIS_URL: this consumer only reads events from PostgreSQL, after PROACTIVITY_RECOVER_AFTER_SECONDS");
    }
    let db = db::pool(&settings.database);
    let bridge = start_bridge(&settings)?;
    let suggestions = Supervisor::start(move |_| SuggestionHubs::new(bridge.clone()));
    start_proactivity(&settings, &db, &suggestions, true)?;
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (
        signal(SignalKind::terminate()).map_err(|e| e.to_string())?,
        signal(SignalKind::interrupt()).map_err(|e| e.to_string())?,
    );
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("consumer stopped");
    Ok(())
}

/// The server's socket, as actix would make it (address reuse, a backlog of 2,048 for
/// bursts of connects), but made before anything else starts.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(2048)?;
    Ok(socket.into())
}

/// What shutdown closes.
struct Closers {
    owners: actix::Addr<GatewayOwners>,
    pipelines: actix::Addr<PipelineRuns>,
    sockets: std::sync::Arc<Sockets>,
    timeout: std::time::Duration,
}

/// On SIGTERM or SIGINT, in this order: stop accepting connections, close every socket
/// with "going away" (clients reconnect to another instance) and refuse those still being
/// upgraded, hand the gateways we dial to another instance, then let in-flight requests
/// finish within SHUTDOWN_TIMEOUT_SECONDS. The process exits 0 then, even if a socket or a
/// request is stuck.
async fn graceful_shutdown(server: actix_web::dev::ServerHandle, closers: Closers) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals; stop the server with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "starting graceful shutdown");
    // The last word: nothing below may hold the process past the timeout (a worker stuck
    // in a handler, an actor that never stops). The margin lets the workers' own timeout
    // act first.
    let deadline = closers.timeout + std::time::Duration::from_secs(2);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        tracing::warn!("shutdown took longer than SHUTDOWN_TIMEOUT_SECONDS; exiting now");
        std::process::exit(0);
    });
    server.pause().await;
    // Every socket, authenticated or not, closes with "going away"; none opens any more.
    let open = closers.sockets.close();
    // Gateways we dial and pipeline runs we hold go to another instance at once, not when
    // our leases expire.
    let _ = closers.owners.send(Release).await;
    let _ = closers
        .pipelines
        .send(crate::actors::pipelines::Release)
        .await;
    if open > 0 {
        // Let the close frames reach the wire before the workers stop.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.stop(true).await;
}
